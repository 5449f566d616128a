//! `mirror demo`: the built-in offline default, end to end, over real HTTP.
//!
//! It starts the gateway in-process on a free loopback port with the built-in configuration (mock
//! providers, `primary` mirrored to `shadow`, a JSONL log), sends a burst of HTTP chat requests
//! through it with a progress bar, then one Responses API call (`POST /v1/responses`), shuts it
//! down (which drains the silent calls and flushes the log), reads the log back and prints the
//! primary-vs-shadow comparison, one group pair per call type. With `--ui` it prints the live
//! page's URL first and keeps serving the page for a minute after the run.

use std::error::Error;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mirror::config::GatewayConfig;
use mirror::gateway::Gateway;
use mirror::logging::WriterReport;
use mirror::{CallRecord, MirrorSnapshot};
use mirror_report::{compare, PairSummary};
use serde_json::json;

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Requests to send.
    pub requests: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Where the JSONL log goes (replaced if it exists).
    pub log_path: PathBuf,
    /// With the live page (`mirror demo --ui`): how long the gateway keeps serving `/ui` after the
    /// run (Ctrl-C ends it sooner). Its URL is printed on stderr before the run.
    pub ui: Option<Duration>,
}

/// What happened.
#[derive(Debug)]
pub struct DemoOutcome {
    /// Primary calls that succeeded.
    pub primary_ok: usize,
    /// Primary calls that failed.
    pub primary_failed: usize,
    /// Whether the one Responses API call was answered.
    pub responses_ok: bool,
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
/// Fails when the gateway or the log cannot be set up, or the log cannot be read back.
pub async fn run(options: &DemoOptions) -> Result<DemoOutcome, Box<dyn Error + Send + Sync>> {
    if options.log_path.exists() {
        std::fs::remove_file(&options.log_path)?;
    }
    let mut config =
        GatewayConfig::from_yaml_str(mirror::DEFAULT_CONFIG_YAML, "<built-in default>")?;
    config.mirror_settings.log_file = Some(options.log_path.clone());
    let gateway = Gateway::from_config(&config)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let base = format!("http://{address}/v1/chat/completions");
    if options.ui.is_some() {
        gateway.watch_live_page();
        eprintln!("Live page: http://{address}/ui");
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gateway.serve(listener, async move {
        let _ = stopped.await;
    }));

    let progress = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(options.requests as u64), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} requests {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let client = reqwest::Client::new();
    let started = Instant::now();
    let results: Vec<bool> = futures::stream::iter(0..options.requests)
        .map(|i| {
            let client = client.clone();
            let base = base.clone();
            let progress = progress.clone();
            async move {
                let body = json!({
                    "model": "primary",
                    "user": format!("user-{}", i % 17),
                    "messages": [
                        {"role": "system", "content": "You are a terse assistant."},
                        {"role": "user", "content": format!("Question {i}: what is {i} squared?")},
                    ],
                });
                let ok = match client.post(&base).json(&body).send().await {
                    Ok(response) => {
                        response.status().is_success() && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                progress.inc(1);
                ok
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    // One Responses API create, mirrored like the chat calls.
    let body = json!({
        "model": "primary",
        "user": "user-responses",
        "instructions": "You are a terse assistant.",
        "input": "Name the largest planet.",
    });
    let responses_ok = match client
        .post(format!("http://{address}/v1/responses"))
        .json(&body)
        .send()
        .await
    {
        Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
        Err(_) => false,
    };

    if let Some(linger) = options.ui {
        eprintln!(
            "The live page stays at http://{address}/ui for {} s (Ctrl-C ends it sooner).",
            linger.as_secs()
        );
        tokio::select! {
            () = tokio::time::sleep(linger) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }

    // Shutting down drains the silent calls and flushes the log.
    let _ = stop.send(());
    let report = server.await??;

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
        responses_ok,
        elapsed,
        mirror: report.mirror,
        writer: report.writer,
        records,
        summaries,
    })
}
