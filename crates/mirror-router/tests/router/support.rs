//! Test support: an in-process OpenAI-compatible upstream whose behaviour each test controls, and
//! helpers to build routers against it and to wait for records and counters.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mirror_core::{CallRecord, ChatMessage, ChatRequest, StreamOptions};
use mirror_providers::{HttpClient, Mock, OpenAi, Provider};
use mirror_router::{MirrorSnapshot, ModelDeployment, Router, RouterBuilder};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch};

/// The API key every HTTP deployment uses; it must never show up in a record or an error.
pub(crate) const SECRET_KEY: &str = "sk-test-very-secret-key-0123456789";

/// The longest any test waits for an event that should happen (generous: machines are shared).
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// What the upstream does with one request.
#[derive(Debug, Clone)]
pub(crate) enum Behaviour {
    /// Answers at once.
    Answer,
    /// Waits until the test releases the gate, then answers.
    Hold,
    /// Waits this long, then answers (for latency-based routing only).
    Delay(Duration),
    /// Answers with an error status, an OpenAI-shaped error body and extra headers.
    Fail {
        status: u16,
        code: Option<&'static str>,
        message: String,
        headers: Vec<(&'static str, String)>,
    },
    /// Starts the response, then breaks the connection.
    Reset,
}

impl Behaviour {
    /// A 500 that asks for a quick retry, so tests do not wait for the router's backoff.
    pub(crate) fn server_error() -> Self {
        Behaviour::Fail {
            status: 500,
            code: Some("server_error"),
            message: "the server had an error".to_owned(),
            headers: vec![("retry-after-ms", "10".to_owned())],
        }
    }

    /// A 429 with `retry-after-ms`.
    pub(crate) fn rate_limited(retry_after_ms: u64) -> Self {
        Behaviour::Fail {
            status: 429,
            code: Some("rate_limit_exceeded"),
            message: "Rate limit reached".to_owned(),
            headers: vec![("retry-after-ms", retry_after_ms.to_string())],
        }
    }

    /// A 400 with the given code.
    pub(crate) fn bad_request(code: &'static str, message: &str) -> Self {
        Behaviour::Fail {
            status: 400,
            code: Some(code),
            message: message.to_owned(),
            headers: Vec::new(),
        }
    }
}

/// One request the upstream received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) path: String,
    pub(crate) body: Value,
    pub(crate) authorization: Option<String>,
}

impl Seen {
    pub(crate) fn is_stream(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool) == Some(true)
    }
}

struct Shared {
    name: String,
    script: Mutex<VecDeque<Behaviour>>,
    default: Mutex<Behaviour>,
    seen: Mutex<Vec<Seen>>,
    arrivals: watch::Sender<usize>,
    gate: watch::Sender<bool>,
}

/// An OpenAI-compatible server on `127.0.0.1:0`.
#[derive(Clone)]
pub(crate) struct Upstream {
    shared: Arc<Shared>,
    base: String,
}

impl Upstream {
    /// Starts a server that answers every request (until told otherwise).
    pub(crate) async fn start(name: &str) -> Self {
        Self::with_default(name, Behaviour::Answer).await
    }

    /// Starts a server that holds every request until [`Upstream::release`].
    pub(crate) async fn held(name: &str) -> Self {
        Self::with_default(name, Behaviour::Hold).await
    }

    pub(crate) async fn with_default(name: &str, default: Behaviour) -> Self {
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
        let app = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(chat))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Upstream {
            shared,
            base: format!("http://{address}/v1"),
        }
    }

    /// The `api_base` of deployments served here.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// What the next requests get, in order, before the default applies again.
    pub(crate) fn script(&self, behaviours: impl IntoIterator<Item = Behaviour>) {
        self.shared.script.lock().unwrap().extend(behaviours);
    }

    /// What requests get once the script is used up.
    pub(crate) fn set_default(&self, behaviour: Behaviour) {
        *self.shared.default.lock().unwrap() = behaviour;
    }

    /// Lets every held request (and every later one) through.
    pub(crate) fn release(&self) {
        self.shared.gate.send_replace(true);
    }

    /// Requests received so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub(crate) fn count(&self) -> usize {
        *self.shared.arrivals.borrow()
    }

    /// Waits until at least `n` requests have arrived.
    pub(crate) async fn wait_for_requests(&self, n: usize) {
        let mut arrivals = self.shared.arrivals.subscribe();
        let arrived = tokio::time::timeout(PATIENCE, arrivals.wait_for(|count| *count >= n)).await;
        assert!(
            arrived.is_ok(),
            "upstream `{}` got {} request(s), expected {n}",
            self.shared.name,
            self.count()
        );
    }
}

