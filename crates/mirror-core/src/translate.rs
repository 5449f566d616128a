//! Translation between OpenAI chat completions and Anthropic Messages, both ways, whole and
//! streamed: pure functions and state machines, no I/O.
//!
//! The rules follow LiteLLM 1.106.2 (`anthropic/chat/transformation.py` for chat to Messages, the
//! `/v1/messages` pass-through adapter for Messages to chat) where it keeps the answer's meaning;
//! where a field has no counterpart and dropping it would change the answer, the translation
//! fails with a [`TranslateError`] naming the field (the gateway answers 400). The list is in
//! `docs/mirroring.md` ("Across formats").

use serde_json::{Map, Value};

mod response;
mod stream;
mod to_chat;
mod to_messages;

pub use response::{chat_response_to_messages, messages_response_to_chat};
pub use stream::{ChatToMessagesStream, MessagesToChatStream};
pub use to_chat::messages_to_chat;
pub use to_messages::{chat_to_messages, DEFAULT_MAX_TOKENS};

/// A request or answer that cannot be translated without changing what it means.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` cannot be translated to {target}: {reason}")]
pub struct TranslateError {
    /// The field, as a path in the source body (`messages[2].content[0].type`, `logprobs`).
    pub field: String,
    /// The format translated to: `Anthropic Messages` or `OpenAI chat completions`.
    pub target: &'static str,
    /// Why.
    pub reason: String,
}

pub(crate) const TO_MESSAGES: &str = "Anthropic Messages";
pub(crate) const TO_CHAT: &str = "OpenAI chat completions";

impl TranslateError {
    pub(crate) fn to_messages(field: impl Into<String>, reason: impl Into<String>) -> Self {
        TranslateError {
            field: field.into(),
            target: TO_MESSAGES,
            reason: reason.into(),
        }
    }

    pub(crate) fn to_chat(field: impl Into<String>, reason: impl Into<String>) -> Self {
        TranslateError {
            field: field.into(),
            target: TO_CHAT,
            reason: reason.into(),
        }
    }
}

/// Anthropic's `stop_reason` as OpenAI's `finish_reason` (LiteLLM's `map_finish_reason`; reasons it
/// does not map, such as `pause_turn` and `model_context_window_exceeded`, become `stop`).
pub fn finish_reason_of(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// OpenAI's `finish_reason` as Anthropic's `stop_reason` (LiteLLM's adapter; anything else is
/// `end_turn`).
pub fn stop_reason_of(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Chat usage from Messages usage: the prompt counts cached tokens too, and the cache counts are
/// kept (`prompt_tokens_details.cached_tokens` and at the top level, as LiteLLM reports them).
pub fn chat_usage_of(usage: &crate::MessagesUsage) -> crate::Usage {
    let prompt_tokens = usage.prompt_tokens();
    let mut extra = Map::new();
    if let Some(read) = usage.cache_read_input_tokens {
        extra.insert(
            "prompt_tokens_details".to_owned(),
            Value::Object(Map::from_iter([(
                "cached_tokens".to_owned(),
                Value::from(read),
            )])),
        );
        extra.insert("cache_read_input_tokens".to_owned(), Value::from(read));
    }
    if let Some(created) = usage.cache_creation_input_tokens {
        extra.insert(
            "cache_creation_input_tokens".to_owned(),
            Value::from(created),
        );
    }
    crate::Usage {
        prompt_tokens,
        completion_tokens: usage.output_tokens,
        total_tokens: prompt_tokens + usage.output_tokens,
        extra,
    }
}

/// Messages usage from chat usage: `input_tokens` leaves out cached tokens, as Anthropic counts
/// them (`max(prompt - cache read - cache creation, 0)`).
pub fn messages_usage_of(usage: &crate::Usage) -> crate::MessagesUsage {
    let count = |value: Option<&Value>| value.and_then(Value::as_u64);
    let cache_read = count(usage.extra.get("cache_read_input_tokens")).or_else(|| {
        count(
            usage
                .extra
                .get("prompt_tokens_details")
                .and_then(|details| details.get("cached_tokens")),
        )
    });
    let cache_creation = count(usage.extra.get("cache_creation_input_tokens"));
    crate::MessagesUsage {
        input_tokens: usage
            .prompt_tokens
            .saturating_sub(cache_read.unwrap_or(0))
            .saturating_sub(cache_creation.unwrap_or(0)),
        output_tokens: usage.completion_tokens,
        cache_creation_input_tokens: cache_creation,
        cache_read_input_tokens: cache_read.filter(|tokens| *tokens > 0),
        extra: Map::new(),
    }
}

#[cfg(test)]
mod tests;
