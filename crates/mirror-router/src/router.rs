//! The router and its builder: the shared state every call reads, and `build()`, which validates the
//! configuration and wires groups, deployments, shared state and the silent dispatcher.

use std::collections::HashMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use tokio::sync::watch;

use crate::api::SpendStats;
use crate::config::{GroupAlias, MirrorSettings, ModelDeployment, RouterConfig, RouterSettings};
use crate::deployment::{prices, Clock, Deployment, DeploymentState, SilentTarget};
use crate::error::{nearest, ConfigError};
use crate::records::RecordConsumer;
use crate::select::Group;
use crate::shared::SharedState;
use crate::silent::dispatch::dispatch_loop;
use crate::silent::{MinuteBudget, SilentBreaker, SilentQueue};
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
    pub(crate) settings: RouterSettings,
    pub(crate) mirror_settings: MirrorSettings,
    pub(crate) clock: Clock,
    pub(crate) silent: SilentQueue,
    pub(crate) records: Option<Arc<dyn RecordConsumer>>,
    /// Whether records carry messages and responses (`RecordConsumer::wants_payloads`).
    pub(crate) record_payloads: bool,
    pub(crate) spend: SpendStats,
    pub(crate) hard_stop: watch::Sender<bool>,
    /// State shared with other instances through Redis; None keeps everything in memory.
    pub(crate) shared: Option<Arc<SharedState>>,
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

    /// Validates the configuration and starts the silent dispatcher.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the field and deployment: an unknown provider prefix, a
    /// `silent_model` or fallback that names no group, a duplicate deployment id, a zero or negative
    /// weight, a rate outside 0..=1; [`ConfigError::NoRuntime`] outside a Tokio runtime.
    pub fn build(self) -> Result<Router, ConfigError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let origin = self.origin.clone();
        let invalid = |location: String, message: String| ConfigError::Invalid {
            origin: origin.clone(),
            location,
            message,
        };
        let RouterConfig {
            model_list,
            router_settings: settings,
        } = self.config;
        let mirror_settings = self.mirror;
        check_rate(mirror_settings.default_sample_rate)
            .map_err(|m| invalid("mirror_settings.default_sample_rate".to_owned(), m))?;
        if mirror_settings.queue_max_bytes == 0 {
            return Err(invalid(
                "mirror_settings.queue_max_bytes".to_owned(),
                "must be greater than 0 (it bounds the bytes of queued silent copies)".to_owned(),
            ));
        }

        let mut group_sizes: HashMap<&str, usize> = HashMap::new();
        for entry in &model_list {
            *group_sizes.entry(entry.model_name.as_str()).or_default() += 1;
        }
        // Groups get indexes in name order; silent targets are resolved to them once, here.
        let mut sorted_names: Vec<&str> = group_sizes.keys().copied().collect();
        sorted_names.sort_unstable();
        let index_of = |name: &str| {
            let name = settings
                .model_group_alias
                .get(name)
                .map_or(name, GroupAlias::target);
            sorted_names.binary_search(&name).ok()
        };
        let mut groups: HashMap<String, Vec<Arc<Deployment>>> = HashMap::new();
        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut prefixes: Vec<&str> = self.providers.keys().map(String::as_str).collect();
        prefixes.sort_unstable();
        for (index, entry) in model_list.iter().enumerate() {
            let at = |field: &str| format!("model_list[{index}] (`{}`).{field}", entry.model_name);
            let mut params = entry.litellm_params.clone();
            let prefix = params.model.provider();
            let provider = self.providers.get(prefix).ok_or_else(|| {
                invalid(
                    at("litellm_params.model"),
                    format!(
                        "unknown provider `{prefix}` in `{}`; supported: {}",
                        params.model,
                        prefixes.join(", ")
                    ),
                )
            })?;
            if let Some(weight) = params.weight {
                if !(weight > 0.0 && weight.is_finite()) {
                    return Err(invalid(
                        at("litellm_params.weight"),
                        format!("weight must be greater than 0, got {weight}"),
                    ));
                }
            }
            if let Some(rate) = params.silent_sample_rate {
                check_rate(rate)
                    .map_err(|m| invalid(at("litellm_params.silent_sample_rate"), m))?;
            }
            if let Some(rate) = params.mock_failure_rate {
                check_rate(rate).map_err(|m| invalid(at("litellm_params.mock_failure_rate"), m))?;
            }
            for (field, value) in [
                ("timeout", params.timeout),
                ("stream_timeout", params.stream_timeout),
            ] {
                if value.is_some_and(|secs| !(secs > 0.0 && secs.is_finite())) {
                    return Err(invalid(
                        at(&format!("litellm_params.{field}")),
                        "must be a positive number of seconds".to_owned(),
                    ));
                }
            }
            if params.timeout.is_none() {
                params.timeout = settings.timeout;
            }
            if params.stream_timeout.is_none() {
                params.stream_timeout = settings.stream_timeout;
            }
            let id = entry
                .model_info
                .id
                .clone()
                .unwrap_or_else(|| generated_id(entry));
            if let Some(previous) = ids.insert(id.clone(), index) {
                return Err(invalid(
                    at("model_info.id"),
                    format!(
                        "deployment id `{id}` is also used by model_list[{previous}]; give each deployment a distinct `model_info.id`"
                    ),
                ));
            }
            let weight = params
                .weight
                .or(params.rpm.map(|rpm| rpm as f64))
                .or(params.tpm.map(|tpm| tpm as f64))
                .unwrap_or(1.0);
            let deployment = Deployment {
                id,
                group: entry.model_name.clone(),
                api_base: provider.api_base(&params),
                provider: Arc::clone(provider),
                // A name that resolves to no group is left out here and refused below.
                silent: params
                    .silent_model
                    .iter()
                    .flat_map(|targets| targets.groups())
                    .filter_map(|name| {
                        index_of(name).map(|group| SilentTarget {
                            name: name.clone(),
                            group,
                        })
                    })
                    .collect(),
                sample_rate: params
                    .silent_sample_rate
                    .unwrap_or(mirror_settings.default_sample_rate),
                weight,
                order: params.order.unwrap_or(0),
                prices: prices(&params, &entry.model_info),
                can_cool_down: group_sizes
                    .get(entry.model_name.as_str())
                    .is_some_and(|size| *size > 1),
                state: DeploymentState::default(),
                params,
            };
            groups
                .entry(entry.model_name.clone())
                .or_default()
                .push(Arc::new(deployment));
        }

        let group_names: Vec<&str> = groups.keys().map(String::as_str).collect();
        let unknown_group = |name: &str| {
            let mut message = format!("names no model group `{name}`");
            if let Some(best) = nearest(name, group_names.iter().copied()) {
                message.push_str(&format!(" (did you mean `{best}`?)"));
            }
            message
        };
        let mut aliases = HashMap::new();
        for (alias, target) in &settings.model_group_alias {
            if !groups.contains_key(target.target()) {
                return Err(invalid(
                    format!("router_settings.model_group_alias.{alias}"),
                    unknown_group(target.target()),
                ));
            }
            aliases.insert(alias.clone(), target.target().to_owned());
        }
        let resolves = |name: &str| groups.contains_key(name) || aliases.contains_key(name);
        for (index, entry) in model_list.iter().enumerate() {
            for target in entry
                .litellm_params
                .silent_model
                .iter()
                .flat_map(|targets| targets.groups())
            {
                if !resolves(target) {
                    return Err(invalid(
                        format!(
                            "model_list[{index}] (`{}`).litellm_params.silent_model",
                            entry.model_name
                        ),
                        unknown_group(target),
                    ));
                }
            }
        }
        for (field, lists) in [
            ("fallbacks", &settings.fallbacks),
            (
                "context_window_fallbacks",
                &settings.context_window_fallbacks,
            ),
            (
                "content_policy_fallbacks",
                &settings.content_policy_fallbacks,
            ),
        ] {
            for map in lists {
                for (from, to) in map {
                    for name in std::iter::once(from).chain(to) {
                        if name != "*" && !resolves(name) {
                            return Err(invalid(
                                format!("router_settings.{field}.{from}"),
                                unknown_group(name),
                            ));
                        }
                    }
                }
            }
        }
        for name in &settings.default_fallbacks {
            if !resolves(name) {
                return Err(invalid(
                    "router_settings.default_fallbacks".to_owned(),
                    unknown_group(name),
                ));
            }
        }

        let mut names: FxHashMap<String, usize> = FxHashMap::default();
        let groups: Vec<Arc<Group>> = sorted_names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                names.insert((*name).to_owned(), index);
                Arc::new(Group {
                    name: (*name).to_owned(),
                    deployments: groups.remove(*name).unwrap_or_default(),
                    budget: Arc::new(MinuteBudget::default()),
                    breaker: SilentBreaker::default(),
                })
            })
            .collect();
        for (alias, target) in &aliases {
            if let Some(&index) = names.get(target) {
                names.insert(alias.clone(), index);
            }
        }
        let shared = SharedState::from_settings(&settings)
            .map_err(|(location, message)| invalid(location, message))?
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
        let (silent, receiver) = SilentQueue::new(
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
            silent,
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

fn check_rate(rate: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(format!("must be between 0 and 1, got {rate}"))
    }
}

/// A stable id from what identifies a deployment (FNV-1a), for entries without `model_info.id`.
fn generated_id(entry: &ModelDeployment) -> String {
    let params = &entry.litellm_params;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let parts = [
        entry.model_name.as_str(),
        params.model.provider(),
        params.model.name(),
        params.api_base.as_deref().unwrap_or(""),
        params.api_version.as_deref().unwrap_or(""),
    ];
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}
