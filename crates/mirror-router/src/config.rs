//! Router configuration: LiteLLM's `model_list` and `router_settings`, read from YAML or JSON or built
//! in code.

use std::collections::BTreeMap;

use mirror_core::{DeploymentParams, ModelInfo, ModelRef, SecretString, SilentTargets};
use serde::Deserialize;

use crate::error::ConfigError;

mod yaml;

pub(crate) use yaml::with_suggestion;
pub use yaml::{parse_yaml, parse_yaml_as_pyyaml};

/// A whole router configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// The deployments; entries with the same `model_name` form one load-balanced group.
    #[serde(default)]
    pub model_list: Vec<ModelDeployment>,
    /// Router-wide settings.
    #[serde(default)]
    pub router_settings: RouterSettings,
}

impl RouterConfig {
    /// Parses a YAML (or JSON, which is YAML) document with `model_list` and `router_settings`.
    ///
    /// `origin` names the source in error messages (a file name, or `<inline>`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] with the line, the column and, for a misspelled key, the nearest valid
    /// name; a missing `os.environ/NAME` variable is named with where it was referenced.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = parse_yaml(text, origin)?;
        config.check_keys(text, origin)?;
        Ok(config)
    }

    /// Refuses, as a parse error with its line and column, the first key LiteLLM would act on
    /// that Mirror does not, or a typo of a key Mirror implements.
    fn check_keys(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        crate::validate::check_keys(self).map_err(|(location, message)| {
            let at = crate::locate::locate(text, &location)
                .map(|position| format!(" at {position}"))
                .unwrap_or_default();
            ConfigError::Parse {
                origin: origin.to_owned(),
                message: format!("{location}: {message}{at}"),
            }
        })
    }

    /// Parses a JSON document.
    ///
    /// # Errors
    ///
    /// As [`RouterConfig::from_yaml_str`].
    pub fn from_json_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = serde_json::from_str(text).map_err(|err| ConfigError::Parse {
            origin: origin.to_owned(),
            message: with_suggestion(&err.to_string()),
        })?;
        config.check_keys(text, origin)?;
        Ok(config)
    }

    /// Adds a deployment.
    pub fn deployment(mut self, deployment: ModelDeployment) -> Self {
        self.model_list.push(deployment);
        self
    }

    /// LiteLLM keys that were set but that Mirror does not act on, with where they were set.
    pub fn ignored_keys(&self) -> Vec<String> {
        crate::validate::ignored_keys(self)
    }
}

/// One entry of `model_list`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDeployment {
    /// The model group this deployment serves (the name clients send).
    pub model_name: String,
    /// How to call it.
    pub litellm_params: DeploymentParams,
    /// Facts about it (id, prices).
    #[serde(default)]
    pub model_info: ModelInfo,
    /// Requests per minute, written beside `litellm_params` (LiteLLM reads it there too);
    /// `litellm_params.rpm` wins.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens per minute, beside `litellm_params`; `litellm_params.tpm` wins.
    #[serde(default)]
    pub tpm: Option<u64>,
}

impl ModelDeployment {
    /// A deployment of `model` (e.g. `azure/chatgpt-v-2`) serving the group `model_name`.
    ///
    /// # Errors
    ///
    /// Fails when `model` is not a valid model reference.
    pub fn new(model_name: impl Into<String>, model: &str) -> Result<Self, ConfigError> {
        let model_name = model_name.into();
        let model = ModelRef::parse(model).map_err(|message| ConfigError::Invalid {
            origin: "<builder>".to_owned(),
            location: format!("deployment of `{model_name}`"),
            message,
            position: None,
        })?;
        Ok(ModelDeployment {
            model_name,
            litellm_params: DeploymentParams::new(model),
            model_info: ModelInfo::default(),
            rpm: None,
            tpm: None,
        })
    }

