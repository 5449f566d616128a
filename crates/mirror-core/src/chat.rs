//! OpenAI chat-completion wire types, tolerant on input.
//!
//! Every struct keeps fields it does not know in a flattened `extra` map, so a gateway forwards
//! parameters it has never heard of unchanged.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// A chat-completion request as a client sends it.
///
/// `metadata` is the gateway's own metadata (LiteLLM's convention: tags, `trace_id`, user fields). It
/// is logged with the call but never forwarded to a provider; see [`ChatRequest::upstream`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model group the caller asks for.
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Whether the caller wants server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options, such as `include_usage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// How many choices to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Stop sequences: a string or a list of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Value>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Legacy output-token limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Output-token limit including reasoning tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// How the model picks a tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// The requested output format (`json_object`, `json_schema`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    /// The end user; also the default mirroring sample key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Gateway metadata; never forwarded to a provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Every other field, forwarded verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    /// A minimal request: one user message to a model group.
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        ChatRequest {
            model: model.into(),
            messages,
            stream: None,
            stream_options: None,
            n: None,
            stop: None,
            temperature: None,
            max_tokens: None,
            max_completion_tokens: None,
            tools: None,
            tool_choice: None,
            response_format: None,
            user: None,
            metadata: None,
            extra: Map::new(),
        }
    }

    /// Whether the caller asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// Whether the caller asked for the usage chunk at the end of a stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|options| options.include_usage)
            .unwrap_or(false)
    }

    /// The body to send to a provider: `model` replaced by the provider's model name, `stream` set as the
    /// provider call needs it, and the gateway's own fields (`metadata`, router-only keys such as
    /// `silent_model`) left out.
    ///
    /// This borrows the request; nothing is copied until it is serialized.
    pub fn upstream<'a>(&'a self, model: &'a str, stream: bool) -> UpstreamChatRequest<'a> {
        UpstreamChatRequest {
            request: self,
            model,
            stream,
            defaults: None,
        }
    }

    /// Whether the request itself sets `key` (a named field or one of `extra`).
    fn sets(&self, key: &str) -> bool {
        match key {
            "model" | "messages" | "stream" | "stream_options" => true,
            "n" => self.n.is_some(),
            "stop" => self.stop.is_some(),
            "temperature" => self.temperature.is_some(),
            "max_tokens" => self.max_tokens.is_some(),
            "max_completion_tokens" => self.max_completion_tokens.is_some(),
            "tools" => self.tools.is_some(),
            "tool_choice" => self.tool_choice.is_some(),
            "response_format" => self.response_format.is_some(),
            "user" => self.user.is_some(),
            other => self.extra.contains_key(other),
        }
    }
}

/// Keys that belong to the router and never reach a provider, even if a client puts them in a body.
///
/// This mirrors LiteLLM's `ROUTER_ONLY_CALL_KWARGS` and closes its hole where `silent_model` was
/// forwarded to the provider on some paths.
pub const ROUTER_ONLY_KEYS: &[&str] = &[
    "silent_model",
    "silent_sample_rate",
    "silent_mirror_mcp_tools",
    "metadata",
    "litellm_metadata",
    "litellm_call_id",
    "litellm_trace_id",
    "mock_response",
    "num_retries",
    "fallbacks",
    "context_window_fallbacks",
    "content_policy_fallbacks",
    "model_group",
    "is_silent_experiment",
    "mirror_of",
];

/// A borrowed view of a [`ChatRequest`] that serializes as the body a provider receives.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamChatRequest<'a> {
    request: &'a ChatRequest,
    model: &'a str,
    stream: bool,
    defaults: Option<&'a crate::RequestDefaults>,
}

impl<'a> UpstreamChatRequest<'a> {
    /// Adds a deployment's request defaults (`litellm_params` such as `temperature`, `extra_body`)
    /// under the request's own values: a key the request sets is never overridden, as in LiteLLM.
    #[must_use]
    pub fn with_defaults(mut self, defaults: &'a crate::RequestDefaults) -> Self {
        self.defaults = Some(defaults);
        self
    }
}

/// Writes the defaults the request does not set itself. `extra_body` entries are defaults at the
/// top level of the body (the OpenAI SDK merges `extra_body` there); `extra_headers` are headers,
/// sent by the provider; a request's `reasoning_effort` drops the default `thinking` (LiteLLM's
/// `_deployment_params_with_request_reasoning_override`).
pub(crate) fn serialize_defaults<M: serde::ser::SerializeMap>(
    map: &mut M,
    defaults: &crate::RequestDefaults,
    sets: impl Fn(&str) -> bool,
) -> Result<(), M::Error> {
    let skip = |key: &str| {
        key == "extra_headers"
            || key == "extra_body"
            || sets(key)
            || ROUTER_ONLY_KEYS.contains(&key)
            || (key == "thinking" && sets("reasoning_effort"))
    };
    for (key, value) in &defaults.0 {
        if !skip(key) {
            map.serialize_entry(key, value)?;
        }
    }
    if let Some(body) = defaults.0.get("extra_body").and_then(Value::as_object) {
        for (key, value) in body {
            if !skip(key) && !defaults.0.contains_key(key) {
                map.serialize_entry(key, value)?;
            }
        }
    }
    Ok(())
}

impl Serialize for UpstreamChatRequest<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;

        let request = self.request;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        map.serialize_entry("messages", &request.messages)?;
        if self.stream {
            map.serialize_entry("stream", &true)?;
            if let Some(options) = &request.stream_options {
                map.serialize_entry("stream_options", options)?;
            }
        }
        macro_rules! optional {
            ($($field:ident),*) => {$(
                if let Some(value) = &request.$field {
                    map.serialize_entry(stringify!($field), value)?;
                }
            )*};
        }
        optional!(
            n,
            stop,
            temperature,
            max_tokens,
            max_completion_tokens,
            tools,
            tool_choice,
            response_format,
            user
        );
        for (key, value) in &request.extra {
            if !ROUTER_ONLY_KEYS.contains(&key.as_str()) {
                map.serialize_entry(key, value)?;
            }
        }
        if let Some(defaults) = self.defaults {
            serialize_defaults(&mut map, defaults, |key| request.sets(key))?;
        }
        map.end()
    }
}

/// `stream_options` of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Ask for a final chunk carrying the usage of the whole stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Other options, forwarded verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One message of a conversation, in a request or a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, or a list of content parts; absent on some assistant messages with tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    /// Optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls made by an assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Other fields (`refusal`, `audio`, Azure's annotations, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatMessage {
    /// A message with plain text content.
    pub fn new(role: impl Into<String>, text: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: Some(MessageContent::Text(text.into())),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            extra: Map::new(),
        }
    }

    /// A user message with plain text content.
    pub fn user(text: impl Into<String>) -> Self {
        ChatMessage::new("user", text)
    }

    /// The message's text: the string content, or its text parts joined.
    pub fn text(&self) -> Option<String> {
        match self.content.as_ref()? {
            MessageContent::Text(text) => Some(text.clone()),
            MessageContent::Parts(parts) => {
                let texts: Vec<&str> = parts.iter().filter_map(|p| p.text.as_deref()).collect();
                (!texts.is_empty()).then(|| texts.join(""))
            }
        }
    }
}

/// Message content: a string, or a list of parts (text, images, audio, files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Typed parts.
    Parts(Vec<ContentPart>),
}

/// One part of a multi-part message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    /// `text`, `image_url`, `input_audio`, `file`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The payload of other part kinds.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool definition in a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Usually `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function's name, description and JSON-schema parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<Value>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool call made by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call id that a tool message answers.
    #[serde(default)]
    pub id: String,
    /// Usually `function`.
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    /// The function called.
    pub function: FunctionCall,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn function_kind() -> String {
    "function".to_owned()
}

