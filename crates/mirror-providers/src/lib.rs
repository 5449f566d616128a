//! Provider adapters of Mirror: how one call reaches one deployment.
//!
//! - [`Provider`], the trait the router calls (object-safe, used as `Arc<dyn Provider>`);
//! - [`OpenAi`], for OpenAI and any OpenAI-compatible server (vLLM, Ollama, LM Studio) via `api_base`;
//! - [`AzureOpenAi`], for Azure OpenAI deployments;
//! - [`Mock`], an in-process provider for offline use and tests (`model: mock/<name>`);
//! - [`ProviderError`], the one error type, with the kinds the router acts on;
//! - the Responses API ([`Provider::responses`], [`Provider::responses_stream`],
//!   [`Provider::response_call`]): OpenAI and compatible servers, Azure on both surfaces, the mock;
//! - [`Anthropic`], Anthropic's Messages API ([`Provider::messages`], [`Provider::messages_stream`],
//!   [`Provider::count_tokens`]).
//!
//! This crate does not pick deployments, retry, or mirror: that is the router's job. It never logs or
//! returns a key.
//!
//! Every adapter sends through one [`HttpClient`]: hyper's pooled client over rustls (webpki roots,
//! HTTP/2 where a TLS server offers it), or, when `HTTP_PROXY`, `HTTPS_PROXY` or `ALL_PROXY` (or a
//! lowercase form) is set and not empty when the client is built, reqwest, which applies them and
//! `NO_PROXY`. Proxy variables set after the client is built have no effect.

mod anthropic;
mod azure;
mod error;
mod http;
mod mock;
mod mock_responses;
mod openai;
mod relayed;
mod responses;
mod transport;

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use mirror_core::{
    ChatRequest, ChatResponse, CountTokensResponse, DeploymentParams, EmbeddingsRequest,
    EmbeddingsResponse, MessagesEvent, MessagesRequest, MessagesResponse, ResponsesRequest,
    ResponsesResponse,
};

pub use anthropic::Anthropic;
pub use azure::{azure_default_api_version, AzureOpenAi, AZURE_DEFAULT_API_VERSION};
pub use error::{BoxError, ProviderError};
pub use http::{public_base, HttpClient, DEFAULT_STREAM_IDLE_TIMEOUT, DEFAULT_TIMEOUT};
pub use mock::Mock;
pub use openai::{OpenAi, OpenAiPreset, OPENAI_COMPATIBLE_PRESETS};
pub use relayed::RelayedChunk;
pub use responses::{ResponseCall, ResponseOperation, ResponsesEventStream};
pub use transport::pools_per_thread;

/// The chunks of a streamed chat completion. Ends after the last chunk (the `[DONE]` marker is not
/// an item); an `Err` item ends the stream. A stream cut off before `[DONE]`, whether the connection
/// broke or closed, ends with a [`ProviderError::Transport`] item, never silently.
///
/// A chunk parsed from an upstream's event carries that event's bytes ([`RelayedChunk::raw`]), so
/// that a gateway relays them instead of serialising the chunk again.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<RelayedChunk, ProviderError>> + Send>>;

