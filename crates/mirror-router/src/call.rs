//! The call pipeline: one generic path from "a request for a model group" to "a routed result and
//! its record", shared by every kind of call.
//!
//! A kind of call (chat, chat stream, embeddings) plugs in with a [`CallKind`]: what to send to a
//! deployment, and how the answer becomes what the caller gets (recording it now, or when a stream
//! ends). Everything else is here once: resolve the group, pick a deployment, attempt with retries,
//! fallbacks and cooldowns (`attempt.rs`), fire the silent copies once (`silent/`), record
//! (`records.rs`).
//!
//! Every per-call resource lives in the [`Call`] guard and is released when it is dropped: the
//! deployment's in-flight load and the call's record. A caller whose future is dropped mid-call (a
//! client that hangs up, a handler cancelled at shutdown) leaks no load, and its call is recorded
//! once, as [`CallStatus::Cancelled`](mirror_core::CallStatus::Cancelled).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use futures::FutureExt as _;
use mirror_core::{CallMeta, CallType, ChatMessage};
use mirror_providers::ProviderError;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::cache::{CacheControl, CachePlan, CacheStatus};
use crate::deployment::Deployment;
use crate::router::{Inner, Routed};
use crate::RouterError;

/// One kind of call: what it sends, and how a provider's answer becomes the caller's result.
pub(crate) trait CallKind {
    /// The request. The call owns it for its whole life: its record is built from it.
    type Request: CallRequest;
    /// What a provider answers.
    type Answer: Send;
    /// What the caller gets.
    type Output;
    /// LiteLLM's name for this kind of call, in records.
    const CALL_TYPE: CallType;
    /// Whether the answer is streamed.
    const STREAM: bool;

    /// One attempt against one deployment.
    fn send<'a>(
        deployment: &'a Deployment,
        request: &'a Self::Request,
    ) -> impl Future<Output = Result<Self::Answer, ProviderError>> + Send + 'a;

    /// Ends a call that got an answer: records it (now, or when a stream ends) and returns what the
    /// caller gets.
    fn finish(
        call: Call<Self::Request>,
        deployment: &Deployment,
        answer: Self::Answer,
    ) -> Self::Output;

    /// The answer as the response cache keeps it; None: this kind is never cached (the default).
    fn to_cache(_answer: &Self::Answer) -> Option<Vec<u8>> {
        None
    }

    /// Ends a call with an answer the response cache kept: records it as a hit and returns what
    /// the caller gets; None (the call untouched) when the bytes do not read back, and the call
    /// then goes to a provider. Default: this kind is never cached.
    fn from_cache(_call: &mut Call<Self::Request>, _bytes: &[u8]) -> Option<Self::Output> {
        None
    }
}

/// What the pipeline needs of a request, whatever its kind.
pub(crate) trait CallRequest: Send + Sync + 'static {
    /// The model group (or alias) asked for.
    fn model(&self) -> &str;

    /// Fires this request's silent copies; runs once per client request, with the first deployment
    /// picked. Default: this kind of request is not mirrored.
    fn fire_silent(&self, _router: &Inner, _deployment: &Deployment, _meta: &CallMeta) {}

    /// The deployment id this request must go to (the one that stored the response it names), if
    /// any. Default: none, the group's strategy picks.
    fn pinned(&self) -> Option<&str> {
        None
    }

    /// Moves out what the call's record keeps of the request; `payloads` says whether the record
    /// carries the messages.
    fn take_record_parts(&mut self, payloads: bool) -> RecordParts;

    /// Removes a silent-copy marker the caller put in the gateway metadata that providers read to
    /// pick a call's connections (see `mirror_core::is_silent_copy`). Default: this kind of
    /// request carries none.
    fn clear_silent_mark(&mut self) {}

    /// Takes out the request's `cache` field (LiteLLM's per-request cache controls, never sent to
    /// a provider). Default: this kind of request has none.
    fn take_cache_control(&mut self) -> Option<Value> {
        None
    }

    /// What the response cache key is made of: the body a provider would get, without per-call
    /// fields (`model`, replaced by the group; `metadata`), and how many messages it has (LiteLLM's
    /// `max_messages`). Default: never cached.
    fn cache_body(&self) -> Option<(Map<String, Value>, usize)> {
        None
    }
}

/// What a record keeps of its request.
#[derive(Debug, Default)]
pub(crate) struct RecordParts {
    pub(crate) messages: Option<Vec<ChatMessage>>,
    pub(crate) user: Option<String>,
    pub(crate) metadata: Option<Map<String, Value>>,
}

