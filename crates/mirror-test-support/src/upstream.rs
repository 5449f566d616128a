//! A fake OpenAI-shaped upstream on `127.0.0.1:0` whose behaviour each test controls.
//!
//! It answers every path and method (`/v1/chat/completions`, Azure's
//! `/openai/deployments/{deployment}/chat/completions`, embeddings, anything else), records what it
//! saw ([`Seen`]: method, path, query, headers, JSON body) and counts arrivals, so a test can wait
//! for them. What it answers is up to the test:
//!
//! - [`Upstream::start`] and friends follow a script of [`Behaviour`]s (answer, hold until
//!   [`Upstream::release`], delay, fail with a status and headers such as `Retry-After`, reset),
//!   then a default; answers are chat completions, or server-sent events when the request asks for
//!   `"stream": true`.
//! - [`Upstream::with_handler`] hands every request to an async function that builds any response,
//!   with the helpers [`json()`], [`raw`] and [`sse`].
//!
//! It speaks HTTP/1.1 on plain `http://` by default; [`Upstream::serving`] starts one that also
//! speaks HTTP/2 with prior knowledge (h2c), or TLS with the test certificate authority
//! ([`tls::CA_PEM`]) offering `h2` and `http/1.1`. Each [`Seen`] says which HTTP version carried it
//! and on which connection, so a test can tell how its client reached the server.
//!
//! The server stops when the last clone of its [`Upstream`] is dropped.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, BoxStream, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

/// The longest any test waits for an event that should happen (generous: machines are shared).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Every header.
    pub headers: HeaderMap,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
    /// The HTTP version that carried it (`HTTP/1.1`, `HTTP/2.0`).
    pub version: String,
    /// The client's address: one per connection.
    pub peer: Option<SocketAddr>,
}

/// How an [`Upstream`] accepts connections.
#[derive(Clone)]
pub enum Serving {
    /// Plain `http://`, HTTP/1.1 (axum's server; what every other constructor starts).
    Http1,
    /// Plain `http://`, HTTP/1.1 or HTTP/2 with prior knowledge (h2c), whichever the client speaks.
    H2c,
    /// `https://127.0.0.1` with the test certificate, offering these ALPN protocols.
    Tls(Vec<&'static [u8]>),
    /// As [`Serving::Tls`], allowing at most this many concurrent streams on one HTTP/2
    /// connection (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    TlsWithStreams(Vec<&'static [u8]>, u32),
}

impl Seen {
    /// A header's value, if it is there and is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The `authorization` header.
    pub fn authorization(&self) -> Option<&str> {
        self.header("authorization")
    }

    /// Whether the body asks for a stream.
    pub fn is_stream(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool) == Some(true)
    }

    /// The request line, the headers an adapter sets, and the JSON body (keys sorted), for
    /// snapshots.
    pub fn render(&self) -> String {
        let mut out = format!("{} {}", self.method, self.path);
        if let Some(query) = &self.query {
            out.push('?');
            out.push_str(query);
        }
        out.push('\n');
        for name in [
            "authorization",
            "api-key",
            "openai-organization",
            "content-type",
        ] {
            if let Some(value) = self.header(name) {
                out.push_str(&format!("{name}: {value}\n"));
            }
        }
        out.push_str(&serde_json::to_string_pretty(&canonical(&self.body)).unwrap());
        out
    }
}

