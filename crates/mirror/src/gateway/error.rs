//! Errors as the gateway answers them: OpenAI's JSON shape with the right status.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mirror_core::ErrorBody;
use mirror_providers::ProviderError;
use mirror_router::RouterError;

/// An error answer: status, OpenAI error body, and an optional `Retry-After`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) body: Box<ErrorBody>,
    pub(crate) retry_after: Option<Duration>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        kind: &str,
        code: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            body: Box::new(ErrorBody::new(message, kind, code)),
            retry_after: None,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            message,
        )
    }

    pub(crate) fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            Some("invalid_api_key"),
            "missing or invalid API key: send `Authorization: Bearer <key>`, an `api-key` or an \
             `x-api-key` header",
        )
    }

    /// Maps a router error to the status a client of OpenAI expects.
    pub(crate) fn from_router(error: &RouterError) -> Self {
        let message = mirror_core::error_chain(error);
        let mut api = match error {
            RouterError::UnknownModel { .. } => ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                Some("model_not_found"),
                message,
            ),
            RouterError::NoHealthyDeployment { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                Some("no_healthy_deployment"),
                message,
            ),
            RouterError::Provider { source, .. } => ApiError::from_provider(source, message),
            RouterError::InvalidCacheControl { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("invalid_cache_control"),
                message,
            ),
            RouterError::ShuttingDown | RouterError::Cancelled => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                None,
                message,
            ),
            // The gateway never calls the blocking API; should it ever, it is our bug.
            _ => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                None,
                message,
            ),
        };
        api.retry_after = error.retry_after();
        api
    }

    fn from_provider(error: &ProviderError, message: String) -> Self {
        let status = |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
        match error {
            ProviderError::BadRequest {
                status: code,
                code: provider_code,
                ..
            } => ApiError::new(
                status(*code),
                "invalid_request_error",
                provider_code.as_deref(),
                message,
            ),
            ProviderError::Auth { status: code, .. } => {
                ApiError::new(status(*code), "authentication_error", None, message)
            }
            ProviderError::NotFound { .. } => ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                Some("model_not_found"),
                message,
            ),
            ProviderError::RateLimited { .. } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                Some("rate_limit_exceeded"),
                message,
            ),
            ProviderError::QuotaExhausted { .. } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                Some("insufficient_quota"),
                message,
            ),
            ProviderError::ContextWindowExceeded { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("context_length_exceeded"),
                message,
            ),
            ProviderError::ContentPolicy { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("content_filter"),
                message,
            ),
            ProviderError::Timeout { .. } => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                Some("timeout"),
                message,
            ),
            ProviderError::Unsupported { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                message,
            ),
            ProviderError::Config { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                Some("deployment_misconfigured"),
                message,
            ),
            _ => ApiError::new(StatusCode::BAD_GATEWAY, "upstream_error", None, message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(*self.body)).into_response();
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs_f64().ceil().max(1.0);
            if let Ok(value) = HeaderValue::from_str(&format!("{seconds:.0}")) {
                response.headers_mut().insert("retry-after", value);
            }
        }
        response
    }
}