/// One call in progress: its identity, its progress through the attempts, and its request.
///
/// Dropping it before it was recorded (the caller's future was dropped, a stream was dropped
/// unread, a silent task was aborted) records the call as cancelled and releases the deployment's
/// load: see the module docs.
pub(crate) struct Call<R: CallRequest> {
    pub(crate) scope: CallScope,
    pub(crate) request: R,
}

/// Everything a call's record is built from, besides the request.
pub(crate) struct CallScope {
    pub(crate) router: Arc<Inner>,
    pub(crate) meta: CallMeta,
    pub(crate) start_wall: SystemTime,
    pub(crate) start: Instant,
    pub(crate) call_type: CallType,
    pub(crate) stream: bool,
    /// Attempts made so far, across fallbacks.
    pub(crate) attempts: u32,
    /// Fallback groups tried, in order.
    pub(crate) fallbacks_tried: Vec<String>,
    /// The deployment of the latest attempt (the one that answered, once one did).
    pub(crate) deployment: Option<Arc<Deployment>>,
    /// The latest attempt's deployment load, held while the call uses it (a stream, until it ends).
    pub(crate) load: Option<InFlight>,
    /// Whether the record was emitted; the guard then has nothing left to do.
    pub(crate) recorded: bool,
    /// Whether the answer came from the response cache.
    pub(crate) cache_hit: bool,
    /// Whether the silent copies were fired (once per client request).
    pub(crate) silent_fired: bool,
}

/// One call's share of a deployment's in-flight load (what least-busy routing reads), given back
/// when dropped, so no path (an error, a panic, a dropped future) can leak it.
pub(crate) struct InFlight(Arc<Deployment>);

impl InFlight {
    pub(crate) fn new(deployment: &Arc<Deployment>) -> Self {
        deployment.state.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(deployment))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<R: CallRequest> Call<R> {
    pub(crate) fn new(
        router: Arc<Inner>,
        request: R,
        meta: CallMeta,
        kind: (CallType, bool),
    ) -> Self {
        Call {
            scope: CallScope {
                router,
                meta,
                start_wall: SystemTime::now(),
                start: Instant::now(),
                call_type: kind.0,
                stream: kind.1,
                attempts: 0,
                fallbacks_tried: Vec::new(),
                deployment: None,
                load: None,
                recorded: false,
                cache_hit: false,
                silent_fired: false,
            },
            request,
        }
    }

    /// Takes the request's record parts and marks the call recorded; `None` when it already was.
    pub(crate) fn take_for_record(&mut self) -> Option<RecordParts> {
        if std::mem::replace(&mut self.scope.recorded, true) {
            return None;
        }
        // The load is given back when the call ends, before its record is handed on.
        self.scope.load = None;
        let payloads = self.scope.router.record_payloads;
        Some(self.request.take_record_parts(payloads))
    }
}

impl<R: CallRequest> Drop for Call<R> {
    fn drop(&mut self) {
        if !self.scope.recorded {
            self.cancelled();
        }
    }
}

impl Inner {
    /// The call pipeline: routes `request` and ends the call through its kind.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any `.await` (a provider call, a retry's backoff) drops the [`Call`],
    /// which records the call as cancelled and releases the deployment's load.
    pub(crate) async fn call<K: CallKind>(
        self: &Arc<Self>,
        mut request: K::Request,
        meta: CallMeta,
    ) -> Result<Routed<K::Output>, RouterError> {
        if !meta.is_silent_experiment {
            // Only the copy point marks a call silent (and so puts it on the silent lane).
            request.clear_silent_mark();
        }
        let control = request.take_cache_control();
        let mut call = Call::new(Arc::clone(self), request, meta, (K::CALL_TYPE, K::STREAM));
        let plan = match self.cache_plan::<K>(&call, control.as_ref()) {
            Ok(plan) => plan,
            Err(error) => {
                call.failed(&error);
                return Err(error);
            }
        };
        if let Some(routed) = self.answer_from_cache::<K>(&mut call, plan.as_ref()).await {
            return Ok(routed);
        }
        self.call_upstream::<K>(call, plan).await
    }

