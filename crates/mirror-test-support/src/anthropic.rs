//! The fake upstream's Anthropic Messages API: Anthropic-shaped messages, events and errors for
//! `/v1/messages` paths (and `/v1/messages/count_tokens`), answered by the scripted upstream.

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{json, Value};

use crate::upstream::{json_with_headers, Seen};

/// The input tokens the fake `count_tokens` answers.
pub const COUNTED_TOKENS: u64 = 21;

/// The usage of every scripted answer: 9 uncached input tokens, 2 read from the cache, 4 output.
pub fn usage() -> Value {
    json!({"input_tokens": 9, "output_tokens": 4, "cache_creation_input_tokens": 0,
           "cache_read_input_tokens": 2})
}

/// Whether `seen` is a Messages API request.
pub(crate) fn is_messages(seen: &Seen) -> bool {
    seen.path.ends_with("/v1/messages") || seen.path.ends_with("/v1/messages/count_tokens")
}

/// The answer to a Messages request, or `None` when `seen` is not one. Ids are
/// `msg_<name>_<number>`; the text says `hello from <name>`. A request with tools whose last turn
/// is not a tool result gets a `tool_use` of its first tool (input `{"city": "Paris"}`).
pub(crate) fn answer(name: &str, number: usize, seen: &Seen) -> Option<Response> {
    if !is_messages(seen) || seen.method != "POST" {
        return None;
    }
    if seen.path.ends_with("/count_tokens") {
        return Some(reply(200, json!({"input_tokens": COUNTED_TOKENS})));
    }
    let message = message(name, number, seen);
    if seen.is_stream() {
        return Some(stream(&message, None));
    }
    Some(reply(200, message))
}

/// A JSON answer with the `request-id` header Anthropic sends on every response.
fn reply(status: u16, body: Value) -> Response {
    json_with_headers(status, &[("request-id", "req_test")], body)
}

/// Anthropic's error answer for `status` (with its `error.type`), plus `headers`.
pub(crate) fn error(status: u16, message: &str, headers: &[(&str, &str)]) -> Response {
    let mut all = vec![("request-id", "req_test")];
    all.extend_from_slice(headers);
    json_with_headers(
        status,
        &all,
        json!({"type": "error", "error": {"type": error_type(status), "message": message},
               "request_id": "req_test"}),
    )
}

fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// The whole message the scripted upstream answers.
pub fn message(name: &str, number: usize, seen: &Seen) -> Value {
    let body = &seen.body;
    let tool = body
        .pointer("/tools/0/name")
        .and_then(Value::as_str)
        .filter(|_| !last_turn_is_tool_result(body));
    let (content, stop_reason) = match tool {
        Some(tool) => (
            json!([
                {"type": "text", "text": format!("calling {tool}")},
                {"type": "tool_use", "id": format!("toolu_{name}_{number}"), "name": tool,
                 "input": {"city": "Paris"}}
            ]),
            "tool_use",
        ),
        None => (
            json!([{"type": "text", "text": format!("hello from {name}")}]),
            "end_turn",
        ),
    };
    json!({
        "id": format!("msg_{name}_{number}"), "type": "message", "role": "assistant",
        "model": body.get("model").cloned().unwrap_or(Value::Null),
        "content": content, "stop_reason": stop_reason, "stop_sequence": null, "usage": usage(),
    })
}

fn last_turn_is_tool_result(body: &Value) -> bool {
    body.get("messages")
        .and_then(Value::as_array)
        .and_then(|messages| messages.last())
        .and_then(|turn| turn.get("content"))
        .and_then(Value::as_array)
        .is_some_and(|blocks| blocks.iter().any(|block| block["type"] == "tool_result"))
}

/// The events of `message` in Anthropic's order (`message_start`, a `ping`, each block's start,
/// deltas and stop, `message_delta`, `message_stop`), `event:` lines included. With `error`, the
/// stream sends `message_start` and then an `error` event of that type instead of the rest.
pub fn events(message: &Value, error: Option<(&str, &str)>) -> Vec<String> {
    let mut start = message.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["usage"]["output_tokens"] = json!(1);
    let mut events = vec![
        ("message_start", json!({"message": start})),
        ("ping", json!({})),
    ];
    if let Some((kind, text)) = error {
        events.push(("error", json!({"error": {"type": kind, "message": text}})));
    } else {
        for (index, block) in message["content"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let mut skeleton = block.clone();
            let deltas: Vec<Value> = match block["type"].as_str() {
                Some("text") => {
                    skeleton["text"] = json!("");
                    let text = block["text"].as_str().unwrap_or_default();
                    let (first, second) = text.split_at(text.find(' ').map_or(0, |at| at + 1));
                    [first, second]
                        .into_iter()
                        .filter(|part| !part.is_empty())
                        .map(|part| json!({"type": "text_delta", "text": part}))
                        .collect()
                }
                Some("tool_use") => {
                    skeleton["input"] = json!({});
                    let input = block["input"].to_string();
                    let (first, second) = input.split_at(input.len() / 2);
                    [first, second]
                        .into_iter()
                        .map(|part| json!({"type": "input_json_delta", "partial_json": part}))
                        .collect()
                }
                _ => Vec::new(),
            };
            events.push((
                "content_block_start",
                json!({"index": index, "content_block": skeleton}),
            ));
            for delta in deltas {
                events.push((
                    "content_block_delta",
                    json!({"index": index, "delta": delta}),
                ));
            }
            events.push(("content_block_stop", json!({"index": index})));
        }
        events.push((
            "message_delta",
            json!({"delta": {"stop_reason": message["stop_reason"], "stop_sequence": null},
                   "usage": {"output_tokens": message["usage"]["output_tokens"]}}),
        ));
        events.push(("message_stop", json!({})));
    }
    events
        .into_iter()
        .map(|(kind, mut data)| {
            data["type"] = json!(kind);
            format!("event: {kind}\ndata: {data}\n\n")
        })
        .collect()
}

/// `message` as a `text/event-stream` answer (see [`events`]).
pub fn stream(message: &Value, error: Option<(&str, &str)>) -> Response {
    let body: Vec<Result<Bytes, std::io::Error>> = events(message, error)
        .into_iter()
        .map(|event| Ok(Bytes::from(event)))
        .collect();
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("request-id", "req_test")
        .body(Body::from_stream(futures::stream::iter(body)))
        .unwrap()
}

/// The first events of a streamed message (up to the first text delta), then a broken connection.
pub(crate) fn reset(name: &str, number: usize, seen: &Seen) -> Response {
    let message = message(name, number, seen);
    let events = events(&message, None);
    let mut parts: Vec<Result<Bytes, std::io::Error>> = events
        .into_iter()
        .take(4)
        .map(|event| Ok(Bytes::from(event)))
        .collect();
    parts.push(Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "reset by the test upstream",
    )));
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(futures::stream::iter(parts)))
        .unwrap()
}
