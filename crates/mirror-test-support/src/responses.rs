//! The fake upstream's Responses API: OpenAI-shaped objects and events for `/responses` paths
//! (OpenAI's `/v1/responses` and both Azure surfaces), answered by the scripted upstream.

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{json, Value};

use crate::upstream::{json, Seen};

/// An unknown event type the scripted stream sends, so tests see it relayed unchanged.
pub const UNKNOWN_EVENT: &str = "response.mirror_test.unknown";

/// The answer to a Responses request, or `None` when `seen` is not one. Ids are
/// `resp_<name>_<number>`; the response echoes `previous_response_id`, so a test sees which id each
/// upstream got.
pub(crate) fn answer(name: &str, number: usize, seen: &Seen) -> Option<Response> {
    let path = seen.path.as_str();
    let at = path.find("/responses")?;
    let rest = &path[at + "/responses".len()..];
    let text = format!("hello from {name}");
    if rest.is_empty() && seen.method == "POST" {
        let id = format!("resp_{name}_{number}");
        let done = object(&id, seen, "completed", &text);
        if seen.is_stream() {
            return Some(stream(&done, &text));
        }
        return Some(json(200, done));
    }
    let mut parts = rest.trim_start_matches('/').splitn(2, '/');
    let id = parts.next().unwrap_or_default().to_owned();
    Some(match (seen.method.as_str(), parts.next()) {
        ("GET", None) => json(200, object(&id, seen, "completed", &text)),
        ("DELETE", None) => json(
            200,
            json!({"id": id, "object": "response.deleted", "deleted": true}),
        ),
        ("POST", Some("cancel")) => json(200, object(&id, seen, "cancelled", &text)),
        ("GET", Some("input_items")) => json(
            200,
            json!({"object": "list", "data": [{"id": format!("msg_{id}"), "type": "message",
                "role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
                "first_id": format!("msg_{id}"), "last_id": format!("msg_{id}"), "has_more": false}),
        ),
        _ => return None,
    })
}

fn object(id: &str, seen: &Seen, status: &str, text: &str) -> Value {
    json!({
        "id": id, "object": "response", "created_at": 1_700_000_000, "status": status,
        "model": seen.body.get("model").cloned().unwrap_or(Value::Null),
        "previous_response_id": seen.body.get("previous_response_id").cloned().unwrap_or(Value::Null),
        "metadata": seen.body.get("metadata").cloned().unwrap_or(json!({})),
        "output": [{"type": "message", "id": format!("msg_{id}"), "status": "completed",
            "role": "assistant", "content": [{"type": "output_text", "text": text, "annotations": []}]}],
        "usage": {"input_tokens": 11, "input_tokens_details": {"cached_tokens": 2},
            "output_tokens": 6, "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 17},
    })
}

/// The events of a plain text answer in OpenAI's order, `event:` lines included, with one event of
/// a type no version knows ([`UNKNOWN_EVENT`]) in the middle.
fn stream(done: &Value, text: &str) -> Response {
    let mut created = done.clone();
    created["status"] = json!("in_progress");
    created["output"] = json!([]);
    created["usage"] = Value::Null;
    let item = &done["output"][0];
    let item_id = item["id"].clone();
    let (first, second) = text.split_at(text.find(' ').map_or(text.len(), |at| at + 1));
    let events = [
        ("response.created", json!({"response": created})),
        ("response.in_progress", json!({"response": created})),
        (
            "response.output_item.added",
            json!({"output_index": 0, "item": {"type": "message", "id": item_id, "role": "assistant", "content": []}}),
        ),
        (
            "response.output_text.delta",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": first}),
        ),
        (UNKNOWN_EVENT, json!({"note": "relayed unchanged"})),
        (
            "response.output_text.delta",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": second}),
        ),
        (
            "response.output_item.done",
            json!({"output_index": 0, "item": item}),
        ),
        ("response.completed", json!({"response": done})),
    ];
    let body: Vec<Result<Bytes, std::io::Error>> = events
        .into_iter()
        .enumerate()
        .map(|(sequence, (kind, mut data))| {
            data["type"] = json!(kind);
            data["sequence_number"] = json!(sequence);
            Ok(Bytes::from(format!("event: {kind}\ndata: {data}\n\n")))
        })
        .collect();
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(futures::stream::iter(body)))
        .unwrap()
}
