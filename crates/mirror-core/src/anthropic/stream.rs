//! Streamed Messages: the events as relayed, and the bounded rebuild of the message they amount to.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{AnthropicErrorBody, ContentBlock, MessagesResponse, MessagesUsage};

/// One server-sent event of a streamed Messages call, as the upstream sent it: relayed unchanged
/// (event name and data), whatever its type, including types this version does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesEvent {
    /// The `event:` name (`message_start`, `content_block_delta`, `ping`, `error`, ...); empty when
    /// the upstream sent none.
    pub event: String,
    /// The `data:` payload, a JSON object whose `type` repeats the event name.
    pub data: String,
}

impl MessagesEvent {
    /// An event from a name and a JSON payload.
    pub fn new(event: impl Into<String>, data: &Value) -> Self {
        MessagesEvent {
            event: event.into(),
            data: data.to_string(),
        }
    }

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

    /// Whether this event ends the stream (`message_stop`).
    pub fn is_stop(&self) -> bool {
        self.kind() == "message_stop"
    }

    /// The error an `error` event carries; `None` for other events. An `error` event whose data
    /// does not parse still yields an `api_error`.
    pub fn error(&self) -> Option<AnthropicErrorBody> {
        if self.kind() != "error" {
            return None;
        }
        Some(
            serde_json::from_str::<AnthropicErrorBody>(&self.data).unwrap_or_else(|_| {
                AnthropicErrorBody::new("api_error", "malformed error event in the stream")
            }),
        )
    }

    /// The data as JSON, when it parses.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.data).ok()
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

/// Rebuilds the message a stream amounts to, for records and comparison (never for the caller,
/// who gets the events themselves).
///
/// Bounded whatever the stream says: at most [`MessagesAccumulator::MAX_BLOCKS`] blocks and
/// `max_bytes` of text, thinking and tool input in all; what does not fit is left out, and the
/// finished message says so with `"mirror_truncated": true`.
#[derive(Debug)]
pub struct MessagesAccumulator {
    message: Option<MessagesResponse>,
    /// Per block: the tool input's JSON text so far (parsed at the end).
    partial_json: Vec<String>,
    bytes: usize,
    max_bytes: usize,
    truncated: bool,
    stopped: bool,
}

impl Default for MessagesAccumulator {
    fn default() -> Self {
        MessagesAccumulator::with_max_bytes(MessagesAccumulator::DEFAULT_MAX_BYTES)
    }
}

#[derive(Deserialize)]
struct Start {
    message: MessagesResponse,
}

#[derive(Deserialize)]
struct BlockStart {
    index: usize,
    content_block: ContentBlock,
}

#[derive(Deserialize)]
struct BlockDelta {
    index: usize,
    delta: Map<String, Value>,
}

#[derive(Deserialize)]
struct MessageDelta {
    #[serde(default)]
    delta: Map<String, Value>,
    #[serde(default)]
    usage: Option<Map<String, Value>>,
}

impl MessagesAccumulator {
    /// The most content blocks kept.
    pub const MAX_BLOCKS: usize = 1024;
    /// The most text, thinking and tool-input bytes kept by default.
    pub const DEFAULT_MAX_BYTES: usize = 32 * 1024 * 1024;

    /// An accumulator that keeps at most `max_bytes` of text.
    pub fn with_max_bytes(max_bytes: usize) -> Self {
        MessagesAccumulator {
            message: None,
            partial_json: Vec::new(),
            bytes: 0,
            max_bytes,
            truncated: false,
            stopped: false,
        }
    }

    /// Whether something was left out to stay within the bounds.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// Whether `message_stop` was seen.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The usage so far: `message_start`'s, updated by `message_delta`.
    pub fn usage(&self) -> Option<&MessagesUsage> {
        self.message.as_ref().map(|message| &message.usage)
    }

