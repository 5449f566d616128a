//! Calls across formats, over real HTTP: chat completions to a Claude group (translated to
//! Messages and back, whole and streamed), Messages to a GPT group (translated to chat and back),
//! silent copies that cross formats both ways, and requests that cannot be translated.

use std::sync::Arc;

use futures::StreamExt;
use mirror_core::{
    CallRecord, CallStatus, CallType, ChatMessage, ChatRequest, MessagesAccumulator,
    MessagesRequest, StreamAccumulator,
};
use mirror_providers::{Anthropic, HttpClient, ProviderError};
use mirror_router::ModelDeployment;
use serde_json::json;

use crate::support::{
    builder, http_deployment, request, settled, stream_request, take_records, Upstream, SECRET_KEY,
};

fn claude(group: &str, id: &str, upstream: &Upstream) -> ModelDeployment {
    ModelDeployment::new(group, "anthropic/claude-sonnet-4-5-20250929")
        .unwrap()
        .api_base(upstream.url())
        .api_key(SECRET_KEY)
        .id(id)
}

fn both_builder() -> (
    mirror_router::RouterBuilder,
    tokio::sync::mpsc::UnboundedReceiver<CallRecord>,
) {
    let (builder, records) = builder();
    let anthropic = Arc::new(Anthropic::new(HttpClient::new().unwrap()));
    (builder.provider(anthropic), records)
}

fn weather_chat(model: &str) -> ChatRequest {
    serde_json::from_value(json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"}
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
        "temperature": 0.3
    }))
    .unwrap()
}

fn primary_and_silent(records: &[CallRecord]) -> (&CallRecord, &CallRecord) {
    let primary = records.iter().find(|r| !r.is_silent()).unwrap();
    let silent = records.iter().find(|r| r.is_silent()).unwrap();
    assert_eq!(silent.metadata.mirror_of, Some(primary.call_id));
    assert_eq!(silent.trace_id, primary.trace_id);
    (primary, silent)
}

#[tokio::test]
async fn a_chat_request_to_a_claude_group_is_translated_both_ways() {
    let upstream = Upstream::start("claude").await;
    let (builder, mut records) = both_builder();
    let router = builder
        .deployment(claude("claude", "claude-1", &upstream))
        .build()
        .unwrap();

    let routed = router.chat(weather_chat("claude")).await.unwrap();
    let choice = &routed.response.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(choice.message.text().as_deref(), Some("calling weather"));
    let call = &choice.message.tool_calls.as_ref().unwrap()[0];
    assert_eq!(
        (
            call.id.as_str(),
            call.function.name.as_str(),
            call.function.arguments.as_str()
        ),
        ("toolu_claude_1", "weather", r#"{"city":"Paris"}"#)
    );
    let usage = routed.response.usage.as_ref().unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (11, 4));

    let seen = upstream.only_request();
    assert!(seen.path.ends_with("/v1/messages"), "{}", seen.path);
    assert_eq!(seen.body["system"], "Be brief.");
    assert_eq!(seen.body["max_tokens"], 4096, "LiteLLM's default");
    assert_eq!(
        seen.body["messages"],
        json!([{"role": "user", "content": "Weather in Paris?"}])
    );
    assert_eq!(
        seen.body["tools"][0]["input_schema"],
        json!({"type": "object"})
    );

    let record = crate::support::next_record(&mut records).await;
    assert_eq!(record.call_type, CallType::Completion);
    assert_eq!(record.custom_llm_provider, "anthropic");
    assert_eq!((record.prompt_tokens, record.completion_tokens), (11, 4));
    // Priced as the same answer to /v1/messages: cache reads at a tenth of the input price.
    let expected = 9.0 * 3e-6 + 2.0 * 0.3e-6 + 4.0 * 15e-6;
    assert!(
        (record.response_cost - expected).abs() < 1e-12,
        "{}",
        record.response_cost
    );
}

#[tokio::test]
async fn a_streamed_chat_request_to_a_claude_group_gets_chunks_and_usage() {
    let upstream = Upstream::start("claude").await;
    let (builder, mut records) = both_builder();
    let router = builder
        .deployment(claude("claude", "claude-1", &upstream))
        .build()
        .unwrap();
    let mut chat = weather_chat("claude");
    chat.stream = Some(true);
    chat.stream_options = stream_request("x").stream_options;

    let mut stream = router.chat_stream(chat).await.unwrap().response;
    let mut accumulator = StreamAccumulator::default();
    while let Some(chunk) = stream.next().await {
        accumulator.push(&chunk.unwrap());
    }
    let usage = accumulator.usage().cloned().unwrap();
    let answer = accumulator.finish();
    let message = &answer.choices[0].message;
    assert_eq!(message.text().as_deref(), Some("calling weather"));
    let call = &message.tool_calls.as_ref().unwrap()[0];
    assert_eq!(call.function.arguments, r#"{"city":"Paris"}"#);
    assert_eq!(
        answer.choices[0].finish_reason.as_deref(),
        Some("tool_calls")
    );
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (11, 4));
    assert_eq!(upstream.only_request().body["stream"], true);

    let record = crate::support::next_record(&mut records).await;
    assert_eq!(record.status, CallStatus::Success);
    assert!(record.stream);
    assert_eq!((record.prompt_tokens, record.completion_tokens), (11, 4));
}

