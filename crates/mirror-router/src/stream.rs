//! A routed stream: relays chunks as they arrive and records the call when the stream ends.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use mirror_core::{ChatChunk, ChatRequest, StreamAccumulator};
use mirror_providers::{ChunkStream, RelayedChunk};
use tokio::time::Instant;

use crate::call::Call;
use crate::records::Answered;
use crate::RouterError;

/// The chunks of a routed stream.
///
/// Chunks are passed on as soon as the provider sends them, unchanged: the router never edits a
/// chunk, so [`ChatStream::next_relayed`] gives each with the upstream's bytes for it, which a
/// gateway relays instead of serialising the chunk again. The call's record (with time to first
/// token and the stream's usage) is emitted when the stream ends or fails; a stream dropped
/// unfinished is recorded as cancelled. The deployment's load is held until then.
pub struct ChatStream {
    chunks: ChunkStream,
    accumulator: StreamAccumulator,
    first_token: Option<Instant>,
    /// The call, until it is recorded.
    call: Option<Call<ChatRequest>>,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("finished", &self.call.is_none())
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    pub(crate) fn new(chunks: ChunkStream, call: Call<ChatRequest>) -> Self {
        ChatStream {
            chunks,
            accumulator: StreamAccumulator::default(),
            first_token: None,
            call: Some(call),
        }
    }

    /// The next chunk with the upstream's bytes for it, when it has them (see [`RelayedChunk`]);
    /// the same items as the stream's, which gives the chunk alone.
    pub fn next_relayed(
        &mut self,
    ) -> impl Future<Output = Option<Result<RelayedChunk, RouterError>>> + '_ {
        std::future::poll_fn(move |cx| self.poll_relayed(cx))
    }

    fn poll_relayed(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<RelayedChunk, RouterError>>> {
        let this = self;
        let Some(call) = this.call.as_mut() else {
            return Poll::Ready(None);
        };
        let chunks = &mut this.chunks;
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| chunks.as_mut().poll_next(cx)));
        let polled = match polled {
            Ok(polled) => polled,
            Err(panic) => {
                // Recorded as a failure (the guard alone would say cancelled), then unwound on.
                call.failed(&RouterError::Panicked);
                this.call = None;
                std::panic::resume_unwind(panic)
            }
        };
        match polled {
            Poll::Ready(Some(Ok(chunk))) => {
                if this.first_token.is_none() && chunk.has_content() {
                    this.first_token = Some(Instant::now());
                }
                this.accumulator.push(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(source))) => {
                let error = call.failed_midway(source);
                this.call = None;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                let response = std::mem::take(&mut this.accumulator).finish();
                call.stream_ended(Answered {
                    usage: response.usage.as_ref(),
                    response: Some(crate::records::Payload::Chat(std::borrow::Cow::Borrowed(
                        &response,
                    ))),
                    first_token: this.first_token,
                    embedding: None,
                });
                this.call = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Stream for ChatStream {
    type Item = Result<ChatChunk, RouterError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .poll_relayed(cx)
            .map(|item| item.map(|item| item.map(RelayedChunk::into_chunk)))
    }
}
