//! `mirror report`: its arguments, the configuration it reads (S3 parameters, the judge's router)
//! and the command itself, around the `mirror-report` library.

use std::io::Write;
use std::path::PathBuf;

use mirror::logging::{S3Config, S3Reader};
use mirror_report::{
    feed_paths, feed_s3, judge, parse_s3_url, reader_config, render_html, s3_progress, Analyzer,
    Gate, Report, ReportError, ReportOptions, Table,
};

/// The exit code of `mirror report --gate` when a criterion failed (1 is any other failure, 2 a
/// usage error, as clap exits).
pub const EXIT_GATE_FAILED: u8 = 3;
/// The exit code of a usage error: bad arguments (clap) or a bad gate specification.
pub const EXIT_USAGE: u8 = 2;
/// The exit code of any other failure (a log that cannot be read, a bad judge configuration).
pub const EXIT_FAILURE: u8 = 1;

/// How `mirror report` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// A table for the terminal.
    #[default]
    Table,
    /// The whole report as JSON.
    Json,
}

/// `mirror report`: compare primary and silent calls from JSONL call logs, in files or in S3.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// JSONL call logs (rotated files in order; `-` reads standard input), or S3 prefixes
    /// `s3://BUCKET/PREFIX` written by the S3 sink (credentials and endpoint from `--config`,
    /// `--s3-endpoint` and `AWS_*`).
    #[arg(required_unless_present = "s3_prefix", value_name = "LOGS")]
    pub logs: Vec<PathBuf>,
    /// Also read every object under this key prefix of the S3 bucket in `--config`
    /// (`litellm_settings.s3_callback_params`) or `--s3-bucket`, after the LOGS.
    #[arg(long, value_name = "PREFIX")]
    pub s3_prefix: Option<String>,
    /// The bucket `--s3-prefix` reads, instead of the configured `s3_bucket_name`.
    #[arg(long, value_name = "BUCKET", requires = "s3_prefix")]
    pub s3_bucket: Option<String>,
    /// The S3 endpoint (an S3-compatible server), instead of the configured `s3_endpoint_url`.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
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
    /// The LiteLLM-style config: `model_list` and `router_settings` define the judge's group,
    /// `litellm_settings.s3_callback_params` the S3 parameters for S3 logs.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Pairs judged per group pair at most (a uniform sample).
    #[arg(long, default_value_t = 200)]
    pub judge_samples: usize,
    /// Seed for the judge's sampling and answer order, and for the bootstrap.
    #[arg(long, default_value_t = ReportOptions::default().seed)]
    pub seed: u64,
    /// Pairs kept per group pair (a uniform sample) for the confidence intervals; bounds their
    /// memory and work.
    #[arg(long, default_value_t = mirror_report::DEFAULT_RESERVOIR)]
    pub resample_pairs: usize,
    /// Bootstrap resamples (and permutations of the latency test) per group pair.
    #[arg(long, default_value_t = mirror_report::DEFAULT_RESAMPLES)]
    pub resamples: usize,
    /// Check thresholds and exit with code 3 when one fails, for CI pipelines: comma-separated
    /// `key=value`s among `p99_latency_pct`, `p50_latency_pct`, `error_rate_points`,
    /// `cost_per_1k_usd` (at most), `agreement_pct`, `judge_win_or_tie_pct` (at least), plus
    /// `min_pairs` (default 30) and `insufficient=fail|pass` (default fail). See docs/experiments.md.
    #[arg(long, value_name = "CRITERIA")]
    pub gate: Option<String>,
    /// The same settings from a file: a flat YAML map (`agreement_pct: 95`, one a line); `--gate`
    /// adds to it.
    #[arg(long, value_name = "FILE")]
    pub gate_file: Option<PathBuf>,
    /// Never draw a progress bar (it is drawn only when standard error is a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

