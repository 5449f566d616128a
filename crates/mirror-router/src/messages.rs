//! Anthropic's Messages API through the call pipeline: create (whole and streamed) and
//! `count_tokens`, each a [`CallKind`], plus [`MessagesStream`].
//!
//! A Messages request goes to a deployment whose provider speaks Messages unchanged (same format end
//! to end: every field, block and event as the client sent or the upstream answered). Records are
//! normalised to chat's shape (text, tool calls, finish reason, usage with the whole input as
//! `prompt_tokens`) so `mirror report` compares pairs whatever their format.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use mirror_core::{
    anthropic_error_status, CallMeta, CallType, ChatMessage, ChatResponse, Choice,
    CountTokensResponse, FunctionCall, MessagesAccumulator, MessagesEvent, MessagesRequest,
    MessagesResponse, MessagesUsage, ToolCall, Usage,
};
use mirror_providers::{MessagesEventStream, ProviderError};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::call::{Call, CallKind, CallRequest, RecordParts};
use crate::deployment::Deployment;
use crate::records::{Answered, Payload};
use crate::router::Inner;
use crate::RouterError;

impl CallRequest for MessagesRequest {
    fn clear_silent_mark(&mut self) {
        mirror_core::clear_silent_mark(&mut self.litellm_metadata);
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn fire_silent(&self, router: &Inner, deployment: &Deployment, meta: &CallMeta) {
        router.fire_silent_messages(deployment, self, meta);
    }

    /// LiteLLM's per-request `cache` controls are never sent upstream; Messages creates are not
    /// cached by the gateway (Anthropic's own prompt cache is the caller's `cache_control`).
    fn take_cache_control(&mut self) -> Option<Value> {
        self.extra.remove("cache")
    }

    fn take_record_parts(&mut self, payloads: bool) -> RecordParts {
        RecordParts {
            messages: payloads.then(|| record_messages(self)),
            user: self.user_id().map(str::to_owned),
            metadata: self
                .litellm_metadata
                .take()
                .or_else(|| self.metadata.clone()),
        }
    }
}

/// The request's turns as the record keeps them: the system prompt first, then each turn's text
/// (text blocks joined) and tool calls.
fn record_messages(request: &MessagesRequest) -> Vec<ChatMessage> {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = &request.system {
        messages.push(ChatMessage::new("system", system.joined_text()));
    }
    for turn in &request.messages {
        messages.push(ChatMessage::new(
            turn.role.clone(),
            turn.content.joined_text(),
        ));
    }
    messages
}

/// The refusal for a deployment whose provider does not speak Messages.
fn unsupported(deployment: &Deployment) -> ProviderError {
    ProviderError::Unsupported {
        provider: deployment.params.model.provider().to_owned(),
        operation: "count_tokens (only deployments that speak the Messages API count tokens)",
    }
}

/// One attempt of a Messages call on `deployment`: with the two below, the one place that decides
/// how a Messages request reaches a provider. A provider that speaks Messages gets it unchanged;
/// any other gets it translated to chat completions (`translate.rs`), and the answer back.
async fn send_messages(
    deployment: &Deployment,
    request: &MessagesRequest,
) -> Result<MessagesResponse, ProviderError> {
    if !deployment.provider.speaks_messages() {
        return crate::translate::messages_via_chat(deployment, request).await;
    }
    deployment
        .provider
        .messages(&deployment.params, request)
        .await
}

async fn send_messages_stream(
    deployment: &Deployment,
    request: &MessagesRequest,
) -> Result<MessagesEventStream, ProviderError> {
    if !deployment.provider.speaks_messages() {
        return crate::translate::messages_stream_via_chat(deployment, request).await;
    }
    deployment
        .provider
        .messages_stream(&deployment.params, request)
        .await
}

async fn send_count_tokens(
    deployment: &Deployment,
    request: &CountTokensCall,
) -> Result<CountTokensResponse, ProviderError> {
    if !deployment.provider.speaks_messages() {
        return Err(unsupported(deployment));
    }
    deployment
        .provider
        .count_tokens(&deployment.params, &request.0)
        .await
}

/// The record's usage for a Messages usage, as LiteLLM maps it: the whole input (uncached, written
/// to and read from the cache) as `prompt_tokens`, the cache counts kept at the top level and the
/// read ones as `prompt_tokens_details.cached_tokens`.
pub(crate) fn chat_usage(usage: &MessagesUsage) -> Usage {
    let mut extra = Map::new();
    extra.insert(
        "prompt_tokens_details".to_owned(),
        serde_json::json!({"cached_tokens": usage.cache_read()}),
    );
    extra.insert(
        "cache_creation_input_tokens".to_owned(),
        Value::from(usage.cache_creation()),
    );
    extra.insert(
        "cache_read_input_tokens".to_owned(),
        Value::from(usage.cache_read()),
    );
    Usage {
        prompt_tokens: usage.prompt_tokens(),
        completion_tokens: usage.output_tokens,
        total_tokens: usage.total(),
        extra,
    }
}

/// Anthropic's stop reason as chat's finish reason (LiteLLM's map; the rest become `stop`).
fn finish_reason(stop_reason: Option<&str>) -> Option<String> {
    let reason = match stop_reason? {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    };
    Some(reason.to_owned())
}

/// The answer in chat's shape, for the record: text, tool calls, finish reason and usage.
pub(crate) fn record_response(answer: &MessagesResponse) -> ChatResponse {
    let mut message = ChatMessage::new("assistant", answer.joined_text());
    let calls: Vec<ToolCall> = answer
        .tool_uses()
        .map(|tool| ToolCall {
            id: tool.id.to_owned(),
            kind: "function".to_owned(),
            function: FunctionCall {
                name: tool.name.to_owned(),
                arguments: tool.input.to_string(),
            },
            extra: Map::new(),
        })
        .collect();
    if !calls.is_empty() {
        message.tool_calls = Some(calls);
    }
    let mut extra = Map::new();
    if let Some(truncated) = answer.extra.get("mirror_truncated") {
        extra.insert("mirror_truncated".to_owned(), truncated.clone());
    }
    ChatResponse {
        id: answer.id.clone(),
        object: "chat.completion".to_owned(),
        created: 0,
        model: answer.model.clone(),
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: finish_reason(answer.stop_reason.as_deref()),
            extra: Map::new(),
        }],
        usage: Some(chat_usage(&answer.usage)),
        extra,
    }
}

