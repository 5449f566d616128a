//! Azure OpenAI.

use async_trait::async_trait;
use http::HeaderMap;
use mirror_core::{
    ChatRequest, ChatResponse, DeploymentParams, EmbeddingsRequest, EmbeddingsResponse,
    ResponsesRequest, ResponsesResponse, SecretString,
};

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::http::{insert_header, join_url, public_base, HttpClient};
use crate::responses::with_query;
use crate::{max_response_bytes, stream_limits, timeouts, ChunkStream, Provider, ProviderError};
use crate::{ResponseCall, ResponsesEventStream};

/// The Azure OpenAI adapter.
///
/// URLs: `{api_base}/openai/deployments/{deployment}/chat/completions?api-version={api_version}` (and
/// `/embeddings`), or with `api_version` `v1`, `latest` or `preview`, the newer
/// `{api_base}/openai/v1/chat/completions` with the deployment as the body's `model`.
/// Responses: `{api_base}/openai/v1/responses?api-version=preview` by default (LiteLLM's
/// `AZURE_DEFAULT_RESPONSES_API_VERSION`; `AZURE_API_VERSION` is not used, since the dated chat
/// versions predate the Responses API), the v1 surface for `api_version` `v1`, `latest` or
/// `preview`, and `{api_base}/openai/responses?api-version=<date>` for a dated `api_version`.
/// Auth: `api-key: <key>`, or `Authorization: Bearer <azure_ad_token>` (Entra ID).
/// Defaults come from `AZURE_API_KEY`, `AZURE_API_BASE` and `AZURE_API_VERSION`, read once; without
/// `api_version` or `AZURE_API_VERSION`, LiteLLM's default [`AZURE_DEFAULT_API_VERSION`] is used, as
/// LiteLLM does, so a LiteLLM config without `api_version` is served the same way.
/// Azure's content-filter fields are kept in the responses; a 400 with code `content_filter` becomes
/// [`ProviderError::ContentPolicy`].
#[derive(Debug, Clone)]
pub struct AzureOpenAi {
    http: HttpClient,
    default_key: Option<SecretString>,
    default_base: Option<String>,
    default_version: String,
}

/// LiteLLM's `AZURE_DEFAULT_API_VERSION` (1.106.2), used when neither the deployment's `api_version`
/// nor `AZURE_API_VERSION` is set.
pub const AZURE_DEFAULT_API_VERSION: &str = "2025-02-01-preview";

/// The `api-version` an Azure deployment without `api_version` gets: `AZURE_API_VERSION`, else
/// [`AZURE_DEFAULT_API_VERSION`].
pub fn azure_default_api_version() -> String {
    std::env::var("AZURE_API_VERSION")
        .ok()
        .filter(|version| !version.trim().is_empty())
        .unwrap_or_else(|| AZURE_DEFAULT_API_VERSION.to_owned())
}

enum Operation {
    Chat,
    Embeddings,
}

impl AzureOpenAi {
    /// An adapter on the shared client, with defaults from the environment.
    pub fn new(http: HttpClient) -> Self {
        AzureOpenAi {
            http,
            default_key: std::env::var("AZURE_API_KEY").ok().map(SecretString::new),
            default_base: std::env::var("AZURE_API_BASE").ok(),
            default_version: azure_default_api_version(),
        }
    }

    fn base<'a>(&'a self, deployment: &'a DeploymentParams) -> Result<&'a str, ProviderError> {
        deployment
            .api_base
            .as_deref()
            .or(self.default_base.as_deref())
            .map(|base| base.trim_end_matches('/'))
            .ok_or_else(|| ProviderError::Config {
                message: format!(
                    "azure deployment `{}` has no `api_base` and AZURE_API_BASE is not set",
                    deployment.model.name()
                ),
            })
    }

    fn url(
        &self,
        deployment: &DeploymentParams,
        name: &str,
        operation: Operation,
    ) -> Result<String, ProviderError> {
        let base = self.base(deployment)?;
        let version = deployment
            .api_version
            .as_deref()
            .unwrap_or(&self.default_version);
        let path = match operation {
            Operation::Chat => "chat/completions",
            Operation::Embeddings => "embeddings",
        };
        Ok(if is_v1_surface(version) {
            join_url(base, &format!("openai/v1/{path}"), None)
        } else {
            // A deployment name is one path segment, whatever characters it holds.
            let name = utf8_percent_encode(name, PATH_SEGMENT);
            let version = utf8_percent_encode(version, QUERY_VALUE);
            join_url(
                base,
                &format!("openai/deployments/{name}/{path}"),
                Some(&format!("api-version={version}")),
            )
        })
    }

