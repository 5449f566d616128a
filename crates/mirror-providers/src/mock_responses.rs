//! The mock provider's Responses API: OpenAI-shaped response objects and events, made in process.

use futures::StreamExt;
use mirror_core::{DeploymentParams, ResponsesEvent, ResponsesRequest, ResponsesResponse};
use serde_json::{json, Value};

use crate::mock::{estimate_tokens, now_secs};
use crate::ResponsesEventStream;

/// The answer: the deployment's `mock_response`, else the text of the last user input.
pub(crate) fn answer(deployment: &DeploymentParams, request: &ResponsesRequest) -> String {
    if let Some(text) = &deployment.mock_response {
        return text.clone();
    }
    match request.extra.get("input") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .rev()
            .find(|item| item.get("role").and_then(Value::as_str) == Some("user"))
            .map(item_text)
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn item_text(item: &Value) -> String {
    match item.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// A completed response object with `text` as its one message.
pub(crate) fn response(
    deployment: &DeploymentParams,
    request: &ResponsesRequest,
    text: &str,
) -> ResponsesResponse {
    let input = estimate_tokens(
        &request
            .extra
            .get("input")
            .map_or_else(String::new, |input| {
                input
                    .as_str()
                    .map_or_else(|| input.to_string(), str::to_owned)
            }),
    ) + 4;
    let output = estimate_tokens(text);
    let value = json!({
        "id": format!("resp_mock{:016x}", fastrand::u64(..)),
        "object": "response",
        "created_at": now_secs(),
        "status": "completed",
        "model": deployment.model.name(),
        "previous_response_id": request.previous_response_id,
        "output": [{
            "type": "message",
            "id": format!("msg_mock{:016x}", fastrand::u64(..)),
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }],
        "usage": {
            "input_tokens": input,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input + output,
        },
    });
    // The object above always has the shape of a response.
    serde_json::from_value(value).unwrap_or_else(|_| ResponsesResponse {
        id: String::new(),
        usage: None,
        extra: serde_json::Map::new(),
    })
}

/// The events of a plain text answer, in OpenAI's order, with the text word by word.
pub(crate) fn events(done: &ResponsesResponse, text: &str) -> ResponsesEventStream {
    let mut in_progress = done.clone();
    in_progress.usage = None;
    in_progress
        .extra
        .insert("status".to_owned(), Value::from("in_progress"));
    in_progress
        .extra
        .insert("output".to_owned(), Value::Array(Vec::new()));
    let item_id = done.extra["output"][0]["id"].clone();
    let mut events: Vec<(String, Value)> = vec![
        ("response.created".into(), json!({"response": in_progress})),
        (
            "response.in_progress".into(),
            json!({"response": in_progress}),
        ),
        (
            "response.output_item.added".into(),
            json!({"output_index": 0, "item": {"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []}}),
        ),
        (
            "response.content_part.added".into(),
            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
        ),
    ];
    for piece in text.split_inclusive(' ') {
        events.push((
            "response.output_text.delta".into(),
            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": piece}),
        ));
    }
    events.push((
        "response.output_text.done".into(),
        json!({"item_id": item_id, "output_index": 0, "content_index": 0, "text": text}),
    ));
    events.push((
        "response.output_item.done".into(),
        json!({"output_index": 0, "item": done.extra["output"][0]}),
    ));
    events.push(("response.completed".into(), json!({"response": done})));
    let events: Vec<_> = events
        .into_iter()
        .enumerate()
        .map(|(sequence, (kind, mut data))| {
            data["type"] = Value::from(kind.clone());
            data["sequence_number"] = Value::from(sequence);
            Ok(ResponsesEvent {
                event: kind,
                data: data.to_string(),
            })
        })
        .collect();
    futures::stream::iter(events).boxed()
}
