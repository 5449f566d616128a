//! Comparing embeddings answers: cosine similarity of the primary's and the shadow's vectors.
//!
//! Records carry vectors only when the gateway was asked to log them (`log_embedding_vectors`);
//! without them a pair is counted as having no vectors, and latency, cost and errors are compared
//! as for any call.

use mirror_core::EmbeddingsResponse;
use serde::Serialize;

/// How the vectors of one group pair compare, over the pairs where both calls succeeded.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EmbeddingComparison {
    /// Pairs whose vectors were compared (both sides logged vectors of the same dimension).
    pub compared: u64,
    /// Pairs where either side's record has no vectors (not logged, or cut).
    pub without_vectors: u64,
    /// Pairs whose vectors differ in dimension (different models or `dimensions`): not comparable.
    pub dimension_mismatch: u64,
    /// Mean cosine similarity of a pair (each pair: the mean over its inputs' vectors).
    pub mean_cosine: f64,
    /// The lowest pair's cosine similarity.
    pub min_cosine: f64,
    /// Pair cosine similarity percentiles (over a uniform sample of the pairs).
    pub p5_cosine: f64,
    /// The median.
    pub p50_cosine: f64,
}

/// The vectors of an embeddings answer, in input order, as long as their values fit in `budget`
/// (a bound on memory per pending call); a vector that does not parse ends the list.
pub(crate) fn vectors(list: &EmbeddingsResponse, budget: usize) -> Vec<Vec<f32>> {
    let mut data: Vec<_> = list.data.iter().collect();
    data.sort_by_key(|item| item.index);
    let mut left = budget;
    let mut out = Vec::new();
    for item in data {
        match item.vector() {
            Some(vector) if vector.len() <= left => {
                left -= vector.len();
                out.push(vector);
            }
            _ => break,
        }
    }
    out
}

/// Cosine similarity of two vectors of one length; `None` when either is all zeros.
fn cosine(a: &[f32], b: &[f32]) -> Option<f64> {
    let (mut dot, mut norm_a, mut norm_b) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        norm_a += x * x;
        norm_b += y * y;
    }
    (norm_a > 0.0 && norm_b > 0.0).then(|| dot / (norm_a.sqrt() * norm_b.sqrt()))
}

/// Accumulates the cosine similarity of pairs: counts, sum and minimum over all of them, and a
/// bounded uniform sample (algorithm R) for the percentiles.
#[derive(Debug)]
pub(crate) struct CosineAccumulator {
    result: EmbeddingComparison,
    sum: f64,
    sample: Vec<f64>,
    capacity: usize,
    rng: fastrand::Rng,
}

impl CosineAccumulator {
    pub(crate) fn new(capacity: usize, seed: u64) -> Self {
        CosineAccumulator {
            result: EmbeddingComparison {
                min_cosine: f64::INFINITY,
                ..EmbeddingComparison::default()
            },
            sum: 0.0,
            sample: Vec::new(),
            capacity: capacity.max(1),
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// Adds one pair of successful answers: vector i of the primary against vector i of the shadow.
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn add(&mut self, primary: &[Vec<f32>], shadow: &[Vec<f32>]) {
        if primary.is_empty() || shadow.is_empty() {
            self.result.without_vectors += 1;
            return;
        }
        if primary.iter().zip(shadow).any(|(a, b)| a.len() != b.len()) {
            self.result.dimension_mismatch += 1;
            return;
        }
        let values: Vec<f64> = primary
            .iter()
            .zip(shadow)
            .filter_map(|(a, b)| cosine(a, b))
            .collect();
        if values.is_empty() {
            self.result.without_vectors += 1;
            return;
        }
        let pair = values.iter().sum::<f64>() / values.len() as f64;
        self.result.compared += 1;
        self.sum += pair;
        self.result.min_cosine = self.result.min_cosine.min(pair);
        if self.sample.len() < self.capacity {
            self.sample.push(pair);
        } else if let Some(slot) = usize::try_from(self.rng.u64(..self.result.compared))
            .ok()
            .filter(|slot| *slot < self.capacity)
        {
            self.sample[slot] = pair;
        }
    }

    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    pub(crate) fn finish(&mut self) -> EmbeddingComparison {
        let mut result = self.result.clone();
        if result.compared == 0 {
            result.min_cosine = 0.0;
            return result;
        }
        result.mean_cosine = self.sum / result.compared as f64;
        self.sample.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let index = ((self.sample.len() - 1) as f64 * q).round() as usize;
            self.sample[index.min(self.sample.len() - 1)]
        };
        result.p5_cosine = at(0.05);
        result.p50_cosine = at(0.5);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_pairs_counts_what_cannot_be_compared() {
        let mut acc = CosineAccumulator::new(100, 1);
        acc.add(&[vec![1.0, 0.0]], &[vec![1.0, 0.0]]);
        acc.add(&[vec![1.0, 0.0]], &[vec![0.0, 1.0]]);
        acc.add(&[vec![1.0, 0.0]], &[vec![1.0, 0.0, 0.0]]);
        acc.add(&[], &[vec![1.0]]);
        let result = acc.finish();
        assert_eq!(result.compared, 2);
        assert_eq!(result.dimension_mismatch, 1);
        assert_eq!(result.without_vectors, 1);
        assert!((result.mean_cosine - 0.5).abs() < 1e-9);
        assert!(result.min_cosine.abs() < 1e-9);
    }
}
