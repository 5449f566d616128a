//! Call records as the router writes them, built from a few numbers, for report and sink tests.

use mirror_core::{CallId, CallRecord, TraceId};
use serde_json::json;

/// A successful primary call of `group` on `model` that took `latency` seconds and answered `text`.
pub fn primary(group: &str, model: &str, latency: f64, text: &str) -> CallRecord {
    let record = json!({
        "id": "chatcmpl-test", "trace_id": TraceId::new(), "litellm_call_id": CallId::new(),
        "call_type": "acompletion", "stream": false, "status": "success",
        "custom_llm_provider": "openai", "model": model, "model_id": format!("{group}-dep"),
        "model_group": group, "api_base": "https://api.example.invalid/v1",
        "startTime": 1_700_000_000.0, "endTime": 1_700_000_000.0 + latency,
        "completionStartTime": 1_700_000_000.0 + latency, "response_time": latency,
        "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "response_cost": 0.001,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "response": {"id": "chatcmpl-test", "object": "chat.completion", "created": 1_700_000_000_u64,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]},
        "metadata": {"is_silent_experiment": false, "spend": "caller", "attempts": 1, "requester_metadata": {}},
        "request_tags": []
    });
    serde_json::from_value(record).unwrap()
}

/// The silent copy of `of`, answered by `group` on `model`.
pub fn shadow(of: &CallRecord, group: &str, model: &str, latency: f64, text: &str) -> CallRecord {
    let mut record = primary(group, model, latency, text);
    record.trace_id = of.trace_id.clone();
    record.metadata.is_silent_experiment = true;
    record.metadata.mirror_of = Some(of.call_id);
    record.metadata.spend = serde_json::from_value(json!("shadow")).unwrap();
    record
}

/// `record` as a failure of class `class` (a 429 from the upstream), without a response.
pub fn failed(mut record: CallRecord, class: &str) -> CallRecord {
    let mut value = serde_json::to_value(&record).unwrap();
    value["status"] = json!("failure");
    value["error_str"] = json!("upstream said no");
    value["error_information"] = json!({
        "error_code": "429", "error_class": class, "llm_provider": "openai", "error_message": "no"
    });
    value.as_object_mut().unwrap().remove("response");
    record = serde_json::from_value(value).unwrap();
    record
}

/// `record` answering with one call of tool `name` instead of text.
pub fn with_tool_call(mut record: CallRecord, name: &str, arguments: &str) -> CallRecord {
    let mut value = serde_json::to_value(&record).unwrap();
    value["response"]["choices"][0]["message"] = json!({
        "role": "assistant", "content": null,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}]
    });
    record = serde_json::from_value(value).unwrap();
    record
}

/// `record` as a streamed call whose first token came after `ttft` seconds.
pub fn streamed(mut record: CallRecord, ttft: f64) -> CallRecord {
    record.stream = true;
    record.completion_start_time = Some(record.start_time + ttft);
    record
}

/// `record` as a Responses create (`aresponses`) that answered `text` and, when given, one function
/// call (name, arguments), with the Responses object in `response` as the router records it.
pub fn responses(
    mut record: CallRecord,
    text: &str,
    function_call: Option<(&str, &str)>,
) -> CallRecord {
    let mut output = vec![json!({
        "type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]
    })];
    if let Some((name, arguments)) = function_call {
        output.push(json!({
            "type": "function_call", "id": "fc_1", "call_id": "call_1", "status": "completed",
            "name": name, "arguments": arguments
        }));
    }
    let mut value = serde_json::to_value(&record).unwrap();
    value["call_type"] = json!("aresponses");
    value["id"] = json!("resp_test");
    value.as_object_mut().unwrap().remove("messages");
    value["response"] = json!({
        "id": "resp_test", "object": "response", "created_at": 1_700_000_000_u64,
        "status": "completed", "model": record.model, "output": output,
        "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
    });
    record = serde_json::from_value(value).unwrap();
    record
}

/// `record` as an embeddings call (`aembedding`) that returned `vectors`: logged in `response`
/// when `logged` (as `log_embedding_vectors` does), else only their shape.
pub fn embeddings(mut record: CallRecord, vectors: &[Vec<f32>], logged: bool) -> CallRecord {
    let mut value = serde_json::to_value(&record).unwrap();
    value["call_type"] = json!("aembedding");
    value["completion_tokens"] = json!(0);
    let object = value.as_object_mut().unwrap();
    object.remove("messages");
    object.remove("response");
    value["metadata"]["embedding"] = json!({
        "vectors": vectors.len(),
        "dimensions": vectors.first().map(Vec::len),
    });
    if logged {
        let data: Vec<_> = vectors
            .iter()
            .enumerate()
            .map(|(index, v)| json!({"object": "embedding", "index": index, "embedding": v}))
            .collect();
        value["response"] = json!({
            "object": "list", "data": data, "model": record.model,
            "usage": {"prompt_tokens": 10, "total_tokens": 10}
        });
    }
    record = serde_json::from_value(value).unwrap();
    record
}
