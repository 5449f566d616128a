//! Streams: Anthropic events as chat chunks, and chat chunks as Anthropic events. Each is a small
//! state machine fed one item at a time; neither holds more than a few ids and counts.

use serde_json::{json, Map, Value};

use super::response::{chat_completion_id, message_id, now_seconds};
use super::{chat_usage_of, finish_reason_of, messages_usage_of, stop_reason_of};
use crate::chat::Delta;
use crate::{AnthropicErrorBody, ChatChunk, ChunkChoice, MessagesEvent, MessagesUsage, Usage};

/// Turns the events of a streamed Messages call into the chunks of a streamed chat completion
/// (LiteLLM's `ModelResponseIterator`): `message_start` opens with the assistant role,
/// `text_delta` is `content`, a `tool_use` block is a tool call (id and name first, then
/// `input_json_delta` fragments as `arguments`), `thinking_delta` is `reasoning_content`,
/// `message_delta` gives the mapped `finish_reason`, and `message_stop` the usage chunk when the
/// caller asked for it. `ping`, signatures and citations add nothing.
#[derive(Debug)]
pub struct MessagesToChatStream {
    id: String,
    model: String,
    created: u64,
    usage: MessagesUsage,
    include_usage: bool,
    /// Per Messages block index that is a tool call: its chat tool-call index.
    tool_blocks: Vec<(usize, u32)>,
}

impl MessagesToChatStream {
    /// The most tool calls one answer is followed through (more are not a real answer).
    const MAX_TOOL_CALLS: usize = 1024;

    /// A translation for a caller who asked (`stream_options.include_usage`) or not for the usage
    /// chunk.
    pub fn new(include_usage: bool) -> Self {
        MessagesToChatStream {
            id: chat_completion_id(),
            model: String::new(),
            created: now_seconds(),
            usage: MessagesUsage::default(),
            include_usage,
            tool_blocks: Vec::new(),
        }
    }

    /// The usage so far, as chat usage.
    pub fn usage(&self) -> Usage {
        chat_usage_of(&self.usage)
    }

    /// The chunk one event amounts to, if any.
    ///
    /// # Errors
    ///
    /// The error an `error` event carries.
    pub fn push(&mut self, event: &MessagesEvent) -> Result<Option<ChatChunk>, AnthropicErrorBody> {
        if let Some(error) = event.error() {
            return Err(error);
        }
        let kind = event.kind();
        if kind == "ping" {
            return Ok(None);
        }
        let Some(data) = event.json() else {
            return Ok(None);
        };
        let chunk = match kind {
            "message_start" => {
                let message = &data["message"];
                if let Some(model) = message.get("model").and_then(Value::as_str) {
                    model.clone_into(&mut self.model);
                }
                if let Some(Value::Object(usage)) = message.get("usage") {
                    self.usage.merge(usage);
                }
                Some(self.chunk(
                    Delta {
                        role: Some("assistant".to_owned()),
                        content: Some(String::new()),
                        ..Delta::default()
                    },
                    None,
                ))
            }
            "content_block_start" => self.block_start(&data),
            "content_block_delta" => self.block_delta(&data),
            "message_delta" => {
                if let Some(Value::Object(usage)) = data.get("usage") {
                    self.usage.merge(usage);
                }
                data["delta"]
                    .get("stop_reason")
                    .and_then(Value::as_str)
                    .map(|reason| {
                        self.chunk(Delta::default(), Some(finish_reason_of(reason).to_owned()))
                    })
            }
            "message_stop" if self.include_usage => {
                let mut chunk = self.chunk(Delta::default(), None);
                chunk.choices.clear();
                chunk.usage = Some(self.usage());
                Some(chunk)
            }
            _ => None,
        };
        Ok(chunk)
    }