    /// Adds one event; events it does not know (and `ping`, `error`) change nothing.
    pub fn push(&mut self, event: &MessagesEvent) {
        match event.kind() {
            "message_start" => {
                if let Ok(Start { mut message }) = serde_json::from_str(&event.data) {
                    message.content.clear();
                    self.message = Some(message);
                }
            }
            "content_block_start" => {
                if let Ok(start) = serde_json::from_str::<BlockStart>(&event.data) {
                    self.block_start(start);
                }
            }
            "content_block_delta" => {
                if let Ok(delta) = serde_json::from_str::<BlockDelta>(&event.data) {
                    self.block_delta(delta);
                }
            }
            "message_delta" => {
                if let Ok(delta) = serde_json::from_str::<MessageDelta>(&event.data) {
                    let message = self.message();
                    if let Some(reason) = delta.delta.get("stop_reason").and_then(Value::as_str) {
                        message.stop_reason = Some(reason.to_owned());
                    }
                    if let Some(sequence) = delta.delta.get("stop_sequence").and_then(Value::as_str)
                    {
                        message.stop_sequence = Some(sequence.to_owned());
                    }
                    if let Some(usage) = &delta.usage {
                        message.usage.merge(usage);
                    }
                }
            }
            "message_stop" => self.stopped = true,
            _ => {}
        }
    }

    fn message(&mut self) -> &mut MessagesResponse {
        self.message.get_or_insert_with(|| {
            let mut message = MessagesResponse::text("", "", "", MessagesUsage::default());
            message.content.clear();
            message.stop_reason = None;
            message
        })
    }

    fn take(&mut self, len: usize) -> bool {
        if self.max_bytes - self.bytes >= len {
            self.bytes += len;
            true
        } else {
            self.truncated = true;
            false
        }
    }

    fn block_start(&mut self, start: BlockStart) {
        if start.index >= Self::MAX_BLOCKS {
            self.truncated = true;
            return;
        }
        let size = block_bytes(&start.content_block);
        if !self.take(size) {
            return;
        }
        let message = self.message();
        if message.content.len() <= start.index {
            message
                .content
                .resize_with(start.index + 1, || ContentBlock::new("text", Map::new()));
        }
        message.content[start.index] = start.content_block;
        if self.partial_json.len() <= start.index {
            self.partial_json.resize_with(start.index + 1, String::new);
        }
    }

    fn block_delta(&mut self, delta: BlockDelta) {
        let index = delta.index;
        let in_range = self
            .message
            .as_ref()
            .is_some_and(|message| index < message.content.len());
        if !in_range {
            self.truncated = true;
            return;
        }
        let kind = delta
            .delta
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("");
        let (field, text) = match kind {
            "text_delta" => ("text", delta.delta.get("text")),
            "thinking_delta" => ("thinking", delta.delta.get("thinking")),
            "signature_delta" => ("signature", delta.delta.get("signature")),
            "input_json_delta" => ("", delta.delta.get("partial_json")),
            "citations_delta" => {
                if let Some(citation) = delta.delta.get("citation") {
                    let size = citation.to_string().len();
                    if self.take(size) {
                        let block = &mut self.message().content[index];
                        let citations = block
                            .fields
                            .entry("citations")
                            .or_insert_with(|| Value::Array(Vec::new()));
                        if let Value::Array(list) = citations {
                            list.push(citation.clone());
                        }
                    }
                }
                return;
            }
            _ => return,
        };
        let Some(text) = text.and_then(Value::as_str) else {
            return;
        };
        if !self.take(text.len()) {
            return;
        }
        if field.is_empty() {
            self.partial_json[index].push_str(text);
            return;
        }
        let block = &mut self.message().content[index];
        match block.fields.get_mut(field) {
            Some(Value::String(existing)) => existing.push_str(text),
            _ => {
                block
                    .fields
                    .insert(field.to_owned(), Value::String(text.to_owned()));
            }
        }
    }

    /// The message the stream amounts to; `None` when no `message_start` (nor anything else) came.
    pub fn finish(self) -> Option<MessagesResponse> {
        let mut message = self.message?;
        for (block, json) in message.content.iter_mut().zip(&self.partial_json) {
            if json.is_empty() {
                continue;
            }
            // Fragments are only JSON once joined; a stream cut mid-input keeps the raw text.
            let input = serde_json::from_str(json).unwrap_or_else(|_| Value::String(json.clone()));
            block.fields.insert("input".to_owned(), input);
        }
        if self.truncated {
            message
                .extra
                .insert("mirror_truncated".to_owned(), Value::Bool(true));
        }
        Some(message)
    }
}

/// The bytes a block's skeleton holds (what `content_block_start` may carry: usually little).
fn block_bytes(block: &ContentBlock) -> usize {
    block
        .fields
        .values()
        .map(|value| match value {
            Value::String(text) => text.len(),
            Value::Null | Value::Bool(_) | Value::Number(_) => 8,
            other => other.to_string().len(),
        })
        .sum()
}
