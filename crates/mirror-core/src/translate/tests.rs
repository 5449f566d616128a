//! Snapshot tests of the translation both ways: requests, answers, streams, and what is refused.

use expect_test::{expect, Expect};
use serde_json::{json, Value};

use super::*;
use crate::{
    ChatChunk, ChatRequest, ChatResponse, MessagesEvent, MessagesRequest, MessagesResponse,
};

fn pretty<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap()
}

#[track_caller]
fn check_to_messages(chat: Value, expect: Expect) {
    let request: ChatRequest = serde_json::from_value(chat).unwrap();
    let out = match chat_to_messages(&request) {
        Ok(translated) => pretty(&translated),
        Err(err) => format!("error: {err}"),
    };
    expect.assert_eq(&out);
}

#[track_caller]
fn check_to_chat(messages: Value, expect: Expect) {
    let request: MessagesRequest = serde_json::from_value(messages).unwrap();
    let out = match messages_to_chat(&request) {
        Ok(translated) => pretty(&translated),
        Err(err) => format!("error: {err}"),
    };
    expect.assert_eq(&out);
}

/// Ids and times are fresh on every translation; the snapshots show them as placeholders.
fn stable(mut value: Value) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map.iter_mut() {
                    match (key.as_str(), &*inner) {
                        ("id", Value::String(id)) if id.starts_with("chatcmpl-") => {
                            *inner = json!("chatcmpl-<fresh>");
                        }
                        ("id", Value::String(id)) if id.starts_with("msg_") => {
                            *inner = json!("msg_<fresh>");
                        }
                        ("created", Value::Number(_)) => *inner = json!(0),
                        _ => walk(inner),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

#[test]
fn chat_request_with_system_tools_images_and_results_becomes_messages() {
    check_to_messages(
        json!({
            "model": "claude",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Cite.", "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
                {"role": "user", "content": "And?"},
                {"role": "system", "content": "Answer in French."}
            ],
            "max_completion_tokens": 300,
            "stop": "END",
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "user-7",
            "stream": true,
            "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "lookup", "description": "Look up.", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "metadata": {"trace_id": "t-1", "tags": ["a"]}
        }),
        expect![[r#"
            {
              "model": "claude",
              "messages": [
                {
                  "role": "user",
                  "content": [
                    {
                      "type": "text",
                      "text": "What is in these?"
                    },
                    {
                      "type": "image",
                      "source": {
                        "data": "iVBORw0",
                        "media_type": "image/png",
                        "type": "base64"
                      }
                    },
                    {
                      "type": "image",
                      "source": {
                        "type": "url",
                        "url": "https://example.com/cat.jpg"
                      }
                    }
                  ]
                },
                {
                  "role": "assistant",
                  "content": [
                    {
                      "type": "tool_use",
                      "id": "call_1",
                      "input": {
                        "q": "cat"
                      },
                      "name": "lookup"
                    }
                  ]
                },
                {
                  "role": "user",
                  "content": [
                    {
                      "type": "tool_result",
                      "content": "a cat",
                      "tool_use_id": "call_1"
                    },
                    {
                      "type": "text",
                      "text": "And?"
                    },
                    {
                      "type": "text",
                      "text": "System: Answer in French."
                    }
                  ]
                }
              ],
              "system": [
                {
                  "type": "text",
                  "text": "Be brief."
                },
                {
                  "type": "text",
                  "cache_control": {
                    "type": "ephemeral"
                  },
                  "text": "Cite."
                }
              ],
              "max_tokens": 300,
              "stream": true,
              "tools": [
                {
                  "description": "Look up.",
                  "input_schema": {
                    "properties": {
                      "q": {
                        "type": "string"
                      }
                    },
                    "type": "object"
                  },
                  "name": "lookup"
                }
              ],
              "tool_choice": {
                "disable_parallel_tool_use": true,
                "type": "any"
              },
              "metadata": {
                "user_id": "user-7"
              },
              "stop_sequences": [
                "END"
              ],
              "temperature": 0.2,
              "top_p": 0.9,
              "litellm_metadata": {
                "tags": [
                  "a"
                ],
                "trace_id": "t-1"
              }
            }"#]],
    );
}

#[test]
fn chat_request_defaults_max_tokens_and_maps_reasoning_effort() {
    check_to_messages(
        json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "high"}),
        expect![[r#"
            {
              "model": "claude",
              "messages": [
                {
                  "role": "user",
                  "content": "hi"
                }
              ],
              "max_tokens": 4096,
              "thinking": {
                "budget_tokens": 4096,
                "type": "enabled"
              }
            }"#]],
    );
}

#[test]
fn chat_fields_without_a_messages_counterpart_are_refused_by_name() {
    let user = json!([{"role": "user", "content": "hi"}]);
    check_to_messages(
        json!({"model": "c", "messages": user, "n": 2}),
        expect!["error: `n` cannot be translated to Anthropic Messages: Anthropic returns one answer per request"],
    );
    check_to_messages(
        json!({"model": "c", "messages": user, "logprobs": true}),
        expect!["error: `logprobs` cannot be translated to Anthropic Messages: Anthropic Messages has no such parameter"],
    );
    check_to_messages(
        json!({"model": "c", "messages": user, "response_format": {"type": "json_schema", "json_schema": {}}}),
        expect!["error: `response_format` cannot be translated to Anthropic Messages: `json_schema` output has no Messages equivalent Mirror translates"],
    );
    check_to_messages(
        json!({"model": "c", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
        expect!["error: `messages[0].content[0].type` cannot be translated to Anthropic Messages: `input_audio` parts have no Messages equivalent"],
    );
    check_to_messages(
        json!({"model": "c", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "x", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}
        ]}),
        expect!["error: `messages[1].tool_calls[0].function.arguments` cannot be translated to Anthropic Messages: Anthropic needs the arguments as a JSON object"],
    );
    check_to_messages(
        json!({"model": "c", "messages": [{"role": "system", "content": "only system"}]}),
        expect!["error: `messages` cannot be translated to Anthropic Messages: Anthropic needs at least one user or assistant message"],
    );
}

#[test]
fn messages_request_with_tools_results_and_thinking_becomes_chat() {
    check_to_chat(
        json!({
            "model": "gpt",
            "max_tokens": 512,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Look at this"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4A"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cat"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a cat"}]},
                    {"type": "text", "text": "Thanks"}
                ]}
            ],
            "tools": [{"name": "lookup", "description": "Look up.", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "lookup", "disable_parallel_tool_use": true},
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u-1"},
            "litellm_metadata": {"tags": ["t"]},
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "stream": true,
            "cache_control": {"type": "ephemeral"}
        }),
        expect![[r#"
            {
              "model": "gpt",
              "messages": [
                {
                  "role": "system",
                  "content": "Be brief."
                },
                {
                  "role": "user",
                  "content": [
                    {
                      "type": "text",
                      "text": "Look at this"
                    },
                    {
                      "type": "image_url",
                      "image_url": {
                        "url": "data:image/jpeg;base64,/9j/4A"
                      }
                    }
                  ]
                },
                {
                  "role": "assistant",
                  "content": "Let me check.",
                  "tool_calls": [
                    {
                      "id": "toolu_1",
                      "type": "function",
                      "function": {
                        "name": "lookup",
                        "arguments": "{\"q\":\"cat\"}"
                      }
                    }
                  ]
                },
                {
                  "role": "tool",
                  "content": "a cat",
                  "tool_call_id": "toolu_1"
                },
                {
                  "role": "user",
                  "content": "Thanks"
                }
              ],
              "stream": true,
              "stream_options": {
                "include_usage": true
              },
              "stop": [
                "END"
              ],
              "max_tokens": 512,
              "tools": [
                {
                  "type": "function",
                  "function": {
                    "description": "Look up.",
                    "name": "lookup",
                    "parameters": {
                      "type": "object"
                    }
                  }
                }
              ],
              "tool_choice": {
                "function": {
                  "name": "lookup"
                },
                "type": "function"
              },
              "user": "u-1",
              "metadata": {
                "tags": [
                  "t"
                ]
              },
              "parallel_tool_calls": false,
              "reasoning_effort": "medium"
            }"#]],
    );
}

