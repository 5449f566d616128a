//! Anthropic Messages API wire types (`/v1/messages`), lossless for the same format end to end.
//!
//! The gateway reads only what routing, mirroring, records and translation need (model, messages,
//! system, stream, usage, stop reason); every field it does not name is kept in a flattened `extra`
//! map, and content blocks are kept as their `type` plus every other field, so thinking blocks,
//! images, documents, cache control and block types Anthropic adds tomorrow pass through unchanged.
//!
//! Metadata: `metadata` is Anthropic's (`user_id`) and is forwarded. The gateway's own metadata
//! (tags, `trace_id`, `disable_mirroring`, the silent-copy markers) goes in `litellm_metadata`, as
//! LiteLLM's proxy uses it on `/v1/messages`; it never reaches a provider.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::mirror::{MirrorCopy, PER_CALL_METADATA_KEYS};
use crate::{CallId, CallMeta};

mod stream;

pub use stream::{MessagesAccumulator, MessagesEvent};

/// The `anthropic-version` header Mirror sends unless a deployment names another (the SDKs' only
/// value).
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// A Messages API create request (`POST /v1/messages`), as a client sends it.
///
/// `count_tokens` takes the same body without `max_tokens` and `stream`, so it uses this type too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    /// The model group the caller asks for.
    pub model: String,
    /// The conversation: `user` and `assistant` turns.
    pub messages: Vec<AnthropicMessage>,
    /// The system prompt: a string or a list of `text` blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemPrompt>,
    /// The most tokens to generate (required by Anthropic on create, absent on `count_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Whether the caller wants server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Tools (`{name, description, input_schema}` or server tools), kept as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
    /// `{type: auto | any | tool | none, name?, disable_parallel_tool_use?}`, kept as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Anthropic's metadata (`user_id`): forwarded to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Sampling temperature (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    /// Extended thinking: `{type: enabled, budget_tokens}`, `{type: disabled}`, `{type: adaptive}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    /// The gateway's metadata (LiteLLM's name on `/v1/messages`); never forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub litellm_metadata: Option<Map<String, Value>>,
    /// The client's `anthropic-beta` header (comma-separated), when it sent one. Not a body field:
    /// the provider sends it as a header, merged with the deployment's; a silent copy keeps it.
    #[serde(skip)]
    pub beta: Option<String>,
    /// Every other field (`service_tier`, `container`, `output_config`, top-level
    /// `cache_control`, ...), forwarded verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One turn of a [`MessagesRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// A string, or a list of content blocks.
    pub content: MessageContent,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AnthropicMessage {
    /// A turn with text content.
    pub fn text(role: impl Into<String>, text: impl Into<String>) -> Self {
        AnthropicMessage {
            role: role.into(),
            content: MessageContent::Text(text.into()),
            extra: Map::new(),
        }
    }
}

/// The content of a turn: a string, or a list of blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text, as a string.
    Text(String),
    /// Content blocks (`text`, `image`, `tool_use`, `tool_result`, `thinking`, ...).
    Blocks(Vec<ContentBlock>),
}

impl MessageContent {
    /// The text of the content: the string, or its `text` blocks joined.
    pub fn joined_text(&self) -> String {
        match self {
            MessageContent::Text(text) => text.clone(),
            MessageContent::Blocks(blocks) => joined_text(blocks),
        }
    }
}

/// The system prompt: a string, or a list of `text` blocks (which may carry `cache_control`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SystemPrompt {
    /// A string.
    Text(String),
    /// `text` blocks.
    Blocks(Vec<ContentBlock>),
}

impl SystemPrompt {
    /// The text of the prompt: the string, or its `text` blocks joined.
    pub fn joined_text(&self) -> String {
        match self {
            SystemPrompt::Text(text) => text.clone(),
            SystemPrompt::Blocks(blocks) => joined_text(blocks),
        }
    }
}

fn joined_text(blocks: &[ContentBlock]) -> String {
    blocks.iter().filter_map(ContentBlock::as_text).collect()
}

