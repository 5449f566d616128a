//! The verdict's statistics: bootstrap confidence intervals over pairs and a permutation p-value,
//! computed from a bounded, uniform reservoir sample of each group pair's pairs.

use serde::Serialize;

/// Pairs kept per group pair for resampling, by default. Bounds memory (32 bytes a pair) and work.
pub const DEFAULT_RESERVOIR: usize = 5_000;
/// Bootstrap resamples (and permutations), by default.
pub const DEFAULT_RESAMPLES: usize = 1_000;
/// The confidence level of every interval.
pub const CONFIDENCE: f64 = 0.95;

/// One pair, reduced to what the intervals need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PairPoint {
    pub(crate) primary_ms: f64,
    pub(crate) shadow_ms: f64,
    /// Shadow cost minus primary cost, USD.
    pub(crate) cost_diff: f64,
    pub(crate) primary_failed: bool,
    pub(crate) shadow_failed: bool,
    /// `Some(equal up to normalisation)` when both calls succeeded.
    pub(crate) agreed: Option<bool>,
}

/// A uniform sample of at most `capacity` pairs (reservoir sampling, algorithm R), seeded.
#[derive(Debug)]
pub(crate) struct Reservoir {
    capacity: usize,
    seen: u64,
    points: Vec<PairPoint>,
    rng: fastrand::Rng,
}

impl Reservoir {
    pub(crate) fn new(capacity: usize, seed: u64) -> Self {
        Reservoir {
            capacity,
            seen: 0,
            points: Vec::new(),
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    pub(crate) fn add(&mut self, point: PairPoint) {
        self.seen += 1;
        if self.points.len() < self.capacity {
            self.points.push(point);
        } else if self.capacity > 0 {
            let pick = self.rng.u64(..self.seen);
            if let Some(slot) = usize::try_from(pick).ok().filter(|p| *p < self.capacity) {
                self.points[slot] = point;
            }
        }
    }
}

/// A point estimate with its bootstrap confidence interval and the pairs behind it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// The estimate over the sampled pairs.
    pub value: f64,
    /// Lower bound of the 95% percentile-bootstrap interval.
    pub low: f64,
    /// Upper bound of the 95% percentile-bootstrap interval.
    pub high: f64,
    /// Pairs behind the estimate (of the sample).
    pub pairs: u64,
}

/// Confidence intervals of one group pair: shadow minus primary, over pairs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Intervals {
    /// Confidence level of the intervals (0.95).
    pub confidence: f64,
    /// Bootstrap resamples (and sign-flip permutations) drawn.
    pub resamples: u64,
    /// Pairs in the sample the intervals come from (all pairs, up to the reservoir size).
    pub sampled_pairs: u64,
    /// Pairs the sample was drawn from.
    pub of_pairs: u64,
    /// `p50(shadow latency) - p50(primary latency)`, ms.
    pub latency_p50_diff_ms: Option<Estimate>,
    /// `p99(shadow latency) - p99(primary latency)`, ms.
    pub latency_p99_diff_ms: Option<Estimate>,
    /// The same as a percentage of the primary's p99.
    pub latency_p99_diff_pct: Option<Estimate>,
    /// Shadow minus primary cost per 1,000 requests, USD.
    pub cost_per_1k_diff: Option<Estimate>,
    /// Shadow minus primary error rate, in percentage points.
    pub error_rate_diff_points: Option<Estimate>,
    /// Pairs equal up to normalisation, in percent of the pairs where both calls succeeded.
    pub agreement_pct: Option<Estimate>,
    /// Two-sided p-value of "shadow and primary latency do not differ" (sign-flip permutation test
    /// of the mean per-pair difference); `None` without pairs.
    pub latency_p_value: Option<f64>,
}

/// The value at nearest rank `ceil(q * n)` of `values` (reordered in place).
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let n = values.len();
    let rank = ((q * n as f64 - 1e-9).ceil() as usize).clamp(1, n);
    let (_, value, _) = values.select_nth_unstable_by(rank - 1, f64::total_cmp);
    *value
}

#[allow(clippy::cast_precision_loss)]
fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0u64), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// What one (re)sample of pairs says.
#[derive(Debug, Clone, Copy, Default)]
struct Statistics {
    p50_diff: f64,
    p99_diff: f64,
    p99_diff_pct: Option<f64>,
    cost_per_1k_diff: f64,
    error_diff_points: f64,
    agreement_pct: Option<f64>,
}