#[test]
fn messages_fields_without_a_chat_counterpart_are_refused_by_name() {
    check_to_chat(
        json!({"model": "g", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
               "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
        expect!["error: `tools[0].type` cannot be translated to OpenAI chat completions: `web_search_20250305` is an Anthropic server tool"],
    );
    check_to_chat(
        json!({"model": "g", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], "container": "c-1"}),
        expect!["error: `container` cannot be translated to OpenAI chat completions: OpenAI chat completions has no such parameter"],
    );
    check_to_chat(
        json!({"model": "g", "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}
        ]}]}),
        expect!["error: `messages[0].content[0].source.type` cannot be translated to OpenAI chat completions: `text` document sources have no chat equivalent"],
    );
    check_to_chat(
        json!({"model": "g", "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {}}]}
        ]}]}),
        expect!["error: `messages[0].content[0].content[0].type` cannot be translated to OpenAI chat completions: `image` blocks in a tool result (chat tool messages are text)"],
    );
}

#[test]
fn messages_answer_becomes_a_chat_completion() {
    let answer: MessagesResponse = serde_json::from_value(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Let me see.", "signature": "s"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cat"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 100}
    }))
    .unwrap();
    let chat = stable(serde_json::to_value(messages_response_to_chat(&answer)).unwrap());
    expect![[r#"
        {
          "choices": [
            {
              "finish_reason": "tool_calls",
              "index": 0,
              "message": {
                "content": "Checking.",
                "reasoning_content": "Let me see.",
                "role": "assistant",
                "tool_calls": [
                  {
                    "function": {
                      "arguments": "{\"q\":\"cat\"}",
                      "name": "lookup"
                    },
                    "id": "toolu_1",
                    "type": "function"
                  }
                ]
              }
            }
          ],
          "created": 0,
          "id": "chatcmpl-<fresh>",
          "model": "claude-sonnet-4-5",
          "object": "chat.completion",
          "usage": {
            "cache_creation_input_tokens": 3,
            "cache_read_input_tokens": 100,
            "completion_tokens": 5,
            "prompt_tokens": 113,
            "prompt_tokens_details": {
              "cached_tokens": 100
            },
            "total_tokens": 118
          }
        }"#]]
    .assert_eq(&pretty(&chat));
}

#[test]
fn chat_completion_becomes_a_messages_answer() {
    let completion: ChatResponse = serde_json::from_value(json!({
        "id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}}]
        }}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 7, "total_tokens": 127, "prompt_tokens_details": {"cached_tokens": 100}}
    }))
    .unwrap();
    expect![[r#"
        {
          "id": "chatcmpl-9",
          "type": "message",
          "role": "assistant",
          "content": [
            {
              "type": "tool_use",
              "id": "call_1",
              "input": {
                "q": "cat"
              },
              "name": "lookup"
            }
          ],
          "model": "gpt-4o",
          "stop_reason": "tool_use",
          "stop_sequence": null,
          "usage": {
            "input_tokens": 20,
            "output_tokens": 7,
            "cache_read_input_tokens": 100
          }
        }"#]]
    .assert_eq(&pretty(&chat_response_to_messages(&completion).unwrap()));

    let bad: ChatResponse = serde_json::from_value(json!({
        "id": "c", "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "tool_calls": [{"id": "x", "function": {"name": "f", "arguments": "{oops"}}]
        }}]
    }))
    .unwrap();
    expect!["`choices[0].message.tool_calls[0].function.arguments` cannot be translated to Anthropic Messages: the model's arguments are not a JSON object"]
        .assert_eq(&chat_response_to_messages(&bad).unwrap_err().to_string());
}

