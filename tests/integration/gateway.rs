//! The gateway over real HTTP: endpoints, auth, error shapes, mirroring at the edge, drain.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{client, metrics_text, start_upstream, RunningGateway};

fn config(upstream: &str, extra: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: primary
    litellm_params: {{model: openai/echo, api_base: "{upstream}/v1", api_key: sk-upstream-secret, silent_model: shadow}}
    model_info: {{id: primary-1}}
  - model_name: shadow
    litellm_params: {{model: openai/shadow-echo, api_base: "{upstream}/v1", api_key: sk-upstream-secret}}
  - model_name: broken
    litellm_params: {{model: openai/fail-500, api_base: "{upstream}/v1"}}
  - model_name: limited
    litellm_params: {{model: openai/rate-limited, api_base: "{upstream}/v1"}}
  - model_name: small
    litellm_params: {{model: openai/context, api_base: "{upstream}/v1"}}
  - model_name: slow
    litellm_params: {{model: openai/held, api_base: "{upstream}/v1", timeout: 0.5}}
  - model_name: held
    litellm_params: {{model: openai/held, api_base: "{upstream}/v1"}}
router_settings: {{num_retries: 0}}
mirror_settings:
  log_file: "{{log}}"
  max_body_bytes: 4096
{extra}
"#
    )
}

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

async fn post(base: &str, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"].get("type").is_some(), "{body}");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_answers_with_id_headers_and_mirrors_to_the_shadow() {
    let (upstream, base) = start_upstream().await;
    let gateway = RunningGateway::start(&config(&base, "")).await;

    let response = post(&gateway.base, "/v1/chat/completions", &chat_body("primary")).await;
    assert_eq!(response.status(), 200);
    let call_id = response.headers()["x-mirror-call-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let trace_id = response.headers()["x-mirror-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "echo: hello");

    // The unversioned path works too.
    let response = post(&gateway.base, "/chat/completions", &chat_body("primary")).await;
    assert_eq!(response.status(), 200);

    let (report, records) = gateway.stop().await;
    assert!(report.requests_drained);
    assert_eq!(report.mirror.completed, 2, "{:?}", report.mirror);
    assert!(report.mirror.is_balanced());
    assert_eq!(report.writer.dropped(), 0);

    // The shadow upstream saw the copy, with the shadow's model and no gateway metadata.
    let requests = upstream.requests();
    let shadows: Vec<_> = requests
        .iter()
        .filter(|r| r.body["model"] == "shadow-echo")
        .collect();
    assert_eq!(shadows.len(), 2);
    assert!(shadows.iter().all(|r| r.body.get("metadata").is_none()));
    assert!(requests
        .iter()
        .all(|r| r.body.get("silent_model").is_none()));
    assert!(requests.iter().all(|r| r.path == "/v1/chat/completions"));
    assert!(requests
        .iter()
        .all(|r| r.headers["authorization"] == "Bearer sk-upstream-secret"));

    // The log pairs them: the flush on shutdown wrote everything.
    assert_eq!(records.len(), 4);
    let primary = records
        .iter()
        .find(|r| r["litellm_call_id"] == call_id.as_str())
        .expect("the primary record");
    assert_eq!(primary["trace_id"], trace_id.as_str());
    let shadow = records
        .iter()
        .find(|r| r["metadata"]["mirror_of"] == call_id.as_str())
        .expect("the shadow record");
    assert_eq!(shadow["trace_id"], trace_id.as_str());
    assert_eq!(shadow["metadata"]["is_silent_experiment"], true);
    assert_eq!(shadow["model_group"], "shadow");
    // No secret reaches a record.
    assert!(!serde_json::to_string(&records)
        .unwrap()
        .contains("sk-upstream-secret"));
}