/// One content block, of a request or a response: its `type` and every other field as sent.
///
/// Kept untyped so that any block (thinking signatures, images, documents, server-tool blocks,
/// `cache_control`, types added later) survives a round trip; the accessors read the common ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentBlock {
    /// `text`, `image`, `document`, `tool_use`, `tool_result`, `thinking`, `redacted_thinking`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Every other field of the block.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl ContentBlock {
    /// A block of `kind` with `fields`.
    pub fn new(kind: impl Into<String>, fields: Map<String, Value>) -> Self {
        ContentBlock {
            kind: kind.into(),
            fields,
        }
    }

    /// A `text` block.
    pub fn text(text: impl Into<String>) -> Self {
        let mut fields = Map::new();
        fields.insert("text".to_owned(), Value::String(text.into()));
        ContentBlock::new("text", fields)
    }

    /// A `tool_use` block: the model calls `name` with `input` (a JSON object).
    pub fn tool_use(id: impl Into<String>, name: impl Into<String>, input: Value) -> Self {
        let mut fields = Map::new();
        fields.insert("id".to_owned(), Value::String(id.into()));
        fields.insert("name".to_owned(), Value::String(name.into()));
        fields.insert("input".to_owned(), input);
        ContentBlock::new("tool_use", fields)
    }

    /// A string field of the block.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    /// The text of a `text` block.
    pub fn as_text(&self) -> Option<&str> {
        (self.kind == "text")
            .then(|| self.str_field("text"))
            .flatten()
    }

    /// A `tool_use` block's id, name and input.
    pub fn as_tool_use(&self) -> Option<ToolUse<'_>> {
        if self.kind != "tool_use" {
            return None;
        }
        Some(ToolUse {
            id: self.str_field("id")?,
            name: self.str_field("name")?,
            input: self.fields.get("input").unwrap_or(&Value::Null),
        })
    }

    /// The reasoning text of a `thinking` block.
    pub fn as_thinking(&self) -> Option<&str> {
        (self.kind == "thinking")
            .then(|| self.str_field("thinking"))
            .flatten()
    }
}

/// A borrowed view of a `tool_use` block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToolUse<'a> {
    /// `toolu_...`.
    pub id: &'a str,
    /// The tool's name.
    pub name: &'a str,
    /// The arguments, a JSON object.
    pub input: &'a Value,
}

impl MessagesRequest {
    /// A minimal request: one user turn of text to a model group.
    pub fn new(model: impl Into<String>, max_tokens: u64, text: impl Into<String>) -> Self {
        MessagesRequest {
            model: model.into(),
            messages: vec![AnthropicMessage::text("user", text)],
            system: None,
            max_tokens: Some(max_tokens),
            stream: None,
            tools: None,
            tool_choice: None,
            metadata: None,
            stop_sequences: None,
            temperature: None,
            top_p: None,
            top_k: None,
            thinking: None,
            litellm_metadata: None,
            beta: None,
            extra: Map::new(),
        }
    }

    /// Whether the caller asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// The metadata the gateway reads (`trace_id`, `tags`, `disable_mirroring`): `litellm_metadata`,
    /// else Anthropic's `metadata`.
    pub fn gateway_metadata(&self) -> Option<&Map<String, Value>> {
        self.litellm_metadata.as_ref().or(self.metadata.as_ref())
    }

    /// The end user (`metadata.user_id`); also the default mirroring sample key.
    pub fn user_id(&self) -> Option<&str> {
        self.metadata
            .as_ref()
            .and_then(|metadata| metadata.get("user_id"))
            .and_then(Value::as_str)
    }

    /// The `type` of every tool of the request (`custom` when a tool names none).
    pub fn tool_types(&self) -> impl Iterator<Item = &str> {
        self.tools
            .iter()
            .flatten()
            .map(|tool| tool.get("type").and_then(Value::as_str).unwrap_or("custom"))
    }

    /// Whether the request names remote MCP servers (`mcp_servers`, the MCP connector beta), which
    /// the upstream calls itself (and which may write): such requests are not mirrored unless a
    /// deployment allows it.
    pub fn has_mcp_tools(&self) -> bool {
        self.extra
            .get("mcp_servers")
            .and_then(Value::as_array)
            .is_some_and(|servers| !servers.is_empty())
            || self.tool_types().any(|kind| kind.starts_with("mcp"))
    }

    /// The body to send to a provider for a create: `model` replaced by the provider's model name,
    /// `stream` as the provider call needs it, and the gateway's fields (`litellm_metadata`,
    /// router-only keys such as `silent_model`) left out. Everything else goes as the caller sent it.
    pub fn upstream<'a>(&'a self, model: &'a str, stream: bool) -> UpstreamMessagesRequest<'a> {
        UpstreamMessagesRequest {
            request: self,
            model,
            stream,
            count_tokens: false,
        }
    }

