//! `mirror report --gate`: thresholds a shadow must meet, checked per primary -> shadow group pair,
//! for CI pipelines.

use std::fmt;

use serde::Serialize;

use super::{Estimate, PairSummary, Report};

/// Pairs (or judged pairs) a criterion needs, by default, before it is decided.
pub const DEFAULT_MIN_PAIRS: u64 = 30;

/// A measure a gate bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// `p99(shadow) - p99(primary)` latency, as a percentage of the primary's p99: at most the
    /// threshold.
    P99LatencyPct,
    /// The same at the median: at most the threshold.
    P50LatencyPct,
    /// Shadow minus primary error rate, in percentage points: at most the threshold.
    ErrorRatePoints,
    /// Shadow minus primary cost per 1,000 requests, USD: at most the threshold.
    CostPer1kUsd,
    /// Answers equal up to normalisation, percent of comparable pairs: at least the threshold.
    AgreementPct,
    /// Judged pairs the shadow won or tied, percent: at least the threshold.
    JudgeWinOrTiePct,
}

impl Measure {
    const ALL: [(&'static str, Measure); 6] = [
        ("p99_latency_pct", Measure::P99LatencyPct),
        ("p50_latency_pct", Measure::P50LatencyPct),
        ("error_rate_points", Measure::ErrorRatePoints),
        ("cost_per_1k_usd", Measure::CostPer1kUsd),
        ("agreement_pct", Measure::AgreementPct),
        ("judge_win_or_tie_pct", Measure::JudgeWinOrTiePct),
    ];

    /// The gate key.
    pub fn key(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("?", |(key, _)| key)
    }

    /// Whether the measure must stay at or below its threshold (else at or above).
    pub fn is_upper_bound(self) -> bool {
        match self {
            Measure::P99LatencyPct
            | Measure::P50LatencyPct
            | Measure::ErrorRatePoints
            | Measure::CostPer1kUsd => true,
            Measure::AgreementPct | Measure::JudgeWinOrTiePct => false,
        }
    }
}

/// What happens to a criterion without enough data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Insufficient {
    /// It fails the gate (the default: a gate that saw nothing proves nothing).
    #[default]
    Fail,
    /// It is reported and does not fail the gate.
    Pass,
}

/// Thresholds a shadow must meet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gate {
    /// (measure, threshold), in the order given.
    pub criteria: Vec<(Measure, f64)>,
    /// Pairs a criterion needs before it is decided (judged pairs for the judge's criterion,
    /// comparable pairs for agreement).
    pub min_pairs: u64,
    /// What a criterion without enough data does.
    pub insufficient: Insufficient,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            criteria: Vec::new(),
            min_pairs: DEFAULT_MIN_PAIRS,
            insufficient: Insufficient::default(),
        }
    }
}

/// Why a gate specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct GateError {
    /// Where: `--gate` or the file and line.
    pub origin: String,
    /// What is wrong.
    pub message: String,
}

