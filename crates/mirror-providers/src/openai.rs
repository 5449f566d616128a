//! OpenAI, and every OpenAI-compatible server reached through `api_base`.

use async_trait::async_trait;
use http::HeaderMap;
use mirror_core::{
    ChatRequest, ChatResponse, DeploymentParams, EmbeddingsRequest, EmbeddingsResponse,
    ResponsesRequest, ResponsesResponse, SecretString,
};

use crate::http::{insert_header, join_url, public_base, HttpClient};
use crate::responses::with_query;
use crate::{max_response_bytes, stream_limits, timeouts, ChunkStream, Provider, ProviderError};
use crate::{ResponseCall, ResponsesEventStream};

const DEFAULT_API_BASE: &str = "https://api.openai.com/v1";

/// The OpenAI adapter: `POST {api_base}/chat/completions`, `{api_base}/embeddings` and
/// `{api_base}/responses` (and `/responses/{id}...`) with
/// `Authorization: Bearer <key>` and an optional `OpenAI-Organization` header.
///
/// A deployment without `api_key` uses `OPENAI_API_KEY`, read once when the adapter is built; with
/// neither, no `Authorization` header is sent (local servers such as Ollama need none). A deployment
/// without `api_base` uses `OPENAI_API_BASE` (or `OPENAI_BASE_URL`), then the public API.
///
/// The same adapter serves LiteLLM's OpenAI-compatible providers ([`OPENAI_COMPATIBLE_PRESETS`],
/// built with [`OpenAi::preset`]): each has its own prefix, default base URL and key variables.
#[derive(Debug, Clone)]
pub struct OpenAi {
    http: HttpClient,
    prefix: &'static str,
    default_key: Option<SecretString>,
    default_base: String,
    /// Appended to a deployment's `api_base` when it lacks it (Ollama's `/v1`, Gemini's
    /// `/v1beta/openai`): LiteLLM calls their native APIs, so users write the server root.
    root_suffix: Option<&'static str>,
    /// Headers the provider expects on every request (OpenRouter's attribution headers).
    fixed_headers: Vec<(&'static str, String)>,
}

/// An OpenAI-compatible provider as LiteLLM (1.106.2) configures it: its prefix, default base URL,
/// and the environment variables it reads. The model name after the prefix is sent as it is.
#[derive(Debug, Clone, Copy)]
pub struct OpenAiPreset {
    /// The model prefix, e.g. `groq` in `groq/llama-3.1-8b-instant`.
    pub prefix: &'static str,
    /// The base URL when neither the deployment nor `base_var` gives one; empty when the provider
    /// has none (`hosted_vllm`), so a deployment must set `api_base`.
    pub default_base: &'static str,
    /// The variable holding a default base URL.
    pub base_var: &'static str,
    /// Variables holding a default key, tried in order.
    pub key_vars: &'static [&'static str],
    /// A key sent when none is set (LiteLLM sends `fake-api-key` to vLLM).
    pub fallback_key: Option<&'static str>,
    /// See [`OpenAi`]'s `root_suffix`.
    pub root_suffix: Option<&'static str>,
}

