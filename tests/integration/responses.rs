//! The Responses API through the gateway over real HTTP: create (whole and streamed) under the
//! three prefixes, the calls on a stored response routed by id, mirroring with per-group state,
//! MCP tools not mirrored, auth, the body limit and error shapes.

use std::time::Duration;

use mirror_test_support::responses::UNKNOWN_EVENT;
use mirror_test_support::Upstream;
use serde_json::{json, Value};

use crate::support::{client, metrics_text, RunningGateway};

const PREFIXES: [&str; 4] = [
    "/v1/responses",
    "/responses",
    "/openai/v1/responses",
    "/openai/responses",
];

/// A mirrored group on `primary`, its silent group on `shadow`.
fn config(primary: &Upstream, shadow: &Upstream, extra: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: primary
    litellm_params: {{model: openai/gpt-4o, api_base: "{primary}", api_key: sk-upstream-secret, silent_model: shadow}}
  - model_name: shadow
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{shadow}", api_key: sk-shadow-secret}}
router_settings: {{num_retries: 0}}
mirror_settings:
  log_file: "{{log}}"
  max_body_bytes: 4096
{extra}
"#,
        primary = primary.base(),
        shadow = shadow.base(),
    )
}

async fn started() -> (Upstream, Upstream, RunningGateway) {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    let gateway = RunningGateway::start(&config(&primary, &shadow, "")).await;
    (primary, shadow, gateway)
}

async fn post(base: &str, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers()[name].to_str().unwrap().to_owned()
}

