//! Silent mirroring, the headline feature, in one place.
//!
//! Vocabulary: *mirror* is the feature; *silent* is a copy of a request, the call that runs it, and
//! the model group it goes to.
//!
//! - Firing (here): when the first deployment picked for a client request names `silent_model`s,
//!   each silent target goes through the eligibility chain (opted out, switched off, sampled out,
//!   unhealthy group, per-minute budget, room in the queue) and only then is a copy made
//!   (`ChatRequest::to_mirror`). A copy that would be dropped is never made.
//! - [`queue`]: the queue, the memory budget of queued and running copies, and the ticket that ends
//!   every copy in exactly one counter and gives its bytes back.
//! - [`dispatch`]: the task that runs queued copies through the router, at most `max_in_flight` at
//!   once (a backstop behind the budget).
//! - [`stats`]: the counters and drop reasons. [`breaker`]: stops copies to a failing silent group.
//!   [`budget`]: `max_mirrors_per_minute`. [`sampling`]: `silent_sample_rate` and its key.

pub(crate) mod breaker;
pub(crate) mod budget;
pub(crate) mod control;
pub(crate) mod dispatch;
mod messages;
pub(crate) mod queue;
mod responses;
pub(crate) mod sampling;
pub(crate) mod state;
pub(crate) mod stats;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::StreamExt;
use mirror_core::{CallMeta, ChatRequest, EmbeddingsRequest, MirrorCopy};

use crate::deployment::Deployment;
use crate::kinds::{Chat, ChatStreamed, Embeddings};
use crate::router::Inner;
use crate::select::Group;
use crate::RouterError;

pub(crate) use self::breaker::SilentBreaker;
pub(crate) use self::budget::MinuteBudget;
pub use self::queue::{silent_copies_stay_on_thread, SILENT_CALL_BYTES};
pub(crate) use self::queue::{SilentJob, SilentQueue};
pub use self::stats::{DropReason, MirrorSnapshot, MirrorStats};

impl Inner {
    /// Offers a copy of `request` to each silent group of `deployment`. Never waits: every copy is
    /// queued with `try_send`, or dropped and counted by reason.
    pub(crate) fn fire_silent_copies(
        &self,
        deployment: &Deployment,
        request: &ChatRequest,
        meta: &CallMeta,
    ) {
        if deployment.silent.is_empty() {
            return;
        }
        // A silent call never mirrors, whatever its deployment says: no shadow of a shadow.
        if meta.is_silent_experiment {
            return;
        }
        let silent = &self.silent;
        let stats = &silent.stats;
        let key = sampling::sample_key(request, self.mirror_settings.sample_key.as_deref());
        // Estimated once per request, and only when a copy gets that far.
        let mut bytes = None;
        for target in &deployment.silent {
            let group = &self.groups[target.group];
            if meta.mirror_opt_out {
                stats.mirrored_and_dropped(DropReason::OptedOut);
            } else if let Err(reason) = self.target_admits(deployment, group, key) {
                stats.mirrored_and_dropped(reason);
            } else if !self.is_silent_group_healthy(group) {
                stats.mirrored_and_dropped(DropReason::Unhealthy);
            } else if !self.silent_budget_admits(group) {
                stats.mirrored_and_dropped(DropReason::RateCapped);
            } else {
                let bytes = *bytes.get_or_insert_with(|| queue::approx_copy_bytes(request));
                // Room is reserved before the copy is made: a copy that would be dropped is not made.
                if let Some(ticket) = silent.reserve(bytes) {
                    let job = SilentJob {
                        copy: queue::SilentCopy::Chat(request.to_mirror(meta, &target.name)),
                        group: target.group,
                    };
                    silent.send(job, ticket);
                }
            }
        }
    }

    /// Offers a copy of an embeddings `request` to each silent group of `deployment`, with chat's
    /// eligibility chain (embeddings carry no state and run no tools). Never waits.
    pub(crate) fn fire_silent_embeddings(
        &self,
        deployment: &Deployment,
        request: &EmbeddingsRequest,
        meta: &CallMeta,
    ) {
        if deployment.silent.is_empty() || meta.is_silent_experiment {
            return;
        }
        let silent = &self.silent;
        let stats = &silent.stats;
        let key = request.user.as_deref().or_else(|| {
            let name = self.mirror_settings.sample_key.as_deref()?;
            request.metadata.as_ref()?.get(name)?.as_str()
        });
        let mut bytes = None;
        for target in &deployment.silent {
            let group = &self.groups[target.group];
            if meta.mirror_opt_out {
                stats.mirrored_and_dropped(DropReason::OptedOut);
            } else if let Err(reason) = self.target_admits(deployment, group, key) {
                stats.mirrored_and_dropped(reason);
            } else if !self.is_silent_group_healthy(group) {
                stats.mirrored_and_dropped(DropReason::Unhealthy);
            } else if !self.silent_budget_admits(group) {
                stats.mirrored_and_dropped(DropReason::RateCapped);
            } else {
                let bytes =
                    *bytes.get_or_insert_with(|| queue::approx_embeddings_copy_bytes(request));
                if let Some(ticket) = silent.reserve(bytes) {
                    let job = SilentJob {
                        copy: queue::SilentCopy::Embeddings(request.to_mirror(meta, &target.name)),
                        group: target.group,
                    };
                    silent.send(job, ticket);
                }
            }
        }
    }