    /// The body to send to `POST /v1/messages/count_tokens`: as [`Self::upstream`], without the
    /// fields count_tokens refuses (`max_tokens`, `stream`, `metadata`, `stop_sequences`, and the
    /// sampling parameters).
    pub fn upstream_count_tokens<'a>(&'a self, model: &'a str) -> UpstreamMessagesRequest<'a> {
        UpstreamMessagesRequest {
            request: self,
            model,
            stream: false,
            count_tokens: true,
        }
    }

    /// A deep copy of this request for the silent model group `target`: the Messages copy point,
    /// with the rules of [`crate::ChatRequest::to_mirror`].
    ///
    /// - the copy shares nothing with `self`; `self` is not touched;
    /// - `model` is the silent group; `stream` and the client's `anthropic-beta` are kept;
    /// - `litellm_metadata` keeps the caller's keys except [`PER_CALL_METADATA_KEYS`] and gains
    ///   `is_silent_experiment: true`, `model_group: <target>` and `mirror_of: <primary call id>`;
    ///   Anthropic's `metadata` is the caller's and goes to the silent upstream unchanged;
    /// - the identity gets a fresh call id, the primary's trace id and `mirror_of`.
    pub fn to_mirror(&self, primary: &CallMeta, target: &str) -> MirrorCopy<MessagesRequest> {
        let mut request = self.clone();
        request.model = target.to_owned();
        let metadata = request.litellm_metadata.get_or_insert_with(Map::new);
        metadata.retain(|key, _| !PER_CALL_METADATA_KEYS.contains(&key.as_str()));
        metadata.insert("is_silent_experiment".to_owned(), Value::Bool(true));
        metadata.insert("model_group".to_owned(), Value::String(target.to_owned()));
        metadata.insert(
            "mirror_of".to_owned(),
            Value::String(primary.call_id.to_string()),
        );
        let meta = CallMeta {
            call_id: CallId::new(),
            trace_id: primary.trace_id.clone(),
            model_group: target.to_owned(),
            is_silent_experiment: true,
            mirror_of: Some(primary.call_id),
            tags: primary.tags.clone(),
            mirror_opt_out: false,
        };
        MirrorCopy { request, meta }
    }
}

/// A borrowed view of a [`MessagesRequest`] that serializes as the body a provider receives.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamMessagesRequest<'a> {
    request: &'a MessagesRequest,
    model: &'a str,
    stream: bool,
    count_tokens: bool,
}

impl Serialize for UpstreamMessagesRequest<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;

        let request = self.request;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        map.serialize_entry("messages", &request.messages)?;
        if self.stream {
            map.serialize_entry("stream", &true)?;
        }
        macro_rules! optional {
            ($($field:ident),*) => {$(
                if let Some(value) = &request.$field {
                    map.serialize_entry(stringify!($field), value)?;
                }
            )*};
        }
        optional!(system, tools, tool_choice, thinking);
        if !self.count_tokens {
            optional!(
                max_tokens,
                metadata,
                stop_sequences,
                temperature,
                top_p,
                top_k
            );
        }
        for (key, value) in &request.extra {
            if !crate::chat::ROUTER_ONLY_KEYS.contains(&key.as_str()) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// A Messages API response (`type: message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    /// `msg_...`.
    #[serde(default)]
    pub id: String,
    /// `message`.
    #[serde(rename = "type", default = "message_type")]
    pub kind: String,
    /// `assistant`.
    #[serde(default = "assistant_role")]
    pub role: String,
    /// The answer's blocks (`text`, `tool_use`, `thinking`, ...).
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// `end_turn`, `max_tokens`, `stop_sequence`, `tool_use`, `pause_turn`, `refusal`,
    /// `model_context_window_exceeded`; null only in `message_start`.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The stop sequence that ended the answer, if one did.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Token usage.
    #[serde(default)]
    pub usage: MessagesUsage,
    /// Every other field (`container`, ...), as the upstream sent it.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn message_type() -> String {
    "message".to_owned()
}

fn assistant_role() -> String {
    "assistant".to_owned()
}

impl MessagesResponse {
    /// An answer of one text block (tests, the mock provider, translation).
    pub fn text(
        id: impl Into<String>,
        model: impl Into<String>,
        text: impl Into<String>,
        usage: MessagesUsage,
    ) -> Self {
        MessagesResponse {
            id: id.into(),
            kind: message_type(),
            role: assistant_role(),
            content: vec![ContentBlock::text(text)],
            model: model.into(),
            stop_reason: Some("end_turn".to_owned()),
            stop_sequence: None,
            usage,
            extra: Map::new(),
        }
    }

