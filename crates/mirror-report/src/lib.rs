//! Mirror's report: pairs primary and silent call records and compares them, group pair by group
//! pair (latency, cost, errors, agreement, an optional judge), as a terminal table, JSON or a
//! self-contained HTML page.
//!
//! It is the library behind `mirror report`; it is not the command (arguments, configuration files
//! and the judge's router live in the `mirror` binary), and it never routes calls itself: a judge is
//! any async function from a request to an answer ([`judge`]).
//!
//! Records are paired by `metadata.mirror_of` (the primary's call id), or by the shared `trace_id`
//! when a silent record has no `mirror_of`. Logs are read line by line, from files or from an S3
//! prefix written by the S3 sink ([`analyze_s3`]); memory is bounded by the pairing window
//! ([`ReportOptions::window`]), never by the size of the log. See `docs/report.md`.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let options = mirror_report::ReportOptions::default();
//! let report = mirror_report::analyze_paths(&["logs/mirror.jsonl".into()], &options, false)?;
//! print!("{}", mirror_report::Table(&report.edges));
//! # Ok(())
//! # }
//! ```

mod agreement;
mod analyze;
mod error;
mod gate;
mod html;
mod input;
mod intervals;
mod judge;
mod live;
mod s3;
mod stats;
mod table;

use std::collections::BTreeMap;

use mirror_core::CallRecord;
use serde::Serialize;

pub use agreement::{Agreement, DiffOp, SIMILARITY_BINS};
pub use analyze::{Analyzer, JudgeSample, MAX_ANSWER_BYTES};
pub use error::ReportError;
pub use gate::{
    Counts, CriterionResult, EdgeGate, Gate, GateError, GateOutcome, Insufficient, Measure,
    Outcome, DEFAULT_MIN_PAIRS,
};
pub use html::render_html;
pub use input::{analyze_paths, analyze_reader, feed_paths};
pub use intervals::{Estimate, Intervals, CONFIDENCE, DEFAULT_RESAMPLES, DEFAULT_RESERVOIR};
pub use judge::{judge, judge_prompt, parse_verdict, JudgeOutcome, JudgeVerdict};
pub use live::{estimated_bytes, RecentRecords, WindowStats, LIVE_MAX_BYTES, LIVE_MAX_RECORDS};
pub use s3::{analyze_s3, feed_s3, parse_s3_url, reader_config, s3_progress};
pub use stats::{Percentiles, SideStats};
pub use table::Table;

/// How to build a report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Records a call waits for its partner before it is finished (a primary without a shadow
    /// counts as missing, a shadow without a primary as unmatched). Bounds memory.
    pub window: usize,
    /// Most divergent pairs kept per group pair.
    pub top: usize,
    /// Pairs sampled per group pair for a judge (0: none, and conversations are not kept).
    pub judge_samples: usize,
    /// Seed of the judge's sampling and answer order, and of the bootstrap.
    pub seed: u64,
    /// Pairs kept per group pair (a uniform reservoir sample) for the confidence intervals; bounds
    /// their memory (32 bytes a pair) and work.
    pub resample_pairs: usize,
    /// Bootstrap resamples and permutations per group pair (work: this times the sampled pairs).
    pub resamples: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            window: 100_000,
            top: 10,
            judge_samples: 0,
            seed: 0x6d69_7272_6f72,
            resample_pairs: DEFAULT_RESERVOIR,
            resamples: DEFAULT_RESAMPLES,
        }
    }
}

/// The whole report: totals, then one entry per primary group -> shadow group.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// The pairing window in records.
    pub window: usize,
    /// What was read.
    pub totals: Totals,
    /// One entry per primary group -> shadow group, in name order.
    pub edges: Vec<PairSummary>,
    /// The gate's verdict, when one was asked for (`mirror report --gate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateOutcome>,
}

/// What was read.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Records read.
    pub records: u64,
    /// Primary chat records.
    pub primaries: u64,
    /// Silent chat records.
    pub shadows: u64,
    /// Records of other calls (embeddings, Responses, token counts), not compared.
    pub other_calls: u64,
    /// Calls whose caller went away before they finished (status `cancelled`), not compared: their
    /// latency is the caller's patience, not the model's. A silent call whose primary was cancelled
    /// counts as an unmatched shadow.
    pub cancelled: u64,
    /// Lines that were not records.
    pub malformed_lines: u64,
    /// Records seen twice (same call id while still pending), counted once.
    pub duplicates: u64,
    /// Silent records without `metadata.mirror_of`, paired by `trace_id` instead.
    pub shadows_without_mirror_of: u64,
    /// Silent records whose primary was not found within the window, by shadow group.
    pub unmatched_shadows: BTreeMap<String, u64>,
    /// Calls finished because they waited a whole window.
    pub evicted: u64,
}

