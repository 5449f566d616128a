//! The `LogSink` trait and the per-sink options the writer applies.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mirror_core::{CallRecord, ChatMessage, MessageContent, RecordResponse};
use serde_json::Value;

use crate::SinkError;

/// A destination for call records: a file, Langfuse, S3, or your own.
///
/// The [`LogWriter`](crate::LogWriter) calls `write` from one background task per sink, with batches of
/// records, and never on the request path. A sink only has to write; the writer batches, retries
/// retryable errors with backoff, counts, and drops what it cannot deliver.
///
/// Records arrive as `Arc`s shared by all sinks: a sink that needs to change a record clones it.
#[async_trait]
pub trait LogSink: Send + Sync + 'static {
    /// A short name for counters and log lines (`jsonl`, `langfuse`, `s3`).
    fn name(&self) -> &str;

    /// Writes a batch of records.
    ///
    /// # Errors
    ///
    /// Returns a [`SinkError`]; the writer retries the whole batch when
    /// [`SinkError::is_retryable`] says so, so writing the same records twice must be harmless.
    async fn write(&self, batch: &[Arc<CallRecord>]) -> Result<(), SinkError>;

    /// Makes what was written durable; the writer calls it once when it shuts down.
    ///
    /// # Errors
    ///
    /// Returns a [`SinkError`] when buffered data could not be flushed.
    async fn flush(&self) -> Result<(), SinkError> {
        Ok(())
    }

    /// The options the writer uses for this sink unless told otherwise.
    fn default_options(&self) -> SinkOptions {
        SinkOptions::default()
    }
}

/// What a sink receives of prompts and responses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContentPolicy {
    /// Records as the router made them.
    #[default]
    Keep,
    /// `messages` and `response` removed.
    Omit,
    /// Message contents and response texts replaced by [`REDACTED`].
    Redact,
}

/// The text that replaces redacted message contents and response texts.
pub const REDACTED: &str = "redacted-by-mirror";

impl ContentPolicy {
    /// Returns the record as this policy shows it: the same `Arc` under [`ContentPolicy::Keep`], a
    /// changed copy otherwise.
    pub fn apply(self, record: &Arc<CallRecord>) -> Arc<CallRecord> {
        match self {
            ContentPolicy::Keep => Arc::clone(record),
            ContentPolicy::Omit => {
                let mut copy = CallRecord::clone(record);
                copy.messages = None;
                copy.response = None;
                Arc::new(copy)
            }
            ContentPolicy::Redact => {
                let mut copy = CallRecord::clone(record);
                for message in copy.messages.iter_mut().flatten() {
                    redact_message(message);
                }
                match copy.response.as_mut() {
                    Some(RecordResponse::Chat(response)) => {
                        for choice in &mut response.choices {
                            redact_message(&mut choice.message);
                        }
                    }
                    Some(RecordResponse::Responses(response)) => {
                        // The answer's items, and the instructions the object echoes back.
                        for key in ["output", "instructions"] {
                            if let Some(value) = response.extra.get_mut(key) {
                                redact_strings(value);
                            }
                        }
                    }
                    // Vectors are derived from the input: not kept under redaction.
                    Some(RecordResponse::Embeddings(_)) => copy.response = None,
                    None => {}
                }
                Arc::new(copy)
            }
        }
    }
}

/// Replaces every string in a Responses item tree with [`REDACTED`], except the fields that name
/// rather than say something (`type`, `id`, `call_id`, `status`, `role`, `name`).
fn redact_strings(value: &mut Value) {
    match value {
        Value::String(text) => REDACTED.clone_into(text),
        Value::Array(items) => items.iter_mut().for_each(redact_strings),
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if !matches!(
                    key.as_str(),
                    "type" | "id" | "call_id" | "status" | "role" | "name"
                ) {
                    redact_strings(item);
                }
            }
        }
        _ => {}
    }
}

fn redact_message(message: &mut ChatMessage) {
    match message.content.as_mut() {
        Some(MessageContent::Text(text)) => REDACTED.clone_into(text),
        Some(MessageContent::Parts(parts)) => {
            // A part that is not text (an image, a file) carries its payload in `extra`; drop it all.
            for part in parts.iter_mut() {
                part.text = Some(REDACTED.to_owned());
                part.extra.clear();
            }
        }
        None => {}
    }
    if let Some(tool_calls) = message.tool_calls.as_mut() {
        for call in tool_calls {
            REDACTED.clone_into(&mut call.function.arguments);
        }
    }
    // Fields we do not model (`refusal`, `audio`, ...) may hold text too.
    message.extra.clear();
}

