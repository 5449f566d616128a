//! Request handlers.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use mirror_core::{
    CallId, CallMeta, ChatRequest, EmbeddingsRequest, ErrorBody, TraceId, OPT_OUT_METADATA_KEY,
};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;

/// The header that opts one request out of mirroring: `x-mirror-silent: off`.
pub(crate) const SILENT_HEADER: &str = "x-mirror-silent";
/// Every response's call id.
pub(crate) const CALL_ID_HEADER: &str = "x-mirror-call-id";
/// Every response's trace id.
pub(crate) const TRACE_ID_HEADER: &str = "x-mirror-trace-id";
/// OpenAI's request-id header, which the official SDKs expose (`completion._request_id` in Python);
/// it carries the call id, so an SDK user can find the call in the logs.
pub(crate) const REQUEST_ID_HEADER: &str = "x-request-id";

type SharedState = State<Arc<AppState>>;

/// Checks the master key, when one is set, in constant time.
pub(crate) async fn authenticate(
    State(state): SharedState,
    request: Request,
    next: Next,
) -> Response {
    if let Some(key) = &state.master_key {
        let headers = request.headers();
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            });
        let api_key = headers.get("api-key").and_then(|value| value.to_str().ok());
        let presented = bearer.or(api_key).unwrap_or("");
        let matches: bool = presented
            .trim()
            .as_bytes()
            .ct_eq(key.expose().as_bytes())
            .into();
        if !matches {
            state.metrics.observe_status(401);
            return with_ids(ApiError::unauthorized().into_response(), &fresh_ids());
        }
    }
    next.run(request).await
}

pub(super) fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "invalid_request_error",
                Some("request_too_large"),
                "request body is larger than `mirror_settings.max_body_bytes`",
            )
        } else {
            ApiError::new(status, "invalid_request_error", None, rejection.body_text())
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|err| ApiError::bad_request(format!("invalid request body: {err}")))
}

/// `x-mirror-silent: off` (or `false`, `0`, `no`) puts the opt-out flag into the request metadata.
pub(super) fn apply_silent_header(headers: &HeaderMap, metadata: &mut Option<Map<String, Value>>) {
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
        metadata
            .get_or_insert_with(Map::new)
            .insert(OPT_OUT_METADATA_KEY.to_owned(), Value::Bool(true));
    }
}

/// Ids for a response refused before a call existed, so that every response carries them.
pub(super) fn fresh_ids() -> (String, String) {
    (CallId::new().to_string(), TraceId::new().to_string())
}

pub(super) fn with_ids(mut response: Response, meta: &(String, String)) -> Response {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&meta.0) {
        headers.insert(REQUEST_ID_HEADER, value.clone());
        headers.insert(CALL_ID_HEADER, value);
    }
    if let Ok(value) = HeaderValue::from_str(&meta.1) {
        headers.insert(TRACE_ID_HEADER, value);
    }
    response
}

pub(super) fn finish(
    state: &AppState,
    response: Response,
    started: Instant,
    routed: std::time::Duration,
) -> Response {
    state
        .metrics
        .observe_overhead(started.elapsed().saturating_sub(routed));
    state.metrics.observe_status(response.status().as_u16());
    response
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat(
    State(state): SharedState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    chat_for(state, headers, body, None).await
}

/// `POST /openai/deployments/{deployment}/chat/completions`: Azure's path; the deployment names the
/// model group.
pub(crate) async fn azure_chat(
    State(state): SharedState,
    Path(deployment): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    chat_for(state, headers, body, Some(deployment)).await
}

async fn chat_for(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    model: Option<String>,
) -> Response {
    let started = Instant::now();
    let refuse = |error: ApiError| {
        let response = with_ids(error.into_response(), &fresh_ids());
        finish(&state, response, started, Default::default())
    };
    let mut request: ChatRequest = match parse_with_model(body, model) {
        Ok(request) => request,
        Err(error) => return refuse(error),
    };
    if request.messages.is_empty() {
        return refuse(ApiError::bad_request("`messages` must not be empty"));
    }
    apply_silent_header(&headers, &mut request.metadata);
    let meta = CallMeta::for_request(&request.model, request.metadata.as_ref());
    let ids = (meta.call_id.to_string(), meta.trace_id.to_string());
    let routed_started = Instant::now();
    if request.is_stream() {
        let result = state.router.chat_stream_with_meta(request, meta).await;
        let routed = routed_started.elapsed();
        let response = match result {
            Ok(routed) => sse_response(routed.response),
            Err(error) => ApiError::from_router(&error).into_response(),
        };
        return finish(&state, with_ids(response, &ids), started, routed);
    }
    let result = state.router.chat_with_meta(request, meta).await;
    let routed = routed_started.elapsed();
    let response = match result {
        Ok(routed) => json_response(&routed.response),
        Err(error) => ApiError::from_router(&error).into_response(),
    };
    finish(&state, with_ids(response, &ids), started, routed)
}

pub(super) fn parse_with_model<T>(
    body: Result<Bytes, BytesRejection>,
    model: Option<String>,
) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned,
{
    match model {
        None => parse_body(body),
        Some(model) => {
            // Azure clients put the deployment in the path and may leave `model` out of the body.
            let mut value: Value = parse_body(body)?;
            if let Some(object) = value.as_object_mut() {
                object.insert("model".to_owned(), Value::String(model));
            }
            serde_json::from_value(value)
                .map_err(|err| ApiError::bad_request(format!("invalid request body: {err}")))
        }
    }
}

pub(super) fn json_response<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(err) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            None,
            format!("cannot serialize the response: {err}"),
        )
        .into_response(),
    }
}

