//! The response cache over real HTTP (`litellm_settings.cache`): hits, misses, LiteLLM's
//! per-request controls, expiry, and mirroring that still fires on a hit.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{client, metrics_text, start_upstream, RunningGateway};

fn config(upstream: &str, cache_params: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: primary
    litellm_params: {{model: openai/echo, api_base: "{upstream}/v1", api_key: sk-upstream-secret, silent_model: shadow}}
  - model_name: shadow
    litellm_params: {{model: openai/shadow-echo, api_base: "{upstream}/v1", api_key: sk-upstream-secret}}
  - model_name: embed
    litellm_params: {{model: openai/embed, api_base: "{upstream}/v1"}}
router_settings: {{num_retries: 0}}
litellm_settings:
  cache: true
  cache_params: {{type: local{cache_params}}}
mirror_settings:
  log_file: "{{log}}"
"#
    )
}

fn chat(text: &str) -> Value {
    json!({"model": "primary", "messages": [{"role": "user", "content": text}]})
}

fn with_cache(mut body: Value, cache: Value) -> Value {
    body["cache"] = cache;
    body
}

/// Posts a chat request; returns the `x-mirror-cache` header and the body.
async fn post(base: &str, path: &str, body: &Value) -> (String, Option<String>, Value) {
    let response = client()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let cache = header("x-mirror-cache").unwrap_or_default();
    let key = header("x-litellm-cache-key");
    (cache, key, response.json().await.unwrap())
}

