//! Prometheus metrics, kept in atomics: recording never takes a lock.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use std::time::Duration;

use mirror_core::{CallRecord, CallStatus};
use mirror_logging::SinkStats;
use mirror_router::{CacheStats, MirrorSnapshot, SharedStateStats};
use rustc_hash::FxHashMap;

/// Bucket bounds in seconds for call latency.
const CALL_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Bucket bounds in seconds for the gateway's own overhead.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05,
];

#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, seconds: f64) {
        if let Some(index) = self.bounds.iter().position(|bound| seconds <= *bound) {
            self.buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let nanos = (seconds.max(0.0) * 1e9) as u64;
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        #[allow(clippy::cast_precision_loss)]
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Calls of one deployment, split by primary and silent.
#[derive(Debug)]
struct Series {
    group: String,
    deployment: String,
    /// By side (primary, silent) and outcome (success, failure, cancelled).
    calls: [[AtomicU64; 3]; 2],
    latency: [Histogram; 2],
}

impl Series {
    fn new(group: &str, deployment: &str) -> Self {
        Series {
            group: group.to_owned(),
            deployment: deployment.to_owned(),
            calls: Default::default(),
            latency: [Histogram::new(CALL_BUCKETS), Histogram::new(CALL_BUCKETS)],
        }
    }
}

/// The series of every configured deployment, and of every group for calls that reached none.
///
/// FxHash instead of SipHash: keys are fixed at registration and record fields are only looked up.
#[derive(Debug, Default)]
struct SeriesIndex {
    /// By deployment id: ids are unique across groups, so one lookup finds a record's series.
    by_deployment: FxHashMap<String, Arc<Series>>,
    /// By group, for calls that reached no deployment (empty `model_id`).
    unrouted: FxHashMap<String, Arc<Series>>,
}

/// The gateway's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// Set when a router is built (and rebuilt by a reload), then read without a lock.
    series: ArcSwap<SeriesIndex>,
    other: Arc<Series>,
    overhead: Histogram,
    responses: [AtomicU64; 6],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            series: ArcSwap::default(),
            other: Arc::new(Series::new("", "")),
            overhead: Histogram::new(OVERHEAD_BUCKETS),
            responses: Default::default(),
        }
    }
}

impl Metrics {
    /// Creates a series per `(group, deployment id)`; calls of other deployments count as `other`.
    /// A reload registers again: series of deployments seen before keep their counts (Prometheus
    /// sees no reset); series of removed deployments stay, frozen.
    pub(crate) fn register(&self, deployments: &[(String, String)]) {
        let old = self.series.load();
        let mut index = SeriesIndex {
            by_deployment: old.by_deployment.clone(),
            unrouted: old.unrouted.clone(),
        };
        for (group, deployment) in deployments {
            index
                .by_deployment
                .entry(deployment.to_owned())
                .or_insert_with(|| Arc::new(Series::new(group, deployment)));
            index
                .unrouted
                .entry(group.to_owned())
                .or_insert_with(|| Arc::new(Series::new(group, "")));
        }
        self.series.store(Arc::new(index));
    }

    /// Counts one call record.
    pub(crate) fn observe(&self, record: &CallRecord) {
        let index = self.series.load();
        let series = Some(&**index)
            .and_then(|index| {
                if record.model_id.is_empty() {
                    index.unrouted.get(&record.model_group)
                } else {
                    index
                        .by_deployment
                        .get(&record.model_id)
                        .filter(|series| series.group == record.model_group)
                }
            })
            .unwrap_or(&self.other);
        let side = usize::from(record.metadata.is_silent_experiment);
        let outcome = match record.status {
            CallStatus::Success => 0,
            CallStatus::Failure => 1,
            CallStatus::Cancelled => 2,
        };
        series.calls[side][outcome].fetch_add(1, Ordering::Relaxed);
        series.latency[side].observe(record.response_time);
    }

    /// Counts the gateway's own time on one request (everything but the routed call).
    pub(crate) fn observe_overhead(&self, overhead: Duration) {
        self.overhead.observe(overhead.as_secs_f64());
    }