/// A Messages create, answered whole.
pub(crate) struct Messages;

/// A streamed Messages create: recorded at `message_stop`.
pub(crate) struct MessagesStreamed;

/// `POST /v1/messages/count_tokens`.
pub(crate) struct CountTokens;

/// A count_tokens request: the Messages body, never mirrored.
#[derive(Debug)]
pub(crate) struct CountTokensCall(pub(crate) MessagesRequest);

impl CallRequest for CountTokensCall {
    fn clear_silent_mark(&mut self) {
        mirror_core::clear_silent_mark(&mut self.0.litellm_metadata);
    }

    fn model(&self) -> &str {
        &self.0.model
    }

    fn take_record_parts(&mut self, _payloads: bool) -> RecordParts {
        RecordParts {
            messages: None,
            user: None,
            metadata: self.0.litellm_metadata.take(),
        }
    }
}

impl CallKind for Messages {
    type Request = MessagesRequest;
    type Answer = MessagesResponse;
    type Output = MessagesResponse;
    const CALL_TYPE: CallType = CallType::AnthropicMessages;
    const STREAM: bool = false;

    fn send<'a>(
        deployment: &'a Deployment,
        request: &'a MessagesRequest,
    ) -> impl Future<Output = Result<MessagesResponse, ProviderError>> + Send + 'a {
        send_messages(deployment, request)
    }

    fn finish(
        mut call: Call<MessagesRequest>,
        deployment: &Deployment,
        answer: MessagesResponse,
    ) -> MessagesResponse {
        let record = record_response(&answer);
        call.succeeded(
            deployment,
            Answered {
                usage: record.usage.as_ref(),
                response: Some(Payload::Chat(Cow::Borrowed(&record))),
                first_token: None,
                embedding: None,
            },
        );
        answer
    }
}

