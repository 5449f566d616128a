//! OpenAI Responses API wire types (`/v1/responses`), mostly opaque.
//!
//! A proxy needs only a few fields of a Responses request (routing, streaming, state, tools) and of a
//! response (its id and usage); everything else is kept in flattened `extra` maps and passes through
//! both ways unchanged, so fields OpenAI adds tomorrow need no release of ours.
//!
//! Metadata: unlike chat, `metadata` is an OpenAI field of a Responses request (stored with the
//! response and returned with it), so it is forwarded. The gateway's own metadata (tags, `trace_id`,
//! `disable_mirroring`, the silent-copy markers) goes in `litellm_metadata`, as LiteLLM's proxy uses
//! it on its Responses routes; it never reaches a provider.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::mirror::{MirrorCopy, PER_CALL_METADATA_KEYS};
use crate::{CallId, CallMeta};

/// A Responses API create request, as a client sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponsesRequest {
    /// The model group the caller asks for.
    pub model: String,
    /// Whether the caller wants server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// The response this one continues: state only the upstream that stored it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_response_id: Option<String>,
    /// A conversation (an id or an object) whose items the upstream holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Value>,
    /// Whether the upstream keeps the response (OpenAI's default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// Whether the upstream runs it in the background (polled or cancelled later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<bool>,
    /// Tools the model may use, kept as JSON: only their `type` matters to the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
    /// OpenAI's metadata of the response: forwarded to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// The end user; also the default mirroring sample key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The gateway's metadata (LiteLLM's name on Responses routes); never forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub litellm_metadata: Option<Map<String, Value>>,
    /// Every other field (`input`, `instructions`, `reasoning`, ...), forwarded verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResponsesRequest {
    /// A minimal request: a text input to a model group.
    pub fn new(model: impl Into<String>, input: impl Into<Value>) -> Self {
        let mut extra = Map::new();
        extra.insert("input".to_owned(), input.into());
        ResponsesRequest {
            model: model.into(),
            stream: None,
            previous_response_id: None,
            conversation: None,
            store: None,
            background: None,
            tools: None,
            metadata: None,
            user: None,
            litellm_metadata: None,
            extra,
        }
    }

    /// The request's conversation as chat messages, for records (LiteLLM logs a Responses input
    /// as `messages` too): `instructions` as a system message, a text `input` as a user message,
    /// and each input item with a `role` as a message of that role with its text parts joined.
    /// Items without a role (function call outputs, references to stored items) are left out.
    pub fn input_messages(&self) -> Vec<crate::ChatMessage> {
        let mut messages = Vec::new();
        if let Some(instructions) = self.extra.get("instructions").and_then(Value::as_str) {
            messages.push(crate::ChatMessage::new("system", instructions));
        }
        match self.extra.get("input") {
            Some(Value::String(text)) => messages.push(crate::ChatMessage::user(text.as_str())),
            Some(Value::Array(items)) => {
                for item in items {
                    let Some(role) = item.get("role").and_then(Value::as_str) else {
                        continue;
                    };
                    let text = match item.get("content") {
                        Some(Value::String(text)) => text.clone(),
                        Some(Value::Array(parts)) => parts
                            .iter()
                            .filter_map(|part| part.get("text").and_then(Value::as_str))
                            .collect(),
                        _ => String::new(),
                    };
                    messages.push(crate::ChatMessage::new(role, text));
                }
            }
            _ => {}
        }
        messages
    }

    /// Whether the caller asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// The metadata the gateway reads (`trace_id`, `tags`, `disable_mirroring`): `litellm_metadata`,
    /// else OpenAI's `metadata`, which is all an SDK user can set without `extra_body`.
    pub fn gateway_metadata(&self) -> Option<&Map<String, Value>> {
        self.litellm_metadata.as_ref().or(self.metadata.as_ref())
    }

    /// The `type` of every tool of the request.
    pub fn tool_types(&self) -> impl Iterator<Item = &str> {
        self.tools
            .iter()
            .flatten()
            .filter_map(|tool| tool.get("type").and_then(Value::as_str))
    }

    /// Whether the request carries a remote MCP server tool, which the upstream calls itself (and
    /// which may write): such requests are not mirrored unless a deployment allows it.
    pub fn has_mcp_tools(&self) -> bool {
        self.tool_types().any(|kind| kind == "mcp")
    }

    /// The body to send to a provider: `model` replaced by the provider's model name, `stream` as
    /// the provider call needs it, `previous_response_id` as given (the upstream's own id), and the
    /// gateway's fields (`litellm_metadata`, router-only keys such as `silent_model`) left out.
    pub fn upstream<'a>(
        &'a self,
        model: &'a str,
        stream: bool,
        previous_response_id: Option<&'a str>,
    ) -> UpstreamResponsesRequest<'a> {
        UpstreamResponsesRequest {
            request: self,
            model,
            stream,
            previous_response_id,
            defaults: None,
        }
    }

    /// A deep copy of this request for the silent model group `target`: the Responses copy point,
    /// with the rules of [`crate::ChatRequest::to_mirror`].
    ///
    /// - `model` is the silent group; `stream` is kept as the caller sent it;
    /// - `previous_response_id` is `shadow_previous`: the silent side's own id for the response the
    ///   primary continues, never the primary's (the caller looks it up; `None` without one);
    /// - `litellm_metadata` keeps the caller's keys except [`PER_CALL_METADATA_KEYS`] and gains
    ///   `is_silent_experiment`, `model_group` and `mirror_of`; OpenAI's `metadata` is the caller's
    ///   and goes to the silent upstream unchanged, as it goes to the primary;
    /// - the identity gets a fresh call id, the primary's trace id and `mirror_of`.
    pub fn to_mirror(
        &self,
        primary: &CallMeta,
        target: &str,
        shadow_previous: Option<String>,
    ) -> MirrorCopy<ResponsesRequest> {
        let mut request = self.clone();
        request.model = target.to_owned();
        request.previous_response_id = shadow_previous;
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

/// A borrowed view of a [`ResponsesRequest`] that serializes as the body a provider receives.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamResponsesRequest<'a> {
    request: &'a ResponsesRequest,
    model: &'a str,
    stream: bool,
    previous_response_id: Option<&'a str>,
    defaults: Option<&'a crate::RequestDefaults>,
}