/// The function part of a tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The function's name.
    #[serde(default)]
    pub name: String,
    /// The arguments, as the JSON text the model produced.
    #[serde(default)]
    pub arguments: String,
}

/// A complete (non-streaming) chat-completion response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The provider's response id (`chatcmpl-...`).
    #[serde(default)]
    pub id: String,
    /// `chat.completion`.
    #[serde(default = "chat_completion_object")]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered, as the provider names it.
    #[serde(default)]
    pub model: String,
    /// The choices; `null` is read as empty.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub choices: Vec<Choice>,
    /// Token usage; some OpenAI-compatible servers omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Other fields (`system_fingerprint`, Azure's `prompt_filter_results`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn chat_completion_object() -> String {
    "chat.completion".to_owned()
}

impl ChatResponse {
    /// The first choice's message text, if any.
    pub fn text(&self) -> Option<String> {
        self.choices.first()?.message.text()
    }
}

/// One choice of a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The choice's index.
    #[serde(default)]
    pub index: u32,
    /// The assistant message.
    pub message: ChatMessage,
    /// `stop`, `length`, `tool_calls`, `content_filter`, ...
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Other fields (`logprobs`, Azure's `content_filter_results`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Token usage of a call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens generated.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Their sum, as the provider reports it.
    #[serde(default)]
    pub total_tokens: u64,
    /// Details (`prompt_tokens_details`, `completion_tokens_details`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One chunk of a streamed response.
///
/// Azure sends a first chunk with empty `choices` and empty `id`, and filter-only chunks with no
/// `delta`; the last chunk may carry only `usage`. Nothing here assumes a first choice exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    /// The response id; empty on Azure's filter-only chunks.
    #[serde(default)]
    pub id: String,
    /// `chat.completion.chunk` (empty on some Azure chunks).
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// The choices; `null` or absent is read as empty.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub choices: Vec<ChunkChoice>,
    /// The usage chunk's usage (`null` on other chunks).
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Other fields, relayed verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatChunk {
    /// Whether this chunk carries generated content (text or tool-call deltas).
    pub fn has_content(&self) -> bool {
        self.choices.iter().any(|choice| {
            choice.delta.as_ref().is_some_and(|delta| {
                delta
                    .content
                    .as_deref()
                    .is_some_and(|text| !text.is_empty())
                    || delta.tool_calls.is_some()
            })
        })
    }
}

/// One choice of a stream chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// The choice's index.
    #[serde(default)]
    pub index: u32,
    /// What this chunk adds; absent on Azure's filter-only chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta>,
    /// Set on the choice's last chunk.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Other fields, relayed verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The incremental content of a chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Set on the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Text added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool-call fragments, keyed by `index`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
    /// Other fields, relayed verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

pub(crate) fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Rebuilds a complete response from the chunks of a stream, for logging and comparison.
///
/// Text and tool-call fragments are concatenated per choice; the usage chunk's usage is kept.
///
/// Bounded, whatever the stream says: at most [`StreamAccumulator::MAX_CHOICES`] choices and
/// [`StreamAccumulator::MAX_TOOL_CALLS`] tool calls per choice are kept, and at most
/// `max_bytes` of text and arguments in all ([`StreamAccumulator::DEFAULT_MAX_BYTES`] by default).
/// What does not fit is left out, and the finished response says so with
/// `"mirror_truncated": true`.
#[derive(Debug)]
pub struct StreamAccumulator {
    id: String,
    model: String,
    created: u64,
    choices: Vec<AccumulatedChoice>,
    usage: Option<Usage>,
    /// Text and argument bytes kept so far.
    bytes: usize,
    max_bytes: usize,
    truncated: bool,
}

impl Default for StreamAccumulator {
    fn default() -> Self {
        StreamAccumulator::with_max_bytes(StreamAccumulator::DEFAULT_MAX_BYTES)
    }
}

#[derive(Debug, Default)]
struct AccumulatedChoice {
    role: Option<String>,
    content: String,
    tool_calls: Vec<ToolCall>,
    finish_reason: Option<String>,
}

impl StreamAccumulator {
    /// The most choices kept: OpenAI's largest `n`.
    pub const MAX_CHOICES: usize = 128;
    /// The most tool calls kept per choice.
    pub const MAX_TOOL_CALLS: usize = 128;
    /// The most text and argument bytes kept by default: more than any real completion holds.
    pub const DEFAULT_MAX_BYTES: usize = 32 * 1024 * 1024;

    /// An accumulator that keeps at most `max_bytes` of text and arguments.
    pub fn with_max_bytes(max_bytes: usize) -> Self {
        StreamAccumulator {
            id: String::new(),
            model: String::new(),
            created: 0,
            choices: Vec::new(),
            usage: None,
            bytes: 0,
            max_bytes,
            truncated: false,
        }
    }

    /// Whether something was left out to stay within the bounds.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// Adds one chunk.
    pub fn push(&mut self, chunk: &ChatChunk) {
        if self.id.is_empty() && !chunk.id.is_empty() {
            self.id.clone_from(&chunk.id);
        }
        if self.model.is_empty() && !chunk.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        if self.created == 0 {
            self.created = chunk.created;
        }
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.clone());
        }
        for choice in &chunk.choices {
            let index = choice.index as usize;
            if index >= Self::MAX_CHOICES {
                // An index is the stream's word; growing to it unchecked would let one chunk
                // allocate billions of slots.
                self.truncated = true;
                continue;
            }
            if self.choices.len() <= index {
                self.choices
                    .resize_with(index + 1, AccumulatedChoice::default);
            }
            let slot = &mut self.choices[index];
            if let Some(reason) = &choice.finish_reason {
                slot.finish_reason = Some(reason.clone());
            }
            let Some(delta) = &choice.delta else { continue };
            if let Some(role) = &delta.role {
                slot.role = Some(role.clone());
            }
            let mut budget = Budget {
                used: &mut self.bytes,
                max: self.max_bytes,
                truncated: &mut self.truncated,
            };
            if let Some(text) = &delta.content {
                if budget.take(text.len()) {
                    slot.content.push_str(text);
                }
            }
            for fragment in delta.tool_calls.iter().flatten() {
                merge_tool_call_fragment(&mut slot.tool_calls, fragment, &mut budget);
            }
        }
    }

    /// The usage seen so far (from the usage chunk).
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// The response the stream amounts to.
    pub fn finish(self) -> ChatResponse {
        let choices = self
            .choices
            .into_iter()
            .enumerate()
            .map(|(index, choice)| {
                let mut message =
                    ChatMessage::new(choice.role.unwrap_or_else(|| "assistant".to_owned()), "");
                message.content = Some(MessageContent::Text(choice.content));
                if !choice.tool_calls.is_empty() {
                    message.tool_calls = Some(choice.tool_calls);
                }
                Choice {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    message,
                    finish_reason: choice.finish_reason,
                    extra: Map::new(),
                }
            })
            .collect();
        ChatResponse {
            id: self.id,
            object: chat_completion_object(),
            created: self.created,
            model: self.model,
            choices,
            usage: self.usage,
            extra: if self.truncated {
                Map::from_iter([("mirror_truncated".to_owned(), Value::Bool(true))])
            } else {
                Map::new()
            },
        }
    }
}

