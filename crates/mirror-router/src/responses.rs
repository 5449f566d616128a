//! The Responses API through the call pipeline: create (whole and streamed) and the calls on a
//! stored response, each a [`CallKind`], plus [`ResponsesStream`].
//!
//! Response ids handed to callers name the deployment that stored the response
//! (`response_ids.rs`): a create's answer (and every streamed event that carries the response) gets
//! its id encoded; a `previous_response_id` or a stored-response call is decoded and pinned to that
//! deployment, with the upstream's own id sent on.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use mirror_core::{
    CallMeta, CallType, ResponsesEvent, ResponsesRequest, ResponsesResponse, ResponsesUsage, Usage,
};
use mirror_providers::{ProviderError, ResponseCall, ResponseOperation, ResponsesEventStream};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::call::{Call, CallKind, CallRequest, RecordParts};
use crate::deployment::Deployment;
use crate::records::{Answered, Payload};
use crate::response_ids;
use crate::router::Inner;
use crate::RouterError;

/// A Responses create on its way through the router: the request with `previous_response_id`
/// already the upstream's own id, and the deployment that stored it.
#[derive(Debug)]
pub(crate) struct ResponsesCall {
    pub(crate) request: ResponsesRequest,
    pinned: Option<String>,
}

impl ResponsesCall {
    /// Decodes the request's `previous_response_id`: one of ours pins the call to its deployment
    /// and is replaced by the upstream's id; any other id is sent as it came, unpinned.
    pub(crate) fn new(mut request: ResponsesRequest) -> Self {
        let decoded = request
            .previous_response_id
            .as_deref()
            .and_then(response_ids::decode);
        let pinned = decoded.map(|decoded| {
            request.previous_response_id = Some(decoded.upstream_id);
            decoded.deployment_id
        });
        ResponsesCall { request, pinned }
    }
}

impl CallRequest for ResponsesCall {
    fn clear_silent_mark(&mut self) {
        mirror_core::clear_silent_mark(&mut self.request.litellm_metadata);
    }

    fn model(&self) -> &str {
        &self.request.model
    }

    fn fire_silent(&self, router: &Inner, deployment: &Deployment, meta: &CallMeta) {
        router.fire_silent_responses(deployment, &self.request, meta);
    }

    fn pinned(&self) -> Option<&str> {
        self.pinned.as_deref()
    }

    /// LiteLLM's per-request `cache` controls are never sent upstream. Responses creates are not
    /// cached: a stored response's id names state on the upstream (retrieve, `previous_response_id`),
    /// so one answer replayed to two callers would hand both the same conversation.
    fn take_cache_control(&mut self) -> Option<serde_json::Value> {
        self.request.extra.remove("cache")
    }

    fn take_record_parts(&mut self, payloads: bool) -> RecordParts {
        let request = &mut self.request;
        RecordParts {
            messages: payloads.then(|| request.input_messages()),
            user: request.user.take(),
            metadata: request
                .litellm_metadata
                .take()
                .or_else(|| request.metadata.clone()),
        }
    }
}

/// A Responses create, answered whole.
pub(crate) struct Responses;

/// A streamed Responses create: recorded at its terminal event.
pub(crate) struct ResponsesStreamed;

/// The record's usage for a Responses usage: input as prompt, output as completion, the cached
/// and reasoning counts kept in chat's detail fields.
fn chat_usage(usage: &ResponsesUsage) -> Usage {
    let mut extra = Map::new();
    extra.insert(
        "prompt_tokens_details".to_owned(),
        serde_json::json!({"cached_tokens": usage.cached_tokens()}),
    );
    extra.insert(
        "completion_tokens_details".to_owned(),
        serde_json::json!({"reasoning_tokens": usage.reasoning_tokens()}),
    );
    Usage {
        prompt_tokens: usage.input_tokens,
        completion_tokens: usage.output_tokens,
        total_tokens: usage.total(),
        extra,
    }
}

impl CallKind for Responses {
    type Request = ResponsesCall;
    type Answer = ResponsesResponse;
    type Output = ResponsesResponse;
    const CALL_TYPE: CallType = CallType::Responses;
    const STREAM: bool = false;

