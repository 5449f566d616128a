//! `CallRecord`: what one call produced, for sinks and reports.
//!
//! The JSON form follows LiteLLM's `StandardLoggingPayload` for the fields both have, so queries and
//! dashboards built on LiteLLM logs keep working. Pairing lives in `metadata.is_silent_experiment` and
//! `metadata.mirror_of`; the shared `trace_id` ties a primary and its shadows.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{CallId, ChatMessage, ChatResponse, EmbeddingsResponse, ResponsesResponse, TraceId};

/// One call, primary or silent, success or failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The provider's response id, or the call id when there is no response.
    pub id: String,
    /// Shared by a primary and its silent copies.
    pub trace_id: TraceId,
    /// Fresh for every call (LiteLLM's name for it).
    #[serde(rename = "litellm_call_id")]
    pub call_id: CallId,
    /// What kind of call this was.
    pub call_type: CallType,
    /// Whether the call was streamed.
    pub stream: bool,
    /// `success`, `failure` or `cancelled`.
    pub status: CallStatus,
    /// The provider kind (`openai`, `azure`, `mock`, ...); empty when no deployment was reached.
    pub custom_llm_provider: String,
    /// The model name sent to the provider.
    pub model: String,
    /// The deployment's id; empty when no deployment was reached.
    pub model_id: String,
    /// The model group.
    pub model_group: String,
    /// The deployment's API base, without credentials.
    pub api_base: String,
    /// Epoch seconds when the call started.
    #[serde(rename = "startTime")]
    pub start_time: f64,
    /// Epoch seconds when the call ended.
    #[serde(rename = "endTime")]
    pub end_time: f64,
    /// Epoch seconds of the first token (streams) or of the full response (otherwise).
    #[serde(rename = "completionStartTime")]
    pub completion_start_time: Option<f64>,
    /// `endTime - startTime`, in seconds.
    pub response_time: f64,
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
    /// Cost in USD, when the deployment's price is known.
    pub response_cost: f64,
    /// The request's messages, unless a sink omits them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<ChatMessage>>,
    /// The provider's answer as it came (LiteLLM's `response`), unless a sink omits it: a chat
    /// completion, a Responses object, or (only with `log_embedding_vectors`) an embeddings list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<RecordResponse>,
    /// The error message on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_str: Option<String>,
    /// The error's class and code on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_information: Option<ErrorInformation>,
    /// Pairing and attribution.
    pub metadata: RecordMetadata,
    /// Request tags.
    #[serde(default)]
    pub request_tags: Vec<String>,
    /// The request's `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_user: Option<String>,
}

/// The answer a record carries, as the provider sent it (LiteLLM's `response` holds the raw
/// provider object too). Written untagged; read back by the object's `object` field
/// (`response`, `list`, else a chat completion), so logs written before Responses and embeddings
/// answers were recorded read as before.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RecordResponse {
    /// A chat completion.
    Chat(ChatResponse),
    /// A Responses API object (`"object": "response"`).
    Responses(ResponsesResponse),
    /// An embeddings list (`"object": "list"`), with its vectors.
    Embeddings(EmbeddingsResponse),
}

impl<'de> Deserialize<'de> for RecordResponse {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = Value::deserialize(deserializer)?;
        let object = value.get("object").and_then(Value::as_str);
        let has = |key: &str| value.get(key).is_some();
        let parsed = match object {
            Some("response") => serde_json::from_value(value).map(RecordResponse::Responses),
            Some("list") => serde_json::from_value(value).map(RecordResponse::Embeddings),
            None if has("output") && !has("choices") => {
                serde_json::from_value(value).map(RecordResponse::Responses)
            }
            None if has("data") && !has("choices") => {
                serde_json::from_value(value).map(RecordResponse::Embeddings)
            }
            _ => serde_json::from_value(value).map(RecordResponse::Chat),
        };
        parsed.map_err(D::Error::custom)
    }
}

impl From<ChatResponse> for RecordResponse {
    fn from(response: ChatResponse) -> Self {
        RecordResponse::Chat(response)
    }
}