    async fn call_upstream<K: CallKind>(
        self: &Arc<Self>,
        mut call: Call<K::Request>,
        plan: Option<CachePlan>,
    ) -> Result<Routed<K::Output>, RouterError> {
        // A panic (a provider's bug) is recorded as a failure, not left to the guard, which would
        // see only a dropped call and record it as cancelled; then it goes on unwinding.
        let attempted = AssertUnwindSafe(self.attempt::<K>(&mut call))
            .catch_unwind()
            .await;
        let attempted = match attempted {
            Ok(attempted) => attempted,
            Err(panic) => {
                call.failed(&RouterError::Panicked);
                std::panic::resume_unwind(panic)
            }
        };
        match attempted {
            Ok((answer, deployment)) => {
                let cache = match (&self.cache, plan) {
                    (Some(cache), Some(plan)) => {
                        if plan.store {
                            if let Some(bytes) = K::to_cache(&answer) {
                                cache.put(&plan, bytes);
                            }
                        }
                        CacheStatus::Miss
                    }
                    _ => CacheStatus::Off,
                };
                let call_id = call.scope.meta.call_id;
                let trace_id = call.scope.meta.trace_id.clone();
                let response = K::finish(call, &deployment, answer);
                Ok(Routed {
                    response,
                    call_id,
                    trace_id,
                    model_group: deployment.group.clone(),
                    deployment_id: deployment.id.clone(),
                    cache,
                })
            }
            Err(error) => {
                call.failed(&error);
                Err(error)
            }
        }
    }

    /// The response cache plan of a call: None when no cache is configured, the call is silent (a
    /// shadow always calls its model), its kind is not cached, or its request skips the cache.
    fn cache_plan<K: CallKind>(
        &self,
        call: &Call<K::Request>,
        control: Option<&Value>,
    ) -> Result<Option<CachePlan>, RouterError> {
        let Some(cache) = &self.cache else {
            return Ok(None);
        };
        if call.scope.meta.is_silent_experiment || K::STREAM {
            return Ok(None);
        }
        let control = match control {
            Some(value) => CacheControl::parse(value)
                .map_err(|message| RouterError::InvalidCacheControl { message })?,
            None => CacheControl::default(),
        };
        // An unknown model gets its error from the attempt loop, as without a cache.
        let (Ok(group), Some((body, messages))) = (
            self.resolve(call.request.model()),
            call.request.cache_body(),
        ) else {
            return Ok(None);
        };
        Ok(cache.plan(K::CALL_TYPE, &group.name, messages, &body, &control))
    }

    /// Answers `call` from the cache when `plan` finds an answer there (the call is then recorded);
    /// None otherwise. A hit fires the request's silent copies exactly as a miss would.
    async fn answer_from_cache<K: CallKind>(
        &self,
        call: &mut Call<K::Request>,
        plan: Option<&CachePlan>,
    ) -> Option<Routed<K::Output>> {
        let (Some(cache), Some(plan)) = (&self.cache, plan) else {
            return None;
        };
        if !plan.read {
            cache.count_miss();
            return None;
        }
        let bytes = cache.get(plan).await?;
        let group = self.resolve(call.request.model()).ok()?.clone();
        call.scope.meta.model_group.clone_from(&group.name);
        // The deployment a miss would most likely have gone to names the silent groups: picked
        // by the group's strategy, without reserving a request (none is sent).
        let picked = group
            .select(
                self.settings.routing_strategy,
                self.settings.routing_strategy_args.lowest_latency_buffer,
                &self.clock,
                None,
            )
            .ok()
            .or_else(|| group.deployments.first().cloned());
        if let Some(deployment) = &picked {
            call.request.fire_silent(self, deployment, &call.scope.meta);
            call.scope.silent_fired = true;
        }
        let response = K::from_cache(call, &bytes)?;
        let call_id = call.scope.meta.call_id;
        let trace_id = call.scope.meta.trace_id.clone();
        Some(Routed {
            response,
            call_id,
            trace_id,
            model_group: group.name.clone(),
            deployment_id: String::new(),
            cache: CacheStatus::Hit {
                key: plan.key.clone(),
            },
        })
    }
}

impl<R: CallRequest> Call<R> {
    /// Records a stream that ended: the deployment that streamed it gets its latency.
    pub(crate) fn stream_ended(&mut self, answered: crate::records::Answered<'_>) {
        let Some(deployment) = self.scope.deployment.clone() else {
            return;
        };
        deployment
            .state
            .record_latency(Instant::now().saturating_duration_since(self.scope.start));
        self.succeeded(&deployment, answered);
    }

    /// Records a call that failed after it started answering (a stream cut off), counting the
    /// failure against its deployment; returns the error for the caller.
    pub(crate) fn failed_midway(&mut self, source: ProviderError) -> RouterError {
        let deployment = self.scope.deployment.clone();
        let (group, id) = deployment
            .as_deref()
            .map(|d| (d.group.clone(), d.id.clone()))
            .unwrap_or_default();
        if let Some(deployment) = &deployment {
            self.scope.router.note_failure(
                deployment,
                &source,
                self.scope.meta.is_silent_experiment,
            );
        }
        let error = RouterError::Provider {
            group,
            deployment: id,
            attempts: self.scope.attempts,
            source,
        };
        self.failed(&error);
        error
    }
}