/// The text bytes an accumulator may still keep.
struct Budget<'a> {
    used: &'a mut usize,
    max: usize,
    truncated: &'a mut bool,
}

impl Budget<'_> {
    /// Takes `len` bytes if they fit; otherwise marks the accumulator truncated.
    fn take(&mut self, len: usize) -> bool {
        if self.max - *self.used >= len {
            *self.used += len;
            true
        } else {
            *self.truncated = true;
            false
        }
    }
}

fn merge_tool_call_fragment(calls: &mut Vec<ToolCall>, fragment: &Value, budget: &mut Budget<'_>) {
    let index = fragment
        .get("index")
        .and_then(Value::as_u64)
        .and_then(|i| usize::try_from(i).ok())
        .unwrap_or(calls.len().saturating_sub(1));
    if index >= StreamAccumulator::MAX_TOOL_CALLS {
        *budget.truncated = true;
        return;
    }
    if calls.len() <= index {
        calls.resize_with(index + 1, || ToolCall {
            id: String::new(),
            kind: function_kind(),
            function: FunctionCall {
                name: String::new(),
                arguments: String::new(),
            },
            extra: Map::new(),
        });
    }
    let call = &mut calls[index];
    if let Some(id) = fragment.get("id").and_then(Value::as_str) {
        call.id = id.to_owned();
    }
    if let Some(function) = fragment.get("function") {
        if let Some(name) = function.get("name").and_then(Value::as_str) {
            if budget.take(name.len()) {
                call.function.name.push_str(name);
            }
        }
        if let Some(arguments) = function.get("arguments").and_then(Value::as_str) {
            if budget.take(arguments.len()) {
                call.function.arguments.push_str(arguments);
            }
        }
    }
}

#[cfg(test)]
mod tests;
