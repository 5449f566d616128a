//! `LangfuseSink`: each call becomes a Langfuse generation.
//!
//! By default through Langfuse's OpenTelemetry endpoint (`POST {host}/api/public/otel/v1/traces`,
//! OTLP/HTTP with JSON encoding); optionally through the legacy batch endpoint
//! (`POST {host}/api/public/ingestion`).

mod legacy;
pub(crate) mod otel;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mirror_core::{CallRecord, CallStatus, RecordResponse, SecretString};
use reqwest::Url;
use serde_json::{json, Map, Value};

use crate::{http, LogSink, RetryPolicy, SinkError, SinkOptions};

/// Langfuse Cloud (EU), LiteLLM's default host.
pub const LANGFUSE_DEFAULT_HOST: &str = "https://cloud.langfuse.com";

/// The tag a silent copy's trace carries.
pub const SILENT_EXPERIMENT_TAG: &str = "silent-experiment";

/// Which Langfuse endpoint a [`LangfuseSink`] posts to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LangfuseMode {
    /// `POST {host}/api/public/otel/v1/traces`, one span per call (what current LiteLLM uses).
    #[default]
    Otel,
    /// `POST {host}/api/public/ingestion`, a `trace-create` and a `generation-create` per call.
    /// Langfuse marks it legacy; self-hosted v3 servers accept it.
    Legacy,
}

/// How to reach Langfuse.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LangfuseConfig {
    /// The project's public key (`pk-lf-...`), the Basic-auth user name.
    pub public_key: String,
    /// The project's secret key (`sk-lf-...`), the Basic-auth password.
    pub secret_key: SecretString,
    /// The base URL, e.g. `https://cloud.langfuse.com` or `http://localhost:3000`.
    pub host: String,
    /// Which endpoint to post to.
    pub mode: LangfuseMode,
    /// Timeout of one HTTP request (the Python SDK's default is 20 s).
    pub timeout: Duration,
    /// Langfuse's `environment` (lowercase letters, digits, `-` and `_`), when set.
    pub environment: Option<String>,
    /// An event larger than this has its input and output truncated (the SDK's 1 MB).
    pub max_event_bytes: usize,
    /// Requests stay under this size; a larger batch is split (Langfuse documents 3.5 MB).
    pub max_request_bytes: usize,
}

impl LangfuseConfig {
    /// A configuration for `host` with the given keys and defaults elsewhere.
    pub fn new(
        public_key: impl Into<String>,
        secret_key: SecretString,
        host: impl Into<String>,
    ) -> Self {
        LangfuseConfig {
            public_key: public_key.into(),
            secret_key,
            host: host.into(),
            mode: LangfuseMode::Otel,
            timeout: Duration::from_secs(20),
            environment: None,
            max_event_bytes: 1_000_000,
            max_request_bytes: 3_500_000,
        }
    }

    /// Reads the variables LiteLLM users set: `LANGFUSE_PUBLIC_KEY`, `LANGFUSE_SECRET_KEY`, and
    /// `LANGFUSE_OTEL_HOST` or `LANGFUSE_HOST` (default [`LANGFUSE_DEFAULT_HOST`]).
    ///
    /// # Errors
    ///
    /// Returns [`SinkError::Config`] naming a missing key variable.
    pub fn from_env() -> Result<Self, SinkError> {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let public_key = var("LANGFUSE_PUBLIC_KEY").ok_or_else(|| {
            SinkError::config("environment variable `LANGFUSE_PUBLIC_KEY` is not set")
        })?;
        let secret_key = var("LANGFUSE_SECRET_KEY").ok_or_else(|| {
            SinkError::config("environment variable `LANGFUSE_SECRET_KEY` is not set")
        })?;
        let host = var("LANGFUSE_OTEL_HOST")
            .or_else(|| var("LANGFUSE_HOST"))
            .unwrap_or_else(|| LANGFUSE_DEFAULT_HOST.to_owned());
        Ok(LangfuseConfig::new(
            public_key,
            SecretString::new(secret_key),
            host,
        ))
    }

