//! The Anthropic adapter against the fake upstream's Messages API: what it sends, plain and streamed
//! answers relayed unchanged, count_tokens, and Anthropic's errors in our classes.

use std::time::Duration;

use futures::StreamExt;
use mirror_core::{MessagesAccumulator, MessagesEvent, MessagesRequest};
use mirror_providers::{Anthropic, HttpClient, MessagesEventStream, Provider, ProviderError};
use mirror_test_support::anthropic::{events, message, COUNTED_TOKENS};
use mirror_test_support::upstream::Behaviour;
use serde_json::json;

use crate::support::{assert_no_secret, deployment, sse, Ending, Upstream, KEY};

fn anthropic() -> Anthropic {
    Anthropic::new(HttpClient::new().unwrap())
}

fn claude(upstream: &Upstream) -> mirror_core::DeploymentParams {
    deployment("anthropic/claude-sonnet-4-5", upstream.url())
}

/// A request with what Claude Code sends: a system prompt with cache control, thinking, a tool,
/// an unknown field, plus the gateway's own fields that must stay home.
fn request(stream: bool) -> MessagesRequest {
    let mut request: MessagesRequest = serde_json::from_value(json!({
        "model": "claude-group",
        "max_tokens": 256,
        "stream": stream,
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "metadata": {"user_id": "u-1"},
        "context_management": {"edits": []},
        "litellm_metadata": {"tags": ["a"]},
        "silent_model": "shadow",
    }))
    .unwrap();
    request.beta = Some("interleaved-thinking-2025-05-14".to_owned());
    request
}

async fn collect(mut stream: MessagesEventStream) -> Vec<Result<MessagesEvent, ProviderError>> {
    let mut items = Vec::new();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("the stream stalled")
    {
        items.push(item);
    }
    items
}

#[tokio::test]
async fn a_message_is_sent_with_anthropic_headers_and_no_gateway_fields() {
    let upstream = Upstream::start("claude").await;
    let mut params = claude(&upstream);
    params.extra.0.insert(
        "extra_headers".to_owned(),
        json!({"anthropic-beta": "prompt-caching-2024-07-31, interleaved-thinking-2025-05-14"}),
    );

    let answer = anthropic()
        .messages(&params, &request(false))
        .await
        .unwrap();

    assert_eq!(answer.id, "msg_claude_1");
    assert_eq!(answer.joined_text(), "hello from claude");
    assert_eq!(answer.usage.prompt_tokens(), 11);
    let seen = upstream.only_request();
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some(KEY));
    assert_eq!(seen.authorization(), None);
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        seen.header("anthropic-beta"),
        Some("prompt-caching-2024-07-31,interleaved-thinking-2025-05-14")
    );
    assert_eq!(
        seen.body,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 256,
            "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "metadata": {"user_id": "u-1"},
            "context_management": {"edits": []},
        })
    );
}

#[tokio::test]
async fn a_deployment_sets_the_version_and_any_base_form_works() {
    let upstream = Upstream::start("claude").await;
    for base in [
        upstream.url().to_owned(),
        format!("{}/v1", upstream.url()),
        format!("{}/v1/messages/", upstream.url()),
    ] {
        let mut params = deployment("anthropic/claude-haiku-4-5", &base);
        params.extra.0.insert(
            "extra_headers".to_owned(),
            json!({"anthropic-version": "2024-01-01"}),
        );
        anthropic()
            .messages(&params, &MessagesRequest::new("g", 16, "hi"))
            .await
            .unwrap();
    }
    let requests = upstream.requests();
    assert_eq!(requests.len(), 3);
    for seen in &requests {
        assert_eq!(seen.path, "/v1/messages");
        assert_eq!(seen.header("anthropic-version"), Some("2024-01-01"));
        assert_eq!(seen.header("anthropic-beta"), None);
    }
}

#[tokio::test]
async fn a_stream_is_relayed_event_by_event() {
    let upstream = Upstream::start("claude").await;
    let stream = anthropic()
        .messages_stream(&claude(&upstream), &request(true))
        .await
        .unwrap();
    let items = collect(stream).await;

    let seen = upstream.only_request();
    let expected = events(&message("claude", 1, &seen), None);
    let relayed: Vec<String> = items
        .iter()
        .map(|item| item.as_ref().unwrap().to_sse())
        .collect();
    assert_eq!(relayed, expected, "every event, names and data unchanged");
    assert_eq!(seen.body["stream"], json!(true));
    assert_eq!(seen.header("accept"), Some("text/event-stream"));

    let mut accumulator = MessagesAccumulator::default();
    for item in &items {
        accumulator.push(item.as_ref().unwrap());
    }
    let rebuilt = accumulator.finish().unwrap();
    assert_eq!(rebuilt.joined_text(), "hello from claude");
    assert_eq!(rebuilt.usage.output_tokens, 4);
    assert_eq!(rebuilt.usage.prompt_tokens(), 11);
}