/// Sorts object keys, so snapshots do not depend on serde_json's `preserve_order` feature.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: std::collections::BTreeMap<_, _> =
                map.iter().map(|(k, v)| (k.clone(), canonical(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// One request, as a handler gets it: what was seen, its arrival number, and the release gate.
#[derive(Debug)]
pub struct Call {
    /// What the upstream received.
    pub seen: Seen,
    /// 1 for the first request, 2 for the second, ...
    pub number: usize,
    gate: watch::Receiver<bool>,
}

impl Call {
    /// Waits until the test calls [`Upstream::release`] (at once if it already did).
    pub async fn released(&mut self) {
        let _ = self.gate.wait_for(|open| *open).await;
    }
}

impl std::ops::Deref for Call {
    type Target = Seen;

    fn deref(&self) -> &Seen {
        &self.seen
    }
}

/// What the scripted upstream does with one request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Answers at once.
    Answer,
    /// Waits until the test releases the gate ([`Upstream::release`]), then answers.
    Hold,
    /// Waits this long, then answers.
    Delay(Duration),
    /// Answers with an error status, an OpenAI-shaped error body and extra headers.
    Fail {
        /// The HTTP status.
        status: u16,
        /// `error.code`.
        code: Option<&'static str>,
        /// `error.message`.
        message: String,
        /// Extra headers, such as `retry-after`.
        headers: Vec<(&'static str, String)>,
    },
    /// Starts the response, then breaks the connection.
    Reset,
    /// Starts a stream, then sends an error event of `kind` (`overloaded_error`, ...) and ends:
    /// Anthropic's `event: error` on Messages paths, a `data: {"error": ...}` chunk elsewhere.
    StreamError {
        /// The error's type.
        kind: &'static str,
        /// Its message.
        message: String,
    },
}

impl Behaviour {
    /// A 500 that asks for a quick retry, so tests do not wait for the router's backoff.
    pub fn server_error() -> Self {
        Behaviour::Fail {
            status: 500,
            code: Some("server_error"),
            message: "the server had an error".to_owned(),
            headers: vec![("retry-after-ms", "10".to_owned())],
        }
    }

    /// A 429 with `retry-after-ms`.
    pub fn rate_limited(retry_after_ms: u64) -> Self {
        Behaviour::Fail {
            status: 429,
            code: Some("rate_limit_exceeded"),
            message: "Rate limit reached".to_owned(),
            headers: vec![("retry-after-ms", retry_after_ms.to_string())],
        }
    }

    /// A 400 with the given code.
    pub fn bad_request(code: &'static str, message: &str) -> Self {
        Behaviour::Fail {
            status: 400,
            code: Some(code),
            message: message.to_owned(),
            headers: Vec::new(),
        }
    }
}

type Handler = Arc<dyn Fn(Call) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

struct Shared {
    name: String,
    script: Mutex<VecDeque<Behaviour>>,
    default: Mutex<Behaviour>,
    seen: Mutex<Vec<Seen>>,
    arrivals: watch::Sender<usize>,
    gate: watch::Sender<bool>,
}

/// Aborts the server task when the last [`Upstream`] clone goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The running upstream.
#[derive(Clone)]
pub struct Upstream {
    shared: Arc<Shared>,
    url: String,
    _task: Arc<AbortOnDrop>,
}

impl Upstream {
    /// Starts a scripted server named `name` that answers every request (until told otherwise).
    /// Its answers say `hello from <name>`.
    pub async fn start(name: &str) -> Self {
        Self::with_default(name, Behaviour::Answer).await
    }

    /// Starts a scripted server that holds every request until [`Upstream::release`].
    pub async fn held(name: &str) -> Self {
        Self::with_default(name, Behaviour::Hold).await
    }

    /// Starts a scripted server whose requests get `default` once the script is used up.
    pub async fn with_default(name: &str, default: Behaviour) -> Self {
        Self::spawn(name, default, None).await
    }

    /// Starts a server that answers every request with `handler`.
    pub async fn with_handler<F, Fut>(handler: F) -> Self
    where
        F: Fn(Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |call| Box::pin(handler(call)));
        Self::spawn("upstream", Behaviour::Answer, Some(handler)).await
    }

    /// Starts a scripted server named `name` that accepts connections as `serving` says.
    pub async fn serving(name: &str, serving: Serving) -> Self {
        Self::spawn_serving(name, Behaviour::Answer, None, serving).await
    }

    /// Starts a server that accepts connections as `serving` says and answers every request with
    /// `handler`.
    pub async fn serving_with_handler<F, Fut>(serving: Serving, handler: F) -> Self
    where
        F: Fn(Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |call| Box::pin(handler(call)));
        Self::spawn_serving("upstream", Behaviour::Answer, Some(handler), serving).await
    }

    async fn spawn(name: &str, default: Behaviour, handler: Option<Handler>) -> Self {
        Self::spawn_serving(name, default, handler, Serving::Http1).await
    }

    async fn spawn_serving(
        name: &str,
        default: Behaviour,
        handler: Option<Handler>,
        serving: Serving,
    ) -> Self {
        let (arrivals, _) = watch::channel(0);
        let (gate, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
            seen: Mutex::new(Vec::new()),
            arrivals,
            gate,
        });
        let state = Arc::clone(&shared);
        let app = axum::Router::new().fallback(move |request: Request| {
            let shared = Arc::clone(&state);
            let handler = handler.clone();
            async move {
                let call = receive(&shared, request).await;
                match handler {
                    Some(handler) => handler(call).await,
                    None => scripted(&shared, call).await,
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (url, task) = match serving {
            Serving::Http1 => {
                let app = app.into_make_service_with_connect_info::<SocketAddr>();
                let task = tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                });
                (format!("http://{address}"), task)
            }
            Serving::H2c => (
                format!("http://{address}"),
                tokio::spawn(tls::accept(listener, app, None, None)),
            ),
            Serving::Tls(alpn) => (
                format!("https://{address}"),
                tokio::spawn(tls::accept(listener, app, Some(tls::acceptor(alpn)), None)),
            ),
            Serving::TlsWithStreams(alpn, streams) => (
                format!("https://{address}"),
                tokio::spawn(tls::accept(
                    listener,
                    app,
                    Some(tls::acceptor(alpn)),
                    Some(streams),
                )),
            ),
        };
        Upstream {
            shared,
            url,
            _task: Arc::new(AbortOnDrop(task)),
        }
    }

    /// `http://127.0.0.1:<port>` (`https://` for [`Serving::Tls`]).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `http://127.0.0.1:<port>/v1`: the `api_base` of OpenAI-style deployments served here.
    pub fn base(&self) -> String {
        format!("{}/v1", self.url)
    }

    /// What the next requests get, in order, before the default applies again.
    pub fn script(&self, behaviours: impl IntoIterator<Item = Behaviour>) {
        self.shared.script.lock().unwrap().extend(behaviours);
    }

    /// What requests get once the script is used up.
    pub fn set_default(&self, behaviour: Behaviour) {
        *self.shared.default.lock().unwrap() = behaviour;
    }

    /// Lets every held request (and every later one) through.
    pub fn release(&self) {
        self.shared.gate.send_replace(true);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The one request received; fails if there were more or none.
    #[track_caller]
    pub fn only_request(&self) -> Seen {
        let requests = self.requests();
        assert_eq!(
            requests.len(),
            1,
            "expected exactly one request: {requests:#?}"
        );
        requests.into_iter().next().unwrap()
    }

    /// Requests received so far.
    pub fn count(&self) -> usize {
        *self.shared.arrivals.borrow()
    }

    /// Waits until at least `n` requests have arrived; fails after [`PATIENCE`].
    pub async fn wait_for_requests(&self, n: usize) {
        let mut arrivals = self.shared.arrivals.subscribe();
        let arrived = tokio::time::timeout(PATIENCE, arrivals.wait_for(|count| *count >= n)).await;
        assert!(
            arrived.is_ok(),
            "upstream `{}` got {} request(s), expected {n}",
            self.shared.name,
            self.count()
        );
    }

    /// Waits until the requests received so far satisfy `check`; fails after [`PATIENCE`] with
    /// `what` in the message.
    pub async fn wait_until(&self, what: &str, check: impl Fn(&[Seen]) -> bool) {
        let mut arrivals = self.shared.arrivals.subscribe();
        let arrived = tokio::time::timeout(PATIENCE, async {
            while !check(&self.requests()) {
                if arrivals.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        assert!(
            arrived.is_ok() && check(&self.requests()),
            "upstream `{}` never saw {what}: {:#?}",
            self.shared.name,
            self.requests()
        );
    }
}

/// Reads and records one request.
async fn receive(shared: &Shared, request: Request) -> Call {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        version: format!("{:?}", parts.version),
        peer: parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|info| info.0),
        headers: parts.headers,
    };
    let number = {
        let mut all = shared.seen.lock().unwrap();
        all.push(seen.clone());
        all.len()
    };
    shared.arrivals.send_modify(|count| *count += 1);
    Call {
        seen,
        number,
        gate: shared.gate.subscribe(),
    }
}

/// The scripted upstream: the next behaviour of the script, or the default.
async fn scripted(shared: &Shared, mut call: Call) -> Response {
    let behaviour = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| shared.default.lock().unwrap().clone());
    let name = &shared.name;
    // Responses API paths get Responses-shaped answers; everything else a chat completion.
    let answer = |name: &str, number: usize, seen: &Seen| {
        crate::responses::answer(name, number, seen)
            .or_else(|| crate::anthropic::answer(name, number, seen))
            .unwrap_or_else(|| answer(name, number, &seen.body))
    };
    match behaviour {
        Behaviour::Answer => answer(name, call.number, &call.seen),
        Behaviour::Hold => {
            call.released().await;
            answer(name, call.number, &call.seen)
        }
        Behaviour::Delay(delay) => {
            tokio::time::sleep(delay).await;
            answer(name, call.number, &call.seen)
        }
        Behaviour::Fail {
            status,
            code,
            message,
            headers,
        } => {
            let error = json!({"error": {
                "message": message, "type": "invalid_request_error", "param": null, "code": code,
            }});
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            if crate::anthropic::is_messages(&call.seen) {
                return crate::anthropic::error(status, &message, &headers);
            }
            json_with_headers(status, &headers, error)
        }
        Behaviour::Reset if crate::anthropic::is_messages(&call.seen) && call.seen.is_stream() => {
            crate::anthropic::reset(name, call.number, &call.seen)
        }
        Behaviour::Reset => reset(name, call.number, call.seen.is_stream()),
        Behaviour::StreamError { kind, message } => {
            if crate::anthropic::is_messages(&call.seen) {
                let answer = crate::anthropic::message(name, call.number, &call.seen);
                return crate::anthropic::stream(&answer, Some((kind, &message)));
            }
            let parts = [
                event(&chunk(
                    name,
                    call.number,
                    json!({"role": "assistant", "content": ""}),
                    None,
                )),
                event(&json!({"error": {"message": message, "type": kind}})),
            ];
            sse(parts.into_iter().map(Bytes::from).collect(), Ending::Close)
        }
    }
}

fn usage() -> Value {
    json!({"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8})
}

fn chunk(name: &str, number: usize, delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": format!("chatcmpl-{name}-{number}"), "object": "chat.completion.chunk",
        "created": 1_700_000_000, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": null,
    })
}

fn event(event: &Value) -> String {
    format!("data: {event}\n\n")
}

/// The scripted answer: `hello from <name>`, as a completion or, when the request asks for it, as
/// server-sent events (with a usage chunk when `stream_options.include_usage` is set).
fn answer(name: &str, number: usize, request: &Value) -> Response {
    let text = format!("hello from {name}");
    let stream = request.get("stream").and_then(Value::as_bool) == Some(true);
    if !stream {
        let body = json!({
            "id": format!("chatcmpl-{name}-{number}"), "object": "chat.completion",
            "created": 1_700_000_000, "model": request.get("model").cloned().unwrap_or(Value::Null),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": usage(),
        });
        return json(200, body);
    }
    let include_usage = request
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let mut events = vec![
        event(&chunk(
            name,
            number,
            json!({"role": "assistant", "content": ""}),
            None,
        )),
        event(&chunk(name, number, json!({"content": "hello "}), None)),
        event(&chunk(
            name,
            number,
            json!({"content": format!("from {name}")}),
            None,
        )),
        event(&chunk(name, number, json!({}), Some("stop"))),
    ];
    if include_usage {
        events.push(event(&json!({
            "id": format!("chatcmpl-{name}-{number}"), "object": "chat.completion.chunk",
            "created": 1_700_000_000, "model": "gpt-4o-mini", "choices": [], "usage": usage(),
        })));
    }
    events.push("data: [DONE]\n\n".to_owned());
    let parts: Vec<Result<Bytes, std::io::Error>> = events
        .into_iter()
        .map(|event| Ok(Bytes::from(event)))
        .collect();
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(futures::stream::iter(parts)))
        .unwrap()
}

/// The start of an answer, then a broken connection.
fn reset(name: &str, number: usize, stream: bool) -> Response {
    let first = if stream {
        event(&chunk(
            name,
            number,
            json!({"role": "assistant", "content": ""}),
            None,
        ))
    } else {
        "{\"id\": \"chatcmpl-".to_owned()
    };
    let parts: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(first)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset by the test upstream",
        )),
    ];
    let content_type = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    Response::builder()
        .status(200)
        .header("content-type", content_type)
        .body(Body::from_stream(futures::stream::iter(parts)))
        .unwrap()
}

