//! `CallRecord`: what one call produced, for sinks and reports.
//!
//! The JSON form follows LiteLLM's `StandardLoggingPayload` for the fields both have, so queries and
//! dashboards built on LiteLLM logs keep working. Pairing lives in `metadata.is_silent_experiment` and
//! `metadata.mirror_of`; the shared `trace_id` ties a primary and its shadows.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{CallId, ChatMessage, ChatResponse, TraceId};

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
    /// The response, unless a sink omits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ChatResponse>,
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

/// The kind of call, named as LiteLLM names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallType {
    /// A chat completion.
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
