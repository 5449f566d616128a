//! Checks a parsed configuration once, before anything is wired (pingora's `ServerConf::validate`).
//!
//! [`validate`] is a pure function from `RouterConfig` + `MirrorSettings` to [`ValidConfig`]: no
//! runtime, no I/O. Every rule about what a configured value may be lives here, once; `build()` only
//! wires what this returns.
//!
//! Limits on numbers, and why:
//! - timeouts (`timeout`, `stream_timeout`, `request_timeout`): greater than 0 and at most one day.
//!   No LLM call worth waiting for takes a day; a larger value is a unit mistake (milliseconds
//!   written as seconds), and values near `f64::MAX` overflow `Duration` and `Instant`.
//! - waits (`cooldown_time`, `retry_after`): 0 (none) up to one hour; a retry floor or a cooldown of
//!   more than an hour takes a deployment out of service, which is a config change, not a wait.
//! - `shutdown_timeout` (the gateway's): greater than 0 and at most one hour; an orchestrator kills a
//!   process long before (Kubernetes gives 30 s by default).
//! - rates (`silent_sample_rate`, `default_sample_rate`, `mock_failure_rate`): 0 to 1.
//! - `silent_mirror_mcp_tools: true` only where `silent_model` is set.
//! - sizes (queue slots, bytes, calls in flight, `rpm`, `tpm`, per-minute caps, the response limits
//!   `max_response_bytes`, `max_stream_event_bytes` and `max_stream_bytes`, per deployment or in
//!   `router_settings`): greater than 0.
//! - Redis waits: `redis_timeout_ms` 1 ms to 1 minute (the request path waits that long at most),
//!   `redis_sync_interval_ms` 1 ms to 1 hour.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use mirror_core::DeploymentParams;

use crate::config::{GroupAlias, MirrorSettings, ModelDeployment, RouterConfig, RouterSettings};
use crate::deployment::SilentTarget;
use crate::error::{nearest, ConfigError};
use crate::litellm_keys::{classify, Classified, Section, UNSUPPORTED_PROVIDERS};

mod values;

use values::{silent_target_values, values};

/// The keys of `litellm_params` Mirror implements (fields of `DeploymentParams`); every other key is
/// judged by `litellm_keys::classify`.
pub const DEPLOYMENT_KEYS: &[&str] = &[
    "model",
    "api_key",
    "api_base",
    "api_version",
    "azure_ad_token",
    "organization",
    "timeout",
    "stream_timeout",
    "max_retries",
    "num_retries",
    "rpm",
    "tpm",
    "weight",
    "order",
    "tags",
    "mock_response",
    "mock_latency_ms",
    "mock_failure_rate",
    "http2",
    "silent_model",
    "silent_sample_rate",
    "silent_mirror_mcp_tools",
    "input_cost_per_token",
    "output_cost_per_token",
];

/// The values `model_info.supported_environments` and `LITELLM_ENVIRONMENT` may take.
const ENVIRONMENTS: [&str; 3] = ["development", "staging", "production"];

/// What a number of seconds in a configuration may be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SecondsRule {
    /// Whether 0 is allowed (it means "none", as for `retry_after`).
    pub allow_zero: bool,
    /// The largest value allowed.
    pub max_seconds: f64,
    /// The largest value in words, for messages.
    pub max_words: &'static str,
}

/// Timeouts: greater than 0, at most one day.
pub const TIMEOUT_SECONDS: SecondsRule = SecondsRule {
    allow_zero: false,
    max_seconds: 86_400.0,
    max_words: "1 day",
};

/// Waits that may be 0 (`cooldown_time`, `retry_after`): at most one hour.
pub const WAIT_SECONDS: SecondsRule = SecondsRule {
    allow_zero: true,
    max_seconds: 3_600.0,
    max_words: "1 hour",
};

/// Shutdown deadlines: greater than 0, at most one hour.
pub const SHUTDOWN_SECONDS: SecondsRule = SecondsRule {
    allow_zero: false,
    max_seconds: 3_600.0,
    max_words: "1 hour",
};

