//! The one error type of provider calls, with the kinds the router acts on.

use std::time::Duration;

/// A boxed foreign error, so reqwest types stay out of our API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a provider call failed.
///
/// Messages never hold a key or an auth header; URLs are reported without credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The provider refused the request as malformed (400, 409, 422).
    #[error("bad request ({status}): {message}")]
    BadRequest {
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
        /// The provider's error code, if any.
        code: Option<String>,
    },
    /// Authentication or permission failed (401, 403).
    #[error("authentication failed ({status}): {message}")]
    Auth {
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The model or deployment does not exist at the provider (404).
    #[error("not found: {message}")]
    NotFound {
        /// The provider's message.
        message: String,
    },
    /// The provider is rate limiting (429).
    #[error("rate limited: {message}")]
    RateLimited {
        /// The provider's message.
        message: String,
        /// How long the provider asked us to wait (`retry-after-ms` or `Retry-After`).
        retry_after: Option<Duration>,
    },
    /// The account's quota is exhausted (429 `insufficient_quota`): retrying will not help.
    #[error("quota exhausted: {message}")]
    QuotaExhausted {
        /// The provider's message.
        message: String,
    },
    /// The prompt does not fit the model's context window.
    #[error("context window exceeded: {message}")]
    ContextWindowExceeded {
        /// The provider's message.
        message: String,
    },
    /// A content filter refused the prompt (Azure's `content_filter`).
    #[error("content policy violation: {message}")]
    ContentPolicy {
        /// The provider's message.
        message: String,
    },
    /// No answer (or no next chunk, for a stream) within the timeout.
    #[error("timed out after {}ms", after.as_millis())]
    Timeout {
        /// The timeout that expired.
        after: Duration,
    },
    /// The provider failed (5xx).
    #[error("upstream error ({status}): {message}")]
    Upstream {
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
        /// How long the provider asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The connection failed or broke (refused, reset, dropped mid-stream).
    #[error("transport error: {message}")]
    Transport {
        /// What failed, without the URL's credentials.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The provider answered something that is not what the API promises.
    #[error("malformed upstream response: {message}; body starts with {excerpt:?}")]
    MalformedResponse {
        /// What was wrong.
        message: String,
        /// The first bytes of the body.
        excerpt: String,
    },
    /// The answer is larger than the deployment's limit (`max_response_bytes` for a whole body,
    /// `max_stream_event_bytes` for one server-sent event, `max_stream_bytes` for a whole stream).
    /// Reading stopped at the limit: the answer was never held whole.
    #[error("upstream response too large: the {what} exceeds the limit of {limit} bytes")]
    ResponseTooLarge {
        /// What was too large: `body`, `stream event` or `stream`.
        what: &'static str,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The deployment cannot be called as configured (missing key, base URL or API version).
    #[error("deployment misconfigured: {message}")]
    Config {
        /// What is missing.
        message: String,
    },
    /// The provider does not support this operation (e.g. embeddings on a chat-only provider).
    #[error("operation not supported by provider `{provider}`: {operation}")]
    Unsupported {
        /// The provider.
        provider: String,
        /// The operation.
        operation: &'static str,
    },
}

impl ProviderError {
    /// Whether the same request may succeed if tried again (on this or another deployment).
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::RateLimited { .. }
            | ProviderError::Timeout { .. }
            | ProviderError::Upstream { .. }
            | ProviderError::Transport { .. }
            | ProviderError::MalformedResponse { .. } => true,
            ProviderError::BadRequest { .. }
            | ProviderError::Auth { .. }
            | ProviderError::NotFound { .. }
            | ProviderError::QuotaExhausted { .. }
            | ProviderError::ContextWindowExceeded { .. }
            | ProviderError::ContentPolicy { .. }
            | ProviderError::Config { .. }
            | ProviderError::Unsupported { .. }
            // The same request would most likely get the same answer: reading it again only
            // costs the bandwidth and memory the limit is there to save.
            | ProviderError::ResponseTooLarge { .. } => false,
        }
    }

    /// Whether this failure says something about the deployment's health, so it counts towards a
    /// cooldown. A caller's bad request does not; a rate limit, an outage or a bad key does.
    pub fn counts_against_deployment(&self) -> bool {
        match self {
            ProviderError::RateLimited { .. }
            | ProviderError::QuotaExhausted { .. }
            | ProviderError::Timeout { .. }
            | ProviderError::Upstream { .. }
            | ProviderError::Transport { .. }
            | ProviderError::MalformedResponse { .. }
            | ProviderError::ResponseTooLarge { .. }
            | ProviderError::Auth { .. }
            | ProviderError::NotFound { .. }
            | ProviderError::Config { .. } => true,
            ProviderError::BadRequest { .. }
            | ProviderError::ContextWindowExceeded { .. }
            | ProviderError::ContentPolicy { .. }
            | ProviderError::Unsupported { .. } => false,
        }
    }

    /// How long the provider asked us to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after, .. }
            | ProviderError::Upstream { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short, stable name of the error kind, for records, metrics and logs.
    pub fn class(&self) -> &'static str {
        match self {
            ProviderError::BadRequest { .. } => "bad_request",
            ProviderError::Auth { .. } => "auth",
            ProviderError::NotFound { .. } => "not_found",
            ProviderError::RateLimited { .. } => "rate_limited",
            ProviderError::QuotaExhausted { .. } => "quota_exhausted",
            ProviderError::ContextWindowExceeded { .. } => "context_window_exceeded",
            ProviderError::ContentPolicy { .. } => "content_policy",
            ProviderError::Timeout { .. } => "timeout",
            ProviderError::Upstream { .. } => "upstream",
            ProviderError::Transport { .. } => "transport",
            ProviderError::MalformedResponse { .. } => "malformed_response",
            ProviderError::ResponseTooLarge { .. } => "response_too_large",
            ProviderError::Config { .. } => "config",
            ProviderError::Unsupported { .. } => "unsupported",
        }
    }

    /// The HTTP status the provider answered with, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::BadRequest { status, .. }
            | ProviderError::Auth { status, .. }
            | ProviderError::Upstream { status, .. } => Some(*status),
            ProviderError::NotFound { .. } => Some(404),
            ProviderError::RateLimited { .. } | ProviderError::QuotaExhausted { .. } => Some(429),
            ProviderError::ContextWindowExceeded { .. } | ProviderError::ContentPolicy { .. } => {
                Some(400)
            }
            ProviderError::Timeout { .. }
            | ProviderError::Transport { .. }
            | ProviderError::MalformedResponse { .. }
            | ProviderError::ResponseTooLarge { .. }
            | ProviderError::Config { .. }
            | ProviderError::Unsupported { .. } => None,
        }
    }
}
