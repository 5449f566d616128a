//! A provider that panics (a bug in a provider registered by a user): the call is recorded as a
//! failure with class `panic`, and a panicking silent call is counted as failed, not as dropped.
//!
//! No HTTP answer can make Mirror's own adapters panic, so the bug sits in a provider registered
//! through the public extension point, as a third-party provider would be.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use mirror_core::{CallStatus, ChatRequest, ChatResponse, DeploymentParams};
use mirror_providers::{ChunkStream, Provider, ProviderError};
use mirror_router::ModelDeployment;

use crate::support::{builder, mock_deployment, record_where, request, settled, stream_request};

/// Panics on every call: at once for a whole answer, on the first poll for a stream.
struct Buggy;

#[async_trait]
impl Provider for Buggy {
    fn name(&self) -> &str {
        "buggy"
    }

    async fn chat(
        &self,
        _deployment: &DeploymentParams,
        _request: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        panic!("the buggy provider's chat")
    }

    async fn chat_stream(
        &self,
        _deployment: &DeploymentParams,
        _request: &ChatRequest,
    ) -> Result<ChunkStream, ProviderError> {
        Ok(futures::stream::poll_fn(|_| -> std::task::Poll<Option<_>> {
            panic!("the buggy provider's stream")
        })
        .boxed())
    }
}

fn router() -> (
    mirror_router::Router,
    tokio::sync::mpsc::UnboundedReceiver<mirror_core::CallRecord>,
) {
    let (builder, records) = builder();
    let router = builder
        .provider(Arc::new(Buggy))
        .deployment(
            mock_deployment("primary", "primary-1")
                .silent_model(["buggy"])
                .unwrap(),
        )
        .deployment(
            ModelDeployment::new("buggy", "buggy/model")
                .unwrap()
                .id("buggy-1"),
        )
        .build()
        .unwrap();
    (router, records)
}

#[tokio::test]
async fn a_panicking_silent_call_is_failed_with_class_panic() {
    let (router, mut records) = router();
    let answer = router.chat(request("primary")).await.unwrap();
    assert_eq!(answer.response.text().as_deref(), Some("mocked"));
    let mut streamed = router.chat_stream(stream_request("primary")).await.unwrap();
    while let Some(chunk) = streamed.response.next().await {
        chunk.unwrap();
    }
    for _ in 0..2 {
        let (shadow, _) = record_where(&mut records, |r| r.metadata.is_silent_experiment).await;
        assert_eq!(shadow.status, CallStatus::Failure, "{shadow:?}");
        let info = shadow.error_information.as_ref().unwrap();
        assert_eq!(info.error_class, "panic", "{shadow:?}");
    }
    let stats = settled(&router).await;
    assert_eq!((stats.failed, stats.dropped_shutdown), (2, 0), "{stats:?}");
    let stats = router.shutdown(std::time::Duration::from_secs(5)).await;
    assert!(stats.is_balanced(), "{stats:?}");
    assert_eq!((stats.failed, stats.dropped_shutdown), (2, 0), "{stats:?}");
}

#[tokio::test]
async fn a_panicking_primary_call_is_recorded_as_failed_and_still_panics() {
    let (router, mut records) = router();
    let router = Arc::new(router);
    let caller = Arc::clone(&router);
    let joined = tokio::spawn(async move { caller.chat(request("buggy")).await }).await;
    assert!(joined.unwrap_err().is_panic());
    let (record, _) = record_where(&mut records, |r| r.model_group == "buggy").await;
    assert_eq!(record.status, CallStatus::Failure, "{record:?}");
    assert_eq!(record.error_information.unwrap().error_class, "panic");
}