#[test]
fn stop_reasons_map_both_ways() {
    let forward: Vec<String> = [
        "end_turn",
        "stop_sequence",
        "max_tokens",
        "tool_use",
        "refusal",
        "pause_turn",
        "model_context_window_exceeded",
    ]
    .iter()
    .map(|reason| format!("{reason} -> {}", finish_reason_of(reason)))
    .collect();
    let back: Vec<String> = ["stop", "length", "tool_calls", "content_filter", "other"]
        .iter()
        .map(|reason| format!("{reason} -> {}", stop_reason_of(reason)))
        .collect();
    expect![[r#"
        end_turn -> stop
        stop_sequence -> stop
        max_tokens -> length
        tool_use -> tool_calls
        refusal -> content_filter
        pause_turn -> stop
        model_context_window_exceeded -> stop
        stop -> end_turn
        length -> max_tokens
        tool_calls -> tool_use
        content_filter -> refusal
        other -> end_turn"#]]
    .assert_eq(&[forward, back].concat().join("\n"));
}

fn event(data: Value) -> MessagesEvent {
    let kind = data["type"].as_str().unwrap().to_owned();
    MessagesEvent::new(kind, &data)
}

#[test]
fn anthropic_events_become_chat_chunks() {
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-x", "stop_reason": null, "usage": {"input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 4}}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"q\":"}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "\"cat\"}"}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 9}}),
        json!({"type": "message_stop"}),
    ];
    let mut translation = MessagesToChatStream::new(true);
    let mut lines = Vec::new();
    let mut accumulator = crate::StreamAccumulator::default();
    for data in events {
        if let Some(chunk) = translation.push(&event(data)).unwrap() {
            accumulator.push(&chunk);
            let mut value = stable(serde_json::to_value(&chunk).unwrap());
            let object = value.as_object_mut().unwrap();
            for key in ["id", "object", "created", "model"] {
                object.remove(key);
            }
            lines.push(value.to_string());
        }
    }
    expect![[r#"
        {"choices":[{"delta":{"content":"","role":"assistant"},"finish_reason":null,"index":0}],"usage":null}
        {"choices":[{"delta":{"reasoning_content":"hm"},"finish_reason":null,"index":0}],"usage":null}
        {"choices":[{"delta":{"content":"Hi"},"finish_reason":null,"index":0}],"usage":null}
        {"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"","name":"lookup"},"id":"toolu_1","index":0,"type":"function"}]},"finish_reason":null,"index":0}],"usage":null}
        {"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{\"q\":"},"index":0}]},"finish_reason":null,"index":0}],"usage":null}
        {"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"\"cat\"}"},"index":0}]},"finish_reason":null,"index":0}],"usage":null}
        {"choices":[{"delta":{},"finish_reason":"tool_calls","index":0}],"usage":null}
        {"choices":[],"usage":{"cache_read_input_tokens":4,"completion_tokens":9,"prompt_tokens":16,"prompt_tokens_details":{"cached_tokens":4},"total_tokens":25}}"#]]
    .assert_eq(&lines.join("\n"));
    let rebuilt = accumulator.finish();
    let message = &rebuilt.choices[0].message;
    assert_eq!(message.text().as_deref(), Some("Hi"));
    assert_eq!(
        message.tool_calls.as_ref().unwrap()[0].function.arguments,
        "{\"q\":\"cat\"}"
    );
}

