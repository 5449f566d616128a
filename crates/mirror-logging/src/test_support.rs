//! Records for unit tests.

use std::sync::Arc;

use mirror_core::{
    CallId, CallRecord, CallStatus, CallType, ChatMessage, ChatResponse, Choice, RecordMetadata,
    SpendKind, TraceId,
};
use serde_json::Map;

/// A successful primary call with a prompt and an answer.
pub(crate) fn record() -> Arc<CallRecord> {
    Arc::new(CallRecord {
        id: "chatcmpl-1".into(),
        trace_id: TraceId::new(),
        call_id: CallId::new(),
        call_type: CallType::Completion,
        stream: false,
        status: CallStatus::Success,
        custom_llm_provider: "openai".into(),
        model: "gpt-4o".into(),
        model_id: "d1".into(),
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
        messages: Some(vec![ChatMessage::user("my secret plan")]),
        response: Some(
            ChatResponse {
                id: "chatcmpl-1".into(),
                object: "chat.completion".into(),
                created: 0,
                model: "gpt-4o".into(),
                choices: vec![Choice {
                    index: 0,
                    message: ChatMessage::new("assistant", "the answer"),
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
            requester_metadata: Map::new(),
            embedding: None,
            cache_hit: false,
        },
        request_tags: Vec::new(),
        end_user: None,
    })
}
