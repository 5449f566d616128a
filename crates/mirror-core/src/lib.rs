//! Core types of Mirror, an LLM router and OpenAI-compatible gateway with traffic mirroring.
//!
//! This crate holds what every other Mirror crate shares:
//! - OpenAI wire types ([`ChatRequest`], [`ChatResponse`], [`ChatChunk`], [`EmbeddingsRequest`],
//!   [`ResponsesRequest`], [`ErrorBody`]) and Anthropic Messages wire types ([`MessagesRequest`],
//!   [`MessagesResponse`], [`MessagesEvent`], [`AnthropicErrorBody`]), tolerant on input and
//!   forwarding unknown fields;
//! - call identity ([`CallMeta`], [`CallId`], [`TraceId`]);
//! - the silent-copy rules, all in [`ChatRequest::to_mirror`];
//! - deployment parameters ([`DeploymentParams`], [`ModelRef`], [`SilentTargets`]);
//! - [`CallRecord`], what one call produced, for sinks and reports;
//! - [`SecretString`], for keys;
//! - [`translate`]: chat completions to Anthropic Messages and back, whole and streamed.
//!
//! It deliberately does no I/O and depends on no other Mirror crate. Users normally reach these types
//! through the `mirror` facade.

mod anthropic;
mod call;
mod chat;
mod deployment;
mod embeddings;
mod error_body;
mod mirror;
mod record;
mod responses;
mod secret;
pub mod translate;

pub use anthropic::{
    anthropic_error_status, anthropic_error_type, AnthropicErrorBody, AnthropicErrorDetail,
    AnthropicMessage, ContentBlock, CountTokensResponse, MessageContent as AnthropicContent,
    MessagesAccumulator, MessagesEvent, MessagesRequest, MessagesResponse, MessagesUsage,
    SystemPrompt, ToolUse, UpstreamMessagesRequest, DEFAULT_ANTHROPIC_VERSION,
};
pub use call::{
    CallId, CallMeta, TraceId, OPT_OUT_METADATA_KEY, TAGS_METADATA_KEY, TRACE_ID_METADATA_KEY,
};
pub use chat::{
    ChatChunk, ChatMessage, ChatRequest, ChatResponse, Choice, ChunkChoice, ContentPart, Delta,
    FunctionCall, MessageContent, StreamAccumulator, StreamOptions, Tool, ToolCall,
    UpstreamChatRequest, Usage, ROUTER_ONLY_KEYS,
};
pub use deployment::{DeploymentParams, Http2, ModelInfo, ModelRef, RequestDefaults};
pub use embeddings::{
    Embedding, EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage, UpstreamEmbeddingsRequest,
};
pub use error_body::{error_chain, ErrorBody, ErrorDetail};
pub use mirror::{
    clear_silent_mark, is_silent_copy, MirrorCopy, SilentTargets, PER_CALL_METADATA_KEYS,
};
pub use record::{
    epoch_seconds, CallRecord, CallStatus, CallType, EmbeddingShape, ErrorInformation,
    RecordMetadata, RecordResponse, SpendKind,
};
pub use responses::{
    ResponsesEvent, ResponsesRequest, ResponsesResponse, ResponsesUsage, UpstreamResponsesRequest,
    RESPONSES_DEFAULT_KEYS, TERMINAL_RESPONSE_EVENTS,
};
pub use secret::{
    deserialize_env_string, resolve_env_reference, SecretString, ENV_REFERENCE_PREFIX,
};