/// LiteLLM's OpenAI-compatible providers served by the OpenAI adapter.
pub const OPENAI_COMPATIBLE_PRESETS: &[OpenAiPreset] = &[
    OpenAiPreset {
        prefix: "hosted_vllm",
        default_base: "",
        base_var: "HOSTED_VLLM_API_BASE",
        key_vars: &["HOSTED_VLLM_API_KEY"],
        fallback_key: Some("fake-api-key"),
        root_suffix: None,
    },
    OpenAiPreset {
        prefix: "ollama",
        default_base: "http://localhost:11434",
        base_var: "OLLAMA_API_BASE",
        key_vars: &["OLLAMA_API_KEY"],
        fallback_key: None,
        root_suffix: Some("/v1"),
    },
    OpenAiPreset {
        prefix: "ollama_chat",
        default_base: "http://localhost:11434",
        base_var: "OLLAMA_API_BASE",
        key_vars: &["OLLAMA_API_KEY"],
        fallback_key: None,
        root_suffix: Some("/v1"),
    },
    OpenAiPreset {
        prefix: "groq",
        default_base: "https://api.groq.com/openai/v1",
        base_var: "GROQ_API_BASE",
        key_vars: &["GROQ_API_KEY"],
        fallback_key: None,
        root_suffix: None,
    },
    OpenAiPreset {
        prefix: "openrouter",
        default_base: "https://openrouter.ai/api/v1",
        base_var: "OPENROUTER_API_BASE",
        key_vars: &["OPENROUTER_API_KEY", "OR_API_KEY"],
        fallback_key: None,
        root_suffix: None,
    },
    OpenAiPreset {
        prefix: "together_ai",
        default_base: "https://api.together.ai/v1",
        base_var: "TOGETHER_AI_API_BASE",
        key_vars: &[
            "TOGETHER_API_KEY",
            "TOGETHER_AI_API_KEY",
            "TOGETHERAI_API_KEY",
            "TOGETHER_AI_TOKEN",
        ],
        fallback_key: None,
        root_suffix: None,
    },
    OpenAiPreset {
        prefix: "mistral",
        default_base: "https://api.mistral.ai/v1",
        base_var: "MISTRAL_AZURE_API_BASE",
        key_vars: &["MISTRAL_AZURE_API_KEY", "MISTRAL_API_KEY"],
        fallback_key: None,
        root_suffix: Some("/v1"),
    },
    OpenAiPreset {
        prefix: "deepseek",
        default_base: "https://api.deepseek.com/beta",
        base_var: "DEEPSEEK_API_BASE",
        key_vars: &["DEEPSEEK_API_KEY"],
        fallback_key: None,
        root_suffix: None,
    },
    OpenAiPreset {
        prefix: "fireworks_ai",
        default_base: "https://api.fireworks.ai/inference/v1",
        base_var: "FIREWORKS_API_BASE",
        key_vars: &[
            "FIREWORKS_API_KEY",
            "FIREWORKS_AI_API_KEY",
            "FIREWORKSAI_API_KEY",
            "FIREWORKS_AI_TOKEN",
        ],
        fallback_key: None,
        root_suffix: None,
    },
    OpenAiPreset {
        prefix: "xai",
        default_base: "https://api.x.ai/v1",
        base_var: "XAI_API_BASE",
        key_vars: &["XAI_API_KEY"],
        fallback_key: None,
        root_suffix: None,
    },
    OpenAiPreset {
        prefix: "perplexity",
        default_base: "https://api.perplexity.ai",
        base_var: "PERPLEXITY_API_BASE",
        key_vars: &["PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"],
        fallback_key: None,
        root_suffix: None,
    },
    OpenAiPreset {
        prefix: "gemini",
        default_base: "https://generativelanguage.googleapis.com",
        base_var: "GEMINI_API_BASE",
        key_vars: &["GOOGLE_API_KEY", "GEMINI_API_KEY"],
        fallback_key: None,
        root_suffix: Some("/v1beta/openai"),
    },
    OpenAiPreset {
        prefix: "cerebras",
        default_base: "https://api.cerebras.ai/v1",
        base_var: "CEREBRAS_API_BASE",
        key_vars: &["CEREBRAS_API_KEY"],
        fallback_key: None,
        root_suffix: None,
    },
];

impl OpenAi {
    /// An adapter on the shared client, with defaults from the environment.
    pub fn new(http: HttpClient) -> Self {
        let default_key = std::env::var("OPENAI_API_KEY").ok().map(SecretString::new);
        let default_base = std::env::var("OPENAI_API_BASE")
            .or_else(|_| std::env::var("OPENAI_BASE_URL"))
            .unwrap_or_else(|_| DEFAULT_API_BASE.to_owned());
        OpenAi {
            http,
            prefix: "openai",
            default_key,
            default_base,
            root_suffix: None,
            fixed_headers: Vec::new(),
        }
    }

