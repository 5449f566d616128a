//! The router: resolves a model group, picks deployments, retries and falls back, fires silent copies,
//! and emits one record per call.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use mirror_core::{
    epoch_seconds, CallId, CallMeta, CallRecord, CallStatus, CallType, ChatRequest, ChatResponse,
    EmbeddingsRequest, EmbeddingsResponse, ErrorInformation, RecordMetadata, SpendKind, TraceId,
    Usage, PER_CALL_METADATA_KEYS,
};
use mirror_providers::{Provider, ProviderError};
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

use crate::config::{MirrorSettings, ModelDeployment, RouterConfig, RouterSettings};
use crate::deployment::{prices, Clock, Deployment, DeploymentState};
use crate::error::{nearest, ConfigError, RouterError};
use crate::mirror::{
    approx_copy_bytes, sample_key, sampled_in, DropReason, JobTicket, MinuteBudget, MirrorJob,
    MirrorQueue, MirrorSnapshot,
};
use crate::records::RecordConsumer;
use crate::select::Group;
use crate::shared::{SharedState, SharedStateStats};
use crate::stream::ChatStream;
use crate::validate::validate;

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
    /// The deployment that answered.
    pub deployment_id: String,
}

impl<T> Routed<T> {
    fn new(response: T, meta: &CallMeta, deployment: &Deployment) -> Self {
        Routed {
            response,
            call_id: meta.call_id,
            trace_id: meta.trace_id.clone(),
            model_group: deployment.group.clone(),
            deployment_id: deployment.id.clone(),
        }
    }
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
struct SpendStats {
    caller_micro_usd: AtomicU64,
    caller_tokens: AtomicU64,
    shadow_micro_usd: AtomicU64,
    shadow_tokens: AtomicU64,
}

/// The LLM router. Cheap to clone: clones share one state.
///
/// Build it with [`Router::builder`] inside a Tokio runtime (or use `BlockingRouter` from plain
/// threads).
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups: Vec<&str> = self.inner.groups.iter().map(|g| g.name.as_str()).collect();
        f.debug_struct("Router")
            .field("groups", &groups)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    /// Every model group, sorted by name. Deployments name their silent groups by index here.
    groups: Vec<Arc<Group>>,
    /// Group names and aliases, to indexes in `groups`.
    ///
    /// FxHash instead of SipHash: keys are fixed when the router is built, and a caller's model
    /// name is only ever looked up, never inserted, so crafted names cannot degrade the map.
    names: FxHashMap<String, usize>,
    settings: RouterSettings,
    mirror_settings: MirrorSettings,
    clock: Clock,
    mirror: MirrorQueue,
    records: Option<Arc<dyn RecordConsumer>>,
    /// Whether records carry messages and responses (`RecordConsumer::wants_payloads`).
    record_payloads: bool,
    spend: SpendStats,
    hard_stop: watch::Sender<bool>,
    /// State shared with other instances through Redis; None keeps everything in memory.
    shared: Option<Arc<SharedState>>,
}

/// Builds a [`Router`] from configuration, providers and a record consumer.
#[must_use]
pub struct RouterBuilder {
    config: RouterConfig,
    origin: String,
    providers: HashMap<String, Arc<dyn Provider>>,
    records: Option<Arc<dyn RecordConsumer>>,
    mirror: MirrorSettings,
}

impl Router {
    /// A builder with no deployments and no providers.
    pub fn builder() -> RouterBuilder {
        RouterBuilder {
            config: RouterConfig::default(),
            origin: "<builder>".to_owned(),
            providers: HashMap::new(),
            records: None,
            mirror: MirrorSettings::default(),
        }
    }

    /// A chat completion. If the first deployment picked has a `silent_model`, silent copies are
    /// queued in the background; this call never waits for them.
    ///
    /// # Errors
    ///
    /// [`RouterError`] once retries and fallbacks are exhausted.
    pub async fn chat(&self, request: ChatRequest) -> Result<Routed<ChatResponse>, RouterError> {
        let meta = CallMeta::for_request(&request.model, request.metadata.as_ref());
        self.inner.chat(request, meta).await
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
        Arc::clone(&self.inner).chat_stream(request, meta).await
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
        self.inner.embeddings(request, meta).await
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
        self.inner.chat(request, meta).await
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
        Arc::clone(&self.inner).chat_stream(request, meta).await
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
        self.inner.embeddings(request, meta).await
    }

