//! Calls as OTLP/HTTP JSON spans, with the attributes Langfuse maps to a generation.
//!
//! Attribute names are Langfuse's (`web/src/features/otel/server/attributes.ts`): `langfuse.trace.*`
//! and `langfuse.observation.*`, plus the `gen_ai.*` conventions. Langfuse reads
//! `langfuse.observation.usage_details` and `.cost_details` only from its own SDKs' spans, so usage
//! and cost are also sent as `gen_ai.usage.*`, which it maps for every span.

use std::sync::Arc;

use mirror_core::CallRecord;
use serde_json::{json, Value};

use super::{
    bounded_content, is_failure, observation_metadata, observation_name, session_id,
    status_message, tags, trace_name, LangfuseSink,
};
use crate::ids::{otel_span_id, otel_trace_id};
use crate::time_fmt::{epoch_nanos, iso8601, utc};
use crate::{http, SinkError};

/// OTLP span kind CLIENT: an outgoing call to a model.
pub(crate) const SPAN_KIND_CLIENT: u8 = 3;
/// OTLP status codes.
pub(crate) const STATUS_OK: u8 = 1;
pub(crate) const STATUS_ERROR: u8 = 2;

pub(crate) fn string(key: &str, value: impl Into<String>) -> Value {
    json!({ "key": key, "value": { "stringValue": value.into() } })
}

pub(crate) fn int(key: &str, value: u64) -> Value {
    // OTLP's JSON encoding writes 64-bit integers as strings.
    json!({ "key": key, "value": { "intValue": value.to_string() } })
}

pub(crate) fn double(key: &str, value: f64) -> Value {
    json!({ "key": key, "value": { "doubleValue": value } })
}

pub(crate) fn boolean(key: &str, value: bool) -> Value {
    json!({ "key": key, "value": { "boolValue": value } })
}

pub(crate) fn string_array(key: &str, values: &[String]) -> Value {
    let values: Vec<Value> = values
        .iter()
        .map(|value| json!({ "stringValue": value }))
        .collect();
    json!({ "key": key, "value": { "arrayValue": { "values": values } } })
}

/// A metadata value as an attribute: strings, booleans and integers as themselves, the rest as JSON
/// text.
fn any(key: &str, value: &Value) -> Value {
    match value {
        Value::String(text) => string(key, text.as_str()),
        Value::Bool(flag) => boolean(key, *flag),
        Value::Number(number) => match number.as_u64() {
            Some(n) => int(key, n),
            None => double(key, number.as_f64().unwrap_or_default()),
        },
        other => string(key, other.to_string()),
    }
}

/// One span for one call.
pub(super) fn span(
    record: &CallRecord,
    environment: Option<&str>,
    max_event_bytes: usize,
) -> Value {
    let mut attributes = vec![
        string("langfuse.observation.type", "generation"),
        string("langfuse.observation.model.name", record.model.as_str()),
        string("gen_ai.request.model", record.model.as_str()),
        string("gen_ai.system", record.custom_llm_provider.as_str()),
        int("gen_ai.usage.input_tokens", record.prompt_tokens),
        int("gen_ai.usage.output_tokens", record.completion_tokens),
        int("gen_ai.usage.total_tokens", record.total_tokens),
        string(
            "langfuse.observation.usage_details",
            json!({
                "input": record.prompt_tokens,
                "output": record.completion_tokens,
                "total": record.total_tokens,
            })
            .to_string(),
        ),
        string(
            "langfuse.observation.cost_details",
            json!({ "total": record.response_cost }).to_string(),
        ),
        string(
            "langfuse.observation.level",
            if is_failure(record) {
                "ERROR"
            } else {
                "DEFAULT"
            },
        ),
    ];
    if record.response_cost > 0.0 {
        attributes.push(double("gen_ai.usage.cost", record.response_cost));
    }
    let (input, output) = bounded_content(record, max_event_bytes);
    if let Some(input) = input {
        attributes.push(string("langfuse.observation.input", input.to_string()));
    }
    if let Some(output) = output {
        attributes.push(string("langfuse.observation.output", output.to_string()));
    }
    if let Some(at) = record.completion_start_time {
        // Langfuse parses this attribute as JSON: a quoted ISO 8601 string.
        attributes.push(string(
            "langfuse.observation.completion_start_time",
            Value::String(iso8601(utc(at))).to_string(),
        ));
    }
    let message = status_message(record);
    if let Some(message) = &message {
        attributes.push(string(
            "langfuse.observation.status_message",
            message.as_str(),
        ));
    }
    for (key, value) in observation_metadata(record) {
        attributes.push(any(&format!("langfuse.observation.metadata.{key}"), &value));
    }
    let tags = tags(record);
    if !tags.is_empty() {
        attributes.push(string_array("langfuse.trace.tags", &tags));
    }
    attributes.push(string(
        "langfuse.trace.metadata.trace_id",
        record.trace_id.as_str(),
    ));
    if !record.is_silent() {
        // The primary names the trace; its silent copies only add tags, so the trace reads as the
        // caller's request.
        attributes.push(string("langfuse.trace.name", trace_name(record)));
        attributes.push(string(
            "langfuse.trace.metadata.model_group",
            record.model_group.as_str(),
        ));
    }
    if let Some(user) = &record.end_user {
        attributes.push(string("user.id", user.as_str()));
    }
    if let Some(session) = session_id(record) {
        attributes.push(string("session.id", session));
    }
    if let Some(environment) = environment {
        attributes.push(string("langfuse.environment", environment));
    }

    let status = match &message {
        Some(message) => json!({ "code": STATUS_ERROR, "message": message }),
        None => json!({ "code": STATUS_OK }),
    };
    json!({
        "traceId": otel_trace_id(&record.trace_id),
        "spanId": otel_span_id(&record.call_id),
        "name": observation_name(record),
        "kind": SPAN_KIND_CLIENT,
        "startTimeUnixNano": epoch_nanos(record.start_time).to_string(),
        "endTimeUnixNano": epoch_nanos(record.end_time).to_string(),
        "attributes": attributes,
        "status": status,
    })
}

