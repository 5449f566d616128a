//! The gateway's configuration file: a LiteLLM proxy `config.yaml`, plus our `mirror_settings`.
//!
//! Every LiteLLM section accepts any key, as LiteLLM does; each key we do not implement is judged by
//! the router's `litellm_keys` table: accepted with one warning when it does not change what a
//! caller gets, refused by the feature's name when it would, and a typo ("did you mean") when it is
//! close to a key we implement. Errors carry the file, line and column.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mirror_core::{deserialize_env_string, SecretString};
use mirror_logging::S3Config;
use mirror_router::{
    apply_supported_environments, check_size, check_values, classify, parse_yaml_as_pyyaml,
    CacheConfig, Classified, ConfigError, MirrorSettings, ModelDeployment, RouterConfig,
    RouterSettings, Section, SHUTDOWN_SECONDS, TIMEOUT_SECONDS, WAIT_SECONDS,
};
use serde::de::IgnoredAny;
use serde::Deserialize;

/// A whole gateway configuration.
#[derive(Debug, Clone, Deserialize)]
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
    /// Other top-level sections, judged by the router's `litellm_keys` table.
    #[serde(flatten)]
    other: BTreeMap<String, IgnoredAny>,
    /// Deployments taken out by `model_info.supported_environments`, by path.
    #[serde(skip)]
    inactive: Vec<String>,
    /// Keys written twice (PyYAML, and so LiteLLM, keeps the last value), by path.
    #[serde(skip)]
    duplicates: Vec<String>,
    /// `router_settings` keys whose value came from `litellm_settings`, so errors name that section.
    #[serde(skip)]
    from_litellm_settings: BTreeSet<&'static str>,
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

/// `litellm_settings`. Keys without a field are judged by the router's `litellm_keys` table.
#[derive(Debug, Clone, Default, Deserialize)]
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
    /// Failures per minute before a deployment cools down, when `router_settings.allowed_fails`
    /// is not set.
    #[serde(default)]
    pub allowed_fails: Option<u32>,
    /// Cooldown in seconds, when `router_settings.cooldown_time` is not set.
    #[serde(default)]
    pub cooldown_time: Option<f64>,
    /// Fallbacks, when `router_settings.fallbacks` is not set.
    #[serde(default)]
    pub fallbacks: Option<Vec<BTreeMap<String, Vec<String>>>>,
    /// Context-window fallbacks, when the router settings have none.
    #[serde(default)]
    pub context_window_fallbacks: Option<Vec<BTreeMap<String, Vec<String>>>>,
    /// Content-policy fallbacks, when the router settings have none.
    #[serde(default)]
    pub content_policy_fallbacks: Option<Vec<BTreeMap<String, Vec<String>>>>,
    /// Fallbacks for groups without their own, when the router settings have none.
    #[serde(default)]
    pub default_fallbacks: Option<Vec<String>>,
    /// At most this many fallback groups per call, when the router settings do not say.
    #[serde(default)]
    pub max_fallbacks: Option<usize>,
    /// Turns the response cache on (LiteLLM's `cache: true`).
    #[serde(default)]
    pub cache: bool,
    /// The response cache's settings; read only when `cache` is true.
    #[serde(default)]
    pub cache_params: Option<CacheConfig>,
    #[serde(flatten)]
    other: BTreeMap<String, IgnoredAny>,
}

impl LiteLlmSettings {
    /// The keys of `litellm_settings` Mirror implements.
    pub const KEYS: &'static [&'static str] = &[
        "success_callback",
        "failure_callback",
        "callbacks",
        "s3_callback_params",
        "num_retries",
        "request_timeout",
        "allowed_fails",
        "cooldown_time",
        "fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
        "default_fallbacks",
        "max_fallbacks",
        "cache",
        "cache_params",
    ];
}

/// `general_settings`. Keys without a field are judged by the router's `litellm_keys` table.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GeneralSettings {
    /// With a master key, every request but health checks needs `Authorization: Bearer <key>`.
    #[serde(default)]
    pub master_key: Option<SecretString>,
    #[serde(flatten)]
    other: BTreeMap<String, IgnoredAny>,
}

impl GeneralSettings {
    /// The keys of `general_settings` Mirror implements.
    pub const KEYS: &'static [&'static str] = &["master_key"];
}