    fn block_start(&mut self, data: &Value) -> Option<ChatChunk> {
        let index = usize::try_from(data.get("index")?.as_u64()?).ok()?;
        let block = data.get("content_block")?;
        match block.get("type")?.as_str()? {
            "text" => {
                let text = block.get("text")?.as_str()?;
                (!text.is_empty()).then(|| self.text_chunk(text))
            }
            "tool_use" => {
                if self.tool_blocks.len() >= Self::MAX_TOOL_CALLS {
                    return None;
                }
                let tool_index = u32::try_from(self.tool_blocks.len()).ok()?;
                self.tool_blocks.push((index, tool_index));
                let fragment = json!({
                    "index": tool_index,
                    "id": block.get("id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {"name": block.get("name").cloned().unwrap_or(Value::Null), "arguments": ""},
                });
                Some(self.tool_chunk(fragment))
            }
            _ => None,
        }
    }

    fn block_delta(&mut self, data: &Value) -> Option<ChatChunk> {
        let index = usize::try_from(data.get("index")?.as_u64()?).ok()?;
        let delta = data.get("delta")?;
        match delta.get("type")?.as_str()? {
            "text_delta" => Some(self.text_chunk(delta.get("text")?.as_str()?)),
            "input_json_delta" => {
                let partial = delta.get("partial_json")?.as_str()?;
                let (_, tool_index) = self.tool_blocks.iter().find(|(at, _)| *at == index)?;
                if partial.is_empty() {
                    return None;
                }
                let fragment = json!({"index": tool_index, "function": {"arguments": partial}});
                Some(self.tool_chunk(fragment))
            }
            "thinking_delta" => {
                let thinking = delta.get("thinking")?.as_str()?;
                let mut extra = Map::new();
                extra.insert(
                    "reasoning_content".to_owned(),
                    Value::String(thinking.to_owned()),
                );
                Some(self.chunk(
                    Delta {
                        extra,
                        ..Delta::default()
                    },
                    None,
                ))
            }
            _ => None,
        }
    }

    fn text_chunk(&self, text: &str) -> ChatChunk {
        self.chunk(
            Delta {
                content: Some(text.to_owned()),
                ..Delta::default()
            },
            None,
        )
    }

    fn tool_chunk(&self, fragment: Value) -> ChatChunk {
        self.chunk(
            Delta {
                tool_calls: Some(vec![fragment]),
                ..Delta::default()
            },
            None,
        )
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<String>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta: Some(delta),
                finish_reason,
                extra: Map::new(),
            }],
            usage: None,
            extra: Map::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum OpenBlock {
    Text,
    Tool(u64),
}

/// Turns the chunks of a streamed chat completion into the events of a streamed Messages call
/// (LiteLLM's adapter): `message_start` (id `msg_...`, usage 0) on the first chunk, a `text`
/// block for content and a `tool_use` block per tool call (`input_json_delta` for its
/// arguments), each with its start, deltas and stop, and at the end ([`Self::finish`]) one
/// `message_delta` with the mapped stop reason and the stream's usage, then `message_stop`.
///
/// The usage chunk comes after the finish reason in an OpenAI stream, so the stop reason waits
/// for the end of the stream. Reasoning deltas (`reasoning_content`) are left out: an Anthropic
/// client could not send them back without Anthropic's signature.
#[derive(Debug)]
pub struct ChatToMessagesStream {
    id: String,
    model: String,
    started: bool,
    open: Option<OpenBlock>,
    next_block: usize,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl Default for ChatToMessagesStream {
    fn default() -> Self {
        ChatToMessagesStream::new()
    }
}

impl ChatToMessagesStream {
    /// A translation with a fresh message id.
    pub fn new() -> Self {
        ChatToMessagesStream {
            id: message_id(),
            model: String::new(),
            started: false,
            open: None,
            next_block: 0,
            finish_reason: None,
            usage: None,
        }
    }

    /// The usage the stream reported (its usage chunk), as Messages usage.
    pub fn usage(&self) -> MessagesUsage {
        self.usage
            .as_ref()
            .map(messages_usage_of)
            .unwrap_or_default()
    }