/// The longest the request path waits for Redis.
const MAX_REDIS_TIMEOUT_MS: u64 = 60_000;
/// The longest interval between two syncs with Redis.
const MAX_REDIS_SYNC_INTERVAL_MS: u64 = 3_600_000;

impl SecondsRule {
    /// The value as a `Duration`, or why it is not allowed. Never panics, NaN and infinities
    /// included.
    ///
    /// # Errors
    ///
    /// A message (without the field's path) when the value is not finite, below the minimum or above
    /// the maximum.
    pub fn check(self, seconds: f64) -> Result<Duration, String> {
        let low_ok = if self.allow_zero {
            seconds >= 0.0
        } else {
            seconds > 0.0
        };
        // NaN fails both comparisons.
        if low_ok && seconds <= self.max_seconds {
            if let Ok(duration) = Duration::try_from_secs_f64(seconds) {
                return Ok(duration);
            }
        }
        let low = if self.allow_zero {
            "0 or more"
        } else {
            "greater than 0"
        };
        Err(format!(
            "must be a number of seconds {low} and at most {} ({}), got {seconds:?}",
            self.max_seconds, self.max_words
        ))
    }
}

/// A rate (a fraction of requests): 0 to 1.
///
/// # Errors
///
/// A message when the rate is outside 0..=1 or NaN.
pub fn check_rate(rate: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(format!("must be between 0 and 1, got {rate:?}"))
    }
}

/// A size (slots, bytes, calls, a per-minute limit): greater than 0.
///
/// # Errors
///
/// A message when the size is 0.
pub fn check_size(size: u64, unit: &str) -> Result<(), String> {
    if size > 0 {
        Ok(())
    } else {
        Err(format!("must be greater than 0 ({unit})"))
    }
}

/// A configuration after [`validate`]: what `build()` wires, with every name resolved to an index.
#[derive(Debug)]
pub(crate) struct ValidConfig {
    /// Every model group name, sorted; a group's index is its position here.
    pub(crate) groups: Vec<String>,
    /// One per `model_list` entry, in order.
    pub(crate) deployments: Vec<ValidDeployment>,
    /// Every alias with the index of its group.
    pub(crate) aliases: Vec<(String, usize)>,
}

/// Classifies every key a section does not implement, for `keys`: Ok with the path of each key
/// accepted without effect, or the first refused key.
fn key_report(config: &RouterConfig) -> Result<Vec<String>, Problem> {
    let mut ignored = Vec::new();
    for (index, entry) in config.model_list.iter().enumerate() {
        for key in entry.litellm_params.extra.0.keys() {
            let path = entry_path(index, entry, &format!("litellm_params.{key}"));
            match classify(Section::LitellmParams, key, DEPLOYMENT_KEYS) {
                Classified::RequestDefault => {}
                Classified::Ignored => ignored.push(path),
                Classified::Refused(message) => return Err((path, message)),
            }
        }
    }
    for key in config.router_settings.other_keys() {
        let path = format!("router_settings.{key}");
        match classify(Section::RouterSettings, key, RouterSettings::KEYS) {
            Classified::Ignored => ignored.push(path),
            Classified::RequestDefault => {}
            Classified::Refused(message) => return Err((path, message)),
        }
    }
    Ok(ignored)
}

/// The first key of `config` that is refused, with its path.
pub(crate) fn check_keys(config: &RouterConfig) -> Result<(), Problem> {
    key_report(config).map(drop)
}

/// The LiteLLM keys set in `config` that Mirror accepts without acting on them, with their paths.
pub(crate) fn ignored_keys(config: &RouterConfig) -> Vec<String> {
    key_report(config).unwrap_or_default()
}