/// The comparison of one primary group with one shadow group.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PairSummary {
    /// The primary model group.
    pub primary_group: String,
    /// The shadow model group.
    pub shadow_group: String,
    /// Primary calls of the primary group in the log.
    pub primaries: u64,
    /// Primary calls with a silent record from the shadow group.
    pub pairs: u64,
    /// Primary calls without a silent record from the shadow group: sampled out, opted out,
    /// dropped, not finished when the log was read, or served by a deployment that does not mirror.
    pub missing: u64,
    /// Pairs whose primary call failed.
    pub primary_failed: u64,
    /// Pairs whose silent call failed.
    pub shadow_failed: u64,
    /// Whether every pair's shadow ran the same model as its primary (the noise baseline).
    pub is_self_copy: bool,
    /// Pairs whose shadow ran the same model as its primary.
    pub self_copy_pairs: u64,
    /// The primary side of the pairs.
    pub primary: SideStats,
    /// The shadow side of the pairs.
    pub shadow: SideStats,
    /// Shadow latency minus primary latency, per pair, in milliseconds.
    pub latency_diff_ms: Percentiles,
    /// Shadow minus primary time to first token, for pairs that both streamed, in milliseconds.
    pub ttft_diff_ms: Percentiles,
    /// Shadow minus primary cost per 1,000 calls, in USD.
    pub cost_per_1k_diff: f64,
    /// How the answers agree, where both calls succeeded.
    pub agreement: Agreement,
    /// Confidence intervals of the differences and of agreement, and the latency p-value.
    pub intervals: Intervals,
    /// The noise floor, when the primary group also mirrors to a copy of itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<NoiseComparison>,
    /// The most divergent pairs, least similar first.
    pub divergent: Vec<DivergentPair>,
    /// The judge's verdicts, when one was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeOutcome>,
    /// Latency histogram buckets (ms, count) of the primary and shadow sides, for charts.
    #[serde(skip)]
    pub latency_buckets: [Vec<(f64, u64)>; 2],
}

/// Shadow disagreement set against the disagreement of the primary group with a copy of itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoiseComparison {
    /// The shadow group that runs the primary's own model.
    pub baseline_group: String,
    /// Comparable pairs of the baseline.
    pub baseline_pairs: u64,
    /// How often the model disagrees with itself (not equal up to normalisation).
    pub baseline_disagreement_rate: f64,
    /// Mean similarity of the model with itself.
    pub baseline_mean_similarity: f64,
    /// How often this shadow disagrees with the primary.
    pub disagreement_rate: f64,
    /// `disagreement_rate - baseline_disagreement_rate`: disagreement beyond the noise.
    pub excess_disagreement: f64,
}

/// One of the most divergent pairs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DivergentPair {
    /// The shared trace id.
    pub trace_id: String,
    /// The primary's call id.
    pub primary_call_id: String,
    /// The shadow's call id.
    pub shadow_call_id: String,
    /// Similarity score (0 to 1).
    pub similarity: f64,
    /// Whether the JSON answers were equal, when both were JSON.
    pub json: Option<bool>,
    /// Whether the tool calls were equal, when either called tools.
    pub tools: Option<bool>,
    /// The primary's answer (cut at 4 KiB).
    pub primary: String,
    /// The shadow's answer (cut at 4 KiB).
    pub shadow: String,
    /// Word diff from the primary's answer to the shadow's.
    pub diff: Vec<DiffOp>,
    /// The diff as text: `[-removed-]{+added+}`.
    pub diff_text: String,
}

/// Pairs `records` and summarises each primary-group -> shadow-group edge.
pub fn compare(records: &[CallRecord]) -> Vec<PairSummary> {
    let mut analyzer = Analyzer::new(ReportOptions {
        window: records.len().max(1),
        ..ReportOptions::default()
    });
    for record in records {
        analyzer.push(record);
    }
    analyzer.finish().edges
}