fn statistics(pairs: &[&PairPoint], scratch: &mut (Vec<f64>, Vec<f64>)) -> Statistics {
    let (primary, shadow) = scratch;
    primary.clear();
    shadow.clear();
    primary.extend(pairs.iter().map(|p| p.primary_ms));
    shadow.extend(pairs.iter().map(|p| p.shadow_ms));
    let p99_primary = quantile(primary, 0.99);
    let p99_shadow = quantile(shadow, 0.99);
    let p99_diff = p99_shadow - p99_primary;
    Statistics {
        p50_diff: quantile(shadow, 0.5) - quantile(primary, 0.5),
        p99_diff,
        p99_diff_pct: (p99_primary > 0.0).then(|| 100.0 * p99_diff / p99_primary),
        cost_per_1k_diff: 1000.0 * mean(pairs.iter().map(|p| p.cost_diff)).unwrap_or(0.0),
        error_diff_points: 100.0
            * mean(pairs.iter().map(|p| {
                f64::from(u8::from(p.shadow_failed)) - f64::from(u8::from(p.primary_failed))
            }))
            .unwrap_or(0.0),
        agreement_pct: mean(
            pairs
                .iter()
                .filter_map(|p| p.agreed)
                .map(|a| 100.0 * f64::from(u8::from(a))),
        ),
    }
}

fn estimate(value: f64, mut draws: Vec<f64>, pairs: u64) -> Estimate {
    let tail = (1.0 - CONFIDENCE) / 2.0;
    let (low, high) = if draws.is_empty() {
        (value, value)
    } else {
        (quantile(&mut draws, tail), quantile(&mut draws, 1.0 - tail))
    };
    Estimate {
        value,
        low,
        high,
        pairs,
    }
}

/// Bootstrap intervals and the permutation p-value over `reservoir`, with `resamples` draws of
/// `seed`: work is `resamples x sample size`, both bounded.
pub(crate) fn intervals(reservoir: &Reservoir, resamples: usize, seed: u64) -> Intervals {
    let points = &reservoir.points;
    let n = points.len();
    let mut out = Intervals {
        confidence: CONFIDENCE,
        resamples: resamples as u64,
        sampled_pairs: n as u64,
        of_pairs: reservoir.seen,
        ..Intervals::default()
    };
    if n == 0 {
        return out;
    }
    let mut scratch = (Vec::with_capacity(n), Vec::with_capacity(n));
    let all: Vec<&PairPoint> = points.iter().collect();
    let observed = statistics(&all, &mut scratch);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut draws: [Vec<f64>; 6] = Default::default();
    let mut sample: Vec<&PairPoint> = Vec::with_capacity(n);
    for _ in 0..resamples {
        sample.clear();
        sample.extend((0..n).map(|_| &points[rng.usize(..n)]));
        let s = statistics(&sample, &mut scratch);
        draws[0].push(s.p50_diff);
        draws[1].push(s.p99_diff);
        if let Some(pct) = s.p99_diff_pct {
            draws[2].push(pct);
        }
        draws[3].push(s.cost_per_1k_diff);
        draws[4].push(s.error_diff_points);
        if let Some(agreement) = s.agreement_pct {
            draws[5].push(agreement);
        }
    }
    let [p50, p99, p99_pct, cost, errors, agreement] = draws;
    let pairs = n as u64;
    out.latency_p50_diff_ms = Some(estimate(observed.p50_diff, p50, pairs));
    out.latency_p99_diff_ms = Some(estimate(observed.p99_diff, p99, pairs));
    out.latency_p99_diff_pct = observed
        .p99_diff_pct
        .map(|value| estimate(value, p99_pct, pairs));
    out.cost_per_1k_diff = Some(estimate(observed.cost_per_1k_diff, cost, pairs));
    out.error_rate_diff_points = Some(estimate(observed.error_diff_points, errors, pairs));
    let comparable = points.iter().filter(|p| p.agreed.is_some()).count() as u64;
    out.agreement_pct = observed
        .agreement_pct
        .map(|value| estimate(value, agreement, comparable));
    out.latency_p_value = Some(sign_flip_p_value(points, resamples, &mut rng));
    out
}