/// The request defaults (`litellm_params`) a Responses body takes: parameters the Responses API
/// defines and that do not touch the gateway's view of state (`store`, `background`,
/// `conversation`, `tools` stay the caller's). Chat's names are translated: `max_tokens` and
/// `max_completion_tokens` become `max_output_tokens`, `reasoning_effort` becomes
/// `reasoning: {effort}`. Any other default (`stop`, `n`, `presence_penalty`, ...) is chat's
/// alone and not sent: OpenAI refuses unknown parameters on `/v1/responses` with a 400. LiteLLM
/// keeps only its Responses parameters too (`ResponsesAPIOptionalRequestParams`).
pub const RESPONSES_DEFAULT_KEYS: &[&str] = &[
    "temperature",
    "top_p",
    "max_output_tokens",
    "reasoning",
    "text",
    "truncation",
    "tool_choice",
    "parallel_tool_calls",
    "include",
    "instructions",
    "service_tier",
    "top_logprobs",
    "max_tool_calls",
    "prompt_cache_key",
    "safety_identifier",
];

impl<'a> UpstreamResponsesRequest<'a> {
    /// Adds a deployment's request defaults under the request's own values (see
    /// [`RESPONSES_DEFAULT_KEYS`] for which, and how chat's names are translated).
    #[must_use]
    pub fn with_defaults(mut self, defaults: &'a crate::RequestDefaults) -> Self {
        self.defaults = Some(defaults);
        self
    }
}

