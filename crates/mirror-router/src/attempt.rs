//! The attempt loop of the call pipeline: resolve the group, pick a deployment, retry with backoff,
//! cool failing deployments down, fall back to other groups, and fire the silent copies once.

use std::sync::Arc;
use std::time::Duration;

use mirror_providers::ProviderError;
use tokio::time::Instant;

use crate::call::{Call, CallKind, CallRequest, InFlight};
use crate::deployment::Deployment;
use crate::error::{nearest, RouterError};
use crate::router::Inner;
use crate::select::Group;

impl Inner {
    /// The group a model name asks for: a group or alias, else a deployment id (exactly that
    /// deployment), else the longest wildcard group that matches (LiteLLM's order). A wildcard
    /// deployment then sends the requested name upstream (`ModelRef::upstream_name`).
    pub(crate) fn resolve(&self, model: &str) -> Result<&Arc<Group>, RouterError> {
        // A wildcard group's own name (`*`, `openai/*`) names no model: sending it would put an
        // empty or starred model name upstream.
        if model.contains('*') && self.patterns.iter().any(|(pattern, _)| pattern == model) {
            return Err(RouterError::UnknownModel {
                model: model.to_owned(),
                suggestion: None,
            });
        }
        if let Some(&index) = self.names.get(model) {
            return Ok(&self.groups[index]);
        }
        if let Some(group) = self.by_id.get(model) {
            return Ok(group);
        }
        // As LiteLLM: every pattern against the name, then against `openai/<name>` (the provider a
        // bare name implies).
        let implied = format!("openai/{model}");
        for name in [model, implied.as_str()] {
            if let Some((_, index)) = self
                .patterns
                .iter()
                .find(|(pattern, _)| wildcard_matches(pattern, name))
            {
                return Ok(&self.groups[*index]);
            }
        }
        Err(RouterError::UnknownModel {
            model: model.to_owned(),
            suggestion: nearest(model, self.names.keys().map(String::as_str)),
        })
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

    /// Sends the call's request to deployments of its group with retries, then its fallbacks, and
    /// fires its silent copies with the first deployment picked.
    ///
    /// The call's scope follows along: attempts, fallbacks tried, the latest deployment, and that
    /// deployment's load, which stays held after a success (a stream holds it until it ends).
    pub(crate) async fn attempt<K: CallKind>(
        &self,
        call: &mut Call<K::Request>,
    ) -> Result<(K::Answer, Arc<Deployment>), RouterError> {
        let Call { scope, request } = call;
        let mut group = Arc::clone(self.resolve(request.model())?);
        let mut fallbacks: Option<std::vec::IntoIter<String>> = None;
        loop {
            scope.meta.model_group.clone_from(&group.name);
            let retries = group
                .deployments
                .iter()
                .find_map(|d| d.params.num_retries)
                .unwrap_or(self.settings.num_retries);
            let mut error: Option<RouterError> = None;
            let mut avoid: Option<Arc<Deployment>> = None;
            for attempt in 0..=retries {
                // A request about a stored response goes to the deployment that stored it.
                let pinned = request
                    .pinned()
                    .and_then(|id| group.deployments.iter().find(|d| d.id == id));
                let picked = match pinned {
                    Some(deployment) => Ok(Arc::clone(deployment)),
                    None => self.pick(&group, avoid.as_deref()).await,
                };
                let deployment = match picked {
                    Ok(deployment) => deployment,
                    Err(wait) => {
                        error = Some(RouterError::NoHealthyDeployment {
                            group: group.name.clone(),
                            retry_after: wait,
                        });
                        break;
                    }
                };
                if !scope.silent_fired {
                    request.fire_silent(self, &deployment, &scope.meta);
                    scope.silent_fired = true;
                }
                scope.attempts += 1;
                deployment.state.count_request(self.clock.minute());
                scope.load = Some(InFlight::new(&deployment));
                scope.deployment = Some(Arc::clone(&deployment));
                let started = Instant::now();
                match K::send(&deployment, request).await {
                    Ok(answer) => {
                        deployment.state.record_latency(started.elapsed());
                        return Ok((answer, deployment));
                    }
                    Err(err) => {
                        scope.load = None;
                        self.note_failure(&deployment, &err, scope.meta.is_silent_experiment);
                        let retry = err.is_retryable() && attempt < retries;
                        let wait = self.backoff(attempt, err.retry_after());
                        error = Some(RouterError::Provider {
                            group: group.name.clone(),
                            deployment: deployment.id.clone(),
                            attempts: scope.attempts,
                            source: err,
                        });
                        avoid = Some(deployment);
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
                        error = %mirror_core::error_chain(&error),
                        "Falling back to another model group."
                    );
                    scope.fallbacks_tried.push(next.name.clone());
                    group = next;
                }
                None => return Err(error),
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

    /// Counts a failed attempt against its deployment, and cools the deployment down when it has
    /// failed too often.
    pub(crate) fn note_failure(&self, deployment: &Deployment, err: &ProviderError, silent: bool) {
        let cool = deployment
            .state
            .record_failure(&self.clock, err, self.settings.allowed_fails);
        if cool && deployment.can_cool_down && !self.settings.disable_cooldowns {
            // `validate` bounds `cooldown_time`; a value it would refuse means no cooldown, not a panic.
            let cooldown = seconds(self.settings.cooldown_time);
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
            silent,
            error = %mirror_core::error_chain(err),
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
        let base = seconds(jittered.max(floor));
        // A provider's Retry-After wins, bounded so one retry never hangs a call for minutes.
        asked.map_or(base, |asked| {
            asked.min(Duration::from_secs(60)).max(seconds(floor))
        })
    }
}

/// A non-negative number of seconds as a duration; anything `Duration` cannot hold is zero.
fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(Duration::ZERO)
}

/// Whether `name` matches a LiteLLM wildcard `pattern`: each `*` is `(.*)`, anchored at the start but
/// not at the end, as Python's `re.match`.
fn wildcard_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return true;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    for part in parts {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}
