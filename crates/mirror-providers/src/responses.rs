//! The Responses API on the shared client: JSON calls of any method, and server-sent events relayed
//! as raw `event:`/`data:` pairs (in order, unchanged, whatever their type).

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use http::Method;
use mirror_core::{MessagesEvent, ResponsesEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sseer::errors::EventStreamError;
use sseer::event_stream::EventStream;

use crate::http::{
    error_from_response, malformed, stream_error, HttpClient, Secrets, SseMeter, StreamLimits,
    ERROR_BODY_BYTES,
};
use crate::ProviderError;

/// The events of a streamed Responses call. Ends after a terminal event (`response.completed`,
/// `response.incomplete`, `response.failed`) or an `error` event; a stream cut off before either ends
/// with a [`ProviderError::Transport`] item, never silently. An upstream `error` event is an `Ok`
/// item: it is relayed to the client as the upstream sent it.
pub type ResponsesEventStream =
    Pin<Box<dyn Stream<Item = Result<ResponsesEvent, ProviderError>> + Send>>;

/// An event type relayed as the upstream sent it: Responses and Messages events.
pub(crate) trait RelayedEvent: Send + Sized + 'static {
    /// The event from its SSE name (empty when none was sent) and data.
    fn from_sse(event: String, data: String) -> Self;
    /// Whether the stream ends with this event (nothing after it is read).
    fn is_last(&self) -> bool;
}

impl RelayedEvent for ResponsesEvent {
    fn from_sse(event: String, data: String) -> Self {
        ResponsesEvent { event, data }
    }

    fn is_last(&self) -> bool {
        self.is_terminal() || self.is_error()
    }
}

impl RelayedEvent for MessagesEvent {
    fn from_sse(event: String, data: String) -> Self {
        MessagesEvent { event, data }
    }

    fn is_last(&self) -> bool {
        self.is_stop() || self.kind() == "error"
    }
}

/// A stream of relayed events.
pub(crate) type RelayedStream<E> = Pin<Box<dyn Stream<Item = Result<E, ProviderError>> + Send>>;

/// What is escaped in an id put in a URL path: everything but RFC 3986's unreserved characters, so
/// an id can never add a path segment or a query.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The calls on a stored response, addressed by its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseOperation {
    /// `GET /responses/{id}`.
    Retrieve,
    /// `DELETE /responses/{id}`.
    Delete,
    /// `POST /responses/{id}/cancel`.
    Cancel,
    /// `GET /responses/{id}/input_items`.
    InputItems,
}

impl ResponseOperation {
    /// The HTTP method of the call.
    pub fn method(self) -> Method {
        match self {
            ResponseOperation::Retrieve | ResponseOperation::InputItems => Method::GET,
            ResponseOperation::Delete => Method::DELETE,
            ResponseOperation::Cancel => Method::POST,
        }
    }

    /// The path after `/responses`, for the upstream's own `id`.
    pub fn path(self, id: &str) -> String {
        let id = percent_encoding::utf8_percent_encode(id, PATH_SEGMENT);
        match self {
            ResponseOperation::Retrieve | ResponseOperation::Delete => format!("/{id}"),
            ResponseOperation::Cancel => format!("/{id}/cancel"),
            ResponseOperation::InputItems => format!("/{id}/input_items"),
        }
    }
}

/// One call on a stored response: the operation, the upstream's own response id and the client's
/// query string (`include[]`, `after`, `limit`, `order`), forwarded as it came.
#[derive(Debug, Clone, Copy)]
pub struct ResponseCall<'a> {
    /// What to do.
    pub operation: ResponseOperation,
    /// The upstream's id of the response.
    pub id: &'a str,
    /// The query string without `?`, when the client sent one.
    pub query: Option<&'a str>,
}

/// `url` with `query` appended after `?` or `&`.
pub(crate) fn with_query(mut url: String, query: Option<&str>) -> String {
    if let Some(query) = query.filter(|query| !query.is_empty()) {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(query);
    }
    url
}

