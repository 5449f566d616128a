//! The shared HTTP client and what OpenAI-shaped adapters have in common: sending JSON, reading SSE,
//! and turning error responses into [`ProviderError`]s.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use mirror_core::{ChatChunk, ChatResponse, EmbeddingsResponse, ErrorBody, Http2};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sseer::errors::EventStreamError;
use sseer::event_stream::EventStream;

#[cfg(feature = "test-util")]
use crate::transport::Proxies;
use crate::transport::{Choice, Lane, Response, Transport};
use crate::{ChunkStream, ProviderError, RelayedChunk};

mod url;

pub(crate) use url::join_url;
pub use url::public_base;
use url::query_values;

/// Used when a deployment sets no `timeout` (LiteLLM's default is far longer; ten minutes is already
/// more than any sane completion takes).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Used when a deployment sets no `stream_timeout`: the longest wait for the next chunk of a stream.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How much of an unexpected body goes into an error message.
const EXCERPT_CHARS: usize = 200;

/// How much of an error response is read: enough for any real error message; the rest of a huge
/// error body is never read.
pub(crate) const ERROR_BODY_BYTES: usize = 64 * 1024;

/// What a stream may weigh: one server-sent event, and the whole stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamLimits {
    pub(crate) event: u64,
    pub(crate) stream: u64,
}

/// A JSON answer, and what it must hold to be of use to a client.
pub(crate) trait Answer: DeserializeOwned {
    /// What a client needs that the answer lacks, if anything.
    fn lacks(&self) -> Option<&'static str>;
}

impl Answer for ChatResponse {
    fn lacks(&self) -> Option<&'static str> {
        // A completion always has at least one choice (`n` is at least 1); without one a client
        // has nothing to read, and a 200 would hide the upstream's failure.
        self.choices
            .is_empty()
            .then_some("the chat completion has no `choices`")
    }
}

impl Answer for mirror_core::ResponsesResponse {
    fn lacks(&self) -> Option<&'static str> {
        // The id is what later calls (retrieve, `previous_response_id`) route by.
        self.id.is_empty().then_some("the response has no `id`")
    }
}

impl Answer for EmbeddingsResponse {
    fn lacks(&self) -> Option<&'static str> {
        self.data
            .is_empty()
            .then_some("the embeddings response has no `data`")
    }
}

/// One pooled HTTP client shared by every adapter (rustls with the webpki roots, no OpenSSL; HTTP/1.1,
/// and HTTP/2 where the server offers it over TLS). Cloning it is cheap and shares the pool; never
/// build one per request. Silent copies go over pools of their own (the silent lane, HTTP/1.1
/// under `http2: auto`), so they never share a connection with a primary call.
///
/// Proxies: when any of `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` (or their lowercase forms) is set
/// and not empty at [`HttpClient::new`], requests go through reqwest, which applies them with
/// `NO_PROXY` as it always has. Otherwise they go straight over hyper's pooled client, which spends
/// less per request. The choice is made once, for the life of the client.
#[derive(Clone)]
pub struct HttpClient {
    pub(crate) transport: Transport,
    /// The HTTP version setting of the calls this handle sends (see [`HttpClient::version`]).
    pub(crate) http2: Http2,
    /// Whose connections the calls this handle sends use: a primary call's or a silent copy's.
    pub(crate) lane: Lane,
}

impl std::fmt::Debug for HttpClient {
    // Not derived: a reqwest client's `Debug` may print proxy URLs, credentials included.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("transport", &self.transport.name())
            .finish()
    }
}

impl HttpClient {
    /// Builds the client, through reqwest when the environment names a proxy (see the type's docs).
    ///
    /// # Errors
    ///
    /// Fails when the TLS backend cannot be initialised.
    pub fn new() -> Result<Self, ProviderError> {
        Self::with_choice(Choice::from_env(|name| std::env::var_os(name)))
    }

    pub(crate) fn with_choice(choice: Choice) -> Result<Self, ProviderError> {
        Self::with_roots(choice, &[])
    }