impl RecordResponse {
    /// The chat completion, when this is one.
    pub fn as_chat(&self) -> Option<&ChatResponse> {
        match self {
            RecordResponse::Chat(chat) => Some(chat),
            _ => None,
        }
    }

    /// The provider's response id (empty for an embeddings list).
    pub fn id(&self) -> &str {
        match self {
            RecordResponse::Chat(chat) => &chat.id,
            RecordResponse::Responses(response) => &response.id,
            RecordResponse::Embeddings(_) => "",
        }
    }

    /// The model that answered, as the provider names it.
    pub fn model(&self) -> &str {
        match self {
            RecordResponse::Chat(chat) => &chat.model,
            RecordResponse::Responses(response) => response.model().unwrap_or(""),
            RecordResponse::Embeddings(list) => &list.model,
        }
    }

    /// The answer's text: the first choice's (chat), the output text of every message item
    /// (Responses); `None` for embeddings or when there is none.
    pub fn text(&self) -> Option<String> {
        match self {
            RecordResponse::Chat(chat) => chat.choices.first().and_then(|c| c.message.text()),
            RecordResponse::Responses(response) => response.output_text(),
            RecordResponse::Embeddings(_) => None,
        }
    }

    /// The tool calls the model asked for, as (name, raw arguments): the first choice's
    /// `tool_calls` (chat), the `function_call` items (Responses).
    pub fn tool_calls(&self) -> Vec<(&str, &str)> {
        match self {
            RecordResponse::Chat(chat) => chat
                .choices
                .first()
                .and_then(|c| c.message.tool_calls.as_ref())
                .map(|calls| {
                    calls
                        .iter()
                        .map(|c| (c.function.name.as_str(), c.function.arguments.as_str()))
                        .collect()
                })
                .unwrap_or_default(),
            RecordResponse::Responses(response) => response.function_calls().collect(),
            RecordResponse::Embeddings(_) => Vec::new(),
        }
    }

    /// The embeddings list, when this is one.
    pub fn as_embeddings(&self) -> Option<&EmbeddingsResponse> {
        match self {
            RecordResponse::Embeddings(list) => Some(list),
            _ => None,
        }
    }
}

/// The kind of call, named as LiteLLM names it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum CallType {
    /// A chat completion.
    #[default]
    #[serde(rename = "acompletion")]
    Completion,
    /// An embeddings call.
    #[serde(rename = "aembedding")]
    Embedding,
    /// A Responses API create (`POST /v1/responses`).
    #[serde(rename = "aresponses")]
    Responses,
    /// A Responses API retrieve (`GET /v1/responses/{id}`).
    #[serde(rename = "aget_responses")]
    GetResponses,
    /// A Responses API delete (`DELETE /v1/responses/{id}`).
    #[serde(rename = "adelete_responses")]
    DeleteResponses,
    /// A Responses API cancel (`POST /v1/responses/{id}/cancel`).
    #[serde(rename = "acancel_responses")]
    CancelResponses,
    /// A Responses API input-item listing (`GET /v1/responses/{id}/input_items`).
    #[serde(rename = "alist_input_items")]
    ListInputItems,
    /// An Anthropic Messages create (`POST /v1/messages`), LiteLLM's `anthropic_messages`.
    #[serde(rename = "anthropic_messages")]
    AnthropicMessages,
    /// An Anthropic token count (`POST /v1/messages/count_tokens`).
    #[serde(rename = "count_tokens")]
    CountTokens,
}

impl CallType {
    /// A short name for people (`chat`, `embeddings`, `responses`, `messages`, `get_responses`, ...); the
    /// serialised form is LiteLLM's (`acompletion`, ...).
    pub fn label(self) -> &'static str {
        match self {
            CallType::Completion => "chat",
            CallType::Embedding => "embeddings",
            CallType::Responses => "responses",
            CallType::GetResponses => "get_responses",
            CallType::DeleteResponses => "delete_responses",
            CallType::CancelResponses => "cancel_responses",
            CallType::ListInputItems => "list_input_items",
            CallType::AnthropicMessages => "messages",
            CallType::CountTokens => "count_tokens",
        }
    }
}