/// A JSON answer.
pub fn json(status: u16, body: Value) -> Response {
    json_with_headers(status, &[], body)
}

/// A JSON answer with extra headers.
pub fn json_with_headers(status: u16, headers: &[(&str, &str)], body: Value) -> Response {
    raw(status, "application/json", headers, body.to_string())
}

/// Any answer.
pub fn raw(
    status: u16,
    content_type: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Response {
    let mut response = (StatusCode::from_u16(status).unwrap(), body.into()).into_response();
    let map = response.headers_mut();
    map.insert("content-type", HeaderValue::from_str(content_type).unwrap());
    for (name, value) in headers {
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    response
}

/// How a streamed body ends after its pieces.
#[derive(Debug, Clone)]
pub enum Ending {
    /// The body ends normally.
    Close,
    /// The server aborts the connection (the body stream fails) once notified. The client must have
    /// read what it expects first: an abort drops what the server has not flushed yet.
    AbortWhen(Arc<Notify>),
    /// The server sends nothing more and keeps the connection open.
    Stall,
}

/// A `text/event-stream` answer sent as `pieces`, each its own write, then `ending`.
pub fn sse(pieces: Vec<Bytes>, ending: Ending) -> Response {
    let body = stream::iter(pieces).then(|piece| async move {
        // Let the piece go out on its own before the next one is queued.
        tokio::task::yield_now().await;
        Ok::<_, std::io::Error>(piece)
    });
    let tail: BoxStream<'static, Result<Bytes, std::io::Error>> = match ending {
        Ending::Close => stream::empty().boxed(),
        Ending::AbortWhen(abort) => stream::once(async move {
            abort.notified().await;
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "upstream went away",
            ))
        })
        .boxed(),
        Ending::Stall => stream::pending().boxed(),
    };
    let mut response = Body::from_stream(body.chain(tail)).into_response();
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    response
}