    /// Sets [`LangfuseConfig::mode`].
    pub fn with_mode(mut self, mode: LangfuseMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets [`LangfuseConfig::environment`].
    pub fn with_environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// Sets [`LangfuseConfig::timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`LangfuseConfig::max_event_bytes`] and [`LangfuseConfig::max_request_bytes`].
    pub fn with_size_limits(mut self, max_event_bytes: usize, max_request_bytes: usize) -> Self {
        self.max_event_bytes = max_event_bytes;
        self.max_request_bytes = max_request_bytes;
        self
    }
}

/// Sends each call to Langfuse as a generation; a primary and its silent copies share one trace.
#[derive(Debug)]
pub struct LangfuseSink {
    client: reqwest::Client,
    url: Url,
    endpoint: String,
    public_key: String,
    secret_key: SecretString,
    mode: LangfuseMode,
    environment: Option<String>,
    max_event_bytes: usize,
    max_request_bytes: usize,
}

impl LangfuseSink {
    /// A sink for `config`.
    ///
    /// # Errors
    ///
    /// Returns [`SinkError::Config`] when the host is not an http(s) URL, a key is empty, or the HTTP
    /// client cannot be built.
    pub fn new(config: LangfuseConfig) -> Result<Self, SinkError> {
        if config.public_key.is_empty() || config.secret_key.expose().is_empty() {
            return Err(SinkError::config(
                "the Langfuse public and secret keys must be set",
            ));
        }
        let base = http::parse_url("the Langfuse host", config.host.trim_end_matches('/'))?;
        let path = match config.mode {
            LangfuseMode::Otel => "api/public/otel/v1/traces",
            LangfuseMode::Legacy => "api/public/ingestion",
        };
        let mut base_path = base.path().trim_end_matches('/').to_owned();
        // LiteLLM documents `LANGFUSE_OTEL_HOST` both with and without the OTel path.
        for suffix in ["/api/public/otel/v1/traces", "/api/public/otel"] {
            if let Some(stripped) = base_path.strip_suffix(suffix) {
                base_path = stripped.to_owned();
                break;
            }
        }
        let mut url = base;
        url.set_path(&format!("{base_path}/{path}"));
        Ok(LangfuseSink {
            client: http::client(config.timeout)?,
            endpoint: http::display_endpoint(&url),
            url,
            public_key: config.public_key,
            secret_key: config.secret_key,
            mode: config.mode,
            environment: config.environment,
            max_event_bytes: config.max_event_bytes.max(1024),
            max_request_bytes: config.max_request_bytes.max(1024),
        })
    }

    /// The URL records are posted to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn post(&self, body: Vec<u8>) -> reqwest::RequestBuilder {
        let request = self
            .client
            .post(self.url.clone())
            .basic_auth(&self.public_key, Some(self.secret_key.expose()))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        match self.mode {
            LangfuseMode::Otel => request.header("x-langfuse-ingestion-version", "4"),
            LangfuseMode::Legacy => request,
        }
    }
}

#[async_trait]
impl LogSink for LangfuseSink {
    fn name(&self) -> &str {
        "langfuse"
    }

    async fn write(&self, batch: &[Arc<CallRecord>]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        match self.mode {
            LangfuseMode::Otel => otel::export(self, batch).await,
            LangfuseMode::Legacy => legacy::ingest(self, batch).await,
        }
    }

    /// Langfuse's SDK defaults: 15 events or 1 s (LiteLLM's flush interval), 3 retries.
    fn default_options(&self) -> SinkOptions {
        SinkOptions::default()
            .with_batch_size(15)
            .with_flush_interval(Duration::from_secs(1))
            .with_retry(RetryPolicy::new(
                4,
                Duration::from_millis(500),
                Duration::from_secs(20),
                Duration::from_secs(300),
            ))
    }
}

