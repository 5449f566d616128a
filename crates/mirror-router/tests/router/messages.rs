//! Anthropic's Messages API through the router, over real HTTP: records with cache-aware usage
//! and cost, same-format mirroring (beta header included), retries on 529, context-window
//! fallbacks, error events and count_tokens (across formats: `across.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use mirror_core::{CallMeta, CallStatus, CallType, MessagesRequest};
use mirror_providers::{Anthropic, HttpClient, Provider};
use mirror_router::{ModelDeployment, RouterBuilder, RouterSettings};

use crate::support::{
    builder, record_where, settled, take_records, with_retries, Behaviour, Upstream, SECRET_KEY,
};

fn anthropic() -> Arc<dyn Provider> {
    Arc::new(Anthropic::new(HttpClient::new().unwrap()))
}

/// A Claude deployment of `group` served by `upstream`.
fn claude(group: &str, id: &str, upstream: &Upstream) -> ModelDeployment {
    ModelDeployment::new(group, "anthropic/claude-sonnet-4-5-20250929")
        .unwrap()
        .api_base(upstream.url())
        .api_key(SECRET_KEY)
        .id(id)
}

fn claude_builder() -> (
    RouterBuilder,
    tokio::sync::mpsc::UnboundedReceiver<mirror_core::CallRecord>,
) {
    let (builder, records) = builder();
    (builder.provider(anthropic()), records)
}

fn hello(model: &str) -> MessagesRequest {
    MessagesRequest::new(model, 64, "hi")
}

fn overloaded() -> Behaviour {
    Behaviour::Fail {
        status: 529,
        code: None,
        message: "Overloaded".to_owned(),
        headers: vec![("retry-after-ms", "10".to_owned())],
    }
}

#[tokio::test]
async fn a_message_is_recorded_with_the_whole_input_and_cache_priced_cost() {
    let upstream = Upstream::start("claude").await;
    let (builder, mut records) = claude_builder();
    let router = builder
        .deployment(claude("claude", "claude-1", &upstream))
        .build()
        .unwrap();

    let routed = router.messages(hello("claude")).await.unwrap();
    assert_eq!(routed.response.joined_text(), "hello from claude");
    assert_eq!(
        routed.response.id, "msg_claude_1",
        "the id is the upstream's"
    );

    let (record, _) = record_where(&mut records, |_| true).await;
    assert_eq!(record.call_type, CallType::AnthropicMessages);
    assert_eq!(record.custom_llm_provider, "anthropic");
    assert_eq!(
        (
            record.prompt_tokens,
            record.completion_tokens,
            record.total_tokens
        ),
        (11, 4, 15),
        "9 uncached + 2 cached input tokens"
    );
    // claude-sonnet-4-5: $3 in, $15 out per 1M; cache reads at a tenth of the input price.
    let expected = 9.0 * 3e-6 + 2.0 * 0.3e-6 + 4.0 * 15e-6;
    assert!(
        (record.response_cost - expected).abs() < 1e-12,
        "{}",
        record.response_cost
    );
    let response = record.response.unwrap();
    assert_eq!(response.text().as_deref(), Some("hello from claude"));
    assert_eq!(
        response.as_chat().unwrap().choices[0]
            .finish_reason
            .as_deref(),
        Some("stop")
    );
    assert_eq!(record.messages.unwrap()[0].role, "user");
}

