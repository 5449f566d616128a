//! Streamed chat completions relayed as the upstream sent them: each event's bytes reach the caller
//! unchanged (spacing, key order, escapes, fields the gateway does not know), while a chunk built
//! in process (the mock, a stream translated from Anthropic's events) or one the upstream sent on
//! several `data:` lines is serialised, and the calls are recorded from the parsed chunks either way.

use axum::response::Response;
use mirror::ChatChunk;
use mirror_test_support::upstream::{chop, sse, Ending};
use mirror_test_support::{Call, Upstream};
use serde_json::{json, Value};

use crate::support::{client, RunningGateway};

/// Formatting no serialiser writes: no space after `data:`, keys out of order, spaces around
/// `:`, escaped characters, a number with a trailing zero, fields Mirror does not know.
const EVENTS: [&str; 3] = [
    r#"{"id":"chatcmpl-r","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_r","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
    r#"{ "choices" : [ { "index" : 0 , "delta" : { "content" : "caf\u00e9 \ud83d\ude00 " } } ] , "id" : "chatcmpl-r" , "vendor" : { "score" : 1.50 , "tags" : [ ] } , "object" : "chat.completion.chunk" , "created" : 1700000000 , "model" : "gpt-4o-mini" }"#,
    r#"{"id":"chatcmpl-r","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"a \"quoted\"\/word"},"finish_reason":null}],"usage":null}"#,
];

/// The last event, sent on two `data:` lines (the SSE rules join them with a line feed).
const SPLIT_EVENT: (&str, &str) = (
    r#"{"id":"chatcmpl-r","object":"chat.completion.chunk","created":1700000000,"#,
    r#""model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
);

/// What the upstream sends: the events (the second without a space after `data:`), a keep-alive
/// comment, the split event and `[DONE]`, cut into pieces of 7 bytes, so events span writes.
fn upstream_stream() -> String {
    format!(
        "data: {}\n\ndata:{}\n\n: keep-alive\n\ndata: {}\r\n\r\ndata: {}\ndata: {}\n\ndata: [DONE]\n\n",
        EVENTS[0], EVENTS[1], EVENTS[2], SPLIT_EVENT.0, SPLIT_EVENT.1
    )
}

async fn respond(_call: Call) -> Response {
    sse(chop(&upstream_stream(), 7), Ending::Close)
}

fn config(upstream: &Upstream, claude: &Upstream) -> String {
    format!(
        r#"
model_list:
  - model_name: relay
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{upstream}/v1", api_key: sk-upstream-secret, silent_model: shadow}}
  - model_name: shadow
    litellm_params: {{model: openai/shadow, api_base: "{upstream}/v1", api_key: sk-upstream-secret}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5-20250929, api_base: "{claude}", api_key: sk-ant-secret}}
  - model_name: mock
    litellm_params: {{model: mock/echo}}
mirror_settings:
  log_file: "{{log}}"
"#,
        upstream = upstream.url(),
        claude = claude.url(),
    )
}

async fn stream(base: &str, model: &str) -> String {
    let body = json!({
        "model": model, "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "one two three"}]
    });
    let response = client()
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    response.text().await.unwrap()
}

/// The `data:` payloads of a gateway's answer, which must be one `data: ` line per event.
fn payloads(text: &str) -> Vec<&str> {
    let events: Vec<&str> = text.strip_suffix("\n\n").unwrap().split("\n\n").collect();
    events
        .iter()
        .map(|event| {
            assert!(!event.contains('\n'), "one line per event: {event:?}");
            event.strip_prefix("data: ").unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstreams_event_bytes_reach_the_caller_unchanged() {
    let upstream = Upstream::with_handler(respond).await;
    let claude = Upstream::start("claude").await;
    let gateway = RunningGateway::start(&config(&upstream, &claude)).await;
    let text = stream(&gateway.base, "relay").await;
    // Byte for byte: the three events as sent, whatever their formatting, then the split event.
    let relayed: String = EVENTS
        .iter()
        .map(|event| format!("data: {event}\n\n"))
        .collect();
    let rest = text.strip_prefix(&relayed).unwrap_or_else(|| {
        panic!("the events are not relayed unchanged:\n{text}\nexpected to start with:\n{relayed}")
    });
    // The split event could not be one `data:` line as sent: it is serialised, and says the same.
    let [split, done] = payloads(rest)[..] else {
        panic!("two events after the relayed ones: {rest:?}");
    };
    assert_eq!(done, "[DONE]");
    let split: Value = serde_json::from_str(split).unwrap();
    let sent: Value = serde_json::from_str(&format!("{}{}", SPLIT_EVENT.0, SPLIT_EVENT.1)).unwrap();
    for key in ["id", "object", "created", "model", "choices"] {
        assert_eq!(split[key], sent[key], "{key}");
    }
    let (report, records) = gateway.stop().await;
    assert_eq!(report.mirror.completed, 1);
    // The records come from the parsed chunks: the escapes are read, the primary and its shadow
    // both assembled the same answer.
    let answers: Vec<&str> = records
        .iter()
        .map(|record| {
            record["response"]["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(answers, ["caf\u{e9} \u{1f600} a \"quoted\"/word"; 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_built_in_process_are_serialised() {
    let upstream = Upstream::with_handler(respond).await;
    let claude = Upstream::start("claude").await;
    let gateway = RunningGateway::start(&config(&upstream, &claude)).await;
    for (model, expected) in [("mock", "one two three"), ("claude", "hello from claude")] {
        let text = stream(&gateway.base, model).await;
        let payloads = payloads(&text);
        assert_eq!(payloads.last(), Some(&"[DONE]"), "{model}");
        let chunks: Vec<Value> = payloads[..payloads.len() - 1]
            .iter()
            .map(|payload| serde_json::from_str(payload).unwrap())
            .collect();
        // Serialised as the gateway always did.
        for payload in &payloads[..payloads.len() - 1] {
            let chunk: ChatChunk = serde_json::from_str(payload).unwrap();
            assert_eq!(chunk.object, "chat.completion.chunk", "{model}: {payload}");
            assert_eq!(serde_json::to_string(&chunk).unwrap(), *payload, "{model}");
        }
        let content: String = chunks
            .iter()
            .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(content, expected, "{model}");
        let usage = &chunks.last().unwrap()["usage"];
        assert!(
            usage["total_tokens"].as_u64().unwrap() > 0,
            "{model}: {usage}"
        );
    }
    gateway.stop().await;
}