/// The gateway's silent counters, as `/health/readiness` shows them.
async fn silent(base: &str) -> Value {
    let body: Value = client()
        .get(format!("{base}/health/readiness"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["silent"].clone()
}

/// Waits (generously bounded) until `completed` silent calls have finished.
async fn silent_completed(base: &str, completed: u64) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let stats = silent(base).await;
            if stats["completed"].as_u64() >= Some(completed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the silent calls finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_answers_with_a_routed_id_under_every_prefix_and_is_mirrored() {
    let (primary, shadow, gateway) = started().await;
    let mut call_ids = Vec::new();
    // The `AzureOpenAI` SDK client's path carries its `api-version`.
    for prefix in PREFIXES {
        let body = json!({"model": "primary", "input": "hi", "reasoning": {"effort": "low"}});
        let response = post(
            &gateway.base,
            &format!("{prefix}?api-version=preview"),
            &body,
        )
        .await;
        assert_eq!(response.status(), 200, "{prefix}");
        call_ids.push(header(&response, "x-mirror-call-id"));
        assert!(response.headers().contains_key("x-mirror-trace-id"));
        let body: Value = response.json().await.unwrap();
        let id = body["id"].as_str().unwrap();
        // The id names the deployment: not the upstream's own.
        assert!(
            id.starts_with("resp_") && !id.starts_with("resp_primary_"),
            "{id}"
        );
        assert_eq!(body["object"], "response");
        assert_eq!(
            body["output"][0]["content"][0]["text"],
            "hello from primary"
        );
    }
    silent_completed(&gateway.base, 4).await;
    let (report, records) = gateway.stop().await;
    assert_eq!(report.mirror.completed, 4, "{:?}", report.mirror);
    assert!(report.mirror.is_balanced());

    // Unknown fields passed through; the gateway's own never did.
    for seen in primary.requests().iter().chain(shadow.requests().iter()) {
        assert_eq!(seen.path, "/v1/responses");
        assert_eq!(
            seen.query, None,
            "the client's api-version is not forwarded"
        );
        assert_eq!(seen.body["reasoning"]["effort"], "low");
        assert!(seen.body.get("silent_model").is_none());
        assert!(seen.body.get("litellm_metadata").is_none());
    }
    assert_eq!(primary.count(), 4);
    assert_eq!(shadow.count(), 4);
    assert!(shadow
        .requests()
        .iter()
        .all(|seen| seen.body["model"] == "gpt-4o-mini"));

    // Each primary is paired with its shadow in the log, with usage.
    assert_eq!(records.len(), 8);
    for call_id in &call_ids {
        let primary = records
            .iter()
            .find(|r| r["litellm_call_id"] == call_id.as_str())
            .expect("the primary record");
        assert_eq!(primary["call_type"], "aresponses");
        assert_eq!(primary["prompt_tokens"], 11);
        let shadow = records
            .iter()
            .find(|r| r["metadata"]["mirror_of"] == call_id.as_str())
            .expect("the shadow record");
        assert_eq!(shadow["trace_id"], primary["trace_id"]);
        assert_eq!(shadow["model_group"], "shadow");
    }
    let text = serde_json::to_string(&records).unwrap();
    assert!(!text.contains("sk-upstream-secret") && !text.contains("sk-shadow-secret"));
}

/// `event:` name and parsed `data:` of each SSE event in `text`.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|event| !event.trim().is_empty())
        .map(|event| {
            let mut name = String::new();
            let mut data = String::new();
            for line in event.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    name = value.to_owned();
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push_str(value);
                }
            }
            (name, serde_json::from_str(&data).unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_relay_every_event_in_order_with_routed_ids() {
    let (primary, shadow, gateway) = started().await;
    let body = json!({"model": "primary", "input": "hi", "stream": true});
    let response = post(&gateway.base, "/v1/responses", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert!(response.headers().contains_key("x-mirror-call-id"));
    let text = response.text().await.unwrap();
    let events = sse_events(&text);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.output_text.delta",
            UNKNOWN_EVENT,
            "response.output_text.delta",
            "response.output_item.done",
            "response.completed",
        ]
    );
    // Unchanged but for the response id: types, sequence numbers and unknown events as sent.
    for (number, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], number);
    }
    assert_eq!(events[4].1["note"], "relayed unchanged");
    let created = events[0].1["response"]["id"].as_str().unwrap();
    let completed = events[7].1["response"]["id"].as_str().unwrap();
    assert_eq!(created, completed);
    assert!(!created.starts_with("resp_primary_"), "{created}");
    assert!(!text.contains("data: [DONE]"));

    silent_completed(&gateway.base, 1).await;
    let (report, records) = gateway.stop().await;
    assert!(report.mirror.is_balanced());
    assert!(primary.only_request().is_stream());
    assert!(shadow.only_request().is_stream());
    let streamed: Vec<&Value> = records
        .iter()
        .filter(|r| r["call_type"] == "aresponses")
        .collect();
    assert_eq!(streamed.len(), 2);
    assert!(streamed
        .iter()
        .all(|r| r["status"] == "success" && r["completion_tokens"] == 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_response_calls_reach_the_deployment_that_stored_it() {
    let (primary, shadow, gateway) = started().await;
    let body: Value = post(
        &gateway.base,
        "/v1/responses",
        &json!({"model": "primary", "input": "hi"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    silent_completed(&gateway.base, 1).await;
    let http = client();
    for prefix in PREFIXES {
        let response = http
            .get(format!(
                "{}{prefix}/{id}?include[]=reasoning.encrypted_content",
                gateway.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{prefix}");
        assert!(response.headers().contains_key("x-mirror-call-id"));
        let got: Value = response.json().await.unwrap();
        assert_eq!(got["id"], id.as_str());

        let got: Value = http
            .get(format!(
                "{}{prefix}/{id}/input_items?api-version=2025-04-01-preview&limit=5&order=asc",
                gateway.base
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got["object"], "list");

        let got: Value = http
            .post(format!("{}{prefix}/{id}/cancel", gateway.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got["status"], "cancelled");
        assert_eq!(got["id"], id.as_str());

        let got: Value = http
            .delete(format!("{}{prefix}/{id}", gateway.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got["deleted"], true);
        assert_eq!(got["id"], id.as_str());
    }
    // The primary upstream got each call with its own id and the client's query string; the
    // shadow only its one copy of the create.
    let seen = primary.requests();
    assert_eq!(seen.len(), 1 + 4 * PREFIXES.len());
    let calls: Vec<String> = seen[1..5]
        .iter()
        .map(|seen| format!("{} {}", seen.method, seen.path))
        .collect();
    assert_eq!(
        calls,
        [
            "GET /v1/responses/resp_primary_1",
            "GET /v1/responses/resp_primary_1/input_items",
            "POST /v1/responses/resp_primary_1/cancel",
            "DELETE /v1/responses/resp_primary_1",
        ]
    );
    assert_eq!(
        seen[1].query.as_deref(),
        Some("include[]=reasoning.encrypted_content")
    );
    assert_eq!(seen[2].query.as_deref(), Some("limit=5&order=asc"));
    assert_eq!(shadow.count(), 1);

    // An id we did not issue is a 404 in OpenAI's shape, and no upstream is called.
    for foreign in ["resp_abc123", "not-a-response"] {
        let response = http
            .get(format!("{}/v1/responses/{foreign}", gateway.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        assert!(response.headers().contains_key("x-mirror-call-id"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(foreign),
            "{body}"
        );
    }
    assert_eq!(primary.count(), 1 + 4 * PREFIXES.len());
    assert_eq!(shadow.count(), 1);

    let (report, records) = gateway.stop().await;
    assert!(report.mirror.is_balanced());
    let retrieve = records
        .iter()
        .find(|r| r["call_type"] == "aget_responses")
        .expect("a retrieve record");
    assert_eq!(retrieve["model_group"], "primary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_continues_on_each_side_with_its_own_ids() {
    let (primary, shadow, gateway) = started().await;
    let first: Value = post(
        &gateway.base,
        "/v1/responses",
        &json!({"model": "primary", "input": "one"}),
    )
    .await
    .json()
    .await
    .unwrap();
    // The link from the primary's id to the shadow's exists once the shadow answered.
    silent_completed(&gateway.base, 1).await;
    let second = json!({"model": "primary", "input": "two", "previous_response_id": first["id"]});
    let response = post(&gateway.base, "/v1/responses", &second).await;
    assert_eq!(response.status(), 200);
    silent_completed(&gateway.base, 2).await;

    // A continuation of a response the gateway never linked: answered, the copy dropped.
    let unknown =
        json!({"model": "primary", "input": "x", "previous_response_id": "resp_elsewhere"});
    assert_eq!(
        post(&gateway.base, "/v1/responses", &unknown)
            .await
            .status(),
        200
    );
    let stats = silent(&gateway.base).await;
    assert_eq!(stats["dropped_missing_state"], 1, "{stats}");

    let (report, _) = gateway.stop().await;
    assert!(report.mirror.is_balanced());
    let previous = |upstream: &Upstream| -> Vec<Value> {
        upstream
            .requests()
            .iter()
            .map(|seen| seen.body["previous_response_id"].clone())
            .collect()
    };
    assert_eq!(
        previous(&primary),
        [
            Value::Null,
            json!("resp_primary_1"),
            json!("resp_elsewhere")
        ]
    );
    assert_eq!(previous(&shadow), [Value::Null, json!("resp_shadow_1")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tools_are_answered_not_mirrored_and_counted() {
    let (primary, shadow, gateway) = started().await;
    let body = json!({"model": "primary", "input": "hi", "tools": [
        {"type": "mcp", "server_label": "deepwiki", "server_url": "https://mcp.example/mcp", "require_approval": "never"}
    ]});
    let response = post(&gateway.base, "/v1/responses", &body).await;
    assert_eq!(response.status(), 200);
    let metrics = metrics_text(&gateway.base).await;
    assert!(
        metrics.contains("mirror_silent_dropped_total{reason=\"mcp_tools\"} 1"),
        "{metrics}"
    );
    // The opt-out header is honoured as on chat.
    let response = client()
        .post(format!("{}/v1/responses", gateway.base))
        .header("x-mirror-silent", "off")
        .json(&json!({"model": "primary", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (report, _) = gateway.stop().await;
    assert_eq!(report.mirror.dropped_mcp_tools, 1);
    assert_eq!(report.mirror.dropped_opted_out, 1);
    assert!(report.mirror.is_balanced());
    assert_eq!(primary.count(), 2);
    assert_eq!(shadow.count(), 0);
    // The opt-out never reaches the upstream.
    assert!(primary.requests()[1].body.get("metadata").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_body_limit_and_errors_are_those_of_chat() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    let gateway = RunningGateway::start(&config(
        &primary,
        &shadow,
        "general_settings: {master_key: sk-master-1234}",
    ))
    .await;
    let http = client();
    let body = json!({"model": "primary", "input": "hi"});
    // No key: 401 with ids, on every route.
    for (method, path) in [
        ("POST", "/v1/responses".to_owned()),
        ("GET", "/v1/responses/resp_x".to_owned()),
        ("DELETE", "/openai/v1/responses/resp_x".to_owned()),
        ("POST", "/responses/resp_x/cancel".to_owned()),
        ("GET", "/v1/responses/resp_x/input_items".to_owned()),
    ] {
        let response = http
            .request(method.parse().unwrap(), format!("{}{path}", gateway.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
        assert!(response.headers().contains_key("x-mirror-call-id"));
    }
    let authed = |request: reqwest::RequestBuilder| request.bearer_auth("sk-master-1234");
    // Too large a body.
    let big = json!({"model": "primary", "input": "x".repeat(8192)});
    let response = authed(http.post(format!("{}/v1/responses", gateway.base)))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(response.headers().contains_key("x-mirror-call-id"));
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "request_too_large");
    // Not JSON, and a model that names no group.
    let response = authed(http.post(format!("{}/v1/responses", gateway.base)))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = authed(http.post(format!("{}/v1/responses", gateway.base)))
        .json(&json!({"model": "nope", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "model_not_found");
    // A failing upstream: its status and OpenAI's shape, on a whole and on a streamed create.
    primary.set_default(mirror_test_support::Behaviour::server_error());
    for stream in [false, true] {
        let response = authed(http.post(format!("{}/v1/responses", gateway.base)))
            .json(&json!({"model": "primary", "input": "hi", "stream": stream}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_server_error(), "{stream}");
        let error: Value = response.json().await.unwrap();
        assert!(error["error"]["message"].is_string(), "{error}");
    }
    let (report, _) = gateway.stop().await;
    assert!(report.mirror.is_balanced());
    assert_eq!(primary.count(), 2);
}