    /// The answer's text: its `text` blocks joined.
    pub fn joined_text(&self) -> String {
        joined_text(&self.content)
    }

    /// The answer's `tool_use` blocks.
    pub fn tool_uses(&self) -> impl Iterator<Item = ToolUse<'_>> {
        self.content.iter().filter_map(ContentBlock::as_tool_use)
    }
}

/// Usage of a Messages call. `input_tokens` excludes cached tokens: the whole input is
/// [`MessagesUsage::prompt_tokens`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessagesUsage {
    /// Input tokens neither written to nor read from the prompt cache.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens (cumulative in a stream's `message_delta`).
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Other fields (`cache_creation`, `server_tool_use`, `service_tier`), kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MessagesUsage {
    /// Usage with input and output tokens only.
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        MessagesUsage {
            input_tokens,
            output_tokens,
            ..MessagesUsage::default()
        }
    }

    /// Input tokens written to the prompt cache (0 when absent).
    pub fn cache_creation(&self) -> u64 {
        self.cache_creation_input_tokens.unwrap_or(0)
    }

    /// Input tokens read from the prompt cache (0 when absent).
    pub fn cache_read(&self) -> u64 {
        self.cache_read_input_tokens.unwrap_or(0)
    }

    /// The whole input, as OpenAI's `prompt_tokens` counts it: uncached, cache-written and
    /// cache-read tokens.
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens + self.cache_creation() + self.cache_read()
    }

    /// The whole input plus the output.
    pub fn total(&self) -> u64 {
        self.prompt_tokens() + self.output_tokens
    }

    /// Takes the counts a stream's `message_delta` usage carries (cumulative; only the fields it
    /// sends replace ours, so `message_start`'s input counts stay when the delta has none).
    pub fn merge(&mut self, delta: &Map<String, Value>) {
        let count = |key: &str| delta.get(key).and_then(Value::as_u64);
        if let Some(tokens) = count("input_tokens") {
            self.input_tokens = tokens;
        }
        if let Some(tokens) = count("output_tokens") {
            self.output_tokens = tokens;
        }
        if let Some(tokens) = count("cache_creation_input_tokens") {
            self.cache_creation_input_tokens = Some(tokens);
        }
        if let Some(tokens) = count("cache_read_input_tokens") {
            self.cache_read_input_tokens = Some(tokens);
        }
        for (key, value) in delta {
            let known = matches!(
                key.as_str(),
                "input_tokens"
                    | "output_tokens"
                    | "cache_creation_input_tokens"
                    | "cache_read_input_tokens"
            );
            if !known && !value.is_null() {
                self.extra.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The answer of `POST /v1/messages/count_tokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CountTokensResponse {
    /// The tokens the request's input would use.
    #[serde(default)]
    pub input_tokens: u64,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Anthropic's error body: `{"type":"error","error":{"type","message"},"request_id"}`, as the API
/// sends it (in a response or an `error` stream event) and as the gateway answers on its Messages
/// endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicErrorBody {
    /// Always `error`.
    #[serde(rename = "type", default = "error_type")]
    pub kind: String,
    /// The error.
    pub error: AnthropicErrorDetail,
    /// The upstream's request id, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

fn error_type() -> String {
    "error".to_owned()
}

/// The inside of an [`AnthropicErrorBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicErrorDetail {
    /// `invalid_request_error`, `rate_limit_error`, `overloaded_error`, ...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// A human-readable message.
    #[serde(default)]
    pub message: String,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AnthropicErrorBody {
    /// An error body of `kind` with `message`.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        AnthropicErrorBody {
            kind: error_type(),
            error: AnthropicErrorDetail {
                kind: kind.into(),
                message: message.into(),
                extra: Map::new(),
            },
            request_id: None,
        }
    }

    /// An error body for an HTTP status, with Anthropic's type for it.
    pub fn for_status(status: u16, message: impl Into<String>) -> Self {
        AnthropicErrorBody::new(anthropic_error_type(status), message)
    }
}

/// Anthropic's `error.type` for an HTTP status (400 `invalid_request_error` for other 4xx, 500
/// `api_error` for other 5xx).
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// The HTTP status Anthropic answers with for an `error.type` (what an `error` event inside a
/// stream would have been as a response); 500 for types it does not list.
pub fn anthropic_error_status(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

#[cfg(test)]
mod tests;
