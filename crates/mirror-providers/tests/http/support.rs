//! An in-process upstream on `127.0.0.1:0` that records every request and answers as the test says.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, BoxStream, StreamExt};
use mirror_core::{ChatRequest, DeploymentParams, ModelRef, SecretString};
use mirror_providers::HttpClient;
use serde_json::Value;
use tokio::sync::Notify;

/// The key every test deployment uses; no error may ever show it.
pub(crate) const KEY: &str = "sk-test-SECRET-0123456789";

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The request line, the headers an adapter sets, and the JSON body, for snapshots.
    pub(crate) fn render(&self) -> String {
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

type Handler =
    Arc<dyn Fn(Recorded) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

/// The running upstream; stops accepting when dropped.
pub(crate) struct Upstream {
    /// `http://127.0.0.1:<port>`.
    pub(crate) base: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Starts a server that answers every request with `handler`.
    pub(crate) async fn start<F, Fut>(handler: F) -> Upstream
    where
        F: Fn(Recorded) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |request| Box::pin(handler(request)));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        let app = axum::Router::new().fallback(move |request: Request| {
            let handler = Arc::clone(&handler);
            let log = Arc::clone(&log);
            async move {
                let (parts, body) = request.into_parts();
                let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                let recorded = Recorded {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().map(str::to_owned),
                    headers: parts.headers,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                };
                log.lock().unwrap().push(recorded.clone());
                handler(recorded).await
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Upstream {
            base,
            requests,
            task,
        }
    }

    /// Every request received so far.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The one request received; fails if there were more or none.
    #[track_caller]
    pub(crate) fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(
            requests.len(),
            1,
            "expected exactly one request: {requests:#?}"
        );
        requests.into_iter().next().unwrap()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A JSON answer.
pub(crate) fn json(status: u16, body: Value) -> Response {
    json_with_headers(status, &[], body)
}

/// A JSON answer with extra headers.
pub(crate) fn json_with_headers(status: u16, headers: &[(&str, &str)], body: Value) -> Response {
    raw(status, "application/json", headers, body.to_string())
}

/// Any answer.
pub(crate) fn raw(
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
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    response
}

/// How a streamed body ends after its pieces.
#[derive(Debug, Clone)]
pub(crate) enum Ending {
    /// The body ends normally.
    Close,
    /// The server aborts the connection (the body stream fails) once notified. The client must have
    /// read what it expects first: an abort drops what the server has not flushed yet.
    AbortWhen(Arc<Notify>),
    /// The server sends nothing more and keeps the connection open.
    Stall,
}

/// A `text/event-stream` answer sent as `pieces`, each its own write, then `ending`.
pub(crate) fn sse(pieces: Vec<Bytes>, ending: Ending) -> Response {
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
pub(crate) fn chop(text: &str, size: usize) -> Vec<Bytes> {
    text.as_bytes()
        .chunks(size)
        .map(Bytes::copy_from_slice)
        .collect()
}

/// `data: <json>\n\n` for each event.
pub(crate) fn events(events: &[&str]) -> String {
    events
        .iter()
        .map(|event| format!("data: {event}\n\n"))
        .collect()
}

/// The client on each transport, whatever the environment says: the direct one `HttpClient::new`
/// uses without proxy variables, and reqwest (here without a proxy), which it uses with them.
pub(crate) fn clients() -> [(&'static str, HttpClient); 2] {
    [
        ("direct", HttpClient::direct().unwrap()),
        ("reqwest", HttpClient::reqwest(None).unwrap()),
    ]
}

/// A deployment of `model` at `base` with the test key.
pub(crate) fn deployment(model: &str, base: &str) -> DeploymentParams {
    let mut params = DeploymentParams::new(ModelRef::parse(model).unwrap());
    params.api_base = Some(base.to_owned());
    params.api_key = Some(SecretString::new(KEY));
    params
}

/// A request from JSON.
pub(crate) fn request(body: Value) -> ChatRequest {
    serde_json::from_value(body).unwrap()
}

/// A one-message request to the `gpt-group` model group.
pub(crate) fn hello() -> ChatRequest {
    request(serde_json::json!({
        "model": "gpt-group",
        "messages": [{"role": "user", "content": "Hello"}],
    }))
}

/// Fails if the key shows anywhere in the error: its `Display`, its `Debug`, or its sources.
#[track_caller]
pub(crate) fn assert_no_secret(err: &mirror_providers::ProviderError) {
    let mut seen = vec![err.to_string(), format!("{err:?}")];
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        seen.push(cause.to_string());
        seen.push(format!("{cause:?}"));
        source = cause.source();
    }
    for text in seen {
        assert!(!text.contains(KEY), "the key leaked: {text}");
        assert!(!text.contains("SECRET"), "part of the key leaked: {text}");
    }
}

/// A chat completion as OpenAI sends it.
pub(crate) fn completion(text: &str) -> Value {
    serde_json::json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
        "system_fingerprint": "fp_1"
    })
}

/// Collects a stream: the chunks, then the error that ended it, if any.
pub(crate) async fn collect(
    mut stream: mirror_providers::ChunkStream,
) -> (
    Vec<mirror_core::ChatChunk>,
    Option<mirror_providers::ProviderError>,
) {
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => chunks.push(chunk),
            Err(err) => {
                assert!(
                    stream.next().await.is_none(),
                    "an error must end the stream"
                );
                return (chunks, Some(err));
            }
        }
    }
    (chunks, None)
}
