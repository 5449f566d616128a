//! Anthropic's Messages API: `POST /v1/messages` (streamed when the body says so) and
//! `POST /v1/messages/count_tokens`, also under `/anthropic`, as LiteLLM's proxy serves them.
//!
//! Same format end to end: the body reaches an `anthropic/` deployment with every field, block and
//! cache control as sent (only `model` and the gateway's own keys change), the client's
//! `anthropic-beta` header goes with it, and a stream is relayed event by event, names and data
//! unchanged. Errors on these paths are Anthropic's shape
//! (`{"type":"error","error":{"type","message"}}`) with Anthropic's statuses, so the Anthropic SDKs
//! raise their own exception types; every answer carries the `x-mirror-*` ids and `request-id`.
//! Auth is the master key as `x-api-key` (the SDKs' header) or `Authorization: Bearer`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use mirror_core::{AnthropicErrorBody, CallMeta, MessagesRequest};
use mirror_providers::ProviderError;
use mirror_router::{MessagesStream, RouterError};

use super::error::ApiError;
use super::handlers::{
    apply_traceparent, check_echoed, finish, fresh_ids, json_response, parse_body, with_ids,
    RequestBody, SILENT_HEADER,
};
use super::AppState;

type SharedState = State<Arc<AppState>>;

/// The paths served here (and so answered in Anthropic's error shape, authentication included).
pub(crate) fn is_messages_path(path: &str) -> bool {
    path.starts_with("/v1/messages") || path.starts_with("/anthropic/")
}

/// An error answer in Anthropic's shape with the status `api` carries (and its `retry-after`).
pub(crate) fn anthropic_error(api: &ApiError) -> Response {
    let body = AnthropicErrorBody::for_status(api.status.as_u16(), api.body.error.message.clone());
    let mut response = (api.status, axum::Json(body)).into_response();
    if let Some(wait) = api.retry_after {
        let seconds = wait.as_secs_f64().ceil().max(1.0);
        if let Ok(value) = HeaderValue::from_str(&format!("{seconds:.0}")) {
            response.headers_mut().insert("retry-after", value);
        }
    }
    response
}

/// A router error as Anthropic would have answered it: OpenAI's mapping, except that an upstream
/// 5xx (529 `overloaded_error` above all) keeps its status instead of becoming a 502, and a
/// request the upstream refused keeps the upstream's status and type.
fn router_error(error: &RouterError) -> Response {
    let mut api = ApiError::from_router(error);
    if let Some(ProviderError::Upstream { status, .. }) = error.provider_error() {
        if let Ok(status) = StatusCode::from_u16(*status) {
            api.status = status;
        }
    }
    anthropic_error(&api)
}

/// Adds the ids, and `request-id` (what the Anthropic SDKs expose as `_request_id`).
fn with_anthropic_ids(response: Response, ids: &(String, String)) -> Response {
    let mut response = with_ids(response, ids);
    if let Ok(value) = HeaderValue::from_str(&ids.0) {
        response.headers_mut().insert("request-id", value);
    }
    response
}

/// Reads a Messages request: the body, the client's `anthropic-beta`, and the call's identity
/// (`x-mirror-silent: off` sets the opt-out on the identity, never in the forwarded metadata).
fn read(headers: &HeaderMap, body: RequestBody) -> Result<(MessagesRequest, CallMeta), ApiError> {
    let mut request: MessagesRequest = parse_body(body)?;
    if request.messages.is_empty() {
        return Err(ApiError::bad_request("messages: must not be empty"));
    }
    check_echoed(request.gateway_metadata())?;
    request.beta = headers
        .get("anthropic-beta")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut meta = CallMeta::for_request(&request.model, request.gateway_metadata());
    apply_traceparent(headers, request.gateway_metadata(), &mut meta);
    let off = headers
        .get(SILENT_HEADER)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "off" | "false" | "0" | "no"
            )
        });
    if off {
        meta.mirror_opt_out = true;
    }
    Ok((request, meta))
}

