//! Bounded-memory statistics: latency histograms, signed differences, side and agreement counters.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Significant digits kept by the latency histograms: values are exact to 0.1%.
const SIGFIG: u8 = 3;

/// p50 / p90 / p99 (and the mean) of a distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Mean.
    pub mean: f64,
}

/// A histogram of non-negative durations in microseconds, exact to 3 significant digits; it grows
/// with the range of values, never with their count.
#[derive(Debug, Clone)]
pub(crate) struct Durations(Histogram<u64>);

impl Default for Durations {
    fn default() -> Self {
        #[allow(clippy::expect_used)]
        Durations(Histogram::new(SIGFIG).expect("3 significant digits is a valid precision"))
    }
}

#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
impl Durations {
    pub(crate) fn record_seconds(&mut self, seconds: f64) {
        let micros = (seconds.max(0.0) * 1e6).round() as u64;
        // The histogram grows to fit; a value beyond u64 range is clamped.
        if self.0.record(micros).is_err() {
            self.0.saturating_record(micros);
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.0.len()
    }

    /// The value (µs) of rank `ceil(q * n)` in ascending order, as HDR reports it.
    fn quantile_micros(&self, quantile: f64) -> u64 {
        let n = self.0.len();
        if n == 0 {
            return 0;
        }
        // Nearest rank; the small epsilon keeps 0.9 * 100 from rounding up to rank 91.
        let rank = ((quantile * n as f64 - 1e-9).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for step in self.0.iter_recorded() {
            seen += step.count_at_value();
            if seen >= rank {
                return self.0.highest_equivalent(step.value_iterated_to());
            }
        }
        self.0.max()
    }

    pub(crate) fn percentiles(&self) -> Percentiles {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Percentiles {
            count: self.len(),
            p50: ms(self.quantile_micros(0.50)),
            p90: ms(self.quantile_micros(0.90)),
            p99: ms(self.quantile_micros(0.99)),
            mean: if self.len() == 0 {
                0.0
            } else {
                self.0.mean() / 1000.0
            },
        }
    }

    /// (value in ms, count) for every distinct recorded bucket, ascending.
    pub(crate) fn buckets_ms(&self) -> Vec<(f64, u64)> {
        self.0
            .iter_recorded()
            .map(|step| {
                (
                    step.value_iterated_to() as f64 / 1000.0,
                    step.count_at_value(),
                )
            })
            .collect()
    }
}

/// Signed differences in seconds (shadow minus primary): two magnitude histograms, one per sign.
#[derive(Debug, Clone, Default)]
pub(crate) struct SignedDurations {
    negative: Durations,
    non_negative: Durations,
}

#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
impl SignedDurations {
    pub(crate) fn record_seconds(&mut self, seconds: f64) {
        if seconds < 0.0 {
            self.negative.record_seconds(-seconds);
        } else {
            self.non_negative.record_seconds(seconds);
        }
    }

    fn quantile_ms(&self, quantile: f64) -> f64 {
        let negatives = self.negative.len();
        let n = negatives + self.non_negative.len();
        if n == 0 {
            return 0.0;
        }
        let rank = ((quantile * n as f64 - 1e-9).ceil() as u64).clamp(1, n);
        if rank <= negatives {
            // Ascending order starts with the largest negative magnitude.
            let from_top = negatives - rank + 1;
            let q = from_top as f64 / negatives as f64;
            -(self.negative.quantile_micros(q) as f64) / 1000.0
        } else {
            let q = (rank - negatives) as f64 / self.non_negative.len() as f64;
            self.non_negative.quantile_micros(q) as f64 / 1000.0
        }
    }

    pub(crate) fn percentiles(&self) -> Percentiles {
        let n = self.negative.len() + self.non_negative.len();
        let sum = self.non_negative.0.mean() * self.non_negative.len() as f64
            - self.negative.0.mean() * self.negative.len() as f64;
        Percentiles {
            count: n,
            p50: self.quantile_ms(0.50),
            p90: self.quantile_ms(0.90),
            p99: self.quantile_ms(0.99),
            mean: if n == 0 { 0.0 } else { sum / n as f64 / 1000.0 },
        }
    }
}

/// What one side (primary or shadow) of a group pair did, over the paired calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SideStats {
    /// Calls.
    pub calls: u64,
    /// Failed calls.
    pub failures: u64,
    /// Failed calls by `error_information.error_class` (`unknown` when absent).
    pub errors_by_class: BTreeMap<String, u64>,
    /// Latency (`response_time`) in milliseconds.
    pub latency_ms: Percentiles,
    /// Streamed calls.
    pub streams: u64,
    /// Time to first token of streamed calls (`completionStartTime - startTime`), in milliseconds.
    pub ttft_ms: Percentiles,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Cost in USD (`response_cost`).
    pub cost: f64,
    /// Cost per 1,000 calls in USD.
    pub cost_per_1k: f64,
    /// Failed calls / calls.
    pub error_rate: f64,
    /// Calls answered from the response cache (`metadata.cache_hit`): no provider was called.
    pub cache_hits: u64,
    /// Cache hits / calls.
    pub cache_hit_rate: f64,
}

impl SideStats {
    /// Cost per 1,000 calls in USD.
    pub fn cost_per_thousand(&self) -> f64 {
        self.cost_per_1k
    }
}

/// Accumulates one side's [`SideStats`] in bounded memory.
#[derive(Debug, Clone, Default)]
pub(crate) struct SideAccumulator {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) errors_by_class: BTreeMap<String, u64>,
    pub(crate) latency: Durations,
    pub(crate) ttft: Durations,
    pub(crate) streams: u64,
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    pub(crate) cost: f64,
    pub(crate) cache_hits: u64,
}

