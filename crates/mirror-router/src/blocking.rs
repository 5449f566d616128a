//! A blocking face of the router, for callers without a Tokio runtime.

use std::time::Duration;

use futures::StreamExt;
use mirror_core::{ChatChunk, ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse};

use crate::{ChatStream, ConfigError, MirrorSnapshot, Routed, Router, RouterBuilder, RouterError};

/// The router for plain threads: it owns a small multi-threaded Tokio runtime on which the calls and
/// the silent copies run, so silent copies go on in the background after a blocking call returns.
///
/// Calling a blocking method from inside a Tokio runtime would deadlock or panic; instead it fails with
/// [`RouterError::BlockingInRuntime`]. Drop a `BlockingRouter` from a plain thread too (dropping a
/// runtime inside another one panics in Tokio); [`BlockingRouter::shutdown`] drains silent copies first.
pub struct BlockingRouter {
    runtime: tokio::runtime::Runtime,
    router: Router,
}

impl std::fmt::Debug for BlockingRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingRouter")
            .field("router", &self.router)
            .finish_non_exhaustive()
    }
}

impl BlockingRouter {
    /// Starts a runtime with two worker threads and builds the router on it.
    ///
    /// # Errors
    ///
    /// Whatever [`RouterBuilder::build`] reports, or [`ConfigError::Invalid`] if the runtime cannot
    /// start.
    pub fn new(builder: RouterBuilder) -> Result<Self, ConfigError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mirror-router")
            .enable_all()
            .build()
            .map_err(|err| ConfigError::Invalid {
                origin: "<runtime>".to_owned(),
                location: "BlockingRouter::new".to_owned(),
                message: format!("cannot start the Tokio runtime: {err}"),
                position: None,
            })?;
        let router = {
            let _entered = runtime.enter();
            builder.build()?
        };
        Ok(BlockingRouter { runtime, router })
    }

    fn check_thread() -> Result<(), RouterError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(RouterError::BlockingInRuntime);
        }
        Ok(())
    }

    /// The async router inside, e.g. for its counters.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// A chat completion; blocks until it is done (silent copies go on in the background).
    ///
    /// # Errors
    ///
    /// As [`Router::chat`], or [`RouterError::BlockingInRuntime`].
    pub fn chat(&self, request: ChatRequest) -> Result<Routed<ChatResponse>, RouterError> {
        Self::check_thread()?;
        self.runtime.block_on(self.router.chat(request))
    }

    /// A streamed chat completion, as an iterator of chunks.
    ///
    /// # Errors
    ///
    /// As [`Router::chat_stream`], or [`RouterError::BlockingInRuntime`].
    pub fn chat_stream(
        &self,
        request: ChatRequest,
    ) -> Result<Routed<BlockingChatStream>, RouterError> {
        Self::check_thread()?;
        let routed = self.runtime.block_on(self.router.chat_stream(request))?;
        Ok(Routed {
            response: BlockingChatStream {
                handle: self.runtime.handle().clone(),
                stream: routed.response,
            },
            call_id: routed.call_id,
            trace_id: routed.trace_id,
            model_group: routed.model_group,
            deployment_id: routed.deployment_id,
            cache: routed.cache,
        })
    }

    /// Embeddings.
    ///
    /// # Errors
    ///
    /// As [`Router::embeddings`], or [`RouterError::BlockingInRuntime`].
    pub fn embeddings(
        &self,
        request: EmbeddingsRequest,
    ) -> Result<Routed<EmbeddingsResponse>, RouterError> {
        Self::check_thread()?;
        self.runtime.block_on(self.router.embeddings(request))
    }

    /// Drains silent copies until `deadline` (see [`Router::shutdown`]) and stops the runtime.
    ///
    /// # Errors
    ///
    /// [`RouterError::BlockingInRuntime`] inside a runtime.
    pub fn shutdown(self, deadline: Duration) -> Result<MirrorSnapshot, RouterError> {
        Self::check_thread()?;
        Ok(self.runtime.block_on(self.router.shutdown(deadline)))
    }
}

/// The chunks of a blocking stream.
pub struct BlockingChatStream {
    handle: tokio::runtime::Handle,
    stream: ChatStream,
}

impl std::fmt::Debug for BlockingChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingChatStream").finish_non_exhaustive()
    }
}

impl Iterator for BlockingChatStream {
    type Item = Result<ChatChunk, RouterError>;

    fn next(&mut self) -> Option<Self::Item> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Some(Err(RouterError::BlockingInRuntime));
        }
        self.handle.block_on(self.stream.next())
    }
}