/// `POST /v1/messages`.
pub(crate) async fn create(
    State(state): SharedState,
    headers: HeaderMap,
    body: RequestBody,
) -> Response {
    let started = Instant::now();
    let (request, meta) = match read(&headers, body) {
        Ok(read) => read,
        Err(error) => {
            let response = with_anthropic_ids(anthropic_error(&error), &fresh_ids());
            return finish(&state, response, started, Default::default());
        }
    };
    let ids = (meta.call_id.to_string(), meta.trace_id.to_string());
    let routed_started = Instant::now();
    if request.is_stream() {
        let result = state
            .router()
            .messages_stream_with_meta(request, meta)
            .await;
        let routed = routed_started.elapsed();
        let response = match result {
            Ok(routed) => sse_response(routed.response, state.deadline.subscribe()),
            Err(error) => router_error(&error),
        };
        return finish(&state, with_anthropic_ids(response, &ids), started, routed);
    }
    let result = state.router().messages_with_meta(request, meta).await;
    let routed = routed_started.elapsed();
    let response = match result {
        Ok(routed) => json_response(&routed.response),
        Err(error) => router_error(&error),
    };
    finish(&state, with_anthropic_ids(response, &ids), started, routed)
}

/// `POST /v1/messages/count_tokens`.
pub(crate) async fn count_tokens(
    State(state): SharedState,
    headers: HeaderMap,
    body: RequestBody,
) -> Response {
    let started = Instant::now();
    let (request, meta) = match read(&headers, body) {
        Ok(read) => read,
        Err(error) => {
            let response = with_anthropic_ids(anthropic_error(&error), &fresh_ids());
            return finish(&state, response, started, Default::default());
        }
    };
    let ids = (meta.call_id.to_string(), meta.trace_id.to_string());
    let routed_started = Instant::now();
    let result = state.router().count_tokens(request, meta).await;
    let routed = routed_started.elapsed();
    let response = match result {
        Ok(routed) => json_response(&routed.response),
        Err(error) => router_error(&error),
    };
    finish(&state, with_anthropic_ids(response, &ids), started, routed)
}

/// Relays a routed Messages stream: each event as the upstream framed it, in order. A failure
/// mid-stream (a cut-off upstream, the shutdown deadline) becomes an Anthropic `error` event and
/// ends the stream, as the API itself reports errors after a 200.
fn sse_response(stream: MessagesStream, deadline: tokio::sync::watch::Receiver<bool>) -> Response {
    let error_event = |api: &ApiError| {
        let body =
            AnthropicErrorBody::for_status(api.status.as_u16(), api.body.error.message.clone());
        let data = serde_json::to_string(&body).unwrap_or_else(|_| {
            r#"{"type":"error","error":{"type":"api_error","message":"stream failed"}}"#.to_owned()
        });
        Bytes::from(format!("event: error\ndata: {data}\n\n"))
    };
    let events = futures::stream::unfold(Some((stream, deadline)), move |state| async move {
        let (mut stream, mut deadline) = state?;
        let next = tokio::select! {
            biased;
            next = stream.next() => next,
            _ = deadline.wait_for(|reached| *reached) => {
                drop(stream);
                let api = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded_error",
                    None,
                    "the gateway is shutting down; the stream was cut at `shutdown_timeout`",
                );
                return Some((Ok::<Bytes, Infallible>(error_event(&api)), None));
            }
        };
        match next {
            Some(Ok(event)) => Some((Ok(Bytes::from(event.to_sse())), Some((stream, deadline)))),
            Some(Err(error)) => {
                let mut api = ApiError::from_router(&error);
                if let Some(ProviderError::Upstream { status, .. }) = error.provider_error() {
                    api.status = StatusCode::from_u16(*status).unwrap_or(api.status);
                }
                Some((Ok(error_event(&api)), None))
            }
            None => None,
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(events))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The routes, at the root and under `/anthropic`.
pub(crate) fn routes(router: axum::Router<Arc<AppState>>) -> axum::Router<Arc<AppState>> {
    use axum::routing::post;
    ["", "/anthropic"]
        .into_iter()
        .fold(router, |router, prefix| {
            router
                .route(&format!("{prefix}/v1/messages"), post(create))
                .route(
                    &format!("{prefix}/v1/messages/count_tokens"),
                    post(count_tokens),
                )
        })
}
