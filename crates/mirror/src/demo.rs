//! `mirror demo`: the built-in offline default, end to end.
//!
//! It builds the router from the built-in configuration (mock providers, `primary` mirrored to
//! `shadow`), logs every call to a JSONL file through the background log writer, sends a burst of
//! requests, drains the silent calls, reads the log back and prints the primary-vs-shadow comparison.

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mirror_core::{CallRecord, ChatMessage, ChatRequest};
use mirror_logging::{JsonlConfig, JsonlSink, LogWriter, WriterReport};
use mirror_router::MirrorSnapshot;

use crate::report::{compare, PairSummary};

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Requests to send.
    pub requests: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Where the JSONL log goes (replaced if it exists).
    pub log_path: PathBuf,
}

/// What happened.
#[derive(Debug)]
pub struct DemoOutcome {
    /// Primary calls that succeeded.
    pub primary_ok: usize,
    /// Primary calls that failed.
    pub primary_failed: usize,
    /// Wall time of the burst.
    pub elapsed: Duration,
    /// Silent-mirroring counters after the drain.
    pub mirror: MirrorSnapshot,
    /// Log-writer counters after the flush.
    pub writer: WriterReport,
    /// The records read back from the log.
    pub records: Vec<CallRecord>,
    /// The comparison.
    pub summaries: Vec<PairSummary>,
}

/// Runs the demo.
///
/// # Errors
///
/// Fails when the router or the log cannot be set up, or the log cannot be read back.
pub async fn run(options: &DemoOptions) -> Result<DemoOutcome, Box<dyn Error + Send + Sync>> {
    if options.log_path.exists() {
        std::fs::remove_file(&options.log_path)?;
    }
    let writer = Arc::new(
        LogWriter::builder()
            .sink(JsonlSink::new(JsonlConfig::new(&options.log_path)))
            .start()?,
    );
    let records_writer = Arc::clone(&writer);
    let router = crate::router_builder()?
        .config(crate::default_config()?)
        .origin("<built-in default>")
        .records(move |record| records_writer.submit(record))
        .build()?;

    let started = Instant::now();
    let results: Vec<bool> = futures::stream::iter(0..options.requests)
        .map(|i| {
            let router = router.clone();
            async move {
                let mut request = ChatRequest::new(
                    "primary",
                    vec![
                        ChatMessage::new("system", "You are a terse assistant."),
                        ChatMessage::user(format!("Question {i}: what is {i} squared?")),
                    ],
                );
                request.user = Some(format!("user-{}", i % 17));
                router.chat(request).await.is_ok()
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mirror = router.shutdown(Duration::from_secs(30)).await;
    let writer_report = writer.shutdown(Duration::from_secs(10)).await;

    let text = std::fs::read_to_string(&options.log_path)?;
    let records = text
        .lines()
        .map(serde_json::from_str::<CallRecord>)
        .collect::<Result<Vec<_>, _>>()?;
    let summaries = compare(&records);
    let primary_ok = results.iter().filter(|ok| **ok).count();
    Ok(DemoOutcome {
        primary_ok,
        primary_failed: results.len() - primary_ok,
        elapsed,
        mirror,
        writer: writer_report,
        records,
        summaries,
    })
}
