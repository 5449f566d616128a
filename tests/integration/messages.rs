//! Anthropic's Messages API through the gateway over real HTTP: `/v1/messages` and
//! `/anthropic/v1/messages`, whole and streamed (relayed byte for byte), count_tokens, a Claude
//! primary mirrored to a Claude shadow and paired in the log, auth by `x-api-key`, and errors in
//! Anthropic's shape with Anthropic's statuses.

use std::time::Duration;

use mirror_test_support::anthropic::{events, message, COUNTED_TOKENS};
use mirror_test_support::upstream::{sse, Ending};
use mirror_test_support::{Behaviour, Upstream};
use serde_json::{json, Value};

use crate::support::{client, RunningGateway};

const KEY: &str = "sk-master-0123456789";

/// A Claude group mirrored to a Claude shadow group, behind a master key.
fn config(primary: &Upstream, shadow: &Upstream) -> String {
    format!(
        r#"
model_list:
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: "{primary}", api_key: sk-ant-primary-secret, silent_model: claude-shadow}}
  - model_name: claude-shadow
    litellm_params: {{model: anthropic/claude-haiku-4-5, api_base: "{shadow}", api_key: sk-ant-shadow-secret}}
router_settings: {{num_retries: 0}}
general_settings: {{master_key: {KEY}}}
mirror_settings:
  log_file: "{{log}}"
"#,
        primary = primary.url(),
        shadow = shadow.url(),
    )
}

async fn post(base: &str, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{base}{path}"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .json(body)
        .send()
        .await
        .unwrap()
}

fn body(stream: bool) -> Value {
    json!({
        "model": "claude",
        "max_tokens": 128,
        "stream": stream,
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "future_field": {"kept": true},
    })
}

