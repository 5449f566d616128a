//! The gateway's configuration file: a LiteLLM proxy `config.yaml`, plus our `mirror_settings`.
//!
//! LiteLLM keys we know but do not act on are accepted and listed once in a warning; keys nobody
//! knows are errors with the file, line, column and the nearest valid name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mirror_core::{deserialize_env_string, SecretString};
use mirror_logging::S3Config;
use mirror_router::{
    check_size, check_values, parse_yaml, ConfigError, MirrorSettings, ModelDeployment,
    RouterConfig, RouterSettings, SHUTDOWN_SECONDS, TIMEOUT_SECONDS,
};
use serde::de::IgnoredAny;
use serde::Deserialize;

/// A whole gateway configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The deployments.
    #[serde(default)]
    pub model_list: Vec<ModelDeployment>,
    /// Router settings.
    #[serde(default)]
    pub router_settings: RouterSettings,
    /// LiteLLM module settings: callbacks, S3 parameters, retries, timeouts, fallbacks.
    #[serde(default)]
    pub litellm_settings: LiteLlmSettings,
    /// Proxy settings: the master key.
    #[serde(default)]
    pub general_settings: GeneralSettings,
    /// Variables set in the process environment before anything else is read. They often hold
    /// keys, so their values are secrets.
    #[serde(default)]
    pub environment_variables: BTreeMap<String, SecretString>,
    /// Mirror's own settings.
    #[serde(default)]
    pub mirror_settings: MirrorSection,
    /// Where the configuration came from (the file name), for errors found when it is used.
    #[serde(skip)]
    origin: String,
    /// The text it was parsed from, to point errors at a line.
    #[serde(skip)]
    source: Source,
}

/// The configuration text. It may hold keys, so `Debug` prints only its size.
#[derive(Clone, Default)]
struct Source(Option<Arc<str>>);

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(text) => write!(f, "<{} bytes>", text.len()),
            None => f.write_str("None"),
        }
    }
}

/// `litellm_settings`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiteLlmSettings {
    /// Callbacks run on success: `langfuse`, `langfuse_otel`, `s3`.
    #[serde(default)]
    pub success_callback: Vec<String>,
    /// Callbacks run on failure.
    #[serde(default)]
    pub failure_callback: Vec<String>,
    /// Callbacks run on both (`s3_v2`, `langfuse_otel`, ...).
    #[serde(default)]
    pub callbacks: Vec<String>,
    /// Parameters of the S3 logger.
    #[serde(default)]
    pub s3_callback_params: Option<S3Config>,
    /// Router retries, when `router_settings.num_retries` is not set.
    #[serde(default)]
    pub num_retries: Option<u32>,
    /// Request timeout in seconds, when `router_settings.timeout` is not set.
    #[serde(default)]
    pub request_timeout: Option<f64>,
    /// Fallbacks, when `router_settings.fallbacks` is not set.
    #[serde(default)]
    pub fallbacks: Option<Vec<BTreeMap<String, Vec<String>>>>,
    /// Context-window fallbacks, when the router settings have none.
    #[serde(default)]
    pub context_window_fallbacks: Option<Vec<BTreeMap<String, Vec<String>>>>,
    /// Content-policy fallbacks, when the router settings have none.
    #[serde(default)]
    pub content_policy_fallbacks: Option<Vec<BTreeMap<String, Vec<String>>>>,

    // LiteLLM keys accepted without effect; see `GatewayConfig::ignored_keys`.
    #[serde(default)]
    drop_params: Option<IgnoredAny>,
    #[serde(default)]
    set_verbose: Option<IgnoredAny>,
    #[serde(default)]
    json_logs: Option<IgnoredAny>,
    #[serde(default)]
    cache: Option<IgnoredAny>,
    #[serde(default)]
    cache_params: Option<IgnoredAny>,
    #[serde(default)]
    turn_off_message_logging: Option<IgnoredAny>,
    #[serde(default)]
    redact_user_api_key_info: Option<IgnoredAny>,
    #[serde(default)]
    max_budget: Option<IgnoredAny>,
    #[serde(default)]
    budget_duration: Option<IgnoredAny>,
    #[serde(default)]
    default_fallbacks: Option<IgnoredAny>,
    #[serde(default)]
    telemetry: Option<IgnoredAny>,
    #[serde(default)]
    service_callback: Option<IgnoredAny>,
    #[serde(default)]
    modify_params: Option<IgnoredAny>,
    #[serde(default)]
    enable_preview_features: Option<IgnoredAny>,
}