    fn send<'a>(
        deployment: &'a Deployment,
        request: &'a ResponsesCall,
    ) -> impl Future<Output = Result<ResponsesResponse, ProviderError>> + Send + 'a {
        deployment
            .provider
            .responses(&deployment.params, &request.request)
    }

    fn finish(
        mut call: Call<ResponsesCall>,
        deployment: &Deployment,
        mut answer: ResponsesResponse,
    ) -> ResponsesResponse {
        if !answer.id.is_empty() {
            answer.id = response_ids::encode(
                deployment.params.model.provider(),
                &deployment.id,
                &answer.id,
            );
        }
        // Linked before the record is built, which takes the call's group out of its scope.
        call.scope.router.note_primary_response(
            &call.scope.meta,
            &call.request.request,
            &answer.id,
        );
        let usage = answer.usage.as_ref().map(chat_usage);
        call.succeeded(
            deployment,
            Answered {
                usage: usage.as_ref(),
                response: Some(Payload::Responses(Cow::Borrowed(&answer))),
                first_token: None,
                embedding: None,
            },
        );
        answer
    }
}

impl CallKind for ResponsesStreamed {
    type Request = ResponsesCall;
    type Answer = ResponsesEventStream;
    type Output = ResponsesStream;
    const CALL_TYPE: CallType = CallType::Responses;
    const STREAM: bool = true;

    fn send<'a>(
        deployment: &'a Deployment,
        request: &'a ResponsesCall,
    ) -> impl Future<Output = Result<ResponsesEventStream, ProviderError>> + Send + 'a {
        deployment
            .provider
            .responses_stream(&deployment.params, &request.request)
    }

    fn finish(
        call: Call<ResponsesCall>,
        deployment: &Deployment,
        answer: ResponsesEventStream,
    ) -> ResponsesStream {
        ResponsesStream {
            events: answer,
            provider: deployment.params.model.provider().to_owned(),
            deployment_id: deployment.id.clone(),
            first_token: None,
            call: Some(call),
            failure: None,
        }
    }
}

/// The events of a routed Responses stream, relayed in order as they arrive.
///
/// Events are passed on unchanged, whatever their type, except that an event carrying the response
/// object (`response.created`, `response.completed`, ...) has the response's `id` replaced by the
/// routed id, as the whole answer has. The call is recorded at the terminal event with its usage;
/// an `error` event is relayed and the call recorded as failed; a stream dropped unfinished is
/// recorded as cancelled.
pub struct ResponsesStream {
    events: ResponsesEventStream,
    provider: String,
    deployment_id: String,
    first_token: Option<Instant>,
    call: Option<Call<ResponsesCall>>,
    /// The failure an `error` event recorded: the event itself is relayed as an item, so a reader
    /// that must know how the call ended (the silent runner) asks here.
    failure: Option<RouterError>,
}

impl std::fmt::Debug for ResponsesStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponsesStream")
            .field("finished", &self.call.is_none())
            .finish_non_exhaustive()
    }
}

impl ResponsesStream {
    /// How the call failed when the stream relayed an `error` event: the error it was recorded
    /// with, taken once. `None` while it runs and after any other ending.
    pub(crate) fn take_failure(&mut self) -> Option<RouterError> {
        self.failure.take()
    }

    /// Replaces the response id in an event that carries the response.
    fn route_id(&self, event: &mut ResponsesEvent) -> Option<ResponsesResponse> {
        let response = event.response()?;
        if response.id.is_empty() {
            return Some(response);
        }
        let routed = response_ids::encode(&self.provider, &self.deployment_id, &response.id);
        if let Ok(mut data) = serde_json::from_str::<Value>(&event.data) {
            data["response"]["id"] = Value::String(routed.clone());
            event.data = data.to_string();
        }
        let mut response = response;
        response.id = routed;
        Some(response)
    }
}