/// The events of a streamed Messages call, unchanged. Ends after `message_stop` or an `error` event
/// (an `Ok` item, relayed as the upstream sent it); a stream cut off before either ends with a
/// [`ProviderError::Transport`] item, never silently.
pub type MessagesEventStream =
    Pin<Box<dyn Stream<Item = Result<MessagesEvent, ProviderError>> + Send>>;

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

    /// A Responses API create, answered whole. The request's `previous_response_id` is already the
    /// upstream's own id. Providers without the Responses API keep this default, which fails with
    /// [`ProviderError::Unsupported`].
    ///
    /// # Errors
    ///
    /// Any [`ProviderError`].
    async fn responses(
        &self,
        deployment: &DeploymentParams,
        request: &ResponsesRequest,
    ) -> Result<ResponsesResponse, ProviderError> {
        let _ = (deployment, request);
        Err(ProviderError::Unsupported {
            provider: self.name().to_owned(),
            operation: "responses",
        })
    }

    /// A streamed Responses API create: the upstream's events, unchanged. Default: unsupported.
    ///
    /// # Errors
    ///
    /// Any [`ProviderError`] before the stream starts; later failures are `Err` items.
    async fn responses_stream(
        &self,
        deployment: &DeploymentParams,
        request: &ResponsesRequest,
    ) -> Result<ResponsesEventStream, ProviderError> {
        let _ = (deployment, request);
        Err(ProviderError::Unsupported {
            provider: self.name().to_owned(),
            operation: "responses",
        })
    }

    /// A call on a stored response (retrieve, delete, cancel, list input items), answered as the
    /// upstream's JSON. Default: unsupported.
    ///
    /// # Errors
    ///
    /// Any [`ProviderError`]; an unknown id is the upstream's 404 ([`ProviderError::NotFound`]).
    async fn response_call(
        &self,
        deployment: &DeploymentParams,
        call: ResponseCall<'_>,
    ) -> Result<serde_json::Value, ProviderError> {
        let _ = (deployment, call);
        Err(ProviderError::Unsupported {
            provider: self.name().to_owned(),
            operation: "responses",
        })
    }

    /// Whether this provider speaks Anthropic's Messages API natively, so a Messages request reaches
    /// it unchanged ([`Provider::messages`], [`Provider::messages_stream`],
    /// [`Provider::count_tokens`]). Default: false.
    fn speaks_messages(&self) -> bool {
        false
    }

    /// An Anthropic Messages create, answered whole. Providers without the Messages API keep this
    /// default, which fails with [`ProviderError::Unsupported`].
    ///
    /// # Errors
    ///
    /// Any [`ProviderError`].
    async fn messages(
        &self,
        deployment: &DeploymentParams,
        request: &MessagesRequest,
    ) -> Result<MessagesResponse, ProviderError> {
        let _ = (deployment, request);
        Err(ProviderError::Unsupported {
            provider: self.name().to_owned(),
            operation: "messages",
        })
    }

    /// A streamed Messages create: the upstream's events, unchanged. Default: unsupported.
    ///
    /// # Errors
    ///
    /// Any [`ProviderError`] before the stream starts; later failures are `Err` items.
    async fn messages_stream(
        &self,
        deployment: &DeploymentParams,
        request: &MessagesRequest,
    ) -> Result<MessagesEventStream, ProviderError> {
        let _ = (deployment, request);
        Err(ProviderError::Unsupported {
            provider: self.name().to_owned(),
            operation: "messages",
        })
    }

    /// `POST /v1/messages/count_tokens`. Default: unsupported.
    ///
    /// # Errors
    ///
    /// Any [`ProviderError`].
    async fn count_tokens(
        &self,
        deployment: &DeploymentParams,
        request: &MessagesRequest,
    ) -> Result<CountTokensResponse, ProviderError> {
        let _ = (deployment, request);
        Err(ProviderError::Unsupported {
            provider: self.name().to_owned(),
            operation: "count_tokens",
        })
    }
}

const MIB: u64 = 1024 * 1024;

/// Used for a chat completion when a deployment sets no `max_response_bytes`. A long completion is
/// well under 1 MiB; this leaves room for `logprobs` and many choices while keeping what one call
/// may hold (the body, then the parsed answer, then its record) to tens of MiB.
pub const DEFAULT_MAX_CHAT_RESPONSE_BYTES: u64 = 16 * MIB;

/// Used for embeddings when a deployment sets no `max_response_bytes`. OpenAI's largest batch (2048
/// inputs of 3072 floats, about 20 bytes each as JSON text) is about 126 MB; embeddings are never
/// mirrored, so only the caller's own call holds one.
pub const DEFAULT_MAX_EMBEDDINGS_RESPONSE_BYTES: u64 = 160 * MIB;

/// Used when a deployment sets no `max_stream_event_bytes`. A chunk is usually under 1 KiB; a
/// server that sends a whole answer as one event still fits.
pub const DEFAULT_MAX_STREAM_EVENT_BYTES: u64 = 4 * MIB;

/// Used when a deployment sets no `max_stream_bytes`. A stream spends about 200 bytes of framing
/// per token, so a 100k-token answer is about 20 MiB; the stream is relayed as it comes, and its
/// record holds the text, which this bounds.
pub const DEFAULT_MAX_STREAM_BYTES: u64 = 32 * MIB;

/// The most bytes of a non-streamed answer.
pub(crate) fn max_response_bytes(deployment: &DeploymentParams, embeddings: bool) -> u64 {
    deployment.max_response_bytes.unwrap_or(if embeddings {
        DEFAULT_MAX_EMBEDDINGS_RESPONSE_BYTES
    } else {
        DEFAULT_MAX_CHAT_RESPONSE_BYTES
    })
}

pub(crate) fn stream_limits(deployment: &DeploymentParams) -> http::StreamLimits {
    http::StreamLimits {
        event: deployment
            .max_stream_event_bytes
            .unwrap_or(DEFAULT_MAX_STREAM_EVENT_BYTES),
        stream: deployment
            .max_stream_bytes
            .unwrap_or(DEFAULT_MAX_STREAM_BYTES),
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
