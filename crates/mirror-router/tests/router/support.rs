//! Test support: helpers to build routers against the shared fake upstream
//! (`mirror_test_support::upstream`, whose behaviour each test scripts) and to wait for records
//! and counters.

use std::sync::Arc;
use std::time::Duration;

use mirror_core::{CallRecord, ChatMessage, ChatRequest, StreamOptions};
use mirror_providers::{HttpClient, Mock, OpenAi, Provider};
use mirror_router::{MirrorSnapshot, ModelDeployment, Router, RouterBuilder};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

pub(crate) use mirror_test_support::{Behaviour, Upstream, PATIENCE};

/// The API key every HTTP deployment uses; it must never show up in a record or an error.
pub(crate) const SECRET_KEY: &str = "sk-test-very-secret-key-0123456789";

/// The real OpenAI adapter on a fresh client.
pub(crate) fn openai() -> Arc<dyn Provider> {
    Arc::new(OpenAi::new(HttpClient::new().unwrap()))
}

/// The in-process mock adapter.
pub(crate) fn mock() -> Arc<dyn Provider> {
    Arc::new(Mock::new())
}

/// A deployment of group `group` served by `upstream`, with id `id`.
pub(crate) fn http_deployment(group: &str, id: &str, upstream: &Upstream) -> ModelDeployment {
    ModelDeployment::new(group, "openai/gpt-4o-mini")
        .unwrap()
        .api_base(upstream.base())
        .api_key(SECRET_KEY)
        .id(id)
}

/// A mock deployment of group `group` with id `id`.
pub(crate) fn mock_deployment(group: &str, id: &str) -> ModelDeployment {
    ModelDeployment::new(group, "mock/echo")
        .unwrap()
        .id(id)
        .mock_response("mocked")
}

/// Sets per-deployment router retries.
pub(crate) fn with_retries(mut deployment: ModelDeployment, retries: u32) -> ModelDeployment {
    deployment.litellm_params.num_retries = Some(retries);
    deployment
}

/// A builder with both providers registered and records going to the returned receiver.
pub(crate) fn builder() -> (RouterBuilder, mpsc::UnboundedReceiver<CallRecord>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let builder = Router::builder()
        .provider(openai())
        .provider(mock())
        .records(sender);
    (builder, receiver)
}

/// A one-message chat request to `model`.
pub(crate) fn request(model: &str) -> ChatRequest {
    ChatRequest::new(model, vec![ChatMessage::user("hi there")])
}

/// A streamed request that asks for the usage chunk.
pub(crate) fn stream_request(model: &str) -> ChatRequest {
    let mut request = request(model);
    request.stream = Some(true);
    request.stream_options = Some(StreamOptions {
        include_usage: Some(true),
        extra: Map::new(),
    });
    request
}

/// A request with these metadata entries.
pub(crate) fn with_metadata(mut request: ChatRequest, entries: Value) -> ChatRequest {
    let Value::Object(map) = entries else {
        panic!("metadata must be an object")
    };
    request.metadata = Some(map);
    request
}

/// The next record, or a failure after [`PATIENCE`].
pub(crate) async fn next_record(records: &mut mpsc::UnboundedReceiver<CallRecord>) -> CallRecord {
    tokio::time::timeout(PATIENCE, records.recv())
        .await
        .expect("no record arrived in time")
        .expect("record channel closed")
}

/// Records until one matches `predicate`; returns it and the ones before it.
pub(crate) async fn record_where(
    records: &mut mpsc::UnboundedReceiver<CallRecord>,
    predicate: impl Fn(&CallRecord) -> bool,
) -> (CallRecord, Vec<CallRecord>) {
    let mut before = Vec::new();
    loop {
        let record = next_record(records).await;
        if predicate(&record) {
            return (record, before);
        }
        before.push(record);
    }
}

/// The next `n` records, in arrival order (a fast shadow may be recorded before its primary).
pub(crate) async fn take_records(
    records: &mut mpsc::UnboundedReceiver<CallRecord>,
    n: usize,
) -> Vec<CallRecord> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(next_record(records).await);
    }
    all
}

/// Every record already delivered, without waiting.
pub(crate) fn drain(records: &mut mpsc::UnboundedReceiver<CallRecord>) -> Vec<CallRecord> {
    let mut all = Vec::new();
    while let Ok(record) = records.try_recv() {
        all.push(record);
    }
    all
}

/// Waits (generously) until no silent copy is in flight, then asserts the accounting invariant.
pub(crate) async fn settled(router: &Router) -> MirrorSnapshot {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let snapshot = router.mirror_stats();
        if snapshot.in_flight() == 0 {
            assert!(snapshot.is_balanced(), "unbalanced: {snapshot:?}");
            return snapshot;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "silent copies still in flight: {snapshot:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `check` holds for the mirror counters.
pub(crate) async fn wait_for_stats(router: &Router, check: impl Fn(&MirrorSnapshot) -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let snapshot = router.mirror_stats();
        if check(&snapshot) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "counters never got there: {snapshot:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts that no secret reached a record.
#[track_caller]
pub(crate) fn assert_no_secret(record: &CallRecord) {
    let text = serde_json::to_string(record).unwrap();
    assert!(!text.contains(SECRET_KEY), "secret in record: {text}");
}