    /// The events one chunk amounts to (often one, sometimes none or a few).
    pub fn push(&mut self, chunk: &ChatChunk) -> Vec<MessagesEvent> {
        let mut events = Vec::new();
        if !self.started {
            self.model.clone_from(&chunk.model);
            self.start(&mut events);
        }
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.clone());
        }
        // A translated request asks for one choice; others (never expected) are not followed.
        let Some(choice) = chunk.choices.iter().find(|choice| choice.index == 0) else {
            return events;
        };
        if let Some(delta) = &choice.delta {
            if let Some(text) = delta.content.as_deref().filter(|text| !text.is_empty()) {
                if self.open != Some(OpenBlock::Text) {
                    self.open_block(
                        OpenBlock::Text,
                        json!({"type": "text", "text": ""}),
                        &mut events,
                    );
                }
                self.delta(json!({"type": "text_delta", "text": text}), &mut events);
            }
            for fragment in delta.tool_calls.iter().flatten() {
                let index = fragment.get("index").and_then(Value::as_u64).unwrap_or(0);
                let id = fragment.get("id").and_then(Value::as_str);
                let function = fragment.get("function");
                if self.open != Some(OpenBlock::Tool(index)) || id.is_some() {
                    let name = function
                        .and_then(|function| function.get("name"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    self.open_block(
                        OpenBlock::Tool(index),
                        json!({"type": "tool_use", "id": id.unwrap_or(""), "name": name, "input": {}}),
                        &mut events,
                    );
                }
                let arguments = function
                    .and_then(|function| function.get("arguments"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !arguments.is_empty() {
                    self.delta(
                        json!({"type": "input_json_delta", "partial_json": arguments}),
                        &mut events,
                    );
                }
            }
        }
        if let Some(reason) = &choice.finish_reason {
            self.finish_reason = Some(reason.clone());
        }
        events
    }

    /// The events that end the message: the open block's stop, `message_delta` with the stop
    /// reason and usage, and `message_stop`.
    pub fn finish(&mut self) -> Vec<MessagesEvent> {
        let mut events = Vec::new();
        if !self.started {
            self.start(&mut events);
        }
        self.close_block(&mut events);
        let usage = self.usage();
        let mut usage_json = json!({
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
        });
        if let Some(read) = usage.cache_read_input_tokens {
            usage_json["cache_read_input_tokens"] = Value::from(read);
        }
        if let Some(created) = usage.cache_creation_input_tokens {
            usage_json["cache_creation_input_tokens"] = Value::from(created);
        }
        let stop_reason = stop_reason_of(self.finish_reason.as_deref().unwrap_or("stop"));
        events.push(MessagesEvent::new(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                "usage": usage_json,
            }),
        ));
        events.push(MessagesEvent::new(
            "message_stop",
            &json!({"type": "message_stop"}),
        ));
        events
    }

    fn start(&mut self, events: &mut Vec<MessagesEvent>) {
        self.started = true;
        events.push(MessagesEvent::new(
            "message_start",
            &json!({
                "type": "message_start",
                "message": {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": self.model,
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                },
            }),
        ));
    }

    fn open_block(&mut self, block: OpenBlock, skeleton: Value, events: &mut Vec<MessagesEvent>) {
        self.close_block(events);
        self.open = Some(block);
        events.push(MessagesEvent::new(
            "content_block_start",
            &json!({"type": "content_block_start", "index": self.next_block, "content_block": skeleton}),
        ));
    }

    fn delta(&self, delta: Value, events: &mut Vec<MessagesEvent>) {
        events.push(MessagesEvent::new(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": self.next_block, "delta": delta}),
        ));
    }

    fn close_block(&mut self, events: &mut Vec<MessagesEvent>) {
        if self.open.take().is_some() {
            events.push(MessagesEvent::new(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": self.next_block}),
            ));
            self.next_block += 1;
        }
    }
}