impl ResponsesRequest {
    /// Whether the request sets `key` itself (so a default for it is not sent).
    fn sets(&self, key: &str) -> bool {
        match key {
            "stream" => self.stream.is_some(),
            "previous_response_id" => self.previous_response_id.is_some(),
            "conversation" => self.conversation.is_some(),
            "store" => self.store.is_some(),
            "background" => self.background.is_some(),
            "tools" => self.tools.is_some(),
            "metadata" => self.metadata.is_some(),
            "user" => self.user.is_some(),
            other => self.extra.contains_key(other),
        }
    }
}

/// Writes the Responses defaults the request does not set, each key once: a default named as
/// Responses names it wins over a translated chat name; `extra_body` entries come last, as given.
fn serialize_responses_defaults<M: serde::ser::SerializeMap>(
    map: &mut M,
    defaults: &crate::RequestDefaults,
    request: &ResponsesRequest,
) -> Result<(), M::Error> {
    let mut written: Vec<&str> = Vec::new();
    fn translated(key: &str) -> Option<&str> {
        match key {
            "max_tokens" | "max_completion_tokens" => Some("max_output_tokens"),
            "reasoning_effort" => Some("reasoning"),
            _ => RESPONSES_DEFAULT_KEYS.contains(&key).then_some(key),
        }
    }
    // Native names first, then translations, so `max_output_tokens` beats `max_tokens`.
    let native = defaults
        .0
        .iter()
        .filter(|(key, _)| RESPONSES_DEFAULT_KEYS.contains(&key.as_str()));
    let chat = defaults
        .0
        .iter()
        .filter(|(key, _)| !RESPONSES_DEFAULT_KEYS.contains(&key.as_str()));
    for (key, value) in native.chain(chat) {
        let Some(name) = translated(key) else {
            continue;
        };
        if request.sets(name) || written.contains(&name) {
            continue;
        }
        if key == "reasoning_effort" {
            map.serialize_entry(name, &serde_json::json!({ "effort": value }))?;
        } else {
            map.serialize_entry(name, value)?;
        }
        written.push(name);
    }
    if let Some(body) = defaults.0.get("extra_body").and_then(Value::as_object) {
        for (key, value) in body {
            let key = key.as_str();
            if request.sets(key)
                || written.contains(&key)
                || crate::chat::ROUTER_ONLY_KEYS.contains(&key)
            {
                continue;
            }
            map.serialize_entry(key, value)?;
        }
    }
    Ok(())
}

impl Serialize for UpstreamResponsesRequest<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;

        let request = self.request;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        if self.stream {
            map.serialize_entry("stream", &true)?;
        }
        if let Some(previous) = self.previous_response_id {
            map.serialize_entry("previous_response_id", previous)?;
        }
        macro_rules! optional {
            ($($field:ident),*) => {$(
                if let Some(value) = &request.$field {
                    map.serialize_entry(stringify!($field), value)?;
                }
            )*};
        }
        optional!(conversation, store, background, tools, metadata, user);
        for (key, value) in &request.extra {
            if !crate::chat::ROUTER_ONLY_KEYS.contains(&key.as_str()) {
                map.serialize_entry(key, value)?;
            }
        }
        if let Some(defaults) = self.defaults {
            serialize_responses_defaults(&mut map, defaults, request)?;
        }
        map.end()
    }
}