#[tokio::test]
async fn a_messages_request_to_a_gpt_group_is_translated_both_ways() {
    let upstream = Upstream::start("gpt").await;
    let (builder, mut records) = both_builder();
    let router = builder
        .deployment(http_deployment("gpt", "gpt-1", &upstream))
        .build()
        .unwrap();
    let mut request = MessagesRequest::new("gpt", 100, "hi");
    request.system = Some(mirror_core::SystemPrompt::Text("Be brief.".to_owned()));
    request.stop_sequences = Some(vec!["END".to_owned()]);

    let routed = router.messages(request).await.unwrap();
    assert_eq!(routed.response.joined_text(), "hello from gpt");
    assert_eq!(routed.response.stop_reason.as_deref(), Some("end_turn"));
    assert_eq!(routed.response.usage.input_tokens, 5);
    assert_eq!(routed.response.usage.output_tokens, 3);

    let seen = upstream.only_request();
    assert!(seen.path.ends_with("/chat/completions"), "{}", seen.path);
    assert_eq!(
        seen.body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    );
    assert_eq!(seen.body["max_tokens"], 100);
    assert_eq!(seen.body["stop"], json!(["END"]));

    let record = crate::support::next_record(&mut records).await;
    assert_eq!(record.call_type, CallType::AnthropicMessages);
    assert_eq!((record.prompt_tokens, record.completion_tokens), (5, 3));
    assert_eq!(
        record.response.unwrap().text().as_deref(),
        Some("hello from gpt")
    );
}

#[tokio::test]
async fn a_streamed_messages_request_to_a_gpt_group_gets_anthropic_events() {
    let upstream = Upstream::start("gpt").await;
    let (builder, mut records) = both_builder();
    let router = builder
        .deployment(http_deployment("gpt", "gpt-1", &upstream))
        .build()
        .unwrap();
    let mut request = MessagesRequest::new("gpt", 100, "hi");
    request.stream = Some(true);

    let mut stream = router.messages_stream(request).await.unwrap().response;
    let mut accumulator = MessagesAccumulator::default();
    let mut kinds = Vec::new();
    while let Some(event) = stream.next().await {
        let event = event.unwrap();
        kinds.push(event.kind().to_owned());
        accumulator.push(&event);
    }
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let message = accumulator.finish().unwrap();
    assert_eq!(message.joined_text(), "hello from gpt");
    assert_eq!(message.stop_reason.as_deref(), Some("end_turn"));
    assert_eq!(
        (message.usage.input_tokens, message.usage.output_tokens),
        (5, 3)
    );
    let seen = upstream.only_request();
    assert_eq!(seen.body["stream_options"], json!({"include_usage": true}));

    let record = crate::support::next_record(&mut records).await;
    assert_eq!(record.status, CallStatus::Success);
    assert_eq!((record.prompt_tokens, record.completion_tokens), (5, 3));
}

#[tokio::test]
async fn a_claude_primary_is_mirrored_to_a_gpt_shadow_and_the_reverse() {
    let claude_upstream = Upstream::start("claude").await;
    let gpt_upstream = Upstream::start("gpt").await;
    let (builder, mut records) = both_builder();
    let router = builder
        .deployment(
            claude("claude", "claude-1", &claude_upstream)
                .silent_model(["gpt"])
                .unwrap(),
        )
        .deployment(
            http_deployment("gpt", "gpt-1", &gpt_upstream)
                .silent_model(["claude"])
                .unwrap(),
        )
        .build()
        .unwrap();

    // Messages to Claude, mirrored as chat to GPT.
    let mut streamed = MessagesRequest::new("claude", 64, "hi");
    streamed.stream = Some(true);
    let mut stream = router.messages_stream(streamed).await.unwrap().response;
    while let Some(event) = stream.next().await {
        event.unwrap();
    }
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.completed), (1, 1), "{stats:?}");
    let pair = take_records(&mut records, 2).await;
    let (primary, silent) = primary_and_silent(&pair);
    assert_eq!(primary.custom_llm_provider, "anthropic");
    assert_eq!(silent.custom_llm_provider, "openai");
    assert_eq!(
        silent.call_type,
        CallType::AnthropicMessages,
        "the copy keeps its format"
    );
    assert_eq!(
        silent.response.as_ref().unwrap().text().as_deref(),
        Some("hello from gpt")
    );
    let seen = gpt_upstream.only_request();
    assert!(seen.path.ends_with("/chat/completions"));
    assert_eq!(
        seen.body["messages"],
        json!([{"role": "user", "content": "hi"}])
    );
    assert!(
        seen.body.get("metadata").is_none(),
        "gateway metadata stays home"
    );

    // Chat to GPT, mirrored as Messages to Claude.
    router.chat(request("gpt")).await.unwrap();
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.completed), (2, 2), "{stats:?}");
    let pair = take_records(&mut records, 2).await;
    let (primary, silent) = primary_and_silent(&pair);
    assert_eq!(primary.custom_llm_provider, "openai");
    assert_eq!(silent.custom_llm_provider, "anthropic");
    assert_eq!(silent.call_type, CallType::Completion);
    assert_eq!((silent.prompt_tokens, silent.completion_tokens), (11, 4));
    assert_eq!(
        silent.response.as_ref().unwrap().text().as_deref(),
        Some("hello from claude")
    );
    let seen = claude_upstream.requests().pop().unwrap();
    assert!(seen.path.ends_with("/v1/messages"));
    assert_eq!(
        seen.body["messages"],
        json!([{"role": "user", "content": "hi there"}])
    );
}