/// The top-level sections Mirror implements.
const TOP_LEVEL_KEYS: &[&str] = &[
    "model_list",
    "router_settings",
    "litellm_settings",
    "general_settings",
    "environment_variables",
    "mirror_settings",
];

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
    /// Opens the admin API (`/admin/...`) without a master key on a listener that is not
    /// loopback-only (default false: it answers 403 then).
    #[serde(default)]
    pub admin_without_key: bool,
    /// The router's silent-mirroring settings: `silent_queue_size`, `silent_max_bytes`,
    /// `silent_max_in_flight`, `default_sample_rate`, `sample_key`, `mirroring_enabled`,
    /// `silent_max_per_minute`.
    #[serde(flatten)]
    pub mirror: MirrorSettings,
    /// The client-facing limits: connections, timeouts, request bodies in memory.
    #[serde(flatten)]
    pub limits: crate::gateway::ClientLimits,
    /// Must come after every other flattened field: it sees only the keys they did not take.
    #[serde(flatten)]
    #[allow(dead_code)] // Only its deserializer matters.
    unknown: UnknownKeys,
}

/// The keys of `mirror_settings` that are the gateway's own.
const GATEWAY_KEYS: [&str; 6] = [
    "log_file",
    "log_max_bytes",
    "log_daily_rotation",
    "max_body_bytes",
    "shutdown_timeout",
    "admin_without_key",
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
                            .chain(&crate::gateway::CLIENT_LIMIT_KEYS)
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
            admin_without_key: false,
            mirror: MirrorSettings::default(),
            limits: crate::gateway::ClientLimits::default(),
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
        self.limits.check()
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
        let (presence, _): (Presence, _) = parse_yaml_as_pyyaml(text, origin)?;
        for (name, value) in &presence.environment_variables {
            // Set before the full parse so `os.environ/NAME` sees them. This runs at start-up,
            // before the runtime's worker threads exist.
            std::env::set_var(name, value);
        }
        let (mut config, duplicates): (GatewayConfig, _) = parse_yaml_as_pyyaml(text, origin)?;
        config.duplicates = duplicates;
        config.origin = origin.to_owned();
        config.source = Source(Some(Arc::from(text)));
        config.section_keys().map_err(|(location, message)| {
            config.locate(ConfigError::Invalid {
                origin: origin.to_owned(),
                location,
                message,
                position: None,
            })
        })?;
        let environment = std::env::var("LITELLM_ENVIRONMENT").ok();
        let mut router = config.router_config();
        config.inactive = apply_supported_environments(&mut router, environment.as_deref(), origin)
            .map_err(|err| config.locate(err))?;
        config.model_list = router.model_list;
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
        crate::gateway::check_master_key(self.general_settings.master_key.as_ref())
            .map_err(|message| (crate::gateway::MASTER_KEY_PATH, message))?;
        if let Some(seconds) = self.litellm_settings.cooldown_time {
            WAIT_SECONDS
                .check(seconds)
                .map_err(|message| ("litellm_settings.cooldown_time", message))?;
        }
        self.mirror_settings.check()
    }

    /// Judges every key of the top level, `litellm_settings` and `general_settings` that Mirror does
    /// not implement; returns the paths of those accepted without effect, or the first refused one.
    /// (The router judges `litellm_params` and `router_settings`.)
    fn section_keys(&self) -> Result<Vec<String>, (String, String)> {
        let mut ignored = Vec::new();
        for (section, prefix, keys, implemented) in [
            (Section::TopLevel, "", &self.other, TOP_LEVEL_KEYS),
            (
                Section::LitellmSettings,
                "litellm_settings.",
                &self.litellm_settings.other,
                LiteLlmSettings::KEYS,
            ),
            (
                Section::GeneralSettings,
                "general_settings.",
                &self.general_settings.other,
                GeneralSettings::KEYS,
            ),
        ] {
            for key in keys.keys() {
                let path = format!("{prefix}{key}");
                match classify(section, key, implemented) {
                    Classified::Ignored | Classified::RequestDefault => ignored.push(path),
                    Classified::Refused(message) => return Err((path, message)),
                }
            }
        }
        Ok(ignored)
    }

    /// Keys written more than once, by path; the last value was used, as PyYAML does.
    pub fn duplicate_keys(&self) -> &[String] {
        &self.duplicates
    }

    /// Deployments left out because `model_info.supported_environments` does not list
    /// `LITELLM_ENVIRONMENT`, by path.
    pub fn inactive_deployments(&self) -> &[String] {
        &self.inactive
    }

    /// Where the configuration came from: the file name, `<built-in default>`, or what
    /// [`GatewayConfig::from_yaml_str`] was given.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Adds the line and column of the field an error names, when the text is known. A
    /// `router_settings` key whose value came from `litellm_settings` is named in that section.
    pub fn locate(&self, err: ConfigError) -> ConfigError {
        let err = match err {
            ConfigError::Invalid {
                origin,
                location,
                message,
                position,
            } => {
                let moved = location.strip_prefix("router_settings.").and_then(|rest| {
                    let key = rest.split(['.', '[']).next().unwrap_or(rest);
                    self.from_litellm_settings
                        .contains(key)
                        .then(|| format!("litellm_settings.{rest}"))
                });
                ConfigError::Invalid {
                    origin,
                    location: moved.unwrap_or(location),
                    message,
                    position,
                }
            }
            other => other,
        };
        match &self.source.0 {
            Some(text) => err.with_position_in(text),
            None => err,
        }
    }

    /// LiteLLM reads `num_retries`, `request_timeout`, `allowed_fails`, `cooldown_time` and the
    /// fallbacks from `litellm_settings` too; the router's own keys win when both are set.
    fn merge_litellm_settings(&mut self, router_keys_set: &BTreeSet<String>) {
        let litellm = &self.litellm_settings;
        let router = &mut self.router_settings;
        let moved = &mut self.from_litellm_settings;
        let mut take = |key: &'static str, set: bool| {
            let take = set && !router_keys_set.contains(key);
            if take {
                moved.insert(key);
            }
            take
        };
        if take("num_retries", litellm.num_retries.is_some()) {
            router.num_retries = litellm.num_retries.unwrap_or(router.num_retries);
        }
        if take("timeout", litellm.request_timeout.is_some()) {
            router.timeout = litellm.request_timeout;
        }
        if take("allowed_fails", litellm.allowed_fails.is_some()) {
            router.allowed_fails = litellm.allowed_fails.unwrap_or(router.allowed_fails);
        }
        if take("cooldown_time", litellm.cooldown_time.is_some()) {
            router.cooldown_time = litellm.cooldown_time.unwrap_or(router.cooldown_time);
        }
        if take("max_fallbacks", litellm.max_fallbacks.is_some()) {
            router.max_fallbacks = litellm.max_fallbacks.unwrap_or(router.max_fallbacks);
        }
        if let (Some(fallbacks), true) = (
            &litellm.fallbacks,
            take("fallbacks", litellm.fallbacks.is_some()),
        ) {
            router.fallbacks.clone_from(fallbacks);
        }
        if let (Some(fallbacks), true) = (
            &litellm.context_window_fallbacks,
            take(
                "context_window_fallbacks",
                litellm.context_window_fallbacks.is_some(),
            ),
        ) {
            router.context_window_fallbacks.clone_from(fallbacks);
        }
        if let (Some(fallbacks), true) = (
            &litellm.content_policy_fallbacks,
            take(
                "content_policy_fallbacks",
                litellm.content_policy_fallbacks.is_some(),
            ),
        ) {
            router.content_policy_fallbacks.clone_from(fallbacks);
        }
        if let (Some(fallbacks), true) = (
            &litellm.default_fallbacks,
            take("default_fallbacks", litellm.default_fallbacks.is_some()),
        ) {
            router.default_fallbacks.clone_from(fallbacks);
        }
    }

    /// The response cache settings, when `litellm_settings.cache` turns it on.
    pub fn cache_config(&self) -> Option<CacheConfig> {
        let settings = &self.litellm_settings;
        settings
            .cache
            .then(|| settings.cache_params.clone().unwrap_or_default())
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
        let mut keys = self.section_keys().unwrap_or_default();
        keys.extend(self.router_config().ignored_keys());
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
    if config.model_list.is_empty() {
        // LiteLLM can load models from its database; Mirror has none, so nothing would serve.
        return Err(ConfigError::Invalid {
            origin: config.origin().to_owned(),
            location: "model_list".to_owned(),
            message: "is empty or missing: Mirror has no database to load models from, so list at least one deployment (or every deployment was left out by `model_info.supported_environments`)".to_owned(),
            position: None,
        });
    }
    let ignored = config.ignored_keys();
    if !ignored.is_empty() {
        tracing::warn!(
            keys = %ignored.join(", "),
            "LiteLLM settings that Mirror accepts but does not act on."
        );
    }
    if !config.duplicate_keys().is_empty() {
        tracing::warn!(
            keys = %config.duplicate_keys().join(", "),
            "Keys written more than once; the last value is used, as in LiteLLM."
        );
    }
    if !config.inactive_deployments().is_empty() {
        tracing::warn!(
            deployments = %config.inactive_deployments().join(", "),
            "Deployments skipped: their model_info.supported_environments does not list LITELLM_ENVIRONMENT."
        );
    }
    Ok(config)
}