fn upstream_calls(upstream: &mirror_test_support::Upstream, model: &str) -> usize {
    upstream
        .requests()
        .iter()
        .filter(|r| r.body["model"] == model)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_request_is_answered_from_the_cache_and_still_mirrored() {
    let (upstream, base) = start_upstream().await;
    let gateway = RunningGateway::start(&config(&base, "")).await;
    let url = &gateway.base;

    let (first, first_key, first_body) = post(url, "/v1/chat/completions", &chat("hello")).await;
    assert_eq!(first, "miss");
    assert_eq!(first_key, None, "LiteLLM sends the key on hits only");
    let (second, second_key, second_body) = post(url, "/v1/chat/completions", &chat("hello")).await;
    assert_eq!(second, "hit");
    assert!(second_key.is_some_and(|key| key.len() == 64));
    assert_eq!(first_body, second_body);
    assert_eq!(upstream_calls(&upstream, "echo"), 1);

    // A different body is a different answer.
    let (third, _, third_body) = post(url, "/v1/chat/completions", &chat("other")).await;
    assert_eq!(third, "miss");
    assert_eq!(
        third_body["choices"][0]["message"]["content"],
        "echo: other"
    );
    assert_eq!(upstream_calls(&upstream, "echo"), 2);

    let metrics = metrics_text(url).await;
    assert!(metrics.contains("mirror_cache_hits_total 1"), "{metrics}");
    assert!(metrics.contains("mirror_cache_misses_total 2"), "{metrics}");

    let (report, records) = gateway.stop().await;
    // The shadow measures production traffic: the hit was mirrored like the misses.
    assert_eq!(upstream_calls(&upstream, "shadow-echo"), 3);
    assert_eq!(report.mirror.completed, 3, "{:?}", report.mirror);
    assert!(report.mirror.is_balanced());
    let primaries: Vec<&Value> = records
        .iter()
        .filter(|r| r["model_group"] == "primary")
        .collect();
    assert_eq!(primaries.len(), 3);
    let hits: Vec<&&Value> = primaries
        .iter()
        .filter(|r| r["metadata"]["cache_hit"] == true)
        .collect();
    assert_eq!(hits.len(), 1, "{primaries:?}");
    assert_eq!(hits[0]["status"], "success");
    assert_eq!(hits[0]["response_cost"], 0.0);
    // Silent copies never read the cache: none of theirs is a hit.
    assert!(records
        .iter()
        .filter(|r| r["metadata"]["is_silent_experiment"] == true)
        .all(|r| r["metadata"].get("cache_hit").is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_store_and_no_cache_are_obeyed_and_never_sent_upstream() {
    let (upstream, base) = start_upstream().await;
    let gateway = RunningGateway::start(&config(&base, "")).await;
    let url = &gateway.base;
    let path = "/v1/chat/completions";

    let no_store = with_cache(chat("a"), json!({"no-store": true}));
    assert_eq!(post(url, path, &no_store).await.0, "miss");
    // Not stored: the next one calls the upstream again (and stores its answer).
    assert_eq!(post(url, path, &chat("a")).await.0, "miss");
    assert_eq!(upstream_calls(&upstream, "echo"), 2);
    // no-cache skips the lookup.
    let no_cache = with_cache(chat("a"), json!({"no-cache": true}));
    assert_eq!(post(url, path, &no_cache).await.0, "miss");
    assert_eq!(upstream_calls(&upstream, "echo"), 3);
    // The controls are not part of the key, and were never forwarded.
    assert_eq!(post(url, path, &no_cache).await.0, "miss");
    assert_eq!(post(url, path, &chat("a")).await.0, "hit");
    assert_eq!(upstream_calls(&upstream, "echo"), 4);
    assert!(upstream
        .requests()
        .iter()
        .all(|r| r.body.get("cache").is_none()));

    // A control LiteLLM does not know is refused by name.
    let response = client()
        .post(format!("{url}{path}"))
        .json(&with_cache(chat("a"), json!({"no_cache": true})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cache.no_cache"),
        "{body}"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_expires_after_its_ttl() {
    let (upstream, base) = start_upstream().await;
    let gateway = RunningGateway::start(&config(&base, ", ttl: 600")).await;
    let url = &gateway.base;
    let path = "/v1/chat/completions";

    // A per-request ttl shorter than the configured one.
    let short = with_cache(chat("short"), json!({"ttl": 0.2}));
    assert_eq!(post(url, path, &short).await.0, "miss");
    assert_eq!(post(url, path, &chat("long")).await.0, "miss");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(post(url, path, &chat("short")).await.0, "miss");
    // The configured ttl has not run out.
    assert_eq!(post(url, path, &chat("long")).await.0, "hit");
    assert_eq!(upstream_calls(&upstream, "echo"), 3);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_are_cached() {
    let (upstream, base) = start_upstream().await;
    let gateway = RunningGateway::start(&config(&base, "")).await;
    let body = json!({"model": "embed", "input": "some text"});
    let (first, _, first_body) = post(&gateway.base, "/v1/embeddings", &body).await;
    let (second, _, second_body) = post(&gateway.base, "/v1/embeddings", &body).await;
    assert_eq!((first.as_str(), second.as_str()), ("miss", "hit"));
    assert_eq!(first_body, second_body);
    assert_eq!(upstream_calls(&upstream, "embed"), 1);
    gateway.stop().await;
}

/// Reads one counter from a gateway's `/metrics`.
async fn metric(base: &str, name: &str) -> u64 {
    let text = metrics_text(base).await;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .map_or(0, |value| value.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cache_is_shared_between_two_gateways() {
    let Ok(url) = std::env::var("MIRROR_TEST_REDIS_URL") else {
        panic!("MIRROR_TEST_REDIS_URL is not set: source /tmp/mirror-test-env (CI starts Redis)");
    };
    let address = url.trim_start_matches("redis://");
    let (host, port) = address.rsplit_once(':').unwrap();
    // A namespace of its own, so answers left by an earlier run are never found.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let namespace = format!("test-{}-{nanos}", std::process::id());
    let (upstream, base) = start_upstream().await;
    let params = format!(", host: {host}, port: {port}, namespace: {namespace}, ttl: 60");
    let config = config(&base, &params).replace("type: local", "type: redis");
    let first = RunningGateway::start(&config).await;
    let second = RunningGateway::start(&config).await;
    let path = "/v1/chat/completions";

    assert_eq!(post(&first.base, path, &chat("shared")).await.0, "miss");
    // The store runs in the background: wait until it landed (not a timing assertion: the
    // bound only stops a broken build from hanging).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while metric(&first.base, "mirror_cache_stores_total").await < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store never landed in Redis"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, key, body) = post(&second.base, path, &chat("shared")).await;
    assert_eq!(status, "hit");
    assert!(key.unwrap().starts_with(&format!("{namespace}:")));
    assert_eq!(body["choices"][0]["message"]["content"], "echo: shared");
    assert_eq!(upstream_calls(&upstream, "echo"), 1);
    assert_eq!(metric(&second.base, "mirror_cache_errors_total").await, 0);

    let (report, _) = second.stop().await;
    // The hit on the second gateway was mirrored there.
    assert_eq!(report.mirror.completed, 1, "{:?}", report.mirror);
    first.stop().await;
    assert_eq!(upstream_calls(&upstream, "shadow-echo"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_off_caches_only_on_use_cache_and_s_maxage_rejects_old_answers() {
    let (upstream, base) = start_upstream().await;
    let gateway = RunningGateway::start(&config(&base, ", mode: default_off")).await;
    let url = &gateway.base;
    let path = "/v1/chat/completions";

    // Without `use-cache` the cache does not apply at all: no header, no store.
    let http = client();
    let plain = http
        .post(format!("{url}{path}"))
        .json(&chat("x"))
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("x-mirror-cache").is_none());
    let opted = with_cache(chat("x"), json!({"use-cache": true}));
    assert_eq!(post(url, path, &opted).await.0, "miss");
    assert_eq!(post(url, path, &opted).await.0, "hit");
    assert_eq!(upstream_calls(&upstream, "echo"), 2);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    // An answer older than `s-maxage` is not used (and the new answer replaces it).
    let fresh_only = with_cache(chat("x"), json!({"use-cache": true, "s-maxage": 0.5}));
    assert_eq!(post(url, path, &fresh_only).await.0, "miss");
    assert_eq!(post(url, path, &opted).await.0, "hit");
    assert_eq!(upstream_calls(&upstream, "echo"), 3);
    gateway.stop().await;
}
