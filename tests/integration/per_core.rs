//! The per-core layout (`mirror serve --runtime per-core`): worker threads with their own runtime
//! and listener on one port share the connections, and the gateway's guarantees hold as in the
//! shared layout: mirroring, records, and a drain of every worker at shutdown.

use serde_json::{json, Value};

use crate::support::{start_upstream, RunningGateway};

fn config(upstream: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: primary
    litellm_params: {{model: openai/echo, api_base: "{upstream}/v1", silent_model: shadow}}
  - model_name: shadow
    litellm_params: {{model: openai/shadow-echo, api_base: "{upstream}/v1"}}
  - model_name: held
    litellm_params: {{model: openai/held, api_base: "{upstream}/v1", silent_model: shadow}}
router_settings: {{num_retries: 0}}
mirror_settings:
  log_file: "{{log}}"
"#
    )
}

fn chat_body(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// The per-worker accepted-connection counters of a `/metrics` page, in worker order.
fn accepted_per_worker(metrics: &str) -> Vec<u64> {
    metrics
        .lines()
        .filter(|line| line.starts_with("mirror_worker_connections_accepted_total{"))
        .map(|line| line.rsplit(' ').next().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_core_workers_share_connections_mirror_and_drain() {
    let (upstream, base) = start_upstream().await;
    let mut gateway = RunningGateway::start_per_core(&config(&base), 4, None).await;
    // A new connection per request: the kernel spreads connections over the workers' listeners by
    // their addresses (SO_REUSEPORT), so forty of them cannot all land on one of four workers but
    // by a chance of 4^-39.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = format!("{}/v1/chat/completions", gateway.base);
    for i in 0..40 {
        let response = fresh
            .post(&url)
            .json(&chat_body("primary", &format!("hello {i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("x-mirror-call-id"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"],
            format!("echo: hello {i}")
        );
    }
    let metrics = fresh
        .get(format!("{}/metrics", gateway.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let accepted = accepted_per_worker(&metrics);
    assert_eq!(accepted.len(), 4, "{metrics}");
    assert_eq!(accepted.iter().sum::<u64>(), 41, "{accepted:?}");
    assert!(
        accepted.iter().filter(|&&count| count > 0).count() >= 2,
        "every connection went to one worker: {accepted:?}"
    );

    // A mirrored request held by the upstream when the shutdown starts is finished, its copy
    // too, before the workers stop.
    let held = tokio::spawn(fresh.post(&url).json(&chat_body("held", "last")).send());
    upstream
        .wait_until("the held request", |seen| {
            seen.iter().any(|request| request.body["model"] == "held")
        })
        .await;
    gateway.begin_stop();
    upstream.release();
    let response = held.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    let (report, records) = gateway.finish().await;
    assert!(report.requests_drained);
    assert_eq!(report.connections_closed, 0);
    assert_eq!(report.mirror.completed, 41, "{:?}", report.mirror);
    assert!(report.mirror.is_balanced(), "{:?}", report.mirror);
    assert_eq!(report.writer.dropped(), 0);
    let silent = records
        .iter()
        .filter(|record| record["metadata"]["is_silent_experiment"] == true)
        .count();
    assert_eq!((records.len(), silent), (82, 41));
    // Every copy reached the shadow.
    let copies = upstream
        .requests()
        .iter()
        .filter(|request| request.body["model"] == "shadow-echo")
        .count();
    assert_eq!(copies, 41);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_core_reload_swaps_the_router_for_every_worker() {
    let (upstream, base) = start_upstream().await;
    let file = std::env::temp_dir().join(format!("mirror-per-core-{}.yaml", std::process::id()));
    let gateway = RunningGateway::start_per_core(&config(&base), 2, Some(&file)).await;
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = format!("{}/v1/chat/completions", gateway.base);
    let chat = |model: &'static str| fresh.post(&url).json(&chat_body(model, "hi")).send();
    assert_eq!(chat("added").await.unwrap().status(), 404);

    // The reload is asked of a worker and runs on the background runtime; every worker then
    // serves the new group, mirrored.
    let original = config(&base);
    let (models, rest) = original.split_once("router_settings").unwrap();
    let yaml = format!(
        "{models}  - model_name: added\n    litellm_params: {{model: openai/added, api_base: \"{base}/v1\", silent_model: shadow}}\nrouter_settings{rest}"
    );
    let log = gateway.log.display().to_string();
    std::fs::write(&file, yaml.replace("{log}", &log)).unwrap();
    let response = fresh
        .post(format!("{}/admin/reload", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["config_version"], 2, "{body}");
    for _ in 0..10 {
        assert_eq!(chat("added").await.unwrap().status(), 200);
    }

    let (report, _records) = gateway.stop().await;
    let _ = std::fs::remove_file(&file);
    assert!(report.requests_drained);
    assert_eq!(report.mirror.completed, 10, "{:?}", report.mirror);
    assert!(report.mirror.is_balanced(), "{:?}", report.mirror);
    let copies = upstream
        .requests()
        .iter()
        .filter(|request| request.body["model"] == "shadow-echo")
        .count();
    assert_eq!(copies, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_core_connection_limit_counts_across_workers() {
    let (upstream, base) = start_upstream().await;
    let yaml = format!("{}  max_client_connections: 2\n", config(&base));
    let gateway = RunningGateway::start_per_core(&yaml, 4, None).await;
    let url = format!("{}/v1/chat/completions", gateway.base);
    // Two clients keep their keep-alive connection open after one answer: both slots are taken,
    // whichever workers accepted them.
    let holders: Vec<reqwest::Client> = (0..2).map(|_| reqwest::Client::new()).collect();
    for holder in &holders {
        let response = holder
            .post(&url)
            .json(&chat_body("primary", "hold"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let third = tokio::spawn(
        reqwest::Client::new()
            .post(&url)
            .json(&chat_body("primary", "third"))
            .send(),
    );
    // However long it waits, the third connection is not served while both slots are held.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!third.is_finished());
    assert!(upstream
        .requests()
        .iter()
        .all(|request| request.body["messages"][0]["content"] != "third"));
    // Closing one frees a slot for it.
    drop(holders);
    let response = third.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    gateway.stop().await;
}
