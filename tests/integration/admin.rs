//! The admin API over real HTTP: run-time controls, budgets and ends, config reload, and a
//! caller's `traceparent` through to both records.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{client, start_upstream, RunningGateway};

const KEY: &str = "sk-admin-test-master";

fn config(upstream: &str, extra_groups: &str, mirror_extra: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: primary
    litellm_params: {{model: openai/echo, api_base: "{upstream}/v1", api_key: sk-upstream, silent_model: shadow}}
  - model_name: shadow
    litellm_params: {{model: openai/shadow-echo, api_base: "{upstream}/v1", api_key: sk-upstream}}
    model_info: {{input_cost_per_token: 0.001}}
{extra_groups}
router_settings: {{num_retries: 0}}
general_settings: {{master_key: {KEY}}}
mirror_settings:
  log_file: "{{log}}"
{mirror_extra}
"#
    )
}

async fn call(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = client()
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .bearer_auth(KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn chat(base: &str, model: &str) -> reqwest::Response {
    client()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap()
}

/// Waits (bounded) until `/admin/mirror`'s first target satisfies `check`; returns the settings.
async fn settings_where(base: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, settings) = call(base, "GET", "/admin/mirror", None).await;
        if check(&settings["targets"][0]) {
            return settings;
        }
        assert!(tokio::time::Instant::now() < deadline, "{settings}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn metric(base: &str, line_start: &str) -> u64 {
    let (_, text) = call(base, "GET", "/metrics", None).await;
    let text = text.as_str().unwrap_or_default().to_owned();
    text.lines()
        .find_map(|line| line.strip_prefix(line_start))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{line_start}` in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_switches_targets_and_shows_budgets_and_ends() {
    let (_upstream, base) = start_upstream().await;
    let yaml = config(
        &base,
        "",
        "  silent_targets:\n    shadow: {max_spend_usd: 0.001, budget_duration: 1d, until: \"2099-01-01\"}",
    );
    let gateway = RunningGateway::start(&yaml).await;
    let url = gateway.base.clone();

    // Behind the master key.
    let response = client()
        .get(format!("{url}/admin/mirror"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let (status, settings) = call(&url, "GET", "/admin/mirror", None).await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["enabled"], true);
    assert_eq!(settings["config_version"], 1);
    assert_eq!(
        settings["targets"],
        json!([{
            "primary_group": "primary", "silent_group": "shadow", "enabled": true,
            "sample_rate": 1.0, "max_spend_usd": 0.001, "spend_period": "day", "spent_usd": 0.0,
            "until": "2099-01-01T00:00:00Z", "state": "active"
        }])
    );

    // Switched off: the copy is dropped as `disabled`.
    let (status, settings) = call(
        &url,
        "POST",
        "/admin/mirror/targets/shadow",
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["targets"][0]["state"], "disabled");
    assert_eq!(chat(&url, "primary").await.status(), 200);
    assert_eq!(
        metric(&url, "mirror_silent_dropped_total{reason=\"disabled\"}").await,
        1
    );

    // Bad requests name the field; unknown targets are 404.
    let (status, body) = call(
        &url,
        "POST",
        "/admin/mirror/targets/shadow",
        Some(json!({"sample_rate": 1.5})),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["param"]),
        (400, &json!("sample_rate"))
    );
    let (status, body) = call(
        &url,
        "POST",
        "/admin/mirror/targets/shadow",
        Some(json!({"enabled": "yes"})),
    )
    .await;
    assert_eq!((status, &body["error"]["param"]), (400, &json!("enabled")));
    let (status, body) = call(
        &url,
        "POST",
        "/admin/mirror/targets/primary",
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // On again at rate 1: one copy runs, spends past the budget, and the next is dropped.
    let (status, _) = call(
        &url,
        "POST",
        "/admin/mirror/targets/shadow",
        Some(json!({"enabled": true, "sample_rate": 1.0})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(chat(&url, "primary").await.status(), 200);
    let settings = settings_where(&url, |t| t["state"] == "budget_exhausted").await;
    assert!(settings["targets"][0]["spent_usd"].as_f64().unwrap() >= 0.001);
    assert_eq!(chat(&url, "primary").await.status(), 200);
    assert_eq!(
        metric(
            &url,
            "mirror_silent_dropped_total{reason=\"budget_exhausted\"}"
        )
        .await,
        1
    );
    assert_eq!(
        metric(
            &url,
            "mirror_silent_target_state{silent_group=\"shadow\",state=\"budget_exhausted\"}"
        )
        .await,
        1
    );

    // The global switch.
    let (status, settings) = call(
        &url,
        "POST",
        "/admin/mirror",
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!((status, &settings["enabled"]), (200, &json!(false)));
    let (status, body) = call(&url, "POST", "/admin/mirror", Some(json!({}))).await;
    assert_eq!((status, &body["error"]["param"]), (400, &json!("enabled")));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_past_end_drops_copies_as_experiment_ended() {
    let (_upstream, base) = start_upstream().await;
    let yaml = config(
        &base,
        "",
        "  silent_targets:\n    shadow: {until: \"2020-01-01T00:00:00Z\"}",
    );
    let gateway = RunningGateway::start(&yaml).await;
    let (_, settings) = call(&gateway.base, "GET", "/admin/mirror", None).await;
    assert_eq!(settings["targets"][0]["state"], "ended");
    assert_eq!(chat(&gateway.base, "primary").await.status(), 200);
    assert_eq!(
        metric(
            &gateway.base,
            "mirror_silent_dropped_total{reason=\"experiment_ended\"}"
        )
        .await,
        1
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_master_key_the_admin_api_is_open_on_loopback_only() {
    let (_upstream, base) = start_upstream().await;
    let yaml =
        config(&base, "", "").replace(&format!("general_settings: {{master_key: {KEY}}}"), "");
    // Listening on every address: refused.
    let open = RunningGateway::start_on(&yaml, "0.0.0.0:0", None).await;
    let (status, body) = call(&open.base, "GET", "/admin/mirror", None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("master_key"));
    open.stop().await;
    // Loopback only: allowed.
    let local = RunningGateway::start(&yaml).await;
    let (status, _) = call(&local.base, "GET", "/admin/mirror", None).await;
    assert_eq!(status, 200);
    local.stop().await;
    // Or by saying so.
    let yaml = yaml.replace(
        "mirror_settings:\n",
        "mirror_settings:\n  admin_without_key: true\n",
    );
    let said = RunningGateway::start_on(&yaml, "0.0.0.0:0", None).await;
    let (status, _) = call(&said.base, "GET", "/admin/mirror", None).await;
    assert_eq!(status, 200);
    said.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_groups_keeps_counters_and_refuses_an_invalid_file() {
    let (_upstream, base) = start_upstream().await;
    let dir = std::env::temp_dir().join(format!("mirror-admin-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.yaml");
    let gateway =
        RunningGateway::start_on(&config(&base, "", ""), "127.0.0.1:0", Some(&file)).await;
    let url = gateway.base.clone();
    let log = gateway.log.display().to_string();
    assert_eq!(chat(&url, "primary").await.status(), 200);
    settings_where(&url, |t| t["spent_usd"].as_f64() > Some(0.0)).await;
    let (status, _) = call(
        &url,
        "POST",
        "/admin/mirror/targets/shadow",
        Some(json!({"sample_rate": 0.5})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(chat(&url, "added").await.status(), 404);

    // A new group appears; counters, spend and the run-time rate carry over.
    let added = format!(
        "  - model_name: added\n    litellm_params: {{model: openai/added, api_base: \"{base}/v1\"}}"
    );
    std::fs::write(&file, config(&base, &added, "").replace("{log}", &log)).unwrap();
    let (status, body) = call(&url, "POST", "/admin/reload", None).await;
    assert_eq!(
        (status, &body["config_version"]),
        (200, &json!(2)),
        "{body}"
    );
    assert_eq!(chat(&url, "added").await.status(), 200);
    let (_, settings) = call(&url, "GET", "/admin/mirror", None).await;
    assert_eq!(settings["config_version"], 2);
    assert_eq!(settings["targets"][0]["sample_rate"], 0.5);
    assert!(settings["targets"][0]["spent_usd"].as_f64() > Some(0.0));
    assert_eq!(metric(&url, "mirror_silent_mirrored_total").await, 1);

    // An invalid file is refused with its location; the old config keeps serving.
    std::fs::write(
        &file,
        config(
            &base,
            &added,
            "  silent_targets:\n    shadow: {until: someday}",
        )
        .replace("{log}", &log),
    )
    .unwrap();
    let (status, body) = call(&url, "POST", "/admin/reload", None).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("mirror_settings.silent_targets.shadow.until") && message.contains("line"),
        "{message}"
    );
    assert_eq!(chat(&url, "added").await.status(), 200);
    let (_, settings) = call(&url, "GET", "/admin/mirror", None).await;
    assert_eq!(settings["config_version"], 2);
    gateway.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_traceparent_is_the_trace_of_the_primary_and_its_shadow() {
    let (_upstream, base) = start_upstream().await;
    let gateway = RunningGateway::start(&config(&base, "", "")).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = client()
        .post(format!("{}/v1/chat/completions", gateway.base))
        .bearer_auth(KEY)
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&json!({"model": "primary", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-mirror-trace-id"], trace);
    let call_id = response.headers()["x-mirror-call-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let (_, records) = gateway.stop().await;
    let primary = records
        .iter()
        .find(|r| r["litellm_call_id"] == call_id.as_str())
        .expect("the primary's record");
    let shadow = records
        .iter()
        .find(|r| r["metadata"]["mirror_of"] == call_id.as_str())
        .expect("the shadow's record");
    assert_eq!(primary["trace_id"], trace);
    assert_eq!(shadow["trace_id"], trace);
    assert_eq!(shadow["metadata"]["is_silent_experiment"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_during_a_reload_finishes_on_the_old_router_with_its_shadow() {
    let (upstream, base) = start_upstream().await;
    let dir = std::env::temp_dir().join(format!("mirror-admin-inflight-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.yaml");
    let held = format!(
        "  - model_name: held\n    litellm_params: {{model: openai/held, api_base: \"{base}/v1\", silent_model: shadow}}"
    );
    let gateway =
        RunningGateway::start_on(&config(&base, &held, ""), "127.0.0.1:0", Some(&file)).await;
    let url = gateway.base.clone();
    let log = gateway.log.display().to_string();
    let in_flight = tokio::spawn({
        let url = url.clone();
        async move { chat(&url, "held").await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !upstream
        .requests()
        .iter()
        .any(|r| r.body["model"] == "held")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the held call never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The reloaded file drops the group the call is in.
    std::fs::write(&file, config(&base, "", "").replace("{log}", &log)).unwrap();
    let (status, body) = call(&url, "POST", "/admin/reload", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(chat(&url, "held").await.status(), 404);

    upstream.release();
    let response = in_flight.await.unwrap();
    assert_eq!(response.status(), 200);
    let call_id = response.headers()["x-mirror-call-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let (report, records) = gateway.stop().await;
    assert!(report.mirror.is_balanced(), "{:?}", report.mirror);
    assert!(records
        .iter()
        .any(|r| r["litellm_call_id"] == call_id.as_str()));
    assert!(
        records
            .iter()
            .any(|r| r["metadata"]["mirror_of"] == call_id.as_str()),
        "the shadow of the in-flight call ran and was recorded"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
