//! The OpenAI error body, as providers send it and as the gateway answers.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A human-readable message.
    #[serde(default)]
    pub message: String,
    /// `invalid_request_error`, `rate_limit_error`, ... (Azure sends `null`).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The offending parameter, if any.
    #[serde(default)]
    pub param: Option<Value>,
    /// A machine-readable code such as `context_length_exceeded` or `content_filter` (some servers
    /// send a number).
    #[serde(default)]
    pub code: Option<Value>,
    /// Other fields (Azure's `innererror`, `status`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ErrorBody {
    /// An error body with a message, a type and an optional code.
    pub fn new(message: impl Into<String>, kind: &str, code: Option<&str>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                message: message.into(),
                kind: Some(kind.to_owned()),
                param: None,
                code: code.map(|code| Value::String(code.to_owned())),
                extra: Map::new(),
            },
        }
    }

    /// The code as a string, whether it was sent as a string or a number.
    pub fn code(&self) -> Option<String> {
        match self.error.code.as_ref()? {
            Value::String(code) => Some(code.clone()),
            Value::Number(code) => Some(code.to_string()),
            _ => None,
        }
    }
}

/// An error and its causes on one line, `a: b: c`, each level once: what records, logs, the
/// gateway's error messages and the command line show.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
