//! Picking a deployment within a group. Reads only atomics: no lock on the request path.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::config::RoutingStrategy;
use crate::deployment::{Clock, Deployment};

/// A model group: the deployments that serve one `model_name`.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) name: String,
    pub(crate) deployments: Vec<Arc<Deployment>>,
}

/// Default share-the-load buffer of latency-based routing.
const DEFAULT_LATENCY_BUFFER: f64 = 0.1;

impl Group {
    /// Picks a deployment, or says how long until one is available.
    ///
    /// `avoid` is the deployment that just failed: it is skipped when another one is available.
    pub(crate) fn select(
        &self,
        strategy: RoutingStrategy,
        latency_buffer: Option<f64>,
        clock: &Clock,
        avoid: Option<&str>,
    ) -> Result<Arc<Deployment>, Duration> {
        let now_ms = clock.now_ms();
        let minute = clock.minute();
        let mut candidates: Vec<&Arc<Deployment>> = self
            .deployments
            .iter()
            .filter(|d| d.is_available(now_ms, minute))
            .collect();
        if candidates.is_empty() {
            let wait = self
                .deployments
                .iter()
                .map(|d| {
                    if d.state.is_cooling_down(now_ms) {
                        d.state.cooldown_remaining(now_ms)
                    } else {
                        // Over a per-minute limit: wait for the next minute.
                        Duration::from_millis(60_000 - now_ms % 60_000)
                    }
                })
                .min()
                .unwrap_or(Duration::from_secs(1));
            return Err(wait);
        }
        if let Some(avoid) = avoid {
            if candidates.iter().any(|d| d.id != avoid) {
                candidates.retain(|d| d.id != avoid);
            }
        }
        let tier = candidates.iter().map(|d| d.order).min().unwrap_or(0);
        candidates.retain(|d| d.order == tier);

        let picked = match strategy {
            RoutingStrategy::SimpleShuffle => weighted(&candidates, |d| d.weight),
            RoutingStrategy::LeastBusy => {
                let least = candidates
                    .iter()
                    .map(|d| d.state.in_flight.load(Ordering::Relaxed))
                    .min()
                    .unwrap_or(0);
                candidates.retain(|d| d.state.in_flight.load(Ordering::Relaxed) == least);
                uniform(&candidates)
            }
            RoutingStrategy::LatencyBasedRouting => {
                // Deployments without a sample yet are tried first, so every one gets measured.
                let unmeasured: Vec<&Arc<Deployment>> = candidates
                    .iter()
                    .copied()
                    .filter(|d| d.state.latency_us() == 0)
                    .collect();
                if unmeasured.is_empty() {
                    let fastest = candidates
                        .iter()
                        .map(|d| d.state.latency_us())
                        .min()
                        .unwrap_or(0);
                    let buffer = latency_buffer.unwrap_or(DEFAULT_LATENCY_BUFFER).max(0.0);
                    #[allow(
                        clippy::cast_precision_loss,
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss
                    )]
                    let limit = (fastest as f64 * (1.0 + buffer)) as u64;
                    candidates.retain(|d| d.state.latency_us() <= limit);
                    uniform(&candidates)
                } else {
                    uniform(&unmeasured)
                }
            }
            RoutingStrategy::UsageBasedRouting => {
                let least = candidates
                    .iter()
                    .map(|d| d.state.usage(minute).1)
                    .min()
                    .unwrap_or(0);
                candidates.retain(|d| d.state.usage(minute).1 == least);
                uniform(&candidates)
            }
        };
        Ok(Arc::clone(picked))
    }
}

fn uniform<'a>(candidates: &[&'a Arc<Deployment>]) -> &'a Arc<Deployment> {
    candidates[fastrand::usize(..candidates.len())]
}

fn weighted<'a>(
    candidates: &[&'a Arc<Deployment>],
    weight: impl Fn(&Deployment) -> f64,
) -> &'a Arc<Deployment> {
    let total: f64 = candidates.iter().map(|d| weight(d)).sum();
    if total.is_nan() || total <= 0.0 {
        return uniform(candidates);
    }
    let mut point = fastrand::f64() * total;
    for candidate in candidates {
        point -= weight(candidate);
        if point < 0.0 {
            return candidate;
        }
    }
    candidates[candidates.len() - 1]
}
