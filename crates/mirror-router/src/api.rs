//! The router's public API: the calls (each one kind of call through the pipeline), counters,
//! run-time switches and shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mirror_core::{
    CallId, CallMeta, ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, TraceId,
};
use tokio::time::Instant;

use crate::cache::{CacheStats, CacheStatus, ResponseCache};
use crate::kinds::{Chat, ChatStreamed, Embeddings};
use crate::router::{Inner, Router};
use crate::shared::SharedStateStats;
use crate::silent::MirrorSnapshot;
use crate::stream::ChatStream;
use crate::RouterError;

/// A response with the identity of the call that produced it.
#[derive(Debug, Clone)]
pub struct Routed<T> {
    /// The response.
    pub response: T,
    /// This call's id (find it in the logs as `litellm_call_id`).
    pub call_id: CallId,
    /// The trace id shared with this call's silent copies.
    pub trace_id: TraceId,
    /// The model group that answered (after aliases and fallbacks).
    pub model_group: String,
    /// The deployment that answered (empty when the answer came from the response cache).
    pub deployment_id: String,
    /// Whether the answer came from the response cache.
    pub cache: CacheStatus,
}

/// Spend split by whose it is. Shadow spend never counts against the caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct SpendSnapshot {
    /// USD spent on callers' own calls.
    pub caller_cost: f64,
    /// Tokens used by callers' own calls.
    pub caller_tokens: u64,
    /// USD spent on silent copies.
    pub shadow_cost: f64,
    /// Tokens used by silent copies.
    pub shadow_tokens: u64,
}

#[derive(Debug, Default)]
pub(crate) struct SpendStats {
    caller_micro_usd: AtomicU64,
    caller_tokens: AtomicU64,
    shadow_micro_usd: AtomicU64,
    shadow_tokens: AtomicU64,
}

impl Router {
    /// A chat completion. If the first deployment picked has a `silent_model`, silent copies are
    /// queued in the background; this call never waits for them.
    ///
    /// # Errors
    ///
    /// [`RouterError`] once retries and fallbacks are exhausted.
    pub async fn chat(&self, request: ChatRequest) -> Result<Routed<ChatResponse>, RouterError> {
        let meta = CallMeta::for_request(&request.model, request.metadata.as_ref());
        self.inner.call::<Chat>(request, meta).await
    }

    /// A streamed chat completion. Retries and fallbacks apply until the stream starts. The record is
    /// emitted when the stream ends or is dropped.
    ///
    /// # Errors
    ///
    /// [`RouterError`] when no deployment could start the stream.
    pub async fn chat_stream(
        &self,
        request: ChatRequest,
    ) -> Result<Routed<ChatStream>, RouterError> {
        let meta = CallMeta::for_request(&request.model, request.metadata.as_ref());
        self.inner.call::<ChatStreamed>(request, meta).await
    }

    /// Embeddings. Not mirrored (as in LiteLLM): mirroring compares generated answers.
    ///
    /// # Errors
    ///
    /// [`RouterError`] once retries and fallbacks are exhausted.
    pub async fn embeddings(
        &self,
        request: EmbeddingsRequest,
    ) -> Result<Routed<EmbeddingsResponse>, RouterError> {
        let meta = CallMeta::for_request(&request.model, request.metadata.as_ref());
        self.inner.call::<Embeddings>(request, meta).await
    }

    /// [`Router::chat`] with an identity the caller made with `CallMeta::for_request`, so it knows
    /// the call id and trace id before the call ends (the gateway puts them on every response, errors
    /// included).
    ///
    /// # Errors
    ///
    /// As [`Router::chat`].
    pub async fn chat_with_meta(
        &self,
        request: ChatRequest,
        meta: CallMeta,
    ) -> Result<Routed<ChatResponse>, RouterError> {
        self.inner.call::<Chat>(request, meta).await
    }