    /// The silent-mirroring counters.
    pub fn mirror_stats(&self) -> MirrorSnapshot {
        self.inner.mirror.stats.snapshot()
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

    /// Switches mirroring on or off for every deployment, at run time.
    pub fn set_mirroring(&self, enabled: bool) {
        self.inner.mirror.enabled.store(enabled, Ordering::Release);
    }

    /// Whether mirroring is switched on.
    pub fn is_mirroring(&self) -> bool {
        self.inner.mirror.enabled.load(Ordering::Acquire)
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

    /// Stops taking silent copies, lets queued and running ones finish until `deadline`, and counts
    /// the rest as dropped (shutdown). Primary calls keep working. Returns the final counters.
    pub async fn shutdown(&self, deadline: Duration) -> MirrorSnapshot {
        let inner = &self.inner;
        inner.mirror.closed.store(true, Ordering::Release);
        let until = Instant::now() + deadline;
        while inner.mirror.stats.snapshot().in_flight() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        inner.hard_stop.send_replace(true);
        // Aborted tasks and drained jobs count themselves as they are dropped.
        let settle = Instant::now() + Duration::from_secs(1);
        while inner.mirror.stats.snapshot().in_flight() > 0 && Instant::now() < settle {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        inner.mirror.stats.snapshot()
    }
}

impl RouterBuilder {
    /// Uses this configuration (replacing deployments and settings added so far).
    pub fn config(mut self, config: RouterConfig) -> Self {
        self.config = config;
        self
    }

    /// Names the configuration's source in error messages.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = origin.into();
        self
    }

    /// Adds a deployment.
    pub fn deployment(mut self, deployment: ModelDeployment) -> Self {
        self.config.model_list.push(deployment);
        self
    }

    /// Sets the router settings.
    pub fn settings(mut self, settings: RouterSettings) -> Self {
        self.config.router_settings = settings;
        self
    }

    /// Registers a provider for the model prefix it names ([`Provider::name`]), replacing any provider
    /// registered for that prefix.
    pub fn provider(mut self, provider: Arc<dyn Provider>) -> Self {
        self.providers.insert(provider.name().to_owned(), provider);
        self
    }

    /// Registers a provider for an explicit model prefix.
    pub fn provider_for(mut self, prefix: impl Into<String>, provider: Arc<dyn Provider>) -> Self {
        self.providers.insert(prefix.into(), provider);
        self
    }

    /// Sends every call record to `consumer`.
    pub fn records(mut self, consumer: impl RecordConsumer) -> Self {
        self.records = Some(Arc::new(consumer));
        self
    }

    /// Sets the silent-mirroring settings.
    pub fn mirror_settings(mut self, settings: MirrorSettings) -> Self {
        self.mirror = settings;
        self
    }

    /// Validates the configuration (`validate.rs`: every rule, no runtime needed), then wires the
    /// deployments, groups and shared state and starts the silent dispatcher.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the field and deployment: an unknown provider prefix, a
    /// `silent_model` or fallback that names no group, a duplicate deployment id, a zero or negative
    /// weight, a rate outside 0..=1, a duration that is not finite or out of range, a zero size, an
    /// unusable Redis address; [`ConfigError::NoRuntime`] outside a Tokio runtime.
    pub fn build(self) -> Result<Router, ConfigError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let mut prefixes: Vec<(&str, &Arc<dyn Provider>)> = self
            .providers
            .iter()
            .map(|(prefix, provider)| (prefix.as_str(), provider))
            .collect();
        prefixes.sort_unstable_by_key(|(prefix, _)| *prefix);
        let names_only: Vec<&str> = prefixes.iter().map(|(prefix, _)| *prefix).collect();
        let valid = validate(&self.config, &self.mirror, &self.origin, &names_only)?;
        let RouterConfig {
            model_list,
            router_settings: settings,
        } = self.config;
        let mirror_settings = self.mirror;

        let mut members: Vec<Vec<Arc<Deployment>>> = vec![Vec::new(); valid.groups.len()];
        for (entry, checked) in model_list.into_iter().zip(valid.deployments) {
            // `validate` resolved the provider and the group to indexes into `prefixes` and
            // `valid.groups`.
            let provider = prefixes[checked.provider].1;
            let deployment = Deployment {
                id: checked.id,
                group: entry.model_name,
                api_base: provider.api_base(&checked.params),
                provider: Arc::clone(provider),
                silent: checked.silent.into_boxed_slice(),
                sample_rate: checked.sample_rate,
                weight: checked.weight,
                order: checked.params.order.unwrap_or(0),
                prices: prices(&checked.params, &entry.model_info),
                can_cool_down: checked.can_cool_down,
                state: DeploymentState::default(),
                params: checked.params,
            };
            members[checked.group].push(Arc::new(deployment));
        }

        let mut names: FxHashMap<String, usize> = FxHashMap::default();
        let groups: Vec<Arc<Group>> = valid
            .groups
            .into_iter()
            .zip(members)
            .enumerate()
            .map(|(index, (name, deployments))| {
                names.insert(name.clone(), index);
                Arc::new(Group {
                    name,
                    deployments,
                    budget: Arc::new(MinuteBudget::default()),
                    breaker: crate::mirror::SilentBreaker::default(),
                })
            })
            .collect();
        for (alias, index) in valid.aliases {
            names.insert(alias, index);
        }
        let shared = SharedState::from_settings(&settings)
            .map_err(|(location, message)| ConfigError::Invalid {
                origin: self.origin.clone(),
                location,
                message,
                position: None,
            })?
            .map(Arc::new);
        // Instances that share state must agree on minutes and cooldown ends: the wall clock.
        let clock = if shared.is_some() {
            Clock::wall()
        } else {
            Clock::new()
        };
        if let Some(shared) = &shared {
            let deployments = groups
                .iter()
                .flat_map(|group| group.deployments.iter().cloned())
                .collect();
            // Only budgets that can be used are synced.
            let budgets = if mirror_settings.max_mirrors_per_minute.is_some() {
                groups
                    .iter()
                    .map(|group| (group.name.clone(), Arc::clone(&group.budget)))
                    .collect()
            } else {
                Vec::new()
            };
            shared.spawn_sync(&handle, deployments, budgets, clock);
        }
        let (mirror, receiver) = MirrorQueue::new(
            mirror_settings.queue_size,
            mirror_settings.queue_max_bytes,
            mirror_settings.enabled,
        );
        let record_payloads = self
            .records
            .as_ref()
            .is_some_and(|records| records.wants_payloads());
        let (hard_stop, _) = watch::channel(false);
        let max_in_flight = mirror_settings.max_in_flight.max(1);
        let inner = Arc::new(Inner {
            groups,
            names,
            settings,
            mirror_settings,
            clock,
            mirror,
            records: self.records,
            record_payloads,
            spend: SpendStats::default(),
            hard_stop,
            shared,
        });
        handle.spawn(dispatch_loop(
            Arc::downgrade(&inner),
            receiver,
            max_in_flight,
            inner.hard_stop.subscribe(),
        ));
        Ok(Router { inner })
    }
}

/// Runs silent copies: at most `max_in_flight` at once, each under a permit; stops at hard stop.
///
/// A permit is taken before a job is received, so a job waiting for a slot stays in the channel:
/// at most `queue_size` copies are queued and `max_in_flight` running, never one more.
async fn dispatch_loop(
    inner: Weak<Inner>,
    mut receiver: mpsc::Receiver<(MirrorJob, JobTicket)>,
    max_in_flight: usize,
    mut hard_stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(max_in_flight));
    loop {
        let permit = tokio::select! {
            biased;
            _ = hard_stop.wait_for(|stop| *stop) => None,
            permit = Arc::clone(&permits).acquire_owned() => permit.ok(),
        };
        let Some(permit) = permit else { break };
        let next = tokio::select! {
            biased;
            _ = hard_stop.wait_for(|stop| *stop) => None,
            next = receiver.recv() => next,
        };
        let Some((job, ticket)) = next else { break };
        let Some(inner) = inner.upgrade() else {
            // The ticket's drop counts the job as dropped at shutdown.
            drop(ticket);
            break;
        };
        let mut stop = hard_stop.clone();
        tokio::spawn(async move {
            let mut ticket = ticket;
            ticket.start();
            tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => drop(ticket),
                succeeded = inner.run_silent(job) => ticket.finish(succeeded),
            }
            drop(permit);
        });
    }
    // Whatever is still queued is dropped (and counted) with the receiver.
    receiver.close();
    while receiver.recv().await.is_some() {}
}

