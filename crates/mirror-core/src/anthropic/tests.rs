//! Tests of the Messages wire types: lossless round trips, the upstream bodies, the silent copy
//! (snapshots), usage, errors and the stream rebuild.

use expect_test::{expect, Expect};
use serde_json::json;

use super::*;

/// A request with every kind of field a Claude Code or SDK caller sends.
fn rich_request() -> serde_json::Value {
    json!({
        "model": "claude",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "what is in this image?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "let me look", "signature": "sig=="},
                {"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"zoom": 2}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cat", "is_error": false}
            ]}
        ],
        "tools": [{"name": "look", "description": "zoom", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "metadata": {"user_id": "u-1"},
        "temperature": 0.5,
        "stop_sequences": ["END"],
        "service_tier": "auto",
        "future_field": {"nested": [1, 2]},
        "litellm_metadata": {"tags": ["team-a"], "litellm_call_id": "primary-call"},
        "silent_model": "leak"
    })
}

#[test]
fn a_request_round_trips_unchanged() {
    let input = rich_request();
    let request: MessagesRequest = serde_json::from_value(input.clone()).unwrap();
    assert_eq!(serde_json::to_value(&request).unwrap(), input);
    assert_eq!(request.user_id(), Some("u-1"));
    assert_eq!(request.max_tokens, Some(1024));
    assert_eq!(
        request.system.as_ref().map(SystemPrompt::joined_text),
        Some("be brief".to_owned())
    );
    let MessageContent::Blocks(blocks) = &request.messages[1].content else {
        panic!("blocks expected");
    };
    assert_eq!(blocks[0].as_thinking(), Some("let me look"));
    let tool = blocks[1].as_tool_use().unwrap();
    assert_eq!((tool.id, tool.name), ("toolu_1", "look"));
    assert_eq!(tool.input, &json!({"zoom": 2}));
    assert_eq!(
        request.gateway_metadata().unwrap()["tags"],
        json!(["team-a"])
    );
    assert!(!request.has_mcp_tools());
}

#[test]
fn the_upstream_body_leaves_the_gateway_s_fields_home() {
    let request: MessagesRequest = serde_json::from_value(rich_request()).unwrap();
    let body = serde_json::to_value(request.upstream("claude-sonnet-4-5", true)).unwrap();
    let mut expected = rich_request();
    let map = expected.as_object_mut().unwrap();
    map.remove("litellm_metadata");
    map.remove("silent_model");
    map.insert("model".to_owned(), json!("claude-sonnet-4-5"));
    map.insert("stream".to_owned(), json!(true));
    assert_eq!(body, expected);

    let count = serde_json::to_value(request.upstream_count_tokens("claude-sonnet-4-5")).unwrap();
    let keys: Vec<&str> = count
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "future_field",
            "messages",
            "model",
            "service_tier",
            "system",
            "thinking",
            "tool_choice",
            "tools"
        ]
    );
}

/// Mirrors `input` to `target` and snapshots the copy, with call ids replaced by placeholders.
#[track_caller]
fn check_mirror(input: serde_json::Value, target: &str, expect: Expect) {
    let mut request: MessagesRequest = serde_json::from_value(input).unwrap();
    request.beta = Some("prompt-caching-2024-07-31".to_owned());
    let before = request.clone();
    let primary = CallMeta::for_request(&request.model, request.gateway_metadata());
    let copy = request.to_mirror(&primary, target);

    assert_eq!(request, before, "the caller's request is never touched");
    assert_ne!(copy.meta.call_id, primary.call_id);
    assert_eq!(copy.meta.trace_id, primary.trace_id);
    assert_eq!(copy.meta.mirror_of, Some(primary.call_id));
    assert!(copy.meta.is_silent_experiment);
    assert_eq!(copy.meta.model_group, target);
    assert_eq!(copy.request.beta, request.beta, "betas go with the copy");

    let rendered = serde_json::to_string_pretty(&json!({
        "request": copy.request,
        "upstream_body": copy.request.upstream("provider-model", copy.request.is_stream()),
    }))
    .unwrap()
    .replace(&primary.call_id.to_string(), "<primary call id>");
    expect.assert_eq(&rendered);
}