impl Stream for ResponsesStream {
    type Item = Result<ResponsesEvent, RouterError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.call.is_none() {
            return Poll::Ready(None);
        }
        match this.events.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(mut event))) => {
                if this.first_token.is_none() && event.kind().ends_with(".delta") {
                    this.first_token = Some(Instant::now());
                }
                let response = this.route_id(&mut event);
                if let Some(mut call) = (event.is_terminal() || event.is_error())
                    .then(|| this.call.take())
                    .flatten()
                {
                    if event.is_error() {
                        this.failure = Some(call.failed_midway(ProviderError::Upstream {
                            status: 500,
                            message: format!("error event in stream: {}", event.data),
                            retry_after: None,
                        }));
                    } else {
                        if let Some(response) = &response {
                            call.scope.router.note_primary_response(
                                &call.scope.meta,
                                &call.request.request,
                                &response.id,
                            );
                        }
                        let usage = response
                            .as_ref()
                            .and_then(|r| r.usage.as_ref())
                            .map(chat_usage);
                        call.stream_ended(Answered {
                            usage: usage.as_ref(),
                            response: response.map(|r| Payload::Responses(Cow::Owned(r))),
                            first_token: this.first_token,
                            embedding: None,
                        });
                    }
                    // The call is recorded: dropping it now does nothing more.
                    drop(call);
                }
                Poll::Ready(Some(Ok(event)))
            }
            Poll::Ready(Some(Err(source))) => {
                let error = this.call.take().map(|mut call| call.failed_midway(source));
                Poll::Ready(error.map(Err))
            }
            Poll::Ready(None) => {
                // Ended without a terminal event ([DONE] from a compatible server): recorded
                // without usage.
                if let Some(mut call) = this.call.take() {
                    call.stream_ended(Answered {
                        usage: None,
                        response: None,
                        first_token: this.first_token,
                        embedding: None,
                    });
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A call on a stored response, pinned to the deployment that stored it.
#[derive(Debug)]
pub(crate) struct StoredResponseCall {
    /// The deployment's group.
    pub(crate) group: String,
    pub(crate) deployment_id: String,
    pub(crate) provider: String,
    pub(crate) upstream_id: String,
    pub(crate) query: Option<String>,
}

impl CallRequest for StoredResponseCall {
    fn model(&self) -> &str {
        &self.group
    }

    fn pinned(&self) -> Option<&str> {
        Some(&self.deployment_id)
    }

    fn take_record_parts(&mut self, _payloads: bool) -> RecordParts {
        RecordParts::default()
    }
}

/// What the four stored-response kinds share.
trait StoredOperation {
    const OPERATION: ResponseOperation;
}

fn send_stored<'a>(
    deployment: &'a Deployment,
    request: &'a StoredResponseCall,
    operation: ResponseOperation,
) -> impl Future<Output = Result<Value, ProviderError>> + Send + 'a {
    deployment.provider.response_call(
        &deployment.params,
        ResponseCall {
            operation,
            id: &request.upstream_id,
            query: request.query.as_deref(),
        },
    )
}