/// How the writer batches, retries and bounds one sink.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SinkOptions {
    /// Records waiting for this sink at most; more are dropped and counted (`queue_full`).
    pub queue_capacity: usize,
    /// A batch is written when it holds this many records...
    pub batch_size: usize,
    /// ...or when its first record has waited this long.
    pub flush_interval: Duration,
    /// Retries of retryable failures.
    pub retry: RetryPolicy,
    /// What the sink receives of prompts and responses.
    pub content: ContentPolicy,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            queue_capacity: 10_000,
            batch_size: 64,
            flush_interval: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            content: ContentPolicy::Keep,
        }
    }
}

impl SinkOptions {
    /// Sets [`SinkOptions::queue_capacity`].
    pub fn with_queue_capacity(mut self, queue_capacity: usize) -> Self {
        self.queue_capacity = queue_capacity;
        self
    }

    /// Sets [`SinkOptions::batch_size`].
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets [`SinkOptions::flush_interval`].
    pub fn with_flush_interval(mut self, flush_interval: Duration) -> Self {
        self.flush_interval = flush_interval;
        self
    }

    /// Sets [`SinkOptions::retry`].
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets [`SinkOptions::content`].
    pub fn with_content(mut self, content: ContentPolicy) -> Self {
        self.content = content;
        self
    }
}

/// Exponential backoff with jitter, bounded by attempts and by age.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Write attempts per batch, the first included; then the batch is dropped (`failed`).
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles after each failure.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// A batch whose first attempt is older than this is not tried again.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            max_age: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// A policy with the given bounds.
    pub fn new(
        max_attempts: u32,
        initial_backoff: Duration,
        max_backoff: Duration,
        max_age: Duration,
    ) -> Self {
        RetryPolicy {
            max_attempts,
            initial_backoff,
            max_backoff,
            max_age,
        }
    }

    /// No retries: a failed batch is dropped at once.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait after `failures` failed attempts (1 for the first): half of the exponential value
    /// plus a random part up to the other half, so that sinks failing together do not retry together.
    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(20);
        let full = self
            .initial_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff);
        let half = full / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(fastrand::u64(0..=jitter_nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::record;

    #[test]
    fn keep_shares_the_record() {
        let record = record();
        assert!(Arc::ptr_eq(&ContentPolicy::Keep.apply(&record), &record));
    }

    #[test]
    fn omit_and_redact() {
        let record = record();
        let omitted = ContentPolicy::Omit.apply(&record);
        assert!(omitted.messages.is_none() && omitted.response.is_none());

        let redacted = ContentPolicy::Redact.apply(&record);
        let text = serde_json::to_string(&*redacted).unwrap();
        assert!(!text.contains("my secret plan"), "{text}");
        assert!(!text.contains("the answer"), "{text}");
        assert_eq!(text.matches(REDACTED).count(), 2, "{text}");
        // The shared original is untouched.
        assert!(serde_json::to_string(&*record)
            .unwrap()
            .contains("my secret plan"));
    }

    #[test]
    fn redact_covers_responses_objects_and_drops_vectors() {
        let mut responses = CallRecord::clone(&record());
        responses.response = serde_json::from_value(serde_json::json!({
            "id": "resp_1", "object": "response", "model": "gpt-5",
            "instructions": "the system secret",
            "output": [
                {"type": "message", "id": "msg_1", "role": "assistant",
                 "content": [{"type": "output_text", "text": "the answer", "annotations": []}]},
                {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{\"q\":\"private\"}"}
            ]
        }))
        .unwrap();
        let redacted = ContentPolicy::Redact.apply(&Arc::new(responses));
        let text = serde_json::to_string(&*redacted).unwrap();
        for secret in ["the answer", "private", "the system secret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // What names things stays, so the record is still useful.
        for kept in ["\"lookup\"", "\"function_call\"", "\"resp_1\""] {
            assert!(text.contains(kept), "{kept} not in {text}");
        }

        let mut embeddings = CallRecord::clone(&record());
        embeddings.response = serde_json::from_value(serde_json::json!({
            "object": "list", "model": "te", "data": [{"index": 0, "embedding": [0.25]}]
        }))
        .unwrap();
        let redacted = ContentPolicy::Redact.apply(&Arc::new(embeddings));
        assert!(redacted.response.is_none());
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        let policy = RetryPolicy::new(
            10,
            Duration::from_millis(100),
            Duration::from_secs(1),
            Duration::from_secs(60),
        );
        for _ in 0..100 {
            let first = policy.backoff(1);
            assert!(Duration::from_millis(50) <= first && first <= Duration::from_millis(100));
            let third = policy.backoff(3);
            assert!(Duration::from_millis(200) <= third && third <= Duration::from_millis(400));
            let late = policy.backoff(30);
            assert!(Duration::from_millis(500) <= late && late <= Duration::from_secs(1));
        }
    }
}
