//! Anthropic's Messages API (`anthropic/` deployments), and any Anthropic-compatible server.

use async_trait::async_trait;
use http::{HeaderMap, HeaderValue};
use mirror_core::{
    ChatRequest, ChatResponse, CountTokensResponse, DeploymentParams, MessagesRequest,
    MessagesResponse, SecretString, DEFAULT_ANTHROPIC_VERSION,
};

use crate::http::{insert_header, public_base, Answer, HttpClient};
use crate::openai::insert_extra_headers;
use crate::{
    max_response_bytes, stream_limits, timeouts, ChunkStream, MessagesEventStream, Provider,
    ProviderError,
};

const DEFAULT_API_BASE: &str = "https://api.anthropic.com";

/// The Anthropic adapter: `POST {api_base}/v1/messages` (and `/v1/messages/count_tokens`) with
/// `x-api-key`, `anthropic-version` and, when set, `anthropic-beta`.
///
/// - The key: the deployment's `api_key`, else `ANTHROPIC_API_KEY` read once when the adapter is
///   built.
/// - The base: the deployment's `api_base`, else `ANTHROPIC_API_BASE` (or `ANTHROPIC_BASE_URL`), else
///   `https://api.anthropic.com`. A base may be the server root, end in `/v1`, or be the whole
///   `/v1/messages` URL, as LiteLLM accepts.
/// - `anthropic-version`: `2023-06-01`, or the deployment's `extra_headers` entry of that name
///   (LiteLLM's way to set it).
/// - `anthropic-beta`: the deployment's `extra_headers` entry and the client's header (a same-format
///   call, [`MessagesRequest::beta`]), joined without repeats.
///
/// Requests are sent in the Messages format only; chat completions for an `anthropic/` deployment
/// need translation, which this adapter does not do.
#[derive(Debug, Clone)]
pub struct Anthropic {
    http: HttpClient,
    default_key: Option<SecretString>,
    default_base: String,
}

impl Answer for MessagesResponse {
    fn lacks(&self) -> Option<&'static str> {
        (self.kind != "message").then_some("the answer is not a `message`")
    }
}

impl Answer for CountTokensResponse {
    fn lacks(&self) -> Option<&'static str> {
        None
    }
}

