//! The OTLP trace sink against an in-process OTLP/HTTP receiver that decodes the spans.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use mirror_core::{SecretString, TraceId};
use mirror_logging::{LogSink, OtlpConfig, OtlpSink, SILENT_ATTRIBUTE};
use serde_json::Value;
use support::{failure, record, shadow_of};

#[derive(Debug, Clone)]
struct Export {
    path: String,
    api_key: Option<String>,
    content_type: Option<String>,
    body: Value,
}

type Received = Arc<Mutex<Vec<Export>>>;

/// An OTLP/HTTP receiver on 127.0.0.1:0: every request is decoded and kept.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .fallback(
            |State(received): State<Received>, uri: Uri, headers: HeaderMap, body: Bytes| async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                received.lock().unwrap().push(Export {
                    path: uri.path().to_owned(),
                    api_key: header("x-api-key"),
                    content_type: header("content-type"),
                    body: serde_json::from_slice(&body).unwrap(),
                });
                // A full success, as collectors answer.
                axum::Json(serde_json::json!({}))
            },
        )
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), received)
}

/// The spans of every export, keyed by nothing: in order.
fn spans(received: &Received) -> Vec<Value> {
    received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|export| {
            export.body["resourceSpans"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|rs| rs["scopeSpans"].as_array().unwrap().clone())
                .flat_map(|ss| ss["spans"].as_array().unwrap().clone())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// An attribute's value, as OTLP JSON encodes it (`{"stringValue": ...}` and so on).
fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

fn string_attribute<'a>(span: &'a Value, key: &str) -> &'a str {
    attribute(span, key)
        .and_then(|v| v["stringValue"].as_str())
        .unwrap_or_else(|| panic!("no string attribute {key} in {span:#}"))
}

#[tokio::test]
async fn spans_carry_gen_ai_attributes_links_and_the_silent_flag() {
    let (base, received) = receiver().await;
    let sink = OtlpSink::new(
        OtlpConfig::new(format!("{base}/v1/traces"))
            .with_header("x-api-key", SecretString::new("collector-secret")),
    )
    .unwrap();
    let mut primary = record(1);
    // The trace id a caller's `traceparent` gives (the gateway stores its 32 hex digits).
    primary.trace_id = TraceId::from("4bf92f3577b34da6a3ce929d0e0e4736".to_owned());
    let shadow = shadow_of(&primary);
    let failed = failure(2);
    let batch: Vec<Arc<mirror_core::CallRecord>> = vec![
        Arc::new(primary.clone()),
        Arc::new(shadow.clone()),
        Arc::new(failed),
    ];
    sink.write(&batch).await.unwrap();

    let exports = received.lock().unwrap().clone();
    assert_eq!(exports.len(), 1);
    assert_eq!(exports[0].path, "/v1/traces");
    assert_eq!(exports[0].api_key.as_deref(), Some("collector-secret"));
    assert_eq!(exports[0].content_type.as_deref(), Some("application/json"));
    let resource = &exports[0].body["resourceSpans"][0]["resource"]["attributes"][0];
    assert_eq!(resource["key"], "service.name");
    let spans = spans(&received);
    assert_eq!(spans.len(), 3);
    let (p, s, f) = (&spans[0], &spans[1], &spans[2]);

    // The primary: a CLIENT span named `{operation} {model}` in the caller's trace.
    assert_eq!(p["name"], format!("chat {}", primary.model));
    assert_eq!(p["kind"], 3);
    assert_eq!(p["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(string_attribute(p, "gen_ai.operation.name"), "chat");
    assert_eq!(string_attribute(p, "gen_ai.provider.name"), "openai");
    assert_eq!(string_attribute(p, "gen_ai.request.model"), primary.model);
    let response = primary.response.as_ref().unwrap();
    assert_eq!(string_attribute(p, "gen_ai.response.id"), response.id());
    assert_eq!(
        string_attribute(p, "gen_ai.response.model"),
        response.model()
    );
    assert_eq!(
        attribute(p, "gen_ai.response.finish_reasons").unwrap()["arrayValue"]["values"][0]
            ["stringValue"],
        "stop"
    );
    assert_eq!(
        attribute(p, "gen_ai.usage.input_tokens").unwrap()["intValue"],
        primary.prompt_tokens.to_string()
    );
    assert_eq!(
        attribute(p, "gen_ai.usage.output_tokens").unwrap()["intValue"],
        primary.completion_tokens.to_string()
    );
    assert!(attribute(p, "server.address").is_some());
    assert_eq!(attribute(p, SILENT_ATTRIBUTE).unwrap()["boolValue"], false);
    assert_eq!(p["status"]["code"], 1);
    assert!(p.get("links").is_none(), "{p:#}");

    // The silent copy: same trace, flagged, linked to the primary's span, not its child.
    assert_eq!(s["traceId"], p["traceId"]);
    assert_ne!(s["spanId"], p["spanId"]);
    assert!(s.get("parentSpanId").is_none());
    assert_eq!(attribute(s, SILENT_ATTRIBUTE).unwrap()["boolValue"], true);
    assert_eq!(
        string_attribute(s, "mirror.mirror_of"),
        primary.call_id.to_string()
    );
    assert_eq!(string_attribute(s, "gen_ai.request.model"), shadow.model);
    let links = s["links"].as_array().unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0]["spanId"], p["spanId"]);
    assert_eq!(links[0]["traceId"], p["traceId"]);

    // A failure: an error status and `error.type` from the provider's code.
    assert_eq!(f["status"]["code"], 2);
    assert_eq!(string_attribute(f, "error.type"), "503");
    assert!(attribute(f, "gen_ai.response.id").is_none());

    // The header's value is a secret: never in the sink's Debug output.
    assert!(!format!("{sink:?}").contains("collector-secret"));
}

#[tokio::test]
async fn a_rejecting_collector_is_an_error() {
    let app = axum::Router::new()
        .fallback(|| async { (axum::http::StatusCode::BAD_REQUEST, "bad spans") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let sink = OtlpSink::new(OtlpConfig::new(format!("http://{addr}/v1/traces"))).unwrap();
    let err = sink.write(&[Arc::new(record(1))]).await.unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
}
