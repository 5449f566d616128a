//! `mirror mock-upstream`: a fast OpenAI- and Anthropic-shaped upstream for benchmarks and manual
//! testing.
//!
//! It answers `POST /v1/chat/completions` (and `/chat/completions`) with a fixed completion, and
//! `POST /v1/responses` (and `/responses`) with a fixed Responses object, `POST /v1/messages` with a
//! fixed Anthropic message, or any of them with server-sent events when the body asks for
//! `"stream": true` (chat chunks, Responses events or Anthropic's events), after a configurable
//! latency. A
//! configurable fraction of calls fails with a 500, and another fraction is cut off mid-response
//! (the connection is closed after the status line, as a crashed or reset upstream does).
//! `GET /stats` returns how many calls it answered, failed and reset. It speaks HTTP/1.1 and HTTP/2
//! with prior knowledge (h2c) on the same port, so a deployment with `http2: always` reaches it
//! over one multiplexed connection (up to 100,000 streams at once, not hyper's default 200).
//!
//! It is deliberately not a model: it never parses the request beyond looking for the stream flag,
//! and every answer is serialised once at start, so that it costs as little CPU as possible next to
//! the gateway it is measuring.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

/// `mirror mock-upstream`.
#[derive(Debug, Clone, clap::Args)]
pub struct MockUpstreamArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port to listen on; 0 picks a free one (the address is printed on stdout).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Delay before the answer (for streams, before the first chunk), in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Fraction of calls answered with a 500.
    #[arg(long, default_value_t = 0.0)]
    pub failure_rate: f64,
    /// Fraction of calls whose connection is cut off after the status line.
    #[arg(long, default_value_t = 0.0)]
    pub reset_rate: f64,
    /// Content chunks of a streamed answer (a final chunk with `finish_reason` follows).
    #[arg(long, default_value_t = 8)]
    pub stream_chunks: usize,
    /// Delay between streamed chunks, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub chunk_interval_ms: u64,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

impl Default for MockUpstreamArgs {
    fn default() -> Self {
        MockUpstreamArgs {
            host: "127.0.0.1".to_owned(),
            port: 0,
            latency_ms: 0,
            failure_rate: 0.0,
            reset_rate: 0.0,
            stream_chunks: 8,
            chunk_interval_ms: 0,
            threads: 1,
        }
    }
}

/// What the mock has done so far.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    reset: AtomicU64,
    streams: AtomicU64,
}

struct MockState {
    latency: Duration,
    chunk_interval: Duration,
    failure_rate: f64,
    reset_rate: f64,
    completion: Bytes,
    chunks: Vec<Bytes>,
    usage_chunk: Bytes,
    /// A Responses API object, and its events (`response.created`, deltas, `response.completed`).
    response: Bytes,
    response_events: Vec<Bytes>,
    error: Bytes,
    /// The Messages API answer and events (`event:` and `data:` lines).
    message: Bytes,
    message_events: Vec<Bytes>,
    counters: Counters,
}

/// Which API a call came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Chat,
    Responses,
    Messages,
}

