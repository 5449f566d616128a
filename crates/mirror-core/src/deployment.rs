//! Deployment parameters: LiteLLM's `litellm_params` and `model_info`, as providers and the router read
//! them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::secret::deserialize_env_string;
use crate::{SecretString, SilentTargets};

/// A model reference such as `azure/chatgpt-v-2`, `openai/gpt-4o`, `mock/echo` or a bare `gpt-4o`.
///
/// A bare name means OpenAI. Which provider prefixes exist is decided where providers are registered,
/// not here, so a user's own provider can claim a new prefix.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ModelRef {
    provider: String,
    name: String,
}

impl ModelRef {
    /// Parses `provider/name`, or a bare `name` for OpenAI.
    ///
    /// # Errors
    ///
    /// Fails on an empty provider or model name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (provider, name) = match raw.split_once('/') {
            Some((provider, name)) => (provider, name),
            None => ("openai", raw),
        };
        if provider.is_empty() || name.is_empty() {
            return Err(format!(
                "model `{raw}` must look like `provider/model` (e.g. `azure/my-deployment`) or a bare OpenAI model name"
            ));
        }
        Ok(ModelRef {
            provider: provider.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The provider prefix (`openai` for a bare name).
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The model or deployment name after the prefix.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the name is a wildcard (`openai/*`, `*`): the deployment serves any requested name.
    pub fn is_wildcard(&self) -> bool {
        self.name.contains('*')
    }

    /// The model name to send upstream for a request that asked for `requested`: the configured
    /// name, or for a wildcard, the requested name (without this provider's prefix) in place of the
    /// `*`, as LiteLLM's wildcard routing does. Never `*` itself.
    pub fn upstream_name<'a>(&'a self, requested: &'a str) -> std::borrow::Cow<'a, str> {
        if !self.is_wildcard() {
            return std::borrow::Cow::Borrowed(&self.name);
        }
        let captured = requested
            .strip_prefix(self.provider.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(requested);
        std::borrow::Cow::Owned(self.name.replacen('*', captured, 1).replace('*', ""))
    }
}

impl fmt::Debug for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.name)
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.name)
    }
}

impl<'de> Deserialize<'de> for ModelRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        ModelRef::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl Serialize for ModelRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Which HTTP version reaches a deployment (`http2` in `litellm_params` or `router_settings`; ours).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Http2 {
    /// HTTP/2 when a TLS server offers it (ALPN), else HTTP/1.1; plain `http://` is HTTP/1.1.
    #[default]
    Auto,
    /// HTTP/2 only: over TLS it must be negotiated; over plain `http://` it is spoken from the first
    /// byte (h2c with prior knowledge, for local servers that speak it).
    Always,
    /// HTTP/1.1 only, even where a TLS server offers HTTP/2.
    Never,
}

/// One deployment's parameters (LiteLLM's `litellm_params`).
///
/// Keys without a field land in [`DeploymentParams::extra`]; the router's validation decides what
/// each one is (a request default, a LiteLLM key accepted with a warning, a refused feature, a typo).
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct DeploymentParams {
    /// The provider and model, e.g. `azure/chatgpt-v-2`.
    pub model: ModelRef,
    /// The API key; `os.environ/NAME` is read from the environment.
    #[serde(default)]
    pub api_key: Option<SecretString>,
    /// The API base URL (never holds a secret in our records).
    #[serde(default, deserialize_with = "deserialize_env_string")]
    pub api_base: Option<String>,
    /// Azure's `api-version`.
    #[serde(default, deserialize_with = "deserialize_env_string")]
    pub api_version: Option<String>,
    /// An Entra ID bearer token for Azure, instead of an API key.
    #[serde(default)]
    pub azure_ad_token: Option<SecretString>,
    /// OpenAI organization header.
    #[serde(default, deserialize_with = "deserialize_env_string")]
    pub organization: Option<String>,
    /// Request timeout in seconds.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Stream idle timeout in seconds (the longest wait for the next chunk).
    #[serde(default)]
    pub stream_timeout: Option<f64>,
    /// The largest answer read whole (a chat completion or embeddings), in bytes (ours). A larger
    /// one fails the call as "upstream response too large" without being held whole.
    #[serde(default)]
    pub max_response_bytes: Option<u64>,
    /// The largest server-sent event of a stream, in bytes (ours).
    #[serde(default)]
    pub max_stream_event_bytes: Option<u64>,
    /// The most bytes a whole stream may carry (ours).
    #[serde(default)]
    pub max_stream_bytes: Option<u64>,
    /// Provider-SDK retries (accepted for compatibility; the router's `num_retries` is what retries).
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// Router retries for this deployment's group, overriding the router-wide value.
    #[serde(default)]
    pub num_retries: Option<u32>,
    /// Requests per minute this deployment allows.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens per minute this deployment allows.
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Weight for simple-shuffle.
    #[serde(default)]
    pub weight: Option<f64>,
    /// Priority tier: lower orders are tried first.
    #[serde(default)]
    pub order: Option<u32>,
    /// Deployment tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// A fixed answer (LiteLLM's mock), used by the `mock` provider.
    #[serde(default)]
    pub mock_response: Option<String>,
    /// Simulated latency of the `mock` provider, in milliseconds (ours).
    #[serde(default)]
    pub mock_latency_ms: Option<u64>,
    /// Fraction of `mock` calls that fail with a 500 (ours).
    #[serde(default)]
    pub mock_failure_rate: Option<f64>,
    /// Which HTTP version reaches the deployment (ours; default `auto`).
    #[serde(default)]
    pub http2: Option<Http2>,
    /// Model groups to mirror requests to.
    #[serde(default)]
    pub silent_model: Option<SilentTargets>,
    /// Fraction of requests to mirror, 0..=1 (ours; default 1).
    #[serde(default)]
    pub silent_sample_rate: Option<f64>,
    /// Whether Responses requests with `mcp` tools are mirrored (ours; default false). The upstream
    /// calls a remote MCP server itself and that server may write, so a shadow would act twice.
    #[serde(default)]
    pub silent_mirror_mcp_tools: Option<bool>,
    /// Prices may also sit here, as LiteLLM allows.
    #[serde(default)]
    pub input_cost_per_token: Option<f64>,
    /// Prices may also sit here, as LiteLLM allows.
    #[serde(default)]
    pub output_cost_per_token: Option<f64>,

    /// Every other key of `litellm_params`. Once the router has validated the configuration, only
    /// request defaults are left here (`temperature`, `max_tokens`, `extra_body`, `extra_headers`,
    /// ...): providers merge them under each request's own values, as LiteLLM does. LiteLLM keys
    /// Mirror does not act on are taken out (with a warning), and refused ones fail validation.
    #[serde(flatten)]
    pub extra: RequestDefaults,
}