    fn headers(&self, deployment: &DeploymentParams) -> Result<HeaderMap, ProviderError> {
        let mut headers = HeaderMap::new();
        crate::openai::insert_extra_headers(&mut headers, deployment)?;
        if let Some(token) = &deployment.azure_ad_token {
            insert_header(
                &mut headers,
                "authorization",
                &format!("Bearer {}", token.expose()),
                true,
            )?;
        } else if let Some(key) = deployment.api_key.as_ref().or(self.default_key.as_ref()) {
            insert_header(&mut headers, "api-key", key.expose(), true)?;
        } else {
            return Err(ProviderError::Config {
                message: format!(
                    "azure deployment `{}` has no `api_key` or `azure_ad_token`, and AZURE_API_KEY is not set",
                    deployment.model.name()
                ),
            });
        }
        Ok(headers)
    }
}

impl AzureOpenAi {
    /// The Responses URL for `path` (after `/responses`), on the surface the deployment's
    /// `api_version` names, with the `api-version` query where that surface takes one.
    fn responses_url(
        &self,
        deployment: &DeploymentParams,
        path: &str,
    ) -> Result<String, ProviderError> {
        let base = self.base(deployment)?;
        let version = deployment
            .api_version
            .as_deref()
            .unwrap_or(DEFAULT_RESPONSES_API_VERSION);
        // `join_url` keeps a query in `api_base` (after the path) and adds ours after it.
        let path = path.trim_start_matches('/');
        let path = if path.is_empty() {
            String::new()
        } else {
            format!("/{path}")
        };
        Ok(match version {
            "v1" | "latest" => join_url(base, &format!("openai/v1/responses{path}"), None),
            "preview" => join_url(
                base,
                &format!("openai/v1/responses{path}"),
                Some("api-version=preview"),
            ),
            dated => {
                let dated = utf8_percent_encode(dated, QUERY_VALUE);
                join_url(
                    base,
                    &format!("openai/responses{path}"),
                    Some(&format!("api-version={dated}")),
                )
            }
        })
    }
}

/// LiteLLM's `AZURE_DEFAULT_RESPONSES_API_VERSION`.
const DEFAULT_RESPONSES_API_VERSION: &str = "preview";

/// What a path segment cannot hold as is (RFC 3986's `pchar` keeps the rest): controls, space,
/// `"#%/<>?\^`{|}`.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// What a query value cannot hold as is.
const QUERY_VALUE: &AsciiSet = &PATH_SEGMENT.add(b'&').add(b'=').add(b'+');

fn is_v1_surface(version: &str) -> bool {
    matches!(version, "v1" | "latest" | "preview")
}

#[async_trait]
impl Provider for AzureOpenAi {
    fn name(&self) -> &str {
        "azure"
    }

    fn api_base(&self, deployment: &DeploymentParams) -> String {
        self.base(deployment).map(public_base).unwrap_or_default()
    }

    async fn chat(
        &self,
        deployment: &DeploymentParams,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let model = deployment.model.upstream_name(&request.model);
        let url = self.url(deployment, &model, Operation::Chat)?;
        let (timeout, _) = timeouts(deployment);
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
        let model = deployment.model.upstream_name(&request.model);
        let url = self.url(deployment, &model, Operation::Chat)?;
        let (timeout, idle) = timeouts(deployment);
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
        let model = deployment.model.upstream_name(&request.model);
        let url = self.url(deployment, &model, Operation::Embeddings)?;
        let (timeout, _) = timeouts(deployment);
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
        let url = self.responses_url(deployment, "")?;
        let (timeout, _) = timeouts(deployment);
        let previous = request.previous_response_id.as_deref();
        // `model` is the Azure deployment name on both surfaces.
        let model = deployment.model.upstream_name(&request.model);
        let body = request
            .upstream(&model, false, previous)
            .with_defaults(&deployment.extra);
        self.http
            .version(deployment.http2, request.litellm_metadata.as_ref())
            .post_json(
                url,
                self.headers(deployment)?,
                &body,
                timeout,
                max_response_bytes(deployment, false),
            )
            .await
    }

    async fn responses_stream(
        &self,
        deployment: &DeploymentParams,
        request: &ResponsesRequest,
    ) -> Result<ResponsesEventStream, ProviderError> {
        let url = self.responses_url(deployment, "")?;
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
        let url = self.responses_url(deployment, &call.operation.path(call.id))?;
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