/// An `ExportTraceServiceRequest` holding `spans`.
pub(crate) fn request_body(spans: &[Value]) -> Value {
    json!({
        "resourceSpans": [{
            "resource": {
                "attributes": [
                    string("service.name", "mirror"),
                    string("telemetry.sdk.name", "mirror-logging"),
                    string("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
                ]
            },
            "scopeSpans": [{
                "scope": { "name": "mirror-logging", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }]
        }]
    })
}

/// Posts the batch, split into requests under the size limit.
pub(super) async fn export(
    sink: &LangfuseSink,
    batch: &[Arc<CallRecord>],
) -> Result<(), SinkError> {
    let spans: Vec<Value> = batch
        .iter()
        .map(|record| span(record, sink.environment.as_deref(), sink.max_event_bytes))
        .collect();
    let mut rejected = 0usize;
    let mut first_message = None;
    for chunk in chunks(&spans, sink.max_request_bytes) {
        let body = serde_json::to_vec(&request_body(chunk))
            .map_err(|source| SinkError::Encode { source })?;
        let response = sink
            .post(body)
            .send()
            .await
            .map_err(|err| http::transport(&sink.endpoint, err))?;
        let response = http::check_status(&sink.endpoint, response).await?;
        // A full success may have an empty body; `partialSuccess` reports refused spans.
        let text = response.text().await.unwrap_or_default();
        if let Ok(answer) = serde_json::from_str::<Value>(&text) {
            let partial = &answer["partialSuccess"];
            let refused = match &partial["rejectedSpans"] {
                Value::String(n) => n.parse().unwrap_or(0),
                Value::Number(n) => n.as_u64().unwrap_or(0),
                _ => 0,
            };
            if refused > 0 {
                rejected += usize::try_from(refused)
                    .unwrap_or(chunk.len())
                    .min(chunk.len());
                first_message.get_or_insert_with(|| {
                    http::quote(partial["errorMessage"].as_str().unwrap_or("spans rejected"))
                });
            }
        }
    }
    if rejected > 0 {
        return Err(SinkError::Rejected {
            rejected,
            total: batch.len(),
            message: first_message.unwrap_or_default(),
        });
    }
    Ok(())
}

/// Splits items into runs whose JSON stays under `max_bytes` (an item larger than that goes alone).
pub(crate) fn chunks(items: &[Value], max_bytes: usize) -> Vec<&[Value]> {
    // Room for the envelope around the items.
    let budget = max_bytes.saturating_sub(4096).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, item) in items.iter().enumerate() {
        let item_size = serde_json::to_vec(item).map_or(0, |v| v.len()) + 1;
        if i > start && size + item_size > budget {
            out.push(&items[start..i]);
            start = i;
            size = 0;
        }
        size += item_size;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}