/// Applies `model_info.supported_environments` as LiteLLM does: an entry that lists environments
/// is kept only when `environment` (`LITELLM_ENVIRONMENT`) is one of them. Returns the paths of
/// the entries taken out, for a warning.
///
/// # Errors
///
/// [`ConfigError::Invalid`] when the field is not a list of `development`, `staging` and
/// `production`, or when it is set and `environment` is unset or not one of those.
pub fn apply_supported_environments(
    config: &mut RouterConfig,
    environment: Option<&str>,
    origin: &str,
) -> Result<Vec<String>, ConfigError> {
    let invalid = |location: String, message: String| ConfigError::Invalid {
        origin: origin.to_owned(),
        location,
        message,
        position: None,
    };
    let mut skipped = Vec::new();
    let mut keep = Vec::with_capacity(config.model_list.len());
    for (index, entry) in config.model_list.iter().enumerate() {
        let Some(value) = entry.model_info.extra.get("supported_environments") else {
            keep.push(true);
            continue;
        };
        let path = entry_path(index, entry, "model_info.supported_environments");
        let listed: Vec<&str> = value
            .as_array()
            .and_then(|items| items.iter().map(serde_json::Value::as_str).collect())
            .ok_or_else(|| {
                invalid(
                    path.clone(),
                    format!("must be a list drawn from {}", ENVIRONMENTS.join(", ")),
                )
            })?;
        if let Some(bad) = listed.iter().find(|name| !ENVIRONMENTS.contains(name)) {
            return Err(invalid(
                path,
                format!(
                    "`{bad}` is not an environment; expected {}",
                    ENVIRONMENTS.join(", ")
                ),
            ));
        }
        let Some(environment) = environment else {
            return Err(invalid(
                path,
                "is set, so LITELLM_ENVIRONMENT must name the environment this runs in".to_owned(),
            ));
        };
        if !ENVIRONMENTS.contains(&environment) {
            return Err(invalid(
                path,
                format!(
                    "LITELLM_ENVIRONMENT is `{environment}`; expected {}",
                    ENVIRONMENTS.join(", ")
                ),
            ));
        }
        let active = listed.contains(&environment);
        if !active {
            skipped.push(path);
        }
        keep.push(active);
    }
    let mut flags = keep.into_iter();
    config.model_list.retain(|_| flags.next().unwrap_or(true));
    Ok(skipped)
}

/// One `model_list` entry, checked and resolved.
#[derive(Debug)]
pub(crate) struct ValidDeployment {
    /// The configured `model_info.id`, or one generated from the parameters.
    pub(crate) id: String,
    /// Index of its own group in [`ValidConfig::groups`].
    pub(crate) group: usize,
    /// Index of the registered provider, in the `prefixes` given to [`validate`].
    pub(crate) provider: usize,
    /// The parameters, with `timeout` and `stream_timeout` defaulted from `router_settings`.
    pub(crate) params: DeploymentParams,
    /// Selection weight: `weight`, else `rpm`, else `tpm`, else 1.
    pub(crate) weight: f64,
    /// The silent groups, resolved to group indexes (aliases followed).
    pub(crate) silent: Vec<SilentTarget>,
    /// `silent_sample_rate`, else `mirror_settings.default_sample_rate`.
    pub(crate) sample_rate: f64,
    /// Whether the group has another deployment to fail over to.
    pub(crate) can_cool_down: bool,
}

/// A field path and what is wrong there; the caller adds the origin.
type Problem = (String, String);

/// Puts a message at `field`, for `map_err`.
fn at(field: &'static str) -> impl Fn(String) -> Problem {
    move |message| (field.to_owned(), message)
}

/// Checks every number and every name of a configuration and resolves what `build()` needs.
///
/// `prefixes` are the registered provider prefixes, sorted; `origin` names the source in errors.
///
/// # Errors
///
/// [`ConfigError::Invalid`] for the first problem found, with the field's path.
pub(crate) fn validate(
    config: &RouterConfig,
    mirror: &MirrorSettings,
    origin: &str,
    prefixes: &[&str],
) -> Result<ValidConfig, ConfigError> {
    resolve(config, mirror, prefixes).map_err(|(location, message)| ConfigError::Invalid {
        origin: origin.to_owned(),
        location,
        message,
        position: None,
    })
}

