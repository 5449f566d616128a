//! A deployment as the router holds it: its parameters, provider, and lock-free health and usage state.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mirror_core::{DeploymentParams, ModelInfo};
use mirror_providers::{Provider, ProviderError};
use tokio::time::Instant;

/// One deployment of a model group, ready to call.
pub(crate) struct Deployment {
    pub(crate) id: String,
    pub(crate) group: String,
    pub(crate) params: DeploymentParams,
    pub(crate) provider: Arc<dyn Provider>,
    pub(crate) api_base: String,
    /// The silent groups requests routed here are mirrored to (empty: none), resolved once.
    pub(crate) silent: Box<[SilentTarget]>,
    pub(crate) sample_rate: f64,
    pub(crate) weight: f64,
    pub(crate) order: u32,
    pub(crate) prices: Option<(f64, f64)>,
    /// False for the only deployment of a group: cooling it down would turn a passing error into
    /// certain failure for every caller, with nothing to fail over to (LiteLLM skips it too).
    pub(crate) can_cool_down: bool,
    pub(crate) state: DeploymentState,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("id", &self.id)
            .field("group", &self.group)
            .field("model", &self.params.model)
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

/// One `silent_model` entry: the name as configured (a group or an alias; the copy is addressed to
/// it) and the index of the group it resolves to, so mirroring needs no lookup by name.
#[derive(Debug)]
pub(crate) struct SilentTarget {
    pub(crate) name: String,
    pub(crate) group: usize,
}

/// Milliseconds since the router's epoch, so times fit in atomics.
///
/// In memory it uses Tokio's clock, so tests can pause and advance it. When state is shared through
/// Redis it is the wall clock (milliseconds since the Unix epoch), so that every instance agrees on
/// what a minute is and on when a cooldown ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch: Instant,
    wall: bool,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Clock {
            epoch: Instant::now(),
            wall: false,
        }
    }

    /// The wall clock, shared by instances on machines whose clocks agree (NTP).
    pub(crate) fn wall() -> Self {
        Clock {
            epoch: Instant::now(),
            wall: true,
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        let elapsed = if self.wall {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
        } else {
            self.epoch.elapsed()
        };
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn minute(&self) -> u64 {
        self.now_ms() / 60_000
    }
}

/// Health and usage of a deployment. Every field is an atomic: selection reads them without a lock.
///
/// Per-minute windows roll over with a compare-and-swap on the minute number; a count racing with the
/// rollover may land in either minute, which is fine for limits and cooldowns.
#[derive(Debug, Default)]
pub(crate) struct DeploymentState {
    pub(crate) in_flight: AtomicU64,
    cooldown_until_ms: AtomicU64,
    fail_minute: AtomicU64,
    fails: AtomicU32,
    usage_minute: AtomicU64,
    requests: AtomicU64,
    tokens: AtomicU64,
    /// Exponentially weighted latency in microseconds; 0 means no sample yet.
    latency_us: AtomicU64,
    /// Requests and tokens of the other instances in `remote_minute`, as of the last sync with
    /// Redis (always zero when state is not shared).
    remote_minute: AtomicU64,
    remote_requests: AtomicU64,
    remote_tokens: AtomicU64,
}

impl DeploymentState {
    pub(crate) fn is_cooling_down(&self, now_ms: u64) -> bool {
        self.cooldown_until_ms.load(Ordering::Relaxed) > now_ms
    }

    pub(crate) fn cooldown_remaining(&self, now_ms: u64) -> Duration {
        Duration::from_millis(
            self.cooldown_until_ms
                .load(Ordering::Relaxed)
                .saturating_sub(now_ms),
        )
    }

    pub(crate) fn cool_down(&self, now_ms: u64, cooldown: Duration) {
        let until = now_ms + u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX / 2);
        self.cooldown_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// Counts a failure; returns whether the deployment should now cool down.
    pub(crate) fn record_failure(
        &self,
        clock: &Clock,
        error: &ProviderError,
        allowed_fails: u32,
    ) -> bool {
        if !error.counts_against_deployment() {
            return false;
        }
        let minute = clock.minute();
        let seen = self.fail_minute.swap(minute, Ordering::Relaxed);
        if seen != minute {
            self.fails.store(0, Ordering::Relaxed);
        }
        let fails = self.fails.fetch_add(1, Ordering::Relaxed) + 1;
        let rate_limited = matches!(
            error,
            ProviderError::RateLimited { .. } | ProviderError::QuotaExhausted { .. }
        );
        rate_limited || fails >= allowed_fails.max(1)
    }

    fn roll_usage(&self, minute: u64) {
        let seen = self.usage_minute.load(Ordering::Relaxed);
        if seen != minute
            && self
                .usage_minute
                .compare_exchange(seen, minute, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.requests.store(0, Ordering::Relaxed);
            self.tokens.store(0, Ordering::Relaxed);
        }
    }

    /// Requests and tokens used this minute, by this instance and (as last synced) the others.
    pub(crate) fn usage(&self, minute: u64) -> (u64, u64) {
        let (requests, tokens) = self.local_usage(minute);
        if self.remote_minute.load(Ordering::Relaxed) != minute {
            return (requests, tokens);
        }
        (
            requests + self.remote_requests.load(Ordering::Relaxed),
            tokens + self.remote_tokens.load(Ordering::Relaxed),
        )
    }

    /// Requests and tokens this instance used this minute.
    pub(crate) fn local_usage(&self, minute: u64) -> (u64, u64) {
        if self.usage_minute.load(Ordering::Relaxed) != minute {
            return (0, 0);
        }
        (
            self.requests.load(Ordering::Relaxed),
            self.tokens.load(Ordering::Relaxed),
        )
    }

    /// Stores what the other instances used in `minute`.
    pub(crate) fn set_remote_usage(&self, minute: u64, requests: u64, tokens: u64) {
        // A reader racing with this store may pair the new minute with old counts for a moment,
        // which only shifts one decision by one sync interval's worth of usage.
        self.remote_requests.store(requests, Ordering::Relaxed);
        self.remote_tokens.store(tokens, Ordering::Relaxed);
        self.remote_minute.store(minute, Ordering::Relaxed);
    }

    /// Stores what the other instances requested in `minute`, keeping their tokens.
    pub(crate) fn set_remote_requests(&self, minute: u64, requests: u64) {
        if self.remote_minute.load(Ordering::Relaxed) != minute {
            self.remote_tokens.store(0, Ordering::Relaxed);
        }
        self.remote_requests.store(requests, Ordering::Relaxed);
        self.remote_minute.store(minute, Ordering::Relaxed);
    }

    /// When the cooldown ends, in clock milliseconds (in the past or 0 when not cooling down).
    pub(crate) fn cooldown_until_ms(&self) -> u64 {
        self.cooldown_until_ms.load(Ordering::Relaxed)
    }

    /// Cools down until `until_ms` unless already cooling down for longer.
    pub(crate) fn cool_down_until(&self, until_ms: u64) {
        self.cooldown_until_ms
            .fetch_max(until_ms, Ordering::Relaxed);
    }

    pub(crate) fn count_request(&self, minute: u64) {
        self.roll_usage(minute);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_tokens(&self, minute: u64, tokens: u64) {
        self.roll_usage(minute);
        self.tokens.fetch_add(tokens, Ordering::Relaxed);
    }

    pub(crate) fn record_latency(&self, latency: Duration) {
        let sample = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        // An EWMA with weight 1/4 for the new sample; a lost update under contention only drops a sample.
        let old = self.latency_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (old * 3 + sample) / 4
        };
        self.latency_us.store(new, Ordering::Relaxed);
    }

    pub(crate) fn latency_us(&self) -> u64 {
        self.latency_us.load(Ordering::Relaxed)
    }
}

impl Deployment {
    /// Whether the deployment can take a call now: not cooling down and under its rpm/tpm limits.
    pub(crate) fn is_available(&self, now_ms: u64, minute: u64) -> bool {
        if self.state.is_cooling_down(now_ms) {
            return false;
        }
        let (requests, tokens) = self.state.usage(minute);
        let under = |limit: Option<u64>, used: u64| limit.is_none_or(|limit| used < limit);
        under(self.params.rpm, requests) && under(self.params.tpm, tokens)
    }

    /// Cost in USD of a call with this usage, when prices are known.
    pub(crate) fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        self.prices.map_or(0.0, |(input, output)| {
            prompt_tokens as f64 * input + completion_tokens as f64 * output
        })
    }

    /// Cost in USD of a call with this usage: as [`Deployment::cost`], with the prompt tokens an
    /// Anthropic usage says were written to or read from its prompt cache (LiteLLM's
    /// `cache_creation_input_tokens` / `cache_read_input_tokens`, which only Anthropic answers
    /// carry) priced at Anthropic's cache multiples of the input price.
    pub(crate) fn cost_of(&self, usage: &mirror_core::Usage) -> f64 {
        let count = |key: &str| {
            usage
                .extra
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        let (written, read) = (
            count("cache_creation_input_tokens"),
            count("cache_read_input_tokens"),
        );
        if written == 0 && read == 0 {
            return self.cost(usage.prompt_tokens, usage.completion_tokens);
        }
        let plain = usage.prompt_tokens.saturating_sub(written + read);
        #[allow(clippy::cast_precision_loss)]
        self.prices.map_or(0.0, |(input, _)| {
            self.cost(plain, usage.completion_tokens)
                + written as f64 * input * crate::pricing::ANTHROPIC_CACHE_WRITE
                + read as f64 * input * crate::pricing::ANTHROPIC_CACHE_READ
        })
    }
}

/// Prices of a deployment: `model_info`, then `litellm_params`, then the built-in table by
/// `base_model` or model name.
pub(crate) fn prices(params: &DeploymentParams, info: &ModelInfo) -> Option<(f64, f64)> {
    let pair = |input: Option<f64>, output: Option<f64>| match (input, output) {
        (None, None) => None,
        (input, output) => Some((input.unwrap_or(0.0), output.unwrap_or(0.0))),
    };
    pair(info.input_cost_per_token, info.output_cost_per_token)
        .or_else(|| pair(params.input_cost_per_token, params.output_cost_per_token))
        .or_else(|| {
            let name = info.base_model.as_deref().unwrap_or(params.model.name());
            crate::pricing::builtin_price(name)
        })
}
