//! Across formats at the gateway, over real HTTP: chat completions answered by a Claude
//! deployment (whole, streamed, and a 400 naming what cannot be translated), mirrored to a GPT
//! shadow, with the pairs in the JSONL log and in `mirror report`.

use std::path::PathBuf;

use mirror_report::{analyze_paths, ReportOptions};
use mirror_test_support::Upstream;
use serde_json::{json, Value};

use crate::support::{client, RunningGateway};

fn config(claude: &Upstream, gpt: &Upstream) -> String {
    format!(
        r#"
model_list:
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5-20250929, api_base: "{claude}", api_key: sk-ant-secret, silent_model: gpt}}
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{gpt}", api_key: sk-upstream-secret}}
router_settings: {{num_retries: 0}}
mirror_settings:
  log_file: "{{log}}"
"#,
        claude = claude.url(),
        gpt = gpt.base(),
    )
}

async fn post(base: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{base}/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claude_primary_answers_chat_and_is_paired_with_its_gpt_shadow_in_the_report() {
    let claude = Upstream::start("claude").await;
    let gpt = Upstream::start("gpt").await;
    let gateway = RunningGateway::start(&config(&claude, &gpt)).await;

    let weather = json!({
        "model": "claude",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather?"}],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    });
    let response = post(&gateway.base, &weather).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let message = &body["choices"][0]["message"];
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(message["tool_calls"][0]["function"]["name"], "weather");
    assert_eq!(
        message["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Paris"}"#
    );
    assert_eq!(
        body["usage"]["prompt_tokens"], 11,
        "cached tokens count in the prompt"
    );

    let streamed = json!({
        "model": "claude", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]
    });
    let response = post(&gateway.base, &streamed).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let mut content = String::new();
    let mut usage = Value::Null;
    for data in text.lines().filter_map(|line| line.strip_prefix("data: ")) {
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        if let Some(piece) = chunk
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
        {
            content.push_str(piece);
        }
        if !chunk["usage"].is_null() {
            usage = chunk["usage"].clone();
        }
    }
    assert_eq!(content, "hello from claude");
    assert_eq!(usage["completion_tokens"], 4);
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

    let refused = json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}], "logprobs": true});
    let response = post(&gateway.base, &refused).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`logprobs` cannot be translated to Anthropic Messages"),
        "{body}"
    );

    let (report, records) = gateway.stop().await;
    assert!(report.mirror.is_balanced(), "{:?}", report.mirror);
    assert_eq!(
        report.mirror.completed, 3,
        "every copy ran, the refused primary's too"
    );
    let primaries: Vec<&Value> = records
        .iter()
        .filter(|r| r["metadata"]["is_silent_experiment"] != true)
        .collect();
    assert_eq!(primaries.len(), 3);
    let ok_primary = primaries
        .iter()
        .find(|r| r["status"] == "success" && r["stream"] == false)
        .unwrap();
    let shadow = records
        .iter()
        .find(|r| r["metadata"]["mirror_of"] == ok_primary["litellm_call_id"])
        .unwrap_or_else(|| panic!("no shadow of {ok_primary} in {records:#?}"));
    assert_eq!(shadow["trace_id"], ok_primary["trace_id"]);
    assert_eq!(shadow["custom_llm_provider"], "openai");
    assert_eq!(ok_primary["custom_llm_provider"], "anthropic");
    assert!(gpt
        .requests()
        .iter()
        .all(|seen| seen.path.ends_with("/chat/completions")));
    assert!(claude
        .requests()
        .iter()
        .all(|seen| seen.path.ends_with("/v1/messages")));

    let dir = std::env::temp_dir().join(format!("mirror-across-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log: PathBuf = dir.join("calls.jsonl");
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let analysed = analyze_paths(&[log], &ReportOptions::default(), false).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let edge = analysed
        .edges
        .iter()
        .find(|e| e.primary_group == "claude" && e.shadow_group == "gpt")
        .unwrap_or_else(|| panic!("no claude -> gpt edge in {:#?}", analysed.edges));
    assert_eq!(edge.pairs, 3, "{edge:#?}");
    assert_eq!(edge.primary_failed, 1, "the refused request");
    assert_eq!(
        edge.primary.prompt_tokens, 22,
        "two Claude answers of 11 input tokens"
    );
    assert_eq!(edge.shadow.prompt_tokens, 15, "three GPT answers of 5");
    assert!(
        edge.primary.cost > 0.0 && edge.shadow.cost > 0.0,
        "{edge:#?}"
    );
    assert!(edge.agreement.comparable >= 1, "{edge:#?}");
}

fn reverse_config(gpt: &Upstream, claude: &Upstream) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{gpt}", api_key: sk-upstream-secret, silent_model: claude}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5-20250929, api_base: "{claude}", api_key: sk-ant-secret}}
router_settings: {{num_retries: 0}}
mirror_settings:
  log_file: "{{log}}"
"#,
        gpt = gpt.base(),
        claude = claude.url(),
    )
}

async fn post_messages(base: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{base}/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpt_primary_answers_messages_with_anthropic_events_and_pairs_with_its_claude_shadow() {
    let gpt = Upstream::start("gpt").await;
    let claude = Upstream::start("claude").await;
    let gateway = RunningGateway::start(&reverse_config(&gpt, &claude)).await;

    let streamed = json!({
        "model": "gpt", "max_tokens": 64, "stream": true,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    });
    let response = post_messages(&gateway.base, &streamed).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("event: "))
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{text}"
    );
    let mut content = String::new();
    let mut final_usage = Value::Null;
    for data in text.lines().filter_map(|line| line.strip_prefix("data: ")) {
        let event: Value = serde_json::from_str(data).unwrap();
        if let Some(piece) = event.pointer("/delta/text").and_then(Value::as_str) {
            content.push_str(piece);
        }
        if event["type"] == "message_delta" {
            assert_eq!(event["delta"]["stop_reason"], "end_turn");
            final_usage = event["usage"].clone();
        }
    }
    assert_eq!(content, "hello from gpt");
    assert_eq!(final_usage, json!({"input_tokens": 5, "output_tokens": 3}));
    let seen = gpt.only_request();
    assert_eq!(
        seen.body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    );

    let refused = json!({
        "model": "gpt", "max_tokens": 64, "container": "container_1",
        "messages": [{"role": "user", "content": "hi"}]
    });
    let response = post_messages(&gateway.base, &refused).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`container` cannot be translated to OpenAI chat completions"),
        "{body}"
    );
    assert_eq!(gpt.count(), 1, "the refused request was never sent");

    let (report, records) = gateway.stop().await;
    assert!(report.mirror.is_balanced(), "{:?}", report.mirror);
    let primary = records
        .iter()
        .find(|r| r["metadata"]["is_silent_experiment"] != true && r["status"] == "success")
        .unwrap();
    let shadow = records
        .iter()
        .find(|r| r["metadata"]["mirror_of"] == primary["litellm_call_id"])
        .unwrap_or_else(|| panic!("no shadow of {primary} in {records:#?}"));
    assert_eq!(primary["custom_llm_provider"], "openai");
    assert_eq!(shadow["custom_llm_provider"], "anthropic");
    assert_eq!(shadow["status"], "success");
    assert_eq!(
        shadow["call_type"], primary["call_type"],
        "the copy keeps its format"
    );
    let seen = claude.requests();
    assert!(seen.iter().all(|seen| seen.path.ends_with("/v1/messages")));
    assert_eq!(
        seen[0].body["system"], "Be brief.",
        "the copy is the caller's Messages body"
    );
}