/// The generation's input, as LiteLLM sends it: `{"messages": [...]}`.
fn input(record: &CallRecord) -> Option<Value> {
    let messages = record.messages.as_ref()?;
    Some(json!({ "messages": messages }))
}

/// The generation's output: the first choice's message, as LiteLLM sends it; a Responses call's
/// `output` items; nothing for embeddings.
fn output(record: &CallRecord) -> Option<Value> {
    match record.response.as_ref()? {
        RecordResponse::Chat(response) => {
            serde_json::to_value(&response.choices.first()?.message).ok()
        }
        RecordResponse::Responses(response) => response.extra.get("output").cloned(),
        RecordResponse::Embeddings(_) => None,
    }
}

/// What the generation's metadata holds: pairing, attribution, deployment, and the caller's
/// request metadata.
fn observation_metadata(record: &CallRecord) -> Map<String, Value> {
    let mut metadata = Map::new();
    let meta = &record.metadata;
    metadata.insert(
        "is_silent_experiment".into(),
        meta.is_silent_experiment.into(),
    );
    if let Some(mirror_of) = meta.mirror_of {
        metadata.insert("mirror_of".into(), mirror_of.to_string().into());
    }
    metadata.insert(
        "spend".into(),
        serde_json::to_value(meta.spend).unwrap_or(Value::Null),
    );
    metadata.insert("attempts".into(), meta.attempts.into());
    if !meta.fallbacks_tried.is_empty() {
        metadata.insert("fallbacks_tried".into(), json!(meta.fallbacks_tried));
    }
    if meta.cache_hit {
        metadata.insert("cache_hit".into(), true.into());
    }
    metadata.insert("litellm_call_id".into(), record.call_id.to_string().into());
    metadata.insert("trace_id".into(), record.trace_id.as_str().into());
    metadata.insert("response_id".into(), record.id.clone().into());
    metadata.insert("model_group".into(), record.model_group.clone().into());
    metadata.insert("model_id".into(), record.model_id.clone().into());
    metadata.insert("api_base".into(), record.api_base.clone().into());
    metadata.insert(
        "custom_llm_provider".into(),
        record.custom_llm_provider.clone().into(),
    );
    metadata.insert("stream".into(), record.stream.into());
    metadata.insert("litellm_response_cost".into(), json!(record.response_cost));
    if let Some(info) = &record.error_information {
        metadata.insert("error_class".into(), info.error_class.clone().into());
        if let Some(code) = &info.error_code {
            metadata.insert("error_code".into(), code.clone().into());
        }
    }
    metadata.insert(
        "requester_metadata".into(),
        Value::Object(meta.requester_metadata.clone()),
    );
    metadata
}

/// The trace's tags: the request's, plus [`SILENT_EXPERIMENT_TAG`] on a silent copy.
fn tags(record: &CallRecord) -> Vec<String> {
    let mut tags = record.request_tags.clone();
    if record.is_silent() && !tags.iter().any(|tag| tag == SILENT_EXPERIMENT_TAG) {
        tags.push(SILENT_EXPERIMENT_TAG.to_owned());
    }
    tags
}

/// LiteLLM's `session_id` request metadata, when a string.
fn session_id(record: &CallRecord) -> Option<&str> {
    record
        .metadata
        .requester_metadata
        .get("session_id")
        .and_then(Value::as_str)
}

/// The observation's name: `mirror-acompletion`, or `mirror-acompletion-silent` for a silent copy.
fn observation_name(record: &CallRecord) -> String {
    let call_type = serde_json::to_value(record.call_type)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    if record.is_silent() {
        format!("mirror-{call_type}-silent")
    } else {
        format!("mirror-{call_type}")
    }
}

/// The trace's name, set by the primary only: `mirror-acompletion`.
fn trace_name(record: &CallRecord) -> String {
    let call_type = serde_json::to_value(record.call_type)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    format!("mirror-{call_type}")
}

