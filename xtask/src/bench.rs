//! `cargo xtask bench`: the gateway against its own mock upstream, side by side with talking to the
//! mock directly, under an open-loop constant-rate load; writes `docs/benchmarks.md`.
//!
//! Every scenario runs in one invocation, on the same machine, one after the other, so the ratios
//! between them hold even when the machine is noisy; the absolute numbers do not travel.

mod load;
mod options;
mod procs;
mod report;
mod scenarios;
mod setup;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use load::{fetch, request_bytes, LoadResult, LoadSpec};
use options::{parse, Options};
use procs::{start_gateway, start_mock, Managed};
use scenarios::{describe, scenarios, Api, Background, Scenario, Via};
use setup::{chat_body, gateway_config, messages_body, responses_body};

/// The gateway's `master_key` in the scenarios that set one (S11).
const MASTER_KEY: &str = "sk-bench-master";

/// Fixed mock ports when a peer gateway has to find them.
const PEER_PRIMARY_PORT: u16 = 18101;
const PEER_SHADOW_PORT: u16 = 18102;

/// A measured rate of one scenario against one target.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) scenario: &'static str,
    /// `mirror`, `direct`, or a peer's name.
    pub(crate) target: String,
    /// `1000`, `5000`, `max`, `soak`.
    pub(crate) label: String,
    pub(crate) offered: f64,
    pub(crate) achieved: f64,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
    /// Time to first byte (first token for streams): p50, p99, in ms.
    pub(crate) ttfb: Option<(f64, f64)>,
    /// Mean time between a stream's chunks after the first (per answer): p50, p99, in ms.
    pub(crate) chunk_gap: Option<(f64, f64)>,
    pub(crate) errors: u64,
    pub(crate) missed: u64,
    pub(crate) statuses: Vec<(u16, u64)>,
    pub(crate) silent: Option<Silent>,
    /// Gateway CPU per 1,000 requests, ms.
    pub(crate) cpu_per_k: Option<f64>,
    /// Gateway VmHWM so far, bytes.
    pub(crate) peak_rss: Option<u64>,
    /// Gateway uptime at the end of the row.
    pub(crate) uptime: Option<Duration>,
}

/// Silent-call counter deltas over one row, from `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Silent {
    pub(crate) mirrored: f64,
    pub(crate) completed: f64,
    pub(crate) failed: f64,
    pub(crate) dropped: f64,
    pub(crate) dropped_queue_full: f64,
    pub(crate) in_flight: f64,
}

/// The machine and the versions, for the report header.
#[derive(Debug, Clone)]
pub(crate) struct Environment {
    pub(crate) cpus: usize,
    pub(crate) cpu_model: String,
    pub(crate) memory: String,
    pub(crate) rustc: String,
    pub(crate) git: String,
    pub(crate) date: String,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    pub(crate) command: String,
    pub(crate) duration: Duration,
    pub(crate) quick: bool,
    pub(crate) peers: Vec<(String, String)>,
}

/// `cargo xtask bench`.
pub(crate) fn bench(root: &Path, args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    if options.build {
        println!("bench: cargo build --release -p mirror-cli --bin mirror");
        let status = Command::new(&cargo)
            .args(["build", "--release", "-p", "mirror-cli", "--bin", "mirror"])
            .current_dir(root)
            .status()
            .map_err(|err| format!("cannot run cargo: {err}"))?;
        if !status.success() {
            return Err(format!("cannot build the gateway ({status})"));
        }
    }
    let target = procs::target_dir(root);
    let binary = target
        .join("release")
        .join(format!("mirror{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        return Err(format!("{} does not exist", binary.display()));
    }
    let work = target.join("bench");
    std::fs::create_dir_all(&work)
        .map_err(|err| format!("cannot create {}: {err}", work.display()))?;

    let mut environment = environment(root, args, &options);
    let ticks = procs::clock_ticks();
    let started = Instant::now();
    let mut rows = Vec::new();
    for scenario in scenarios() {
        if let Some(only) = &options.only {
            if !only.iter().any(|id| id.eq_ignore_ascii_case(scenario.id)) {
                continue;
            }
        }
        println!("bench: == {} {}", scenario.id, scenario.title);
        let ctx = Context {
            binary: &binary,
            work: &work,
            options: &options,
            ticks,
        };
        rows.extend(run_scenario(&ctx, &scenario)?);
    }
    environment.load_after = load_average();
    println!("bench: done in {:.0} s", started.elapsed().as_secs_f64());
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| root.join("docs").join("benchmarks.md"));
    let descriptions: Vec<(String, String)> = scenarios()
        .iter()
        .map(|s| (s.id.to_owned(), describe(s)))
        .collect();
    report::write(&out, &environment, &descriptions, &rows)?;
    println!("bench: wrote {}", out.display());
    Ok(())
}