/// An embeddings call to a mirrored deployment: the primary and its silent copy are paired in the
/// JSONL log, both `aembedding`, each with the shape of its answer and no vectors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_are_mirrored_and_paired_in_the_log_with_their_dimensions() {
    let (upstream, base) = start_upstream().await;
    let gateway = RunningGateway::start(&config(&base, "")).await;
    let response = post(
        &gateway.base,
        "/v1/embeddings",
        &json!({"model": "primary", "input": ["a"], "dimensions": 2, "encoding_format": "float"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let call_id = response.headers()["x-mirror-call-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let trace_id = response.headers()["x-mirror-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"][0]["embedding"], json!([0.5, -0.5]));

    let (report, records) = gateway.stop().await;
    assert_eq!(
        (report.mirror.mirrored, report.mirror.completed),
        (1, 1),
        "{:?}",
        report.mirror
    );
    assert!(report.mirror.is_balanced());
    let shadow_requests: Vec<_> = upstream
        .requests()
        .into_iter()
        .filter(|r| r.body["model"] == "shadow-echo")
        .collect();
    assert_eq!(shadow_requests.len(), 1);
    assert_eq!(shadow_requests[0].path, "/v1/embeddings");
    assert_eq!(shadow_requests[0].body["dimensions"], 2);

    assert_eq!(records.len(), 2, "{records:?}");
    let primary = records
        .iter()
        .find(|r| r["litellm_call_id"] == call_id.as_str())
        .expect("the primary record");
    let shadow = records
        .iter()
        .find(|r| r["metadata"]["mirror_of"] == call_id.as_str())
        .expect("the shadow record");
    for record in [primary, shadow] {
        assert_eq!(record["call_type"], "aembedding");
        assert_eq!(record["trace_id"], trace_id.as_str());
        assert_eq!(
            record["metadata"]["embedding"],
            json!({"vectors": 1, "dimensions": 2, "requested_dimensions": 2})
        );
        assert_eq!(record["prompt_tokens"], 2);
    }
    assert_eq!(shadow["metadata"]["is_silent_experiment"], true);
    // The vectors never reach the log.
    let log = serde_json::to_string(&records).unwrap();
    assert!(!log.contains("-0.5"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_relays_chunks_usage_and_done() {
    let gateway = RunningGateway::start(&mock_config("")).await;
    let body = json!({
        "model": "primary", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "one two three"}]
    });
    let response = post(&gateway.base, "/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert!(response.headers().contains_key("x-mirror-call-id"));
    let text = response.text().await.unwrap();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| event.strip_prefix("data: ").unwrap())
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|event| serde_json::from_str(event).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "one two three");
    let usage = &chunks.last().unwrap()["usage"];
    assert!(usage["total_tokens"].as_u64().unwrap() > 0, "{usage}");
    let (report, records) = gateway.stop().await;
    assert_eq!(report.mirror.completed, 1);
    // The shadow of a stream is a stream, read to the end: it has a first-token time and usage.
    let shadow = records
        .iter()
        .find(|r| r["metadata"]["is_silent_experiment"] == true)
        .unwrap();
    assert_eq!(shadow["stream"], true);
    assert!(shadow["completionStartTime"].is_f64());
    assert!(shadow["total_tokens"].as_u64().unwrap() > 0);
}

fn mock_config(extra: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: primary
    litellm_params: {{model: mock/primary, silent_model: shadow}}
  - model_name: shadow
    litellm_params: {{model: mock/shadow}}
  - model_name: embedder
    litellm_params: {{model: mock/embed}}
mirror_settings:
  log_file: "{{log}}"
{extra}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_models_health_and_metrics() {
    let gateway = RunningGateway::start(&mock_config("")).await;
    let response = post(
        &gateway.base,
        "/v1/embeddings",
        &json!({"model": "embedder", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);

    let models: Value = client()
        .get(format!("{}/v1/models", gateway.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["embedder", "primary", "shadow"]);

    for path in ["/health", "/health/liveliness", "/health/readiness"] {
        let response = client()
            .get(format!("{}{path}", gateway.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }

    post(&gateway.base, "/v1/chat/completions", &chat_body("primary")).await;
    let metrics = metrics_text(&gateway.base).await;
    assert!(
        metrics.contains("mirror_silent_mirrored_total 1"),
        "{metrics}"
    );
    // The primary call is counted under its deployment's (generated) id, not as unattributed.
    let primary_line = metrics
        .lines()
        .find(|line| {
            line.starts_with("mirror_calls_total{model_group=\"primary\",deployment=\"")
                && !line.contains("deployment=\"\"")
                && line.contains("silent=\"false\",status=\"success\"")
        })
        .expect("a series for the primary deployment");
    assert!(primary_line.ends_with(" 1"), "{primary_line}");
    assert!(metrics.contains("mirror_gateway_overhead_seconds_count"));
    assert!(metrics.contains("mirror_sink_records_total{sink=\"jsonl\",outcome=\"submitted\"}"));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_openai_shape_and_status() {
    let (_upstream, base) = start_upstream().await;
    let gateway = RunningGateway::start(&config(&base, "")).await;
    let url = format!("{}/v1/chat/completions", gateway.base);

    let bad_json = client().post(&url).body("{not json").send().await.unwrap();
    // Even a request refused before routing gets ids.
    assert!(bad_json.headers().contains_key("x-mirror-call-id"));
    assert!(bad_json.headers().contains_key("x-mirror-trace-id"));
    assert_eq!(error_of(bad_json).await.0, 400);
    let missing = post(
        &gateway.base,
        "/v1/chat/completions",
        &json!({"messages": []}),
    )
    .await;
    let (status, body) = error_of(missing).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("model"),
        "{body}"
    );
    let empty = post(
        &gateway.base,
        "/v1/chat/completions",
        &json!({"model": "primary", "messages": []}),
    )
    .await;
    assert_eq!(error_of(empty).await.0, 400);

    let unknown = post(&gateway.base, "/v1/chat/completions", &chat_body("primray")).await;
    let (status, body) = error_of(unknown).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "model_not_found");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("did you mean `primary`"));

    let big =
        json!({"model": "primary", "messages": [{"role": "user", "content": "x".repeat(10_000)}]});
    let (status, body) = error_of(post(&gateway.base, "/v1/chat/completions", &big).await).await;
    assert_eq!(status, 413, "{body}");

    let limited = post(&gateway.base, "/v1/chat/completions", &chat_body("limited")).await;
    assert_eq!(limited.headers()["retry-after"], "7");
    let (status, body) = error_of(limited).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["type"], "rate_limit_error");

    let broken = post(&gateway.base, "/v1/chat/completions", &chat_body("broken")).await;
    assert!(broken.headers().contains_key("x-mirror-call-id"));
    assert_eq!(error_of(broken).await.0, 502);

    let small = post(&gateway.base, "/v1/chat/completions", &chat_body("small")).await;
    let (status, body) = error_of(small).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "context_length_exceeded");

    let slow = post(&gateway.base, "/v1/chat/completions", &chat_body("slow")).await;
    let (status, body) = error_of(slow).await;
    assert_eq!(status, 504, "{body}");

    let nowhere = client()
        .get(format!("{}/v1/nowhere", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(nowhere).await.0, 404);

    // No error message carries the upstream key.
    let (_, records) = gateway.stop().await;
    assert!(!serde_json::to_string(&records)
        .unwrap()
        .contains("sk-upstream-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_key_guards_everything_but_health() {
    let gateway = RunningGateway::start(&mock_config(
        "general_settings: {master_key: sk-master-1234}",
    ))
    .await;
    let url = format!("{}/v1/chat/completions", gateway.base);
    let send = |key: Option<(&'static str, String)>| {
        let mut request = client().post(&url).json(&chat_body("primary"));
        if let Some((name, value)) = key {
            request = request.header(name, value);
        }
        request.send()
    };
    let refused = send(None).await.unwrap();
    assert!(refused.headers().contains_key("x-mirror-call-id"));
    let (status, body) = error_of(refused).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["type"], "authentication_error");
    let wrong = send(Some(("authorization", "Bearer sk-master-12345".to_owned())))
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = send(Some(("authorization", "Bearer sk-master-1234".to_owned())))
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    let azure_style = send(Some(("api-key", "sk-master-1234".to_owned())))
        .await
        .unwrap();
    assert_eq!(azure_style.status(), 200);
    let metrics = client()
        .get(format!("{}/metrics", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 401);
    let health = client()
        .get(format!("{}/health/liveliness", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opt_out_header_suppresses_the_copy_and_is_counted() {
    let gateway = RunningGateway::start(&mock_config("")).await;
    let response = client()
        .post(format!("{}/v1/chat/completions", gateway.base))
        .header("x-mirror-silent", "off")
        .json(&chat_body("primary"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (report, records) = gateway.stop().await;
    assert_eq!(report.mirror.dropped_opted_out, 1);
    assert_eq!(report.mirror.completed, 0);
    assert_eq!(records.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_paths_route_by_deployment() {
    let gateway = RunningGateway::start(&mock_config("")).await;
    let response = client()
        .post(format!(
            "{}/openai/deployments/primary/chat/completions?api-version=2024-10-21",
            gateway.base
        ))
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "hi");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests_and_flushes_the_log() {
    let (upstream, base) = start_upstream().await;
    let mut gateway = RunningGateway::start(&config(&base, "")).await;
    let url = format!("{}/v1/chat/completions", gateway.base);
    let in_flight = tokio::spawn(async move {
        client()
            .post(url)
            .json(&chat_body("held"))
            .send()
            .await
            .unwrap()
    });
    // Wait until the upstream holds the request, then ask the gateway to stop.
    upstream
        .wait_until("the held request", |seen| {
            seen.iter().any(|request| request.body["model"] == "held")
        })
        .await;
    gateway.begin_stop();
    // The gateway stops taking new requests but lets the held one finish.
    upstream.release();
    let response = in_flight.await.unwrap();
    assert_eq!(response.status(), 200);
    let (report, records) = gateway.finish().await;
    assert!(report.requests_drained);
    assert_eq!(records.len(), 1, "the held call was logged before exit");
    assert_eq!(report.writer.dropped(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_shadow_trips_its_breaker_and_metrics_show_the_unhealthy_drops() {
    let gateway = RunningGateway::start(
        r#"
model_list:
  - model_name: primary
    litellm_params: {model: mock/primary, silent_model: shadow}
  - model_name: shadow
    litellm_params: {model: mock/shadow, mock_failure_rate: 1.0}
router_settings: {num_retries: 0, allowed_fails: 1, cooldown_time: 60}
mirror_settings:
  log_file: null
  silent_queue_max_bytes: 1048576
"#,
    )
    .await;
    let metrics = || async { metrics_text(&gateway.base).await };
    let response = post(&gateway.base, "/v1/chat/completions", &chat_body("primary")).await;
    assert_eq!(response.status(), 200);
    // The first copy fails and trips the breaker (`allowed_fails: 1`).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // Waits for the copy to end too (the breaker opens just before the copy is counted failed).
    loop {
        let text = metrics().await;
        if text.contains("mirror_silent_breakers_open 1")
            && text.contains("mirror_silent_in_flight 0")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            metrics().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..2 {
        let response = post(&gateway.base, "/v1/chat/completions", &chat_body("primary")).await;
        assert_eq!(response.status(), 200);
    }
    let text = metrics().await;
    for line in [
        "mirror_silent_mirrored_total 3",
        "mirror_silent_failed_total 1",
        "mirror_silent_dropped_total{reason=\"unhealthy\"} 2",
        "mirror_silent_in_flight 0",
        "mirror_silent_bytes 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    gateway.stop().await;
}