    /// Sets the API key.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.litellm_params.api_key = Some(SecretString::new(key));
        self
    }

    /// Sets the API base URL.
    pub fn api_base(mut self, base: impl Into<String>) -> Self {
        self.litellm_params.api_base = Some(base.into());
        self
    }

    /// Sets Azure's API version.
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.litellm_params.api_version = Some(version.into());
        self
    }

    /// Mirrors requests routed to this deployment to the given model groups.
    ///
    /// # Errors
    ///
    /// Fails on an empty list or an empty name.
    pub fn silent_model<I, S>(mut self, groups: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let targets = SilentTargets::new(groups).map_err(|message| ConfigError::Invalid {
            origin: "<builder>".to_owned(),
            location: format!("deployment of `{}`", self.model_name),
            message,
            position: None,
        })?;
        self.litellm_params.silent_model = Some(targets);
        Ok(self)
    }

    /// Mirrors only this fraction (0..=1) of the requests routed here.
    pub fn silent_sample_rate(mut self, rate: f64) -> Self {
        self.litellm_params.silent_sample_rate = Some(rate);
        self
    }

    /// Mirrors Responses requests with `mcp` tools too (off by default: the upstream calls the MCP
    /// server again for the shadow, and that server may write).
    pub fn silent_mirror_mcp_tools(mut self, allow: bool) -> Self {
        self.litellm_params.silent_mirror_mcp_tools = Some(allow);
        self
    }

    /// A fixed answer for the `mock` provider.
    pub fn mock_response(mut self, text: impl Into<String>) -> Self {
        self.litellm_params.mock_response = Some(text.into());
        self
    }

    /// Simulated latency for the `mock` provider.
    pub fn mock_latency_ms(mut self, ms: u64) -> Self {
        self.litellm_params.mock_latency_ms = Some(ms);
        self
    }

    /// Fraction of `mock` calls that fail.
    pub fn mock_failure_rate(mut self, rate: f64) -> Self {
        self.litellm_params.mock_failure_rate = Some(rate);
        self
    }

    /// Weight for simple-shuffle.
    pub fn weight(mut self, weight: f64) -> Self {
        self.litellm_params.weight = Some(weight);
        self
    }

    /// Requests-per-minute limit.
    pub fn rpm(mut self, rpm: u64) -> Self {
        self.litellm_params.rpm = Some(rpm);
        self
    }

    /// Tokens-per-minute limit.
    pub fn tpm(mut self, tpm: u64) -> Self {
        self.litellm_params.tpm = Some(tpm);
        self
    }

    /// Priority tier (lower first).
    pub fn order(mut self, order: u32) -> Self {
        self.litellm_params.order = Some(order);
        self
    }

    /// Request timeout in seconds.
    pub fn timeout(mut self, seconds: f64) -> Self {
        self.litellm_params.timeout = Some(seconds);
        self
    }

    /// The deployment id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.model_info.id = Some(id.into());
        self
    }

    /// Prices in USD per token.
    pub fn prices(mut self, input_per_token: f64, output_per_token: f64) -> Self {
        self.model_info.input_cost_per_token = Some(input_per_token);
        self.model_info.output_cost_per_token = Some(output_per_token);
        self
    }
}

/// How a deployment is picked within a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoutingStrategy {
    /// Weighted random by `weight`, else by `rpm`, else by `tpm`, else uniform.
    #[default]
    SimpleShuffle,
    /// Fewest calls in flight.
    LeastBusy,
    /// Lowest recent latency, sharing load among deployments within the buffer.
    LatencyBasedRouting,
    /// Lowest usage this minute; deployments over `rpm`/`tpm` are skipped.
    #[serde(alias = "usage-based-routing-v2")]
    UsageBasedRouting,
}

impl RoutingStrategy {
    /// LiteLLM's name for the strategy.
    pub fn name(self) -> &'static str {
        match self {
            RoutingStrategy::SimpleShuffle => "simple-shuffle",
            RoutingStrategy::LeastBusy => "least-busy",
            RoutingStrategy::LatencyBasedRouting => "latency-based-routing",
            RoutingStrategy::UsageBasedRouting => "usage-based-routing",
        }
    }
}

/// `routing_strategy_args`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingStrategyArgs {
    /// Latency-based routing shares load among deployments within this fraction of the fastest
    /// (default 0.1, i.e. 10%).
    #[serde(default)]
    pub lowest_latency_buffer: Option<f64>,
    /// Accepted for compatibility (LiteLLM's cache TTL for latency samples).
    #[serde(default)]
    pub ttl: Option<f64>,
}

/// A model group alias: a plain group name or `{model, hidden}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum GroupAlias {
    /// `alias: group`.
    Name(String),
    /// `alias: {model: group, hidden: true}`.
    Detailed {
        /// The group the alias points to.
        model: String,
        /// Whether the alias is hidden from model lists.
        #[serde(default)]
        hidden: bool,
    },
}

impl GroupAlias {
    /// The group the alias points to.
    pub fn target(&self) -> &str {
        match self {
            GroupAlias::Name(name) => name,
            GroupAlias::Detailed { model, .. } => model,
        }
    }
}