async fn silent_completed(base: &str, completed: u64) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let body: Value = client()
                .get(format!("{base}/health/readiness"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if body["silent"]["completed"].as_u64() >= Some(completed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the silent calls finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_answered_unchanged_and_mirrored_under_both_prefixes() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    let gateway = RunningGateway::start(&config(&primary, &shadow)).await;

    for path in ["/v1/messages", "/anthropic/v1/messages"] {
        let response = post(&gateway.base, path, &body(false)).await;
        assert_eq!(response.status(), 200, "{path}");
        for name in ["x-mirror-call-id", "x-mirror-trace-id", "request-id"] {
            assert!(response.headers().contains_key(name), "{name}");
        }
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["type"], "message");
        assert_eq!(answer["content"][0]["text"], "hello from primary");
        assert_eq!(answer["usage"]["cache_read_input_tokens"], 2);

        let response = post(&gateway.base, path, &body(true)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let text = response.text().await.unwrap();
        let seen = primary.requests().pop().unwrap();
        let expected: String = events(&message("primary", primary.count(), &seen), None).concat();
        assert_eq!(text, expected, "every event relayed unchanged");
    }
    silent_completed(&gateway.base, 4).await;
    let (report, records) = gateway.stop().await;
    assert_eq!(report.mirror.completed, 4, "{:?}", report.mirror);

    for seen in primary.requests().iter().chain(shadow.requests().iter()) {
        assert_eq!(seen.path, "/v1/messages");
        assert_eq!(
            seen.header("anthropic-beta"),
            Some("interleaved-thinking-2025-05-14")
        );
        assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
        assert!(seen.header("x-api-key").unwrap().starts_with("sk-ant-"));
        assert_eq!(seen.body["future_field"], json!({"kept": true}));
        assert_eq!(seen.body["system"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(seen.body["thinking"]["budget_tokens"], 1024);
        assert!(seen.body.get("litellm_metadata").is_none());
    }
    assert!(shadow
        .requests()
        .iter()
        .all(|seen| seen.body["model"] == "claude-haiku-4-5"));

    // Each primary is paired with its shadow in the log.
    assert_eq!(records.len(), 8);
    let primaries: Vec<&Value> = records
        .iter()
        .filter(|r| r["metadata"]["is_silent_experiment"] != true)
        .collect();
    assert_eq!(primaries.len(), 4);
    for record in &primaries {
        assert_eq!(record["call_type"], "anthropic_messages");
        assert_eq!(record["prompt_tokens"], 11);
        let id = record["litellm_call_id"].as_str().unwrap();
        let twin = records
            .iter()
            .find(|r| r["metadata"]["mirror_of"] == id)
            .expect("a shadow paired with the primary");
        assert_eq!(twin["model_group"], "claude-shadow");
        assert_eq!(twin["call_type"], "anthropic_messages");
        assert!(twin["response"]["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("hello from shadow"));
    }

    // `mirror report` pairs them like any other primary and shadow.
    let dir = std::env::temp_dir().join(format!("mirror-messages-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("calls.jsonl");
    let lines: String = records.iter().map(|record| format!("{record}\n")).collect();
    std::fs::write(&path, lines).unwrap();
    let report =
        mirror_report::analyze_paths(&[path], &mirror_report::ReportOptions::default(), false)
            .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let edge = report
        .edges
        .iter()
        .find(|e| e.primary_group == "claude" && e.shadow_group == "claude-shadow")
        .unwrap_or_else(|| panic!("no claude -> claude-shadow edge: {report:#?}"));
    assert_eq!((edge.primaries, edge.pairs, edge.missing), (4, 4, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_stream_ends_with_an_anthropic_error_event() {
    // The upstream closes the stream before `message_stop`.
    let primary = Upstream::with_handler(|call| async move {
        let all = events(&message("primary", call.number, &call.seen), None);
        let pieces = all[..all.len() - 1]
            .iter()
            .map(|event| axum::body::Bytes::from(event.clone()))
            .collect();
        sse(pieces, Ending::Close)
    })
    .await;
    let shadow = Upstream::start("shadow").await;
    let gateway = RunningGateway::start(&config(&primary, &shadow)).await;
    let response = post(&gateway.base, "/v1/messages", &body(true)).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.starts_with("event: message_start\n"), "{text}");
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let data: Value =
        serde_json::from_str(last.strip_prefix("event: error\ndata: ").unwrap()).unwrap();
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "api_error");
    let (_, records) = gateway.stop().await;
    let primary_record = records
        .iter()
        .find(|r| r["metadata"]["is_silent_experiment"] != true)
        .unwrap();
    assert_eq!(primary_record["status"], "failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_tokens_is_answered_by_the_group() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    let gateway = RunningGateway::start(&config(&primary, &shadow)).await;
    for path in [
        "/v1/messages/count_tokens",
        "/anthropic/v1/messages/count_tokens",
    ] {
        let mut request = body(false);
        request.as_object_mut().unwrap().remove("max_tokens");
        request.as_object_mut().unwrap().remove("stream");
        let response = post(&gateway.base, path, &request).await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer, json!({"input_tokens": COUNTED_TOKENS}));
    }
    let (report, _) = gateway.stop().await;
    assert_eq!(report.mirror.mirrored, 0, "count_tokens is never mirrored");
    assert_eq!(shadow.count(), 0);
    assert_eq!(primary.requests()[0].path, "/v1/messages/count_tokens");
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    assert!(response.headers().contains_key("x-mirror-call-id"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_anthropic_s_shape_and_status() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    let gateway = RunningGateway::start(&config(&primary, &shadow)).await;
    let base = &gateway.base;

    // A wrong key, by either header.
    let response = client()
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", "wrong")
        .json(&body(false))
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!(status, 401);
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "authentication_error");
    let response = client()
        .post(format!("{base}/anthropic/v1/messages"))
        .bearer_auth(KEY)
        .json(&body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "the master key as a bearer token works too"
    );

    // A wrong method, an unknown path under the Anthropic prefix.
    let response = client()
        .get(format!("{base}/v1/messages"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!((status, error["type"].as_str()), (405, Some("error")));
    let (status, error) = error_of(post(base, "/anthropic/v1/nothing", &body(false)).await).await;
    assert_eq!(
        (status, error["error"]["type"].as_str()),
        (404, Some("not_found_error"))
    );

    // An unknown model, a body that is not a Messages request.
    let mut unknown = body(false);
    unknown["model"] = json!("gpt-9");
    let (status, error) = error_of(post(base, "/v1/messages", &unknown).await).await;
    assert_eq!(
        (status, error["error"]["type"].as_str()),
        (404, Some("not_found_error"))
    );
    let (status, error) =
        error_of(post(base, "/v1/messages", &json!({"model": "claude"})).await).await;
    assert_eq!(
        (status, error["error"]["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("messages"));

    // The upstream is overloaded: 529 as Anthropic answers it, with the SDK's retry hint.
    primary.script([Behaviour::Fail {
        status: 529,
        code: None,
        message: "Overloaded".to_owned(),
        headers: vec![("retry-after", "3".to_owned())],
    }]);
    let response = post(base, "/v1/messages", &body(false)).await;
    assert_eq!(response.headers()["retry-after"], "3");
    let (status, error) = error_of(response).await;
    assert_eq!(
        (status, error["error"]["type"].as_str()),
        (529, Some("overloaded_error"))
    );
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Overloaded"));
    assert!(!error.to_string().contains("sk-ant-"));

    // A rate limit.
    primary.script([Behaviour::Fail {
        status: 429,
        code: None,
        message: "Number of request tokens has exceeded your per-minute rate limit".to_owned(),
        headers: vec![("retry-after", "7".to_owned())],
    }]);
    let (status, error) = error_of(post(base, "/v1/messages", &body(false)).await).await;
    assert_eq!(
        (status, error["error"]["type"].as_str()),
        (429, Some("rate_limit_error"))
    );

    // An error event after the 200 is relayed as Anthropic sent it.
    primary.script([Behaviour::StreamError {
        kind: "overloaded_error",
        message: "Overloaded".to_owned(),
    }]);
    let text = post(base, "/v1/messages", &body(true))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        text.ends_with("event: error\ndata: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\"},\"type\":\"error\"}\n\n"),
        "{text}"
    );
    gateway.stop().await;
}