impl CallKind for MessagesStreamed {
    type Request = MessagesRequest;
    type Answer = MessagesEventStream;
    type Output = MessagesStream;
    const CALL_TYPE: CallType = CallType::AnthropicMessages;
    const STREAM: bool = true;

    fn send<'a>(
        deployment: &'a Deployment,
        request: &'a MessagesRequest,
    ) -> impl Future<Output = Result<MessagesEventStream, ProviderError>> + Send + 'a {
        send_messages_stream(deployment, request)
    }

    fn finish(
        call: Call<MessagesRequest>,
        _deployment: &Deployment,
        answer: MessagesEventStream,
    ) -> MessagesStream {
        // Without payloads in records only the usage and stop reason are kept, not the text.
        let accumulator = if call.scope.router.record_payloads {
            MessagesAccumulator::default()
        } else {
            MessagesAccumulator::with_max_bytes(0)
        };
        MessagesStream {
            events: answer,
            accumulator: Some(accumulator),
            first_token: None,
            call: Some(call),
            failure: None,
        }
    }
}

impl CallKind for CountTokens {
    type Request = CountTokensCall;
    type Answer = CountTokensResponse;
    type Output = CountTokensResponse;
    const CALL_TYPE: CallType = CallType::CountTokens;
    const STREAM: bool = false;

    fn send<'a>(
        deployment: &'a Deployment,
        request: &'a CountTokensCall,
    ) -> impl Future<Output = Result<CountTokensResponse, ProviderError>> + Send + 'a {
        send_count_tokens(deployment, request)
    }

    fn finish(
        mut call: Call<CountTokensCall>,
        deployment: &Deployment,
        answer: CountTokensResponse,
    ) -> CountTokensResponse {
        // Counting spends no tokens: the record has none and costs nothing.
        call.succeeded(
            deployment,
            Answered {
                usage: None,
                response: None,
                first_token: None,
                embedding: None,
            },
        );
        answer
    }
}

/// The events of a routed Messages stream, relayed in order and unchanged as they arrive.
///
/// The call is recorded at `message_stop` with the usage and the message the events amount to
/// (bounded, see [`MessagesAccumulator`]); an `error` event is relayed and the call recorded as
/// failed with the status Anthropic gives its type (529 for `overloaded_error`); a stream dropped
/// unfinished is recorded as cancelled.
pub struct MessagesStream {
    events: MessagesEventStream,
    accumulator: Option<MessagesAccumulator>,
    first_token: Option<Instant>,
    call: Option<Call<MessagesRequest>>,
    /// The failure an `error` event recorded (the event itself is relayed as an item).
    failure: Option<RouterError>,
}

impl std::fmt::Debug for MessagesStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessagesStream")
            .field("finished", &self.call.is_none())
            .finish_non_exhaustive()
    }
}

impl MessagesStream {
    /// How the call failed when the stream relayed an `error` event: the error it was recorded
    /// with, taken once.
    pub fn take_failure(&mut self) -> Option<RouterError> {
        self.failure.take()
    }

    fn end(&mut self, event: &MessagesEvent) {
        let Some(mut call) = self.call.take() else {
            return;
        };
        if let Some(error) = event.error() {
            let status = anthropic_error_status(&error.error.kind);
            let message = format!(
                "error event in stream: {}: {}",
                error.error.kind, error.error.message
            );
            let source = match status {
                429 => ProviderError::RateLimited {
                    message,
                    retry_after: None,
                },
                500.. => ProviderError::Upstream {
                    status,
                    message,
                    retry_after: None,
                },
                _ => ProviderError::BadRequest {
                    status,
                    message,
                    code: Some(error.error.kind),
                },
            };
            self.failure = Some(call.failed_midway(source));
            return;
        }
        let answer = self
            .accumulator
            .take()
            .and_then(MessagesAccumulator::finish);
        let record = answer.as_ref().map(record_response);
        call.stream_ended(Answered {
            usage: record.as_ref().and_then(|r| r.usage.as_ref()),
            response: record.as_ref().map(|r| Payload::Chat(Cow::Borrowed(r))),
            first_token: self.first_token,
            embedding: None,
        });
    }
}

