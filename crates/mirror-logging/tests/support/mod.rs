//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mirror_core::{
    CallId, CallRecord, CallStatus, CallType, ChatMessage, ChatResponse, Choice, ErrorInformation,
    RecordMetadata, SpendKind, TraceId,
};
use serde_json::{json, Map};

/// A successful primary call record, numbered `n`.
pub fn record(n: usize) -> CallRecord {
    let trace_id = TraceId::new();
    CallRecord {
        id: format!("chatcmpl-{n}"),
        trace_id,
        call_id: CallId::new(),
        call_type: CallType::Completion,
        stream: false,
        status: CallStatus::Success,
        custom_llm_provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        model_id: "deployment-1".into(),
        model_group: "gpt-4o".into(),
        api_base: "https://api.openai.com/v1".into(),
        start_time: 1_737_026_934.796_36,
        end_time: 1_737_026_935.5,
        completion_start_time: Some(1_737_026_935.1),
        response_time: 0.703_64,
        prompt_tokens: 10,
        completion_tokens: 20,
        total_tokens: 30,
        response_cost: 3.5e-5,
        messages: Some(vec![ChatMessage::user(format!("question {n}"))]),
        response: Some(
            ChatResponse {
                id: format!("chatcmpl-{n}"),
                object: "chat.completion".into(),
                created: 1_737_026_935,
                model: "gpt-4o-mini".into(),
                choices: vec![Choice {
                    index: 0,
                    message: ChatMessage::new("assistant", format!("answer {n}")),
                    finish_reason: Some("stop".into()),
                    extra: Map::new(),
                }],
                usage: None,
                extra: Map::new(),
            }
            .into(),
        ),
        error_str: None,
        error_information: None,
        metadata: RecordMetadata {
            is_silent_experiment: false,
            mirror_of: None,
            spend: SpendKind::Caller,
            attempts: 1,
            fallbacks_tried: Vec::new(),
            requester_metadata: json!({"team": "search", "n": n})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            embedding: None,
            cache_hit: false,
        },
        request_tags: vec!["prod".into()],
        end_user: Some("user-7".into()),
    }
}

/// The silent copy of `primary`: same trace, fresh call id, paired through `mirror_of`.
pub fn shadow_of(primary: &CallRecord) -> CallRecord {
    let mut shadow = primary.clone();
    shadow.call_id = CallId::new();
    shadow.id = format!("{}-shadow", primary.id);
    shadow.model_group = "gpt-4o-candidate".into();
    shadow.model = "gpt-4.1-mini".into();
    shadow.metadata.is_silent_experiment = true;
    shadow.metadata.mirror_of = Some(primary.call_id);
    shadow.metadata.spend = SpendKind::Shadow;
    shadow
}

/// A failed call record.
pub fn failure(n: usize) -> CallRecord {
    let mut failed = record(n);
    failed.status = CallStatus::Failure;
    failed.response = None;
    failed.completion_start_time = None;
    failed.prompt_tokens = 0;
    failed.completion_tokens = 0;
    failed.total_tokens = 0;
    failed.response_cost = 0.0;
    failed.error_str = Some("upstream answered 503".into());
    failed.error_information = Some(ErrorInformation {
        error_code: Some("503".into()),
        error_class: "service_unavailable".into(),
        llm_provider: "openai".into(),
        error_message: "upstream answered 503".into(),
    });
    failed
}

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mirror-logging-{name}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `condition` until it holds, failing the test after `limit`.
pub async fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