/// Relays a routed stream as OpenAI does: `data: {chunk}\n\n` per chunk, then `data: [DONE]\n\n`; a
/// failure mid-stream becomes a `data: {"error": ...}` event and ends the stream.
fn sse_response(stream: mirror_router::ChatStream) -> Response {
    let events = futures::stream::unfold(Some(stream), |state| async move {
        let mut stream = state?;
        match stream.next().await {
            Some(Ok(chunk)) => {
                let mut event = Vec::with_capacity(256);
                event.extend_from_slice(b"data: ");
                if serde_json::to_writer(&mut event, &chunk).is_err() {
                    return None;
                }
                event.extend_from_slice(b"\n\n");
                Some((Ok::<Bytes, Infallible>(Bytes::from(event)), Some(stream)))
            }
            Some(Err(error)) => {
                let api = ApiError::from_router(&error);
                let body = serde_json::to_string(&api.body).unwrap_or_else(|_| {
                    r#"{"error":{"message":"stream failed","type":"upstream_error"}}"#.to_owned()
                });
                Some((Ok(Bytes::from(format!("data: {body}\n\n"))), None))
            }
            None => Some((Ok(Bytes::from_static(b"data: [DONE]\n\n")), None)),
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(events))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `POST /v1/embeddings`.
pub(crate) async fn embeddings(
    State(state): SharedState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    embeddings_for(state, headers, body, None).await
}

/// `POST /openai/deployments/{deployment}/embeddings`.
pub(crate) async fn azure_embeddings(
    State(state): SharedState,
    Path(deployment): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    embeddings_for(state, headers, body, Some(deployment)).await
}

async fn embeddings_for(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    model: Option<String>,
) -> Response {
    let started = Instant::now();
    let mut request: EmbeddingsRequest = match parse_with_model(body, model) {
        Ok(request) => request,
        Err(error) => {
            let response = with_ids(error.into_response(), &fresh_ids());
            return finish(&state, response, started, Default::default());
        }
    };
    apply_silent_header(&headers, &mut request.metadata);
    let meta = CallMeta::for_request(&request.model, request.metadata.as_ref());
    let ids = (meta.call_id.to_string(), meta.trace_id.to_string());
    let routed_started = Instant::now();
    let result = state.router.embeddings_with_meta(request, meta).await;
    let routed = routed_started.elapsed();
    let response = match result {
        Ok(routed) => json_response(&routed.response),
        Err(error) => ApiError::from_router(&error).into_response(),
    };
    finish(&state, with_ids(response, &ids), started, routed)
}

/// `GET /v1/models`: the model groups.
pub(crate) async fn models(State(state): SharedState) -> Response {
    let data: Vec<Value> = state
        .router
        .model_groups()
        .into_iter()
        .map(|group| {
            serde_json::json!({"id": group, "object": "model", "created": 0, "owned_by": "mirror"})
        })
        .collect();
    json_response(&serde_json::json!({"object": "list", "data": data}))
}

/// `GET /health/liveliness` (and `/health`): the process answers.
pub(crate) async fn liveliness() -> Response {
    json_response(&"I'm alive!")
}

/// `GET /health/readiness`: ready unless shutting down.
pub(crate) async fn readiness(State(state): SharedState) -> Response {
    let shutting_down = state.shutting_down.load(Ordering::Acquire);
    let body = serde_json::json!({
        "status": if shutting_down { "shutting_down" } else { "healthy" },
        "mirroring": state.router.is_mirroring(),
        "silent": state.router.mirror_stats(),
        "shared_state": state.router.shared_state_stats(),
    });
    let mut response = json_response(&body);
    if shutting_down {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    response
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): SharedState) -> Response {
    let text = state.metrics.render(
        &state.router.mirror_stats(),
        &state.writer.stats(),
        &state.router.shared_state_stats(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Any other path.
pub(crate) async fn not_found(request: Request) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("unknown_url"),
        format!(
            "unknown path `{} {}`",
            request.method(),
            request.uri().path()
        ),
    )
    .into_response()
}

/// A handler panicked: answer 500 in OpenAI's shape instead of dropping the connection.
pub(crate) fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let body = ErrorBody::new("internal error", "internal_error", None);
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}
