//! A routed stream: relays chunks as they arrive and records the call when the stream ends.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures::Stream;
use mirror_core::{CallMeta, CallType, ChatChunk, ChatRequest, StreamAccumulator};
use mirror_providers::ChunkStream;
use tokio::time::Instant;

use crate::deployment::Deployment;
use crate::router::internals::{Attempts, CallContext, Inner};
use crate::RouterError;

/// The chunks of a routed stream.
///
/// Chunks are passed on as soon as the provider sends them. The call's record (with time to first
/// token and the stream's usage) is emitted when the stream ends, fails, or is dropped unfinished.
pub struct ChatStream {
    chunks: ChunkStream,
    accumulator: StreamAccumulator,
    first_token: Option<Instant>,
    state: Option<StreamRecordState>,
}

pub(crate) struct StreamRecordState {
    pub(crate) router: Arc<Inner>,
    pub(crate) deployment: Arc<Deployment>,
    pub(crate) meta: CallMeta,
    pub(crate) request: ChatRequest,
    pub(crate) attempts: u32,
    pub(crate) fallbacks_tried: Vec<String>,
    pub(crate) start_wall: SystemTime,
    pub(crate) start: Instant,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("finished", &self.state.is_none())
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    pub(crate) fn new(chunks: ChunkStream, state: StreamRecordState) -> Self {
        ChatStream {
            chunks,
            accumulator: StreamAccumulator::default(),
            first_token: None,
            state: Some(state),
        }
    }

    fn finish(&mut self, error: Option<&RouterError>) {
        let Some(state) = self.state.take() else {
            return;
        };
        let end = Instant::now();
        let deployment = &state.deployment;
        deployment.state.in_flight.fetch_sub(1, Ordering::Relaxed);
        let attempts = Attempts {
            count: state.attempts,
            fallbacks_tried: state.fallbacks_tried,
        };
        let context = CallContext {
            meta: &state.meta,
            start_wall: state.start_wall,
            start: state.start,
            call_type: CallType::Completion,
            stream: true,
        };
        match error {
            None => {
                deployment
                    .state
                    .record_latency(end.saturating_duration_since(state.start));
                let response = std::mem::take(&mut self.accumulator).finish();
                let usage = response.usage.clone();
                state.router.emit_success(
                    &context,
                    deployment,
                    &attempts,
                    state.request,
                    Some(std::borrow::Cow::Owned(response)),
                    usage.as_ref(),
                    self.first_token,
                    end,
                );
            }
            Some(error) => {
                if let Some(provider_error) = error.provider_error() {
                    state
                        .router
                        .note_stream_failure(deployment, provider_error, &state.meta);
                }
                state.router.emit_failure(
                    &context,
                    Some(deployment),
                    &attempts,
                    state.request,
                    error,
                );
            }
        }
    }
}

impl Stream for ChatStream {
    type Item = Result<ChatChunk, RouterError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.state.is_none() {
            return Poll::Ready(None);
        }
        match this.chunks.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if this.first_token.is_none() && chunk.has_content() {
                    this.first_token = Some(Instant::now());
                }
                this.accumulator.push(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(source))) => {
                let (group, deployment) = this.state.as_ref().map_or_else(Default::default, |s| {
                    (s.deployment.group.clone(), s.deployment.id.clone())
                });
                let attempts = this.state.as_ref().map_or(0, |s| s.attempts);
                let error = RouterError::Provider {
                    group,
                    deployment,
                    attempts,
                    source,
                };
                this.finish(Some(&error));
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                this.finish(None);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for ChatStream {
    fn drop(&mut self) {
        if self.state.is_some() {
            self.finish(Some(&RouterError::Cancelled));
        }
    }
}