async fn chat(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let behaviour = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| shared.default.lock().unwrap().clone());
    let seen = Seen {
        path: "/v1/chat/completions".to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        body,
    };
    let body = seen.body.clone();
    let number = {
        let mut all = shared.seen.lock().unwrap();
        all.push(seen);
        all.len()
    };
    shared.arrivals.send_modify(|count| *count += 1);
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    match behaviour {
        Behaviour::Answer => answer(&shared.name, number, &body, stream),
        Behaviour::Hold => {
            let mut gate = shared.gate.subscribe();
            let _ = gate.wait_for(|open| *open).await;
            answer(&shared.name, number, &body, stream)
        }
        Behaviour::Delay(delay) => {
            tokio::time::sleep(delay).await;
            answer(&shared.name, number, &body, stream)
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
            let mut response = (StatusCode::from_u16(status).unwrap(), Json(error)).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        Behaviour::Reset => {
            let first = if stream {
                sse(&chunk(
                    &shared.name,
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

fn sse(event: &Value) -> String {
    format!("data: {event}\n\n")
}

fn answer(name: &str, number: usize, request: &Value, stream: bool) -> Response {
    let text = format!("hello from {name}");
    if !stream {
        let body = json!({
            "id": format!("chatcmpl-{name}-{number}"), "object": "chat.completion",
            "created": 1_700_000_000, "model": request.get("model").cloned().unwrap_or(Value::Null),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": usage(),
        });
        return Json(body).into_response();
    }
    let include_usage = request
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let mut events = vec![
        sse(&chunk(
            name,
            number,
            json!({"role": "assistant", "content": ""}),
            None,
        )),
        sse(&chunk(name, number, json!({"content": "hello "}), None)),
        sse(&chunk(
            name,
            number,
            json!({"content": format!("from {name}")}),
            None,
        )),
        sse(&chunk(name, number, json!({}), Some("stop"))),
    ];
    if include_usage {
        events.push(sse(&json!({
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

/// The real OpenAI adapter on a fresh client.
pub(crate) fn openai() -> Arc<dyn Provider> {
    Arc::new(OpenAi::new(HttpClient::new().unwrap()))
}

/// The in-process mock adapter.
pub(crate) fn mock() -> Arc<dyn Provider> {
    Arc::new(Mock::new())
}

/// A deployment of group `group` served by `upstream`, with id `id`.
pub(crate) fn http_deployment(group: &str, id: &str, upstream: &Upstream) -> ModelDeployment {
    ModelDeployment::new(group, "openai/gpt-4o-mini")
        .unwrap()
        .api_base(upstream.base())
        .api_key(SECRET_KEY)
        .id(id)
}

/// A mock deployment of group `group` with id `id`.
pub(crate) fn mock_deployment(group: &str, id: &str) -> ModelDeployment {
    ModelDeployment::new(group, "mock/echo")
        .unwrap()
        .id(id)
        .mock_response("mocked")
}

/// Sets per-deployment router retries.
pub(crate) fn with_retries(mut deployment: ModelDeployment, retries: u32) -> ModelDeployment {
    deployment.litellm_params.num_retries = Some(retries);
    deployment
}

/// A builder with both providers registered and records going to the returned receiver.
pub(crate) fn builder() -> (RouterBuilder, mpsc::UnboundedReceiver<CallRecord>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let builder = Router::builder()
        .provider(openai())
        .provider(mock())
        .records(sender);
    (builder, receiver)
}

/// A one-message chat request to `model`.
pub(crate) fn request(model: &str) -> ChatRequest {
    ChatRequest::new(model, vec![ChatMessage::user("hi there")])
}

/// A streamed request that asks for the usage chunk.
pub(crate) fn stream_request(model: &str) -> ChatRequest {
    let mut request = request(model);
    request.stream = Some(true);
    request.stream_options = Some(StreamOptions {
        include_usage: Some(true),
        extra: Map::new(),
    });
    request
}

/// A request with these metadata entries.
pub(crate) fn with_metadata(mut request: ChatRequest, entries: Value) -> ChatRequest {
    let Value::Object(map) = entries else {
        panic!("metadata must be an object")
    };
    request.metadata = Some(map);
    request
}

/// The next record, or a failure after [`PATIENCE`].
pub(crate) async fn next_record(records: &mut mpsc::UnboundedReceiver<CallRecord>) -> CallRecord {
    tokio::time::timeout(PATIENCE, records.recv())
        .await
        .expect("no record arrived in time")
        .expect("record channel closed")
}

/// Records until one matches `predicate`; returns it and the ones before it.
pub(crate) async fn record_where(
    records: &mut mpsc::UnboundedReceiver<CallRecord>,
    predicate: impl Fn(&CallRecord) -> bool,
) -> (CallRecord, Vec<CallRecord>) {
    let mut before = Vec::new();
    loop {
        let record = next_record(records).await;
        if predicate(&record) {
            return (record, before);
        }
        before.push(record);
    }
}

/// The next `n` records, in arrival order (a fast shadow may be recorded before its primary).
pub(crate) async fn take_records(
    records: &mut mpsc::UnboundedReceiver<CallRecord>,
    n: usize,
) -> Vec<CallRecord> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(next_record(records).await);
    }
    all
}

/// Every record already delivered, without waiting.
pub(crate) fn drain(records: &mut mpsc::UnboundedReceiver<CallRecord>) -> Vec<CallRecord> {
    let mut all = Vec::new();
    while let Ok(record) = records.try_recv() {
        all.push(record);
    }
    all
}

/// Waits (generously) until no silent copy is in flight, then asserts the accounting invariant.
pub(crate) async fn settled(router: &Router) -> MirrorSnapshot {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let snapshot = router.mirror_stats();
        if snapshot.in_flight() == 0 {
            assert!(snapshot.is_balanced(), "unbalanced: {snapshot:?}");
            return snapshot;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "silent copies still in flight: {snapshot:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `check` holds for the mirror counters.
pub(crate) async fn wait_for_stats(router: &Router, check: impl Fn(&MirrorSnapshot) -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let snapshot = router.mirror_stats();
        if check(&snapshot) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "counters never got there: {snapshot:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts that no secret reached a record.
#[track_caller]
pub(crate) fn assert_no_secret(record: &CallRecord) {
    let text = serde_json::to_string(record).unwrap();
    assert!(!text.contains(SECRET_KEY), "secret in record: {text}");
}
