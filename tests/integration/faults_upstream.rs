//! The upstream half of the fault suite: every way an upstream breaks, on the primary and on the
//! shadow, through the gateway over real HTTP.
//!
//! Each case asserts what the client gets (status and OpenAI-shaped error), the call's record, that
//! the silent accounting balances, and that a shadow's fault never changes the primary's answer.
//! Endless bodies stand for huge answers: were one read whole, its case would never end. Timing is
//! never asserted.

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures::stream::{self, StreamExt};
use mirror_test_support::upstream::{events, json, json_with_headers, raw, sse, Ending};
use mirror_test_support::{Call, Upstream};
use serde_json::{json, Value};

use crate::support::{client, RunningGateway};

/// The faults, by the upstream model name that triggers them.
const FAULTS: &[&str] = &[
    "timeout",
    "fail-500",
    "rate-limited",
    "reset",
    "malformed",
    "no-choices",
    "huge",
    "redirect",
    "truncated-sse",
    "no-done",
];

/// A body that never ends. Reading it whole never finishes.
fn endless(piece: &'static [u8]) -> Body {
    Body::from_stream(stream::repeat_with(move || {
        Ok::<_, std::io::Error>(Bytes::from_static(piece))
    }))
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    json!({"id": "chatcmpl-f", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    .to_string()
}

/// Answers by the model asked for: a fault, or `ok from <model>`.
async fn respond(call: Call) -> Response {
    let model = call.body["model"].as_str().unwrap_or_default().to_owned();
    let stream = call.is_stream();
    match model.as_str() {
        "timeout" => std::future::pending().await,
        "fail-500" => json(
            500,
            json!({"error": {"message": "upstream broke", "type": "server_error"}}),
        ),
        "rate-limited" => json_with_headers(
            429,
            &[("retry-after", "7")],
            json!({"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}),
        ),
        "reset" => {
            let first = if stream {
                format!("data: {}\n\n", chunk(json!({"role": "assistant"}), None))
            } else {
                "{\"id\": \"chatcmpl-".to_owned()
            };
            let parts = vec![
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
            raw(
                200,
                content_type,
                &[],
                Body::from_stream(stream::iter(parts)),
            )
        }
        "malformed" => raw(200, "application/json", &[], "{\"choices\": [oops"),
        "no-choices" => json(
            200,
            json!({"id": "chatcmpl-x", "object": "chat.completion"}),
        ),
        "huge" if stream => raw(
            200,
            "text/event-stream",
            &[],
            Body::from_stream(
                stream::once(async {
                    Ok::<_, std::io::Error>(Bytes::from_static(b"data: {\"id\":\""))
                })
                .chain(stream::repeat_with(|| {
                    Ok(Bytes::from_static(&[b'a'; 65536]))
                })),
            ),
        ),
        "huge" => raw(200, "application/json", &[], endless(&[b' '; 65536])),
        "redirect" => raw(
            307,
            "text/plain",
            &[("location", "http://127.0.0.1:9/elsewhere")],
            "",
        ),
        // A stream that stops mid-answer, without its finish reason or `[DONE]`.
        "truncated-sse" if stream => sse(
            vec![Bytes::from(events(&[&chunk(
                json!({"role": "assistant", "content": "par"}),
                None,
            )]))],
            Ending::Close,
        ),
        // A stream that finishes its answer but never sends `[DONE]`: complete.
        "no-done" if stream => sse(
            vec![Bytes::from(events(&[
                &chunk(json!({"role": "assistant", "content": "done"}), None),
                &chunk(json!({}), Some("stop")),
            ]))],
            Ending::Close,
        ),
        _ if stream => sse(
            vec![Bytes::from(
                events(&[
                    &chunk(json!({"role": "assistant", "content": "ok from "}), None),
                    &chunk(json!({"content": model}), None),
                    &chunk(json!({}), Some("stop")),
                ]) + "data: [DONE]\n\n",
            )],
            Ending::Close,
        ),
        _ => json(
            200,
            json!({
                "id": "chatcmpl-ok", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("ok from {model}")}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
            }),
        ),
    }
}

/// One group per fault as a primary (`p-<fault>`), and one per fault behind a healthy primary
/// (`m-<fault>`, mirrored to `s-<fault>`).
fn config(base: &str) -> String {
    let mut yaml = String::from("model_list:\n");
    for fault in FAULTS {
        // Small limits on the huge answers keep the suite light; the defaults are tested in
        // `mirror-providers` and below.
        let limits = "timeout: 0.5, stream_timeout: 0.5, max_response_bytes: 1048576, max_stream_event_bytes: 65536";
        yaml.push_str(&format!(
            "  - model_name: p-{fault}\n    litellm_params: {{model: openai/{fault}, api_base: \"{base}/v1\", {limits}}}\n\
             \x20 - model_name: m-{fault}\n    litellm_params: {{model: openai/healthy, api_base: \"{base}/v1\", silent_model: s-{fault}}}\n\
             \x20 - model_name: s-{fault}\n    litellm_params: {{model: openai/{fault}, api_base: \"{base}/v1\", {limits}}}\n"
        ));
    }
    yaml.push_str(
        "router_settings: {num_retries: 0, max_stream_bytes: 4194304}\n\
         mirror_settings:\n  log_file: \"{log}\"\n",
    );
    yaml
}

/// What the client gets for a fault on the primary.
struct Expected {
    status: u16,
    kind: &'static str,
    /// The record's `error_class`.
    class: &'static str,
}

fn expected(fault: &str, stream: bool) -> Option<Expected> {
    let upstream_error = |class| Expected {
        status: 502,
        kind: "upstream_error",
        class,
    };
    Some(match fault {
        "timeout" => Expected {
            status: 504,
            kind: "timeout",
            class: "timeout",
        },
        "fail-500" | "redirect" => upstream_error("upstream"),
        "rate-limited" => Expected {
            status: 429,
            kind: "rate_limit_error",
            class: "rate_limited",
        },
        "reset" => upstream_error("transport"),
        "truncated-sse" if stream => upstream_error("transport"),
        // A stream fault; asked for a whole answer, it answers fine.
        "truncated-sse" => return None,
        "malformed" | "no-choices" => upstream_error("malformed_response"),
        // Complete without `[DONE]`, or (asked for a whole answer) no fault at all.
        "no-done" => return None,
        "huge" => upstream_error("response_too_large"),
        _ => unreachable!("{fault} {stream}"),
    })
}

fn body(group: &str, stream: bool) -> Value {
    json!({"model": group, "stream": stream, "messages": [{"role": "user", "content": "hello"}]})
}

/// A stream's body, as the client reads it: its `data:` payloads.
fn data_events(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// Sends one request; returns the status, the call id and, for errors, the error object (for a
/// stream that failed after it started, the error event's).
async fn send(gateway: &str, group: &str, stream: bool) -> (u16, String, Option<Value>, String) {
    let response = client()
        .post(format!("{gateway}/v1/chat/completions"))
        .json(&body(group, stream))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let call_id = response.headers()["x-mirror-call-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    if status != 200 {
        let error: Value = serde_json::from_str(&text).unwrap();
        return (status, call_id, Some(error["error"].clone()), retry_after);
    }
    if !stream {
        let answer: Value = serde_json::from_str(&text).unwrap();
        let content = answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_else(|| panic!("{group}: a 200 without a message to read: {answer}"))
            .to_owned();
        return (status, call_id, None, content);
    }
    let events = data_events(&text);
    let last = events.last().cloned().unwrap_or_default();
    if last == "[DONE]" {
        let content: String = events[..events.len() - 1]
            .iter()
            .map(|event| {
                let chunk: Value = serde_json::from_str(event).unwrap();
                chunk["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        return (status, call_id, None, content);
    }
    let error: Value = serde_json::from_str(&last).unwrap();
    (status, call_id, Some(error["error"].clone()), String::new())
}

fn record<'a>(records: &'a [Value], call_id: &str) -> &'a Value {
    records
        .iter()
        .find(|record| record["litellm_call_id"] == call_id)
        .unwrap_or_else(|| panic!("no record of call {call_id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upstream_fault_on_the_primary_and_on_the_shadow() {
    let upstream = Upstream::with_handler(respond).await;
    let gateway = RunningGateway::start(&config(upstream.url())).await;

    let mut primaries = Vec::new();
    let mut mirrored = Vec::new();
    for fault in FAULTS {
        for stream in [false, true] {
            let (status, call_id, error, extra) =
                send(&gateway.base, &format!("p-{fault}"), stream).await;
            let case = format!("{fault} on the primary, stream {stream}");
            match expected(fault, stream) {
                Some(want) => {
                    let error = error.unwrap_or_else(|| panic!("{case}: no error"));
                    // A stream that broke after it started has already sent its 200.
                    let started = stream && matches!(*fault, "reset" | "truncated-sse" | "huge");
                    let status_wanted = if started { 200 } else { want.status };
                    // A reset may come before the gateway's headers went out (its first bytes
                    // and the reset arrive together): then the client gets the error status.
                    if !(*fault == "reset" && stream && status == want.status) {
                        assert_eq!(status, status_wanted, "{case}: {error}");
                    }
                    assert_eq!(error["type"], want.kind, "{case}: {error}");
                    assert!(error["message"].is_string(), "{case}: {error}");
                    if *fault == "rate-limited" {
                        assert_eq!(extra, "7", "{case}: Retry-After");
                    }
                    if *fault == "huge" {
                        assert!(
                            error["message"]
                                .as_str()
                                .unwrap()
                                .contains("upstream response too large"),
                            "{case}: {error}"
                        );
                    }
                    if *fault == "no-choices" {
                        assert!(
                            error["message"]
                                .as_str()
                                .unwrap()
                                .contains("malformed upstream response"),
                            "{case}: {error}"
                        );
                    }
                    primaries.push((case, call_id, Some(want.class)));
                }
                None => {
                    assert_eq!(status, 200, "{case}: {error:?}");
                    assert!(error.is_none(), "{case}: {error:?}");
                    primaries.push((case, call_id, None));
                }
            }
            // The same fault on the shadow: the client gets the primary's answer, untouched.
            let (status, call_id, error, content) =
                send(&gateway.base, &format!("m-{fault}"), stream).await;
            let case = format!("{fault} on the shadow, stream {stream}");
            assert_eq!(status, 200, "{case}: {error:?}");
            assert!(error.is_none(), "{case}: {error:?}");
            assert_eq!(content, "ok from healthy", "{case}");
            mirrored.push((case, call_id, fault, stream));
        }
    }

    let (report, records) = gateway.stop().await;
    let mirror = &report.mirror;
    assert!(mirror.is_balanced(), "{mirror:?}");
    let copies = (FAULTS.len() * 2) as u64;
    assert_eq!(mirror.mirrored, copies, "{mirror:?}");
    // Every shadow fault is a failed copy; the two that are not faults for it complete.
    let fine = mirrored
        .iter()
        .filter(|(_, _, fault, stream)| expected(fault, *stream).is_none())
        .count() as u64;
    assert_eq!(mirror.completed, fine, "{mirror:?}");
    assert_eq!(mirror.failed, copies - fine, "{mirror:?}");

    for (case, call_id, class) in &primaries {
        let record = record(&records, call_id);
        match class {
            Some(class) => {
                assert_eq!(record["status"], "failure", "{case}: {record}");
                assert_eq!(
                    record["error_information"]["error_class"], *class,
                    "{case}: {record}"
                );
            }
            None => assert_eq!(record["status"], "success", "{case}: {record}"),
        }
    }
    for (case, call_id, fault, stream) in &mirrored {
        assert_eq!(record(&records, call_id)["status"], "success", "{case}");
        let shadow = records
            .iter()
            .find(|record| record["metadata"]["mirror_of"] == call_id.as_str())
            .unwrap_or_else(|| panic!("{case}: no shadow record"));
        assert_eq!(shadow["metadata"]["is_silent_experiment"], true, "{case}");
        match expected(fault, *stream) {
            Some(want) => {
                assert_eq!(shadow["status"], "failure", "{case}: {shadow}");
                assert_eq!(
                    shadow["error_information"]["error_class"], want.class,
                    "{case}: {shadow}"
                );
            }
            None => assert_eq!(shadow["status"], "success", "{case}: {shadow}"),
        }
    }
    // Nothing of a huge answer reached the log: every record is small.
    for record in &records {
        let size = record.to_string().len();
        assert!(size < 16 * 1024, "a record of {size} bytes: {record:.200}");
    }
    // No redirect was followed.
    assert!(upstream
        .requests()
        .iter()
        .all(|request| request.path != "/elsewhere"));
}

/// The peak resident memory of this process (`VmHWM`), in bytes.
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_shadow_answers_are_cut_at_the_default_limit_and_the_primary_is_unchanged() {
    // Five endless answers on the shadow, with the default limits: each is read up to 16 MiB and
    // dropped. Were one held whole, this would never end.
    let upstream = Upstream::with_handler(respond).await;
    let base = upstream.url();
    let gateway = RunningGateway::start(&format!(
        "model_list:\n\
         \x20 - model_name: primary\n    litellm_params: {{model: openai/healthy, api_base: \"{base}/v1\", silent_model: shadow}}\n\
         \x20 - model_name: shadow\n    litellm_params: {{model: openai/huge, api_base: \"{base}/v1\"}}\n\
         router_settings: {{num_retries: 0, allowed_fails: 100}}\n\
         mirror_settings:\n  log_file: \"{{log}}\"\n"
    ))
    .await;
    let before = peak_memory();
    let answers =
        futures::future::join_all((0..5).map(|_| send(&gateway.base, "primary", false))).await;
    for (status, _, error, content) in &answers {
        assert_eq!(*status, 200, "{error:?}");
        assert_eq!(content, "ok from healthy");
    }
    let (report, records) = gateway.stop().await;
    assert!(report.mirror.is_balanced(), "{:?}", report.mirror);
    assert_eq!(report.mirror.failed, 5, "{:?}", report.mirror);
    let shadows: Vec<&Value> = records
        .iter()
        .filter(|record| record["metadata"]["is_silent_experiment"] == true)
        .collect();
    assert_eq!(shadows.len(), 5);
    for shadow in shadows {
        assert_eq!(
            shadow["error_information"]["error_class"], "response_too_large",
            "{shadow}"
        );
    }
    // Five answers cut at 16 MiB each stay far under what holding even one 100 MB answer takes.
    // (The bound is loose: other tests of this binary run in the same process.)
    if let (Some(before), Some(after)) = (before, peak_memory()) {
        let grown = after.saturating_sub(before);
        eprintln!("VmHWM grew by {} MiB", grown / (1024 * 1024));
        assert!(grown < 400 * 1024 * 1024, "VmHWM grew by {grown} bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_in_api_base_is_redacted_in_records_and_check() {
    let upstream = Upstream::with_handler(respond).await;
    let base = upstream.url();
    let yaml = format!(
        "model_list:\n\
         \x20 - model_name: primary\n    litellm_params: {{model: openai/healthy, api_base: \"{base}/v1?code=query-secret-0123456789\"}}\n\
         \x20 - model_name: broken\n    litellm_params: {{model: openai/fail-500, api_base: \"{base}/v1?code=query-secret-0123456789\"}}\n\
         router_settings: {{num_retries: 0}}\n\
         mirror_settings:\n  log_file: \"{{log}}\"\n"
    );
    let gateway = RunningGateway::start(&yaml).await;
    let (status, _, _, content) = send(&gateway.base, "primary", false).await;
    assert_eq!(status, 200);
    assert_eq!(content, "ok from healthy");
    let (status, _, error, _) = send(&gateway.base, "broken", false).await;
    assert_eq!(status, 502);
    assert!(!error.unwrap().to_string().contains("query-secret"));
    let (_, records) = gateway.stop().await;
    // The query stayed a query, after the joined path.
    let seen = upstream.requests();
    assert!(seen
        .iter()
        .all(|request| request.path == "/v1/chat/completions"));
    assert!(seen
        .iter()
        .all(|request| request.query.as_deref() == Some("code=query-secret-0123456789")));
    let text = serde_json::to_string(&records).unwrap();
    assert_eq!(records.len(), 2);
    assert!(!text.contains("query-secret"), "{text}");
    assert!(text.contains("/v1?code=<redacted>"), "{text}");

    // `mirror check` shows the base without the secret.
    let path =
        std::env::temp_dir().join(format!("mirror-faults-check-{}.yaml", std::process::id()));
    std::fs::write(&path, yaml.replace("{log}", "/dev/null")).unwrap();
    let args = mirror_cli::cli::CheckArgs {
        config: Some(path.clone()),
    };
    let out = mirror_cli::cli::check(&args).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(!out.contains("query-secret"), "{out}");
    assert!(out.contains("/v1?code=<redacted>"), "{out}");
}