/// A Responses object and its stream: `response.created`, `response.output_text.delta` per chunk
/// (`response.in_progress` and item events left out: relays pass any event through alike), then
/// `response.completed` with the usage.
fn responses_answer(chunks: usize) -> (Bytes, Vec<Bytes>) {
    let text = "This is a mock answer from the benchmark upstream.";
    let object = |status: &str, text: Option<&str>, output_tokens: usize| {
        let output = text.map_or_else(Vec::new, |text| {
            vec![serde_json::json!({
                "type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            })]
        });
        serde_json::json!({
            "id": "resp_mock", "object": "response", "created_at": CREATED, "status": status,
            "model": MODEL, "output": output,
            "usage": {"input_tokens": 24, "output_tokens": output_tokens, "total_tokens": 24 + output_tokens},
        })
    };
    let event = |name: &str, mut data: serde_json::Value, sequence: usize| {
        data["type"] = serde_json::Value::from(name);
        data["sequence_number"] = serde_json::Value::from(sequence);
        Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
    };
    let mut events = Vec::with_capacity(chunks + 2);
    events.push(event(
        "response.created",
        serde_json::json!({"response": object("in_progress", None, 0)}),
        0,
    ));
    for index in 0..chunks {
        events.push(event(
            "response.output_text.delta",
            serde_json::json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0, "delta": "token "}),
            index + 1,
        ));
    }
    let streamed = "token ".repeat(chunks);
    events.push(event(
        "response.completed",
        serde_json::json!({"response": object("completed", Some(&streamed), chunks)}),
        chunks + 1,
    ));
    (
        Bytes::from(object("completed", Some(text), 10).to_string()),
        events,
    )
}

/// The Anthropic message and its events: `message_start`, one text block of `chunks` deltas,
/// `message_delta` with the usage, `message_stop`.
fn anthropic_answers(chunks: usize) -> (Bytes, Vec<Bytes>) {
    let text = "token ".repeat(chunks);
    let usage = serde_json::json!({"input_tokens": 24, "output_tokens": chunks});
    let message = serde_json::json!({
        "id": "msg_mock", "type": "message", "role": "assistant", "model": MODEL,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null, "usage": usage,
    });
    let event = |name: &str, data: serde_json::Value| {
        Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
    };
    let mut start = message.clone();
    start["content"] = serde_json::json!([]);
    start["stop_reason"] = serde_json::Value::Null;
    let mut events = vec![
        event(
            "message_start",
            serde_json::json!({"type": "message_start", "message": start}),
        ),
        event(
            "content_block_start",
            serde_json::json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for _ in 0..chunks {
        events.push(event(
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "token "}}),
        ));
    }
    events.push(event(
        "content_block_stop",
        serde_json::json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event(
        "message_delta",
        serde_json::json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": chunks}}),
    ));
    events.push(event(
        "message_stop",
        serde_json::json!({"type": "message_stop"}),
    ));
    (Bytes::from(message.to_string()), events)
}

const MODEL: &str = "mock-upstream";
const CREATED: u64 = 1_700_000_000;

impl MockState {
    fn new(args: &MockUpstreamArgs) -> Self {
        let completion = serde_json::json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "This is a mock answer from the benchmark upstream."},
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": 24, "completion_tokens": 10, "total_tokens": 34},
        });
        let chunk = |delta: serde_json::Value, finish: Option<&str>| {
            let chunk = serde_json::json!({
                "id": "chatcmpl-mock",
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            });
            Bytes::from(format!("data: {chunk}\n\n"))
        };
        let mut chunks = Vec::with_capacity(args.stream_chunks + 1);
        for index in 0..args.stream_chunks {
            let delta = if index == 0 {
                serde_json::json!({"role": "assistant", "content": "token "})
            } else {
                serde_json::json!({"content": "token "})
            };
            chunks.push(chunk(delta, None));
        }
        chunks.push(chunk(serde_json::json!({}), Some("stop")));
        let usage = serde_json::json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "choices": [],
            "usage": {"prompt_tokens": 24, "completion_tokens": args.stream_chunks, "total_tokens": 24 + args.stream_chunks},
        });
        let error = serde_json::json!({
            "error": {"message": "mock failure (--failure-rate)", "type": "server_error", "code": null}
        });
        let (response, response_events) = responses_answer(args.stream_chunks);
        let (message, message_events) = anthropic_answers(args.stream_chunks);
        MockState {
            response,
            response_events,
            message,
            message_events,
            latency: Duration::from_millis(args.latency_ms),
            chunk_interval: Duration::from_millis(args.chunk_interval_ms),
            failure_rate: args.failure_rate.clamp(0.0, 1.0),
            reset_rate: args.reset_rate.clamp(0.0, 1.0),
            completion: Bytes::from(completion.to_string()),
            chunks,
            usage_chunk: Bytes::from(format!("data: {usage}\n\n")),
            error: Bytes::from(error.to_string()),
            counters: Counters::default(),
        }
    }
}

/// Binds, prints `mock-upstream listening on http://ADDRESS` on stdout, and serves until the process
/// is stopped. Builds its own runtime with `args.threads` workers.
///
/// # Errors
///
/// When the runtime cannot start or the address cannot be bound.
pub fn run(args: &MockUpstreamArgs) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await?;
        let address = listener.local_addr()?;
        // The benchmark reads this line to learn the port.
        println!("mock-upstream listening on http://{address}");
        serve(listener, args).await
    })
}