    /// Counts one HTTP response by status class.
    pub(crate) fn observe_status(&self, status: u16) {
        let class = usize::from(status / 100).min(5);
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Renders everything in the Prometheus text format.
    pub(crate) fn render(
        &self,
        mirror: &MirrorSnapshot,
        sinks: &[SinkStats],
        shared: &SharedStateStats,
    ) -> String {
        let mut out = String::with_capacity(8 * 1024);
        out.push_str(
            "# HELP mirror_calls_total Calls by model group, deployment, side and status.\n",
        );
        out.push_str("# TYPE mirror_calls_total counter\n");
        let index = self.series.load();
        let mut all: Vec<&Arc<Series>> = Some(&**index)
            .into_iter()
            .flat_map(|index| index.by_deployment.values().chain(index.unrouted.values()))
            .collect();
        all.push(&self.other);
        all.sort_by(|a, b| (&a.group, &a.deployment).cmp(&(&b.group, &b.deployment)));
        for series in &all {
            for (side, side_name) in ["false", "true"].iter().enumerate() {
                for (outcome, status) in ["success", "failure", "cancelled"].iter().enumerate() {
                    let value = series.calls[side][outcome].load(Ordering::Relaxed);
                    let _ = writeln!(
                        out,
                        "mirror_calls_total{{model_group=\"{}\",deployment=\"{}\",silent=\"{side_name}\",status=\"{status}\"}} {value}",
                        escape(&series.group),
                        escape(&series.deployment)
                    );
                }
            }
        }
        out.push_str(
            "# HELP mirror_call_duration_seconds Call latency, retries and fallbacks included.\n",
        );
        out.push_str("# TYPE mirror_call_duration_seconds histogram\n");
        for series in &all {
            for (side, side_name) in ["false", "true"].iter().enumerate() {
                let labels = format!(
                    "model_group=\"{}\",deployment=\"{}\",silent=\"{side_name}\"",
                    escape(&series.group),
                    escape(&series.deployment)
                );
                series.latency[side].render(&mut out, "mirror_call_duration_seconds", &labels);
            }
        }
        out.push_str("# HELP mirror_gateway_overhead_seconds Time the gateway spends on a request outside the routed call.\n");
        out.push_str("# TYPE mirror_gateway_overhead_seconds histogram\n");
        self.overhead
            .render(&mut out, "mirror_gateway_overhead_seconds", "");
        out.push_str("# HELP mirror_http_responses_total Responses by status class.\n");
        out.push_str("# TYPE mirror_http_responses_total counter\n");
        for (class, counter) in self.responses.iter().enumerate().skip(1) {
            let _ = writeln!(
                out,
                "mirror_http_responses_total{{class=\"{class}xx\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let counters = [
            (
                "mirror_silent_mirrored_total",
                "Silent copies requests were eligible for.",
                mirror.mirrored,
            ),
            (
                "mirror_silent_completed_total",
                "Silent calls that returned a response.",
                mirror.completed,
            ),
            (
                "mirror_silent_failed_total",
                "Silent calls that failed.",
                mirror.failed,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        out.push_str("# HELP mirror_silent_dropped_total Silent copies not run, by reason.\n");
        out.push_str("# TYPE mirror_silent_dropped_total counter\n");
        for (reason, value) in [
            ("queue_full", mirror.dropped_queue_full),
            ("sampled_out", mirror.dropped_sampled_out),
            ("opted_out", mirror.dropped_opted_out),
            ("switched_off", mirror.dropped_switched_off),
            ("disabled", mirror.dropped_disabled),
            ("budget_exhausted", mirror.dropped_budget_exhausted),
            ("experiment_ended", mirror.dropped_experiment_ended),
            ("shutdown", mirror.dropped_shutdown),
            ("rate_capped", mirror.dropped_rate_capped),
            ("unhealthy", mirror.dropped_unhealthy),
            ("missing_state", mirror.dropped_missing_state),
            ("mcp_tools", mirror.dropped_mcp_tools),
        ] {
            let _ = writeln!(
                out,
                "mirror_silent_dropped_total{{reason=\"{reason}\"}} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP mirror_silent_in_flight Silent copies queued or running.\n# TYPE mirror_silent_in_flight gauge\nmirror_silent_in_flight {}",
            mirror.in_flight()
        );
        let _ = writeln!(
            out,
            "# HELP mirror_silent_queued Silent copies waiting for a slot.\n# TYPE mirror_silent_queued gauge\nmirror_silent_queued {}",
            mirror.queued
        );
        let _ = writeln!(
            out,
            "# HELP mirror_silent_bytes Bytes charged against the silent memory budget by queued and running silent calls.\n# TYPE mirror_silent_bytes gauge\nmirror_silent_bytes {}",
            mirror.silent_bytes
        );
        let _ = writeln!(
            out,
            "# HELP mirror_silent_breakers_open Silent model groups whose copies are dropped as unhealthy until a probe succeeds.\n# TYPE mirror_silent_breakers_open gauge\nmirror_silent_breakers_open {}",
            mirror.breakers_open
        );
        out.push_str("# HELP mirror_sink_records_total Log records by sink and outcome.\n");
        out.push_str("# TYPE mirror_sink_records_total counter\n");
        for sink in sinks {
            let name = escape(&sink.name);
            for (outcome, value) in [
                ("submitted", sink.submitted),
                ("written", sink.written),
                ("retried", sink.retried),
                ("dropped_queue_full", sink.dropped.queue_full),
                ("dropped_failed", sink.dropped.failed),
                ("dropped_shutdown", sink.dropped.shutdown),
            ] {
                let _ = writeln!(
                    out,
                    "mirror_sink_records_total{{sink=\"{name}\",outcome=\"{outcome}\"}} {value}"
                );
            }
        }
        if shared.enabled {
            let gauges = [
                (
                    "mirror_shared_state_connected",
                    "Whether the last exchange with Redis succeeded.",
                    u64::from(shared.connected),
                ),
                (
                    "mirror_shared_state_last_sync_age_ms",
                    "Milliseconds since the last successful Redis sync.",
                    shared.last_sync_age_ms.unwrap_or(u64::MAX),
                ),
            ];
            for (name, help, value) in gauges {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
                );
            }
            let counters = [
                (
                    "mirror_shared_state_errors_total",
                    "Failed or timed-out exchanges with Redis.",
                    shared.errors,
                ),
                (
                    "mirror_shared_state_syncs_total",
                    "Successful Redis syncs.",
                    shared.syncs,
                ),
                (
                    "mirror_shared_state_reservations_total",
                    "Rate-limited requests decided by Redis.",
                    shared.reservations,
                ),
                (
                    "mirror_shared_state_reservations_refused_total",
                    "Rate-limited requests Redis refused.",
                    shared.reservations_refused,
                ),
                (
                    "mirror_shared_state_local_decisions_total",
                    "Rate-limited requests decided locally because Redis was unreachable.",
                    shared.local_decisions,
                ),
            ];
            for (name, help, value) in counters {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
                );
            }
        }
        out.push_str("# HELP mirror_sink_queued Log records waiting, by sink.\n# TYPE mirror_sink_queued gauge\n");
        for sink in sinks {
            let _ = writeln!(
                out,
                "mirror_sink_queued{{sink=\"{}\"}} {}",
                escape(&sink.name),
                sink.queued
            );
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Per silent target (silent group): its switch, sample rate, spend in its budget period and
/// state (`active`, `disabled`, `budget_exhausted`, `ended`), as `GET /admin/mirror` shows them.
pub(crate) fn render_targets(out: &mut String, controls: &mirror_router::MirrorControls) {
    let mut seen: Vec<&str> = Vec::new();
    let targets: Vec<_> = controls
        .targets
        .iter()
        .filter(|t| {
            let new = !seen.contains(&t.silent_group.as_str());
            seen.push(&t.silent_group);
            new
        })
        .collect();
    if targets.is_empty() {
        return;
    }
    out.push_str("# HELP mirror_silent_target_enabled Whether copies to a silent group are switched on (the global switch aside).\n# TYPE mirror_silent_target_enabled gauge\n");
    for t in &targets {
        let _ = writeln!(
            out,
            "mirror_silent_target_enabled{{silent_group=\"{}\"}} {}",
            escape(&t.silent_group),
            u8::from(t.enabled)
        );
    }
    out.push_str("# HELP mirror_silent_target_spent_usd USD spent by a silent group's calls in its budget period (a UTC day, or in total).\n# TYPE mirror_silent_target_spent_usd gauge\n");
    for t in &targets {
        let _ = writeln!(
            out,
            "mirror_silent_target_spent_usd{{silent_group=\"{}\"}} {}",
            escape(&t.silent_group),
            t.spent_usd
        );
    }
    out.push_str("# HELP mirror_silent_target_state A silent group's state: 1 on the label of the current one.\n# TYPE mirror_silent_target_state gauge\n");
    for t in &targets {
        for state in ["active", "disabled", "budget_exhausted", "ended"] {
            let _ = writeln!(
                out,
                "mirror_silent_target_state{{silent_group=\"{}\",state=\"{state}\"}} {}",
                escape(&t.silent_group),
                u8::from(t.state == state)
            );
        }
    }
}

/// The response cache's counters and size, when it is on.
pub(crate) fn render_cache(out: &mut String, cache: &CacheStats) {
    if !cache.enabled {
        return;
    }
    let series = [
        (
            "mirror_cache_hits_total",
            "counter",
            "Requests answered from the response cache.",
            cache.hits,
        ),
        (
            "mirror_cache_misses_total",
            "counter",
            "Cacheable requests a provider answered (not found, expired, or no-cache).",
            cache.misses,
        ),
        (
            "mirror_cache_stores_total",
            "counter",
            "Answers stored in the response cache.",
            cache.stores,
        ),
        (
            "mirror_cache_evictions_total",
            "counter",
            "Answers evicted to keep the cache within its bounds.",
            cache.evictions,
        ),
        (
            "mirror_cache_errors_total",
            "counter",
            "Redis cache exchanges that failed or timed out, and Redis stores dropped.",
            cache.errors,
        ),
        (
            "mirror_cache_entries",
            "gauge",
            "Answers held in the response cache.",
            cache.entries,
        ),
        (
            "mirror_cache_bytes",
            "gauge",
            "Bytes of answers held in the response cache.",
            cache.bytes,
        ),
    ];
    for (name, kind, help, value) in series {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}
