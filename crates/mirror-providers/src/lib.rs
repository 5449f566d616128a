//! Provider adapters of Mirror: how one call reaches one deployment.
//!
//! - [`Provider`], the trait the router calls (object-safe, used as `Arc<dyn Provider>`);
//! - [`OpenAi`], for OpenAI and any OpenAI-compatible server (vLLM, Ollama, LM Studio) via `api_base`;
//! - [`AzureOpenAi`], for Azure OpenAI deployments;
//! - [`Mock`], an in-process provider for offline use and tests (`model: mock/<name>`);
//! - [`ProviderError`], the one error type, with the kinds the router acts on.
//!
//! This crate does not pick deployments, retry, or mirror: that is the router's job. It never logs or
//! returns a key.
//!
//! Every adapter sends through one [`HttpClient`]: hyper's pooled client over rustls (webpki roots,
//! HTTP/2 where a TLS server offers it), or, when `HTTP_PROXY`, `HTTPS_PROXY` or `ALL_PROXY` (or a
//! lowercase form) is set and not empty when the client is built, reqwest, which applies them and
//! `NO_PROXY`. Proxy variables set after the client is built have no effect.

mod azure;
mod error;
mod http;
mod mock;
mod openai;
mod transport;

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use mirror_core::{
    ChatChunk, ChatRequest, ChatResponse, DeploymentParams, EmbeddingsRequest, EmbeddingsResponse,
};

pub use azure::{azure_default_api_version, AzureOpenAi, AZURE_DEFAULT_API_VERSION};
pub use error::{BoxError, ProviderError};
pub use http::{HttpClient, DEFAULT_STREAM_IDLE_TIMEOUT, DEFAULT_TIMEOUT};
pub use mock::Mock;
pub use openai::{OpenAi, OpenAiPreset, OPENAI_COMPATIBLE_PRESETS};

/// The chunks of a streamed chat completion. Ends after the last chunk (the `[DONE]` marker is not
/// an item); an `Err` item ends the stream. A stream cut off before `[DONE]`, whether the connection
/// broke or closed, ends with a [`ProviderError::Transport`] item, never silently.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, ProviderError>> + Send>>;

/// One kind of upstream: turns calls into requests to a deployment of that kind.
///
/// The router picks the deployment and passes its parameters; the provider only talks to it.
/// Implement this trait to add a provider, and register it for a model prefix through the router's
/// builder.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The model prefix this provider serves, e.g. `openai` for `openai/gpt-4o`.
    fn name(&self) -> &str;

    /// The deployment's base URL for records and logs. Never includes a secret.
    fn api_base(&self, deployment: &DeploymentParams) -> String {
        let _ = deployment;
        String::new()
    }

    /// A complete chat completion.
    ///
    /// # Errors
    ///
    /// Any [`ProviderError`]; the router decides from its kind whether to retry or fall back.
    async fn chat(
        &self,
        deployment: &DeploymentParams,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError>;

    /// A streamed chat completion. Returns once the provider has accepted the request; the chunks
    /// follow. The time the first chunk with content arrives is the time to first token.
    ///
    /// # Errors
    ///
    /// Any [`ProviderError`] before the stream starts; later failures are `Err` items of the stream.
    async fn chat_stream(
        &self,
        deployment: &DeploymentParams,
        request: &ChatRequest,
    ) -> Result<ChunkStream, ProviderError>;

    /// Embeddings. Providers without them keep this default, which fails with
    /// [`ProviderError::Unsupported`].
    ///
    /// # Errors
    ///
    /// Any [`ProviderError`].
    async fn embeddings(
        &self,
        deployment: &DeploymentParams,
        request: &EmbeddingsRequest,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let _ = (deployment, request);
        Err(ProviderError::Unsupported {
            provider: self.name().to_owned(),
            operation: "embeddings",
        })
    }
}

pub(crate) fn timeouts(
    deployment: &DeploymentParams,
) -> (std::time::Duration, std::time::Duration) {
    let seconds = |value: Option<f64>| {
        // The router refuses timeouts over a day; a caller that skips it must not panic here.
        value
            .filter(|secs| *secs > 0.0)
            .and_then(|secs| std::time::Duration::try_from_secs_f64(secs).ok())
    };
    (
        seconds(deployment.timeout).unwrap_or(DEFAULT_TIMEOUT),
        seconds(deployment.stream_timeout).unwrap_or(DEFAULT_STREAM_IDLE_TIMEOUT),
    )
}