impl Stream for MessagesStream {
    type Item = Result<MessagesEvent, RouterError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.call.is_none() {
            return Poll::Ready(None);
        }
        match this.events.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(event))) => {
                let kind = event.kind();
                if this.first_token.is_none() && kind == "content_block_delta" {
                    this.first_token = Some(Instant::now());
                }
                if let Some(accumulator) = &mut this.accumulator {
                    accumulator.push(&event);
                }
                if event.is_stop() || kind == "error" {
                    this.end(&event);
                }
                Poll::Ready(Some(Ok(event)))
            }
            Poll::Ready(Some(Err(source))) => {
                let error = this.call.take().map(|mut call| call.failed_midway(source));
                Poll::Ready(error.map(Err))
            }
            Poll::Ready(None) => {
                // Ended at a `[DONE]` some compatible servers add, without `message_stop`:
                // recorded with what the events said.
                let stop = MessagesEvent {
                    event: "message_stop".to_owned(),
                    data: "{\"type\":\"message_stop\"}".to_owned(),
                };
                this.end(&stop);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl crate::Router {
    /// An Anthropic Messages create, to a group of deployments that speak Messages (`anthropic/`).
    /// Mirrored like chat: a Messages copy goes to each silent group.
    ///
    /// # Errors
    ///
    /// [`RouterError`] once retries and fallbacks are exhausted.
    pub async fn messages(
        &self,
        request: MessagesRequest,
    ) -> Result<crate::Routed<MessagesResponse>, RouterError> {
        let meta = CallMeta::for_request(&request.model, request.gateway_metadata());
        self.messages_with_meta(request, meta).await
    }

    /// [`crate::Router::messages`] with an identity the caller made.
    ///
    /// # Errors
    ///
    /// As [`crate::Router::messages`].
    pub async fn messages_with_meta(
        &self,
        request: MessagesRequest,
        meta: CallMeta,
    ) -> Result<crate::Routed<MessagesResponse>, RouterError> {
        self.inner.call::<Messages>(request, meta).await
    }

    /// A streamed Messages create: the upstream's events in order, unchanged. Retries and
    /// fallbacks apply until the stream starts.
    ///
    /// # Errors
    ///
    /// [`RouterError`] when no deployment could start the stream.
    pub async fn messages_stream(
        &self,
        request: MessagesRequest,
    ) -> Result<crate::Routed<MessagesStream>, RouterError> {
        let meta = CallMeta::for_request(&request.model, request.gateway_metadata());
        self.messages_stream_with_meta(request, meta).await
    }

    /// [`crate::Router::messages_stream`] with an identity the caller made.
    ///
    /// # Errors
    ///
    /// As [`crate::Router::messages_stream`].
    pub async fn messages_stream_with_meta(
        &self,
        request: MessagesRequest,
        meta: CallMeta,
    ) -> Result<crate::Routed<MessagesStream>, RouterError> {
        self.inner.call::<MessagesStreamed>(request, meta).await
    }

    /// `POST /v1/messages/count_tokens` on a deployment of the request's group. Never mirrored.
    ///
    /// # Errors
    ///
    /// [`RouterError`] once retries and fallbacks are exhausted.
    pub async fn count_tokens(
        &self,
        request: MessagesRequest,
        meta: CallMeta,
    ) -> Result<crate::Routed<CountTokensResponse>, RouterError> {
        self.inner
            .call::<CountTokens>(CountTokensCall(request), meta)
            .await
    }
}