impl Anthropic {
    /// An adapter on the shared client, with defaults from the environment.
    pub fn new(http: HttpClient) -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        Anthropic {
            http,
            default_key: env("ANTHROPIC_API_KEY").map(SecretString::new),
            default_base: env("ANTHROPIC_API_BASE")
                .or_else(|| env("ANTHROPIC_BASE_URL"))
                .unwrap_or_else(|| DEFAULT_API_BASE.to_owned()),
        }
    }

    /// The Messages URL of a deployment.
    fn messages_url(&self, deployment: &DeploymentParams) -> String {
        let base = deployment
            .api_base
            .as_deref()
            .unwrap_or(&self.default_base)
            .trim_end_matches('/');
        let (path, query) = base
            .split_once('?')
            .map_or((base, None), |(path, query)| (path, Some(query)));
        let path = path.trim_end_matches('/');
        let mut url = if path.ends_with("/v1/messages") {
            path.to_owned()
        } else if path.ends_with("/v1") {
            format!("{path}/messages")
        } else {
            format!("{path}/v1/messages")
        };
        if let Some(query) = query {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    fn count_tokens_url(&self, deployment: &DeploymentParams) -> String {
        let url = self.messages_url(deployment);
        match url.split_once('?') {
            Some((path, query)) => format!("{path}/count_tokens?{query}"),
            None => format!("{url}/count_tokens"),
        }
    }

    fn headers(
        &self,
        deployment: &DeploymentParams,
        client_beta: Option<&str>,
    ) -> Result<HeaderMap, ProviderError> {
        let mut headers = HeaderMap::new();
        insert_extra_headers(&mut headers, deployment)?;
        if !headers.contains_key("anthropic-version") {
            insert_header(
                &mut headers,
                "anthropic-version",
                DEFAULT_ANTHROPIC_VERSION,
                false,
            )?;
        }
        let configured = headers
            .get("anthropic-beta")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        if let Some(beta) = join_betas(configured.as_deref(), client_beta) {
            insert_header(&mut headers, "anthropic-beta", &beta, false)?;
        }
        if let Some(key) = deployment.api_key.as_ref().or(self.default_key.as_ref()) {
            insert_header(&mut headers, "x-api-key", key.expose(), true)?;
            // An `extra_headers` authorization would send a second credential.
            headers.remove(http::header::AUTHORIZATION);
        }
        headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        Ok(headers)
    }
}

/// The betas of the deployment and of the client, comma-separated, each once, in that order.
fn join_betas(configured: Option<&str>, client: Option<&str>) -> Option<String> {
    let mut betas: Vec<&str> = Vec::new();
    for beta in [configured, client]
        .into_iter()
        .flatten()
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .filter(|beta| !beta.is_empty())
    {
        if !betas.contains(&beta) {
            betas.push(beta);
        }
    }
    (!betas.is_empty()).then(|| betas.join(","))
}

/// Anthropic's errors in our classes: what the shared mapping cannot tell from the status alone.
///
/// - 400 `prompt is too long` (and `input length and max_tokens exceed context limit`) is a
///   context-window error, so context-window fallbacks apply;
/// - 529 `overloaded_error` stays an upstream error: retried, and counted against the deployment
///   (cooldown), as every 5xx.
fn anthropic_error(err: ProviderError) -> ProviderError {
    match err {
        ProviderError::BadRequest {
            status: 400,
            message,
            code,
        } => {
            let lower = message.to_ascii_lowercase();
            if lower.contains("prompt is too long")
                || lower.contains("exceed context limit")
                || lower.contains("context window")
            {
                ProviderError::ContextWindowExceeded { message }
            } else {
                ProviderError::BadRequest {
                    status: 400,
                    message,
                    code,
                }
            }
        }
        other => other,
    }
}

#[async_trait]
impl Provider for Anthropic {
    fn name(&self) -> &str {
        "anthropic"
    }

    fn speaks_messages(&self) -> bool {
        true
    }

    fn api_base(&self, deployment: &DeploymentParams) -> String {
        public_base(deployment.api_base.as_deref().unwrap_or(&self.default_base))
    }

    async fn chat(
        &self,
        _deployment: &DeploymentParams,
        _request: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        Err(ProviderError::Unsupported {
            provider: "anthropic".to_owned(),
            operation: "chat completions (the router translates them to Messages; call `messages`)",
        })
    }

    async fn chat_stream(
        &self,
        _deployment: &DeploymentParams,
        _request: &ChatRequest,
    ) -> Result<ChunkStream, ProviderError> {
        Err(ProviderError::Unsupported {
            provider: "anthropic".to_owned(),
            operation: "chat completions (the router translates them to Messages; call `messages`)",
        })
    }

    async fn messages(
        &self,
        deployment: &DeploymentParams,
        request: &MessagesRequest,
    ) -> Result<MessagesResponse, ProviderError> {
        let (timeout, _) = timeouts(deployment);
        let model = deployment.model.upstream_name(&request.model);
        let body = request.upstream(&model, false);
        let headers = self.headers(deployment, request.beta.as_deref())?;
        self.http
            .version(deployment.http2, request.litellm_metadata.as_ref())
            .post_json(
                self.messages_url(deployment),
                headers,
                &body,
                timeout,
                max_response_bytes(deployment, false),
            )
            .await
            .map_err(anthropic_error)
    }

    async fn messages_stream(
        &self,
        deployment: &DeploymentParams,
        request: &MessagesRequest,
    ) -> Result<MessagesEventStream, ProviderError> {
        let (timeout, idle) = timeouts(deployment);
        let model = deployment.model.upstream_name(&request.model);
        let body = request.upstream(&model, true);
        let mut headers = self.headers(deployment, request.beta.as_deref())?;
        headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        self.http
            .version(deployment.http2, request.litellm_metadata.as_ref())
            .post_events(
                self.messages_url(deployment),
                headers,
                &body,
                timeout,
                idle,
                stream_limits(deployment),
            )
            .await
            .map_err(anthropic_error)
    }

    async fn count_tokens(
        &self,
        deployment: &DeploymentParams,
        request: &MessagesRequest,
    ) -> Result<CountTokensResponse, ProviderError> {
        let (timeout, _) = timeouts(deployment);
        let model = deployment.model.upstream_name(&request.model);
        let body = request.upstream_count_tokens(&model);
        let headers = self.headers(deployment, request.beta.as_deref())?;
        self.http
            .version(deployment.http2, request.litellm_metadata.as_ref())
            .post_json(
                self.count_tokens_url(deployment),
                headers,
                &body,
                timeout,
                max_response_bytes(deployment, false),
            )
            .await
            .map_err(anthropic_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn betas_are_joined_once() {
        assert_eq!(join_betas(None, None), None);
        assert_eq!(
            join_betas(Some("a, b"), Some("b,c")).as_deref(),
            Some("a,b,c")
        );
        assert_eq!(join_betas(None, Some(" ")), None);
    }

    #[test]
    fn context_window_errors_are_recognised() {
        let err = anthropic_error(ProviderError::BadRequest {
            status: 400,
            message: "prompt is too long: 210000 tokens > 200000 maximum".to_owned(),
            code: None,
        });
        assert_eq!(err.class(), "context_window_exceeded");
        let err = anthropic_error(ProviderError::BadRequest {
            status: 400,
            message: "max_tokens: Field required".to_owned(),
            code: None,
        });
        assert_eq!(err.class(), "bad_request");
    }
}
