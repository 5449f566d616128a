//! Request handlers.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use mirror_core::{
    CallId, CallMeta, ChatRequest, EmbeddingsRequest, ErrorBody, TraceId, OPT_OUT_METADATA_KEY,
    TRACE_ID_METADATA_KEY,
};
use mirror_router::CacheStatus;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::listen::BodyError;
use super::AppState;

/// Whether the response cache answered: `hit` or `miss` (absent when it does not apply).
pub(crate) const CACHE_HEADER: &str = "x-mirror-cache";
/// The cache key of a hit, under LiteLLM's name.
pub(crate) const CACHE_KEY_HEADER: &str = "x-litellm-cache-key";
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
    let live = state.live.load();
    if let Some(key) = &live.master_key {
        let presented = presented_key(request.headers());
        let matches: bool = presented
            .trim()
            .as_bytes()
            .ct_eq(key.expose().as_bytes())
            .into();
        if !matches {
            state.metrics.observe_status(401);
            let error = ApiError::unauthorized();
            let response = if super::messages::is_messages_path(request.uri().path()) {
                super::messages::anthropic_error(&error)
            } else {
                error.into_response()
            };
            return with_ids(response, &fresh_ids());
        }
    }
    next.run(request).await
}

/// The key a request presents: `Authorization: Bearer <key>`, else `api-key`, else `x-api-key`.
pub(crate) fn presented_key(headers: &axum::http::HeaderMap) -> &str {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        });
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    bearer
        .or_else(|| header("api-key"))
        .or_else(|| header("x-api-key"))
        .unwrap_or("")
}

/// A request body read whole, or the OpenAI-shaped error that stopped it.
pub(crate) struct RequestBody(Result<Bytes, ApiError>);

impl axum::extract::FromRequest<Arc<AppState>> for RequestBody {
    type Rejection = Infallible;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, Infallible> {
        Ok(RequestBody(read_body(request, state.max_body_bytes).await))
    }
}

/// Reads a body into one buffer sized from `Content-Length`, so a body is held once while it
/// arrives (collecting chunks and then joining them held it twice), up to `limit` bytes.
async fn read_body(request: Request, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            Some("request_too_large"),
            "request body is larger than `mirror_settings.max_body_bytes`",
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let capacity = declared.map_or(0, |length| usize::try_from(length).unwrap_or(limit));
    let mut buffer = Vec::with_capacity(capacity.min(limit));
    let mut data = request.into_body().into_data_stream();
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(|err| body_error(&err))?;
        if buffer.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buffer))
}

pub(super) fn parse_body<T: serde::de::DeserializeOwned>(body: RequestBody) -> Result<T, ApiError> {
    let bytes = body.0?;
    serde_json::from_slice(&bytes)
        .map_err(|err| ApiError::bad_request(format!("invalid request body: {err}")))
}

/// A body that could not be read, in OpenAI's shape: too slow (408), over the gateway's budget of
/// bodies in memory (503, retry shortly), or a broken connection (400).
fn body_error(err: &axum::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(error) = source {
        if let Some(body) = error.downcast_ref::<BodyError>() {
            return match body {
                BodyError::TooSlow { .. } => ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "invalid_request_error",
                    Some("request_timeout"),
                    body.to_string(),
                ),
                BodyError::OverBudget => {
                    let mut api = ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "service_unavailable",
                        Some("overloaded"),
                        body.to_string(),
                    );
                    api.retry_after = Some(std::time::Duration::from_secs(1));
                    api
                }
                BodyError::Read(_) => ApiError::bad_request(body.to_string()),
            };
        }
        source = error.source();
    }
    ApiError::bad_request(format!("cannot read the request body: {err}"))
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

/// The longest `metadata.trace_id` the gateway accepts: it comes back in a response header.
pub(crate) const MAX_TRACE_ID_CHARS: usize = 128;