    fn with_roots(
        choice: Choice,
        extra_roots: &[rustls::pki_types::CertificateDer<'static>],
    ) -> Result<Self, ProviderError> {
        Ok(HttpClient {
            transport: Transport::build(choice, extra_roots)?,
            http2: Http2::Auto,
            lane: Lane::Primary,
        })
    }

    /// This client (sharing its pools) sending with a deployment's HTTP version setting (`None`
    /// is [`Http2::Auto`]) on the lane of a call whose request metadata is `metadata`: a silent
    /// copy's connections are never a primary call's (see [`Lane`]).
    pub(crate) fn version(
        &self,
        http2: Option<Http2>,
        metadata: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Cow<'_, HttpClient> {
        match (http2.unwrap_or_default(), Lane::of(metadata)) {
            (http2, lane) if http2 == self.http2 && lane == self.lane => Cow::Borrowed(self),
            (http2, lane) => Cow::Owned(HttpClient {
                transport: self.transport.clone(),
                http2,
                lane,
            }),
        }
    }

    /// Test support: the direct client, also trusting the PEM certificates in `ca_pem` (a test's
    /// own certificate authority), whatever the environment says.
    ///
    /// # Errors
    ///
    /// Fails when `ca_pem` holds no certificate or one that cannot be a root.
    #[cfg(feature = "test-util")]
    pub fn direct_trusting(ca_pem: &[u8]) -> Result<Self, ProviderError> {
        Self::with_roots(Choice::Direct, &pem_roots(ca_pem)?)
    }

    /// Test support: the reqwest client without a proxy, also trusting the PEM certificates in
    /// `ca_pem`.
    ///
    /// # Errors
    ///
    /// As [`HttpClient::direct_trusting`].
    #[cfg(feature = "test-util")]
    pub fn reqwest_trusting(ca_pem: &[u8]) -> Result<Self, ProviderError> {
        Self::with_roots(Choice::Reqwest(Proxies::Off), &pem_roots(ca_pem)?)
    }

    /// Test support: the direct client, whatever the environment says.
    ///
    /// # Errors
    ///
    /// Fails when the TLS backend cannot be initialised.
    #[cfg(feature = "test-util")]
    pub fn direct() -> Result<Self, ProviderError> {
        Self::with_choice(Choice::Direct)
    }

    /// Test support: the reqwest client (the one used behind a proxy), sending every request
    /// through `proxy` when given, else through none, whatever the environment says.
    ///
    /// # Errors
    ///
    /// Fails when the TLS backend cannot be initialised or `proxy` is not a proxy URL.
    #[cfg(feature = "test-util")]
    pub fn reqwest(proxy: Option<&str>) -> Result<Self, ProviderError> {
        Self::with_choice(Choice::Reqwest(
            proxy.map_or(Proxies::Off, |proxy| Proxies::All(proxy.to_owned())),
        ))
    }

    /// Posts a JSON body and reads a JSON answer of at most `max_bytes`, within `timeout` for the
    /// whole exchange.
    pub(crate) async fn post_json<B: Serialize + ?Sized, R: Answer>(
        &self,
        url: String,
        headers: HeaderMap,
        body: &B,
        timeout: Duration,
        max_bytes: u64,
    ) -> Result<R, ProviderError> {
        let secrets = Secrets::from_headers(&headers).with_url(&url);
        let exchange = async {
            let mut response = self.send(url, headers, body).await?;
            let status = response.status;
            if !status.is_success() {
                let response_headers = std::mem::take(&mut response.headers);
                let bytes = response.prefix(ERROR_BODY_BYTES).await?;
                return Err(error_from_response(
                    status.as_u16(),
                    &response_headers,
                    &secrets.scrub_bytes(&bytes),
                ));
            }
            let bytes = response.bytes_limited(max_bytes).await?;
            let answer: R = serde_json::from_slice(&bytes)
                .map_err(|err| malformed(&err.to_string(), &secrets.scrub_bytes(&bytes)))?;
            match answer.lacks() {
                Some(lack) => Err(malformed(lack, &secrets.scrub_bytes(&bytes))),
                None => Ok(answer),
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ProviderError::Timeout { after: timeout })?
            .map_err(|err| secrets.scrub_error(err))
    }

    /// Posts a JSON body and returns the server-sent events as chunks. `timeout` bounds the wait for
    /// the response headers; `idle_timeout` bounds the wait for each next event; `limits` bound
    /// the size of one event and of the whole stream.
    pub(crate) async fn post_sse(
        &self,
        url: String,
        headers: HeaderMap,
        body: &(impl Serialize + ?Sized),
        timeout: Duration,
        idle_timeout: Duration,
        limits: StreamLimits,
    ) -> Result<ChunkStream, ProviderError> {
        let secrets = Secrets::from_headers(&headers).with_url(&url);
        let mut response = tokio::time::timeout(timeout, self.send(url, headers, body))
            .await
            .map_err(|_| ProviderError::Timeout { after: timeout })??;
        let status = response.status;
        let is_json = response
            .headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim_start().starts_with("application/json"));
        if !status.is_success() || is_json {
            let response_headers = std::mem::take(&mut response.headers);
            let bytes = tokio::time::timeout(timeout, response.prefix(ERROR_BODY_BYTES))
                .await
                .map_err(|_| ProviderError::Timeout { after: timeout })??;
            let bytes = secrets.scrub_bytes(&bytes);
            let err = if status.is_success() {
                // A server that ignored `stream: true` (or a proxy answering for it).
                malformed("expected server-sent events, got a JSON body", &bytes)
            } else {
                error_from_response(status.as_u16(), &response_headers, &bytes)
            };
            return Err(secrets.scrub_error(err));
        }
        Ok(with_idle_timeout(
            bytes_to_chunks(response.into_stream(), limits, secrets),
            idle_timeout,
        ))
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        url: String,
        mut headers: HeaderMap,
        body: &B,
    ) -> Result<Response, ProviderError> {
        let body = serde_json::to_vec(body).map_err(|err| ProviderError::BadRequest {
            status: 400,
            message: format!("request cannot be serialized: {err}"),
            code: None,
        })?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.transport
            .post((self.lane, self.http2), url, headers, body)
            .await
    }
}

/// The certificates of a PEM text.
#[cfg(feature = "test-util")]
fn pem_roots(pem: &[u8]) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, ProviderError> {
    use rustls::pki_types::pem::PemObject as _;
    let roots = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| ProviderError::Transport {
            message: "cannot read the test certificates".to_owned(),
            source: Some(Box::new(err)),
        })?;
    if roots.is_empty() {
        return Err(ProviderError::Transport {
            message: "no certificate in the test PEM".to_owned(),
            source: None,
        });
    }
    Ok(roots)
}