    /// The steps of the eligibility chain every kind of call shares after the opt-out: the global
    /// switch, the target's own switch, its end and budget, then sampling at the target's rate
    /// override or the deployment's `silent_sample_rate`. Atomics only; the wall clock is read only
    /// for a target with a budget or an end.
    pub(crate) fn target_admits(
        &self,
        deployment: &Deployment,
        group: &Group,
        key: Option<&str>,
    ) -> Result<(), DropReason> {
        if !self.silent.enabled.load(Ordering::Acquire) {
            return Err(DropReason::SwitchedOff);
        }
        let runtime = &group.runtime;
        if !runtime.is_enabled() {
            return Err(DropReason::Disabled);
        }
        if group.limits.is_limited() {
            match group.limits.stop(runtime, control::wall_ms()) {
                Some(control::Stop::Ended) => return Err(DropReason::ExperimentEnded),
                Some(control::Stop::BudgetExhausted) => return Err(DropReason::BudgetExhausted),
                None => {}
            }
        }
        let rate = runtime.rate().unwrap_or(deployment.sample_rate);
        if !sampling::sampled_in(rate, key) {
            return Err(DropReason::SampledOut);
        }
        Ok(())
    }

    /// Whether copies to `group` are worth making: its silent breaker admits them (closed, or this
    /// copy is the half-open probe) and not every one of its deployments is cooling down.
    pub(crate) fn is_silent_group_healthy(&self, group: &Group) -> bool {
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
    pub(crate) fn silent_budget_admits(&self, group: &Group) -> bool {
        let Some(cap) = self.mirror_settings.max_mirrors_per_minute else {
            return true;
        };
        group.budget.try_take(self.clock.minute(), cap)
    }

    /// Runs one silent copy through the router; returns whether it succeeded. Never raises.
    ///
    /// Each kind's call is boxed: this future lives in the copy's task for as long as the call
    /// runs, and inline it would be as large as the largest kind's (10.7 kB, against 3.8 kB for a
    /// chat call), for every copy in flight. Boxed, each copy holds only its own kind's state
    /// (`docs/benchmarks.md`, "Bytes per silent call in flight").
    pub(crate) async fn run_silent(self: Arc<Self>, job: SilentJob) -> bool {
        let SilentJob { copy, group } = job;
        let result = match copy {
            queue::SilentCopy::Chat(copy) if copy.request.is_stream() => {
                Box::pin(self.run_silent_chat_stream(copy)).await
            }
            queue::SilentCopy::Chat(copy) => Box::pin(self.call::<Chat>(copy.request, copy.meta))
                .await
                .map(|_| ()),
            queue::SilentCopy::Responses(copy) => Box::pin(self.run_silent_responses(copy)).await,
            queue::SilentCopy::Messages(copy) => Box::pin(self.run_silent_messages(copy)).await,
            queue::SilentCopy::Embeddings(copy) => {
                Box::pin(self.call::<Embeddings>(copy.request, copy.meta))
                    .await
                    .map(|_| ())
            }
        };
        self.note_silent_result(&self.groups[group], &result);
        result.is_ok()
    }

    /// A streamed chat copy, read to its end: the answer the record accumulates is charged
    /// against the budget as it arrives.
    async fn run_silent_chat_stream(self: &Arc<Self>, copy: MirrorCopy) -> Result<(), RouterError> {
        let routed = self.call::<ChatStreamed>(copy.request, copy.meta).await?;
        let mut stream = routed.response;
        let mut charge = queue::StreamCharge::new(&self.silent.stats);
        while let Some(item) = stream.next().await {
            charge.add(&item?);
        }
        Ok(())
    }

    /// Feeds a finished silent call to its group's breaker, and logs a failure at most once per
    /// `SILENT_WARN_INTERVAL_MS` per group (with how many were not logged since); every failure is
    /// counted in `MirrorSnapshot::failed` and the metrics either way.
    fn note_silent_result(&self, group: &Group, result: &Result<(), RouterError>) {
        let breaker = &group.breaker;
        let err = match result {
            Ok(()) => {
                if breaker.record_success() {
                    self.silent.stats.breaker_moved(false);
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
                self.silent.stats.breaker_moved(true);
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
                error = %mirror_core::error_chain(err),
                failed_unlogged = unlogged,
                "Silent call failed."
            );
        }
    }
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
        | RouterError::Cancelled
        | RouterError::InvalidCacheControl { .. }
        | RouterError::Panicked => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mirror_core::{CallMeta, ChatMessage, ChatRequest};

    use super::queue::{SilentCopy, SilentJob};
    use crate::{ModelDeployment, Router};

    /// The future a copy's task holds for as long as its call runs stays small: every kind's call is
    /// boxed, so a copy in flight does not carry the largest kind's state inline (10.7 kB before).
    #[tokio::test]
    async fn a_running_copy_holds_a_small_future() {
        let deployment = ModelDeployment::new("shadow", "mock/echo").unwrap();
        let router = Router::builder()
            .provider(Arc::new(mirror_providers::Mock::new()))
            .deployment(deployment)
            .build()
            .unwrap();
        let request = ChatRequest::new("primary", vec![ChatMessage::user("hi")]);
        let primary = CallMeta::for_request("primary", None);
        let job = SilentJob {
            copy: SilentCopy::Chat(request.to_mirror(&primary, "shadow")),
            group: 0,
        };
        let run = Arc::clone(&router.inner).run_silent(job);
        let size = std::mem::size_of_val(&run);
        assert!(size <= 1_024, "run_silent's future is {size} bytes");
    }
}
