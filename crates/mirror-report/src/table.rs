//! The terminal table.

use std::fmt;

use super::{Estimate, Intervals, PairSummary, Percentiles};

/// Renders summaries as a terminal table.
pub struct Table<'a>(pub &'a [PairSummary]);

#[allow(clippy::cast_precision_loss)]
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

fn percentiles(f: &mut fmt::Formatter<'_>, label: &str, p: &Percentiles) -> fmt::Result {
    writeln!(
        f,
        "  {label:<22} p50 {:>9.1}  p90 {:>9.1}  p99 {:>9.1}  (n={})",
        p.p50, p.p90, p.p99, p.count
    )
}

fn estimate_line(
    f: &mut fmt::Formatter<'_>,
    label: &str,
    estimate: Option<&Estimate>,
    digits: usize,
) -> fmt::Result {
    match estimate {
        Some(e) => writeln!(
            f,
            "    {label:<24} {:>+12.digits$}  [{:+.digits$}, {:+.digits$}]  (n={})",
            e.value, e.low, e.high, e.pairs
        ),
        None => writeln!(f, "    {label:<24} {:>12}  (n=0)", "-"),
    }
}

/// The verdict's intervals, one line per measure.
pub(crate) fn write_intervals(f: &mut fmt::Formatter<'_>, i: &Intervals) -> fmt::Result {
    writeln!(
        f,
        "  {:.0}% intervals (bootstrap, {} resamples, over {} of {} pairs), shadow minus primary:",
        i.confidence * 100.0,
        i.resamples,
        i.sampled_pairs,
        i.of_pairs
    )?;
    estimate_line(f, "latency p50 diff ms", i.latency_p50_diff_ms.as_ref(), 1)?;
    estimate_line(f, "latency p99 diff ms", i.latency_p99_diff_ms.as_ref(), 1)?;
    estimate_line(f, "latency p99 diff %", i.latency_p99_diff_pct.as_ref(), 1)?;
    estimate_line(f, "cost diff $ / 1k req", i.cost_per_1k_diff.as_ref(), 4)?;
    estimate_line(
        f,
        "error rate diff points",
        i.error_rate_diff_points.as_ref(),
        2,
    )?;
    estimate_line(f, "agreement %", i.agreement_pct.as_ref(), 1)?;
    match i.latency_p_value {
        Some(p) => writeln!(
            f,
            "    latency p-value          {p:>12.4}  (sign-flip permutation test, n={})",
            i.sampled_pairs
        ),
        None => writeln!(f, "    latency p-value          {:>12}  (n=0)", "-"),
    }
}

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            writeln!(f, "No primary call has a silent call in these records.")?;
        }
        for summary in self.0 {
            writeln!(
                f,
                "{} -> {} ({}): {} pairs from {} primary calls ({} without a shadow){}",
                summary.primary_group,
                summary.shadow_group,
                summary.call_type.label(),
                summary.pairs,
                summary.primaries,
                summary.missing,
                if summary.is_self_copy {
                    " [noise baseline: same model]"
                } else {
                    ""
                }
            )?;
            writeln!(
                f,
                "  {:<8} {:>6} {:>7} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>12}",
                "side",
                "calls",
                "errors",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "ttft p50",
                "tok in",
                "tok out",
                "$ / 1k req"
            )?;
            for (name, side) in [("primary", &summary.primary), ("shadow", &summary.shadow)] {
                let ttft = if side.ttft_ms.count > 0 {
                    format!("{:.1}", side.ttft_ms.p50)
                } else {
                    "-".to_owned()
                };
                writeln!(
                    f,
                    "  {:<8} {:>6} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>10} {:>10} {:>10} {:>12.4}",
                    name,
                    side.calls,
                    side.failures,
                    side.latency_ms.p50,
                    side.latency_ms.p90,
                    side.latency_ms.p99,
                    ttft,
                    side.prompt_tokens,
                    side.completion_tokens,
                    side.cost_per_1k
                )?;
            }
            percentiles(f, "latency diff ms (s-p)", &summary.latency_diff_ms)?;
            if summary.ttft_diff_ms.count > 0 {
                percentiles(f, "ttft diff ms (s-p)", &summary.ttft_diff_ms)?;
            }
            writeln!(
                f,
                "  cost: primary ${:.6}, shadow ${:.6}; per 1k requests {:+.4} USD",
                summary.primary.cost, summary.shadow.cost, summary.cost_per_1k_diff
            )?;
            if summary.primary.cache_hits + summary.shadow.cache_hits > 0 {
                writeln!(
                    f,
                    "  cache hits: primary {} ({:.1}%), shadow {} ({:.1}%)",
                    summary.primary.cache_hits,
                    summary.primary.cache_hit_rate * 100.0,
                    summary.shadow.cache_hits,
                    summary.shadow.cache_hit_rate * 100.0
                )?;
            }
            for (name, side) in [("primary", &summary.primary), ("shadow", &summary.shadow)] {
                if side.failures > 0 {
                    let classes: Vec<String> = side
                        .errors_by_class
                        .iter()
                        .map(|(class, n)| format!("{class} {n}"))
                        .collect();
                    writeln!(
                        f,
                        "  {name} errors: {:.1}% ({})",
                        side.error_rate * 100.0,
                        classes.join(", ")
                    )?;
                }
            }
            if let Some(e) = &summary.embeddings {
                writeln!(
                    f,
                    "  vectors: cosine over {} pairs: mean {:.4}, min {:.4}, p5 {:.4}, p50 {:.4} ({} without vectors, {} of another dimension)",
                    e.compared,
                    e.mean_cosine,
                    e.min_cosine,
                    e.p5_cosine,
                    e.p50_cosine,
                    e.without_vectors,
                    e.dimension_mismatch
                )?;
            }
            let a = &summary.agreement;
            if a.comparable > 0 {
                writeln!(
                    f,
                    "  agreement over {} comparable pairs: exact {:.1}%, normalised {:.1}%, mean similarity {:.3}",
                    a.comparable,
                    percent(a.exact, a.comparable),
                    percent(a.normalized, a.comparable),
                    a.mean_similarity
                )?;
                if a.json_pairs > 0 {
                    writeln!(
                        f,
                        "  JSON answers: {} pairs, {:.1}% structurally equal",
                        a.json_pairs,
                        percent(a.json_equal, a.json_pairs)
                    )?;
                }
                if a.tool_pairs > 0 {
                    writeln!(
                        f,
                        "  tool calls: {} pairs, names {:.1}%, names and arguments {:.1}% equal",
                        a.tool_pairs,
                        percent(a.tool_names_equal, a.tool_pairs),
                        percent(a.tool_calls_equal, a.tool_pairs)
                    )?;
                }
            }
            write_intervals(f, &summary.intervals)?;
            if let Some(noise) = &summary.noise {
                writeln!(
                    f,
                    "  vs noise ({} -> {}, {} pairs): disagreement {:.1}% vs {:.1}% baseline, {:+.1} points beyond noise",
                    summary.primary_group,
                    noise.baseline_group,
                    noise.baseline_pairs,
                    noise.disagreement_rate * 100.0,
                    noise.baseline_disagreement_rate * 100.0,
                    noise.excess_disagreement * 100.0
                )?;
            }
            if let Some(judge) = &summary.judge {
                writeln!(
                    f,
                    "  judge {} over {} pairs: shadow wins {:.1}%, ties {:.1}%, losses {:.1}% ({} unusable)",
                    judge.model,
                    judge.judged,
                    percent(judge.shadow_wins, judge.judged),
                    percent(judge.ties, judge.judged),
                    percent(judge.shadow_losses, judge.judged),
                    judge.invalid + judge.failed
                )?;
            }
            for pair in summary.divergent.iter().take(3) {
                let diff: String = pair.diff_text.chars().take(200).collect();
                writeln!(
                    f,
                    "  divergent (similarity {:.2}, trace {}): {}",
                    pair.similarity,
                    pair.trace_id,
                    diff.replace('\n', " ")
                )?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
