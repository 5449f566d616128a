//! Picking a deployment within a group. Reads only atomics: no lock on the request path.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::config::RoutingStrategy;
use crate::deployment::{Clock, Deployment};
use crate::silent::control::{TargetLimits, TargetRuntime};
use crate::silent::{MinuteBudget, SilentBreaker};

/// A model group: the deployments that serve one `model_name`.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) name: String,
    pub(crate) deployments: Vec<Arc<Deployment>>,
    /// Silent copies sent to this group this minute, for `max_mirrors_per_minute`.
    pub(crate) budget: Arc<MinuteBudget>,
    /// Whether silent copies to this group are worth sending.
    pub(crate) breaker: SilentBreaker,
    /// Run-time switch, rate override and spend of this group as a silent target (kept across
    /// reloads).
    pub(crate) runtime: Arc<TargetRuntime>,
    /// Its `mirror_settings.silent_targets` budget and end.
    pub(crate) limits: TargetLimits,
}

/// Default share-the-load buffer of latency-based routing.
const DEFAULT_LATENCY_BUFFER: f64 = 0.1;

impl Group {
    /// Whether every deployment is cooling down at `now_ms` (false for a group without any).
    pub(crate) fn is_cooling_down(&self, now_ms: u64) -> bool {
        !self.deployments.is_empty()
            && self
                .deployments
                .iter()
                .all(|d| d.state.is_cooling_down(now_ms))
    }

    /// Picks a deployment, or says how long until one is available.
    ///
    /// `avoid` is the deployment that just failed: it is skipped when another one is available.
    pub(crate) fn select(
        &self,
        strategy: RoutingStrategy,
        latency_buffer: Option<f64>,
        clock: &Clock,
        avoid: Option<&Deployment>,
    ) -> Result<Arc<Deployment>, Duration> {
        let now_ms = clock.now_ms();
        let minute = clock.minute();
        // One deployment (the common case): nothing to choose, so no candidate list.
        if let [only] = self.deployments.as_slice() {
            if only.is_available(now_ms, minute) {
                return Ok(Arc::clone(only));
            }
            return Err(unavailable_for(only, now_ms));
        }
        let mut candidates: Vec<&Arc<Deployment>> = self
            .deployments
            .iter()
            .filter(|d| d.is_available(now_ms, minute))
            .collect();
        if candidates.is_empty() {
            let wait = self
                .deployments
                .iter()
                .map(|d| unavailable_for(d, now_ms))
                .min()
                .unwrap_or(Duration::from_secs(1));
            return Err(wait);
        }
        if let Some(avoid) = avoid {
            let is_avoided = |d: &&Arc<Deployment>| std::ptr::eq(Arc::as_ptr(d), avoid);
            if candidates.iter().any(|d| !is_avoided(d)) {
                candidates.retain(|d| !is_avoided(d));
            }
        }
        let tier = candidates.iter().map(|d| d.order).min().unwrap_or(0);
        candidates.retain(|d| d.order == tier);

        // Each deployment's load is read once: other tasks change it concurrently, and filtering on a
        // second read could leave no candidate at all.
        let picked = match strategy {
            RoutingStrategy::SimpleShuffle => weighted(&candidates, |d| d.weight),
            RoutingStrategy::LeastBusy => lowest(
                &candidates,
                |d| d.state.in_flight.load(Ordering::Relaxed),
                |least| least,
            ),
            RoutingStrategy::LatencyBasedRouting => {
                let buffer = latency_buffer.unwrap_or(DEFAULT_LATENCY_BUFFER).max(0.0);
                // Deployments without a sample yet (latency 0) come first, so every one gets measured.
                #[allow(
                    clippy::cast_precision_loss,
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss
                )]
                lowest(
                    &candidates,
                    |d| d.state.latency_us(),
                    |fastest| (fastest as f64 * (1.0 + buffer)) as u64,
                )
            }
            RoutingStrategy::UsageBasedRouting => {
                lowest(&candidates, |d| d.state.usage(minute).1, |least| least)
            }
        };
        Ok(Arc::clone(picked))
    }
}

/// How long until an unavailable deployment may be available again.
fn unavailable_for(deployment: &Deployment, now_ms: u64) -> Duration {
    if deployment.state.is_cooling_down(now_ms) {
        deployment.state.cooldown_remaining(now_ms)
    } else {
        // Over a per-minute limit: wait for the next minute.
        Duration::from_millis(60_000 - now_ms % 60_000)
    }
}

fn uniform<'a>(candidates: &[&'a Arc<Deployment>]) -> &'a Arc<Deployment> {
    candidates[fastrand::usize(..candidates.len())]
}

/// Picks uniformly among the deployments whose `key`, read once each, is at most `limit(lowest key)`.
/// The deployment with the lowest key always qualifies, so the choice is never empty.
fn lowest<'a>(
    candidates: &[&'a Arc<Deployment>],
    key: impl Fn(&Deployment) -> u64,
    limit: impl Fn(u64) -> u64,
) -> &'a Arc<Deployment> {
    let keyed: Vec<(u64, &'a Arc<Deployment>)> = candidates.iter().map(|d| (key(d), *d)).collect();
    let least = keyed.iter().map(|(k, _)| *k).min().unwrap_or(0);
    let bound = limit(least).max(least);
    let within: Vec<&'a Arc<Deployment>> = keyed
        .iter()
        .filter(|(k, _)| *k <= bound)
        .map(|(_, d)| *d)
        .collect();
    uniform(&within)
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