/// A Responses API response object: the id and usage read, the rest kept as it came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponsesResponse {
    /// `resp_...`.
    #[serde(default)]
    pub id: String,
    /// Token usage (absent until the response is done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ResponsesUsage>,
    /// Every other field (`object`, `status`, `output`, ...), as the upstream sent it.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResponsesResponse {
    /// The `status` field (`completed`, `failed`, `in_progress`, ...), when present.
    pub fn status(&self) -> Option<&str> {
        self.extra.get("status").and_then(Value::as_str)
    }

    /// The `model` field, when present.
    pub fn model(&self) -> Option<&str> {
        self.extra.get("model").and_then(Value::as_str)
    }

    /// The `output` items, as the upstream sent them.
    pub fn output(&self) -> &[Value] {
        self.extra
            .get("output")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The text of the answer, as the SDKs' `output_text` joins it: every `output_text` part of
    /// every `message` item, in order; `None` when there is none.
    pub fn output_text(&self) -> Option<String> {
        let mut text: Option<String> = None;
        let parts = self
            .output()
            .iter()
            .filter(|item| item.get("type").and_then(Value::as_str) == Some("message"))
            .filter_map(|item| item.get("content").and_then(Value::as_array))
            .flatten()
            .filter(|part| part.get("type").and_then(Value::as_str) == Some("output_text"))
            .filter_map(|part| part.get("text").and_then(Value::as_str));
        for part in parts {
            text.get_or_insert_with(String::new).push_str(part);
        }
        text
    }

    /// The function calls of the answer as (name, raw arguments): `function_call` items, and
    /// `custom_tool_call` items with their `input`.
    pub fn function_calls(&self) -> impl Iterator<Item = (&str, &str)> {
        self.output().iter().filter_map(|item| {
            let field = match item.get("type").and_then(Value::as_str)? {
                "function_call" => "arguments",
                "custom_tool_call" => "input",
                _ => return None,
            };
            let name = item.get("name").and_then(Value::as_str)?;
            Some((name, item.get(field).and_then(Value::as_str).unwrap_or("")))
        })
    }
}

/// Usage of a Responses call: `input_`/`output_` names, unlike chat's `prompt_`/`completion_`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponsesUsage {
    /// Input tokens, cached ones included.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens, reasoning ones included.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input plus output.
    #[serde(default)]
    pub total_tokens: u64,
    /// `cached_tokens`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens_details: Option<Map<String, Value>>,
    /// `reasoning_tokens`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<Map<String, Value>>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResponsesUsage {
    /// Input tokens served from the prompt cache.
    pub fn cached_tokens(&self) -> u64 {
        detail(self.input_tokens_details.as_ref(), "cached_tokens")
    }

    /// Output tokens spent on reasoning.
    pub fn reasoning_tokens(&self) -> u64 {
        detail(self.output_tokens_details.as_ref(), "reasoning_tokens")
    }

    /// The total, computed when the upstream left it out.
    pub fn total(&self) -> u64 {
        if self.total_tokens > 0 {
            self.total_tokens
        } else {
            self.input_tokens + self.output_tokens
        }
    }
}

fn detail(details: Option<&Map<String, Value>>, key: &str) -> u64 {
    details
        .and_then(|map| map.get(key))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// One server-sent event of a streamed Responses call, as the upstream sent it: relayed unchanged,
/// whatever its type, including types this version does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponsesEvent {
    /// The `event:` name (`response.created`, `response.output_text.delta`, `error`, ...); empty
    /// when the upstream sent none.
    pub event: String,
    /// The `data:` payload, a JSON object whose `type` repeats the event name.
    pub data: String,
}

/// The event types that end a stream and carry the full response (and its usage).
pub const TERMINAL_RESPONSE_EVENTS: &[&str] = &[
    "response.completed",
    "response.incomplete",
    "response.failed",
];

impl ResponsesEvent {
    /// The event type: the `event:` name, else the data's `type`.
    pub fn kind(&self) -> &str {
        if !self.event.is_empty() {
            return &self.event;
        }
        // Cheap look for the type without parsing the whole payload.
        self.data
            .find("\"type\"")
            .and_then(|at| {
                let rest = self.data[at + 6..].trim_start().strip_prefix(':')?;
                let rest = rest.trim_start().strip_prefix('"')?;
                rest.split('"').next()
            })
            .unwrap_or("")
    }

    /// Whether this event ends the stream with a response (completed, incomplete or failed).
    pub fn is_terminal(&self) -> bool {
        TERMINAL_RESPONSE_EVENTS.contains(&self.kind())
    }

    /// Whether this is an `error` event.
    pub fn is_error(&self) -> bool {
        self.kind() == "error"
    }

