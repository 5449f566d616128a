//! Requests, Messages to chat completions: the system prompt, content blocks, tool use and tool results, thinking as reasoning effort.

use serde_json::{json, Map, Value};

use super::TranslateError;
use crate::anthropic::{ContentBlock, MessageContent as Content, SystemPrompt};
use crate::chat::{ContentPart, FunctionCall, MessageContent, StreamOptions, Tool, ToolCall};
use crate::{ChatMessage, ChatRequest, MessagesRequest};

/// Messages fields with no chat counterpart: refused by name.
const MESSAGES_ONLY_PARAMS: &[&str] = &[
    "container",
    "mcp_servers",
    "context_management",
    "output_config",
    "inference_geo",
];

/// Messages fields that only steer Anthropic's prompt cache; they never change an answer.
const MESSAGES_CACHE_PARAMS: &[&str] = &["cache_control"];

/// A Messages request as a chat-completions request for the same model group.
///
/// `litellm_metadata` (the gateway's) becomes `metadata`; `metadata.user_id` becomes `user`; a
/// stream asks for the usage chunk.
///
/// # Errors
///
/// A [`TranslateError`] naming the first field that has no chat counterpart: server tools,
/// `container`, `mcp_servers`, text or content documents, images inside tool results, search
/// results, server-tool blocks.
pub fn messages_to_chat(request: &MessagesRequest) -> Result<ChatRequest, TranslateError> {
    let mut messages = Vec::new();
    if let Some(system) = &request.system {
        let text = system.joined_text();
        if let SystemPrompt::Blocks(blocks) = system {
            if let Some((at, block)) = blocks.iter().enumerate().find(|(_, b)| b.kind != "text") {
                return Err(TranslateError::to_chat(
                    format!("system[{at}].type"),
                    format!("`{}` blocks in the system prompt", block.kind),
                ));
            }
        }
        if !text.is_empty() {
            messages.push(ChatMessage::new("system", text));
        }
    }
    for (at, message) in request.messages.iter().enumerate() {
        match message.role.as_str() {
            "user" => chat_user_messages(at, &message.content, &mut messages)?,
            "assistant" => messages.push(chat_assistant_message(at, &message.content)?),
            other => {
                return Err(TranslateError::to_chat(
                    format!("messages[{at}].role"),
                    format!("unknown role `{other}`"),
                ))
            }
        }
    }

    let mut translated = ChatRequest::new(request.model.clone(), messages);
    translated.max_tokens = request.max_tokens;
    translated.temperature = request.temperature;
    translated.stream = request.stream;
    if request.is_stream() {
        translated.stream_options = Some(StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        });
    }
    translated.stop = request
        .stop_sequences
        .as_ref()
        .map(|stops| Value::Array(stops.iter().cloned().map(Value::String).collect()));
    translated.user = request.user_id().map(str::to_owned);
    translated.metadata.clone_from(&request.litellm_metadata);
    if let Some(top_p) = request.top_p {
        translated
            .extra
            .insert("top_p".to_owned(), Value::from(top_p));
    }
    if let Some(top_k) = request.top_k {
        // LiteLLM copies it through: OpenAI-compatible servers (vLLM, ...) take it.
        translated
            .extra
            .insert("top_k".to_owned(), Value::from(top_k));
    }
    if let Some(tools) = &request.tools {
        translated.tools = Some(
            tools
                .iter()
                .enumerate()
                .map(|(at, tool)| chat_tool(at, tool))
                .collect::<Result<_, _>>()?,
        );
    }
    if let Some(choice) = &request.tool_choice {
        let (choice, parallel_off) = tool_choice_to_chat(choice)?;
        translated.tool_choice = Some(choice);
        if parallel_off {
            translated
                .extra
                .insert("parallel_tool_calls".to_owned(), Value::Bool(false));
        }
    }
    if let Some(effort) = request.thinking.as_ref().and_then(effort_of_thinking) {
        translated.extra.insert(
            "reasoning_effort".to_owned(),
            Value::String(effort.to_owned()),
        );
    }
    for (key, value) in &request.extra {
        if MESSAGES_ONLY_PARAMS.contains(&key.as_str()) {
            return Err(TranslateError::to_chat(
                key.clone(),
                "OpenAI chat completions has no such parameter",
            ));
        }
        match key.as_str() {
            key if MESSAGES_CACHE_PARAMS.contains(&key) => {}
            // Anthropic's tiers (`auto`, `standard_only`) are not OpenAI's; both default to auto.
            "service_tier" => {}
            _ => {
                translated.extra.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(translated)
}

/// `thinking` as `reasoning_effort` (LiteLLM's mapping for non-Claude targets); `disabled` sends
/// none, so a model that does not reason is not refused.
fn effort_of_thinking(thinking: &Value) -> Option<&'static str> {
    match thinking.get("type").and_then(Value::as_str)? {
        "enabled" => {
            let budget = thinking.get("budget_tokens").and_then(Value::as_u64)?;
            Some(match budget {
                4096.. => "high",
                2048.. => "medium",
                1024.. => "low",
                _ => "minimal",
            })
        }
        "adaptive" => Some("medium"),
        _ => None,
    }
}

fn chat_tool(at: usize, tool: &Value) -> Result<Tool, TranslateError> {
    let kind = tool.get("type").and_then(Value::as_str).unwrap_or("custom");
    if kind != "custom" {
        return Err(TranslateError::to_chat(
            format!("tools[{at}].type"),
            format!("`{kind}` is an Anthropic server tool"),
        ));
    }
    let name = tool
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::to_chat(format!("tools[{at}].name"), "missing"))?;
    let mut function = Map::new();
    function.insert("name".to_owned(), Value::String(name.to_owned()));
    if let Some(description) = tool.get("description") {
        function.insert("description".to_owned(), description.clone());
    }
    function.insert(
        "parameters".to_owned(),
        tool.get("input_schema")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    );
    Ok(Tool {
        kind: "function".to_owned(),
        function: Some(Value::Object(function)),
        extra: Map::new(),
    })
}