impl DeploymentParams {
    /// Parameters for `model` with everything else unset.
    pub fn new(model: ModelRef) -> Self {
        DeploymentParams {
            model,
            api_key: None,
            api_base: None,
            api_version: None,
            azure_ad_token: None,
            organization: None,
            timeout: None,
            stream_timeout: None,
            max_response_bytes: None,
            max_stream_event_bytes: None,
            max_stream_bytes: None,
            max_retries: None,
            num_retries: None,
            rpm: None,
            tpm: None,
            weight: None,
            order: None,
            tags: Vec::new(),
            mock_response: None,
            mock_latency_ms: None,
            mock_failure_rate: None,
            http2: None,
            silent_model: None,
            silent_sample_rate: None,
            silent_mirror_mcp_tools: None,
            input_cost_per_token: None,
            output_cost_per_token: None,
            extra: RequestDefaults::default(),
        }
    }

    /// The `extra_headers` request default: headers sent with every request of this deployment.
    pub fn extra_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.extra
            .0
            .get("extra_headers")
            .and_then(serde_json::Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(name, value)| Some((name.as_str(), value.as_str()?)))
    }
}

/// The keys of `litellm_params` without a field of their own: after validation, the request defaults
/// of a deployment. `os.environ/NAME` strings are resolved, as LiteLLM resolves every value.
///
/// `Debug` prints only the keys: `extra_headers` may carry credentials.
#[derive(Clone, Default, PartialEq)]
pub struct RequestDefaults(pub serde_json::Map<String, serde_json::Value>);

impl fmt::Debug for RequestDefaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl<'de> Deserialize<'de> for RequestDefaults {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        fn resolve(value: &mut serde_json::Value) -> Result<(), String> {
            match value {
                serde_json::Value::String(text) => {
                    *text = crate::secret::resolve_env_reference(std::mem::take(text))?;
                }
                serde_json::Value::Array(items) => {
                    for item in items {
                        resolve(item)?;
                    }
                }
                serde_json::Value::Object(map) => {
                    for item in map.values_mut() {
                        resolve(item)?;
                    }
                }
                _ => {}
            }
            Ok(())
        }
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        for value in map.values_mut() {
            resolve(value).map_err(serde::de::Error::custom)?;
        }
        Ok(RequestDefaults(map))
    }
}

/// Deployment facts that are not call parameters (LiteLLM's `model_info`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelInfo {
    /// The deployment id; generated from the parameters when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The model to price an Azure deployment as (e.g. `azure/gpt-4o`).
    #[serde(default)]
    pub base_model: Option<String>,
    /// USD per prompt token.
    #[serde(default)]
    pub input_cost_per_token: Option<f64>,
    /// USD per completion token.
    #[serde(default)]
    pub output_cost_per_token: Option<f64>,
    /// Context window, in tokens.
    #[serde(default)]
    pub max_input_tokens: Option<u64>,
    /// Output limit, in tokens.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// `chat`, `embedding`, ...
    #[serde(default)]
    pub mode: Option<String>,
    /// Other keys, kept for display.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}
