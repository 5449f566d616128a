//! Tests of the wire types: Azure chunks, the stream accumulator, upstream bodies and unknown fields.

use expect_test::{expect, Expect};
use serde_json::json;

use super::*;

#[test]
fn azure_first_chunk_and_filter_only_chunks_parse() {
    let first: ChatChunk = serde_json::from_value(json!({
        "choices": [], "created": 0, "id": "", "model": "", "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]
    }))
    .unwrap();
    assert!(first.choices.is_empty());
    assert!(!first.has_content());
    assert!(first.extra.contains_key("prompt_filter_results"));

    let filter_only: ChatChunk = serde_json::from_value(json!({
        "id": "", "choices": [{"index": 0, "finish_reason": null,
            "content_filter_offsets": {"check_offset": 0}, "content_filter_results": {}}]
    }))
    .unwrap();
    assert!(filter_only.choices[0].delta.is_none());

    let null_choices: ChatChunk =
        serde_json::from_value(json!({"id": "x", "choices": null, "usage": {"prompt_tokens": 1}}))
            .unwrap();
    assert!(null_choices.choices.is_empty());
    assert_eq!(null_choices.usage.unwrap().prompt_tokens, 1);
}

#[test]
fn accumulator_rebuilds_text_tool_calls_and_usage() {
    let chunks = [
        json!({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": "lo", "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{\"a\""}}]}}]}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": ":1}"}}]}, "finish_reason": "tool_calls"}]}),
        json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
    ];
    let mut accumulator = StreamAccumulator::default();
    for chunk in &chunks {
        accumulator.push(&serde_json::from_value(chunk.clone()).unwrap());
    }
    let response = accumulator.finish();
    assert_eq!(response.id, "c1");
    assert_eq!(response.text().as_deref(), Some("Hello"));
    let call = &response.choices[0].message.tool_calls.as_ref().unwrap()[0];
    assert_eq!(call.function.name, "get");
    assert_eq!(call.function.arguments, "{\"a\":1}");
    assert_eq!(
        response.choices[0].finish_reason.as_deref(),
        Some("tool_calls")
    );
    assert_eq!(response.usage.unwrap().total_tokens, 5);
}

#[test]
fn upstream_body_without_stream_drops_stream_options() {
    let request: ChatRequest = serde_json::from_value(json!({
        "model": "group", "messages": [{"role": "user", "content": "hi"}],
        "stream": true, "stream_options": {"include_usage": true}, "user": "u1",
        "metadata": {"secret_routing": 1}
    }))
    .unwrap();
    let body = serde_json::to_value(request.upstream("gpt-4o", false)).unwrap();
    assert_eq!(
        body,
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "user": "u1"})
    );
}

#[test]
fn unknown_request_fields_round_trip() {
    let input = json!({
        "model": "g", "messages": [{"role": "assistant", "content": null, "tool_calls": [
            {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}], "refusal": null}],
        "logit_bias": {"50256": -100}, "parallel_tool_calls": false
    });
    let request: ChatRequest = serde_json::from_value(input.clone()).unwrap();
    let mut expected = input;
    // `content: null` is read as absent.
    expected["messages"][0]
        .as_object_mut()
        .unwrap()
        .remove("content");
    assert_eq!(serde_json::to_value(&request).unwrap(), expected);
}

fn chunk(value: serde_json::Value) -> ChatChunk {
    serde_json::from_value(value).unwrap()
}

#[test]
fn accumulator_is_bounded_whatever_the_indexes_say() {
    let mut accumulator = StreamAccumulator::default();
    // Growing to these indexes would allocate billions of slots.
    accumulator.push(&chunk(json!({"choices": [
        {"index": u32::MAX, "delta": {"content": "far"}},
        {"index": 0, "delta": {"content": "near", "tool_calls": [
            {"index": u64::MAX, "function": {"name": "f", "arguments": "{}"}},
        ]}},
    ]})));
    assert!(accumulator.is_truncated());
    let response = accumulator.finish();
    assert_eq!(response.choices.len(), 1);
    assert_eq!(response.text().as_deref(), Some("near"));
    assert_eq!(response.choices[0].message.tool_calls, None);
    assert_eq!(response.extra["mirror_truncated"], json!(true));
}

#[test]
fn accumulator_keeps_at_most_its_bytes() {
    let mut accumulator = StreamAccumulator::with_max_bytes(10);
    for text in ["hello", "12345", "overflow"] {
        accumulator.push(&chunk(json!({"choices": [
            {"index": 0, "delta": {"content": text}},
        ]})));
    }
    assert!(accumulator.is_truncated());
    let response = accumulator.finish();
    assert_eq!(response.text().as_deref(), Some("hello12345"));
    // A stream within the bounds is not marked.
    let mut accumulator = StreamAccumulator::default();
    accumulator.push(&chunk(
        json!({"choices": [{"index": 0, "delta": {"content": "hi"}}]}),
    ));
    assert!(!accumulator.is_truncated());
    assert!(accumulator.finish().extra.is_empty());
}

#[track_caller]
fn check_defaults(request: serde_json::Value, litellm_params: serde_json::Value, expect: Expect) {
    let request: ChatRequest = serde_json::from_value(request).unwrap();
    let mut params = serde_json::json!({"model": "openai/gpt-4o"});
    params
        .as_object_mut()
        .unwrap()
        .extend(litellm_params.as_object().unwrap().clone());
    let params: crate::DeploymentParams = serde_json::from_value(params).unwrap();
    let body = request
        .upstream("gpt-4o", false)
        .with_defaults(&params.extra);
    expect.assert_eq(&serde_json::to_string(&body).unwrap());
}

#[test]
fn request_defaults_fill_only_what_the_request_leaves_out() {
    check_defaults(
        serde_json::json!({"model": "g", "messages": [], "temperature": 0.9, "top_p": 0.5}),
        serde_json::json!({
            "temperature": 0.2, "max_tokens": 64, "seed": 7,
            "extra_body": {"top_k": 5, "top_p": 0.1, "seed": 8},
            "extra_headers": {"x-team": "blue"}
        }),
        expect![[
            r#"{"model":"gpt-4o","messages":[],"temperature":0.9,"top_p":0.5,"max_tokens":64,"seed":7,"top_k":5}"#
        ]],
    );
    // A request's reasoning_effort drops the deployment's thinking, as LiteLLM does.
    check_defaults(
        serde_json::json!({"model": "g", "messages": [], "reasoning_effort": "low"}),
        serde_json::json!({"thinking": {"type": "enabled", "budget_tokens": 1024}, "silent_model": "x"}),
        expect![[r#"{"model":"gpt-4o","messages":[],"reasoning_effort":"low"}"#]],
    );
}

#[test]
fn a_wildcard_deployment_sends_the_requested_name_never_the_star() {
    let cases = [
        ("openai/*", "gpt-4o"),
        ("openai/*", "openai/gpt-4o"),
        ("*", "text-model"),
        ("groq/*", "groq/llama-3"),
        ("openai/fixed", "anything"),
    ];
    let sent: Vec<String> = cases
        .iter()
        .map(|(model, requested)| {
            let model = crate::ModelRef::parse(model).unwrap();
            format!("{model} <- {requested}: {}", model.upstream_name(requested))
        })
        .collect();
    expect![[r#"
        [
            "openai/* <- gpt-4o: gpt-4o",
            "openai/* <- openai/gpt-4o: gpt-4o",
            "openai/* <- text-model: text-model",
            "groq/* <- groq/llama-3: llama-3",
            "openai/fixed <- anything: fixed",
        ]
    "#]]
    .assert_debug_eq(&sent);
}