/// Under "no difference", each pair's latency difference is as likely negative as positive: flip
/// signs at random and count how often the mean difference is at least as far from 0 as observed.
/// The `+1`s make the p-value exact for a Monte Carlo test (never 0).
#[allow(clippy::cast_precision_loss)]
fn sign_flip_p_value(points: &[PairPoint], permutations: usize, rng: &mut fastrand::Rng) -> f64 {
    let diffs: Vec<f64> = points.iter().map(|p| p.shadow_ms - p.primary_ms).collect();
    let observed = diffs.iter().sum::<f64>().abs();
    // A relative tolerance, so that sums equal up to rounding count as "as extreme".
    let tolerance = 1e-9 * diffs.iter().map(|d| d.abs()).sum::<f64>();
    let mut extreme = 0u64;
    for _ in 0..permutations {
        let sum: f64 = diffs
            .iter()
            .map(|d| if rng.bool() { *d } else { -*d })
            .sum();
        extreme += u64::from(sum.abs() + tolerance >= observed);
    }
    (extreme + 1) as f64 / (permutations as f64 + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(primary_ms: f64, shadow_ms: f64) -> PairPoint {
        PairPoint {
            primary_ms,
            shadow_ms,
            cost_diff: 0.001,
            primary_failed: false,
            shadow_failed: false,
            agreed: Some(true),
        }
    }

    fn reservoir(points: impl IntoIterator<Item = PairPoint>, capacity: usize) -> Reservoir {
        let mut reservoir = Reservoir::new(capacity, 1);
        for p in points {
            reservoir.add(p);
        }
        reservoir
    }

    #[test]
    fn a_clear_slowdown_has_a_tight_interval_and_a_small_p_value() {
        // Shadow 50 ms slower on every pair, with spread.
        let r = reservoir(
            (0..200).map(|i| point(100.0 + f64::from(i % 20), 150.0 + f64::from(i % 20))),
            1000,
        );
        let i = intervals(&r, 500, 7);
        let p50 = i.latency_p50_diff_ms.unwrap();
        assert!((p50.value - 50.0).abs() < 1e-9, "{p50:?}");
        assert!(p50.low <= 50.0 && 50.0 <= p50.high, "{p50:?}");
        assert_eq!(p50.pairs, 200);
        assert!(i.latency_p_value.unwrap() < 0.01, "{i:?}");
        let cost = i.cost_per_1k_diff.unwrap();
        assert!((cost.value - 1.0).abs() < 1e-9 && (cost.low - 1.0).abs() < 1e-9);
        assert_eq!(i.agreement_pct.unwrap().value, 100.0);
    }

    #[test]
    fn no_difference_has_a_large_p_value_and_an_interval_around_zero() {
        // Differences -10..=10 ms, symmetric around 0.
        let r = reservoir(
            (0..210).map(|i| point(100.0, 100.0 + f64::from(i % 21) - 10.0)),
            1000,
        );
        let i = intervals(&r, 500, 7);
        assert!(i.latency_p_value.unwrap() > 0.5, "{i:?}");
        let p50 = i.latency_p50_diff_ms.unwrap();
        assert!(p50.low <= 0.0 && 0.0 <= p50.high, "{p50:?}");
    }

    #[test]
    fn the_reservoir_is_bounded_and_counts_what_it_saw() {
        let r = reservoir((0..10_000).map(|i| point(f64::from(i), f64::from(i))), 100);
        assert_eq!(r.points.len(), 100);
        let i = intervals(&r, 10, 1);
        assert_eq!((i.sampled_pairs, i.of_pairs), (100, 10_000));
        // A uniform sample of 0..10000 reaches well past the first 100.
        assert!(r.points.iter().any(|p| p.primary_ms > 1000.0));
    }

    #[test]
    fn the_same_seed_gives_the_same_intervals() {
        let points: Vec<PairPoint> = (0..50)
            .map(|i| point(f64::from(i), f64::from(i * 2)))
            .collect();
        let a = intervals(&reservoir(points.clone(), 1000), 200, 3);
        let b = intervals(&reservoir(points, 1000), 200, 3);
        assert_eq!(a, b);
    }

    #[test]
    fn no_pairs_no_estimates() {
        let i = intervals(&Reservoir::new(10, 1), 100, 1);
        assert_eq!(i.latency_p50_diff_ms, None);
        assert_eq!(i.latency_p_value, None);
    }
}