/// Caller values that come back in response headers (`metadata.trace_id`, as `x-mirror-trace-id`)
/// must be short visible ASCII; anything else is refused with 400 rather than truncated, so a
/// trace id is never silently changed.
pub(super) fn check_echoed(metadata: Option<&Map<String, Value>>) -> Result<(), ApiError> {
    let Some(Value::String(trace_id)) = metadata.and_then(|m| m.get(TRACE_ID_METADATA_KEY)) else {
        return Ok(());
    };
    let visible = trace_id.bytes().all(|byte| byte.is_ascii_graphic());
    if trace_id.len() <= MAX_TRACE_ID_CHARS && visible {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        Some("invalid_trace_id"),
        format!(
            "`metadata.trace_id` must be at most {MAX_TRACE_ID_CHARS} visible ASCII characters \
             (no spaces or control characters); got {} bytes",
            trace_id.len()
        ),
    ))
}

/// Ids for a response refused before a call existed, so that every response carries them.
pub(super) fn fresh_ids() -> (String, String) {
    (CallId::new().to_string(), TraceId::new().to_string())
}

/// `x-mirror-cache: hit|miss` when the response cache applied, and on a hit LiteLLM's
/// `x-litellm-cache-key` (which LiteLLM sends only on hits).
pub(super) fn with_cache_headers(mut response: Response, cache: &CacheStatus) -> Response {
    let headers = response.headers_mut();
    match cache {
        CacheStatus::Hit { key } => {
            headers.insert(CACHE_HEADER, HeaderValue::from_static("hit"));
            if let Ok(value) = HeaderValue::from_str(key) {
                headers.insert(CACHE_KEY_HEADER, value);
            }
        }
        CacheStatus::Miss => {
            headers.insert(CACHE_HEADER, HeaderValue::from_static("miss"));
        }
        _ => {}
    }
    response
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
    body: RequestBody,
) -> Response {
    chat_for(state, headers, body, None).await
}

/// `POST /openai/deployments/{deployment}/chat/completions`: Azure's path; the deployment names the
/// model group.
pub(crate) async fn azure_chat(
    State(state): SharedState,
    deployment: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: RequestBody,
) -> Response {
    match deployment {
        Ok(Path(deployment)) => chat_for(state, headers, body, Some(deployment)).await,
        Err(rejection) => path_error(&state, &rejection),
    }
}

/// A path parameter that cannot be read (not UTF-8 once percent-decoded): 400 in OpenAI's shape.
fn path_error(state: &AppState, rejection: &PathRejection) -> Response {
    let error = ApiError::bad_request(format!(
        "invalid deployment in the path: {}",
        rejection.body_text()
    ));
    finish(
        state,
        with_ids(error.into_response(), &fresh_ids()),
        Instant::now(),
        Default::default(),
    )
}

async fn chat_for(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: RequestBody,
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
    if let Err(error) = check_echoed(request.metadata.as_ref()) {
        return refuse(error);
    }
    apply_silent_header(&headers, &mut request.metadata);
    let mut meta = CallMeta::for_request(&request.model, request.metadata.as_ref());
    apply_traceparent(&headers, request.metadata.as_ref(), &mut meta);
    let ids = (meta.call_id.to_string(), meta.trace_id.to_string());
    let routed_started = Instant::now();
    if request.is_stream() {
        let result = state.router().chat_stream_with_meta(request, meta).await;
        let routed = routed_started.elapsed();
        let response = match result {
            Ok(routed) => sse_response(routed.response, state.deadline.subscribe()),
            Err(error) => ApiError::from_router(&error).into_response(),
        };
        return finish(&state, with_ids(response, &ids), started, routed);
    }
    let result = state.router().chat_with_meta(request, meta).await;
    let routed = routed_started.elapsed();
    let response = match result {
        Ok(routed) => with_cache_headers(json_response(&routed.response), &routed.cache),
        Err(error) => ApiError::from_router(&error).into_response(),
    };
    finish(&state, with_ids(response, &ids), started, routed)
}

pub(super) fn parse_with_model<T>(body: RequestBody, model: Option<String>) -> Result<T, ApiError>
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

