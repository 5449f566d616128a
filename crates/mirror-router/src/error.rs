//! Errors of configuration and of routed calls.

use std::time::Duration;

use mirror_providers::ProviderError;

/// A configuration that cannot be used. Says what and where: file, line and column for parse errors,
/// the field path and deployment for validation errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be parsed, or a field has the wrong type or name.
    #[error("{origin}: {message}")]
    Parse {
        /// The file name, or `<inline>`.
        origin: String,
        /// What is wrong, with the line and column and, for a misspelled key, the nearest valid name.
        message: String,
    },
    /// The configuration parsed but is not valid.
    #[error("{origin}: {location}: {message}{}", position.map(|p| format!(" at {p}")).unwrap_or_default())]
    Invalid {
        /// The file name, or `<builder>`.
        origin: String,
        /// Where: a field path such as ``model_list[2] (`gpt-4`).litellm_params.silent_model``.
        location: String,
        /// What is wrong.
        message: String,
        /// The line and column of the value in the source text, when the source is known
        /// ([`ConfigError::with_position_in`]).
        position: Option<Position>,
    },
    /// The router was built outside a Tokio runtime.
    #[error(
        "the router must be built inside a Tokio runtime; use `BlockingRouter` from plain threads"
    )]
    NoRuntime,
}

/// A place in a configuration file, 1-based, as serde_yaml_ng counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The line.
    pub line: usize,
    /// The column.
    pub column: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

impl ConfigError {
    /// Adds the line and column of an [`ConfigError::Invalid`] error's field, found in `text` (the
    /// YAML or JSON the configuration was parsed from). Other errors, and paths not found in `text`
    /// (a value that was defaulted), are returned unchanged.
    #[must_use]
    pub fn with_position_in(self, text: &str) -> Self {
        match self {
            ConfigError::Invalid {
                origin,
                location,
                message,
                position: None,
            } => {
                let position = crate::locate::locate(text, &location);
                ConfigError::Invalid {
                    origin,
                    location,
                    message,
                    position,
                }
            }
            other => other,
        }
    }
}

/// Why a routed call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// No model group (or alias) has this name.
    #[error("no model group named `{model}`{}", suggestion.as_ref().map(|s| format!(", did you mean `{s}`?")).unwrap_or_default())]
    UnknownModel {
        /// The name the caller asked for.
        model: String,
        /// The nearest known group name.
        suggestion: Option<String>,
    },
    /// Every deployment of the group is cooling down or over its rate limit.
    #[error("no healthy deployment in model group `{group}`; retry after {}s", retry_after.as_secs_f64().ceil())]
    NoHealthyDeployment {
        /// The model group.
        group: String,
        /// When the first deployment becomes available again.
        retry_after: Duration,
    },
    /// The provider call failed after retries and fallbacks.
    #[error(
        "model group `{group}`, deployment `{deployment}`: call failed after {attempts} attempt(s)"
    )]
    Provider {
        /// The last model group tried.
        group: String,
        /// The last deployment tried.
        deployment: String,
        /// Attempts made in all.
        attempts: u32,
        /// The last provider error.
        #[source]
        source: ProviderError,
    },
    /// A blocking call was made on a thread that runs a Tokio runtime, where it would deadlock.
    #[error(
        "a blocking router method was called inside a Tokio runtime; use the async `Router` there"
    )]
    BlockingInRuntime,
    /// The router is shutting down.
    #[error("the router is shutting down")]
    ShuttingDown,
    /// The caller went away before the call finished: its future was dropped (a client that hung
    /// up, a handler cancelled), a stream was dropped unfinished, or a silent call was cut at
    /// shutdown. Recorded with status `cancelled`.
    #[error("the caller went away before the call finished")]
    Cancelled,
    /// The request's `cache` field (LiteLLM's per-request cache controls) is not what LiteLLM takes.
    #[error("invalid request: {message}")]
    InvalidCacheControl {
        /// What is wrong, naming the field.
        message: String,
    },
    /// A provider (or the router) panicked during the call: a bug. Recorded with status `failure`
    /// and class `panic`; the panic itself goes on unwinding to the caller.
    #[error("the call panicked")]
    Panicked,
}

impl RouterError {
    /// The provider error behind this one, if any.
    pub fn provider_error(&self) -> Option<&ProviderError> {
        match self {
            RouterError::Provider { source, .. } => Some(source),
            RouterError::UnknownModel { .. }
            | RouterError::NoHealthyDeployment { .. }
            | RouterError::BlockingInRuntime
            | RouterError::ShuttingDown
            | RouterError::Cancelled
            | RouterError::InvalidCacheControl { .. }
            | RouterError::Panicked => None,
        }
    }

    /// A short, stable name of the error kind, for records, metrics and logs.
    pub fn class(&self) -> &'static str {
        match self {
            RouterError::UnknownModel { .. } => "unknown_model",
            RouterError::NoHealthyDeployment { .. } => "no_healthy_deployment",
            RouterError::Provider { source, .. } => source.class(),
            RouterError::BlockingInRuntime => "blocking_in_runtime",
            RouterError::ShuttingDown => "shutting_down",
            RouterError::Cancelled => "cancelled",
            RouterError::Panicked => "panic",
            RouterError::InvalidCacheControl { .. } => "invalid_request",
        }
    }

    /// How long the caller should wait before trying again, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RouterError::NoHealthyDeployment { retry_after, .. } => Some(*retry_after),
            RouterError::Provider { source, .. } => source.retry_after(),
            RouterError::UnknownModel { .. }
            | RouterError::BlockingInRuntime
            | RouterError::ShuttingDown
            | RouterError::Cancelled
            | RouterError::InvalidCacheControl { .. }
            | RouterError::Panicked => None,
        }
    }
}

/// The nearest name to `input` among `candidates`, if it is close enough to be a likely typo.
pub(crate) fn nearest<'a, I>(input: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(input, candidate), candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate.to_owned())
}