/// Checks the numbers of a configuration: what needs neither providers nor other entries. A loader
/// calls it right after parsing, where it can still point at the line; `build()` checks them again
/// as part of `validate`.
///
/// # Errors
///
/// [`ConfigError::Invalid`] for the first number out of range, with the field's path.
pub fn check_values(
    config: &RouterConfig,
    mirror: &MirrorSettings,
    origin: &str,
) -> Result<(), ConfigError> {
    values(config, mirror).map_err(|(location, message)| ConfigError::Invalid {
        origin: origin.to_owned(),
        location,
        message,
        position: None,
    })
}

/// The path of a field of `model_list[index]`.
fn entry_path(index: usize, entry: &ModelDeployment, field: &str) -> String {
    format!("model_list[{index}] (`{}`).{field}", entry.model_name)
}

fn resolve(
    config: &RouterConfig,
    mirror: &MirrorSettings,
    prefixes: &[&str],
) -> Result<ValidConfig, Problem> {
    values(config, mirror)?;
    let model_list = &config.model_list;
    let settings = &config.router_settings;

    let mut group_sizes: HashMap<&str, usize> = HashMap::new();
    for entry in model_list {
        *group_sizes.entry(entry.model_name.as_str()).or_default() += 1;
    }
    // Groups get indexes in name order; names are resolved to them once, here.
    let mut groups: Vec<&str> = group_sizes.keys().copied().collect();
    groups.sort_unstable();
    let unknown_group = |name: &str| {
        let mut message = format!("names no model group `{name}`");
        if let Some(best) = nearest(name, groups.iter().copied()) {
            message.push_str(&format!(" (did you mean `{best}`?)"));
        }
        message
    };

    let mut aliases = Vec::new();
    for (alias, target) in &settings.model_group_alias {
        let Ok(index) = groups.binary_search(&target.target()) else {
            return Err((
                format!("router_settings.model_group_alias.{alias}"),
                unknown_group(target.target()),
            ));
        };
        aliases.push((alias.clone(), index));
    }
    let index_of = |name: &str| {
        let name = settings
            .model_group_alias
            .get(name)
            .map_or(name, GroupAlias::target);
        groups.binary_search(&name).ok()
    };

    let mut deployments = Vec::with_capacity(model_list.len());
    let mut ids: HashMap<String, usize> = HashMap::new();
    for (index, entry) in model_list.iter().enumerate() {
        let at = |field: &str| entry_path(index, entry, field);
        let mut params = entry.litellm_params.clone();
        let prefix = params.model.provider();
        let Ok(provider) = prefixes.binary_search(&prefix) else {
            let message = if UNSUPPORTED_PROVIDERS.contains(&prefix) {
                format!(
                    "the LiteLLM provider `{prefix}` (in `{}`) is not supported; supported: {}",
                    params.model,
                    prefixes.join(", ")
                )
            } else {
                format!(
                    "unknown provider `{prefix}` in `{}`; supported: {}",
                    params.model,
                    prefixes.join(", ")
                )
            };
            return Err((at("litellm_params.model"), message));
        };
        // What is left in `extra` is sent with every request: LiteLLM keys accepted without
        // effect leave (`key_report` warned about them, and refused ones never got here).
        params.extra.0.retain(|key, _| {
            classify(Section::LitellmParams, key, DEPLOYMENT_KEYS) == Classified::RequestDefault
        });
        if params.rpm.is_none() {
            params.rpm = entry.rpm;
        }
        if params.tpm.is_none() {
            params.tpm = entry.tpm;
        }
        let id = entry
            .model_info
            .id
            .clone()
            .unwrap_or_else(|| generated_id(entry));
        if let Some(previous) = ids.insert(id.clone(), index) {
            return Err((
                at("model_info.id"),
                format!(
                    "deployment id `{id}` is also used by model_list[{previous}]; give each deployment a distinct `model_info.id`"
                ),
            ));
        }
        let mut silent = Vec::new();
        for name in params
            .silent_model
            .iter()
            .flat_map(|targets| targets.groups())
        {
            let Some(group) = index_of(name) else {
                return Err((at("litellm_params.silent_model"), unknown_group(name)));
            };
            silent.push(SilentTarget {
                name: name.clone(),
                group,
            });
        }
        if params.timeout.is_none() {
            params.timeout = settings.timeout;
        }
        if params.stream_timeout.is_none() {
            params.stream_timeout = settings.stream_timeout;
        }
        params.max_response_bytes = params.max_response_bytes.or(settings.max_response_bytes);
        params.max_stream_event_bytes = params
            .max_stream_event_bytes
            .or(settings.max_stream_event_bytes);
        params.max_stream_bytes = params.max_stream_bytes.or(settings.max_stream_bytes);
        params.http2 = params.http2.or(settings.http2);
        #[allow(clippy::cast_precision_loss)]
        let weight = params
            .weight
            .or(params.rpm.map(|rpm| rpm as f64))
            .or(params.tpm.map(|tpm| tpm as f64))
            .unwrap_or(1.0);
        // Every entry's own name is in `groups`; not finding it would be a bug here.
        let group = groups
            .binary_search(&entry.model_name.as_str())
            .unwrap_or_default();
        deployments.push(ValidDeployment {
            id,
            group,
            provider,
            weight,
            silent,
            sample_rate: params
                .silent_sample_rate
                .unwrap_or(mirror.default_sample_rate),
            can_cool_down: group_sizes
                .get(entry.model_name.as_str())
                .is_some_and(|size| *size > 1),
            params,
        });
    }

    let alias_names: HashSet<&str> = aliases.iter().map(|(alias, _)| alias.as_str()).collect();
    // A fallback may name a deployment id: LiteLLM sends a request whose model is an id to exactly
    // that deployment.
    let resolves = |name: &str| {
        groups.binary_search(&name).is_ok() || alias_names.contains(name) || ids.contains_key(name)
    };
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
                        return Err((
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
            return Err((
                "router_settings.default_fallbacks".to_owned(),
                unknown_group(name),
            ));
        }
    }

    for (name, target) in &mirror.silent_targets {
        let path = |field: &str| format!("mirror_settings.silent_targets.{name}{field}");
        let index = groups.binary_search(&name.as_str()).ok();
        let mirrored = index.is_some_and(|index| {
            deployments
                .iter()
                .any(|d| d.silent.iter().any(|t| t.group == index))
        });
        if !mirrored {
            let mut message = if index.is_some() {
                format!("`{name}` is a model group but no deployment names it in `silent_model`")
            } else {
                unknown_group(name)
            };
            message.push_str("; `silent_targets` sets limits for silent groups only");
            return Err((path(""), message));
        }
        silent_target_values(target).map_err(|(field, message)| (path(&field), message))?;
    }

    Ok(ValidConfig {
        groups: groups.into_iter().map(str::to_owned).collect(),
        deployments,
        aliases,
    })
}

/// A stable id from what identifies a deployment (FNV-1a), for entries without `model_info.id`.
///
/// The key is part of it, as in LiteLLM (whose id hashes every `litellm_params` value), so two
/// deployments that differ only by `api_key` (a common way to spread rate limits) are two
/// deployments. Only the hash of the key enters the id, never the key.
fn generated_id(entry: &ModelDeployment) -> String {
    let params = &entry.litellm_params;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let key = params
        .api_key
        .as_ref()
        .or(params.azure_ad_token.as_ref())
        .map(|key| key.expose())
        .unwrap_or("");
    let parts = [
        entry.model_name.as_str(),
        params.model.provider(),
        params.model.name(),
        params.api_base.as_deref().unwrap_or(""),
        params.api_version.as_deref().unwrap_or(""),
        key,
    ];
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests;