pub(crate) fn json_response<T: serde::Serialize>(value: &T) -> Response {
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
/// failure mid-stream becomes a `data: {"error": ...}` event and ends the stream, and so does the
/// shutdown deadline (the dropped stream records its call as `cancelled`).
///
/// A chunk that an upstream sent, unchanged, is relayed as its bytes; one built in process (the
/// mock, a stream translated from Messages) is serialised.
fn sse_response(
    stream: mirror_router::ChatStream,
    deadline: tokio::sync::watch::Receiver<bool>,
) -> Response {
    let error_event = |api: ApiError| {
        let body = serde_json::to_string(&api.body).unwrap_or_else(|_| {
            r#"{"error":{"message":"stream failed","type":"upstream_error"}}"#.to_owned()
        });
        Bytes::from(format!("data: {body}\n\n"))
    };
    let events = futures::stream::unfold(Some((stream, deadline)), move |state| async move {
        let (mut stream, mut deadline) = state?;
        let next = tokio::select! {
            biased;
            next = stream.next_relayed() => next,
            _ = deadline.wait_for(|reached| *reached) => {
                drop(stream);
                let api = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    Some("shutting_down"),
                    "the gateway is shutting down; the stream was cut at `shutdown_timeout`",
                );
                return Some((Ok::<Bytes, Infallible>(error_event(api)), None));
            }
        };
        match next {
            Some(Ok(chunk)) => {
                let mut event = Vec::with_capacity(chunk.raw().map_or(256, |raw| raw.len() + 8));
                event.extend_from_slice(b"data: ");
                match chunk.raw() {
                    Some(raw) => event.extend_from_slice(raw),
                    None => {
                        if serde_json::to_writer(&mut event, &*chunk).is_err() {
                            return None;
                        }
                    }
                }
                event.extend_from_slice(b"\n\n");
                Some((Ok(Bytes::from(event)), Some((stream, deadline))))
            }
            Some(Err(error)) => Some((Ok(error_event(ApiError::from_router(&error))), None)),
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
    body: RequestBody,
) -> Response {
    embeddings_for(state, headers, body, None).await
}

/// `POST /openai/deployments/{deployment}/embeddings`.
pub(crate) async fn azure_embeddings(
    State(state): SharedState,
    deployment: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: RequestBody,
) -> Response {
    match deployment {
        Ok(Path(deployment)) => embeddings_for(state, headers, body, Some(deployment)).await,
        Err(rejection) => path_error(&state, &rejection),
    }
}

async fn embeddings_for(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: RequestBody,
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
    if let Err(error) = check_echoed(request.metadata.as_ref()) {
        let response = with_ids(error.into_response(), &fresh_ids());
        return finish(&state, response, started, Default::default());
    }
    apply_silent_header(&headers, &mut request.metadata);
    let mut meta = CallMeta::for_request(&request.model, request.metadata.as_ref());
    apply_traceparent(&headers, request.metadata.as_ref(), &mut meta);
    let ids = (meta.call_id.to_string(), meta.trace_id.to_string());
    let routed_started = Instant::now();
    let result = state.router().embeddings_with_meta(request, meta).await;
    let routed = routed_started.elapsed();
    let response = match result {
        Ok(routed) => with_cache_headers(json_response(&routed.response), &routed.cache),
        Err(error) => ApiError::from_router(&error).into_response(),
    };
    finish(&state, with_ids(response, &ids), started, routed)
}

/// `GET /v1/models`: the model groups. Wildcard groups (`*`, `openai/*`) are patterns, not models a
/// client can pick from a list, so they are left out, as LiteLLM does.
pub(crate) async fn models(State(state): SharedState) -> Response {
    let data: Vec<Value> = state
        .router()
        .model_groups()
        .into_iter()
        .filter(|group| !group.contains('*'))
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
        "mirroring": state.router().is_mirroring(),
        "silent": state.router().mirror_stats(),
        "shared_state": state.router().shared_state_stats(),
        "request_body_bytes_in_flight": state.bodies.used(),
    });
    let mut response = json_response(&body);
    if shutting_down {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    response
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(state): SharedState) -> Response {
    let mut text = state.metrics.render(
        &state.router().mirror_stats(),
        &state.writer.stats(),
        &state.router().shared_state_stats(),
    );
    super::metrics::render_cache(&mut text, &state.router().cache_stats());
    super::metrics::render_targets(&mut text, &state.router().mirror_controls());
    state.clients.render(&mut text, &state.bodies);
    #[cfg(feature = "ui")]
    state.page.render(&mut text);
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
    let error = ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("unknown_url"),
        format!(
            "unknown path `{} {}`",
            request.method(),
            request.uri().path()
        ),
    );
    if super::messages::is_messages_path(request.uri().path()) {
        return super::messages::anthropic_error(&error);
    }
    error.into_response()
}

/// The last word on every answer: an error without OpenAI's JSON shape (axum's 405, an extractor's
/// plain-text rejection, the panic handler's answer) gets it, and an answer without ids gets fresh
/// ones, so every response carries `x-mirror-call-id` and `x-mirror-trace-id`.
pub(crate) async fn error_shape(request: Request, next: Next) -> Response {
    let anthropic = super::messages::is_messages_path(request.uri().path());
    let response = next.run(request).await;
    let mut response = if response.status().is_client_error() || response.status().is_server_error()
    {
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"));
        if is_json {
            response
        } else {
            reshape(response, anthropic).await
        }
    } else {
        response
    };
    if !response.headers().contains_key(CALL_ID_HEADER) {
        response = with_ids(response, &fresh_ids());
    }
    response
}

/// An error answer with a plain body, in OpenAI's shape (Anthropic's on the Messages paths); its
/// text (at most 1 KiB) is the message.
async fn reshape(response: Response, anthropic: bool) -> Response {
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 1024)
        .await
        .ok()
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| {
            parts
                .status
                .canonical_reason()
                .unwrap_or("error")
                .to_ascii_lowercase()
        });
    let (kind, code) = match parts.status {
        StatusCode::METHOD_NOT_ALLOWED => ("invalid_request_error", Some("method_not_allowed")),
        status if status.is_server_error() => ("internal_error", None),
        _ => ("invalid_request_error", None),
    };
    let api = ApiError::new(parts.status, kind, code, text);
    let mut error = if anthropic {
        super::messages::anthropic_error(&api)
    } else {
        api.into_response()
    };
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(value) = parts.headers.get(&name) {
            error.headers_mut().insert(name, value.clone());
        }
    }
    error
}

