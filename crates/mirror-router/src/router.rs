//! The router and its builder: the shared state every call reads, and `build()`, which validates the
//! configuration and wires groups, deployments, shared state and the silent dispatcher.

use std::collections::HashMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use tokio::sync::watch;

use crate::api::SpendStats;
use crate::cache::{CacheConfig, ResponseCache};
use crate::config::{MirrorSettings, ModelDeployment, RouterConfig, RouterSettings};
use crate::deployment::{prices, Clock, Deployment, DeploymentState};
use crate::error::ConfigError;
use crate::records::RecordConsumer;
use crate::select::Group;
use crate::shared::{SharedState, SyncedControls};
use crate::silent::control::TargetLimits;
use crate::silent::dispatch::dispatch_loop;
use crate::silent::{MinuteBudget, SilentBreaker, SilentQueue};
use crate::validate::validate;
use mirror_providers::Provider;

pub use crate::api::{Routed, SpendSnapshot};

/// The LLM router. Cheap to clone: clones share one state.
///
/// Build it with [`Router::builder`] inside a Tokio runtime (or use `BlockingRouter` from plain
/// threads).
#[derive(Clone)]
pub struct Router {
    pub(crate) inner: Arc<Inner>,
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
    pub(crate) groups: Vec<Arc<Group>>,
    /// Group names and aliases, to indexes in `groups`.
    ///
    /// FxHash instead of SipHash: keys are fixed when the router is built, and a caller's model
    /// name is only ever looked up, never inserted, so crafted names cannot degrade the map.
    pub(crate) names: FxHashMap<String, usize>,
    /// Wildcard groups (`*`, `openai/*`), longest pattern first, as LiteLLM tries them; consulted
    /// only when a name is neither a group nor an alias.
    pub(crate) patterns: Vec<(String, usize)>,
    /// One single-deployment group per deployment id: a request or fallback that names an id goes
    /// to exactly that deployment (shared with its own group, so load and cooldowns are one).
    pub(crate) by_id: FxHashMap<String, Arc<Group>>,
    pub(crate) settings: RouterSettings,
    pub(crate) mirror_settings: MirrorSettings,
    pub(crate) clock: Clock,
    pub(crate) silent: SilentQueue,
    pub(crate) records: Option<Arc<dyn RecordConsumer>>,
    /// Whether records carry messages and responses (`RecordConsumer::wants_payloads`).
    pub(crate) record_payloads: bool,
    pub(crate) spend: Arc<SpendStats>,
    pub(crate) hard_stop: watch::Sender<bool>,
    /// State shared with other instances through Redis; None keeps everything in memory.
    pub(crate) shared: Option<Arc<SharedState>>,
    /// The response cache (`litellm_settings.cache`); None when off.
    pub(crate) cache: Option<ResponseCache>,
}

/// Builds a [`Router`] from configuration, providers and a record consumer.
#[must_use]
pub struct RouterBuilder {
    config: RouterConfig,
    origin: String,
    providers: HashMap<String, Arc<dyn Provider>>,
    records: Option<Arc<dyn RecordConsumer>>,
    mirror: MirrorSettings,
    cache: Option<CacheConfig>,
    previous: Option<Arc<Inner>>,
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
            cache: None,
            previous: None,
        }
    }
}

impl RouterBuilder {
    /// The response cache (`litellm_settings.cache_params`, when `litellm_settings.cache` is on);
    /// None (the default) turns it off. `build` checks it.
    pub fn cache(mut self, cache: Option<CacheConfig>) -> Self {
        self.cache = cache;
        self
    }

    /// Builds the router that replaces `previous` (a config reload): it takes over the silent
    /// counters and the spend (so they do not restart from zero), the run-time switches and rate
    /// overrides and each silent target's spend so far (by group name), and the Responses links
    /// when the model groups are the same. Cooldowns, breakers and per-minute counts start afresh.
    /// `previous` keeps serving the calls it has; shut it down once they end.
    pub fn carry_over(mut self, previous: &Router) -> Self {
        self.previous = Some(Arc::clone(&previous.inner));
        self
    }

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
        let previous = self.previous;
        // A silent target's run-time state, taken over from the router this one replaces.
        let runtime_of = |name: &str| {
            previous
                .as_ref()
                .and_then(|old| {
                    let index = old
                        .groups
                        .binary_search_by(|g| g.name.as_str().cmp(name))
                        .ok()?;
                    Some(Arc::clone(&old.groups[index].runtime))
                })
                .unwrap_or_default()
        };
        let limits_of = |name: &str| {
            mirror_settings
                .silent_targets
                .get(name)
                .map(TargetLimits::from_settings)
                .unwrap_or_default()
        };
        let cache = match &self.cache {
            Some(config) => {
                let cache = config
                    .check()
                    .and_then(|()| ResponseCache::new(config))
                    .map_err(|(location, message)| ConfigError::Invalid {
                        origin: self.origin.clone(),
                        location,
                        message,
                        position: None,
                    })?;
                Some(cache)
            }
            None => None,
        };

