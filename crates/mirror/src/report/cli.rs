//! `mirror report`'s arguments and the command itself.

use std::io::Write;
use std::path::PathBuf;

use super::input::feed_paths;
use super::judge::judge;
use super::{render_html, Analyzer, Report, ReportOptions, Table};

/// How `mirror report` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// A table for the terminal.
    #[default]
    Table,
    /// The whole report as JSON.
    Json,
}

/// `mirror report`: compare primary and silent calls from JSONL call logs.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// JSONL call logs (rotated files in order; `-` reads standard input).
    #[arg(required = true, value_name = "LOGS")]
    pub logs: Vec<PathBuf>,
    /// Output on standard output.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Also write a self-contained HTML report (inline SVG charts, no external resources) here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Records a call waits for its partner before it counts as unpaired; bounds memory.
    #[arg(long, default_value_t = 100_000)]
    pub window: usize,
    /// Most divergent pairs kept per group pair.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Ask this model group to judge pairs (blind, order randomised). Off unless given; needs
    /// `--config`.
    #[arg(long, value_name = "MODEL_GROUP", requires = "config")]
    pub judge: Option<String>,
    /// The LiteLLM-style config (`model_list`, `router_settings`) that defines the judge's group.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Pairs judged per group pair at most (a uniform sample).
    #[arg(long, default_value_t = 200)]
    pub judge_samples: usize,
    /// Seed for the judge's sampling and answer order.
    #[arg(long, default_value_t = ReportOptions::default().seed)]
    pub seed: u64,
    /// Never draw a progress bar (it is drawn only when standard error is a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// Why `mirror report` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A log could not be read.
    #[error("cannot read `{}`", path.display())]
    Read {
        /// The log.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The report could not be written.
    #[error("cannot write the report to `{}`", path.display())]
    Write {
        /// Where (`-` for standard output).
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The judge's configuration is unusable.
    #[error("cannot set up the judge from `{}`", path.display())]
    JudgeConfig {
        /// The configuration file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The judge's group is not in its configuration.
    #[error("the judge's model group `{group}` is not in `{}`", path.display())]
    UnknownJudge {
        /// The group asked for.
        group: String,
        /// The configuration file.
        path: PathBuf,
    },
}

impl ReportArgs {
    /// The analysis options these arguments ask for.
    pub fn options(&self) -> ReportOptions {
        ReportOptions {
            window: self.window,
            top: self.top,
            judge_samples: if self.judge.is_some() {
                self.judge_samples
            } else {
                0
            },
            seed: self.seed,
        }
    }
}

fn judge_router(path: &PathBuf, group: &str) -> Result<mirror_router::Router, ReportError> {
    let error = |source: Box<dyn std::error::Error + Send + Sync>| ReportError::JudgeConfig {
        path: path.clone(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(|err| error(Box::new(err)))?;
    let config = mirror_router::RouterConfig::from_yaml_str(&text, &path.display().to_string())
        .map_err(|err| error(Box::new(err)))?;
    if !config.model_list.iter().any(|d| d.model_name == group) {
        return Err(ReportError::UnknownJudge {
            group: group.to_owned(),
            path: path.clone(),
        });
    }
    crate::router_builder()
        .map_err(|err| error(Box::new(err)))?
        .config(config)
        .origin(path.display().to_string())
        .build()
        .map_err(|err| error(Box::new(err)))
}

/// Runs `mirror report`: reads the logs, optionally asks the judge, prints the table or JSON to `out`
/// and writes the HTML file.
///
/// Reading is blocking I/O on the calling thread (the CLI runs it under `block_on`); only the judge
/// awaits.
///
/// # Errors
///
/// Fails when a log cannot be read, the judge cannot be set up, or the output cannot be written.
/// Failed judge calls are counted, not raised.
pub async fn run(args: &ReportArgs, out: &mut (dyn Write + Send)) -> Result<Report, ReportError> {
    let options = args.options();
    // Set the judge up first, so a bad configuration fails before a long read.
    let judge_setup = match (&args.judge, &args.config) {
        (Some(group), Some(path)) => Some((group.as_str(), judge_router(path, group)?)),
        _ => None,
    };
    let mut analyzer = Analyzer::new(options.clone());
    feed_paths(&args.logs, &mut analyzer, !args.no_progress)?;
    let (mut report, samples) = analyzer.finish_with_samples();
    if let Some((group, router)) = &judge_setup {
        for (i, (edge, samples)) in report.edges.iter_mut().zip(samples).enumerate() {
            let seed = options.seed.wrapping_add(i as u64);
            edge.judge = Some(judge(router, group, samples, seed).await);
        }
    }
    if let Some((_, router)) = judge_setup {
        router.shutdown(std::time::Duration::from_secs(5)).await;
    }
    let stdout_error = |source| ReportError::Write {
        path: PathBuf::from("-"),
        source,
    };
    match args.format {
        OutputFormat::Table => write!(out, "{}", Table(&report.edges)).map_err(stdout_error)?,
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &report)
                .map_err(|err| stdout_error(err.into()))?;
            writeln!(out).map_err(stdout_error)?;
        }
    }
    if let Some(path) = &args.html {
        std::fs::write(path, render_html(&report)).map_err(|source| ReportError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(report)
}