    /// An adapter for an OpenAI-compatible provider, with its defaults read from the environment
    /// once. Its [`Provider::name`] is the preset's prefix.
    pub fn preset(http: HttpClient, preset: &OpenAiPreset) -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let default_key = preset
            .key_vars
            .iter()
            .find_map(|name| env(name))
            .or_else(|| preset.fallback_key.map(str::to_owned))
            .map(SecretString::new);
        let default_base = env(preset.base_var).unwrap_or_else(|| preset.default_base.to_owned());
        let mut fixed_headers = Vec::new();
        if preset.prefix == "openrouter" {
            // LiteLLM's attribution headers for OpenRouter, with its defaults.
            fixed_headers.push((
                "http-referer",
                env("OR_SITE_URL").unwrap_or_else(|| "https://litellm.ai".to_owned()),
            ));
            fixed_headers.push((
                "x-title",
                env("OR_APP_NAME").unwrap_or_else(|| "liteLLM".to_owned()),
            ));
        }
        OpenAi {
            http,
            prefix: preset.prefix,
            default_key,
            default_base,
            root_suffix: preset.root_suffix,
            fixed_headers,
        }
    }

    fn base(&self, deployment: &DeploymentParams) -> Result<String, ProviderError> {
        let base = deployment
            .api_base
            .as_deref()
            .unwrap_or(&self.default_base)
            .trim_end_matches('/');
        if base.is_empty() {
            return Err(ProviderError::Config {
                message: format!(
                    "{} deployment `{}` has no `api_base`",
                    self.prefix,
                    deployment.model.name()
                ),
            });
        }
        // The suffix goes on the path, before a query the base may carry.
        let (path, query) = base
            .split_once('?')
            .map_or((base, None), |(p, q)| (p, Some(q)));
        let mut base = match self.root_suffix {
            Some(suffix) if !path.trim_end_matches('/').ends_with(suffix) => {
                format!("{}{suffix}", path.trim_end_matches('/'))
            }
            _ => path.to_owned(),
        };
        if let Some(query) = query {
            base.push('?');
            base.push_str(query);
        }
        Ok(base)
    }

    fn url(&self, deployment: &DeploymentParams, path: &str) -> Result<String, ProviderError> {
        Ok(join_url(&self.base(deployment)?, path, None))
    }

    fn headers(&self, deployment: &DeploymentParams) -> Result<HeaderMap, ProviderError> {
        let mut headers = HeaderMap::new();
        // Deployment headers first, so the key below wins over an `extra_headers` authorization.
        insert_extra_headers(&mut headers, deployment)?;
        for (name, value) in &self.fixed_headers {
            insert_header(&mut headers, name, value, false)?;
        }
        if let Some(key) = deployment.api_key.as_ref().or(self.default_key.as_ref()) {
            insert_header(
                &mut headers,
                "authorization",
                &format!("Bearer {}", key.expose()),
                true,
            )?;
        }
        if let Some(organization) = &deployment.organization {
            insert_header(&mut headers, "openai-organization", organization, false)?;
        }
        Ok(headers)
    }
}

#[async_trait]
impl Provider for OpenAi {
    fn name(&self) -> &str {
        self.prefix
    }

    fn api_base(&self, deployment: &DeploymentParams) -> String {
        self.base(deployment)
            .map(|base| public_base(&base))
            .unwrap_or_default()
    }

    async fn chat(
        &self,
        deployment: &DeploymentParams,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let url = self.url(deployment, "chat/completions")?;
        let (timeout, _) = timeouts(deployment);
        let model = deployment.model.upstream_name(&request.model);
        let body = request
            .upstream(&model, false)
            .with_defaults(&deployment.extra);
        let max_bytes = max_response_bytes(deployment, false);
        self.http
            .version(deployment.http2, request.metadata.as_ref())
            .post_json(url, self.headers(deployment)?, &body, timeout, max_bytes)
            .await
    }

