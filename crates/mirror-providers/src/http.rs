//! The shared HTTP client and what OpenAI-shaped adapters have in common: sending JSON, reading SSE,
//! and turning error responses into [`ProviderError`]s.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use mirror_core::{ChatChunk, ErrorBody};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{ChunkStream, ProviderError};

/// Used when a deployment sets no `timeout` (LiteLLM's default is far longer; ten minutes is already
/// more than any sane completion takes).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Used when a deployment sets no `stream_timeout`: the longest wait for the next chunk of a stream.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How much of an unexpected body goes into an error message.
const EXCERPT_CHARS: usize = 200;

/// One pooled HTTP client shared by every adapter (rustls, no OpenSSL). Cloning it is cheap and shares
/// the pool; never build one per request.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
}

impl HttpClient {
    /// Builds the client.
    ///
    /// # Errors
    ///
    /// Fails when the TLS backend cannot be initialised.
    pub fn new() -> Result<Self, ProviderError> {
        let inner = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .map_err(|err| ProviderError::Transport {
                message: "cannot build the HTTP client".to_owned(),
                source: Some(Box::new(err)),
            })?;
        Ok(HttpClient { inner })
    }

    /// Posts a JSON body and reads a JSON answer, within `timeout` for the whole exchange.
    pub(crate) async fn post_json<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        url: &str,
        headers: HeaderMap,
        body: &B,
        timeout: Duration,
    ) -> Result<R, ProviderError> {
        let exchange = async {
            let response = self.send(url, headers, body).await?;
            let status = response.status();
            let response_headers = response.headers().clone();
            let bytes = response.bytes().await.map_err(transport_error)?;
            if !status.is_success() {
                return Err(error_from_response(status.as_u16(), &response_headers, &bytes));
            }
            serde_json::from_slice(&bytes).map_err(|err| malformed(&err.to_string(), &bytes))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ProviderError::Timeout { after: timeout })?
    }

    /// Posts a JSON body and returns the server-sent events as chunks. `timeout` bounds the wait for
    /// the response headers; `idle_timeout` bounds the wait for each next event.
    pub(crate) async fn post_sse(
        &self,
        url: &str,
        headers: HeaderMap,
        body: &(impl Serialize + ?Sized),
        timeout: Duration,
        idle_timeout: Duration,
    ) -> Result<ChunkStream, ProviderError> {
        let response = tokio::time::timeout(timeout, self.send(url, headers, body))
            .await
            .map_err(|_| ProviderError::Timeout { after: timeout })??;
        let status = response.status();
        if !status.is_success() {
            let response_headers = response.headers().clone();
            let bytes = tokio::time::timeout(timeout, response.bytes())
                .await
                .map_err(|_| ProviderError::Timeout { after: timeout })?
                .map_err(transport_error)?;
            return Err(error_from_response(status.as_u16(), &response_headers, &bytes));
        }
        let events = response.bytes_stream().eventsource();
        Ok(with_idle_timeout(sse_to_chunks(events), idle_timeout))
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        url: &str,
        mut headers: HeaderMap,
        body: &B,
    ) -> Result<reqwest::Response, ProviderError> {
        let body = serde_json::to_vec(body).map_err(|err| ProviderError::BadRequest {
            status: 400,
            message: format!("request cannot be serialized: {err}"),
            code: None,
        })?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.inner
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(transport_error)
    }
}

/// Adds a header whose value came from configuration; a value that is not a valid header is a
/// configuration error that names the header, never the value.
pub(crate) fn insert_header(
    headers: &mut HeaderMap,
    name: &'static str,
    value: &str,
) -> Result<(), ProviderError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| ProviderError::Config {
        message: format!("the value for header `{name}` contains characters a header cannot hold"),
    })?;
    value.set_sensitive(true);
    headers.insert(HeaderName::from_static(name), value);
    Ok(())
}

fn transport_error(err: reqwest::Error) -> ProviderError {
    if err.is_timeout() {
        return ProviderError::Timeout {
            after: DEFAULT_TIMEOUT,
        };
    }
    let err = err.without_url();
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    ProviderError::Transport {
        message,
        source: Some(Box::new(err)),
    }
}

fn malformed(message: &str, body: &[u8]) -> ProviderError {
    ProviderError::MalformedResponse {
        message: message.to_owned(),
        excerpt: excerpt(body),
    }
}

fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(EXCERPT_CHARS).collect()
}