#[test]
fn an_error_event_is_an_error() {
    let mut translation = MessagesToChatStream::new(false);
    let error = translation
        .push(&event(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})))
        .unwrap_err();
    assert_eq!(error.error.kind, "overloaded_error");
}

#[test]
fn chat_chunks_become_anthropic_events() {
    let chunks = [
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}),
        json!({"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
        json!({"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "lo"}}]}),
        json!({"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}]}}]}),
        json!({"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\":"}}]}}]}),
        json!({"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"cat\"}"}}]}}]}),
        json!({"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "call_2", "function": {"name": "other", "arguments": "{}"}}]}}]}),
        json!({"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        json!({"id": "c1", "model": "gpt-4o", "choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 8, "total_tokens": 38, "prompt_tokens_details": {"cached_tokens": 10}}}),
    ];
    let mut translation = ChatToMessagesStream::new();
    let mut events = Vec::new();
    for chunk in chunks {
        let chunk: ChatChunk = serde_json::from_value(chunk).unwrap();
        events.extend(translation.push(&chunk));
    }
    events.extend(translation.finish());
    let mut accumulator = crate::MessagesAccumulator::default();
    let lines: Vec<String> = events
        .iter()
        .map(|event| {
            accumulator.push(event);
            format!("{}: {}", event.event, stable(event.json().unwrap()))
        })
        .collect();
    expect![[r#"
        message_start: {"message":{"content":[],"id":"msg_<fresh>","model":"gpt-4o","role":"assistant","stop_reason":null,"stop_sequence":null,"type":"message","usage":{"input_tokens":0,"output_tokens":0}},"type":"message_start"}
        content_block_start: {"content_block":{"text":"","type":"text"},"index":0,"type":"content_block_start"}
        content_block_delta: {"delta":{"text":"Hel","type":"text_delta"},"index":0,"type":"content_block_delta"}
        content_block_delta: {"delta":{"text":"lo","type":"text_delta"},"index":0,"type":"content_block_delta"}
        content_block_stop: {"index":0,"type":"content_block_stop"}
        content_block_start: {"content_block":{"id":"call_1","input":{},"name":"lookup","type":"tool_use"},"index":1,"type":"content_block_start"}
        content_block_delta: {"delta":{"partial_json":"{\"q\":","type":"input_json_delta"},"index":1,"type":"content_block_delta"}
        content_block_delta: {"delta":{"partial_json":"\"cat\"}","type":"input_json_delta"},"index":1,"type":"content_block_delta"}
        content_block_stop: {"index":1,"type":"content_block_stop"}
        content_block_start: {"content_block":{"id":"call_2","input":{},"name":"other","type":"tool_use"},"index":2,"type":"content_block_start"}
        content_block_delta: {"delta":{"partial_json":"{}","type":"input_json_delta"},"index":2,"type":"content_block_delta"}
        content_block_stop: {"index":2,"type":"content_block_stop"}
        message_delta: {"delta":{"stop_reason":"tool_use","stop_sequence":null},"type":"message_delta","usage":{"cache_read_input_tokens":10,"input_tokens":20,"output_tokens":8}}
        message_stop: {"type":"message_stop"}"#]]
    .assert_eq(&lines.join("\n"));
    let message = accumulator.finish().unwrap();
    assert_eq!(message.joined_text(), "Hello");
    let inputs: Vec<String> = message.tool_uses().map(|t| t.input.to_string()).collect();
    assert_eq!(inputs, ["{\"q\":\"cat\"}", "{}"]);
    assert_eq!(message.usage.prompt_tokens(), 30);
}

#[test]
fn a_translated_round_trip_keeps_the_conversation() {
    let chat: ChatRequest = serde_json::from_value(json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"}
        ],
        "max_tokens": 100,
        "temperature": 0.5
    }))
    .unwrap();
    let back = messages_to_chat(&chat_to_messages(&chat).unwrap()).unwrap();
    assert_eq!(back.messages, chat.messages);
    assert_eq!(back.max_tokens, Some(100));
    assert_eq!(back.temperature, Some(0.5));
}
