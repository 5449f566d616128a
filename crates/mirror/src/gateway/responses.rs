//! The Responses API handlers: create (whole and streamed) and the calls on a stored response.
//!
//! Served under `/v1/responses`, `/responses` and `/openai/v1/responses`, as LiteLLM's proxy serves
//! them, and under `/openai/responses`, where the SDK's `AzureOpenAI` client sends them (its
//! `api-version` query is the client's view of Azure and is not forwarded: the deployment's own
//! `api_version` decides the upstream's surface, as for chat). Auth, the body limit, the `x-mirror-*` headers and OpenAI-shaped errors are those of the
//! chat handlers. Response ids are the router's routed ids (they name the deployment that stored
//! the response), so an id the router cannot route is a 404 and no deployment is called.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use mirror_core::{CallMeta, ResponsesRequest};
use mirror_providers::ResponseOperation;
use mirror_router::ResponsesStream;
use serde_json::{json, Value};

use super::error::ApiError;
use super::handlers::{
    apply_silent_header, finish, fresh_ids, json_response, parse_body, with_ids, RequestBody,
};
use super::AppState;

type SharedState = State<Arc<AppState>>;

/// `POST /v1/responses`: a create, streamed when the body says `stream: true`.
pub(crate) async fn create(
    State(state): SharedState,
    headers: HeaderMap,
    body: RequestBody,
) -> Response {
    let started = Instant::now();
    let request: ResponsesRequest = match parse_body(body) {
        Ok(request) => request,
        Err(error) => {
            let response = with_ids(error.into_response(), &fresh_ids());
            return finish(&state, response, started, Default::default());
        }
    };
    let mut meta = CallMeta::for_request(&request.model, request.gateway_metadata());
    // The opt-out header sets the flag on the call's identity: writing it into the request's
    // metadata would forward it, since OpenAI's `metadata` of a Responses request goes upstream.
    let mut opt_out = None;
    apply_silent_header(&headers, &mut opt_out);
    if opt_out.is_some() {
        meta.mirror_opt_out = true;
    }
    let ids = (meta.call_id.to_string(), meta.trace_id.to_string());
    let routed_started = Instant::now();
    if request.is_stream() {
        let result = state
            .router()
            .responses_stream_with_meta(request, meta)
            .await;
        let routed = routed_started.elapsed();
        let response = match result {
            Ok(routed) => sse_response(routed.response),
            Err(error) => ApiError::from_router(&error).into_response(),
        };
        return finish(&state, with_ids(response, &ids), started, routed);
    }
    let result = state.router().responses_with_meta(request, meta).await;
    let routed = routed_started.elapsed();
    let response = match result {
        Ok(routed) => json_response(&routed.response),
        Err(error) => ApiError::from_router(&error).into_response(),
    };
    finish(&state, with_ids(response, &ids), started, routed)
}

/// Relays a routed Responses stream: each event as the upstream framed it (`event:` and `data:`
/// lines), in order. A failure mid-stream becomes an `error` event in the Responses shape
/// (`{type, code, message, param}`, no nested object) and ends the stream; no `[DONE]` follows,
/// as OpenAI sends none.
fn sse_response(stream: ResponsesStream) -> Response {
    let events = futures::stream::unfold(Some(stream), |state| async move {
        let mut stream = state?;
        match stream.next().await {
            Some(Ok(event)) => Some((
                Ok::<Bytes, Infallible>(Bytes::from(event.to_sse())),
                Some(stream),
            )),
            Some(Err(error)) => {
                let api = ApiError::from_router(&error);
                let data = json!({
                    "type": "error",
                    "code": api.body.error.code,
                    "message": api.body.error.message,
                    "param": Value::Null,
                });
                Some((
                    Ok(Bytes::from(format!("event: error\ndata: {data}\n\n"))),
                    None,
                ))
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

/// `GET /v1/responses/{id}`.
pub(crate) async fn retrieve(state: SharedState, id: Path<String>, query: RawQuery) -> Response {
    stored(state, id, query, ResponseOperation::Retrieve).await
}

/// `DELETE /v1/responses/{id}`.
pub(crate) async fn delete(state: SharedState, id: Path<String>, query: RawQuery) -> Response {
    stored(state, id, query, ResponseOperation::Delete).await
}

/// `POST /v1/responses/{id}/cancel`.
pub(crate) async fn cancel(state: SharedState, id: Path<String>, query: RawQuery) -> Response {
    stored(state, id, query, ResponseOperation::Cancel).await
}

/// `GET /v1/responses/{id}/input_items`.
pub(crate) async fn input_items(state: SharedState, id: Path<String>, query: RawQuery) -> Response {
    stored(state, id, query, ResponseOperation::InputItems).await
}

/// A call on a stored response, sent to the deployment its id names with the client's query
/// string (`include[]`, `after`, `limit`, ...).
async fn stored(
    State(state): SharedState,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    operation: ResponseOperation,
) -> Response {
    let started = Instant::now();
    let query = query.and_then(|query| without_api_version(&query));
    // The group is unknown until the router decodes the id; it fills it in for the record.
    let meta = CallMeta::for_request("", None);
    let ids = (meta.call_id.to_string(), meta.trace_id.to_string());
    let routed_started = Instant::now();
    let result = state
        .router()
        .response_call(operation, &id, query, meta)
        .await;
    let routed = routed_started.elapsed();
    let response = match result {
        Ok(routed) => json_response(&routed.response),
        Err(error) => {
            let mut api = ApiError::from_router(&error);
            if api.status == StatusCode::NOT_FOUND {
                // A response that does not exist (or an id we cannot route) is not a missing
                // model: OpenAI answers such a 404 without a code.
                api.body.error.code = None;
            }
            api.into_response()
        }
    };
    finish(&state, with_ids(response, &ids), started, routed)
}

/// The client's query string without `api-version` (an `AzureOpenAI` client's), or `None` when
/// nothing is left.
fn without_api_version(query: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("api-version"))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// The routes, under each of the three prefixes LiteLLM's proxy serves.
pub(crate) fn routes(router: axum::Router<Arc<AppState>>) -> axum::Router<Arc<AppState>> {
    use axum::routing::{get, post};
    [
        "/v1/responses",
        "/responses",
        "/openai/v1/responses",
        "/openai/responses",
    ]
    .into_iter()
    .fold(router, |router, prefix| {
        router
            .route(prefix, post(create))
            .route(&format!("{prefix}/{{id}}"), get(retrieve).delete(delete))
            .route(&format!("{prefix}/{{id}}/cancel"), post(cancel))
            .route(&format!("{prefix}/{{id}}/input_items"), get(input_items))
    })
}
