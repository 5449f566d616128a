//! `cargo xtask bench`'s command line.

use std::path::PathBuf;
use std::time::Duration;

const USAGE: &str = "usage: cargo xtask bench [--quick] [--duration SECS] [--peer NAME=URL]... \
[--only S1,S3,...] [--out FILE] [--no-build] [--workers N] [--runtime NAME] [--rates R1,R2,...] [--no-max] [--log]

  --quick          1,000 RPS and the maximum only, short runs (under two minutes)
  --duration SECS  seconds per measured rate (default 10; --quick 3)
  --peer NAME=URL  also run every gateway scenario against another gateway already running on the
                   same mock upstreams (fixed ports 18101 and 18102; see docs/benchmarks.md) and add
                   ratio columns; MIRROR_BENCH_PEER_KEY is sent as its bearer key
  --only LIST      run only these scenarios (the table is still written)
  --out FILE       where to write the report (default docs/benchmarks.md)
  --no-build       use the release binary already built
  --workers N      start the gateway with `mirror serve --workers N` (default: one per CPU)
  --runtime NAME   start the gateway with `mirror serve --runtime NAME` (shared, the default, or per-core)
  --rates LIST     measure at these rates instead of 1,000 and 5,000 RPS (e.g. 50 for a slow peer)
  --no-max         skip the search for the maximum sustainable rate
  --log            turn the gateway's JSONL call log on (`mirror_settings.log_file`, the default a
                   user runs; without it the gateway alone is measured)";

#[derive(Debug, Clone)]
pub(super) struct Options {
    pub(super) quick: bool,
    pub(super) duration: Duration,
    pub(super) peers: Vec<(String, String)>,
    pub(super) only: Option<Vec<String>>,
    pub(super) out: Option<PathBuf>,
    pub(super) build: bool,
    pub(super) workers: Option<u16>,
    pub(super) runtime: Option<String>,
    pub(super) rates: Option<Vec<f64>>,
    pub(super) max: bool,
    /// Whether the gateway writes its JSONL call log.
    pub(super) log: bool,
}

pub(super) fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        quick: false,
        duration: Duration::ZERO,
        peers: Vec::new(),
        only: None,
        out: None,
        build: true,
        workers: None,
        runtime: None,
        rates: None,
        max: true,
        log: false,
    };
    let mut duration = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--no-build" => options.build = false,
            "--no-max" => options.max = false,
            "--log" => options.log = true,
            "--rates" => {
                let text = value("--rates")?;
                let rates = text
                    .split(',')
                    .map(|rate| {
                        rate.trim()
                            .parse()
                            .ok()
                            .filter(|r: &f64| r.is_finite() && *r > 0.0)
                            .ok_or_else(|| format!("--rates: `{rate}` is not a positive number"))
                    })
                    .collect::<Result<Vec<f64>, String>>()?;
                options.rates = Some(rates);
            }
            "--duration" => {
                let text = value("--duration")?;
                let secs: f64 = text
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| format!("--duration: `{text}` is not a positive number"))?;
                duration = Some(Duration::from_secs_f64(secs));
            }
            "--peer" => {
                let text = value("--peer")?;
                let (name, url) = text
                    .split_once('=')
                    .ok_or_else(|| format!("--peer: expected NAME=URL, got `{text}`"))?;
                options.peers.push((name.to_owned(), url.to_owned()));
            }
            "--only" => {
                let text = value("--only")?;
                options.only = Some(text.split(',').map(|s| s.trim().to_owned()).collect());
            }
            "--out" => options.out = Some(PathBuf::from(value("--out")?)),
            "--workers" => {
                let text = value("--workers")?;
                let workers = text
                    .parse()
                    .ok()
                    .filter(|n: &u16| *n > 0)
                    .ok_or_else(|| format!("--workers: `{text}` is not a positive number"))?;
                options.workers = Some(workers);
            }
            "--runtime" => options.runtime = Some(value("--runtime")?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    options.duration = duration.unwrap_or(if options.quick {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(10)
    });
    Ok(options)
}