impl SideAccumulator {
    pub(crate) fn add(&mut self, call: &super::analyze::Call) {
        self.calls += 1;
        if let Some(class) = &call.error_class {
            self.failures += 1;
            *self.errors_by_class.entry(class.clone()).or_default() += 1;
        }
        self.latency.record_seconds(call.latency);
        if call.stream {
            self.streams += 1;
            if let Some(ttft) = call.ttft {
                self.ttft.record_seconds(ttft);
            }
        }
        self.prompt_tokens += call.prompt_tokens;
        self.completion_tokens += call.completion_tokens;
        self.cost += call.cost;
        self.cache_hits += u64::from(call.cache_hit);
    }

    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn finish(&self) -> SideStats {
        let per_call = |total: f64| {
            if self.calls == 0 {
                0.0
            } else {
                total / self.calls as f64
            }
        };
        SideStats {
            calls: self.calls,
            failures: self.failures,
            errors_by_class: self.errors_by_class.clone(),
            latency_ms: self.latency.percentiles(),
            streams: self.streams,
            ttft_ms: self.ttft.percentiles(),
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            cost: self.cost,
            cost_per_1k: per_call(self.cost) * 1000.0,
            error_rate: per_call(self.failures as f64),
            cache_hits: self.cache_hits,
            cache_hit_rate: per_call(self.cache_hits as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_within_hdr_precision() {
        let mut durations = Durations::default();
        for ms in 1..=100 {
            durations.record_seconds(f64::from(ms) / 1000.0);
        }
        let p = durations.percentiles();
        assert_eq!(p.count, 100);
        for (got, want) in [(p.p50, 50.0), (p.p90, 90.0), (p.p99, 99.0), (p.mean, 50.5)] {
            assert!((got - want).abs() <= want * 1e-3, "{got} vs {want}");
        }
    }

    #[test]
    fn signed_differences_keep_their_order() {
        let mut diffs = SignedDurations::default();
        // -50 ms .. +49 ms, one each.
        for ms in -50..50 {
            diffs.record_seconds(f64::from(ms) / 1000.0);
        }
        let p = diffs.percentiles();
        assert_eq!(p.count, 100);
        // Rank 50 is -1 ms, rank 90 is 39 ms, rank 99 is 48 ms.
        assert!((p.p50 - -1.0).abs() < 0.01, "{p:?}");
        assert!((p.p90 - 39.0).abs() < 0.05, "{p:?}");
        assert!((p.p99 - 48.0).abs() < 0.05, "{p:?}");
        assert!((p.mean - -0.5).abs() < 0.01, "{p:?}");
    }

    #[test]
    fn empty_histograms_report_zero() {
        assert_eq!(Durations::default().percentiles(), Percentiles::default());
        assert_eq!(
            SignedDurations::default().percentiles(),
            Percentiles::default()
        );
    }
}
