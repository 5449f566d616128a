//! Calls as legacy ingestion events: a `trace-create` and a `generation-create` each, the shapes
//! LiteLLM's `langfuse.py` sends.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mirror_core::CallRecord;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::otel::chunks;
use super::{
    bounded_content, is_failure, observation_metadata, observation_name, session_id,
    status_message, tags, trace_name, LangfuseSink,
};
use crate::time_fmt::{iso8601, utc};
use crate::{http, SinkError};

/// Langfuse's limit on ids.
const MAX_ID_CHARS: usize = 800;

/// An id Langfuse accepts: at most 800 characters, no carriage return.
fn langfuse_id(raw: &str) -> String {
    raw.chars()
        .filter(|c| *c != '\r')
        .take(MAX_ID_CHARS)
        .collect()
}

/// The two events of one call.
pub(super) fn events(
    record: &CallRecord,
    environment: Option<&str>,
    max_event_bytes: usize,
) -> [Value; 2] {
    let now = iso8601(OffsetDateTime::now_utc());
    let trace_id = langfuse_id(record.trace_id.as_str());
    let (input, output) = bounded_content(record, max_event_bytes);

    let mut trace = Map::new();
    trace.insert("id".into(), trace_id.clone().into());
    trace.insert("timestamp".into(), iso8601(utc(record.start_time)).into());
    trace.insert("tags".into(), json!(tags(record)));
    if !record.is_silent() {
        // The primary fills the trace; a silent copy's trace-create only adds its tag.
        trace.insert("name".into(), trace_name(record).into());
        if let Some(input) = &input {
            trace.insert("input".into(), input.clone());
        }
        if let Some(output) = &output {
            trace.insert("output".into(), output.clone());
        }
        if let Some(user) = &record.end_user {
            trace.insert("userId".into(), user.clone().into());
        }
        if let Some(session) = session_id(record) {
            trace.insert("sessionId".into(), session.into());
        }
        trace.insert(
            "metadata".into(),
            json!({ "trace_id": record.trace_id.as_str(), "model_group": record.model_group }),
        );
    }

    let mut generation = Map::new();
    generation.insert("id".into(), record.call_id.to_string().into());
    generation.insert("traceId".into(), trace_id.into());
    generation.insert("name".into(), observation_name(record).into());
    generation.insert("startTime".into(), iso8601(utc(record.start_time)).into());
    generation.insert("endTime".into(), iso8601(utc(record.end_time)).into());
    if let Some(at) = record.completion_start_time {
        generation.insert("completionStartTime".into(), iso8601(utc(at)).into());
    }
    generation.insert("model".into(), record.model.clone().into());
    if let Some(input) = input {
        generation.insert("input".into(), input);
    }
    if let Some(output) = output {
        generation.insert("output".into(), output);
    }
    generation.insert(
        "level".into(),
        if is_failure(record) {
            "ERROR"
        } else {
            "DEFAULT"
        }
        .into(),
    );
    if let Some(message) = status_message(record) {
        generation.insert("statusMessage".into(), message.into());
    }
    generation.insert(
        "usage".into(),
        json!({
            "input": record.prompt_tokens,
            "output": record.completion_tokens,
            "total": record.total_tokens,
            "unit": "TOKENS",
            "totalCost": record.response_cost,
        }),
    );
    generation.insert(
        "usageDetails".into(),
        json!({
            "input": record.prompt_tokens,
            "output": record.completion_tokens,
            "total": record.total_tokens,
        }),
    );
    generation.insert(
        "costDetails".into(),
        json!({ "total": record.response_cost }),
    );
    generation.insert(
        "metadata".into(),
        Value::Object(observation_metadata(record)),
    );
    if let Some(environment) = environment {
        trace.insert("environment".into(), environment.into());
        generation.insert("environment".into(), environment.into());
    }

    let envelope = |kind: &str, body: Map<String, Value>| {
        json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "type": kind,
            "timestamp": now,
            "body": body,
        })
    };
    [
        envelope("trace-create", trace),
        envelope("generation-create", generation),
    ]
}

/// Posts the batch, split into requests under the size limit, and counts the calls whose events
/// Langfuse refused in its 207 answer.
pub(super) async fn ingest(
    sink: &LangfuseSink,
    batch: &[Arc<CallRecord>],
) -> Result<(), SinkError> {
    let mut owner: HashMap<String, usize> = HashMap::new();
    let mut all_events = Vec::with_capacity(batch.len() * 2);
    for (index, record) in batch.iter().enumerate() {
        for event in events(record, sink.environment.as_deref(), sink.max_event_bytes) {
            if let Some(id) = event["id"].as_str() {
                owner.insert(id.to_owned(), index);
            }
            all_events.push(event);
        }
    }
    let mut refused: HashSet<usize> = HashSet::new();
    let mut unattributed = 0usize;
    let mut first_message = None;
    for chunk in chunks(&all_events, sink.max_request_bytes) {
        let body = serde_json::to_vec(&json!({
            "batch": chunk,
            "metadata": { "sdk_integration": "mirror", "batch_size": chunk.len() },
        }))
        .map_err(|source| SinkError::Encode { source })?;
        let response = sink
            .post(body)
            .send()
            .await
            .map_err(|err| http::transport(&sink.endpoint, err))?;
        let response = http::check_status(&sink.endpoint, response).await?;
        let text = response.text().await.unwrap_or_default();
        let Ok(answer) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        for error in answer["errors"].as_array().into_iter().flatten() {
            match error["id"].as_str().and_then(|id| owner.get(id)) {
                Some(index) => {
                    refused.insert(*index);
                }
                None => unattributed += 1,
            }
            first_message.get_or_insert_with(|| {
                let status = error["status"].as_u64().unwrap_or_default();
                let message = error["message"].as_str().unwrap_or("refused");
                let detail = error["error"].as_str().unwrap_or_default();
                http::quote(format!("{status} {message} {detail}").trim())
            });
        }
    }
    let rejected = (refused.len() + unattributed).min(batch.len());
    if rejected > 0 {
        return Err(SinkError::Rejected {
            rejected,
            total: batch.len(),
            message: first_message.unwrap_or_default(),
        });
    }
    Ok(())
}