    /// The `response` object an event carries (`response.created`, `response.completed`, ...);
    /// `None` for the others or when it does not parse.
    pub fn response(&self) -> Option<ResponsesResponse> {
        #[derive(Deserialize)]
        struct Carrier {
            response: Option<ResponsesResponse>,
        }
        if !self.kind().starts_with("response.") || !self.data.contains("\"response\"") {
            return None;
        }
        serde_json::from_str::<Carrier>(&self.data)
            .ok()
            .and_then(|carrier| carrier.response)
    }

    /// The event as it goes on the wire: `event:` and `data:` lines and a blank line.
    pub fn to_sse(&self) -> String {
        let mut out = String::with_capacity(self.event.len() + self.data.len() + 16);
        if !self.event.is_empty() {
            out.push_str("event: ");
            out.push_str(&self.event);
            out.push('\n');
        }
        for line in self.data.split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_pass_through_and_gateway_fields_stay_home() {
        let request: ResponsesRequest = serde_json::from_value(serde_json::json!({
            "model": "group",
            "input": [{"role": "user", "content": "hi"}],
            "instructions": "be brief",
            "store": false,
            "metadata": {"app": "x"},
            "litellm_metadata": {"tags": ["a"]},
            "silent_model": "leak",
            "future_field": {"nested": 1},
        }))
        .unwrap();
        assert_eq!(request.store, Some(false));
        let body = serde_json::to_value(request.upstream("gpt-x", true, Some("resp_up"))).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "model": "gpt-x",
                "stream": true,
                "previous_response_id": "resp_up",
                "store": false,
                "metadata": {"app": "x"},
                "input": [{"role": "user", "content": "hi"}],
                "instructions": "be brief",
                "future_field": {"nested": 1},
            })
        );
    }

    #[test]
    fn request_defaults_apply_under_the_request_with_responses_names() {
        let defaults: crate::RequestDefaults = serde_json::from_value(serde_json::json!({
            "temperature": 0.2,
            "max_tokens": 100,
            "reasoning_effort": "low",
            "stop": ["\n"],
            "n": 2,
            "top_p": 0.9,
            "extra_body": {"service_tier": "flex", "custom": 1},
            "extra_headers": {"x-team": "a"},
        }))
        .unwrap();
        let mut request = ResponsesRequest::new("group", "hi");
        request.extra.insert("top_p".to_owned(), Value::from(0.5));
        let body = serde_json::to_value(
            request
                .upstream("gpt-x", false, None)
                .with_defaults(&defaults),
        )
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "model": "gpt-x",
                "input": "hi",
                "top_p": 0.5,
                "temperature": 0.2,
                "max_output_tokens": 100,
                "reasoning": {"effort": "low"},
                "service_tier": "flex",
                "custom": 1,
            })
        );

        // A native name beats a translated one; the request's own value beats both.
        let defaults: crate::RequestDefaults = serde_json::from_value(serde_json::json!({
            "max_completion_tokens": 50, "max_output_tokens": 70, "reasoning": {"effort": "high"},
            "reasoning_effort": "low",
        }))
        .unwrap();
        let body = serde_json::to_value(
            ResponsesRequest::new("group", "hi")
                .upstream("gpt-x", false, None)
                .with_defaults(&defaults),
        )
        .unwrap();
        assert_eq!(body["max_output_tokens"], 70);
        assert_eq!(body["reasoning"], serde_json::json!({"effort": "high"}));
        let mut own = ResponsesRequest::new("group", "hi");
        own.extra
            .insert("max_output_tokens".to_owned(), Value::from(9));
        let body =
            serde_json::to_value(own.upstream("gpt-x", false, None).with_defaults(&defaults))
                .unwrap();
        assert_eq!(body["max_output_tokens"], 9);
    }

    #[test]
    fn the_input_reads_as_messages_for_records() {
        let request: ResponsesRequest = serde_json::from_value(serde_json::json!({
            "model": "group",
            "instructions": "be brief",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "what is "}, {"type": "input_text", "text": "2+2"}]},
                {"type": "function_call_output", "call_id": "c1", "output": "4"},
                {"role": "assistant", "content": "4"},
            ],
        }))
        .unwrap();
        let messages: Vec<_> = request
            .input_messages()
            .into_iter()
            .map(|m| (m.role.clone(), m.text().unwrap_or_default()))
            .collect();
        let expected = [
            ("system", "be brief"),
            ("user", "what is 2+2"),
            ("assistant", "4"),
        ];
        assert_eq!(
            messages,
            expected.map(|(role, text)| (role.to_owned(), text.to_owned()))
        );
    }

    #[test]
    fn the_copy_never_carries_the_primary_s_response_id() {
        let mut request = ResponsesRequest::new("group", "hi");
        request.previous_response_id = Some("resp_primary".to_owned());
        request.metadata = Some(Map::from_iter([("app".to_owned(), Value::from("x"))]));
        request.litellm_metadata = Some(Map::from_iter([
            ("litellm_call_id".to_owned(), Value::from("primary-call")),
            ("tags".to_owned(), Value::from(vec!["t"])),
        ]));
        let primary = CallMeta::for_request("group", request.gateway_metadata());
        let copy = request.to_mirror(&primary, "shadow", None);
        assert_eq!(copy.request.previous_response_id, None);
        assert_eq!(copy.request.model, "shadow");
        assert_eq!(copy.meta.mirror_of, Some(primary.call_id));
        assert_eq!(copy.meta.trace_id, primary.trace_id);
        assert_ne!(copy.meta.call_id, primary.call_id);
        let gateway = copy.request.litellm_metadata.as_ref().unwrap();
        assert!(!gateway.contains_key("litellm_call_id"));
        assert_eq!(gateway["is_silent_experiment"], Value::Bool(true));
        assert_eq!(copy.request.metadata, request.metadata);
        let mapped = request.to_mirror(&primary, "shadow", Some("resp_shadow".to_owned()));
        assert_eq!(
            mapped.request.previous_response_id.as_deref(),
            Some("resp_shadow")
        );
        // The original is untouched.
        assert_eq!(
            request.previous_response_id.as_deref(),
            Some("resp_primary")
        );
    }

    #[test]
    fn usage_and_events_are_read_without_changing_them() {
        let data = r#"{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","object":"response","status":"completed","usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":4},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":3},"total_tokens":19}}}"#;
        let event = ResponsesEvent {
            event: "response.completed".to_owned(),
            data: data.to_owned(),
        };
        assert!(event.is_terminal());
        let response = event.response().unwrap();
        assert_eq!(response.id, "resp_1");
        assert_eq!(response.status(), Some("completed"));
        let usage = response.usage.unwrap();
        assert_eq!(
            (
                usage.input_tokens,
                usage.cached_tokens(),
                usage.output_tokens,
                usage.reasoning_tokens(),
                usage.total()
            ),
            (12, 4, 7, 3, 19)
        );
        assert_eq!(
            event.to_sse(),
            format!("event: response.completed\ndata: {data}\n\n")
        );
        let unnamed = ResponsesEvent {
            event: String::new(),
            data: r#"{"type": "response.future_thing","x":1}"#.to_owned(),
        };
        assert_eq!(unnamed.kind(), "response.future_thing");
        assert!(!unnamed.is_terminal());
        assert!(unnamed.response().is_none());
    }

    #[test]
    fn mcp_tools_are_found() {
        let mut request = ResponsesRequest::new("g", "hi");
        request.tools = Some(vec![
            serde_json::json!({"type": "function", "name": "f"}),
            serde_json::json!({"type": "web_search"}),
        ]);
        assert!(!request.has_mcp_tools());
        request.tools.as_mut().unwrap().push(
            serde_json::json!({"type": "mcp", "server_label": "x", "server_url": "https://x"}),
        );
        assert!(request.has_mcp_tools());
    }
}