    /// [`Router::chat_stream`] with an identity the caller made.
    ///
    /// # Errors
    ///
    /// As [`Router::chat_stream`].
    pub async fn chat_stream_with_meta(
        &self,
        request: ChatRequest,
        meta: CallMeta,
    ) -> Result<Routed<ChatStream>, RouterError> {
        self.inner.call::<ChatStreamed>(request, meta).await
    }

    /// [`Router::embeddings`] with an identity the caller made.
    ///
    /// # Errors
    ///
    /// As [`Router::embeddings`].
    pub async fn embeddings_with_meta(
        &self,
        request: EmbeddingsRequest,
        meta: CallMeta,
    ) -> Result<Routed<EmbeddingsResponse>, RouterError> {
        self.inner.call::<Embeddings>(request, meta).await
    }

    /// The silent-mirroring counters.
    pub fn mirror_stats(&self) -> MirrorSnapshot {
        let mut snapshot = self.inner.silent.stats.snapshot();
        // Counted from this router's own breakers: the counters are taken over by a reloaded
        // router, its breakers are not.
        snapshot.breakers_open = self
            .silent_breakers()
            .iter()
            .filter(|(_, open)| *open)
            .count() as u64;
        snapshot
    }

    /// Counters of the response cache (all zero, `enabled: false`, when it is off). For the
    /// gateway's `/metrics`.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner
            .cache
            .as_ref()
            .map_or_else(CacheStats::default, ResponseCache::stats)
    }

    /// Counters of the state shared with other instances through Redis (all zero, `enabled: false`,
    /// when `router_settings` configure no Redis). For the gateway's `/metrics`.
    pub fn shared_state_stats(&self) -> SharedStateStats {
        self.inner
            .shared
            .as_ref()
            .map_or_else(SharedStateStats::default, |shared| {
                shared.stats(&self.inner.clock)
            })
    }

    /// Spend split into caller and shadow spend.
    pub fn spend(&self) -> SpendSnapshot {
        let spend = &self.inner.spend;
        #[allow(clippy::cast_precision_loss)]
        let usd = |micros: &AtomicU64| micros.load(Ordering::Relaxed) as f64 / 1e6;
        SpendSnapshot {
            caller_cost: usd(&spend.caller_micro_usd),
            caller_tokens: spend.caller_tokens.load(Ordering::Relaxed),
            shadow_cost: usd(&spend.shadow_micro_usd),
            shadow_tokens: spend.shadow_tokens.load(Ordering::Relaxed),
        }
    }

    /// Switches mirroring on or off for every deployment, at run time; with shared state, on every
    /// instance (published at the next sync, which this call starts). A reload keeps it.
    pub fn set_mirroring(&self, enabled: bool) {
        self.inner.silent.enabled.store(enabled, Ordering::Release);
        self.inner.silent.enabled_set.store(true, Ordering::Release);
        self.inner
            .silent
            .enabled_dirty
            .store(true, Ordering::Release);
        if let Some(shared) = &self.inner.shared {
            shared.wake();
        }
    }

    /// Whether mirroring is switched on.
    pub fn is_mirroring(&self) -> bool {
        self.inner.silent.enabled.load(Ordering::Acquire)
    }

    /// The model groups, sorted.
    pub fn model_groups(&self) -> Vec<String> {
        // `groups` is sorted by name.
        self.inner.groups.iter().map(|g| g.name.clone()).collect()
    }

    /// Every deployment as `(model group, deployment id)`, sorted; ids are the configured
    /// `model_info.id` or the generated ones.
    pub fn deployments(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .inner
            .groups
            .iter()
            .flat_map(|group| group.deployments.iter())
            .map(|d| (d.group.clone(), d.id.clone()))
            .collect();
        all.sort();
        all
    }

    /// Calls in flight per deployment, as `(model group, deployment id, calls)`, sorted: what
    /// least-busy routing reads. A call holds its share from its attempt until it is recorded (a
    /// stream, until it ends or is dropped); a dropped call gives it back. For the gateway's
    /// `/metrics`.
    pub fn in_flight(&self) -> Vec<(String, String, u64)> {
        let mut all: Vec<(String, String, u64)> = self
            .inner
            .groups
            .iter()
            .flat_map(|group| group.deployments.iter())
            .map(|d| {
                let calls = d.state.in_flight.load(std::sync::atomic::Ordering::Relaxed);
                (d.group.clone(), d.id.clone(), calls)
            })
            .collect();
        all.sort();
        all
    }

    /// The groups a group mirrors to (through any of its deployments), sorted.
    pub fn silent_targets(&self, group: &str) -> Vec<String> {
        let groups = &self.inner.groups;
        let mut targets: Vec<String> = groups
            .binary_search_by(|g| g.name.as_str().cmp(group))
            .ok()
            .map(|index| &groups[index])
            .into_iter()
            .flat_map(|group| group.deployments.iter())
            .flat_map(|d| d.silent.iter().map(|target| target.name.clone()))
            .collect();
        targets.sort();
        targets.dedup();
        targets
    }

    /// Every silent group (a group some deployment mirrors to), sorted, with whether its silent
    /// breaker is open (copies to it are dropped as unhealthy, but for one probe per
    /// `cooldown_time`). For the gateway's `/metrics`.
    pub fn silent_breakers(&self) -> Vec<(String, bool)> {
        let groups = &self.inner.groups;
        let mut targets: Vec<usize> = groups
            .iter()
            .flat_map(|group| group.deployments.iter())
            .flat_map(|d| d.silent.iter().map(|target| target.group))
            .collect();
        targets.sort_unstable();
        targets.dedup();
        targets
            .into_iter()
            .map(|index| (groups[index].name.clone(), groups[index].breaker.is_open()))
            .collect()
    }

    /// Retires a router a reload replaced: waits (up to `deadline`) until nothing uses it any more
    /// (no call in flight, primary or silent, and no copy queued), then stops its dispatcher; what
    /// is still running at the deadline is cut and counted as dropped at shutdown. Its counters go
    /// on in the router that took them over ([`RouterBuilder::carry_over`](crate::RouterBuilder)).
    pub async fn retire(self, deadline: Duration) {
        let until = Instant::now() + deadline;
        // Calls in flight and running silent copies each hold the router's state; this handle is
        // the one left when they have all ended.
        while (Arc::strong_count(&self.inner) > 1 || !self.inner.silent.is_empty())
            && Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.inner.silent.closed.store(true, Ordering::Release);
        self.inner.hard_stop.send_replace(true);
    }

    /// Stops taking silent copies, lets queued and running ones finish until `deadline`, and counts
    /// the rest as dropped (shutdown). Primary calls keep working. Returns the final counters.
    pub async fn shutdown(&self, deadline: Duration) -> MirrorSnapshot {
        let inner = &self.inner;
        inner.silent.closed.store(true, Ordering::Release);
        let until = Instant::now() + deadline;
        while inner.silent.stats.snapshot().in_flight() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        inner.hard_stop.send_replace(true);
        // Aborted tasks and drained jobs count themselves as they are dropped.
        let settle = Instant::now() + Duration::from_secs(1);
        while inner.silent.stats.snapshot().in_flight() > 0 && Instant::now() < settle {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        inner.silent.stats.snapshot()
    }
}

impl Inner {
    /// Adds a finished call's cost and tokens to the caller's or the shadow's spend.
    pub(crate) fn count_spend(&self, silent: bool, cost: f64, tokens: u64) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let micros = (cost * 1e6).round().max(0.0) as u64;
        let (usd, count) = if silent {
            (&self.spend.shadow_micro_usd, &self.spend.shadow_tokens)
        } else {
            (&self.spend.caller_micro_usd, &self.spend.caller_tokens)
        };
        usd.fetch_add(micros, Ordering::Relaxed);
        count.fetch_add(tokens, Ordering::Relaxed);
    }
}
