//! `SinkError`: why a sink could not write a batch.

use std::path::PathBuf;

/// A foreign error, kept as a source so its type stays out of our API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a sink could not write (part of) a batch.
///
/// The writer asks [`SinkError::is_retryable`] whether to try the batch again, and
/// [`SinkError::rejected_records`] how many records of a partly accepted batch were lost.
/// Messages never hold a key, an auth header or a URL with credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// A file could not be opened, written or renamed.
    #[error("cannot write log file `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A record could not be encoded.
    #[error("cannot encode a record")]
    Encode {
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// The request did not reach the server, or no answer came back in time.
    #[error("request to `{endpoint}` failed")]
    Transport {
        /// Scheme, host, port and path of the endpoint, without credentials or query.
        endpoint: String,
        /// The HTTP client's error.
        #[source]
        source: BoxError,
    },
    /// The server refused the whole request.
    #[error("`{endpoint}` answered {status}: {body}")]
    Status {
        /// Scheme, host, port and path of the endpoint, without credentials or query.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The server accepted the request but refused some of its records (Langfuse's 207 errors).
    #[error("{rejected} of {total} records were refused: {message}")]
    Rejected {
        /// Records refused; the others were written.
        rejected: usize,
        /// Records in the batch.
        total: usize,
        /// The first refusal's message.
        message: String,
    },
    /// A request could not be signed.
    #[error("cannot sign the request")]
    Sign {
        /// The signer's error.
        #[source]
        source: BoxError,
    },
    /// The sink or the writer is misconfigured.
    #[error("invalid logging configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
}

impl SinkError {
    /// Whether trying the same batch again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SinkError::Io { .. } | SinkError::Transport { .. } => true,
            SinkError::Status { status, .. } => *status == 408 || *status == 429 || 500 <= *status,
            SinkError::Encode { .. }
            | SinkError::Rejected { .. }
            | SinkError::Sign { .. }
            | SinkError::Config { .. } => false,
        }
    }

    /// How many records of the batch were lost, when the sink wrote the rest (`None`: all of them).
    pub fn rejected_records(&self) -> Option<usize> {
        match self {
            SinkError::Rejected { rejected, .. } => Some(*rejected),
            SinkError::Io { .. }
            | SinkError::Encode { .. }
            | SinkError::Transport { .. }
            | SinkError::Status { .. }
            | SinkError::Sign { .. }
            | SinkError::Config { .. } => None,
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        SinkError::Config {
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses() {
        let status = |status| SinkError::Status {
            endpoint: "http://127.0.0.1/x".into(),
            status,
            body: String::new(),
        };
        assert!(status(500).is_retryable());
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(status(408).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(!status(403).is_retryable());
        assert!(!SinkError::config("x").is_retryable());
        let rejected = SinkError::Rejected {
            rejected: 2,
            total: 5,
            message: "invalid".into(),
        };
        assert!(!rejected.is_retryable());
        assert_eq!(rejected.rejected_records(), Some(2));
        assert_eq!(rejected.to_string(), "2 of 5 records were refused: invalid");
    }
}