/// `router_settings`, with LiteLLM's names and defaults.
///
/// Keys without a field are kept aside and judged by `validate` against LiteLLM's keys (see
/// `litellm_keys.rs`), so `deny_unknown_fields` is not used.
#[derive(Debug, Clone, Deserialize)]
pub struct RouterSettings {
    /// How deployments are picked.
    #[serde(default)]
    pub routing_strategy: RoutingStrategy,
    /// Strategy parameters.
    #[serde(default)]
    pub routing_strategy_args: RoutingStrategyArgs,
    /// Retries per group after the first attempt (LiteLLM's default: 2).
    #[serde(default = "default_num_retries")]
    pub num_retries: u32,
    /// Minimum seconds to wait before a retry.
    #[serde(default)]
    pub retry_after: f64,
    /// Default request timeout in seconds for deployments that set none.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Default stream idle timeout in seconds for deployments that set none.
    #[serde(default)]
    pub stream_timeout: Option<f64>,
    /// Default `max_response_bytes` for deployments that set none (ours).
    #[serde(default)]
    pub max_response_bytes: Option<u64>,
    /// Default `max_stream_event_bytes` for deployments that set none (ours).
    #[serde(default)]
    pub max_stream_event_bytes: Option<u64>,
    /// Default `max_stream_bytes` for deployments that set none (ours).
    #[serde(default)]
    pub max_stream_bytes: Option<u64>,
    /// Failures within a minute before a deployment cools down (default 3).
    #[serde(default = "default_allowed_fails")]
    pub allowed_fails: u32,
    /// Seconds a deployment is skipped after it cools down (default 5).
    #[serde(default = "default_cooldown_time")]
    pub cooldown_time: f64,
    /// Never cool deployments down.
    #[serde(default)]
    pub disable_cooldowns: bool,
    /// `[{group: [fallback groups]}]`, tried after a group fails.
    #[serde(default)]
    pub fallbacks: Vec<BTreeMap<String, Vec<String>>>,
    /// Tried when the prompt is too long for a group.
    #[serde(default)]
    pub context_window_fallbacks: Vec<BTreeMap<String, Vec<String>>>,
    /// Tried when a content filter refuses the prompt.
    #[serde(default)]
    pub content_policy_fallbacks: Vec<BTreeMap<String, Vec<String>>>,
    /// Fallbacks for groups without their own.
    #[serde(default)]
    pub default_fallbacks: Vec<String>,
    /// At most this many fallback groups per call (default 5).
    #[serde(default = "default_max_fallbacks")]
    pub max_fallbacks: usize,
    /// Other names for groups.
    #[serde(default)]
    pub model_group_alias: BTreeMap<String, GroupAlias>,

    /// Redis host whose state several router instances share (LiteLLM's name; `os.environ/NAME`
    /// allowed). Without `redis_host` or `redis_url`, state stays in this process.
    #[serde(default, deserialize_with = "mirror_core::deserialize_env_string")]
    pub redis_host: Option<String>,
    /// Redis port (default 6379); a number, or a string such as `os.environ/REDIS_PORT`.
    #[serde(default, deserialize_with = "deserialize_env_port")]
    pub redis_port: Option<u16>,
    /// Redis password (`os.environ/NAME` allowed).
    #[serde(default)]
    pub redis_password: Option<SecretString>,
    /// A whole Redis URL (`redis://[:password@]host[:port][/db]`), instead of host, port and
    /// password; a secret because it may hold the password.
    #[serde(default)]
    pub redis_url: Option<SecretString>,
    /// Ours: how long the request path waits for Redis at most, in milliseconds (default 50); past
    /// it, the call is decided on local state.
    #[serde(default = "default_redis_timeout_ms")]
    pub redis_timeout_ms: u64,
    /// Ours: how often shared state is pushed and pulled, in milliseconds (default 100).
    #[serde(default = "default_redis_sync_interval_ms")]
    pub redis_sync_interval_ms: u64,
    /// Ours: prefix of every Redis key (default `mirror`); instances share state only with the
    /// same prefix.
    #[serde(default = "default_redis_key_prefix")]
    pub redis_key_prefix: String,

    /// Every other key: LiteLLM keys classified by `litellm_keys` (accepted with a warning or
    /// refused by name), or typos; `validate` decides.
    #[serde(flatten)]
    pub(crate) other: BTreeMap<String, serde::de::IgnoredAny>,
}