/// Reads `retry-after-ms` (milliseconds, OpenAI) or `Retry-After` (seconds).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|value| value.is_finite() && *value >= 0.0)
    };
    if let Some(ms) = number("retry-after-ms") {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    number("retry-after").map(Duration::from_secs_f64)
}

/// Maps an error response to the error kind the router acts on.
pub(crate) fn error_from_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let code = parsed.as_ref().and_then(ErrorBody::code);
    let message = match &parsed {
        Some(parsed) if !parsed.error.message.is_empty() => parsed.error.message.clone(),
        _ if body.is_empty() => format!("HTTP {status} with an empty body"),
        _ => excerpt(body),
    };
    let lower = message.to_ascii_lowercase();
    match (status, code.as_deref()) {
        (400, Some("context_length_exceeded")) => ProviderError::ContextWindowExceeded { message },
        (400, _) if lower.contains("maximum context length") => {
            ProviderError::ContextWindowExceeded { message }
        }
        (400, Some("content_filter" | "content_policy_violation")) => {
            ProviderError::ContentPolicy { message }
        }
        (401 | 403, _) => ProviderError::Auth { status, message },
        (404, _) => ProviderError::NotFound { message },
        (408, _) => ProviderError::Timeout {
            after: Duration::ZERO,
        },
        (429, Some("insufficient_quota")) => ProviderError::QuotaExhausted { message },
        (429, _) => ProviderError::RateLimited {
            message,
            retry_after: retry_after(headers),
        },
        (500.., _) => ProviderError::Upstream {
            status,
            message,
            retry_after: retry_after(headers),
        },
        _ => ProviderError::BadRequest {
            status,
            message,
            code,
        },
    }
}

/// Turns SSE events into chunks: stops at `[DONE]`, raises a mid-stream `{"error": ...}` event,
/// skips events with an empty data field (keep-alives).
fn sse_to_chunks<S, E>(events: S) -> impl Stream<Item = Result<ChatChunk, ProviderError>> + Send
where
    S: Stream<Item = Result<eventsource_stream::Event, eventsource_stream::EventStreamError<E>>>
        + Send
        + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    events
        .take_while(|event| {
            let done = matches!(event, Ok(event) if event.data.starts_with("[DONE]"));
            futures::future::ready(!done)
        })
        .filter_map(|event| {
            futures::future::ready(match event {
                Ok(event) if event.data.trim().is_empty() => None,
                Ok(event) => Some(parse_chunk(event.data.as_bytes())),
                Err(err) => Some(Err(stream_error(err))),
            })
        })
}

fn stream_error<E: std::error::Error + Send + Sync + 'static>(
    err: eventsource_stream::EventStreamError<E>,
) -> ProviderError {
    match err {
        eventsource_stream::EventStreamError::Transport(err) => ProviderError::Transport {
            message: format!("stream broke: {err}"),
            source: Some(Box::new(err)),
        },
        other => ProviderError::MalformedResponse {
            message: format!("invalid server-sent events: {other}"),
            excerpt: String::new(),
        },
    }
}

fn parse_chunk(data: &[u8]) -> Result<ChatChunk, ProviderError> {
    #[derive(serde::Deserialize)]
    struct MaybeError {
        error: Option<ErrorBodyInner>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorBodyInner {
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<ChatChunk>(data) {
        Ok(chunk) if chunk.extra.contains_key("error") => {
            let message = serde_json::from_slice::<MaybeError>(data)
                .ok()
                .and_then(|parsed| parsed.error)
                .map(|error| error.message)
                .unwrap_or_else(|| excerpt(data));
            Err(ProviderError::Upstream {
                status: 500,
                message: format!("error event in stream: {message}"),
                retry_after: None,
            })
        }
        Ok(chunk) => Ok(chunk),
        Err(err) => Err(malformed(&format!("invalid stream chunk: {err}"), data)),
    }
}

/// Ends a stream with [`ProviderError::Timeout`] when no item arrives within `idle`.
pub(crate) fn with_idle_timeout<S>(stream: S, idle: Duration) -> ChunkStream
where
    S: Stream<Item = Result<ChatChunk, ProviderError>> + Send + 'static,
{
    let stream = Box::pin(stream);
    futures::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(item)) => {
                let failed = item.is_err();
                Some((item, (!failed).then_some(stream)))
            }
            Ok(None) => None,
            Err(_) => Some((Err(ProviderError::Timeout { after: idle }), None)),
        }
    })
    .boxed()
}