struct Context<'a> {
    binary: &'a Path,
    work: &'a Path,
    options: &'a Options,
    ticks: u64,
}

/// Where one scenario's load goes.
struct Endpoint {
    target: String,
    address: SocketAddr,
    host: String,
    auth: Option<String>,
    /// The gateway process, for CPU and memory (ours only).
    pid: Option<u32>,
    /// Whether `/metrics` has `mirror_silent_*` counters to scrape.
    metrics: bool,
    started: Instant,
}

fn run_scenario(ctx: &Context<'_>, scenario: &Scenario) -> Result<Vec<Row>, String> {
    let peers = !ctx.options.peers.is_empty();
    let (primary_port, shadow_port) = if peers {
        (PEER_PRIMARY_PORT, PEER_SHADOW_PORT)
    } else {
        (0, 0)
    };
    let (_primary, primary) = start_mock(ctx.binary, "primary", primary_port, scenario.primary)?;
    let (_shadow, shadow) = start_mock(ctx.binary, "shadow", shadow_port, scenario.shadow)?;
    let mut endpoints = Vec::new();
    let mut _gateway: Option<Managed> = None;
    match scenario.via {
        Via::Direct => endpoints.push(Endpoint {
            target: "direct".to_owned(),
            address: primary,
            host: primary.to_string(),
            auth: None,
            pid: None,
            metrics: false,
            started: Instant::now(),
        }),
        Via::Gateway => {
            let config = ctx.work.join(format!("gateway-{}.yaml", scenario.id));
            std::fs::write(
                &config,
                gateway_config(
                    primary,
                    shadow,
                    scenario.queue,
                    scenario.master_key,
                    ctx.options
                        .log
                        .then(|| ctx.work.join(format!("calls-{}.jsonl", scenario.id)))
                        .as_deref(),
                ),
            )
            .map_err(|err| format!("cannot write {}: {err}", config.display()))?;
            let log = ctx.work.join(format!("gateway-{}.log", scenario.id));
            let (gateway, address) = start_gateway(
                ctx.binary,
                &config,
                &log,
                ctx.options.workers,
                ctx.options.runtime.as_deref(),
            )?;
            endpoints.push(Endpoint {
                target: "mirror".to_owned(),
                address,
                host: address.to_string(),
                // The master key, when the scenario sets one, for the load and for `/metrics`.
                auth: scenario.master_key.then(|| MASTER_KEY.to_owned()),
                pid: Some(gateway.pid()),
                metrics: true,
                started: Instant::now(),
            });
            _gateway = Some(gateway);
            for (name, url) in &ctx.options.peers {
                let (address, host) = parse_url(url)?;
                endpoints.push(Endpoint {
                    target: name.clone(),
                    address,
                    host,
                    auth: std::env::var("MIRROR_BENCH_PEER_KEY").ok(),
                    pid: None,
                    metrics: true,
                    started: Instant::now(),
                });
            }
        }
    }
    let mut rows = Vec::new();
    for endpoint in &endpoints {
        rows.extend(run_endpoint(ctx, scenario, endpoint)?);
    }
    Ok(rows)
}

fn parse_url(url: &str) -> Result<(SocketAddr, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--peer: only http:// URLs are supported, got `{url}`"))?;
    let host = rest.split('/').next().unwrap_or(rest);
    let address = std::net::ToSocketAddrs::to_socket_addrs(host)
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(|| format!("--peer: cannot resolve `{host}`"))?;
    Ok((address, host.to_owned()))
}

/// Connections (load threads) for a rate: enough for the expected concurrency several times over.
fn connections(rate: f64, latency_ms: u64) -> usize {
    let in_flight = rate * (latency_ms as f64 + 2.0) / 1000.0;
    ((in_flight * 4.0) as usize).clamp(64, 2000)
}

