//! Pairs primary and silent records and compares them: the summary `mirror demo` prints.
//!
//! Records are paired by `metadata.mirror_of` (the primary's call id); the shared `trace_id` ties them
//! too. This is the seed of `mirror report`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use mirror_core::{CallId, CallRecord, CallStatus};
use serde::Serialize;

/// The comparison of one primary group with one shadow group.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PairSummary {
    /// The primary model group.
    pub primary_group: String,
    /// The shadow model group.
    pub shadow_group: String,
    /// Primary calls of the group that had at least one mirror configured and recorded.
    pub primaries: usize,
    /// Shadow records whose primary is in the log.
    pub pairs: usize,
    /// Primary side.
    pub primary: SideStats,
    /// Shadow side.
    pub shadow: SideStats,
    /// Pairs where both succeeded and the answers are equal.
    pub exact_matches: usize,
    /// Pairs where both succeeded and the answers are equal up to whitespace and case.
    pub normalized_matches: usize,
    /// Pairs where both succeeded.
    pub comparable: usize,
}

/// Latency, tokens, cost and errors of one side.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SideStats {
    /// Calls.
    pub calls: usize,
    /// Failed calls.
    pub failures: usize,
    /// Latency percentiles in milliseconds: p50, p90, p99.
    pub latency_ms: [f64; 3],
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Cost in USD.
    pub cost: f64,
}

impl SideStats {
    fn from_records(records: &[&CallRecord]) -> Self {
        let mut latencies: Vec<f64> = records.iter().map(|r| r.response_time * 1000.0).collect();
        latencies.sort_by(f64::total_cmp);
        SideStats {
            calls: records.len(),
            failures: records
                .iter()
                .filter(|r| r.status == CallStatus::Failure)
                .count(),
            latency_ms: [
                percentile(&latencies, 0.50),
                percentile(&latencies, 0.90),
                percentile(&latencies, 0.99),
            ],
            prompt_tokens: records.iter().map(|r| r.prompt_tokens).sum(),
            completion_tokens: records.iter().map(|r| r.completion_tokens).sum(),
            cost: records.iter().map(|r| r.response_cost).sum(),
        }
    }

    /// Cost per 1,000 calls in USD.
    pub fn cost_per_thousand(&self) -> f64 {
        if self.calls == 0 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let calls = self.calls as f64;
        self.cost / calls * 1000.0
    }
}

/// Nearest-rank percentile of sorted values; 0 for none.
fn percentile(sorted: &[f64], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn normalize(text: &str) -> String {
    text.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Pairs `records` and summarises each primary-group -> shadow-group edge.
pub fn compare(records: &[CallRecord]) -> Vec<PairSummary> {
    let primaries: HashMap<CallId, &CallRecord> = records
        .iter()
        .filter(|r| !r.metadata.is_silent_experiment)
        .map(|r| (r.call_id, r))
        .collect();
    let mut edges: BTreeMap<(String, String), Vec<(&CallRecord, &CallRecord)>> = BTreeMap::new();
    for shadow in records.iter().filter(|r| r.metadata.is_silent_experiment) {
        let Some(primary) = shadow.metadata.mirror_of.and_then(|id| primaries.get(&id)) else {
            continue;
        };
        edges
            .entry((primary.model_group.clone(), shadow.model_group.clone()))
            .or_default()
            .push((primary, shadow));
    }
    edges
        .into_iter()
        .map(|((primary_group, shadow_group), pairs)| {
            let primary_side: Vec<&CallRecord> = {
                let mut seen = std::collections::HashSet::new();
                pairs
                    .iter()
                    .map(|(p, _)| *p)
                    .filter(|p| seen.insert(p.call_id))
                    .collect()
            };
            let shadow_side: Vec<&CallRecord> = pairs.iter().map(|(_, s)| *s).collect();
            let mut summary = PairSummary {
                primaries: primary_side.len(),
                pairs: pairs.len(),
                primary: SideStats::from_records(&primary_side),
                shadow: SideStats::from_records(&shadow_side),
                primary_group,
                shadow_group,
                ..PairSummary::default()
            };
            for (primary, shadow) in &pairs {
                let text = |r: &CallRecord| r.response.as_ref().and_then(|resp| resp.text());
                if let (Some(a), Some(b)) = (text(primary), text(shadow)) {
                    summary.comparable += 1;
                    summary.exact_matches += usize::from(a == b);
                    summary.normalized_matches += usize::from(normalize(&a) == normalize(&b));
                }
            }
            summary
        })
        .collect()
}

/// Renders summaries as a terminal table.
pub struct Table<'a>(pub &'a [PairSummary]);

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for summary in self.0 {
            writeln!(
                f,
                "{} -> {}: {} pairs from {} primary calls",
                summary.primary_group, summary.shadow_group, summary.pairs, summary.primaries
            )?;
            writeln!(
                f,
                "  {:<8} {:>6} {:>7} {:>9} {:>9} {:>9} {:>10} {:>10} {:>12}",
                "side",
                "calls",
                "errors",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "tok in",
                "tok out",
                "$ / 1k req"
            )?;
            for (name, side) in [("primary", &summary.primary), ("shadow", &summary.shadow)] {
                writeln!(
                    f,
                    "  {:<8} {:>6} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>10} {:>10} {:>12.4}",
                    name,
                    side.calls,
                    side.failures,
                    side.latency_ms[0],
                    side.latency_ms[1],
                    side.latency_ms[2],
                    side.prompt_tokens,
                    side.completion_tokens,
                    side.cost_per_thousand()
                )?;
            }
            if summary.comparable > 0 {
                #[allow(clippy::cast_precision_loss)]
                let pct = |n: usize| 100.0 * n as f64 / summary.comparable as f64;
                writeln!(
                    f,
                    "  agreement over {} comparable pairs: exact {:.1}%, normalised {:.1}%",
                    summary.comparable,
                    pct(summary.exact_matches),
                    pct(summary.normalized_matches)
                )?;
            }
        }
        Ok(())
    }
}
