//! The Langfuse sink against an in-process server that decodes what arrives.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use mirror_core::SecretString;
use mirror_logging::{
    JsonlConfig, JsonlSink, LangfuseConfig, LangfuseMode, LangfuseSink, LogWriter, RetryPolicy,
    SinkOptions,
};
use serde_json::{json, Value};
use support::{failure, record, shadow_of, temp_dir, wait_until};

const PUBLIC_KEY: &str = "pk-lf-test";
const SECRET_KEY: &str = "sk-lf-test-secret";

#[derive(Debug, Clone)]
struct Received {
    path: String,
    authorization: Option<String>,
    ingestion_version: Option<String>,
    body: Value,
    bytes: usize,
}

#[derive(Default)]
struct Script {
    /// Statuses answered, in order, before the server starts accepting.
    failures: Mutex<VecDeque<u16>>,
    /// Accepted requests.
    received: Mutex<Vec<Received>>,
    /// Every request, accepted or not.
    requests: Mutex<usize>,
}

struct FakeLangfuse {
    addr: SocketAddr,
    script: Arc<Script>,
}

impl FakeLangfuse {
    async fn start(failures: &[u16]) -> FakeLangfuse {
        let script = Arc::new(Script::default());
        script.failures.lock().unwrap().extend(failures);
        let app = axum::Router::new()
            .fallback(handle)
            .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024))
            .with_state(Arc::clone(&script));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeLangfuse { addr, script }
    }

    fn host(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.script.received.lock().unwrap().clone()
    }

    fn requests(&self) -> usize {
        *self.script.requests.lock().unwrap()
    }
}

async fn handle(
    State(script): State<Arc<Script>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    *script.requests.lock().unwrap() += 1;
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if authorization.as_deref() != Some(expected_authorization().as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "UnauthorizedError", "message": "Invalid credentials"})),
        )
            .into_response();
    }
    if let Some(status) = script.failures.lock().unwrap().pop_front() {
        return (StatusCode::from_u16(status).unwrap(), "try again later").into_response();
    }
    let decoded: Value = serde_json::from_slice(&body).unwrap();
    script.received.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        authorization,
        ingestion_version: headers
            .get("x-langfuse-ingestion-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: decoded.clone(),
        bytes: body.len(),
    });
    if uri.path() == "/api/public/ingestion" {
        // Per-event answers as Langfuse gives them: events of a generation whose model is
        // `reject-me` are refused with 400, the rest succeed.
        let mut successes = Vec::new();
        let mut errors = Vec::new();
        for event in decoded["batch"].as_array().unwrap() {
            let id = event["id"].clone();
            if event["body"]["model"] == "reject-me" {
                errors.push(json!({"id": id, "status": 400, "message": "Invalid request data", "error": "bad model"}));
            } else {
                successes.push(json!({"id": id, "status": 201}));
            }
        }
        return (
            StatusCode::MULTI_STATUS,
            Json(json!({"successes": successes, "errors": errors})),
        )
            .into_response();
    }
    (StatusCode::OK, Json(json!({}))).into_response()
}

struct Json(Value);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.0.to_string(),
        )
            .into_response()
    }
}

fn expected_authorization() -> String {
    format!(
        "Basic {}",
        base64(format!("{PUBLIC_KEY}:{SECRET_KEY}").as_bytes())
    )
}

/// Standard base64, written out so the check does not share code with the sink.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn config(host: &str, mode: LangfuseMode) -> LangfuseConfig {
    LangfuseConfig::new(PUBLIC_KEY, SecretString::new(SECRET_KEY), host).with_mode(mode)
}

fn fast(retry_attempts: u32) -> SinkOptions {
    SinkOptions::default()
        .with_batch_size(15)
        .with_flush_interval(Duration::from_millis(20))
        .with_retry(RetryPolicy::new(
            retry_attempts,
            Duration::from_millis(20),
            Duration::from_millis(100),
            Duration::from_secs(60),
        ))
}