fn is_failure(record: &CallRecord) -> bool {
    record.status == CallStatus::Failure
}

/// The status message of a failed call.
fn status_message(record: &CallRecord) -> Option<String> {
    if !is_failure(record) {
        return None;
    }
    record
        .error_str
        .clone()
        .or_else(|| {
            record
                .error_information
                .as_ref()
                .map(|i| i.error_message.clone())
        })
        .or_else(|| Some("call failed".to_owned()))
}

/// Input and output, cut so that an event stays under `max_event_bytes`.
fn bounded_content(record: &CallRecord, max_event_bytes: usize) -> (Option<Value>, Option<Value>) {
    let input = input(record);
    let output = output(record);
    let size = |value: &Option<Value>| {
        value
            .as_ref()
            .and_then(|v| serde_json::to_vec(v).ok())
            .map_or(0, |v| v.len())
    };
    let content_bytes = size(&input) + size(&output);
    // The rest of an event is a few kilobytes at most; keep the content well under the limit.
    let budget = max_event_bytes / 2;
    if content_bytes <= budget {
        return (input, output);
    }
    let cut = |value: Option<Value>, share: usize| {
        value.map(|value| {
            let text = value.to_string();
            let mut end = share.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            Value::String(format!(
                "{}... [truncated by mirror: {} of {} bytes kept]",
                &text[..end],
                end,
                text.len()
            ))
        })
    };
    (cut(input, budget / 2), cut(output, budget / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_env_reads_litellm_variables_and_hides_the_secret() {
        std::env::set_var("LANGFUSE_PUBLIC_KEY", "pk-lf-test");
        std::env::set_var("LANGFUSE_SECRET_KEY", "sk-lf-very-secret");
        std::env::set_var("LANGFUSE_HOST", "http://langfuse.local:3000/");
        std::env::remove_var("LANGFUSE_OTEL_HOST");
        let config = LangfuseConfig::from_env().unwrap();
        assert_eq!(config.public_key, "pk-lf-test");
        assert_eq!(config.host, "http://langfuse.local:3000/");
        assert!(!format!("{config:?}").contains("very-secret"));

        let sink = LangfuseSink::new(config.clone()).unwrap();
        assert_eq!(
            sink.endpoint(),
            "http://langfuse.local:3000/api/public/otel/v1/traces"
        );
        assert!(!format!("{sink:?}").contains("very-secret"));
        let legacy = LangfuseSink::new(config.with_mode(LangfuseMode::Legacy)).unwrap();
        assert_eq!(
            legacy.endpoint(),
            "http://langfuse.local:3000/api/public/ingestion"
        );

        std::env::set_var("LANGFUSE_OTEL_HOST", "https://otel.example/api/public/otel");
        let config = LangfuseConfig::from_env().unwrap();
        let sink = LangfuseSink::new(config).unwrap();
        assert_eq!(
            sink.endpoint(),
            "https://otel.example/api/public/otel/v1/traces"
        );

        std::env::remove_var("LANGFUSE_SECRET_KEY");
        let err = LangfuseConfig::from_env().unwrap_err();
        assert!(err.to_string().contains("LANGFUSE_SECRET_KEY"), "{err}");
        std::env::remove_var("LANGFUSE_PUBLIC_KEY");
        std::env::remove_var("LANGFUSE_HOST");
        std::env::remove_var("LANGFUSE_OTEL_HOST");
    }

    #[test]
    fn large_content_is_truncated() {
        let mut record = CallRecord::clone(&crate::test_support::record());
        record.messages = Some(vec![mirror_core::ChatMessage::user("x".repeat(3_000_000))]);
        let (input, output) = bounded_content(&record, 1_000_000);
        let input = input.unwrap().to_string();
        assert!(input.len() < 300_000, "{}", input.len());
        assert!(input.contains("truncated by mirror"));
        assert!(output.unwrap().to_string().len() < 300_000);
    }
}