/// Adds a header whose value came from configuration; a value that is not a valid header is a
/// configuration error that names the header, never the value.
///
/// A `sensitive` value (a key or a token) is also scrubbed from the errors of the call, in case the
/// provider echoes it back.
pub(crate) fn insert_header(
    headers: &mut HeaderMap,
    name: &'static str,
    value: &str,
    sensitive: bool,
) -> Result<(), ProviderError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| ProviderError::Config {
        message: format!("the value for header `{name}` contains characters a header cannot hold"),
    })?;
    value.set_sensitive(sensitive);
    headers.insert(HeaderName::from_static(name), value);
    Ok(())
}

pub(crate) fn malformed(message: &str, body: &[u8]) -> ProviderError {
    ProviderError::MalformedResponse {
        message: message.to_owned(),
        excerpt: excerpt(body),
    }
}

fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(EXCERPT_CHARS)
        .collect()
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
    // A value too large for a `Duration` is ignored rather than trusted (or panicked on).
    if let Some(ms) = number("retry-after-ms") {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    number("retry-after").and_then(|secs| Duration::try_from_secs_f64(secs).ok())
}

/// Maps an error response to the error kind the router acts on.
pub(crate) fn error_from_response(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let code = parsed.as_ref().and_then(ErrorBody::code);
    let kind = parsed
        .as_ref()
        .and_then(|parsed| parsed.error.kind.as_deref());
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
        (429, _) if kind == Some("insufficient_quota") => ProviderError::QuotaExhausted { message },
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

/// The SSE path from a body's bytes to chunks: measured, parsed into events, turned into chunks.
fn bytes_to_chunks<S>(
    bytes: S,
    limits: StreamLimits,
    secrets: Secrets,
) -> impl Stream<Item = Result<RelayedChunk, ProviderError>> + Send
where
    S: Stream<Item = Result<bytes::Bytes, ProviderError>> + Send + 'static,
{
    let mut meter = SseMeter::new(limits);
    let bytes = bytes.map(move |piece| piece.and_then(|piece| meter.check(&piece).map(|()| piece)));
    // A last line feed at a clean end completes a final `\r` line ending, which the parser holds
    // back while a `\n` may follow, and a `[DONE]` sent without its blank line.
    let events = EventStream::new(bytes.chain(futures::stream::once(async {
        Ok(bytes::Bytes::from_static(b"\n"))
    })));
    sse_to_chunks(events, secrets)
}

/// Measures a stream's bytes as they arrive, before the SSE parser buffers them: the parser holds
/// an unfinished line and an unfinished event, so bounding the bytes since the last blank line
/// bounds what it holds; the whole stream is bounded too.
pub(crate) struct SseMeter {
    limits: StreamLimits,
    total: u64,
    /// Bytes since the last blank line (the end of the last event).
    event: u64,
    /// Whether the current line is empty so far.
    line_empty: bool,
    /// Whether the last byte was a `\r`, whose `\n` ends the same line.
    after_cr: bool,
}

impl SseMeter {
    pub(crate) fn new(limits: StreamLimits) -> Self {
        SseMeter {
            limits,
            total: 0,
            event: 0,
            line_empty: true,
            after_cr: false,
        }
    }

    pub(crate) fn check(&mut self, piece: &[u8]) -> Result<(), ProviderError> {
        self.total += piece.len() as u64;
        if self.total > self.limits.stream {
            return Err(ProviderError::ResponseTooLarge {
                what: "stream",
                limit: self.limits.stream,
            });
        }
        for &byte in piece {
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\r' | b'\n' => {
                    if self.line_empty {
                        self.event = 0;
                    }
                    self.line_empty = true;
                    self.after_cr = byte == b'\r';
                }
                _ => {
                    self.line_empty = false;
                    self.after_cr = false;
                    self.event += 1;
                    if self.event > self.limits.event {
                        return Err(ProviderError::ResponseTooLarge {
                            what: "stream event",
                            limit: self.limits.event,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Turns SSE events into chunks: stops at `[DONE]`, raises a mid-stream `{"error": ...}` event,
/// skips events with an empty data field (keep-alives). Each chunk keeps its event's `data:` bytes
/// (a slice of the parser's buffer, not a copy; within `max_stream_event_bytes` like the event).
///
/// A stream that ends without `[DONE]` is complete when every choice it started has sent its
/// `finish_reason` (some OpenAI-compatible servers never send `[DONE]`; the official SDKs end at
/// the close either way); otherwise it was cut off (a clean close of a chunked body looks the same
/// as a complete one), so it ends with [`ProviderError::Transport`].
fn sse_to_chunks<S>(
    events: S,
    secrets: Secrets,
) -> impl Stream<Item = Result<RelayedChunk, ProviderError>> + Send
where
    S: Stream<Item = Result<sseer::event::Event, EventStreamError<ProviderError>>> + Send + 'static,
{
    let events = Box::pin(events);
    futures::stream::unfold(Some((events, Choices::default())), move |state| {
        let secrets = secrets.clone();
        async move {
            let (mut events, mut choices) = state?;
            loop {
                let item = match events.next().await {
                    Some(Ok(event)) if event.data.starts_with("[DONE]") => return None,
                    Some(Ok(event)) if event.data.trim().is_empty() => continue,
                    Some(Ok(event)) => {
                        let data = event.data.into_inner();
                        parse_chunk(&data, &secrets).map(|chunk| RelayedChunk::parsed(chunk, data))
                    }
                    Some(Err(err)) => Err(stream_error(err)),
                    None if choices.all_finished() => return None,
                    None => Err(ProviderError::Transport {
                        message: "stream ended before [DONE]".to_owned(),
                        source: None,
                    }),
                };
                if let Ok(chunk) = &item {
                    choices.note(chunk);
                }
                let next = item.is_ok().then_some((events, choices));
                return Some((item.map_err(|err| secrets.scrub_error(err)), next));
            }
        }
    })
}

/// Which choices of a stream have started and which have finished.
#[derive(Default)]
struct Choices {
    /// Choice indexes seen without a `finish_reason` yet (a handful: `n` is small).
    open: Vec<u32>,
    /// Whether any choice finished.
    any_finished: bool,
    /// Whether more choices were open than are tracked.
    overflowed: bool,
}

impl Choices {
    const MAX_OPEN: usize = 128;

    fn note(&mut self, chunk: &ChatChunk) {
        for choice in &chunk.choices {
            let position = self.open.iter().position(|index| *index == choice.index);
            match (&choice.finish_reason, position) {
                (Some(_), Some(position)) => {
                    self.open.swap_remove(position);
                    self.any_finished = true;
                }
                (Some(_), None) => self.any_finished = true,
                (None, None) if choice.delta.is_some() => {
                    if self.open.len() < Self::MAX_OPEN {
                        self.open.push(choice.index);
                    } else {
                        // More choices than any real stream has (OpenAI's `n` is at most 128):
                        // such a stream is not judged complete without its `[DONE]`.
                        self.overflowed = true;
                    }
                }
                (None, _) => {}
            }
        }
    }

    fn all_finished(&self) -> bool {
        self.any_finished && self.open.is_empty() && !self.overflowed
    }
}

pub(crate) fn stream_error(err: EventStreamError<ProviderError>) -> ProviderError {
    match err {
        EventStreamError::Transport(err) => match err {
            ProviderError::Transport { message, source } => ProviderError::Transport {
                message: format!("stream broke: {message}"),
                source,
            },
            other => other,
        },
        other => ProviderError::MalformedResponse {
            message: format!("invalid server-sent events: {other}"),
            excerpt: String::new(),
        },
    }
}

fn parse_chunk(data: &[u8], secrets: &Secrets) -> Result<ChatChunk, ProviderError> {
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
        Ok(chunk)
            if chunk
                .extra
                .get("error")
                .is_some_and(|error| !error.is_null()) =>
        {
            let data = secrets.scrub_bytes(data);
            let message = serde_json::from_slice::<MaybeError>(&data)
                .ok()
                .and_then(|parsed| parsed.error)
                .map(|error| error.message)
                .unwrap_or_else(|| excerpt(&data));
            Err(ProviderError::Upstream {
                status: 500,
                message: format!("error event in stream: {message}"),
                retry_after: None,
            })
        }
        Ok(chunk) => Ok(chunk),
        Err(err) => Err(malformed(
            &format!("invalid stream chunk: {err}"),
            &secrets.scrub_bytes(data),
        )),
    }
}

/// Ends a stream with [`ProviderError::Timeout`] when no item arrives within `idle`.
pub(crate) fn with_idle_timeout<S>(stream: S, idle: Duration) -> ChunkStream
where
    S: Stream<Item = Result<RelayedChunk, ProviderError>> + Send + 'static,
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

/// The sensitive header values of one call (keys, tokens), scrubbed from its errors in case the
/// provider echoes them: some OpenAI-compatible servers repeat a refused key in full.
#[derive(Clone, Default)]
pub(crate) struct Secrets(Arc<[String]>);

impl Secrets {
    /// Shorter values are not scrubbed: they would mangle messages and are no real keys.
    const MIN_LEN: usize = 8;
    const REDACTED: &'static str = "<redacted>";

    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let values = headers
            .values()
            .filter(|value| value.is_sensitive())
            .filter_map(|value| value.to_str().ok())
            .map(|value| value.strip_prefix("Bearer ").unwrap_or(value).trim())
            .filter(|value| value.len() >= Self::MIN_LEN)
            .map(str::to_owned)
            .collect();
        Secrets(values)
    }

    /// Adds the values of `url`'s query (`?code=...`: some gateways in front of a model take their
    /// key there), in case the upstream echoes them.
    fn with_url(mut self, url: &str) -> Self {
        let query = query_values(url)
            .filter(|value| value.len() >= Self::MIN_LEN)
            .map(str::to_owned);
        let values: Vec<String> = self.0.iter().cloned().chain(query).collect();
        if values.len() > self.0.len() {
            self.0 = values.into();
        }
        self
    }

    fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for secret in self.0.iter() {
            if text.contains(secret.as_str()) {
                text = Cow::Owned(text.replace(secret.as_str(), Self::REDACTED));
            }
        }
        text
    }

    pub(crate) fn scrub_bytes<'a>(&self, body: &'a [u8]) -> Cow<'a, [u8]> {
        let contains = |secret: &String| {
            body.windows(secret.len())
                .any(|window| window == secret.as_bytes())
        };
        if !self.0.iter().any(contains) {
            return Cow::Borrowed(body);
        }
        let text = String::from_utf8_lossy(body);
        Cow::Owned(self.scrub(&text).into_owned().into_bytes())
    }

    pub(crate) fn scrub_error(&self, mut err: ProviderError) -> ProviderError {
        if self.0.is_empty() {
            return err;
        }
        let scrub = |text: &mut String| {
            if let Cow::Owned(clean) = self.scrub(text) {
                *text = clean;
            }
        };
        match &mut err {
            ProviderError::BadRequest { message, .. }
            | ProviderError::Auth { message, .. }
            | ProviderError::NotFound { message }
            | ProviderError::RateLimited { message, .. }
            | ProviderError::QuotaExhausted { message }
            | ProviderError::ContextWindowExceeded { message }
            | ProviderError::ContentPolicy { message }
            | ProviderError::Upstream { message, .. }
            | ProviderError::Transport { message, .. }
            | ProviderError::Config { message } => scrub(message),
            ProviderError::MalformedResponse { message, excerpt } => {
                scrub(message);
                scrub(excerpt);
            }
            ProviderError::Timeout { .. }
            | ProviderError::Unsupported { .. }
            | ProviderError::ResponseTooLarge { .. } => {}
        }
        err
    }
}

#[cfg(test)]
mod tests;