/// A handler panicked: answer 500 in OpenAI's shape instead of dropping the connection.
pub(crate) fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let body = ErrorBody::new("internal error", "internal_error", None);
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}

/// A caller's W3C `traceparent` (`00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`) gives the
/// call's trace id, so its spans and records join the caller's trace; `metadata.trace_id`, LiteLLM's
/// way, wins when both are sent. A malformed header is ignored, as the W3C spec asks.
pub(super) fn apply_traceparent(
    headers: &HeaderMap,
    metadata: Option<&Map<String, Value>>,
    meta: &mut CallMeta,
) {
    if metadata.is_some_and(|m| m.contains_key(mirror_core::TRACE_ID_METADATA_KEY)) {
        return;
    }
    let Some(value) = headers.get("traceparent").and_then(|v| v.to_str().ok()) else {
        return;
    };
    if let Some(trace_id) = traceparent_trace_id(value) {
        meta.trace_id = TraceId::from(trace_id);
    }
}

/// The trace id of a valid `traceparent` value, in lowercase.
fn traceparent_trace_id(value: &str) -> Option<String> {
    let mut parts = value.trim().split('-');
    let (version, trace_id, span_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let is_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = is_hex(version, 2)
        && version != "ff"
        // Version 00 has exactly four fields; later versions may add more.
        && (version != "00" || parts.next().is_none())
        && is_hex(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && is_hex(span_id, 16)
        && span_id.bytes().any(|b| b != b'0')
        && is_hex(flags, 2);
    valid.then(|| trace_id.to_owned())
}

#[cfg(test)]
mod traceparent_tests {
    use super::traceparent_trace_id;

    #[test]
    fn traceparent() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        for (value, want) in [
            (format!("00-{id}-00f067aa0ba902b7-01"), Some(id)),
            (format!("01-{id}-00f067aa0ba902b7-01-extra"), Some(id)),
            (format!("00-{id}-00f067aa0ba902b7-01-extra"), None),
            (format!("ff-{id}-00f067aa0ba902b7-01"), None),
            (format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)), None),
            (format!("00-{id}-0000000000000000-01"), None),
            (
                format!("00-{}-00f067aa0ba902b7-01", id.to_uppercase()),
                None,
            ),
            ("garbage".to_owned(), None),
        ] {
            assert_eq!(traceparent_trace_id(&value).as_deref(), want, "{value}");
        }
    }
}
