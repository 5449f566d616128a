//! A custom sink: counts calls per model group and prints a line per batch.
//!
//! Run with `cargo run -p mirror-logging --example custom_sink`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mirror_core::{CallId, CallRecord, CallStatus, CallType, RecordMetadata, SpendKind, TraceId};
use mirror_logging::{ContentPolicy, LogSink, LogWriter, SinkError, SinkOptions};

/// Counts calls per model group, primary and silent apart.
#[derive(Default)]
struct CountingSink {
    counts: Mutex<BTreeMap<(String, bool), u64>>,
}

#[async_trait]
impl LogSink for CountingSink {
    fn name(&self) -> &str {
        "counting"
    }

    async fn write(&self, batch: &[Arc<CallRecord>]) -> Result<(), SinkError> {
        // A real sink would send the batch somewhere and return a retryable `SinkError` (for example
        // `SinkError::Transport`) when the destination is down; the writer then retries with backoff.
        let mut counts = self.counts.lock().map_err(|_| SinkError::Config {
            message: "counter lock poisoned".into(),
        })?;
        for record in batch {
            *counts
                .entry((record.model_group.clone(), record.is_silent()))
                .or_default() += 1;
        }
        println!("counting sink: wrote a batch of {}", batch.len());
        Ok(())
    }

    fn default_options(&self) -> SinkOptions {
        // This sink never needs prompts or responses.
        SinkOptions::default()
            .with_batch_size(10)
            .with_flush_interval(Duration::from_millis(100))
            .with_content(ContentPolicy::Omit)
    }
}

fn call(model_group: &str, silent: bool) -> CallRecord {
    CallRecord {
        id: "chatcmpl-example".into(),
        trace_id: TraceId::new(),
        call_id: CallId::new(),
        call_type: CallType::Completion,
        stream: false,
        status: CallStatus::Success,
        custom_llm_provider: "openai".into(),
        model: model_group.into(),
        model_id: String::new(),
        model_group: model_group.into(),
        api_base: String::new(),
        start_time: 1_737_026_934.0,
        end_time: 1_737_026_935.0,
        completion_start_time: None,
        response_time: 1.0,
        prompt_tokens: 0,
        completion_tokens: 0,
        total_tokens: 0,
        response_cost: 0.0,
        messages: None,
        response: None,
        error_str: None,
        error_information: None,
        metadata: RecordMetadata {
            is_silent_experiment: silent,
            mirror_of: None,
            spend: if silent {
                SpendKind::Shadow
            } else {
                SpendKind::Caller
            },
            attempts: 1,
            fallbacks_tried: Vec::new(),
            requester_metadata: Default::default(),
            embedding: None,
            cache_hit: false,
        },
        request_tags: Vec::new(),
        end_user: None,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SinkError> {
    let sink = Arc::new(CountingSink::default());
    let writer = LogWriter::builder()
        .shared_sink(sink.clone(), sink.default_options())
        .start()?;
    for i in 0..25 {
        writer.submit(call("gpt-4o", false));
        if i % 5 == 0 {
            writer.submit(call("gpt-4o-candidate", true));
        }
    }
    let report = writer.shutdown(Duration::from_secs(5)).await;
    println!("{:?}", report.sinks);
    if let Ok(counts) = sink.counts.lock() {
        for ((group, silent), n) in counts.iter() {
            println!("{group} (silent: {silent}): {n}");
        }
    }
    Ok(())
}