/// Span attributes as a map from key to the decoded value.
fn attributes(span: &Value) -> serde_json::Map<String, Value> {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attribute| {
            let value = &attribute["value"];
            let plain = if let Some(s) = value.get("stringValue") {
                s.clone()
            } else if let Some(b) = value.get("boolValue") {
                b.clone()
            } else if let Some(i) = value.get("intValue") {
                json!(i.as_str().unwrap().parse::<i64>().unwrap())
            } else if let Some(d) = value.get("doubleValue") {
                d.clone()
            } else if let Some(a) = value.get("arrayValue") {
                json!(a["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v["stringValue"].clone())
                    .collect::<Vec<_>>())
            } else {
                panic!("unexpected attribute value {value}")
            };
            (attribute["key"].as_str().unwrap().to_owned(), plain)
        })
        .collect()
}

fn spans(received: &[Received]) -> Vec<Value> {
    received
        .iter()
        .flat_map(|r| {
            r.body["resourceSpans"][0]["scopeSpans"][0]["spans"]
                .as_array()
                .unwrap()
                .clone()
        })
        .collect()
}

#[tokio::test]
async fn otel_spans_carry_langfuse_attributes() {
    let server = FakeLangfuse::start(&[]).await;
    let writer = LogWriter::builder()
        .sink_with(
            LangfuseSink::new(
                config(&server.host(), LangfuseMode::Otel).with_environment("staging"),
            )
            .unwrap(),
            fast(1),
        )
        .start()
        .unwrap();
    let primary = record(1);
    let shadow = shadow_of(&primary);
    let failed = failure(2);
    writer.submit(primary.clone());
    writer.submit(shadow.clone());
    writer.submit(failed.clone());
    let report = writer.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.sinks[0].written, 3, "{report:?}");

    let received = server.received();
    assert!(!received.is_empty());
    for request in &received {
        assert_eq!(request.path, "/api/public/otel/v1/traces");
        assert_eq!(request.ingestion_version.as_deref(), Some("4"));
        assert_eq!(request.authorization, Some(expected_authorization()));
    }
    let spans = spans(&received);
    assert_eq!(spans.len(), 3);
    let find = |name: &str| {
        spans
            .iter()
            .find(|s| attributes(s)["langfuse.observation.metadata.litellm_call_id"] == name)
            .unwrap()
            .clone()
    };
    let primary_span = find(&primary.call_id.to_string());
    let shadow_span = find(&shadow.call_id.to_string());
    let failed_span = find(&failed.call_id.to_string());

    // One OTel trace for the primary and its shadow, derived from the UUID trace id.
    let trace_hex = primary.trace_id.as_str().replace('-', "");
    assert_eq!(primary_span["traceId"], trace_hex.as_str());
    assert_eq!(shadow_span["traceId"], trace_hex.as_str());
    assert_ne!(failed_span["traceId"], trace_hex.as_str());
    for span in [&primary_span, &shadow_span, &failed_span] {
        let id = span["spanId"].as_str().unwrap();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(span.get("parentSpanId").is_none());
    }
    assert_ne!(primary_span["spanId"], shadow_span["spanId"]);
    assert_eq!(primary_span["startTimeUnixNano"], "1737026934796360000");
    assert_eq!(primary_span["endTimeUnixNano"], "1737026935500000000");

    let a = attributes(&primary_span);
    assert_eq!(a["langfuse.observation.type"], "generation");
    assert_eq!(a["langfuse.observation.model.name"], "gpt-4o-mini");
    assert_eq!(a["gen_ai.request.model"], "gpt-4o-mini");
    assert_eq!(a["gen_ai.usage.input_tokens"], 10);
    assert_eq!(a["gen_ai.usage.output_tokens"], 20);
    assert_eq!(a["gen_ai.usage.cost"], 3.5e-5);
    let usage: Value =
        serde_json::from_str(a["langfuse.observation.usage_details"].as_str().unwrap()).unwrap();
    assert_eq!(usage, json!({"input": 10, "output": 20, "total": 30}));
    let cost: Value =
        serde_json::from_str(a["langfuse.observation.cost_details"].as_str().unwrap()).unwrap();
    assert_eq!(cost, json!({"total": 3.5e-5}));
    let input: Value =
        serde_json::from_str(a["langfuse.observation.input"].as_str().unwrap()).unwrap();
    assert_eq!(input["messages"][0]["content"], "question 1");
    let output: Value =
        serde_json::from_str(a["langfuse.observation.output"].as_str().unwrap()).unwrap();
    assert_eq!(output["content"], "answer 1");
    assert_eq!(output["role"], "assistant");
    let completion_start: Value = serde_json::from_str(
        a["langfuse.observation.completion_start_time"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(completion_start, "2025-01-16T11:28:55.100000Z");
    assert_eq!(a["langfuse.observation.level"], "DEFAULT");
    assert_eq!(
        a["langfuse.observation.metadata.is_silent_experiment"],
        false
    );
    assert_eq!(a["langfuse.observation.metadata.spend"], "caller");
    let requester: Value = serde_json::from_str(
        a["langfuse.observation.metadata.requester_metadata"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(requester["team"], "search");
    assert_eq!(a["langfuse.trace.tags"], json!(["prod"]));
    assert_eq!(a["langfuse.trace.name"], "mirror-acompletion");
    assert_eq!(
        a["langfuse.trace.metadata.trace_id"],
        primary.trace_id.as_str()
    );
    assert_eq!(a["user.id"], "user-7");
    assert_eq!(a["langfuse.environment"], "staging");
    assert_eq!(primary_span["status"]["code"], 1);

    let s = attributes(&shadow_span);
    assert_eq!(
        s["langfuse.observation.metadata.is_silent_experiment"],
        true
    );
    assert_eq!(
        s["langfuse.observation.metadata.mirror_of"],
        primary.call_id.to_string()
    );
    assert_eq!(s["langfuse.observation.metadata.spend"], "shadow");
    assert_eq!(
        s["langfuse.trace.tags"],
        json!(["prod", "silent-experiment"])
    );
    assert_eq!(s["langfuse.observation.model.name"], "gpt-4.1-mini");
    assert!(!s.contains_key("langfuse.trace.name"));
    assert_eq!(shadow_span["name"], "mirror-acompletion-silent");

    let f = attributes(&failed_span);
    assert_eq!(f["langfuse.observation.level"], "ERROR");
    assert_eq!(
        f["langfuse.observation.status_message"],
        "upstream answered 503"
    );
    assert_eq!(
        f["langfuse.observation.metadata.error_class"],
        "service_unavailable"
    );
    assert!(!f.contains_key("langfuse.observation.output"));
    assert_eq!(failed_span["status"]["code"], 2);

    // The secret key never appears in what is sent, other than in the auth header.
    for request in &received {
        assert!(!request.body.to_string().contains(SECRET_KEY));
    }
}

#[tokio::test]
async fn server_errors_are_retried_until_recovery_without_loss() {
    let server = FakeLangfuse::start(&[500, 503, 429, 500]).await;
    let writer = LogWriter::builder()
        .sink_with(
            LangfuseSink::new(config(&server.host(), LangfuseMode::Otel)).unwrap(),
            fast(10),
        )
        .start()
        .unwrap();
    for i in 0..40 {
        writer.submit(record(i));
    }
    let report = writer.shutdown(Duration::from_secs(30)).await;
    let stats = &report.sinks[0];
    assert_eq!(stats.written, 40, "{stats:?}");
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
    assert!(stats.retried >= 4, "{stats:?}");
    let mut ids: Vec<String> = spans(&server.received())
        .iter()
        .map(|s| s["spanId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40);
}

#[tokio::test]
async fn a_refused_key_is_not_retried() {
    let server = FakeLangfuse::start(&[]).await;
    let wrong = LangfuseConfig::new(PUBLIC_KEY, SecretString::new("sk-lf-wrong"), server.host());
    let writer = LogWriter::builder()
        .sink_with(LangfuseSink::new(wrong).unwrap(), fast(10))
        .start()
        .unwrap();
    for i in 0..5 {
        writer.submit(record(i));
    }
    let report = writer.shutdown(Duration::from_secs(10)).await;
    let stats = &report.sinks[0];
    assert_eq!(stats.dropped.failed, 5, "{stats:?}");
    assert_eq!(stats.retried, 0);
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn legacy_events_have_ids_and_litellm_shapes() {
    let server = FakeLangfuse::start(&[]).await;
    let writer = LogWriter::builder()
        .sink_with(
            LangfuseSink::new(config(&server.host(), LangfuseMode::Legacy)).unwrap(),
            fast(1),
        )
        .start()
        .unwrap();
    let primary = record(1);
    let shadow = shadow_of(&primary);
    let failed = failure(2);
    writer.submit(primary.clone());
    writer.submit(shadow.clone());
    writer.submit(failed.clone());
    let report = writer.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.sinks[0].written, 3, "{report:?}");

    let received = server.received();
    let events: Vec<Value> = received
        .iter()
        .flat_map(|r| {
            assert_eq!(r.path, "/api/public/ingestion");
            assert_eq!(r.authorization, Some(expected_authorization()));
            r.body["batch"].as_array().unwrap().clone()
        })
        .collect();
    assert_eq!(events.len(), 6);
    let mut envelope_ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    envelope_ids.sort_unstable();
    envelope_ids.dedup();
    assert_eq!(envelope_ids.len(), 6, "envelope ids are unique");
    for event in &events {
        assert!(event["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(event["body"]["id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()));
    }
    let generation = |call: &mirror_core::CallRecord| {
        events
            .iter()
            .find(|e| {
                e["type"] == "generation-create" && e["body"]["id"] == call.call_id.to_string()
            })
            .unwrap()["body"]
            .clone()
    };
    let traces: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "trace-create")
        .map(|e| &e["body"])
        .collect();
    assert_eq!(traces.len(), 3);

    let g = generation(&primary);
    assert_eq!(g["traceId"], primary.trace_id.as_str());
    assert_eq!(g["name"], "mirror-acompletion");
    assert_eq!(g["model"], "gpt-4o-mini");
    assert_eq!(g["startTime"], "2025-01-16T11:28:54.796360Z");
    assert_eq!(g["completionStartTime"], "2025-01-16T11:28:55.100000Z");
    assert_eq!(g["level"], "DEFAULT");
    assert_eq!(
        g["usage"],
        json!({"input": 10, "output": 20, "total": 30, "unit": "TOKENS", "totalCost": 3.5e-5})
    );
    assert_eq!(
        g["usageDetails"],
        json!({"input": 10, "output": 20, "total": 30})
    );
    assert_eq!(g["costDetails"], json!({"total": 3.5e-5}));
    assert_eq!(g["input"]["messages"][0]["content"], "question 1");
    assert_eq!(g["output"]["content"], "answer 1");
    assert_eq!(g["metadata"]["is_silent_experiment"], false);
    let primary_trace = traces
        .iter()
        .find(|t| t["id"] == primary.trace_id.as_str() && t.get("name").is_some())
        .unwrap();
    assert_eq!(primary_trace["name"], "mirror-acompletion");
    assert_eq!(primary_trace["tags"], json!(["prod"]));
    assert_eq!(primary_trace["userId"], "user-7");

    let s = generation(&shadow);
    assert_eq!(s["traceId"], primary.trace_id.as_str());
    assert_eq!(s["metadata"]["is_silent_experiment"], true);
    assert_eq!(s["metadata"]["mirror_of"], primary.call_id.to_string());
    assert_eq!(s["name"], "mirror-acompletion-silent");
    let shadow_trace = traces
        .iter()
        .find(|t| t["id"] == primary.trace_id.as_str() && t.get("name").is_none())
        .unwrap();
    assert_eq!(shadow_trace["tags"], json!(["prod", "silent-experiment"]));

    let f = generation(&failed);
    assert_eq!(f["level"], "ERROR");
    assert_eq!(f["statusMessage"], "upstream answered 503");
    assert!(f.get("output").is_none());
}

#[tokio::test]
async fn legacy_partial_refusals_are_counted_and_not_retried() {
    let server = FakeLangfuse::start(&[]).await;
    let writer = LogWriter::builder()
        .sink_with(
            LangfuseSink::new(config(&server.host(), LangfuseMode::Legacy)).unwrap(),
            fast(10).with_flush_interval(Duration::from_millis(200)),
        )
        .start()
        .unwrap();
    for i in 0..5 {
        let mut record = record(i);
        if i == 3 {
            record.model = "reject-me".into();
        }
        writer.submit(record);
    }
    let report = writer.shutdown(Duration::from_secs(10)).await;
    let stats = &report.sinks[0];
    assert_eq!(stats.written, 4, "{stats:?}");
    assert_eq!(stats.dropped.failed, 1, "{stats:?}");
    assert_eq!(stats.retried, 0, "{stats:?}");
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn large_events_are_truncated_and_requests_stay_under_the_limit() {
    let server = FakeLangfuse::start(&[]).await;
    let writer = LogWriter::builder()
        .sink_with(
            LangfuseSink::new(config(&server.host(), LangfuseMode::Legacy)).unwrap(),
            fast(1).with_flush_interval(Duration::from_millis(200)),
        )
        .start()
        .unwrap();
    for i in 0..12 {
        let mut record = record(i);
        // One huge call, and many that are large but under the event limit.
        let size = if i == 0 { 3_000_000 } else { 400_000 };
        record.messages = Some(vec![mirror_core::ChatMessage::user("y".repeat(size))]);
        writer.submit(record);
    }
    let report = writer.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.sinks[0].written, 12, "{report:?}");
    let received = server.received();
    assert!(received.len() >= 2, "the batch was split");
    for request in &received {
        assert!(
            request.bytes < 3_500_000,
            "request of {} bytes",
            request.bytes
        );
        for event in request.body["batch"].as_array().unwrap() {
            assert!(event.to_string().len() < 1_000_000);
        }
    }
    let huge = received
        .iter()
        .flat_map(|r| r.body["batch"].as_array().unwrap().clone())
        .find(|e| {
            e["type"] == "generation-create" && e["body"]["metadata"]["response_id"] == "chatcmpl-0"
        })
        .unwrap();
    assert!(huge["body"]["input"]
        .as_str()
        .unwrap()
        .contains("truncated by mirror"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_for_the_whole_test_drops_and_stays_bounded() {
    // A port with nothing listening: every connection is refused.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = temp_dir("langfuse-down");
    let jsonl = dir.join("calls.jsonl");
    let writer = LogWriter::builder()
        .sink_with(
            LangfuseSink::new(config(
                &format!("http://127.0.0.1:{port}"),
                LangfuseMode::Otel,
            ))
            .unwrap(),
            fast(1_000).with_queue_capacity(20).with_batch_size(5),
        )
        .sink_with(
            JsonlSink::new(JsonlConfig::new(&jsonl)),
            SinkOptions::default().with_flush_interval(Duration::from_millis(5)),
        )
        .start()
        .unwrap();
    let mut last_dropped = 0;
    for round in 0..10 {
        let started = std::time::Instant::now();
        for i in 0..50 {
            writer.submit(record(round * 50 + i));
        }
        assert!(started.elapsed() < Duration::from_secs(1), "submit blocked");
        let stats = &writer.stats()[0];
        assert!(stats.queued <= 20 + 5, "{stats:?}");
        assert!(stats.dropped.queue_full > last_dropped, "{stats:?}");
        last_dropped = stats.dropped.queue_full;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The file sink is not held back by the failing one.
    wait_until(Duration::from_secs(20), "the JSONL sink", || {
        writer.stats()[1].written == 500
    })
    .await;
    let stats = &writer.stats()[0];
    assert_eq!(stats.written, 0);
    assert!(stats.retried > 0);

    let report = writer.shutdown(Duration::from_millis(200)).await;
    let down = &report.sinks[0];
    assert_eq!(down.submitted, 500);
    assert_eq!(down.written, 0);
    assert_eq!(down.dropped.total(), 500, "{down:?}");
    assert_eq!(down.queued, 0);
    assert_eq!(report.sinks[1].written, 500);
}