fn tool_choice_to_chat(choice: &Value) -> Result<(Value, bool), TranslateError> {
    let parallel_off = choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true));
    let kind = choice.get("type").and_then(Value::as_str).unwrap_or("");
    let translated = match kind {
        "auto" => json!("auto"),
        "any" => json!("required"),
        "none" => json!("none"),
        "tool" => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| TranslateError::to_chat("tool_choice.name", "missing"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        other => {
            return Err(TranslateError::to_chat(
                "tool_choice.type",
                format!("unknown choice `{other}`"),
            ))
        }
    };
    Ok((translated, parallel_off))
}

/// A user turn as chat messages: its `tool_result` blocks as `tool` messages first (LiteLLM's
/// order), then one user message with the rest.
fn chat_user_messages(
    at: usize,
    content: &Content,
    messages: &mut Vec<ChatMessage>,
) -> Result<(), TranslateError> {
    let blocks = match content {
        Content::Text(text) => {
            messages.push(ChatMessage::user(text.clone()));
            return Ok(());
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    for (block_at, block) in blocks.iter().enumerate() {
        let field = || format!("messages[{at}].content[{block_at}]");
        if block.kind == "tool_result" {
            let id = block.str_field("tool_use_id").unwrap_or_default();
            let text = match block.fields.get("content") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(text)) => text.clone(),
                Some(Value::Array(inner)) => {
                    let mut text = String::new();
                    for (inner_at, item) in inner.iter().enumerate() {
                        match item.get("type").and_then(Value::as_str) {
                            Some("text") => {
                                text.push_str(
                                    item.get("text").and_then(Value::as_str).unwrap_or(""),
                                );
                            }
                            other => {
                                return Err(TranslateError::to_chat(
                                    format!("{}.content[{inner_at}].type", field()),
                                    format!(
                                    "`{}` blocks in a tool result (chat tool messages are text)",
                                    other.unwrap_or("")
                                ),
                                ))
                            }
                        }
                    }
                    text
                }
                Some(_) => {
                    return Err(TranslateError::to_chat(
                        format!("{}.content", field()),
                        "expected a string or blocks",
                    ))
                }
            };
            let mut message = ChatMessage::new("tool", text);
            message.tool_call_id = Some(id.to_owned());
            messages.push(message);
            continue;
        }
        parts.push(chat_part(block, &field)?);
    }
    if !parts.is_empty() {
        let content = match parts.as_slice() {
            [part] if part.kind == "text" && part.extra.is_empty() => {
                MessageContent::Text(part.text.clone().unwrap_or_default())
            }
            _ => MessageContent::Parts(parts),
        };
        messages.push(ChatMessage {
            content: Some(content),
            ..ChatMessage::user("")
        });
    }
    Ok(())
}

