//! The kinds of call the pipeline serves, each one small [`CallKind`]: chat, streamed chat and
//! embeddings. A new endpoint is one more implementation here.

use std::borrow::Cow;
use std::future::Future;

use mirror_core::{
    CallMeta, CallType, ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, Usage,
};
use mirror_providers::{ChunkStream, ProviderError};
use serde_json::{Map, Value};

use crate::call::{Call, CallKind, CallRequest, RecordParts};
use crate::deployment::Deployment;
use crate::records::{Answered, Payload};
use crate::router::Inner;
use crate::stream::ChatStream;

/// A chat completion, answered whole.
pub(crate) struct Chat;

/// A streamed chat completion: recorded when the stream ends.
pub(crate) struct ChatStreamed;

/// Embeddings.
pub(crate) struct Embeddings;

impl CallRequest for ChatRequest {
    fn clear_silent_mark(&mut self) {
        mirror_core::clear_silent_mark(&mut self.metadata);
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn fire_silent(&self, router: &Inner, deployment: &Deployment, meta: &CallMeta) {
        router.fire_silent_copies(deployment, self, meta);
    }

    fn take_cache_control(&mut self) -> Option<Value> {
        self.extra.remove("cache")
    }

    fn cache_body(&self) -> Option<(Map<String, Value>, usize)> {
        cache_body(self).map(|body| (body, self.messages.len()))
    }

    fn take_record_parts(&mut self, payloads: bool) -> RecordParts {
        RecordParts {
            messages: payloads.then(|| std::mem::take(&mut self.messages)),
            user: self.user.take(),
            metadata: self.metadata.take(),
        }
    }
}

impl CallRequest for EmbeddingsRequest {
    fn clear_silent_mark(&mut self) {
        mirror_core::clear_silent_mark(&mut self.metadata);
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn fire_silent(&self, router: &Inner, deployment: &Deployment, meta: &CallMeta) {
        router.fire_silent_embeddings(deployment, self, meta);
    }

    fn take_cache_control(&mut self) -> Option<Value> {
        self.extra.remove("cache")
    }

    fn cache_body(&self) -> Option<(Map<String, Value>, usize)> {
        cache_body(self).map(|body| (body, 0))
    }

    fn take_record_parts(&mut self, _payloads: bool) -> RecordParts {
        RecordParts {
            messages: None,
            user: self.user.take(),
            metadata: self.metadata.take(),
        }
    }
}

impl CallKind for Chat {
    type Request = ChatRequest;
    type Answer = ChatResponse;
    type Output = ChatResponse;
    const CALL_TYPE: CallType = CallType::Completion;
    const STREAM: bool = false;

    fn send<'a>(
        deployment: &'a Deployment,
        request: &'a ChatRequest,
    ) -> impl Future<Output = Result<ChatResponse, ProviderError>> + Send + 'a {
        crate::translate::send_chat(deployment, request)
    }

    fn finish(
        mut call: Call<ChatRequest>,
        deployment: &Deployment,
        answer: ChatResponse,
    ) -> ChatResponse {
        call.succeeded(
            deployment,
            Answered {
                usage: answer.usage.as_ref(),
                response: Some(Payload::Chat(Cow::Borrowed(&answer))),
                first_token: None,
                embedding: None,
            },
        );
        answer
    }

    fn to_cache(answer: &ChatResponse) -> Option<Vec<u8>> {
        serde_json::to_vec(answer).ok()
    }

    fn from_cache(call: &mut Call<ChatRequest>, bytes: &[u8]) -> Option<ChatResponse> {
        let answer: ChatResponse = serde_json::from_slice(bytes).ok()?;
        call.succeeded_from_cache(Answered {
            usage: answer.usage.as_ref(),
            response: Some(Payload::Chat(Cow::Borrowed(&answer))),
            first_token: None,
            embedding: None,
        });
        Some(answer)
    }
}

impl CallKind for ChatStreamed {
    type Request = ChatRequest;
    type Answer = ChunkStream;
    type Output = ChatStream;
    const CALL_TYPE: CallType = CallType::Completion;
    const STREAM: bool = true;

    fn send<'a>(
        deployment: &'a Deployment,
        request: &'a ChatRequest,
    ) -> impl Future<Output = Result<ChunkStream, ProviderError>> + Send + 'a {
        crate::translate::send_chat_stream(deployment, request)
    }

    fn finish(
        call: Call<ChatRequest>,
        _deployment: &Deployment,
        answer: ChunkStream,
    ) -> ChatStream {
        ChatStream::new(answer, call)
    }
}

impl CallKind for Embeddings {
    type Request = EmbeddingsRequest;
    type Answer = EmbeddingsResponse;
    type Output = EmbeddingsResponse;
    const CALL_TYPE: CallType = CallType::Embedding;
    const STREAM: bool = false;

    fn send<'a>(
        deployment: &'a Deployment,
        request: &'a EmbeddingsRequest,
    ) -> impl Future<Output = Result<EmbeddingsResponse, ProviderError>> + Send + 'a {
        deployment.provider.embeddings(&deployment.params, request)
    }

    fn finish(
        mut call: Call<EmbeddingsRequest>,
        deployment: &Deployment,
        answer: EmbeddingsResponse,
    ) -> EmbeddingsResponse {
        let shape = answer.shape(&call.request);
        let usage = embedding_usage(&answer);
        call.succeeded(
            deployment,
            Answered {
                usage: usage.as_ref(),
                response: Some(Payload::Embeddings(&answer)),
                first_token: None,
                embedding: Some(shape),
            },
        );
        answer
    }

    fn to_cache(answer: &EmbeddingsResponse) -> Option<Vec<u8>> {
        serde_json::to_vec(answer).ok()
    }

    fn from_cache(call: &mut Call<EmbeddingsRequest>, bytes: &[u8]) -> Option<EmbeddingsResponse> {
        let answer: EmbeddingsResponse = serde_json::from_slice(bytes).ok()?;
        let usage = embedding_usage(&answer);
        let shape = answer.shape(&call.request);
        call.succeeded_from_cache(Answered {
            usage: usage.as_ref(),
            response: Some(Payload::Embeddings(&answer)),
            first_token: None,
            embedding: Some(shape),
        });
        Some(answer)
    }
}

fn embedding_usage(answer: &EmbeddingsResponse) -> Option<Usage> {
    answer.usage.as_ref().map(|u| Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: 0,
        total_tokens: u.total_tokens,
        extra: serde_json::Map::new(),
    })
}

/// A request's body as a provider gets it, without what differs per call and not per answer: the
/// model name (the group replaces it in the key) and `metadata`.
fn cache_body<T: serde::Serialize>(request: &T) -> Option<Map<String, Value>> {
    let Ok(Value::Object(mut body)) = serde_json::to_value(request) else {
        return None;
    };
    body.remove("model");
    body.remove("metadata");
    Some(body)
}
