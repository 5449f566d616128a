//! The providers Mirror ships, and the built-in offline configuration.

use std::sync::Arc;

use mirror_providers::{
    Anthropic, AzureOpenAi, HttpClient, Mock, OpenAi, Provider, ProviderError,
    OPENAI_COMPATIBLE_PRESETS,
};
use mirror_router::{RouterBuilder, RouterConfig};

/// The shipped providers on one shared HTTP client: `openai` (and bare model names), `azure`, `mock`,
/// `anthropic` (Messages API only),
/// and LiteLLM's OpenAI-compatible providers as presets of the OpenAI adapter (`groq`, `ollama`,
/// `gemini`, ...; see `OPENAI_COMPATIBLE_PRESETS`).
///
/// # Errors
///
/// Fails when the HTTP client cannot be built.
pub fn default_providers() -> Result<Vec<Arc<dyn Provider>>, ProviderError> {
    let http = HttpClient::new()?;
    let mut providers: Vec<Arc<dyn Provider>> = vec![
        Arc::new(OpenAi::new(http.clone())),
        Arc::new(AzureOpenAi::new(http.clone())),
        Arc::new(Mock::new()),
        Arc::new(Anthropic::new(http.clone())),
    ];
    for preset in OPENAI_COMPATIBLE_PRESETS {
        providers.push(Arc::new(OpenAi::preset(http.clone(), preset)));
    }
    Ok(providers)
}

/// A router builder with the shipped providers registered. Register your own with
/// [`RouterBuilder::provider`] (a provider for an existing prefix replaces the shipped one).
///
/// # Errors
///
/// Fails when the HTTP client cannot be built.
pub fn router_builder() -> Result<RouterBuilder, ProviderError> {
    Ok(default_providers()?
        .into_iter()
        .fold(mirror_router::Router::builder(), RouterBuilder::provider))
}

/// The built-in offline configuration: a `primary` group mirrored to a `shadow` group, both served by
/// the in-process mock provider, so everything runs with no keys and no network.
pub const DEFAULT_CONFIG_YAML: &str = r#"
model_list:
  - model_name: primary
    litellm_params:
      model: mock/primary-v1
      mock_latency_ms: 20
      silent_model: shadow
    model_info:
      id: primary-mock
      input_cost_per_token: 0.0000025
      output_cost_per_token: 0.00001
  - model_name: shadow
    litellm_params:
      model: mock/shadow-v2
      mock_latency_ms: 35
      mock_failure_rate: 0.02
    model_info:
      id: shadow-mock
      input_cost_per_token: 0.00000015
      output_cost_per_token: 0.0000006
router_settings:
  num_retries: 1
"#;

/// Parses [`DEFAULT_CONFIG_YAML`].
///
/// # Errors
///
/// Never in practice; the text is fixed and tested.
pub fn default_config() -> Result<RouterConfig, mirror_router::ConfigError> {
    RouterConfig::from_yaml_str(DEFAULT_CONFIG_YAML, "<built-in default>")
}
