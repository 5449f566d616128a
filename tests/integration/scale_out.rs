//! Several gateway instances behind one Redis, as `docs/deployment.md` describes: an rpm limit set
//! in the config holds across instances.
//!
//! Needs Redis: `.ci/setup.sh` starts one and prints `MIRROR_TEST_REDIS_URL`; without it the test
//! fails, unless `MIRROR_SKIP_REDIS_TESTS=1`.

use serde_json::json;

use crate::support::{client, metrics_text, RunningGateway};

fn redis_url() -> Option<String> {
    if let Ok(url) = std::env::var("MIRROR_TEST_REDIS_URL") {
        return Some(url);
    }
    if std::env::var("MIRROR_SKIP_REDIS_TESTS").as_deref() == Ok("1") {
        eprintln!("MIRROR_SKIP_REDIS_TESTS=1: skipping a test that needs Redis");
        return None;
    }
    panic!(
        "MIRROR_TEST_REDIS_URL is not set: this test needs Redis. Run `bash .ci/setup.sh` and \
         export its MIRROR_TEST_REDIS_URL line, or set MIRROR_SKIP_REDIS_TESTS=1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_share_one_rpm_limit() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("mirror-gateway-test-{}", std::process::id());
    let yaml = format!(
        r#"
model_list:
  - model_name: limited
    litellm_params: {{model: mock/limited, rpm: 30}}
    model_info: {{id: limited-1}}
router_settings:
  num_retries: 0
  redis_url: "{url}"
  redis_key_prefix: "{prefix}"
  redis_sync_interval_ms: 50
  # Generous, so that a loaded CI machine does not push decisions onto local state (that fallback
  # is tested in the router's own suite).
  redis_timeout_ms: 2000
mirror_settings:
  log_file: "{{log}}"
"#
    );
    let gateways = [
        RunningGateway::start(&yaml).await,
        RunningGateway::start(&yaml).await,
        RunningGateway::start(&yaml).await,
    ];
    // An instance decides on local state until its first sync with Redis; wait for all three.
    for gateway in &gateways {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let metrics = metrics_text(&gateway.base).await;
            if metrics.contains("mirror_shared_state_connected 1")
                && !metrics.contains("mirror_shared_state_syncs_total 0\n")
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never synced with Redis:\n{metrics}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let body = json!({"model": "limited", "messages": [{"role": "user", "content": "hi"}]});
    let mut sends = Vec::new();
    for round in 0..30 {
        for gateway in &gateways {
            let url = format!("{}/v1/chat/completions", gateway.base);
            let body = body.clone();
            sends.push(tokio::spawn(async move {
                let _ = round;
                client()
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }));
        }
    }
    let mut admitted = 0;
    let mut refused = 0;
    for send in sends {
        match send.await.unwrap() {
            200 => admitted += 1,
            // Over the limit everywhere: no healthy deployment, answered with Retry-After.
            503 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    // 90 requests against a fleet-wide limit of 30 per minute: the limit holds within 5%, across the
    // three instances together (a minute boundary during the test could allow one more minute's 30).
    assert_eq!(admitted + refused, 90);
    assert!(
        (29..=32).contains(&admitted) || (59..=62).contains(&admitted),
        "admitted {admitted} of 90 against rpm 30"
    );
    for gateway in gateways {
        gateway.stop().await;
    }
}