/// `general_settings`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneralSettings {
    /// With a master key, every request but health checks needs `Authorization: Bearer <key>`.
    #[serde(default)]
    pub master_key: Option<SecretString>,

    // LiteLLM keys accepted without effect; see `GatewayConfig::ignored_keys`.
    #[serde(default)]
    database_url: Option<IgnoredAny>,
    #[serde(default)]
    alerting: Option<IgnoredAny>,
    #[serde(default)]
    alerting_threshold: Option<IgnoredAny>,
    #[serde(default)]
    store_model_in_db: Option<IgnoredAny>,
    #[serde(default)]
    disable_spend_logs: Option<IgnoredAny>,
    #[serde(default)]
    proxy_batch_write_at: Option<IgnoredAny>,
    #[serde(default)]
    database_connection_pool_limit: Option<IgnoredAny>,
    #[serde(default)]
    background_health_checks: Option<IgnoredAny>,
    #[serde(default)]
    health_check_interval: Option<IgnoredAny>,
    #[serde(default)]
    ui_access_mode: Option<IgnoredAny>,
    #[serde(default)]
    allowed_routes: Option<IgnoredAny>,
    #[serde(default)]
    custom_auth: Option<IgnoredAny>,
}

/// `mirror_settings`: ours. The silent-mirroring keys are the router's [`MirrorSettings`], flattened
/// (its serde names are these keys, and its defaults are the only ones); the rest are the gateway's.
///
/// `deny_unknown_fields` does not work with `flatten`, so unknown keys land in `unknown`, whose
/// deserializer refuses the first one with serde's own message (and so the "did you mean" and the
/// location of a parse error).
#[derive(Debug, Clone, Deserialize)]
pub struct MirrorSection {
    /// The JSONL call log (the offline default sink); `null` turns it off.
    #[serde(
        default = "default_log_file",
        deserialize_with = "deserialize_env_path"
    )]
    pub log_file: Option<PathBuf>,
    /// Rotate the JSONL log when it reaches this many bytes (greater than 0).
    #[serde(default)]
    pub log_max_bytes: Option<u64>,
    /// Rotate the JSONL log every day.
    #[serde(default)]
    pub log_daily_rotation: bool,
    /// Largest request body, in bytes (greater than 0).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How long shutdown waits for in-flight requests, silent calls and sinks, in seconds (greater
    /// than 0, at most 1 hour).
    #[serde(default = "default_shutdown_seconds")]
    pub shutdown_timeout: f64,
    /// The router's silent-mirroring settings: `silent_queue_size`, `silent_max_bytes`,
    /// `silent_max_in_flight`, `default_sample_rate`, `sample_key`, `mirroring_enabled`,
    /// `silent_max_per_minute`.
    #[serde(flatten)]
    pub mirror: MirrorSettings,
    /// Must come after every other flattened field: it sees only the keys they did not take.
    #[serde(flatten)]
    #[allow(dead_code)] // Only its deserializer matters.
    unknown: UnknownKeys,
}

/// The keys of `mirror_settings` that are the gateway's own.
const GATEWAY_KEYS: [&str; 5] = [
    "log_file",
    "log_max_bytes",
    "log_daily_rotation",
    "max_body_bytes",
    "shutdown_timeout",
];

/// Refuses any key left over in a section (see [`MirrorSection`]).
#[derive(Debug, Clone, Default)]
struct UnknownKeys;

impl<'de> Deserialize<'de> for UnknownKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Refuse;
        impl<'de> serde::de::Visitor<'de> for Refuse {
            type Value = UnknownKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("no further keys")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UnknownKeys, A::Error> {
                match map.next_key::<String>()? {
                    None => Ok(UnknownKeys),
                    Some(key) => {
                        // serde's wording, so `with_suggestion` adds the nearest valid name.
                        let expected: Vec<String> = GATEWAY_KEYS
                            .iter()
                            .chain(MirrorSettings::keys())
                            .map(|name| format!("`{name}`"))
                            .collect();
                        Err(serde::de::Error::custom(format!(
                            "unknown field `{key}`, expected one of {}",
                            expected.join(", ")
                        )))
                    }
                }
            }
        }
        deserializer.deserialize_map(Refuse)
    }
}

fn default_log_file() -> Option<PathBuf> {
    Some(PathBuf::from("mirror-calls.jsonl"))
}
fn default_max_body_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_shutdown_seconds() -> f64 {
    30.0
}

fn deserialize_env_path<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<PathBuf>, D::Error> {
    Ok(deserialize_env_string(deserializer)?.map(PathBuf::from))
}