    async fn chat_stream(
        &self,
        deployment: &DeploymentParams,
        request: &ChatRequest,
    ) -> Result<ChunkStream, ProviderError> {
        let url = self.url(deployment, "chat/completions")?;
        let (timeout, idle) = timeouts(deployment);
        let model = deployment.model.upstream_name(&request.model);
        let body = request
            .upstream(&model, true)
            .with_defaults(&deployment.extra);
        let limits = stream_limits(deployment);
        self.http
            .version(deployment.http2, request.metadata.as_ref())
            .post_sse(url, self.headers(deployment)?, &body, timeout, idle, limits)
            .await
    }

    async fn embeddings(
        &self,
        deployment: &DeploymentParams,
        request: &EmbeddingsRequest,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let url = self.url(deployment, "embeddings")?;
        let (timeout, _) = timeouts(deployment);
        let model = deployment.model.upstream_name(&request.model);
        let body = request.upstream(&model).with_defaults(&deployment.extra);
        let max_bytes = max_response_bytes(deployment, true);
        self.http
            .version(deployment.http2, request.metadata.as_ref())
            .post_json(url, self.headers(deployment)?, &body, timeout, max_bytes)
            .await
    }

    async fn responses(
        &self,
        deployment: &DeploymentParams,
        request: &ResponsesRequest,
    ) -> Result<ResponsesResponse, ProviderError> {
        let url = self.url(deployment, "responses")?;
        let (timeout, _) = timeouts(deployment);
        let previous = request.previous_response_id.as_deref();
        let model = deployment.model.upstream_name(&request.model);
        let body = request
            .upstream(&model, false, previous)
            .with_defaults(&deployment.extra);
        let max_bytes = max_response_bytes(deployment, false);
        self.http
            .version(deployment.http2, request.litellm_metadata.as_ref())
            .post_json(url, self.headers(deployment)?, &body, timeout, max_bytes)
            .await
    }

    async fn responses_stream(
        &self,
        deployment: &DeploymentParams,
        request: &ResponsesRequest,
    ) -> Result<ResponsesEventStream, ProviderError> {
        let url = self.url(deployment, "responses")?;
        let (timeout, idle) = timeouts(deployment);
        let previous = request.previous_response_id.as_deref();
        let model = deployment.model.upstream_name(&request.model);
        let body = request
            .upstream(&model, true, previous)
            .with_defaults(&deployment.extra);
        self.http
            .version(deployment.http2, request.litellm_metadata.as_ref())
            .post_events(
                url,
                self.headers(deployment)?,
                &body,
                timeout,
                idle,
                stream_limits(deployment),
            )
            .await
    }

    async fn response_call(
        &self,
        deployment: &DeploymentParams,
        call: ResponseCall<'_>,
    ) -> Result<serde_json::Value, ProviderError> {
        let url = self.url(
            deployment,
            &format!("responses{}", call.operation.path(call.id)),
        )?;
        let (timeout, _) = timeouts(deployment);
        // A stored response is a client's: silent copies never retrieve or delete one.
        self.http
            .version(deployment.http2, None)
            .call_json(
                call.operation.method(),
                with_query(url, call.query),
                self.headers(deployment)?,
                None::<&()>,
                timeout,
                max_response_bytes(deployment, false),
            )
            .await
    }
}

/// Adds a deployment's `extra_headers` (a request default in `litellm_params`). Values are marked
/// sensitive since they may carry credentials; errors name the header, never the value.
pub(crate) fn insert_extra_headers(
    headers: &mut HeaderMap,
    deployment: &DeploymentParams,
) -> Result<(), ProviderError> {
    for (name, value) in deployment.extra_headers() {
        let invalid = || ProviderError::Config {
            message: format!("`extra_headers` entry `{name}` is not a valid header"),
        };
        let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let mut value = http::HeaderValue::from_str(value).map_err(|_| invalid())?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(())
}