/// Whether a call succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// The call returned a response.
    Success,
    /// The call failed after all retries and fallbacks.
    Failure,
    /// The caller went away before the call finished (a client disconnected, a stream was dropped
    /// unread, the request was cancelled, or a silent call was cut at shutdown). Not an error of the
    /// model: reports leave these calls out of latency and error rates.
    Cancelled,
}

/// Error details of a failed call (LiteLLM's `error_information`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInformation {
    /// HTTP status or provider code, when there is one.
    #[serde(default)]
    pub error_code: Option<String>,
    /// Our error class, such as `rate_limited` or `timeout`.
    pub error_class: String,
    /// The provider kind.
    #[serde(default)]
    pub llm_provider: String,
    /// The error message (never a secret).
    pub error_message: String,
}

/// Record metadata: pairing, attribution and what the caller attached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordMetadata {
    /// Whether this call is a silent copy.
    pub is_silent_experiment: bool,
    /// The primary's call id, on a silent copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_of: Option<CallId>,
    /// Whose spend this is: the caller's, or shadow spend that caller budgets exclude.
    pub spend: SpendKind,
    /// Provider attempts made (1 when the first attempt succeeded).
    pub attempts: u32,
    /// The groups tried after the requested one failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks_tried: Vec<String>,
    /// The caller's request metadata (without per-call keys).
    #[serde(default)]
    pub requester_metadata: Map<String, Value>,
    /// The shape of an embeddings answer (ours: LiteLLM's log has no place for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<EmbeddingShape>,
    /// Whether the answer came from the response cache (LiteLLM's `cache_hit`): no provider was
    /// called, and the call costs nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache_hit: bool,
}

/// What a record keeps of an embeddings answer: its shape, never the vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingShape {
    /// The number of vectors returned.
    pub vectors: u64,
    /// The length of the first vector (float32 values, for a `base64` answer); absent when there
    /// is none or it is neither a list nor base64 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u64>,
    /// The request's `dimensions`, when it asked for a length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_dimensions: Option<u64>,
}

/// Whose budget a call's cost counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpendKind {
    /// The caller's own call.
    Caller,
    /// A silent copy: recorded, but excluded from the caller's usage and budgets.
    Shadow,
}

/// Converts a time to epoch seconds as LiteLLM writes them.
pub fn epoch_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

impl CallRecord {
    /// Whether this record is a silent copy's.
    pub fn is_silent(&self) -> bool {
        self.metadata.is_silent_experiment
    }

    /// The time to first token, in seconds, when known.
    pub fn time_to_first_token(&self) -> Option<f64> {
        self.completion_start_time.map(|t| t - self.start_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_read_back_by_their_object_and_old_chat_logs_still_read() {
        // A chat response as logs before Responses records were written it (no `object` needed).
        let old: RecordResponse = serde_json::from_value(serde_json::json!({
            "id": "chatcmpl-1", "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]
        }))
        .unwrap();
        assert_eq!(old.as_chat().map(|c| c.id.as_str()), Some("chatcmpl-1"));
        assert_eq!(old.text().as_deref(), Some("hi"));

        let responses = serde_json::json!({
            "id": "resp_1", "object": "response", "model": "gpt-5", "status": "completed",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "message", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Par"}, {"type": "output_text", "text": "is"}]},
                {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{\"q\":1}"}
            ],
            "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
            "future_field": true
        });
        let read: RecordResponse = serde_json::from_value(responses.clone()).unwrap();
        assert!(matches!(read, RecordResponse::Responses(_)));
        assert_eq!((read.id(), read.model()), ("resp_1", "gpt-5"));
        assert_eq!(read.text().as_deref(), Some("Paris"));
        assert_eq!(read.tool_calls(), [("lookup", "{\"q\":1}")]);
        // Written back untagged, exactly as the provider sent it.
        assert_eq!(serde_json::to_value(&read).unwrap(), responses);

        let list: RecordResponse = serde_json::from_value(serde_json::json!({
            "object": "list", "model": "te-3",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 1.0]}]
        }))
        .unwrap();
        let vector = list.as_embeddings().and_then(|l| l.data[0].vector());
        assert_eq!(vector, Some(vec![0.5, 1.0]));
        assert_eq!(list.text(), None);
    }
}