impl Default for MirrorSection {
    fn default() -> Self {
        MirrorSection {
            log_file: default_log_file(),
            log_max_bytes: None,
            log_daily_rotation: false,
            max_body_bytes: default_max_body_bytes(),
            shutdown_timeout: default_shutdown_seconds(),
            mirror: MirrorSettings::default(),
            unknown: UnknownKeys,
        }
    }
}

impl MirrorSection {
    /// The router's silent-mirroring settings.
    pub fn mirror_settings(&self) -> MirrorSettings {
        self.mirror.clone()
    }

    /// `shutdown_timeout` as a `Duration`.
    ///
    /// # Errors
    ///
    /// A message when it is not a number of seconds greater than 0 and at most 1 hour.
    pub fn shutdown_duration(&self) -> Result<Duration, String> {
        SHUTDOWN_SECONDS.check(self.shutdown_timeout)
    }

    /// Checks the gateway's own numbers; the router checks the rest.
    fn check(&self) -> Result<(), (&'static str, String)> {
        self.shutdown_duration()
            .map_err(|message| ("mirror_settings.shutdown_timeout", message))?;
        check_size(self.max_body_bytes as u64, "a number of bytes")
            .map_err(|message| ("mirror_settings.max_body_bytes", message))?;
        if let Some(bytes) = self.log_max_bytes {
            check_size(bytes, "a number of bytes")
                .map_err(|message| ("mirror_settings.log_max_bytes", message))?;
        }
        Ok(())
    }
}

/// Which keys of `router_settings` the file actually set (LiteLLM settings fill the others).
#[derive(Deserialize)]
struct Presence {
    #[serde(default)]
    router_settings: Option<BTreeMap<String, IgnoredAny>>,
    #[serde(default)]
    environment_variables: BTreeMap<String, String>,
}

/// The sinks a configuration asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkChoice {
    /// `langfuse` or `langfuse_otel` in a callback list.
    pub langfuse: bool,
    /// `s3` or `s3_v2` in a callback list.
    pub s3: bool,
    /// `otel` in a callback list (LiteLLM's OpenTelemetry callback): spans over OTLP/HTTP.
    pub otel: bool,
    /// Callback names we do not know (warned about, not errors: LiteLLM has dozens).
    pub unknown: Vec<String>,
}