impl HttpClient {
    /// Sends a request of any method with an optional JSON body and reads a JSON answer, within
    /// `timeout` for the whole exchange.
    pub(crate) async fn call_json<R: DeserializeOwned>(
        &self,
        method: Method,
        url: String,
        mut headers: HeaderMap,
        body: Option<&(impl Serialize + ?Sized)>,
        timeout: Duration,
        max_bytes: u64,
    ) -> Result<R, ProviderError> {
        let secrets = Secrets::from_headers(&headers);
        let body = match body {
            Some(body) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                serialize(body)?
            }
            None => Vec::new(),
        };
        let exchange = async {
            let mut response = self
                .transport
                .request((self.lane, self.http2), method, url, headers, body)
                .await?;
            let status = response.status;
            let response_headers = std::mem::take(&mut response.headers);
            if !status.is_success() {
                let bytes = response.prefix(ERROR_BODY_BYTES).await?;
                return Err(error_from_response(
                    status.as_u16(),
                    &response_headers,
                    &secrets.scrub_bytes(&bytes),
                ));
            }
            let bytes = response.bytes_limited(max_bytes).await?;
            serde_json::from_slice(&bytes)
                .map_err(|err| malformed(&err.to_string(), &secrets.scrub_bytes(&bytes)))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ProviderError::Timeout { after: timeout })?
            .map_err(|err| secrets.scrub_error(err))
    }

    /// Posts a JSON body and returns the server-sent events as they came. `timeout` bounds the wait
    /// for the response headers; `idle_timeout` bounds the wait for each next event.
    pub(crate) async fn post_events<E: RelayedEvent>(
        &self,
        url: String,
        mut headers: HeaderMap,
        body: &(impl Serialize + ?Sized),
        timeout: Duration,
        idle_timeout: Duration,
        limits: StreamLimits,
    ) -> Result<RelayedStream<E>, ProviderError> {
        let secrets = Secrets::from_headers(&headers);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let body = serialize(body)?;
        let mut response = tokio::time::timeout(
            timeout,
            self.transport
                .request((self.lane, self.http2), Method::POST, url, headers, body),
        )
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
                malformed("expected server-sent events, got a JSON body", &bytes)
            } else {
                error_from_response(status.as_u16(), &response_headers, &bytes)
            };
            return Err(secrets.scrub_error(err));
        }
        // Measured before the SSE parser buffers it, as for chat streams.
        let mut meter = SseMeter::new(limits);
        let bytes = response
            .into_stream()
            .map(move |piece| piece.and_then(|piece| meter.check(&piece).map(|()| piece)));
        // A last line feed completes a final event sent without its blank line.
        let events = EventStream::new(bytes.chain(futures::stream::once(async {
            Ok(bytes::Bytes::from_static(b"\n\n"))
        })));
        Ok(idle_limited(raw_events(events, secrets), idle_timeout))
    }
}

fn serialize(body: &(impl Serialize + ?Sized)) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(body).map_err(|err| ProviderError::BadRequest {
        status: 400,
        message: format!("request cannot be serialized: {err}"),
        code: None,
    })
}

/// Turns SSE events into relayed events, unchanged: ends after a terminal or `error` event
/// (and at a `[DONE]`, which some compatible servers add); skips keep-alives with no data. A stream
/// that ends before a terminal event was cut off and ends with [`ProviderError::Transport`].
fn raw_events<S, E: RelayedEvent>(
    events: S,
    secrets: Secrets,
) -> impl Stream<Item = Result<E, ProviderError>> + Send
where
    S: Stream<Item = Result<sseer::event::Event, EventStreamError<ProviderError>>> + Send + 'static,
{
    let events = Box::pin(events);
    futures::stream::unfold(Some(events), move |state| {
        let secrets = secrets.clone();
        async move {
            let mut events = state?;
            loop {
                let item = match events.next().await {
                    Some(Ok(event)) if event.data.starts_with("[DONE]") => return None,
                    Some(Ok(event)) if event.data.trim().is_empty() => continue,
                    Some(Ok(event)) => {
                        // The parser names an event without an `event:` line `message`; it is
                        // relayed without one, as it came.
                        let name = if &*event.event == "message" {
                            String::new()
                        } else {
                            event.event.to_string()
                        };
                        let event = E::from_sse(name, event.data.to_string());
                        if event.is_last() {
                            // The last item: what follows is not read.
                            return Some((Ok(event), None));
                        }
                        Ok(event)
                    }
                    Some(Err(err)) => Err(stream_error(err)),
                    None => Err(ProviderError::Transport {
                        message: "stream ended before a terminal event".to_owned(),
                        source: None,
                    }),
                };
                let next = item.is_ok().then_some(events);
                return Some((item.map_err(|err| secrets.scrub_error(err)), next));
            }
        }
    })
}

/// Ends a stream with [`ProviderError::Timeout`] when no item arrives within `idle`.
fn idle_limited<S, E: RelayedEvent>(stream: S, idle: Duration) -> RelayedStream<E>
where
    S: Stream<Item = Result<E, ProviderError>> + Send + 'static,
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