/// Runs once, with the first deployment picked for a call (it fires the silent copies).
type FirstPickHook<'a> = &'a mut (dyn FnMut(&Deployment, &CallMeta) + Send);

/// What a finished attempt loop knows about how it went.
pub(crate) struct Attempts {
    pub(crate) count: u32,
    pub(crate) fallbacks_tried: Vec<String>,
}

/// The context a call's record is built from.
pub(crate) struct CallContext<'a> {
    pub(crate) meta: &'a CallMeta,
    pub(crate) start_wall: SystemTime,
    pub(crate) start: Instant,
    pub(crate) call_type: CallType,
    pub(crate) stream: bool,
}

impl Inner {
    fn resolve(&self, model: &str) -> Result<&Arc<Group>, RouterError> {
        match self.names.get(model) {
            Some(&index) => Ok(&self.groups[index]),
            None => Err(RouterError::UnknownModel {
                model: model.to_owned(),
                suggestion: nearest(model, self.names.keys().map(String::as_str)),
            }),
        }
    }

    fn fallback_groups(&self, group: &str, error: &RouterError) -> Vec<String> {
        let lists = match error.provider_error() {
            Some(ProviderError::ContextWindowExceeded { .. }) => {
                &self.settings.context_window_fallbacks
            }
            Some(ProviderError::ContentPolicy { .. }) => &self.settings.content_policy_fallbacks,
            // The caller's own mistake: another group will not fix it.
            Some(ProviderError::BadRequest { .. }) => return Vec::new(),
            _ => &self.settings.fallbacks,
        };
        let lookup = |key: &str| lists.iter().find_map(|map| map.get(key)).cloned();
        let mut groups = lookup(group)
            .or_else(|| lookup("*"))
            .unwrap_or_else(|| self.settings.default_fallbacks.clone());
        groups.retain(|name| name != group);
        groups.truncate(self.settings.max_fallbacks);
        groups
    }

