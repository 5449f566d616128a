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
#[derive(Debug, Clone)]
pub struct OpenAi {
    http: HttpClient,
    default_key: Option<SecretString>,
    default_base: String,
}

impl OpenAi {
    /// An adapter on the shared client, with defaults from the environment.
    pub fn new(http: HttpClient) -> Self {
        let default_key = std::env::var("OPENAI_API_KEY").ok().map(SecretString::new);
        let default_base = std::env::var("OPENAI_API_BASE")
            .or_else(|_| std::env::var("OPENAI_BASE_URL"))
            .unwrap_or_else(|_| DEFAULT_API_BASE.to_owned());
        OpenAi {
            http,
            default_key,
            default_base,
        }
    }

    fn base<'a>(&'a self, deployment: &'a DeploymentParams) -> &'a str {
        deployment
            .api_base
            .as_deref()
            .unwrap_or(&self.default_base)
            .trim_end_matches('/')
    }

    fn url(&self, deployment: &DeploymentParams, path: &str) -> String {
        join_url(self.base(deployment), path, None)
    }

    fn headers(&self, deployment: &DeploymentParams) -> Result<HeaderMap, ProviderError> {
        let mut headers = HeaderMap::new();
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
        "openai"
    }

    fn api_base(&self, deployment: &DeploymentParams) -> String {
        public_base(self.base(deployment))
    }

    async fn chat(
        &self,
        deployment: &DeploymentParams,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let url = self.url(deployment, "chat/completions");
        let (timeout, _) = timeouts(deployment);
        let body = request.upstream(deployment.model.name(), false);
        let max_bytes = max_response_bytes(deployment, false);
        self.http
            .post_json(url, self.headers(deployment)?, &body, timeout, max_bytes)
            .await
    }

    async fn chat_stream(
        &self,
        deployment: &DeploymentParams,
        request: &ChatRequest,
    ) -> Result<ChunkStream, ProviderError> {
        let url = self.url(deployment, "chat/completions");
        let (timeout, idle) = timeouts(deployment);
        let body = request.upstream(deployment.model.name(), true);
        let limits = stream_limits(deployment);
        self.http
            .post_sse(url, self.headers(deployment)?, &body, timeout, idle, limits)
            .await
    }

    async fn embeddings(
        &self,
        deployment: &DeploymentParams,
        request: &EmbeddingsRequest,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let url = self.url(deployment, "embeddings");
        let (timeout, _) = timeouts(deployment);
        let body = request.upstream(deployment.model.name());
        let max_bytes = max_response_bytes(deployment, true);
        self.http
            .post_json(url, self.headers(deployment)?, &body, timeout, max_bytes)
            .await
    }

    async fn responses(
        &self,
        deployment: &DeploymentParams,
        request: &ResponsesRequest,
    ) -> Result<ResponsesResponse, ProviderError> {
        let url = self.url(deployment, "responses");
        let (timeout, _) = timeouts(deployment);
        let previous = request.previous_response_id.as_deref();
        let body = request.upstream(deployment.model.name(), false, previous);
        let max_bytes = max_response_bytes(deployment, false);
        self.http
            .post_json(url, self.headers(deployment)?, &body, timeout, max_bytes)
            .await
    }

    async fn responses_stream(
        &self,
        deployment: &DeploymentParams,
        request: &ResponsesRequest,
    ) -> Result<ResponsesEventStream, ProviderError> {
        let url = self.url(deployment, "responses");
        let (timeout, idle) = timeouts(deployment);
        let previous = request.previous_response_id.as_deref();
        let body = request.upstream(deployment.model.name(), true, previous);
        self.http
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
        );
        let (timeout, _) = timeouts(deployment);
        self.http
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