fn run_endpoint(
    ctx: &Context<'_>,
    scenario: &Scenario,
    endpoint: &Endpoint,
) -> Result<Vec<Row>, String> {
    let options = ctx.options;
    let key = endpoint
        .auth
        .clone()
        .or_else(|| scenario.master_key.then(|| MASTER_KEY.to_owned()));
    let (path, body) = match scenario.api {
        Api::Chat => (
            "/v1/chat/completions",
            chat_body(scenario.model, scenario.stream, scenario.prompt_bytes),
        ),
        Api::Responses => (
            "/v1/responses",
            responses_body(scenario.model, scenario.stream),
        ),
        Api::Messages => (
            "/v1/messages",
            messages_body(scenario.model, scenario.stream),
        ),
    };
    let request = post_request(endpoint, key.as_deref(), path, &body);
    let latency_ms = scenario.primary.latency_ms;
    let spec = |rate: f64, duration: Duration| LoadSpec {
        address: endpoint.address,
        request: request.clone(),
        rate,
        duration,
        connections: if scenario.closed_loop {
            1
        } else {
            connections(rate, latency_ms)
        },
        timeout: Duration::from_secs(10),
        closed: scenario.closed_loop,
    };
    let background = scenario.background.map(|background| {
        let body = chat_body(scenario.model, background.stream, background.prompt_bytes);
        let request = post_request(
            endpoint,
            background.key.or(key.as_deref()),
            "/v1/chat/completions",
            &body,
        );
        (background, request)
    });
    let background = background.as_ref().map(|(background, request)| {
        (
            *background,
            LoadSpec {
                address: endpoint.address,
                request: request.clone(),
                rate: background.rate,
                duration: options.duration,
                connections: connections(background.rate, latency_ms),
                timeout: Duration::from_secs(10),
                closed: false,
            },
        )
    });
    let background = background.as_ref();
    let rates: &[f64] = match (&options.rates, options.quick) {
        (Some(rates), _) => rates,
        (None, _) if scenario.rates.is_some() => scenario.rates.unwrap_or_default(),
        (None, true) => &[1000.0],
        (None, false) => &[1000.0, 5000.0],
    };
    // Warm up: connections, pools, allocator; never faster than the slowest measured rate, so that
    // a slow peer does not start with a backlog.
    let warm_rate = rates.iter().copied().fold(500.0, f64::min);
    let warm = load::run(&spec(warm_rate, Duration::from_secs(1)));
    if warm.ok == 0 {
        return Err(format!(
            "{} via {}: no request succeeded while warming up (statuses {:?}, first error {:?})",
            scenario.id, endpoint.target, warm.statuses, warm.first_error
        ));
    }
    let mut rows = Vec::new();
    if scenario.closed_loop {
        // The warm-up above ran closed too; one row, as fast as one client goes.
        for mut row in measure(
            ctx,
            scenario,
            endpoint,
            &spec(1.0, options.duration),
            None,
            "c=1",
        )? {
            row.offered = row.achieved;
            print_row(&row);
            rows.push(row);
        }
        return Ok(rows);
    }
    for &rate in rates {
        for row in measure(
            ctx,
            scenario,
            endpoint,
            &spec(rate, options.duration),
            background,
            &format!("{rate:.0}"),
        )? {
            print_row(&row);
            rows.push(row);
        }
    }
    // The maximum sustainable rate: double until a probe fails, then bisect.
    let limit_ms = latency_ms as f64 + 25.0;
    let probe_duration = if options.quick {
        Duration::from_millis(1500)
    } else {
        Duration::from_secs(2)
    };
    let max_probes = match (options.max && scenario.settle.is_none(), options.quick) {
        (false, _) => 0,
        (true, true) => 5,
        (true, false) => 7,
    };
    let (mut lo, mut hi) = (0.0_f64, None::<f64>);
    let mut rate = 4000.0;
    for _ in 0..max_probes {
        std::thread::sleep(Duration::from_millis(300));
        let result = load::run(&spec(rate, probe_duration));
        let p99 = result.latency.value_at_quantile(0.99) as f64 / 1000.0;
        let errors = result.errors as f64 / result.scheduled.max(1) as f64;
        let ok = result.achieved_rps() >= 0.95 * rate && errors <= 0.01 && p99 <= limit_ms;
        println!(
            "bench:   probe {rate:>7.0} rps: achieved {:>7.0}, p99 {p99:>8.2} ms, errors {:.2}% -> {}",
            result.achieved_rps(),
            errors * 100.0,
            if ok { "ok" } else { "over" }
        );
        if ok {
            lo = rate;
        } else {
            hi = Some(rate);
            // Let the backlog drain before the next probe.
            std::thread::sleep(Duration::from_secs(1));
        }
        rate = match hi {
            None => (rate * 2.0).min(128_000.0),
            Some(hi) if (hi - lo) / hi < 0.08 => break,
            Some(hi) if lo == 0.0 => hi / 2.0,
            Some(hi) => ((lo + hi) / 2.0 / 100.0).round() * 100.0,
        };
    }
    if lo > 0.0 {
        std::thread::sleep(Duration::from_millis(500));
        for mut row in measure(
            ctx,
            scenario,
            endpoint,
            &spec(lo, options.duration),
            None,
            "max",
        )? {
            row.offered = lo;
            print_row(&row);
            rows.push(row);
        }
    } else if max_probes > 0 {
        println!("bench:   no probe rate was sustainable");
    }
    if !options.quick && endpoint.pid.is_some() {
        let remaining = scenario
            .min_uptime
            .saturating_sub(endpoint.started.elapsed());
        if !remaining.is_zero() {
            let rate = if lo > 0.0 { lo.min(5000.0) } else { 1000.0 };
            for row in measure(
                ctx,
                scenario,
                endpoint,
                &spec(rate, remaining),
                None,
                "soak",
            )? {
                print_row(&row);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

fn print_row(row: &Row) {
    let silent = row.silent.map_or_else(String::new, |s| {
        format!(
            " silent m/c/f/d {:.0}/{:.0}/{:.0}/{:.0}",
            s.mirrored, s.completed, s.failed, s.dropped
        )
    });
    println!(
        "bench:   {:<5} {:>6.0} rps offered, {:>7.0} achieved; p50 {:.3} p90 {:.3} p99 {:.3} max {:.3} ms; errors {}{silent}{}",
        row.label,
        row.offered,
        row.achieved,
        row.p50,
        row.p90,
        row.p99,
        row.max,
        row.errors,
        row.peak_rss
            .map_or_else(String::new, |b| format!(" rss {:.1} MB", b as f64 / 1048576.0))
    );
}

/// `POST path` with `body`, sending `key` as the bearer key when given.
fn post_request(
    endpoint: &Endpoint,
    key: Option<&str>,
    path: &str,
    body: &[u8],
) -> std::sync::Arc<[u8]> {
    let mut headers = Vec::new();
    if let Some(key) = key {
        headers.push(("authorization", format!("Bearer {key}")));
    }
    request_bytes("POST", &endpoint.host, path, &headers, body)
}

/// One measured rate: the row of `spec`'s load and, when a background load runs alongside it,
/// that load's row (labelled `RATE + LABEL`). CPU per 1k requests counts both loads' requests.
fn measure(
    ctx: &Context<'_>,
    scenario: &Scenario,
    endpoint: &Endpoint,
    spec: &LoadSpec,
    background: Option<&(Background, LoadSpec)>,
    label: &str,
) -> Result<Vec<Row>, String> {
    // The warm-up's (or the previous rate's) copies must not land in this row.
    settle(scenario, endpoint);
    let before = endpoint.metrics.then(|| scrape(endpoint)).flatten();
    let cpu_before = endpoint.pid.and_then(procs::cpu_ticks);
    let (result, side) = std::thread::scope(|scope| {
        let side = background.map(|(_, spec)| scope.spawn(|| load::run(spec)));
        let result = load::run(spec);
        (result, side.and_then(|side| side.join().ok()))
    });
    let cpu_after = endpoint.pid.and_then(procs::cpu_ticks);
    // Let silent calls started by the run finish (the slow shadow's never do in time, unless the
    // scenario waits for them).
    std::thread::sleep(Duration::from_millis(200));
    settle(scenario, endpoint);
    let after = endpoint.metrics.then(|| scrape(endpoint)).flatten();
    let silent = match (before, after) {
        (Some(before), Some(after)) => {
            let delta = |key: &str| {
                after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
            };
            let dropped: f64 = after
                .keys()
                .filter(|key| key.starts_with("mirror_silent_dropped_total"))
                .map(|key| delta(key))
                .sum();
            Some(Silent {
                mirrored: delta("mirror_silent_mirrored_total"),
                completed: delta("mirror_silent_completed_total"),
                failed: delta("mirror_silent_failed_total"),
                dropped,
                dropped_queue_full: delta("mirror_silent_dropped_total{reason=\"queue_full\"}"),
                in_flight: after.get("mirror_silent_in_flight").copied().unwrap_or(0.0),
            })
        }
        _ => None,
    };
    let requests =
        result.ok + result.errors + side.as_ref().map_or(0, |side| side.ok + side.errors);
    let cpu_per_k = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) if requests > 0 => {
            Some((after - before) as f64 * 1000.0 / ctx.ticks as f64 * 1000.0 / requests as f64)
        }
        _ => None,
    };
    let mut rows = vec![row(
        scenario, endpoint, label, spec.rate, &result, silent, cpu_per_k,
    )];
    if let (Some(side), Some((background, side_spec))) = (side, background) {
        let label = format!("{label} + {}", background.label);
        let mut side_row = row(
            scenario,
            endpoint,
            &label,
            side_spec.rate,
            &side,
            None,
            cpu_per_k,
        );
        if background.key.is_some() {
            // A flood of bad keys succeeds when it is refused: its rate is the 401s per second.
            let refused: u64 = side
                .statuses
                .iter()
                .filter(|(status, _)| *status == 401)
                .map(|(_, count)| count)
                .sum();
            side_row.achieved = refused as f64 / side.elapsed.as_secs_f64().max(1e-9);
            println!(
                "bench:   {label}: {refused} refused (401), {:.0} per second",
                side_row.achieved
            );
        }
        rows.push(side_row);
    }
    Ok(rows)
}

/// Waits, if the scenario asks for it, until no silent copy is in flight (or its `settle` time).
fn settle(scenario: &Scenario, endpoint: &Endpoint) {
    let Some(settle) = scenario.settle.filter(|_| endpoint.metrics) else {
        return;
    };
    let until = Instant::now() + settle;
    while Instant::now() < until
        && scrape(endpoint)
            .and_then(|metrics| metrics.get("mirror_silent_in_flight").copied())
            .is_some_and(|in_flight| in_flight > 0.0)
    {
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn row(
    scenario: &Scenario,
    endpoint: &Endpoint,
    label: &str,
    offered: f64,
    result: &LoadResult,
    silent: Option<Silent>,
    cpu_per_k: Option<f64>,
) -> Row {
    let ms = |q: f64| result.latency.value_at_quantile(q) as f64 / 1000.0;
    let ttfb = scenario.stream.then(|| {
        (
            result.first_byte.value_at_quantile(0.5) as f64 / 1000.0,
            result.first_byte.value_at_quantile(0.99) as f64 / 1000.0,
        )
    });
    let chunk_gap = scenario.stream.then(|| {
        (
            result.chunk_gap.value_at_quantile(0.5) as f64 / 1000.0,
            result.chunk_gap.value_at_quantile(0.99) as f64 / 1000.0,
        )
    });
    if let Some(error) = &result.first_error {
        println!("bench:   first transport error: {error}");
    }
    Row {
        scenario: scenario.id,
        target: endpoint.target.clone(),
        label: label.to_owned(),
        offered,
        achieved: result.achieved_rps(),
        p50: ms(0.5),
        p90: ms(0.9),
        p99: ms(0.99),
        max: result.latency.max() as f64 / 1000.0,
        ttfb,
        chunk_gap,
        errors: result.errors,
        missed: result.missed,
        statuses: result.statuses.clone(),
        silent,
        cpu_per_k,
        peak_rss: endpoint
            .pid
            .and_then(|pid| procs::status_bytes(pid, "VmHWM")),
        uptime: endpoint.pid.map(|_| endpoint.started.elapsed()),
    }
}

/// The gateway's `/metrics`, as `name{labels}` -> value.
fn scrape(endpoint: &Endpoint) -> Option<BTreeMap<String, f64>> {
    let mut headers = Vec::new();
    if let Some(key) = &endpoint.auth {
        headers.push(("authorization", format!("Bearer {key}")));
    }
    let request = request_bytes("GET", &endpoint.host, "/metrics", &headers, b"");
    let (status, body) = fetch(endpoint.address, &request).ok()?;
    if status != 200 {
        return None;
    }
    let text = String::from_utf8_lossy(&body);
    let values: BTreeMap<String, f64> = text
        .lines()
        .filter(|line| line.starts_with("mirror_silent_"))
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect();
    (!values.is_empty()).then_some(values)
}

fn command_output(program: &str, args: &[&str], root: &Path) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(root)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn environment(root: &Path, args: &[String], options: &Options) -> Environment {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
        .map_or_else(
            || "unknown".to_owned(),
            |(_, model)| model.trim().to_owned(),
        );
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or_else(
            || "unknown".to_owned(),
            |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0),
        );
    let mut git = command_output("git", &["rev-parse", "--short", "HEAD"], root)
        .unwrap_or_else(|| "unknown".to_owned());
    let dirty = command_output(
        "git",
        &["status", "--porcelain", "--untracked-files=no"],
        root,
    )
    .is_some_and(|status| !status.is_empty());
    if dirty {
        git.push_str(" (with uncommitted changes)");
    }
    Environment {
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        cpu_model,
        memory,
        rustc: command_output("rustc", &["-V"], root).unwrap_or_else(|| "unknown".to_owned()),
        git,
        date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"], root)
            .unwrap_or_else(|| "unknown".to_owned()),
        load_before: load_average(),
        load_after: String::new(),
        command: if args.is_empty() {
            "cargo xtask bench".to_owned()
        } else {
            format!("cargo xtask bench {}", args.join(" "))
        },
        duration: options.duration,
        quick: options.quick,
        peers: options.peers.clone(),
    }
}