impl ReportArgs {
    /// The gate these arguments ask for, if any.
    ///
    /// # Errors
    ///
    /// The gate file cannot be read, or a setting is unknown or not a number.
    pub fn gate(&self) -> Result<Option<Gate>, ReportError> {
        if self.gate.is_none() && self.gate_file.is_none() {
            return Ok(None);
        }
        let mut gate = Gate::default();
        if let Some(path) = &self.gate_file {
            let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read {
                path: path.clone(),
                source,
            })?;
            gate.add_spec(&text, &path.display().to_string())
                .map_err(ReportError::Gate)?;
        }
        if let Some(spec) = &self.gate {
            gate.add_spec(spec, "--gate").map_err(ReportError::Gate)?;
        }
        if gate.criteria.is_empty() {
            return Err(ReportError::Gate(mirror_report::GateError {
                origin: "--gate".to_owned(),
                message: "no criterion given".to_owned(),
            }));
        }
        Ok(Some(gate))
    }

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
            resample_pairs: self.resample_pairs,
            resamples: self.resamples,
        }
    }
}

fn judge_router(path: &PathBuf, group: &str) -> Result<mirror::router::Router, ReportError> {
    let error = |source: Box<dyn std::error::Error + Send + Sync>| ReportError::JudgeConfig {
        path: path.clone(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(|err| error(Box::new(err)))?;
    let config = mirror::router::RouterConfig::from_yaml_str(&text, &path.display().to_string())
        .map_err(|err| error(Box::new(err)))?;
    if !config.model_list.iter().any(|d| d.model_name == group) {
        return Err(ReportError::UnknownJudge {
            group: group.to_owned(),
            path: path.clone(),
        });
    }
    mirror::router_builder()
        .map_err(|err| error(Box::new(err)))?
        .config(config)
        .origin(path.display().to_string())
        .build()
        .map_err(|err| error(Box::new(err)))
}

/// Where records are read from, in order.
enum Source {
    /// Local files (or standard input), read with one progress bar.
    Files(Vec<PathBuf>),
    /// Every object under a key prefix of a bucket.
    S3 {
        reader: Box<S3Reader>,
        prefix: String,
        /// `s3://bucket/prefix`, for messages.
        location: String,
    },
}

/// The sources `args` name, with an S3 reader per S3 prefix (set up before anything is read, so
/// bad parameters fail early).
fn sources(args: &ReportArgs) -> Result<Vec<Source>, ReportError> {
    /// A file, or a bucket (`None`: the configured one) and a key prefix.
    enum Wanted {
        File(PathBuf),
        S3(Option<String>, String),
    }
    let mut wanted = Vec::new();
    for path in &args.logs {
        match path.to_str().filter(|p| p.starts_with("s3://")) {
            Some(location) => {
                let (bucket, prefix) =
                    parse_s3_url(location).ok_or_else(|| ReportError::S3Config {
                        message: format!("`{location}` names no bucket (s3://BUCKET/PREFIX)"),
                        source: None,
                    })?;
                wanted.push(Wanted::S3(Some(bucket), prefix));
            }
            None => wanted.push(Wanted::File(path.clone())),
        }
    }
    if let Some(prefix) = &args.s3_prefix {
        wanted.push(Wanted::S3(args.s3_bucket.clone(), prefix.clone()));
    }
    let mut params: Option<Option<S3Config>> = None;
    let mut sources = Vec::new();
    for source in wanted {
        match source {
            Wanted::File(path) => match sources.last_mut() {
                Some(Source::Files(paths)) => paths.push(path),
                _ => sources.push(Source::Files(vec![path])),
            },
            Wanted::S3(bucket, prefix) => {
                if params.is_none() {
                    params = Some(s3_params(args)?);
                }
                let base = params.as_ref().and_then(Option::as_ref);
                let config = reader_config(base, bucket.as_deref(), args.s3_endpoint.as_deref())?;
                let reader = S3Reader::new(config).map_err(|err| ReportError::S3Config {
                    message: "the S3 parameters are unusable".to_owned(),
                    source: Some(Box::new(err)),
                })?;
                let location = format!("s3://{}/{prefix}", reader.bucket());
                sources.push(Source::S3 {
                    reader: Box::new(reader),
                    prefix,
                    location,
                });
            }
        }
    }
    Ok(sources)
}

/// `litellm_settings.s3_callback_params` of `--config`, if both are there.
fn s3_params(args: &ReportArgs) -> Result<Option<S3Config>, ReportError> {
    let Some(path) = &args.config else {
        return Ok(None);
    };
    let config =
        mirror::config::GatewayConfig::from_file(path).map_err(|err| ReportError::S3Config {
            message: format!("cannot read the S3 parameters from `{}`", path.display()),
            source: Some(Box::new(err)),
        })?;
    Ok(config.litellm_settings.s3_callback_params)
}

/// Runs `mirror report`: reads the logs, optionally asks the judge, prints the table or JSON to `out`
/// and writes the HTML file.
///
/// Reading files is blocking I/O on the calling thread (the CLI runs it under `block_on`); S3
/// prefixes and the judge await.
///
/// # Errors
///
/// Fails when a log cannot be read, the S3 parameters or the judge cannot be set up, or the output
/// cannot be written.
/// Failed judge calls are counted, not raised.
pub async fn run(args: &ReportArgs, out: &mut (dyn Write + Send)) -> Result<Report, ReportError> {
    let options = args.options();
    let gate = args.gate()?;
    // Set the judge up first, so a bad configuration fails before a long read.
    let judge_setup = match (&args.judge, &args.config) {
        (Some(group), Some(path)) => Some((group.as_str(), judge_router(path, group)?)),
        _ => None,
    };
    let sources = sources(args)?;
    let mut analyzer = Analyzer::new(options.clone());
    for source in &sources {
        match source {
            Source::Files(paths) => feed_paths(paths, &mut analyzer, !args.no_progress)?,
            Source::S3 {
                reader,
                prefix,
                location,
            } => {
                let progress = s3_progress(!args.no_progress);
                feed_s3(reader, prefix, &mut analyzer, &progress)
                    .await
                    .map_err(|source| ReportError::S3 {
                        location: location.clone(),
                        source,
                    })?;
                progress.finish_and_clear();
            }
        }
    }
    let (mut report, samples) = analyzer.finish_with_samples();
    if let Some((group, router)) = &judge_setup {
        for (i, (edge, samples)) in report.edges.iter_mut().zip(samples).enumerate() {
            let seed = options.seed.wrapping_add(i as u64);
            let ask = |request| async move {
                router
                    .chat(request)
                    .await
                    .map(|routed| routed.response.text())
            };
            edge.judge = Some(judge(ask, group, samples, seed).await);
        }
    }
    if let Some((_, router)) = judge_setup {
        router.shutdown(std::time::Duration::from_secs(5)).await;
    }
    if let Some(gate) = &gate {
        report.gate = Some(gate.evaluate(&report));
    }
    let stdout_error = |source| ReportError::Write {
        path: PathBuf::from("-"),
        source,
    };
    match args.format {
        OutputFormat::Table => {
            write!(out, "{}", Table(&report.edges)).map_err(stdout_error)?;
            let skipped = report.totals.malformed_lines;
            if skipped > 0 {
                // A torn last line after a crash, or a foreign line: said, never silently dropped.
                writeln!(
                    out,
                    "Skipped {skipped} malformed line{} (not a call record; a write cut by a crash \
                     leaves one); {} records read.",
                    if skipped == 1 { "" } else { "s" },
                    report.totals.records
                )
                .map_err(stdout_error)?;
            }
            if let Some(gate) = &report.gate {
                write!(out, "{gate}").map_err(stdout_error)?;
            }
        }
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

/// The process exit code for the outcome of [`run`]: 0, [`EXIT_GATE_FAILED`] when a gate failed,
/// [`EXIT_USAGE`] for a bad gate specification, [`EXIT_FAILURE`] for any other error.
pub fn exit_code(result: &Result<Report, ReportError>) -> u8 {
    match result {
        Ok(report) if report.gate.as_ref().is_some_and(|g| !g.passed) => EXIT_GATE_FAILED,
        Ok(_) => 0,
        Err(ReportError::Gate(_)) => EXIT_USAGE,
        Err(_) => EXIT_FAILURE,
    }
}