/// Serves the mock on `listener` until the process is stopped.
///
/// # Errors
///
/// When accepting fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    args: &MockUpstreamArgs,
) -> std::io::Result<()> {
    let state = Arc::new(MockState::new(args));
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .route("/v1/responses", post(responses))
        .route("/responses", post(responses))
        .route("/v1/messages", post(messages))
        .route("/stats", get(stats))
        .with_state(state);
    let service = hyper_util::service::TowerToHyperService::new(app);
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors and the like: wait and go on, as axum's `serve` does.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Without TCP_NODELAY each streamed chunk after the first waits for the previous one's ACK.
        let _ = tcp.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            // hyper's default of 200 streams per connection would hold a client's further calls
            // in its queue; the mock must take as many as the gateway sends.
            builder.http2().max_concurrent_streams(MAX_STREAMS);
            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}

/// HTTP/2 streams one connection may have open at once.
const MAX_STREAMS: u32 = 100_000;

async fn stats(State(state): State<Arc<MockState>>) -> Response {
    let counters = &state.counters;
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let body = serde_json::json!({
        "requests": load(&counters.requests),
        "ok": load(&counters.ok),
        "failed": load(&counters.failed),
        "reset": load(&counters.reset),
        "streams": load(&counters.streams),
    });
    json(StatusCode::OK, Bytes::from(body.to_string()))
}

fn json(status: StatusCode, body: Bytes) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Whether a JSON body asks for a stream, without parsing it: compact (`"stream":true`) or Python's
/// default separators (`"stream": true`).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

async fn chat(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    answer(state, body, Api::Chat).await
}

async fn responses(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    answer(state, body, Api::Responses).await
}

async fn messages(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    answer(state, body, Api::Messages).await
}

async fn answer(state: Arc<MockState>, body: Bytes, api: Api) -> Response {
    let counters = &state.counters;
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let stream = contains(&body, b"\"stream\":true") || contains(&body, b"\"stream\": true");
    let roll = if state.failure_rate > 0.0 || state.reset_rate > 0.0 {
        fastrand::f64()
    } else {
        1.0
    };
    if !state.latency.is_zero() {
        tokio::time::sleep(state.latency).await;
    }
    if roll < state.failure_rate {
        counters.failed.fetch_add(1, Ordering::Relaxed);
        return json(StatusCode::INTERNAL_SERVER_ERROR, state.error.clone());
    }
    if roll < state.failure_rate + state.reset_rate {
        counters.reset.fetch_add(1, Ordering::Relaxed);
        // A body that fails before its first byte makes hyper close the connection: the client sees
        // a response cut off, as from an upstream that crashed or reset the connection.
        let cut = futures::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "mock reset (--reset-rate)",
            ))
        });
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(cut))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    counters.ok.fetch_add(1, Ordering::Relaxed);
    if !stream {
        let answer = match api {
            Api::Chat => state.completion.clone(),
            Api::Responses => state.response.clone(),
            Api::Messages => state.message.clone(),
        };
        return json(StatusCode::OK, answer);
    }
    counters.streams.fetch_add(1, Ordering::Relaxed);
    match api {
        Api::Responses => {
            return event_stream(relay_events(state, |state| &state.response_events, 1))
        }
        Api::Messages => {
            return event_stream(relay_events(state, |state| &state.message_events, 2))
        }
        Api::Chat => {}
    }
    let with_usage = contains(&body, b"include_usage");
    let state = Arc::clone(&state);
    let events = futures::stream::unfold(0usize, move |index| {
        let state = Arc::clone(&state);
        async move {
            let event = if index < state.chunks.len() {
                if index > 0 && !state.chunk_interval.is_zero() {
                    tokio::time::sleep(state.chunk_interval).await;
                }
                state.chunks[index].clone()
            } else if index == state.chunks.len() && with_usage {
                state.usage_chunk.clone()
            } else if index <= state.chunks.len() + 1 {
                Bytes::from_static(b"data: [DONE]\n\n")
            } else {
                return None;
            };
            // Skip the usage slot when it is not wanted, so `[DONE]` is sent once.
            let next = if index == state.chunks.len() && !with_usage {
                state.chunks.len() + 2
            } else {
                index + 1
            };
            Some((Ok::<Bytes, Infallible>(event), next))
        }
    });
    event_stream(events)
}