#[tokio::test]
async fn an_untranslatable_request_is_a_bad_request_naming_the_field_and_never_sent() {
    let upstream = Upstream::start("claude").await;
    let (builder, _records) = both_builder();
    let router = builder
        .deployment(claude("claude", "claude-1", &upstream))
        .build()
        .unwrap();
    let mut chat = request("claude");
    chat.extra.insert("logprobs".to_owned(), json!(true));

    let err = router.chat(chat).await.unwrap_err();
    let Some(ProviderError::BadRequest {
        status,
        message,
        code,
    }) = err.provider_error()
    else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 400);
    assert_eq!(code.as_deref(), Some("untranslatable"));
    assert_eq!(
        message,
        "`logprobs` cannot be translated to Anthropic Messages: Anthropic Messages has no such parameter"
    );
    assert_eq!(upstream.count(), 0, "nothing was sent");
}

#[tokio::test]
async fn a_copy_that_cannot_be_translated_fails_alone_and_the_primary_is_untouched() {
    let gpt_upstream = Upstream::start("gpt").await;
    let claude_upstream = Upstream::start("claude").await;
    let (builder, mut records) = both_builder();
    let router = builder
        .deployment(
            http_deployment("gpt", "gpt-1", &gpt_upstream)
                .silent_model(["claude"])
                .unwrap(),
        )
        .deployment(claude("claude", "claude-1", &claude_upstream))
        .build()
        .unwrap();
    let mut chat = ChatRequest::new("gpt", vec![ChatMessage::user("hi")]);
    chat.n = Some(2);

    let routed = router.chat(chat).await.unwrap();
    assert_eq!(routed.response.text().as_deref(), Some("hello from gpt"));
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.failed), (1, 1), "{stats:?}");
    let pair = take_records(&mut records, 2).await;
    let (primary, silent) = primary_and_silent(&pair);
    assert_eq!(primary.status, CallStatus::Success);
    assert_eq!(silent.status, CallStatus::Failure);
    assert_eq!(claude_upstream.count(), 0);
}

#[tokio::test]
async fn count_tokens_on_a_group_that_does_not_speak_messages_is_refused_clearly() {
    let upstream = Upstream::start("gpt").await;
    let (builder, _records) = both_builder();
    let router = builder
        .deployment(http_deployment("gpt", "gpt-1", &upstream))
        .build()
        .unwrap();
    let err = router
        .count_tokens(
            MessagesRequest::new("gpt", 1, "hi"),
            mirror_core::CallMeta::for_request("gpt", None),
        )
        .await
        .unwrap_err();
    let text = mirror_core::error_chain(&err);
    assert!(text.contains("count_tokens"), "{text}");
    assert_eq!(upstream.count(), 0, "nothing was sent");
}

#[tokio::test]
async fn an_error_event_ends_a_translated_chat_stream_with_its_status() {
    let upstream = Upstream::with_default(
        "claude",
        mirror_test_support::Behaviour::StreamError {
            kind: "overloaded_error",
            message: "Overloaded".to_owned(),
        },
    )
    .await;
    let (builder, mut records) = both_builder();
    let router = builder
        .deployment(claude("claude", "claude-1", &upstream))
        .build()
        .unwrap();
    let mut stream = router
        .chat_stream(stream_request("claude"))
        .await
        .unwrap()
        .response;
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item);
    }
    let err = items.pop().unwrap().unwrap_err();
    assert_eq!(err.provider_error().and_then(|e| e.status()), Some(529));
    assert!(items.iter().all(Result::is_ok), "only the last item fails");
    let record = crate::support::next_record(&mut records).await;
    assert_eq!(record.status, CallStatus::Failure);
    assert!(record.error_str.unwrap().contains("Overloaded"));
}