fn default_num_retries() -> u32 {
    2
}
fn default_allowed_fails() -> u32 {
    3
}
fn default_cooldown_time() -> f64 {
    5.0
}
fn default_max_fallbacks() -> usize {
    5
}
fn default_redis_timeout_ms() -> u64 {
    50
}
fn default_redis_sync_interval_ms() -> u64 {
    100
}
fn default_redis_key_prefix() -> String {
    "mirror".to_owned()
}

/// A port given as a number or as a string (`"6380"`, `os.environ/REDIS_PORT`).
fn deserialize_env_port<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u16>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Number(u16),
        Text(String),
    }
    let Some(port) = Option::<Port>::deserialize(deserializer)? else {
        return Ok(None);
    };
    match port {
        Port::Number(port) => Ok(Some(port)),
        Port::Text(text) => {
            let text =
                mirror_core::resolve_env_reference(text).map_err(serde::de::Error::custom)?;
            text.trim().parse::<u16>().map(Some).map_err(|_| {
                serde::de::Error::custom(format!("invalid port `{text}`: expected 1 to 65535"))
            })
        }
    }
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            routing_strategy: RoutingStrategy::default(),
            routing_strategy_args: RoutingStrategyArgs::default(),
            num_retries: default_num_retries(),
            retry_after: 0.0,
            timeout: None,
            stream_timeout: None,
            max_response_bytes: None,
            max_stream_event_bytes: None,
            max_stream_bytes: None,
            allowed_fails: default_allowed_fails(),
            cooldown_time: default_cooldown_time(),
            disable_cooldowns: false,
            fallbacks: Vec::new(),
            context_window_fallbacks: Vec::new(),
            content_policy_fallbacks: Vec::new(),
            default_fallbacks: Vec::new(),
            max_fallbacks: default_max_fallbacks(),
            model_group_alias: BTreeMap::new(),
            redis_host: None,
            redis_port: None,
            redis_password: None,
            redis_url: None,
            redis_timeout_ms: default_redis_timeout_ms(),
            redis_sync_interval_ms: default_redis_sync_interval_ms(),
            redis_key_prefix: default_redis_key_prefix(),
            other: BTreeMap::new(),
        }
    }
}

impl RouterSettings {
    /// Shares cooldowns, usage and the mirror budget with other instances through the Redis at
    /// `url` (`redis://[:password@]host[:port][/db]`).
    #[must_use]
    pub fn with_redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(SecretString::new(url));
        self
    }

    /// Whether Redis is configured, i.e. whether state is shared with other instances.
    pub fn is_shared(&self) -> bool {
        self.redis_url.is_some() || self.redis_host.is_some()
    }

    /// The keys of `router_settings` Mirror implements.
    pub const KEYS: &'static [&'static str] = &[
        "routing_strategy",
        "routing_strategy_args",
        "num_retries",
        "retry_after",
        "timeout",
        "stream_timeout",
        "allowed_fails",
        "cooldown_time",
        "disable_cooldowns",
        "fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
        "default_fallbacks",
        "max_fallbacks",
        "model_group_alias",
        "redis_host",
        "redis_port",
        "redis_password",
        "redis_url",
        "redis_timeout_ms",
        "redis_sync_interval_ms",
        "redis_key_prefix",
    ];

    /// The keys set that have no field here, in order.
    pub fn other_keys(&self) -> impl Iterator<Item = &str> {
        self.other.keys().map(String::as_str)
    }
}