fn finish_stored(
    mut call: Call<StoredResponseCall>,
    deployment: &Deployment,
    mut answer: Value,
    operation: ResponseOperation,
) -> Value {
    // A response object (or a deletion) names the response: the caller sees the routed id.
    if operation != ResponseOperation::InputItems {
        if let Some(id) = answer.get("id").and_then(Value::as_str) {
            let routed = response_ids::encode(&call.request.provider, &deployment.id, id);
            answer["id"] = Value::String(routed);
        }
    }
    // A retrieved response's usage was spent when it was created: no tokens or cost here.
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

macro_rules! stored_kind {
    ($($(#[$doc:meta])* $name:ident: $operation:ident, $call_type:ident;)*) => {$(
        $(#[$doc])*
        pub(crate) struct $name;

        impl StoredOperation for $name {
            const OPERATION: ResponseOperation = ResponseOperation::$operation;
        }

        impl CallKind for $name {
            type Request = StoredResponseCall;
            type Answer = Value;
            type Output = Value;
            const CALL_TYPE: CallType = CallType::$call_type;
            const STREAM: bool = false;

            fn send<'a>(
                deployment: &'a Deployment,
                request: &'a StoredResponseCall,
            ) -> impl Future<Output = Result<Value, ProviderError>> + Send + 'a {
                send_stored(deployment, request, Self::OPERATION)
            }

            fn finish(call: Call<StoredResponseCall>, deployment: &Deployment, answer: Value) -> Value {
                finish_stored(call, deployment, answer, Self::OPERATION)
            }
        }
    )*};
}

stored_kind! {
    /// `GET /responses/{id}`.
    Retrieve: Retrieve, GetResponses;
    /// `DELETE /responses/{id}`.
    Delete: Delete, DeleteResponses;
    /// `POST /responses/{id}/cancel`.
    Cancel: Cancel, CancelResponses;
    /// `GET /responses/{id}/input_items`.
    InputItems: InputItems, ListInputItems;
}

impl Inner {
    /// The stored-response call for a routed `id`, or a 404 that says why it cannot be routed.
    pub(crate) fn stored_call(
        &self,
        id: &str,
        query: Option<String>,
    ) -> Result<StoredResponseCall, RouterError> {
        let not_found = |message: String| RouterError::Provider {
            group: String::new(),
            deployment: String::new(),
            attempts: 0,
            source: ProviderError::NotFound { message },
        };
        let decoded = response_ids::decode(id).ok_or_else(|| {
            not_found(format!(
                "response `{id}` was not issued by this gateway, so it names no deployment to ask"
            ))
        })?;
        let deployment = self
            .groups
            .iter()
            .flat_map(|group| group.deployments.iter())
            .find(|deployment| deployment.id == decoded.deployment_id)
            .ok_or_else(|| {
                not_found(format!(
                    "response `{id}` was stored by deployment `{}`, which is not configured here",
                    decoded.deployment_id
                ))
            })?;
        Ok(StoredResponseCall {
            group: deployment.group.clone(),
            deployment_id: deployment.id.clone(),
            provider: deployment.params.model.provider().to_owned(),
            upstream_id: decoded.upstream_id,
            query,
        })
    }
}

impl crate::Router {
    /// A Responses API create. Mirrored like chat (see `docs/mirroring.md` for the state and tool
    /// rules); the answer's id names the deployment that stored it.
    ///
    /// # Errors
    ///
    /// [`RouterError`] once retries and fallbacks are exhausted.
    pub async fn responses(
        &self,
        request: ResponsesRequest,
    ) -> Result<crate::Routed<ResponsesResponse>, RouterError> {
        let meta = CallMeta::for_request(&request.model, request.gateway_metadata());
        self.responses_with_meta(request, meta).await
    }

    /// [`crate::Router::responses`] with an identity the caller made.
    ///
    /// # Errors
    ///
    /// As [`crate::Router::responses`].
    pub async fn responses_with_meta(
        &self,
        request: ResponsesRequest,
        meta: CallMeta,
    ) -> Result<crate::Routed<ResponsesResponse>, RouterError> {
        self.inner
            .call::<Responses>(ResponsesCall::new(request), meta)
            .await
    }

    /// A streamed Responses API create: the upstream's events in order. Retries and fallbacks
    /// apply until the stream starts.
    ///
    /// # Errors
    ///
    /// [`RouterError`] when no deployment could start the stream.
    pub async fn responses_stream(
        &self,
        request: ResponsesRequest,
    ) -> Result<crate::Routed<ResponsesStream>, RouterError> {
        let meta = CallMeta::for_request(&request.model, request.gateway_metadata());
        self.responses_stream_with_meta(request, meta).await
    }

    /// [`crate::Router::responses_stream`] with an identity the caller made.
    ///
    /// # Errors
    ///
    /// As [`crate::Router::responses_stream`].
    pub async fn responses_stream_with_meta(
        &self,
        request: ResponsesRequest,
        meta: CallMeta,
    ) -> Result<crate::Routed<ResponsesStream>, RouterError> {
        self.inner
            .call::<ResponsesStreamed>(ResponsesCall::new(request), meta)
            .await
    }

    /// A call on the stored response `id` (one this router issued), sent to the deployment that
    /// stored it with the client's `query` string; the answer is the upstream's JSON with the
    /// response's id routed. An id this router cannot route is a 404 (a [`mirror_providers::ProviderError::NotFound`]), and
    /// no deployment is called.
    ///
    /// # Errors
    ///
    /// [`RouterError`]: the 404 above, or the deployment's error after retries.
    pub async fn response_call(
        &self,
        operation: ResponseOperation,
        id: &str,
        query: Option<String>,
        meta: CallMeta,
    ) -> Result<crate::Routed<Value>, RouterError> {
        let call = self.inner.stored_call(id, query)?;
        let mut meta = meta;
        if meta.model_group.is_empty() {
            // A caller that could not know the group (the gateway has only the id): the record
            // names the group of the deployment that stored the response.
            meta.model_group.clone_from(&call.group);
        }
        match operation {
            ResponseOperation::Retrieve => self.inner.call::<Retrieve>(call, meta).await,
            ResponseOperation::Delete => self.inner.call::<Delete>(call, meta).await,
            ResponseOperation::Cancel => self.inner.call::<Cancel>(call, meta).await,
            ResponseOperation::InputItems => self.inner.call::<InputItems>(call, meta).await,
        }
    }
}
