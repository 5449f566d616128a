//! Whole answers: a Messages response as a chat completion, and a chat completion as a Messages
//! response.

use serde_json::{Map, Value};

use super::{chat_usage_of, finish_reason_of, messages_usage_of, stop_reason_of, TranslateError};
use crate::chat::{FunctionCall, MessageContent, ToolCall};
use crate::{ChatMessage, ChatResponse, Choice, ContentBlock, MessagesResponse};

/// A fresh chat-completion id: LiteLLM does not reuse Anthropic's `msg_` id either. 128 random
/// bits from the thread's generator (no system call), as 32 hex digits like a simple UUID.
pub(crate) fn chat_completion_id() -> String {
    format!("chatcmpl-{:032x}", fastrand::u128(..))
}

/// A fresh Messages id, for a stream translated from chat chunks.
pub(crate) fn message_id() -> String {
    format!("msg_{:032x}", fastrand::u128(..))
}

pub(crate) fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// A Messages answer as a chat completion: `text` blocks joined into `content`, `tool_use` blocks
/// as tool calls (arguments as JSON text), `thinking` as `reasoning_content`, the stop reason
/// mapped, and the usage with cached tokens counted in the prompt.
///
/// Server-tool blocks (`server_tool_use`, `web_search_tool_result`, ...) have no chat form and are
/// left out; their text answer is kept.
pub fn messages_response_to_chat(response: &MessagesResponse) -> ChatResponse {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in &response.content {
        if let Some(block_text) = block.as_text() {
            text.push_str(block_text);
        } else if let Some(thinking) = block.as_thinking() {
            reasoning.push_str(thinking);
        } else if let Some(tool_use) = block.as_tool_use() {
            calls.push(ToolCall {
                id: tool_use.id.to_owned(),
                kind: "function".to_owned(),
                function: FunctionCall {
                    name: tool_use.name.to_owned(),
                    arguments: tool_use.input.to_string(),
                },
                extra: Map::new(),
            });
        }
    }
    let mut message = ChatMessage::new("assistant", text);
    if message.text().is_some_and(|text| text.is_empty()) && !calls.is_empty() {
        message.content = None;
    }
    if !calls.is_empty() {
        message.tool_calls = Some(calls);
    }
    if !reasoning.is_empty() {
        message
            .extra
            .insert("reasoning_content".to_owned(), Value::String(reasoning));
    }
    let mut extra = Map::new();
    if let Some(truncated) = response.extra.get("mirror_truncated") {
        extra.insert("mirror_truncated".to_owned(), truncated.clone());
    }
    ChatResponse {
        id: chat_completion_id(),
        object: "chat.completion".to_owned(),
        created: now_seconds(),
        model: response.model.clone(),
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: Some(
                finish_reason_of(response.stop_reason.as_deref().unwrap_or("end_turn")).to_owned(),
            ),
            extra: Map::new(),
        }],
        usage: Some(chat_usage_of(&response.usage)),
        extra,
    }
}

/// A chat completion as a Messages answer (its first choice: a translated request asks for one):
/// text as a `text` block, tool calls as `tool_use` blocks, a refusal as text with stop reason
/// `refusal`, the finish reason mapped and the usage without cached tokens in `input_tokens`.
/// The chat id is kept, as LiteLLM's adapter does.
///
/// # Errors
///
/// A [`TranslateError`] when a tool call's arguments are not a JSON object (Anthropic's `input`
/// must be one, and guessing would change the call).
pub fn chat_response_to_messages(
    response: &ChatResponse,
) -> Result<MessagesResponse, TranslateError> {
    let mut content = Vec::new();
    let mut stop_reason = "end_turn";
    if let Some(choice) = response.choices.first() {
        let message = &choice.message;
        let text = match &message.content {
            Some(MessageContent::Text(text)) => text.clone(),
            Some(MessageContent::Parts(_)) => message.text().unwrap_or_default(),
            None => String::new(),
        };
        let refusal = message.extra.get("refusal").and_then(Value::as_str);
        if !text.is_empty() {
            content.push(ContentBlock::text(text));
        } else if let Some(refusal) = refusal {
            content.push(ContentBlock::text(refusal));
        }
        for (at, call) in message.tool_calls.iter().flatten().enumerate() {
            content.push(ContentBlock::tool_use(
                call.id.clone(),
                call.function.name.clone(),
                tool_input(&call.function.arguments).ok_or_else(|| {
                    TranslateError::to_messages(
                        format!("choices[0].message.tool_calls[{at}].function.arguments"),
                        "the model's arguments are not a JSON object",
                    )
                })?,
            ));
        }
        stop_reason = stop_reason_of(choice.finish_reason.as_deref().unwrap_or("stop"));
        if refusal.is_some() && stop_reason == "end_turn" {
            stop_reason = "refusal";
        }
    }
    let usage = response
        .usage
        .as_ref()
        .map(messages_usage_of)
        .unwrap_or_default();
    let mut translated = MessagesResponse::text(&response.id, &response.model, "", usage);
    translated.content = content;
    translated.stop_reason = Some(stop_reason.to_owned());
    if let Some(truncated) = response.extra.get("mirror_truncated") {
        translated
            .extra
            .insert("mirror_truncated".to_owned(), truncated.clone());
    }
    Ok(translated)
}

/// Tool arguments (JSON text) as Anthropic's `input` object; empty arguments are `{}`.
pub(crate) fn tool_input(arguments: &str) -> Option<Value> {
    let arguments = arguments.trim();
    if arguments.is_empty() {
        return Some(Value::Object(Map::new()));
    }
    serde_json::from_str::<Value>(arguments)
        .ok()
        .filter(Value::is_object)
}