#[tokio::test]
async fn a_streamed_claude_primary_is_mirrored_to_a_claude_shadow() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    let (builder, mut records) = claude_builder();
    let router = builder
        .deployment(
            claude("claude", "claude-1", &primary)
                .silent_model(["claude-next"])
                .unwrap(),
        )
        .deployment(claude("claude-next", "next-1", &shadow))
        .build()
        .unwrap();
    let mut request = hello("claude");
    request.stream = Some(true);
    request.beta = Some("interleaved-thinking-2025-05-14".to_owned());
    request.tools = Some(vec![
        serde_json::json!({"name": "weather", "input_schema": {"type": "object"}}),
    ]);

    let routed = router.messages_stream(request).await.unwrap();
    let mut stream = routed.response;
    let mut kinds = Vec::new();
    while let Some(event) = stream.next().await {
        kinds.push(event.unwrap().kind().to_owned());
    }
    assert_eq!(kinds.first().map(String::as_str), Some("message_start"));
    assert_eq!(kinds.last().map(String::as_str), Some("message_stop"));

    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.completed), (1, 1), "{stats:?}");
    let both = take_records(&mut records, 2).await;
    let primary_record = both.iter().find(|r| !r.is_silent()).unwrap();
    let silent_record = both.iter().find(|r| r.is_silent()).unwrap();
    assert_eq!(
        silent_record.metadata.mirror_of,
        Some(primary_record.call_id)
    );
    assert_eq!(silent_record.trace_id, primary_record.trace_id);
    for record in &both {
        assert_eq!(record.call_type, CallType::AnthropicMessages);
        assert!(record.stream);
        assert_eq!((record.prompt_tokens, record.completion_tokens), (11, 4));
        let call = &record.response.as_ref().unwrap().as_chat().unwrap().choices[0];
        assert_eq!(call.finish_reason.as_deref(), Some("tool_calls"));
        let tool = &call.message.tool_calls.as_ref().unwrap()[0];
        assert_eq!(tool.function.name, "weather");
        assert_eq!(tool.function.arguments, r#"{"city":"Paris"}"#);
        assert!(record.completion_start_time.is_some());
    }
    let seen = shadow.only_request();
    assert_eq!(seen.body["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(seen.body["stream"], true);
    assert!(seen.body.get("litellm_metadata").is_none());
    assert_eq!(
        seen.header("anthropic-beta"),
        Some("interleaved-thinking-2025-05-14"),
        "the copy keeps the caller's betas"
    );
}

#[tokio::test]
async fn an_overloaded_deployment_is_retried_and_cooled_down() {
    let upstream = Upstream::start("claude").await;
    upstream.script([overloaded()]);
    let (builder, mut records) = claude_builder();
    let router = builder
        .deployment(with_retries(claude("claude", "claude-1", &upstream), 2))
        .build()
        .unwrap();
    let routed = router.messages(hello("claude")).await.unwrap();
    assert_eq!(routed.response.id, "msg_claude_2");
    let (record, _) = record_where(&mut records, |_| true).await;
    assert_eq!(record.status, CallStatus::Success);
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn a_prompt_too_long_falls_back_to_the_context_window_group() {
    let small = Upstream::with_default(
        "small",
        Behaviour::Fail {
            status: 400,
            code: None,
            message: "prompt is too long: 210000 tokens > 200000 maximum".to_owned(),
            headers: Vec::new(),
        },
    )
    .await;
    let large = Upstream::start("large").await;
    let mut settings = RouterSettings::default();
    settings.context_window_fallbacks = vec![BTreeMap::from([(
        "claude".to_owned(),
        vec!["claude-1m".to_owned()],
    )])];
    let (builder, _records) = claude_builder();
    let router = builder
        .settings(settings)
        .deployment(claude("claude", "claude-1", &small))
        .deployment(claude("claude-1m", "claude-1m-1", &large))
        .build()
        .unwrap();
    let routed = router.messages(hello("claude")).await.unwrap();
    assert_eq!(routed.response.joined_text(), "hello from large");
    assert_eq!(small.count(), 1, "a bad request is not retried");
}

#[tokio::test]
async fn an_error_event_is_relayed_and_recorded_as_a_failure() {
    let upstream = Upstream::with_default(
        "claude",
        Behaviour::StreamError {
            kind: "overloaded_error",
            message: "Overloaded".to_owned(),
        },
    )
    .await;
    let (builder, mut records) = claude_builder();
    let router = builder
        .deployment(claude("claude", "claude-1", &upstream))
        .build()
        .unwrap();
    let mut request = hello("claude");
    request.stream = Some(true);
    let mut stream = router.messages_stream(request).await.unwrap().response;
    let mut last = None;
    while let Some(event) = stream.next().await {
        last = Some(event.unwrap());
    }
    assert_eq!(last.unwrap().kind(), "error");
    let failure = stream.take_failure().expect("the call failed");
    assert_eq!(failure.provider_error().and_then(|e| e.status()), Some(529));
    let (record, _) = record_where(&mut records, |_| true).await;
    assert_eq!(record.status, CallStatus::Failure);
    assert!(record.error_str.unwrap().contains("overloaded_error"));
}

#[tokio::test]
async fn count_tokens_goes_to_the_group_and_is_not_mirrored() {
    let upstream = Upstream::start("claude").await;
    let shadow = Upstream::start("shadow").await;
    let (builder, mut records) = claude_builder();
    let router = builder
        .deployment(
            claude("claude", "claude-1", &upstream)
                .silent_model(["claude-next"])
                .unwrap(),
        )
        .deployment(claude("claude-next", "next-1", &shadow))
        .build()
        .unwrap();
    let request = hello("claude");
    let meta = CallMeta::for_request("claude", None);
    let counted = router.count_tokens(request, meta).await.unwrap();
    assert_eq!(
        counted.response.input_tokens,
        mirror_test_support::anthropic::COUNTED_TOKENS
    );
    let seen = upstream.only_request();
    assert_eq!(seen.path, "/v1/messages/count_tokens");
    assert!(seen.body.get("max_tokens").is_none());
    let (record, _) = record_where(&mut records, |_| true).await;
    assert_eq!(record.call_type, CallType::CountTokens);
    assert_eq!(settled(&router).await.mirrored, 0);
    assert_eq!(shadow.count(), 0);
}