/// Prepared events (Responses or Anthropic's), `--chunk-interval-ms` apart after the first
/// `lead` events (the interval sits between deltas, as between a model's tokens); no `[DONE]`.
fn relay_events(
    state: Arc<MockState>,
    events: fn(&MockState) -> &Vec<Bytes>,
    lead: usize,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures::stream::unfold(0usize, move |index| {
        let state = Arc::clone(&state);
        async move {
            let event = events(&state).get(index)?.clone();
            if index > lead && !state.chunk_interval.is_zero() {
                tokio::time::sleep(state.chunk_interval).await;
            }
            Some((Ok::<Bytes, Infallible>(event), index + 1))
        }
    })
}

fn event_stream(
    events: impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(events))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_stream_flag_in_either_spelling() {
        assert!(contains(br#"{"stream":true}"#, b"\"stream\":true"));
        assert!(contains(br#"{"stream": true}"#, b"\"stream\": true"));
        assert!(!contains(br#"{"stream":false}"#, b"\"stream\":true"));
    }

    #[tokio::test]
    async fn answers_a_completion_and_a_stream() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { serve(listener, &MockUpstreamArgs::default()).await });
        let plain = raw_post(address, r#"{"model":"m","messages":[]}"#).await;
        assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
        assert!(plain.contains("\"chat.completion\""), "{plain}");
        let stream = raw_post(address, r#"{"model":"m","stream":true,"messages":[]}"#).await;
        assert!(stream.contains("text/event-stream"), "{stream}");
        assert_eq!(
            stream.matches("chat.completion.chunk").count(),
            9,
            "{stream}"
        );
        assert_eq!(stream.matches("[DONE]").count(), 1, "{stream}");

        let plain = raw_post_to(address, "/v1/responses", r#"{"model":"m","input":"hi"}"#).await;
        assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
        let body = plain.split("\r\n\r\n").nth(1).unwrap();
        let object: mirror::core::ResponsesResponse = serde_json::from_str(body).unwrap();
        assert_eq!(
            object.output_text().as_deref(),
            Some("This is a mock answer from the benchmark upstream.")
        );
        let stream = raw_post_to(
            address,
            "/responses",
            r#"{"model":"m","input":"hi","stream": true}"#,
        )
        .await;
        assert!(stream.contains("text/event-stream"), "{stream}");
        assert_eq!(
            stream.matches("event: response.output_text.delta").count(),
            8,
            "{stream}"
        );
        let last = stream.rsplit("event: ").next().unwrap();
        assert!(last.starts_with("response.completed"), "{stream}");
        assert!(!stream.contains("[DONE]"), "{stream}");
        let message = raw_post_to(
            address,
            "/v1/messages",
            r#"{"model":"m","max_tokens":8,"messages":[]}"#,
        )
        .await;
        assert!(message.contains("\"type\":\"message\""), "{message}");
        let events = raw_post_to(
            address,
            "/v1/messages",
            r#"{"model":"m","max_tokens":8,"stream":true,"messages":[]}"#,
        )
        .await;
        assert_eq!(
            events.matches("event: content_block_delta").count(),
            8,
            "{events}"
        );
        assert!(
            events.contains("event: message_stop\ndata: {\"type\":\"message_stop\"}"),
            "{events}"
        );
    }

    #[tokio::test]
    async fn speaks_h2c_with_prior_knowledge() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { serve(listener, &MockUpstreamArgs::default()).await });
        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .no_proxy()
            .build()
            .unwrap();
        let response = client
            .post(format!("http://{address}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(r#"{"model":"m","messages":[]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("\"chat.completion\""));
    }

    async fn raw_post(address: std::net::SocketAddr, body: &str) -> String {
        raw_post_to(address, "/v1/chat/completions", body).await
    }

    async fn raw_post_to(address: std::net::SocketAddr, path: &str, body: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        socket.read_to_string(&mut out).await.unwrap();
        out
    }
}