impl Gate {
    /// Adds `key=value` (or `key: value`) settings from `text`, separated by commas or new lines;
    /// `#` starts a comment, so a flat YAML map of these keys is accepted too. `origin` names the
    /// source in errors (`--gate`, or a file).
    ///
    /// # Errors
    ///
    /// An unknown key (with the closest known one), a value that is not a number, or a repeated key.
    pub fn add_spec(&mut self, text: &str, origin: &str) -> Result<(), GateError> {
        let multi_line = text.contains('\n');
        for (line_number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default();
            for item in line.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let error = |message: String| GateError {
                    origin: if multi_line {
                        format!("{origin}:{}", line_number + 1)
                    } else {
                        origin.to_owned()
                    },
                    message,
                };
                let Some((key, value)) = item.split_once(['=', ':']) else {
                    return Err(error(format!("`{item}` is not `key=value`")));
                };
                let (key, value) = (key.trim(), value.trim().trim_matches(['"', '\'']));
                self.set(key, value).map_err(error)?;
            }
        }
        Ok(())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "min_pairs" => {
                self.min_pairs = value.parse().map_err(|_| {
                    format!("`min_pairs` must be a whole number of pairs, not `{value}`")
                })?;
            }
            "insufficient" => {
                self.insufficient = match value {
                    "fail" => Insufficient::Fail,
                    "pass" => Insufficient::Pass,
                    _ => return Err(format!("`insufficient` is `fail` or `pass`, not `{value}`")),
                };
            }
            _ => {
                let Some(&(_, measure)) = Measure::ALL.iter().find(|(k, _)| *k == key) else {
                    let known: Vec<&str> = Measure::ALL
                        .iter()
                        .map(|(k, _)| *k)
                        .chain(["min_pairs", "insufficient"])
                        .collect();
                    let hint = closest(key, &known)
                        .map(|k| format!(", did you mean `{k}`?"))
                        .unwrap_or_else(|| format!(" (known: {})", known.join(", ")));
                    return Err(format!("unknown gate criterion `{key}`{hint}"));
                };
                let threshold: f64 = value
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite())
                    .ok_or_else(|| format!("`{key}` must be a number, not `{value}`"))?;
                if self.criteria.iter().any(|(m, _)| *m == measure) {
                    return Err(format!("`{key}` is given twice"));
                }
                self.criteria.push((measure, threshold));
            }
        }
        Ok(())
    }

    /// Checks every criterion on every group pair of `report`, except noise baselines (a primary
    /// group mirrored to its own model).
    pub fn evaluate(&self, report: &Report) -> GateOutcome {
        let mut edges = Vec::new();
        for edge in report.edges.iter().filter(|e| !e.is_self_copy) {
            let unmatched = report
                .totals
                .unmatched_shadows
                .get(&edge.shadow_group)
                .copied()
                .unwrap_or(0);
            let judged = edge.judge.as_ref().map_or(0, |j| j.judged);
            let counts = Counts {
                pairs: edge.pairs,
                unpaired: edge.missing,
                unmatched_shadows: unmatched,
                cancelled: report.totals.cancelled,
                unjudged: edge.pairs.saturating_sub(judged),
            };
            let criteria = self
                .criteria
                .iter()
                .map(|&(measure, threshold)| self.check(edge, measure, threshold))
                .collect();
            edges.push(EdgeGate {
                primary_group: edge.primary_group.clone(),
                shadow_group: edge.shadow_group.clone(),
                call_type: edge.call_type,
                counts,
                criteria,
            });
        }
        let decided = |r: &CriterionResult| match r.outcome {
            Outcome::Pass => true,
            Outcome::Fail => false,
            Outcome::InsufficientData => self.insufficient == Insufficient::Pass,
        };
        let passed = if edges.is_empty() {
            // Nothing to judge a shadow by.
            self.insufficient == Insufficient::Pass
        } else {
            edges.iter().all(|e| e.criteria.iter().all(decided))
        };
        GateOutcome {
            passed,
            min_pairs: self.min_pairs,
            insufficient: self.insufficient,
            edges,
        }
    }

    #[allow(clippy::cast_precision_loss)]
    fn check(&self, edge: &PairSummary, measure: Measure, threshold: f64) -> CriterionResult {
        let i = &edge.intervals;
        let (estimate, pairs): (Option<Estimate>, u64) = match measure {
            Measure::P99LatencyPct => (i.latency_p99_diff_pct, i.sampled_pairs),
            Measure::P50LatencyPct => (
                i.latency_p50_diff_ms.and_then(|e| {
                    let base = edge.primary.latency_ms.p50;
                    (base > 0.0).then(|| Estimate {
                        value: 100.0 * e.value / base,
                        low: 100.0 * e.low / base,
                        high: 100.0 * e.high / base,
                        pairs: e.pairs,
                    })
                }),
                i.sampled_pairs,
            ),
            Measure::ErrorRatePoints => (i.error_rate_diff_points, i.sampled_pairs),
            Measure::CostPer1kUsd => (i.cost_per_1k_diff, i.sampled_pairs),
            Measure::AgreementPct => (i.agreement_pct, i.agreement_pct.map_or(0, |e| e.pairs)),
            Measure::JudgeWinOrTiePct => match &edge.judge {
                Some(j) if j.judged > 0 => {
                    let value = 100.0 * (j.shadow_wins + j.ties) as f64 / j.judged as f64;
                    let (low, high) = wilson(j.shadow_wins + j.ties, j.judged);
                    (
                        Some(Estimate {
                            value,
                            low,
                            high,
                            pairs: j.judged,
                        }),
                        j.judged,
                    )
                }
                _ => (None, 0),
            },
        };
        let outcome = match estimate {
            Some(e) if pairs >= self.min_pairs.max(1) => {
                let within = if measure.is_upper_bound() {
                    e.value <= threshold
                } else {
                    e.value >= threshold
                };
                if within {
                    Outcome::Pass
                } else {
                    Outcome::Fail
                }
            }
            _ => Outcome::InsufficientData,
        };
        CriterionResult {
            measure,
            threshold,
            estimate,
            pairs,
            outcome,
        }
    }
}

/// The 95% Wilson score interval of `successes / trials`, in percent.
#[allow(clippy::cast_precision_loss)]
fn wilson(successes: u64, trials: u64) -> (f64, f64) {
    let n = trials as f64;
    let p = successes as f64 / n;
    let z = 1.959_964;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z * ((p * (1.0 - p) + z * z / (4.0 * n)) / n).sqrt() / (1.0 + z * z / n);
    (
        100.0 * (centre - half).max(0.0),
        100.0 * (centre + half).min(1.0),
    )
}

/// The known key closest to `key` (at most a third of its letters off).
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim(key, k), *k))
        .filter(|(d, _)| *d <= key.len().max(3) / 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance.
fn strsim(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// A criterion's result on one group pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The estimate is within the threshold.
    Pass,
    /// The estimate is beyond the threshold.
    Fail,
    /// Fewer pairs than `min_pairs` (or no judge verdicts for the judge's criterion).
    InsufficientData,
}

/// One criterion on one group pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CriterionResult {
    /// What is measured.
    pub measure: Measure,
    /// The threshold.
    pub threshold: f64,
    /// The estimate with its interval, when there was data.
    pub estimate: Option<Estimate>,
    /// Pairs behind it.
    pub pairs: u64,
    /// Pass, fail or insufficient data.
    pub outcome: Outcome,
}