impl GatewayConfig {
    /// Reads and parses a configuration file.
    ///
    /// `environment_variables` are set in the process environment first, so `os.environ/NAME`
    /// references may use them (as in LiteLLM).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] naming the file, line and column; [`ConfigError::Invalid`] for an
    /// unreadable file or a number out of range (a duration that is not finite, not positive or too
    /// long, a zero size, a rate outside 0..=1), with the field's path, line and column.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Invalid {
            origin: origin.clone(),
            location: "file".to_owned(),
            message: format!("cannot read it: {err}"),
            position: None,
        })?;
        Self::from_yaml_str(&text, &origin)
    }

    /// Parses a configuration from YAML text; `origin` names it in errors.
    ///
    /// # Errors
    ///
    /// As [`GatewayConfig::from_file`].
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let presence: Presence = parse_yaml(text, origin)?;
        for (name, value) in &presence.environment_variables {
            // Set before the full parse so `os.environ/NAME` sees them. This runs at start-up,
            // before the runtime's worker threads exist.
            std::env::set_var(name, value);
        }
        let mut config: GatewayConfig = parse_yaml(text, origin)?;
        config.origin = origin.to_owned();
        config.source = Source(Some(Arc::from(text)));
        let set: BTreeSet<String> = presence
            .router_settings
            .map(|keys| keys.into_keys().collect())
            .unwrap_or_default();
        config.check_own_values().map_err(|(location, message)| {
            config.locate(ConfigError::Invalid {
                origin: origin.to_owned(),
                location: location.to_owned(),
                message,
                position: None,
            })
        })?;
        config.merge_litellm_settings(&set);
        check_values(
            &config.router_config(),
            &config.mirror_settings.mirror,
            origin,
        )
        .map_err(|err| config.locate(err))?;
        Ok(config)
    }

    /// The numbers only the gateway reads; `check_values` and the router check the rest.
    fn check_own_values(&self) -> Result<(), (&'static str, String)> {
        if let Some(seconds) = self.litellm_settings.request_timeout {
            TIMEOUT_SECONDS
                .check(seconds)
                .map_err(|message| ("litellm_settings.request_timeout", message))?;
        }
        self.mirror_settings.check()
    }

    /// Where the configuration came from: the file name, `<built-in default>`, or what
    /// [`GatewayConfig::from_yaml_str`] was given.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Adds the line and column of the field an error names, when the text is known.
    pub fn locate(&self, err: ConfigError) -> ConfigError {
        match &self.source.0 {
            Some(text) => err.with_position_in(text),
            None => err,
        }
    }

    /// LiteLLM reads `num_retries`, `request_timeout` and fallbacks from `litellm_settings` too; the
    /// router's own keys win when both are set.
    fn merge_litellm_settings(&mut self, router_keys_set: &BTreeSet<String>) {
        let litellm = &self.litellm_settings;
        let router = &mut self.router_settings;
        let unset = |key: &str| !router_keys_set.contains(key);
        if let (Some(retries), true) = (litellm.num_retries, unset("num_retries")) {
            router.num_retries = retries;
        }
        if let (Some(timeout), true) = (litellm.request_timeout, unset("timeout")) {
            router.timeout = Some(timeout);
        }
        if let (Some(fallbacks), true) = (&litellm.fallbacks, unset("fallbacks")) {
            router.fallbacks.clone_from(fallbacks);
        }
        if let (Some(fallbacks), true) = (
            &litellm.context_window_fallbacks,
            unset("context_window_fallbacks"),
        ) {
            router.context_window_fallbacks.clone_from(fallbacks);
        }
        if let (Some(fallbacks), true) = (
            &litellm.content_policy_fallbacks,
            unset("content_policy_fallbacks"),
        ) {
            router.content_policy_fallbacks.clone_from(fallbacks);
        }
    }

    /// The router part of the configuration.
    pub fn router_config(&self) -> RouterConfig {
        RouterConfig {
            model_list: self.model_list.clone(),
            router_settings: self.router_settings.clone(),
        }
    }

    /// The sinks the callback lists name.
    pub fn sinks(&self) -> SinkChoice {
        let mut choice = SinkChoice::default();
        let settings = &self.litellm_settings;
        let names: BTreeSet<&str> = settings
            .success_callback
            .iter()
            .chain(&settings.failure_callback)
            .chain(&settings.callbacks)
            .map(String::as_str)
            .collect();
        for name in names {
            match name {
                "langfuse" | "langfuse_otel" => choice.langfuse = true,
                "s3" | "s3_v2" => choice.s3 = true,
                "otel" => choice.otel = true,
                other => choice.unknown.push(other.to_owned()),
            }
        }
        choice
    }

    /// Every key that was set but that Mirror does not act on, with where it was set.
    pub fn ignored_keys(&self) -> Vec<String> {
        let mut keys = self.router_config().ignored_keys();
        let litellm = &self.litellm_settings;
        let general = &self.general_settings;
        macro_rules! collect {
            ($section:literal, $source:expr, [$($field:ident),*]) => {$(
                if $source.$field.is_some() {
                    keys.push(concat!($section, ".", stringify!($field)).to_owned());
                }
            )*};
        }
        collect!(
            "litellm_settings",
            litellm,
            [
                drop_params,
                set_verbose,
                json_logs,
                cache,
                cache_params,
                turn_off_message_logging,
                redact_user_api_key_info,
                max_budget,
                budget_duration,
                default_fallbacks,
                telemetry,
                service_callback,
                modify_params,
                enable_preview_features
            ]
        );
        collect!(
            "general_settings",
            general,
            [
                database_url,
                alerting,
                alerting_threshold,
                store_model_in_db,
                disable_spend_logs,
                proxy_batch_write_at,
                database_connection_pool_limit,
                background_health_checks,
                health_check_interval,
                ui_access_mode,
                allowed_routes,
                custom_auth
            ]
        );
        if let Some(s3) = &self.litellm_settings.s3_callback_params {
            for key in s3.ignored_keys() {
                keys.push(format!("litellm_settings.s3_callback_params.{key}"));
            }
        }
        keys
    }
}

/// Loads `path`, or the built-in offline default when there is none, and warns once about LiteLLM
/// keys that are accepted without effect.
///
/// # Errors
///
/// As [`GatewayConfig::from_file`].
pub fn load(path: Option<&Path>) -> Result<GatewayConfig, ConfigError> {
    let config = match path {
        Some(path) => GatewayConfig::from_file(path)?,
        None => GatewayConfig::from_yaml_str(crate::DEFAULT_CONFIG_YAML, "<built-in default>")?,
    };
    let ignored = config.ignored_keys();
    if !ignored.is_empty() {
        tracing::warn!(
            keys = %ignored.join(", "),
            "LiteLLM settings that Mirror accepts but does not act on."
        );
    }
    Ok(config)
}
