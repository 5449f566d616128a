//! The `mirror` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mirror_cli::demo::{self, DemoOptions};
use mirror_cli::{cli, mock_upstream, report};
use mirror_report::Table;

/// mimalloc instead of the system allocator: allocation was a quarter of the gateway's instructions
/// per mirrored request under glibc malloc (see docs/benchmarks.md, "Profile").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Mirror: an LLM router and OpenAI-compatible gateway with traffic mirroring.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Each subcommand's arguments and logic live in the library (`mirror_cli::<module>`); this enum only
// dispatches, so subcommands can be added without touching each other.
#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the OpenAI-compatible gateway on a LiteLLM-style config (or the built-in default).
    Serve(cli::ServeArgs),
    /// Validate a config and print its model groups, deployments (secrets redacted), mirror graph
    /// and sinks.
    Check(cli::CheckArgs),
    /// Run the built-in offline default (mock providers, `primary` mirrored to `shadow`) and print the
    /// primary-vs-shadow comparison. Needs no keys and no network.
    Demo {
        /// Requests to send.
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Where to write the JSONL call log.
        #[arg(long, default_value = "mirror-demo.jsonl")]
        log: PathBuf,
        /// Print the live page's URL (`/ui`) and keep serving it for a minute after the run.
        #[arg(long)]
        ui: bool,
    },
    /// Compare primary and silent calls from JSONL call logs or an S3 prefix: latency, cost,
    /// errors, agreement.
    Report(report::ReportArgs),
    /// Serve a fast OpenAI-shaped mock upstream (configurable latency, failures, resets, SSE), for
    /// benchmarks.
    MockUpstream(mock_upstream::MockUpstreamArgs),
}

/// Warnings are visible by default: settings accepted without effect, dropped callbacks, shared state
/// lost and regained, cooldowns and failing silent groups. Each is logged once per state change, not
/// per request; the one per-record warning (a full record channel) stays at `error`, since its drops
/// are counted in the shutdown report and `/metrics`.
const DEFAULT_LOG_FILTER: &str = "warn,mirror_router::records=error";

fn main() -> std::process::ExitCode {
    // The error and its causes on one line, never a Rust backtrace: returning the `anyhow::Error`
    // from `main` would print one whenever RUST_BACKTRACE is set, which reads as a crash when it is a
    // configuration mistake.
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Command::Serve(args) = &cli.command {
        if args.runtime == cli::Runtime::PerCore {
            // The workers run their own runtimes (`serve_per_core`); this one keeps the background
            // tasks on the main thread.
            builder = tokio::runtime::Builder::new_current_thread();
        } else if let Some(workers) = args.workers {
            builder.worker_threads(usize::from(workers));
        }
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("cannot start the Tokio runtime")?;
    match cli.command {
        Command::Serve(args) => {
            let report = runtime
                .block_on(cli::serve(&args))
                .map_err(|err| anyhow::anyhow!(mirror::core::error_chain(&err)))?;
            eprintln!(
                "Stopped: requests drained: {}; silent calls {} completed, {} failed, {} dropped; log records dropped: {}.",
                report.requests_drained,
                report.mirror.completed,
                report.mirror.failed,
                report.mirror.dropped(),
                report.writer.dropped()
            );
        }
        Command::Check(args) => {
            let text = runtime
                .block_on(async { cli::check(&args) })
                .map_err(|err| anyhow::anyhow!(mirror::core::error_chain(&err)))?;
            print!("{text}");
        }
        Command::Demo {
            requests,
            concurrency,
            log,
            ui,
        } => {
            let options = DemoOptions {
                requests,
                concurrency,
                log_path: log,
                ui: ui.then_some(std::time::Duration::from_secs(60)),
            };
            let outcome = runtime
                .block_on(demo::run(&options))
                .map_err(|err| anyhow::anyhow!(err))
                .context("the demo failed")?;
            let mirror = outcome.mirror;
            println!(
                "Sent {} chat requests to `primary` in {:.2}s: {} answered, {} failed.",
                outcome.primary_ok + outcome.primary_failed,
                outcome.elapsed.as_secs_f64(),
                outcome.primary_ok,
                outcome.primary_failed
            );
            println!(
                "Sent 1 Responses API request to `primary`: {}.",
                if outcome.responses_ok {
                    "answered"
                } else {
                    "failed"
                }
            );
            println!(
                "Silent copies: {} mirrored, {} completed, {} failed, {} dropped, {} in flight.",
                mirror.mirrored,
                mirror.completed,
                mirror.failed,
                mirror.dropped(),
                mirror.in_flight()
            );
            println!(
                "Log: {} records in {} ({} dropped by sinks).",
                outcome.records.len(),
                options.log_path.display(),
                outcome.writer.dropped()
            );
            println!();
            print!("{}", Table(&outcome.summaries));
            if !mirror.is_balanced() {
                anyhow::bail!("silent-call accounting does not balance: {mirror:?}");
            }
        }
        Command::MockUpstream(args) => {
            mock_upstream::run(&args).context("the mock upstream failed")?;
        }
        Command::Report(args) => {
            let result = runtime.block_on(report::run(&args, &mut std::io::stdout()));
            let code = report::exit_code(&result);
            if code != 0 {
                // A failed gate is not an error, but CI must tell it from a usage error and from
                // a report that could not be made: each has its own exit code.
                if let Err(err) = &result {
                    eprintln!(
                        "Error: the report failed: {}",
                        mirror::core::error_chain(err)
                    );
                }
                std::io::Write::flush(&mut std::io::stdout()).context("cannot write the report")?;
                drop(runtime);
                std::process::exit(i32::from(code));
            }
        }
    }
    Ok(())
}