        let mut members: Vec<Vec<Arc<Deployment>>> = vec![Vec::new(); valid.groups.len()];
        let mut by_id: FxHashMap<String, Arc<Group>> = FxHashMap::default();
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
            let deployment = Arc::new(deployment);
            by_id.insert(
                deployment.id.clone(),
                Arc::new(Group {
                    name: deployment.group.clone(),
                    deployments: vec![Arc::clone(&deployment)],
                    budget: Arc::new(MinuteBudget::default()),
                    breaker: SilentBreaker::default(),
                    runtime: Arc::default(),
                    limits: TargetLimits::default(),
                }),
            );
            members[checked.group].push(deployment);
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
                    runtime: runtime_of(&name),
                    limits: limits_of(&name),
                    name,
                    deployments,
                    budget: Arc::new(MinuteBudget::default()),
                    breaker: SilentBreaker::default(),
                })
            })
            .collect();
        for (alias, index) in valid.aliases {
            names.insert(alias, index);
        }
        let mut patterns: Vec<(String, usize)> = groups
            .iter()
            .enumerate()
            .filter(|(_, group)| group.name.contains('*'))
            .map(|(index, group)| (group.name.clone(), index))
            .collect();
        patterns.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        let shared = SharedState::from_settings(&settings)
            .map_err(|(location, message)| ConfigError::Invalid {
                origin: self.origin.clone(),
                location,
                message,
                position: None,
            })?
            .map(|shared| {
                // A reload keeps the instance id: what it published stays its own.
                let old = previous.as_ref().and_then(|old| old.shared.as_ref());
                Arc::new(match old {
                    Some(old) => shared.with_instance(old.instance()),
                    None => shared,
                })
            });
        // Instances that share state must agree on minutes and cooldown ends: the wall clock.
        let clock = if shared.is_some() {
            Clock::wall()
        } else {
            Clock::new()
        };
        let (mut silent, receiver) = SilentQueue::new(
            mirror_settings.queue_size,
            mirror_settings.max_bytes,
            mirror_settings.enabled,
        );
        let mut spend = Arc::default();
        if let Some(old) = &previous {
            silent.take_over(&old.silent);
            let same_groups = old.groups.len() == groups.len()
                && old
                    .groups
                    .iter()
                    .zip(&groups)
                    .all(|(a, b)| a.name == b.name);
            if same_groups {
                silent.links = Arc::clone(&old.silent.links);
            }
            spend = Arc::clone(&old.spend);
        }
        drop(previous);
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
            let mut silent_groups: Vec<usize> = groups
                .iter()
                .flat_map(|group| group.deployments.iter())
                .flat_map(|d| d.silent.iter().map(|target| target.group))
                .collect();
            silent_groups.sort_unstable();
            silent_groups.dedup();
            let controls = SyncedControls {
                enabled: Arc::clone(&silent.enabled),
                enabled_dirty: Arc::clone(&silent.enabled_dirty),
                targets: silent_groups
                    .into_iter()
                    .map(|index| {
                        let group = &groups[index];
                        (group.name.clone(), Arc::clone(&group.runtime), group.limits)
                    })
                    .collect(),
            };
            shared.spawn_sync(&handle, deployments, budgets, controls, clock);
        }
        let record_payloads = self
            .records
            .as_ref()
            .is_some_and(|records| records.wants_payloads());
        let (hard_stop, _) = watch::channel(false);
        let max_in_flight = mirror_settings.max_in_flight.max(1);
        let inner = Arc::new(Inner {
            groups,
            names,
            patterns,
            by_id,
            settings,
            mirror_settings,
            clock,
            silent,
            records: self.records,
            record_payloads,
            spend,
            hard_stop,
            shared,
            cache,
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