fn chat_part(
    block: &ContentBlock,
    field: &dyn Fn() -> String,
) -> Result<ContentPart, TranslateError> {
    let part = |kind: &str, text: Option<String>, extra: Map<String, Value>| ContentPart {
        kind: kind.to_owned(),
        text,
        extra,
    };
    match block.kind.as_str() {
        "text" => Ok(part("text", block.as_text().map(str::to_owned), Map::new())),
        "image" | "document" => {
            let source = block.fields.get("source");
            let kind = source
                .and_then(|source| source.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let url = match kind {
                "base64" => {
                    let media_type = source
                        .and_then(|s| s.get("media_type"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let data = source
                        .and_then(|s| s.get("data"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    format!("data:{media_type};base64,{data}")
                }
                "url" => source
                    .and_then(|s| s.get("url"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                other => {
                    return Err(TranslateError::to_chat(
                        format!("{}.source.type", field()),
                        format!("`{other}` {} sources have no chat equivalent", block.kind),
                    ))
                }
            };
            if block.kind == "image" {
                Ok(part(
                    "image_url",
                    None,
                    Map::from_iter([("image_url".to_owned(), json!({ "url": url }))]),
                ))
            } else if kind == "base64" {
                let filename = block
                    .str_field("title")
                    .unwrap_or("document.pdf")
                    .to_owned();
                Ok(part(
                    "file",
                    None,
                    Map::from_iter([(
                        "file".to_owned(),
                        json!({"file_data": url, "filename": filename}),
                    )]),
                ))
            } else {
                Err(TranslateError::to_chat(
                    format!("{}.source.type", field()),
                    "a document by URL (chat takes files inline)",
                ))
            }
        }
        other => Err(TranslateError::to_chat(
            format!("{}.type", field()),
            format!("`{other}` blocks in a user turn have no chat equivalent"),
        )),
    }
}

fn chat_assistant_message(at: usize, content: &Content) -> Result<ChatMessage, TranslateError> {
    let blocks = match content {
        Content::Text(text) => return Ok(ChatMessage::new("assistant", text.clone())),
        Content::Blocks(blocks) => blocks,
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for (block_at, block) in blocks.iter().enumerate() {
        match block.kind.as_str() {
            "text" => text.push_str(block.as_text().unwrap_or("")),
            "tool_use" => {
                let tool_use = block.as_tool_use().ok_or_else(|| {
                    TranslateError::to_chat(
                        format!("messages[{at}].content[{block_at}]"),
                        "a tool_use block without id or name",
                    )
                })?;
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
            // Earlier reasoning is Anthropic's own (signed); another model neither reads nor needs it.
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(TranslateError::to_chat(
                    format!("messages[{at}].content[{block_at}].type"),
                    format!("`{other}` blocks in an assistant turn have no chat equivalent"),
                ))
            }
        }
    }
    let mut message = ChatMessage::new("assistant", text);
    if !calls.is_empty() {
        if message.text().is_some_and(|text| text.is_empty()) {
            message.content = None;
        }
        message.tool_calls = Some(calls);
    }
    Ok(message)
}