/// `text` cut into pieces of `size` bytes (cuts may fall inside a line or a UTF-8 character).
pub fn chop(text: &str, size: usize) -> Vec<Bytes> {
    text.as_bytes()
        .chunks(size)
        .map(Bytes::copy_from_slice)
        .collect()
}

/// `data: <json>\n\n` for each event.
pub fn events(events: &[&str]) -> String {
    events
        .iter()
        .map(|event| format!("data: {event}\n\n"))
        .collect()
}

/// The TLS and h2c side of the upstream: the test certificate authority and the accept loop.
pub mod tls {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    /// The test certificate authority (PEM): trust it to reach a [`super::Serving::Tls`] upstream.
    /// Its certificate and the server's are valid from 2000 to 2100, for `127.0.0.1` and
    /// `localhost`; the private key is a test fixture, never a secret.
    pub const CA_PEM: &str = include_str!("../tls/ca.pem");
    const SERVER_PEM: &str = include_str!("../tls/server.pem");
    const SERVER_KEY_PEM: &str = include_str!("../tls/server-key.pem");

    pub(super) fn acceptor(alpn: Vec<&'static [u8]>) -> TlsAcceptor {
        let certs = CertificateDer::pem_slice_iter(SERVER_PEM.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(SERVER_KEY_PEM.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = alpn.into_iter().map(<[u8]>::to_vec).collect();
        TlsAcceptor::from(Arc::new(config))
    }

    /// Serves `app` on every connection, over TLS when `tls` is given, speaking whichever of
    /// HTTP/1.1 and HTTP/2 the client speaks (over TLS: what ALPN chose), with at most `streams`
    /// concurrent streams per HTTP/2 connection when given.
    pub(super) async fn accept(
        listener: TcpListener,
        app: axum::Router,
        tls: Option<TlsAcceptor>,
        streams: Option<u32>,
    ) {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let app = app.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                // What axum's `ConnectInfo` reads: the connection a request came on.
                let service =
                    TowerToHyperService::new(
                        app.layer(axum::Extension(ConnectInfo::<SocketAddr>(peer))),
                    );
                let mut builder = auto::Builder::new(TokioExecutor::new());
                if let Some(streams) = streams {
                    builder.http2().max_concurrent_streams(streams);
                }
                let _ = match tls {
                    Some(tls) => match tls.accept(stream).await {
                        Ok(stream) => {
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                        }
                        Err(_) => return,
                    },
                    None => {
                        builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                };
            });
        }
    }
}