#[tokio::test]
async fn a_tool_call_streams_its_input_in_fragments() {
    let upstream = Upstream::start("claude").await;
    let mut request = request(true);
    request.tools = Some(vec![
        json!({"name": "weather", "input_schema": {"type": "object"}}),
    ]);
    let stream = anthropic()
        .messages_stream(&claude(&upstream), &request)
        .await
        .unwrap();
    let mut accumulator = MessagesAccumulator::default();
    for item in collect(stream).await {
        accumulator.push(&item.unwrap());
    }
    let rebuilt = accumulator.finish().unwrap();
    let tool = rebuilt.tool_uses().next().unwrap();
    assert_eq!(
        (tool.name, tool.input),
        ("weather", &json!({"city": "Paris"}))
    );
    assert_eq!(rebuilt.stop_reason.as_deref(), Some("tool_use"));
}

#[tokio::test]
async fn count_tokens_sends_only_what_it_accepts() {
    let upstream = Upstream::start("claude").await;
    let counted = anthropic()
        .count_tokens(&claude(&upstream), &request(false))
        .await
        .unwrap();
    assert_eq!(counted.input_tokens, COUNTED_TOKENS);
    let seen = upstream.only_request();
    assert_eq!(seen.path, "/v1/messages/count_tokens");
    let mut keys: Vec<&str> = seen
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "context_management",
            "messages",
            "model",
            "system",
            "thinking"
        ]
    );
}

async fn fail(behaviour: Behaviour, stream: bool) -> ProviderError {
    let upstream = Upstream::with_default("claude", behaviour).await;
    let params = claude(&upstream);
    let request = request(stream);
    let err = if stream {
        match anthropic().messages_stream(&params, &request).await {
            Err(err) => err,
            Ok(stream) => collect(stream)
                .await
                .into_iter()
                .find_map(Result::err)
                .expect("the stream failed"),
        }
    } else {
        anthropic().messages(&params, &request).await.unwrap_err()
    };
    assert_no_secret(&err);
    err
}

fn anthropic_failure(
    status: u16,
    message: &str,
    headers: Vec<(&'static str, String)>,
) -> Behaviour {
    Behaviour::Fail {
        status,
        code: None,
        message: message.to_owned(),
        headers,
    }
}

#[tokio::test]
async fn overloaded_is_retryable_and_counts_against_the_deployment() {
    for stream in [false, true] {
        let err = fail(anthropic_failure(529, "Overloaded", Vec::new()), stream).await;
        assert_eq!(err.class(), "upstream", "{err}");
        assert_eq!(err.status(), Some(529));
        assert!(err.is_retryable() && err.counts_against_deployment());
        assert!(err.to_string().contains("Overloaded"), "{err}");
    }
}

#[tokio::test]
async fn a_rate_limit_carries_retry_after() {
    let err = fail(
        anthropic_failure(429, "rate limited", vec![("retry-after", "7".to_owned())]),
        false,
    )
    .await;
    assert_eq!(err.class(), "rate_limited");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn bad_requests_are_not_retried_and_long_prompts_fall_back() {
    let err = fail(
        anthropic_failure(400, "max_tokens: Field required", Vec::new()),
        false,
    )
    .await;
    assert_eq!(err.class(), "bad_request");
    assert!(!err.is_retryable());
    let err = fail(
        anthropic_failure(
            400,
            "prompt is too long: 210000 tokens > 200000 maximum",
            Vec::new(),
        ),
        true,
    )
    .await;
    assert_eq!(err.class(), "context_window_exceeded");
}

#[tokio::test]
async fn a_cut_off_stream_is_an_error() {
    let err = fail(Behaviour::Reset, true).await;
    assert_eq!(err.class(), "transport", "{err}");

    // A stream that closes cleanly before `message_stop` was cut off too.
    let upstream = Upstream::with_handler(|call| async move {
        let all = events(&message("claude", 1, &call.seen), None);
        let pieces = all[..all.len() - 1]
            .iter()
            .map(|event| bytes::Bytes::from(event.clone()))
            .collect();
        sse(pieces, Ending::Close)
    })
    .await;
    let stream = anthropic()
        .messages_stream(&claude(&upstream), &request(true))
        .await
        .unwrap();
    let items = collect(stream).await;
    let last = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(last.class(), "transport", "{last}");
}

#[tokio::test]
async fn an_error_event_is_relayed_and_ends_the_stream() {
    let upstream = Upstream::with_default(
        "claude",
        Behaviour::StreamError {
            kind: "overloaded_error",
            message: "Overloaded".to_owned(),
        },
    )
    .await;
    let stream = anthropic()
        .messages_stream(&claude(&upstream), &request(true))
        .await
        .unwrap();
    let items = collect(stream).await;
    let last = items.last().unwrap().as_ref().unwrap();
    let error = last.error().expect("an error event");
    assert_eq!(error.error.kind, "overloaded_error");
    assert_eq!(items.len(), 3, "message_start, ping, error");
}

#[tokio::test]
async fn the_key_never_shows() {
    let upstream = Upstream::start("claude").await;
    let params = claude(&upstream);
    let debug = format!("{params:?} {:?}", anthropic());
    assert!(!debug.contains(KEY), "{debug}");
    let echo = Upstream::with_handler(|call: mirror_test_support::Call| async move {
        let key = call.seen.header("x-api-key").unwrap_or_default().to_owned();
        crate::support::json(401, json!({"type": "error", "error": {"type": "authentication_error", "message": format!("invalid x-api-key {key}")}}))
    })
    .await;
    let err = anthropic()
        .messages(&claude(&echo), &request(false))
        .await
        .unwrap_err();
    assert_eq!(err.class(), "auth");
    assert_no_secret(&err);
}