#[test]
fn the_silent_copy_is_marked_in_litellm_metadata_only() {
    check_mirror(
        json!({
            "model": "claude",
            "max_tokens": 64,
            "stream": true,
            "messages": [{"role": "user", "content": "hi"}],
            "metadata": {"user_id": "u-1"},
            "litellm_metadata": {
                "trace_id": "trace-1",
                "tags": ["team-a"],
                "litellm_call_id": "primary-call",
                "is_silent_experiment": false,
                "deployment": "claude-eu"
            },
            "silent_model": "leak"
        }),
        "claude-shadow",
        expect![[r#"
            {
              "request": {
                "litellm_metadata": {
                  "is_silent_experiment": true,
                  "mirror_of": "<primary call id>",
                  "model_group": "claude-shadow",
                  "tags": [
                    "team-a"
                  ],
                  "trace_id": "trace-1"
                },
                "max_tokens": 64,
                "messages": [
                  {
                    "content": "hi",
                    "role": "user"
                  }
                ],
                "metadata": {
                  "user_id": "u-1"
                },
                "model": "claude-shadow",
                "silent_model": "leak",
                "stream": true
              },
              "upstream_body": {
                "max_tokens": 64,
                "messages": [
                  {
                    "content": "hi",
                    "role": "user"
                  }
                ],
                "metadata": {
                  "user_id": "u-1"
                },
                "model": "provider-model",
                "stream": true
              }
            }"#]],
    );
}

#[test]
fn the_silent_copy_keeps_every_block_and_gains_metadata() {
    check_mirror(
        json!({
            "model": "claude",
            "max_tokens": 64,
            "system": "be brief",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
            ]}],
            "thinking": {"type": "adaptive"}
        }),
        "claude-shadow",
        expect![[r#"
            {
              "request": {
                "litellm_metadata": {
                  "is_silent_experiment": true,
                  "mirror_of": "<primary call id>",
                  "model_group": "claude-shadow"
                },
                "max_tokens": 64,
                "messages": [
                  {
                    "content": [
                      {
                        "cache_control": {
                          "type": "ephemeral"
                        },
                        "text": "hi",
                        "type": "text"
                      }
                    ],
                    "role": "user"
                  }
                ],
                "model": "claude-shadow",
                "system": "be brief",
                "thinking": {
                  "type": "adaptive"
                }
              },
              "upstream_body": {
                "max_tokens": 64,
                "messages": [
                  {
                    "content": [
                      {
                        "cache_control": {
                          "type": "ephemeral"
                        },
                        "text": "hi",
                        "type": "text"
                      }
                    ],
                    "role": "user"
                  }
                ],
                "model": "provider-model",
                "system": "be brief",
                "thinking": {
                  "type": "adaptive"
                }
              }
            }"#]],
    );
}

#[test]
fn a_response_round_trips_and_counts_cached_input() {
    let input = json!({
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "Hello"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}
        ],
        "stop_reason": "tool_use",
        "stop_sequence": null,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_creation_input_tokens": 20,
            "cache_read_input_tokens": 30,
            "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 0},
            "service_tier": "standard"
        },
        "container": null
    });
    let response: MessagesResponse = serde_json::from_value(input.clone()).unwrap();
    assert_eq!(serde_json::to_value(&response).unwrap(), input);
    assert_eq!(response.joined_text(), "Hello");
    assert_eq!(response.tool_uses().count(), 1);
    assert_eq!(
        (response.usage.prompt_tokens(), response.usage.total()),
        (60, 65)
    );
}

#[test]
fn errors_have_anthropic_s_shape_and_statuses() {
    let body = AnthropicErrorBody::for_status(529, "Overloaded");
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    for status in [400, 401, 402, 403, 404, 413, 429, 500, 504, 529] {
        assert_eq!(anthropic_error_status(anthropic_error_type(status)), status);
    }
    assert_eq!(anthropic_error_type(422), "invalid_request_error");
    assert_eq!(anthropic_error_type(503), "api_error");
    let parsed: AnthropicErrorBody = serde_json::from_str(
        r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"},"request_id":"req_1"}"#,
    )
    .unwrap();
    assert_eq!(parsed.error.kind, "rate_limit_error");
    assert_eq!(parsed.request_id.as_deref(), Some("req_1"));
}

/// The events of a streamed answer with thinking, text and a tool call, as Anthropic sends them.
fn stream_events() -> Vec<MessagesEvent> {
    [
        ("message_start", json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 4}}})),
        ("ping", json!({"type": "ping"})),
        ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "let me "}})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "think"}})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}})),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        ("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hel"}})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "lo"}})),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
        ("content_block_start", json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"a\": "}})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "1}"}})),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 2})),
        ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 9}})),
        ("message_stop", json!({"type": "message_stop"})),
    ]
    .into_iter()
    .map(|(name, data)| MessagesEvent::new(name, &data))
    .collect()
}

#[test]
fn a_stream_rebuilds_the_message() {
    let mut accumulator = MessagesAccumulator::default();
    for event in stream_events() {
        accumulator.push(&event);
    }
    assert!(accumulator.is_stopped());
    let message = accumulator.finish().unwrap();
    assert_eq!(
        serde_json::to_value(&message).unwrap(),
        json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [
                {"type": "thinking", "thinking": "let me think", "signature": "sig"},
                {"type": "text", "text": "Hello"},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 9, "cache_read_input_tokens": 4}
        })
    );
}

#[test]
fn a_stream_rebuild_is_bounded() {
    let mut accumulator = MessagesAccumulator::with_max_bytes(4);
    for event in stream_events() {
        accumulator.push(&event);
    }
    accumulator.push(&MessagesEvent::new(
        "content_block_start",
        &json!({"type": "content_block_start", "index": 1_000_000_000u64, "content_block": {"type": "text", "text": ""}}),
    ));
    assert!(accumulator.is_truncated());
    let message = accumulator.finish().unwrap();
    assert_eq!(message.extra["mirror_truncated"], json!(true));
    assert!(message.content.len() <= MessagesAccumulator::MAX_BLOCKS);
    assert!(serde_json::to_string(&message.content).unwrap().len() < 200);
}

#[test]
fn events_are_read_without_changing_them() {
    let data = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let event = MessagesEvent {
        event: "error".to_owned(),
        data: data.to_owned(),
    };
    assert_eq!(event.error().unwrap().error.kind, "overloaded_error");
    assert_eq!(event.to_sse(), format!("event: error\ndata: {data}\n\n"));
    let unnamed = MessagesEvent {
        event: String::new(),
        data: r#"{"type": "message_stop"}"#.to_owned(),
    };
    assert!(unnamed.is_stop());
    assert!(unnamed.error().is_none());
}