/// What a rate leaves out, shown beside every rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Pairs.
    pub pairs: u64,
    /// Primary calls without a shadow record: sampled out, dropped (a dropped copy leaves no
    /// record, only the gateway's counters), or unfinished.
    pub unpaired: u64,
    /// Shadow records of this group whose primary was not in the window.
    pub unmatched_shadows: u64,
    /// Cancelled calls in the whole log, never compared.
    pub cancelled: u64,
    /// Pairs without a judge's verdict (all of them without `--judge`).
    pub unjudged: u64,
}

/// The gate on one group pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdgeGate {
    /// The primary group.
    pub primary_group: String,
    /// The shadow group.
    pub shadow_group: String,
    /// The call type of the pairs (each call type is its own group pair).
    pub call_type: mirror_core::CallType,
    /// What the rates leave out.
    pub counts: Counts,
    /// One result per criterion, in the gate's order.
    pub criteria: Vec<CriterionResult>,
}

/// The gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateOutcome {
    /// Whether every criterion passed on every group pair.
    pub passed: bool,
    /// The pairs a criterion needed.
    pub min_pairs: u64,
    /// What a criterion without enough data did.
    pub insufficient: Insufficient,
    /// One entry per group pair gated (noise baselines are not).
    pub edges: Vec<EdgeGate>,
}

impl fmt::Display for GateOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Gate: {} (criteria need {} pairs; insufficient data: {})",
            if self.passed { "PASS" } else { "FAIL" },
            self.min_pairs,
            match self.insufficient {
                Insufficient::Fail => "fail",
                Insufficient::Pass => "pass",
            }
        )?;
        if self.edges.is_empty() {
            writeln!(
                f,
                "  no primary -> shadow group pair in the logs: insufficient data"
            )?;
        }
        for edge in &self.edges {
            let c = &edge.counts;
            writeln!(
                f,
                "  {} -> {} ({}): {} pairs; unpaired {} (sampled out, dropped or unfinished), unmatched shadows {}, cancelled {}, unjudged {}",
                edge.primary_group,
                edge.shadow_group,
                edge.call_type.label(),
                c.pairs,
                c.unpaired,
                c.unmatched_shadows,
                c.cancelled,
                c.unjudged
            )?;
            for r in &edge.criteria {
                let outcome = match r.outcome {
                    Outcome::Pass => "pass",
                    Outcome::Fail => "FAIL",
                    Outcome::InsufficientData => "insufficient data",
                };
                let bound = if r.measure.is_upper_bound() {
                    "<="
                } else {
                    ">="
                };
                let observed = r.estimate.map_or_else(
                    || "-".to_owned(),
                    |e| format!("{:.2} [{:.2}, {:.2}]", e.value, e.low, e.high),
                );
                writeln!(
                    f,
                    "    {outcome:<17} {:<22} {observed} {bound} {} (n={}; unpaired {}, unjudged {})",
                    r.measure.key(),
                    r.threshold,
                    r.pairs,
                    c.unpaired,
                    c.unjudged
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_spec(spec: &str, expect: &str) {
        let mut gate = Gate::default();
        let got = match gate.add_spec(spec, "--gate") {
            Ok(()) => format!(
                "{:?} min_pairs={} {:?}",
                gate.criteria, gate.min_pairs, gate.insufficient
            ),
            Err(err) => err.to_string(),
        };
        assert_eq!(got, expect);
    }

    #[test]
    fn specs() {
        check_spec(
            "p99_latency_pct=10,error_rate_points=0.5, agreement_pct=95,judge_win_or_tie_pct=50",
            "[(P99LatencyPct, 10.0), (ErrorRatePoints, 0.5), (AgreementPct, 95.0), (JudgeWinOrTiePct, 50.0)] min_pairs=30 Fail",
        );
        check_spec(
            "# a YAML file\np99_latency_pct: 10\nmin_pairs: 5\ninsufficient: pass\n",
            "[(P99LatencyPct, 10.0)] min_pairs=5 Pass",
        );
        check_spec(
            "p99_latncy_pct=10",
            "--gate: unknown gate criterion `p99_latncy_pct`, did you mean `p99_latency_pct`?",
        );
        check_spec(
            "agreement_pct=high",
            "--gate: `agreement_pct` must be a number, not `high`",
        );
        check_spec("a\nagreement_pct", "--gate:1: `a` is not `key=value`");
        check_spec(
            "agreement_pct=1,agreement_pct=2",
            "--gate: `agreement_pct` is given twice",
        );
        check_spec(
            "insufficient=maybe",
            "--gate: `insufficient` is `fail` or `pass`, not `maybe`",
        );
    }

    #[test]
    fn wilson_interval_brackets_the_rate() {
        let (low, high) = wilson(8, 10);
        assert!(
            low < 80.0 && 80.0 < high && low > 40.0 && high < 100.0,
            "{low} {high}"
        );
    }
}