/// Settings of silent mirroring (our own). The serde names are the keys of the gateway's
/// `mirror_settings` section, which flattens this struct: one type, one set of defaults.
///
/// Values are checked by `RouterBuilder::build` (and `check_values`): sizes greater than 0, the
/// rate in 0..=1.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorSettings {
    /// Silent copies waiting to be dispatched, a backstop behind `max_bytes`; beyond this they
    /// are dropped and counted as `dropped_queue_full` (`silent_queue_size`, default 16384).
    #[serde(rename = "silent_queue_size", default = "default_queue_size")]
    pub queue_size: usize,
    /// The memory budget of silent work (`silent_max_bytes`, default 384 MiB; the former name
    /// `silent_queue_max_bytes` is read as well): every queued and running silent copy is charged
    /// its estimated request bytes plus [`SILENT_CALL_BYTES`](crate::SILENT_CALL_BYTES) for what a
    /// running call holds, from before the copy is made until the call ends. A copy that would go
    /// over is never made: it is dropped and counted as `dropped_queue_full`.
    #[serde(
        rename = "silent_max_bytes",
        alias = "silent_queue_max_bytes",
        default = "default_max_bytes"
    )]
    pub max_bytes: u64,
    /// Silent calls running at once, a backstop behind `max_bytes` (`silent_max_in_flight`,
    /// default 16384).
    #[serde(rename = "silent_max_in_flight", default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Sample rate for deployments that set no `silent_sample_rate` (default 1).
    #[serde(default = "default_sample_rate")]
    pub default_sample_rate: f64,
    /// A request-metadata key whose value decides sampling deterministically, after the request's
    /// `user` (e.g. `session_id`, so a conversation is mirrored whole or not at all).
    #[serde(default)]
    pub sample_key: Option<String>,
    /// Whether mirroring starts switched on (`mirroring_enabled`; it can be switched at run time).
    #[serde(rename = "mirroring_enabled", default = "default_enabled")]
    pub enabled: bool,
    /// At most this many silent copies per silent model group per minute (wall-clock minute),
    /// across every instance that shares state through Redis; the rest are dropped and counted
    /// (`dropped_rate_capped`). `silent_max_per_minute`; None: no cap.
    #[serde(rename = "silent_max_per_minute", default)]
    pub max_mirrors_per_minute: Option<u64>,
    /// Limits per silent target (a silent model group, by name): a spend budget and an end
    /// (`silent_targets`; see [`SilentTargetSettings`]).
    #[serde(default)]
    pub silent_targets: std::collections::BTreeMap<String, SilentTargetSettings>,
}

/// `mirror_settings.silent_targets.<silent group>`: when copies to one silent group stop.
///
/// Names follow LiteLLM's budgets (`max_budget`, `budget_duration`), with the unit in the name
/// as in the admin API: `max_spend_usd` and `budget_duration` (`1d`: per UTC day; left out: in
/// total). `until` (an RFC 3339 date-time, or a date meaning midnight UTC) or `duration` (`7d`,
/// `12h`, counted from the process start) ends the experiment. Copies past the budget are dropped
/// as `budget_exhausted`, past the end as `experiment_ended`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SilentTargetSettings {
    /// Most USD the silent group's calls may cost per period (greater than 0).
    #[serde(default)]
    pub max_spend_usd: Option<f64>,
    /// The budget's period: `1d` (per UTC day, also `24h`); left out: the budget is in total.
    #[serde(default)]
    pub budget_duration: Option<String>,
    /// When copies stop: an RFC 3339 date-time or a date.
    #[serde(default)]
    pub until: Option<String>,
    /// How long copies run, from the process start: `90s`, `30m`, `12h`, `7d`.
    #[serde(default)]
    pub duration: Option<String>,
}

impl MirrorSettings {
    /// The keys this struct reads, for the "expected one of" list of a section that flattens it.
    pub fn keys() -> &'static [&'static str] {
        field_names::<MirrorSettings>()
    }
}

/// The serde field names of a derived struct, as its `Deserialize` impl declares them.
fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Fields;
    #[derive(Debug)]
    struct Captured(&'static [&'static str]);
    impl std::fmt::Display for Captured {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("captured field names")
        }
    }
    impl std::error::Error for Captured {}
    impl serde::de::Error for Captured {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Captured(&[])
        }
    }
    impl<'de> serde::Deserializer<'de> for Fields {
        type Error = Captured;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Captured> {
            Err(Captured(&[]))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Captured> {
            Err(Captured(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    match T::deserialize(Fields) {
        Err(Captured(fields)) => fields,
        Ok(_) => &[],
    }
}

// The defaults, with the arithmetic in docs/mirroring.md ("Sizing"): by Little's law a shadow
// needs rate × latency calls in flight (1,000 RPS × 5 s = 5,000; 200 RPS × 30 s streams = 6,000),
// and the byte budget, not these counts, is what protects the process.
fn default_queue_size() -> usize {
    16_384
}
fn default_max_bytes() -> u64 {
    384 * 1024 * 1024
}
fn default_max_in_flight() -> usize {
    16_384
}
fn default_sample_rate() -> f64 {
    1.0
}
fn default_enabled() -> bool {
    true
}

impl Default for MirrorSettings {
    fn default() -> Self {
        MirrorSettings {
            queue_size: default_queue_size(),
            max_bytes: default_max_bytes(),
            max_in_flight: default_max_in_flight(),
            default_sample_rate: default_sample_rate(),
            sample_key: None,
            enabled: default_enabled(),
            max_mirrors_per_minute: None,
            silent_targets: std::collections::BTreeMap::new(),
        }
    }
}