    /// Runs `call` against deployments of `model`'s group with retries, then its fallbacks.
    /// `on_first_pick` runs once, with the first deployment picked.
    async fn with_retries<T, F, Fut>(
        &self,
        model: &str,
        meta: &mut CallMeta,
        mut on_first_pick: Option<FirstPickHook<'_>>,
        mut call: F,
    ) -> (
        Result<(T, Arc<Deployment>), (RouterError, Option<Arc<Deployment>>)>,
        Attempts,
    )
    where
        F: FnMut(Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let mut attempts = Attempts {
            count: 0,
            fallbacks_tried: Vec::new(),
        };
        let first = match self.resolve(model) {
            Ok(group) => Arc::clone(group),
            Err(err) => return (Err((err, None)), attempts),
        };
        let mut group = first;
        let mut fallbacks: Option<std::vec::IntoIter<String>> = None;
        let mut last_deployment: Option<Arc<Deployment>> = None;
        loop {
            meta.model_group.clone_from(&group.name);
            let retries = group
                .deployments
                .iter()
                .find_map(|d| d.params.num_retries)
                .unwrap_or(self.settings.num_retries);
            let mut error: Option<RouterError> = None;
            let mut avoid: Option<Arc<Deployment>> = None;
            for attempt in 0..=retries {
                let deployment = match self.pick(&group, avoid.as_deref()).await {
                    Ok(deployment) => deployment,
                    Err(wait) => {
                        error = Some(RouterError::NoHealthyDeployment {
                            group: group.name.clone(),
                            retry_after: wait,
                        });
                        break;
                    }
                };
                if let Some(hook) = on_first_pick.take() {
                    hook(&deployment, meta);
                }
                attempts.count += 1;
                let minute = self.clock.minute();
                deployment.state.count_request(minute);
                deployment.state.in_flight.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                let result = call(Arc::clone(&deployment)).await;
                deployment.state.in_flight.fetch_sub(1, Ordering::Relaxed);
                match result {
                    Ok(value) => {
                        deployment.state.record_latency(started.elapsed());
                        return (Ok((value, deployment)), attempts);
                    }
                    Err(err) => {
                        self.note_failure(&deployment, &err, meta);
                        let retry = err.is_retryable() && attempt < retries;
                        let wait = self.backoff(attempt, err.retry_after());
                        avoid = Some(Arc::clone(&deployment));
                        error = Some(RouterError::Provider {
                            group: group.name.clone(),
                            deployment: deployment.id.clone(),
                            attempts: attempts.count,
                            source: err,
                        });
                        last_deployment = Some(deployment);
                        if !retry {
                            break;
                        }
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            let error = error.unwrap_or(RouterError::NoHealthyDeployment {
                group: group.name.clone(),
                retry_after: Duration::ZERO,
            });
            let queue = fallbacks
                .get_or_insert_with(|| self.fallback_groups(&group.name, &error).into_iter());
            let next = queue.find_map(|name| self.resolve(&name).ok().map(Arc::clone));
            match next {
                Some(next) => {
                    tracing::info!(
                        from = %group.name,
                        to = %next.name,
                        error = %error,
                        "Falling back to another model group."
                    );
                    attempts.fallbacks_tried.push(next.name.clone());
                    group = next;
                }
                None => return (Err((error, last_deployment)), attempts),
            }
        }
    }

    /// Picks a deployment of `group`. A deployment with an `rpm` limit is admitted by Redis when
    /// state is shared, so the limit holds across instances; one that Redis finds full is skipped
    /// and another picked.
    async fn pick(
        &self,
        group: &Group,
        avoid: Option<&Deployment>,
    ) -> Result<Arc<Deployment>, Duration> {
        let mut refused = 0;
        loop {
            let deployment = group.select(
                self.settings.routing_strategy,
                self.settings.routing_strategy_args.lowest_latency_buffer,
                &self.clock,
                avoid,
            )?;
            let (Some(shared), Some(limit)) = (&self.shared, deployment.params.rpm) else {
                return Ok(deployment);
            };
            match shared
                .reserve_request(&deployment, limit, &self.clock)
                .await
            {
                // Refused: the deployment now looks full locally too, so selection skips it.
                Some(false) if refused < group.deployments.len() => refused += 1,
                Some(false) => {
                    let now_ms = self.clock.now_ms();
                    return Err(Duration::from_millis(60_000 - now_ms % 60_000));
                }
                // Admitted by Redis, or Redis could not say: local state admitted it.
                Some(true) | None => return Ok(deployment),
            }
        }
    }

    pub(crate) fn note_stream_failure(
        &self,
        deployment: &Deployment,
        err: &ProviderError,
        meta: &CallMeta,
    ) {
        self.note_failure(deployment, err, meta);
    }

    fn note_failure(&self, deployment: &Deployment, err: &ProviderError, meta: &CallMeta) {
        let cool = deployment
            .state
            .record_failure(&self.clock, err, self.settings.allowed_fails);
        if cool && deployment.can_cool_down && !self.settings.disable_cooldowns {
            let cooldown = Duration::from_secs_f64(self.settings.cooldown_time.max(0.0));
            let cooldown = err
                .retry_after()
                .map_or(cooldown, |asked| asked.max(cooldown));
            deployment.state.cool_down(self.clock.now_ms(), cooldown);
            if let Some(shared) = &self.shared {
                shared.wake();
            }
            tracing::warn!(
                group = %deployment.group,
                deployment = %deployment.id,
                error_class = err.class(),
                cooldown_secs = cooldown.as_secs_f64(),
                "Deployment cooling down."
            );
        }
        tracing::debug!(
            group = %deployment.group,
            deployment = %deployment.id,
            silent = meta.is_silent_experiment,
            error = %err,
            "Provider call failed."
        );
    }

    /// Exponential backoff with jitter, at least `retry_after` setting and the provider's ask.
    fn backoff(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        let exponential = 0.5
            * 2f64
                .powi(i32::try_from(attempt).unwrap_or(i32::MAX))
                .min(16.0);
        let jittered = exponential * (0.75 + fastrand::f64() * 0.5);
        let floor = self.settings.retry_after.max(0.0);
        let base = Duration::from_secs_f64(jittered.max(floor));
        // A provider's Retry-After wins, bounded so one retry never hangs a call for minutes.
        asked.map_or(base, |asked| {
            asked
                .min(Duration::from_secs(60))
                .max(Duration::from_secs_f64(floor))
        })
    }

    fn fire_mirrors(&self, deployment: &Deployment, request: &ChatRequest, meta: &CallMeta) {
        if deployment.silent.is_empty() {
            return;
        }
        // A silent call never mirrors, whatever its deployment says: no shadow of a shadow.
        if meta.is_silent_experiment {
            return;
        }
        let stats = &self.mirror.stats;
        let key = sample_key(request, self.mirror_settings.sample_key.as_deref());
        // Estimated once per request, and only when a copy gets that far.
        let mut bytes = None;
        for target in &deployment.silent {
            let group = &self.groups[target.group];
            if meta.mirror_opt_out {
                stats.mirrored_and_dropped(DropReason::OptedOut);
            } else if !self.mirror.enabled.load(Ordering::Acquire) {
                stats.mirrored_and_dropped(DropReason::SwitchedOff);
            } else if !sampled_in(deployment.sample_rate, key) {
                stats.mirrored_and_dropped(DropReason::SampledOut);
            } else if !self.is_silent_group_healthy(group) {
                stats.mirrored_and_dropped(DropReason::Unhealthy);
            } else if !self.mirror_budget_admits(group) {
                stats.mirrored_and_dropped(DropReason::RateCapped);
            } else {
                let bytes = *bytes.get_or_insert_with(|| approx_copy_bytes(request));
                // Room is reserved before the copy is made: a copy that would be dropped is not made.
                if let Some(ticket) = self.mirror.reserve(bytes) {
                    let job = MirrorJob {
                        copy: request.to_mirror(meta, &target.name),
                        group: target.group,
                    };
                    self.mirror.send(job, ticket);
                }
            }
        }
    }

    /// Whether copies to `group` are worth making: its silent breaker admits them (closed, or this
    /// copy is the half-open probe) and not every one of its deployments is cooling down.
    fn is_silent_group_healthy(&self, group: &Group) -> bool {
        let now_ms = self.clock.now_ms();
        !group.is_cooling_down(now_ms) && group.breaker.admits(now_ms, self.silent_open_ms())
    }

    /// How long a tripped silent breaker stays open: the router's `cooldown_time`.
    fn silent_open_ms(&self) -> u64 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ms = (self.settings.cooldown_time.max(0.0) * 1000.0) as u64;
        ms.max(1)
    }

    /// Takes one copy from the silent group's `max_mirrors_per_minute`, if one is set.
    fn mirror_budget_admits(&self, group: &Group) -> bool {
        let Some(cap) = self.mirror_settings.max_mirrors_per_minute else {
            return true;
        };
        group.budget.try_take(self.clock.minute(), cap)
    }

    /// Feeds a finished silent call to its group's breaker, and logs a failure at most once per
    /// `SILENT_WARN_INTERVAL_MS` per group (with how many were not logged since); every failure is
    /// counted in `MirrorSnapshot::failed` and the metrics either way.
    fn note_silent_result(&self, group: &Group, result: &Result<(), RouterError>) {
        let breaker = &group.breaker;
        let err = match result {
            Ok(()) => {
                if breaker.record_success() {
                    self.mirror.stats.breaker_moved(false);
                    tracing::info!(
                        group = %group.name,
                        failed_unlogged = breaker.take_unlogged(),
                        "Silent model group answers again; copies flow again."
                    );
                }
                return;
            }
            Err(err) => err,
        };
        let now_ms = self.clock.now_ms();
        if !self.settings.disable_cooldowns && counts_against_silent_group(err) {
            if let Some(failures) =
                breaker.record_failure(now_ms, self.settings.allowed_fails, self.silent_open_ms())
            {
                self.mirror.stats.breaker_moved(true);
                tracing::warn!(
                    group = %group.name,
                    consecutive_failures = failures,
                    open_secs = self.settings.cooldown_time,
                    "Silent model group keeps failing; its copies are dropped (as unhealthy) until a probe succeeds."
                );
            }
        }
        if let Some(unlogged) = breaker.should_log_failure(now_ms) {
            let deployment = match err {
                RouterError::Provider { deployment, .. } => deployment.as_str(),
                _ => "",
            };
            tracing::warn!(
                group = %group.name,
                deployment = %deployment,
                error_class = err.class(),
                error = %err,
                failed_unlogged = unlogged,
                "Silent call failed."
            );
        }
    }

    async fn chat(
        &self,
        request: ChatRequest,
        mut meta: CallMeta,
    ) -> Result<Routed<ChatResponse>, RouterError> {
        let context_start = (SystemTime::now(), Instant::now());
        let mut fire = |deployment: &Deployment, meta: &CallMeta| {
            self.fire_mirrors(deployment, &request, meta);
        };
        let request_ref = &request;
        let (result, attempts) = self
            .with_retries(
                &request.model,
                &mut meta,
                Some(&mut fire),
                |deployment| async move {
                    deployment
                        .provider
                        .chat(&deployment.params, request_ref)
                        .await
                },
            )
            .await;
        let context = CallContext {
            meta: &meta,
            start_wall: context_start.0,
            start: context_start.1,
            call_type: CallType::Completion,
            stream: false,
        };
        match result {
            Ok((response, deployment)) => {
                let end = Instant::now();
                self.emit_success(
                    &context,
                    &deployment,
                    &attempts,
                    request,
                    Some(Cow::Borrowed(&response)),
                    response.usage.as_ref(),
                    Some(end),
                    end,
                );
                Ok(Routed::new(response, &meta, &deployment))
            }
            Err((error, deployment)) => {
                self.emit_failure(&context, deployment.as_deref(), &attempts, request, &error);
                Err(error)
            }
        }
    }

    async fn chat_stream(
        self: Arc<Self>,
        request: ChatRequest,
        mut meta: CallMeta,
    ) -> Result<Routed<ChatStream>, RouterError> {
        let start_wall = SystemTime::now();
        let start = Instant::now();
        let this = Arc::clone(&self);
        let mut fire = |deployment: &Deployment, meta: &CallMeta| {
            this.fire_mirrors(deployment, &request, meta);
        };
        let request_ref = &request;
        let model = request.model.clone();
        let (result, attempts) = self
            .with_retries(
                &model,
                &mut meta,
                Some(&mut fire),
                |deployment| async move {
                    deployment
                        .provider
                        .chat_stream(&deployment.params, request_ref)
                        .await
                },
            )
            .await;
        match result {
            Ok((chunks, deployment)) => {
                deployment.state.in_flight.fetch_add(1, Ordering::Relaxed);
                let routed = Routed {
                    call_id: meta.call_id,
                    trace_id: meta.trace_id.clone(),
                    model_group: deployment.group.clone(),
                    deployment_id: deployment.id.clone(),
                    response: ChatStream::new(
                        chunks,
                        crate::stream::StreamRecordState {
                            router: Arc::clone(&self),
                            deployment,
                            meta,
                            request,
                            attempts: attempts.count,
                            fallbacks_tried: attempts.fallbacks_tried,
                            start_wall,
                            start,
                        },
                    ),
                };
                Ok(routed)
            }
            Err((error, deployment)) => {
                let context = CallContext {
                    meta: &meta,
                    start_wall,
                    start,
                    call_type: CallType::Completion,
                    stream: true,
                };
                self.emit_failure(&context, deployment.as_deref(), &attempts, request, &error);
                Err(error)
            }
        }
    }

    async fn embeddings(
        &self,
        request: EmbeddingsRequest,
        mut meta: CallMeta,
    ) -> Result<Routed<EmbeddingsResponse>, RouterError> {
        let start_wall = SystemTime::now();
        let start = Instant::now();
        let request_ref = &request;
        let (result, attempts) = self
            .with_retries(&request.model, &mut meta, None, |deployment| async move {
                deployment
                    .provider
                    .embeddings(&deployment.params, request_ref)
                    .await
            })
            .await;
        let context = CallContext {
            meta: &meta,
            start_wall,
            start,
            call_type: CallType::Embedding,
            stream: false,
        };
        let chat_shaped = ChatRequest {
            user: request.user.clone(),
            metadata: request.metadata.clone(),
            ..ChatRequest::new(request.model.clone(), Vec::new())
        };
        match result {
            Ok((response, deployment)) => {
                let usage = response.usage.as_ref().map(|u| Usage {
                    prompt_tokens: u.prompt_tokens,
                    completion_tokens: 0,
                    total_tokens: u.total_tokens,
                    extra: serde_json::Map::new(),
                });
                let end = Instant::now();
                self.emit_success(
                    &context,
                    &deployment,
                    &attempts,
                    chat_shaped,
                    None,
                    usage.as_ref(),
                    Some(end),
                    end,
                );
                Ok(Routed::new(response, &meta, &deployment))
            }
            Err((error, deployment)) => {
                self.emit_failure(
                    &context,
                    deployment.as_deref(),
                    &attempts,
                    chat_shaped,
                    &error,
                );
                Err(error)
            }
        }
    }

    /// Runs one silent copy through the router; returns whether it succeeded. Never raises.
    async fn run_silent(self: Arc<Self>, job: MirrorJob) -> bool {
        let MirrorJob { copy, group } = job;
        let result = if copy.request.is_stream() {
            match Arc::clone(&self).chat_stream(copy.request, copy.meta).await {
                Ok(routed) => {
                    let mut stream = routed.response;
                    let mut failure = None;
                    while let Some(item) = stream.next().await {
                        if let Err(err) = item {
                            failure = Some(err);
                            break;
                        }
                    }
                    failure.map_or(Ok(()), Err)
                }
                Err(err) => Err(err),
            }
        } else {
            self.chat(copy.request, copy.meta).await.map(|_| ())
        };
        self.note_silent_result(&self.groups[group], &result);
        result.is_ok()
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn emit_success(
        &self,
        context: &CallContext<'_>,
        deployment: &Deployment,
        attempts: &Attempts,
        request: ChatRequest,
        response: Option<Cow<'_, ChatResponse>>,
        usage: Option<&Usage>,
        first_token: Option<Instant>,
        end: Instant,
    ) {
        let (prompt, completion, total) = usage.map_or((0, 0, 0), |u| {
            let total = if u.total_tokens > 0 {
                u.total_tokens
            } else {
                u.prompt_tokens + u.completion_tokens
            };
            (u.prompt_tokens, u.completion_tokens, total)
        });
        deployment.state.count_tokens(self.clock.minute(), total);
        let cost = deployment.cost(prompt, completion);
        self.count_spend(context.meta.is_silent_experiment, cost, total);
        let Some(records) = &self.records else { return };
        let id = response
            .as_deref()
            .map(|r| r.id.as_str())
            .filter(|id| !id.is_empty());
        let mut record = self.base_record(context, Some(deployment), attempts, request, end, id);
        record.status = CallStatus::Success;
        record.completion_start_time = first_token.map(|t| wall_at(context, t));
        record.prompt_tokens = prompt;
        record.completion_tokens = completion;
        record.total_tokens = total;
        record.response_cost = cost;
        // The one deep copy of a response, made only for a consumer that keeps it.
        record.response = response
            .filter(|_| self.record_payloads)
            .map(Cow::into_owned);
        records.consume(record);
    }

    pub(crate) fn emit_failure(
        &self,
        context: &CallContext<'_>,
        deployment: Option<&Deployment>,
        attempts: &Attempts,
        request: ChatRequest,
        error: &RouterError,
    ) {
        let Some(records) = &self.records else { return };
        // Nothing was routed for an unknown model: the gateway answers 404 and logs it itself.
        if matches!(error, RouterError::UnknownModel { .. }) {
            return;
        }
        let mut record =
            self.base_record(context, deployment, attempts, request, Instant::now(), None);
        record.status = CallStatus::Failure;
        let message = error_chain(error);
        record.error_information = Some(ErrorInformation {
            error_code: error
                .provider_error()
                .and_then(ProviderError::status)
                .map(|status| status.to_string()),
            error_class: error.class().to_owned(),
            llm_provider: record.custom_llm_provider.clone(),
            error_message: message.clone(),
        });
        record.error_str = Some(message);
        records.consume(record);
    }

    fn count_spend(&self, silent: bool, cost: f64, tokens: u64) {
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

    fn base_record(
        &self,
        context: &CallContext<'_>,
        deployment: Option<&Deployment>,
        attempts: &Attempts,
        request: ChatRequest,
        end: Instant,
        id: Option<&str>,
    ) -> CallRecord {
        let meta = context.meta;
        let mut requester_metadata = request.metadata.unwrap_or_default();
        requester_metadata.retain(|key, _| !PER_CALL_METADATA_KEYS.contains(&key.as_str()));
        let start_time = epoch_seconds(context.start_wall);
        let end_time = wall_at(context, end);
        CallRecord {
            id: id.map_or_else(|| call_id_text(meta.call_id), str::to_owned),
            trace_id: meta.trace_id.clone(),
            call_id: meta.call_id,
            call_type: context.call_type,
            stream: context.stream,
            status: CallStatus::Failure,
            custom_llm_provider: deployment
                .map(|d| d.params.model.provider().to_owned())
                .unwrap_or_default(),
            model: deployment
                .map(|d| d.params.model.name().to_owned())
                .unwrap_or_default(),
            model_id: deployment.map(|d| d.id.clone()).unwrap_or_default(),
            model_group: meta.model_group.clone(),
            api_base: deployment.map(|d| d.api_base.clone()).unwrap_or_default(),
            start_time,
            end_time,
            completion_start_time: None,
            response_time: (end_time - start_time).max(0.0),
            prompt_tokens: 0,
            completion_tokens: 0,
            total_tokens: 0,
            response_cost: 0.0,
            messages: (self.record_payloads && !request.messages.is_empty())
                .then_some(request.messages),
            response: None,
            error_str: None,
            error_information: None,
            metadata: RecordMetadata {
                is_silent_experiment: meta.is_silent_experiment,
                mirror_of: meta.mirror_of,
                spend: if meta.is_silent_experiment {
                    SpendKind::Shadow
                } else {
                    SpendKind::Caller
                },
                attempts: attempts.count,
                fallbacks_tried: attempts.fallbacks_tried.clone(),
                requester_metadata,
            },
            request_tags: meta.tags.clone(),
            end_user: request.user,
        }
    }
}

/// The call id as text, as `Display` writes it, without the formatting machinery.
fn call_id_text(id: CallId) -> String {
    let mut buffer = uuid::Uuid::encode_buffer();
    id.as_uuid()
        .hyphenated()
        .encode_lower(&mut buffer)
        .to_owned()
}

/// Whether a failed silent call says its group is unhealthy (what trips the silent breaker): the
/// same provider errors that count against a deployment, and finding no deployment to call.
fn counts_against_silent_group(error: &RouterError) -> bool {
    match error {
        RouterError::Provider { source, .. } => source.counts_against_deployment(),
        RouterError::NoHealthyDeployment { .. } => true,
        RouterError::UnknownModel { .. }
        | RouterError::BlockingInRuntime
        | RouterError::ShuttingDown
        | RouterError::Cancelled => false,
    }
}

fn wall_at(context: &CallContext<'_>, instant: Instant) -> f64 {
    epoch_seconds(context.start_wall + instant.saturating_duration_since(context.start))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

pub(crate) mod internals {
    //! What the stream wrapper needs from the router.
    pub(crate) use super::{Attempts, CallContext, Inner};
}
