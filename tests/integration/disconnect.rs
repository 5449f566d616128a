//! A client that hangs up mid-call: the gateway's handler is cancelled, and the call is recorded
//! once, as cancelled, with the deployment's load given back.

use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::{client, start_upstream, RunningGateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_is_recorded_as_cancelled() {
    let (upstream, base) = start_upstream().await;
    let gateway = RunningGateway::start(&format!(
        r#"
model_list:
  - model_name: held
    litellm_params: {{model: openai/held, api_base: "{base}/v1", api_key: sk-upstream-secret}}
router_settings: {{num_retries: 0, routing_strategy: least-busy}}
mirror_settings:
  log_file: "{{log}}"
"#
    ))
    .await;
    let address = gateway.base.trim_start_matches("http://").to_owned();
    let body = r#"{"model": "held", "messages": [{"role": "user", "content": "hello"}]}"#;
    let mut connection = TcpStream::connect(&address).await.unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    connection.write_all(request.as_bytes()).await.unwrap();
    upstream
        .wait_until("the held request", |seen| {
            seen.iter().any(|request| request.body["model"] == "held")
        })
        .await;
    // The client hangs up while the upstream still holds the call.
    drop(connection);

    // The gateway notices and cancels the call: its load is back to zero while the upstream is
    // still holding (an uncancelled handler would hold it until the upstream answers).
    let metrics_url = format!("{}/metrics", gateway.base);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = client()
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let cancelled = metrics.lines().any(|line| {
            line.starts_with("mirror_calls_total{model_group=\"held\"")
                && line.ends_with("status=\"cancelled\"} 1")
        });
        if cancelled {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no cancelled call in /metrics:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    upstream.release();

    let (_report, records) = gateway.stop().await;
    let calls: Vec<&Value> = records.iter().collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["status"], "cancelled");
    assert_eq!(calls[0]["error_information"]["error_class"], "cancelled");
    assert_eq!(calls[0]["model_group"], "held");
}
