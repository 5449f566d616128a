//! `OtlpSink`: each call as an OpenTelemetry span, posted to any OTLP/HTTP collector (JSON
//! encoding), with the GenAI semantic-convention attributes.
//!
//! A primary and its silent copies share the trace id (the caller's W3C `traceparent` trace id when
//! it sent one); a silent call's span links to its primary's span and carries
//! `mirror.is_silent_experiment = true`, so a trace viewer shows the copy beside the request without
//! adding its latency to the request's span.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mirror_core::{CallRecord, CallStatus, CallType, SecretString};
use reqwest::Url;
use serde_json::{json, Value};

use crate::ids::{otel_span_id, otel_trace_id};
use crate::langfuse::otel::{
    boolean, chunks, int, request_body, string, string_array, SPAN_KIND_CLIENT, STATUS_ERROR,
    STATUS_OK,
};
use crate::time_fmt::epoch_nanos;
use crate::{http, LogSink, RetryPolicy, SinkError, SinkOptions};

/// The OTLP/HTTP default endpoint of a local collector.
pub const OTLP_DEFAULT_ENDPOINT: &str = "http://localhost:4318";

/// The attribute that marks a silent call's span.
pub const SILENT_ATTRIBUTE: &str = "mirror.is_silent_experiment";

/// Where to send spans.
#[derive(Clone)]
#[non_exhaustive]
pub struct OtlpConfig {
    /// The traces URL (`.../v1/traces`), or a base URL that gets `/v1/traces` appended.
    pub endpoint: String,
    /// Headers sent with every request (an API key, say); values are secrets.
    pub headers: Vec<(String, SecretString)>,
    /// `service.name` of the resource.
    pub service_name: String,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// Requests stay under this size; a larger batch is split.
    pub max_request_bytes: usize,
}

impl std::fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("OtlpConfig")
            .field("endpoint", &self.endpoint)
            .field("headers", &names)
            .field("service_name", &self.service_name)
            .field("timeout", &self.timeout)
            .field("max_request_bytes", &self.max_request_bytes)
            .finish()
    }
}

impl OtlpConfig {
    /// Spans to `endpoint`, with defaults elsewhere.
    pub fn new(endpoint: impl Into<String>) -> Self {
        OtlpConfig {
            endpoint: endpoint.into(),
            headers: Vec::new(),
            service_name: "mirror".to_owned(),
            timeout: Duration::from_secs(10),
            max_request_bytes: 4_000_000,
        }
    }

    /// Reads the standard OpenTelemetry variables: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the traces
    /// URL as is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (a base, `/v1/traces` appended; default
    /// [`OTLP_DEFAULT_ENDPOINT`]), `OTEL_EXPORTER_OTLP_TRACES_HEADERS` or
    /// `OTEL_EXPORTER_OTLP_HEADERS` (`name=value,...`), and `OTEL_SERVICE_NAME`. LiteLLM's
    /// `OTEL_ENDPOINT` and `OTEL_HEADERS` are read when the standard ones are not set.
    ///
    /// # Errors
    ///
    /// Returns [`SinkError::Config`] for a header entry that is not `name=value`.
    pub fn from_env() -> Result<Self, SinkError> {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| {
                var("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .or_else(|| var("OTEL_ENDPOINT"))
                    .map(|base| with_traces_path(&base))
            })
            .unwrap_or_else(|| with_traces_path(OTLP_DEFAULT_ENDPOINT));
        let mut config = OtlpConfig::new(endpoint);
        let headers_var = [
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_HEADERS",
        ]
        .into_iter()
        .find_map(|name| var(name).map(|value| (name, value)));
        if let Some((name, value)) = headers_var {
            config.headers = parse_headers(&value).map_err(|entry| {
                SinkError::config(format!(
                    "`{name}` entry {entry} is not `name=value` (comma-separated)"
                ))
            })?;
        }
        if let Some(service) = var("OTEL_SERVICE_NAME") {
            config.service_name = service;
        }
        Ok(config)
    }

    /// Adds a header sent with every request.
    pub fn with_header(mut self, name: impl Into<String>, value: SecretString) -> Self {
        self.headers.push((name.into(), value));
        self
    }
}

/// `base` with `/v1/traces` appended, unless it ends so already.
fn with_traces_path(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// `name=value,name=value` (values percent-decoded as the OTel spec says are not: kept as is).
/// On error, the position (1-based) of the bad entry.
fn parse_headers(text: &str) -> Result<Vec<(String, SecretString)>, usize> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .enumerate()
        .map(|(i, entry)| match entry.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => Ok((
                name.trim().to_owned(),
                SecretString::new(value.trim().to_owned()),
            )),
            _ => Err(i + 1),
        })
        .collect()
}

/// Posts one span per call to an OTLP/HTTP collector.
#[derive(Debug)]
pub struct OtlpSink {
    client: reqwest::Client,
    url: Url,
    endpoint: String,
    headers: reqwest::header::HeaderMap,
    service_name: String,
    max_request_bytes: usize,
}

impl OtlpSink {
    /// A sink for `config`.
    ///
    /// # Errors
    ///
    /// Returns [`SinkError::Config`] when the endpoint is not an http(s) URL, a header is not a valid
    /// HTTP header, or the HTTP client cannot be built.
    pub fn new(config: OtlpConfig) -> Result<Self, SinkError> {
        let url = http::parse_url("the OTLP endpoint", &config.endpoint)?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &config.headers {
            let header_name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SinkError::config(format!("`{name}` is not a valid header name")))?;
            let mut header_value =
                reqwest::header::HeaderValue::from_str(value.expose()).map_err(|_| {
                    // The value is a secret: name the header only.
                    SinkError::config(format!("the value of header `{name}` is not valid"))
                })?;
            header_value.set_sensitive(true);
            headers.insert(header_name, header_value);
        }
        Ok(OtlpSink {
            client: http::client(config.timeout)?,
            endpoint: http::display_endpoint(&url),
            url,
            headers,
            service_name: config.service_name,
            max_request_bytes: config.max_request_bytes.max(1024),
        })
    }

    /// The URL spans are posted to (without credentials).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

#[async_trait]
impl LogSink for OtlpSink {
    fn name(&self) -> &str {
        "otlp"
    }

    async fn write(&self, batch: &[Arc<CallRecord>]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let spans: Vec<Value> = batch.iter().map(|record| span(record)).collect();
        let mut rejected = 0usize;
        let mut first_message = None;
        for chunk in chunks(&spans, self.max_request_bytes) {
            let mut body = request_body(chunk);
            body["resourceSpans"][0]["resource"]["attributes"][0] =
                string("service.name", self.service_name.as_str());
            let body = serde_json::to_vec(&body).map_err(|source| SinkError::Encode { source })?;
            let response = self
                .client
                .post(self.url.clone())
                .headers(self.headers.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .map_err(|err| http::transport(&self.endpoint, err))?;
            let response = http::check_status(&self.endpoint, response).await?;
            let text = response.text().await.unwrap_or_default();
            if let Ok(answer) = serde_json::from_str::<Value>(&text) {
                let partial = &answer["partialSuccess"];
                let refused = match &partial["rejectedSpans"] {
                    Value::String(n) => n.parse().unwrap_or(0),
                    Value::Number(n) => n.as_u64().unwrap_or(0),
                    _ => 0,
                };
                if refused > 0 {
                    rejected += usize::try_from(refused)
                        .unwrap_or(chunk.len())
                        .min(chunk.len());
                    first_message.get_or_insert_with(|| {
                        http::quote(partial["errorMessage"].as_str().unwrap_or("spans rejected"))
                    });
                }
            }
        }
        if rejected > 0 {
            return Err(SinkError::Rejected {
                rejected,
                total: batch.len(),
                message: first_message.unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// The OpenTelemetry batch span processor's defaults: 512 spans or 5 s.
    fn default_options(&self) -> SinkOptions {
        SinkOptions::default()
            .with_batch_size(512)
            .with_flush_interval(Duration::from_secs(5))
            .with_retry(RetryPolicy::new(
                4,
                Duration::from_millis(500),
                Duration::from_secs(20),
                Duration::from_secs(300),
            ))
    }
}

/// `gen_ai.provider.name` for our provider prefix (REFERENCE-2 §6's values where one fits).
fn provider_name(provider: &str) -> &str {
    match provider {
        "azure" => "azure.ai.openai",
        "anthropic" => "anthropic",
        "bedrock" => "aws.bedrock",
        "gemini" => "gcp.gemini",
        "vertex_ai" => "gcp.vertex_ai",
        "mistral" => "mistral_ai",
        "xai" => "x_ai",
        other => other,
    }
}

/// One CLIENT span for one call, with the GenAI semantic conventions' attributes.
pub(crate) fn span(record: &CallRecord) -> Value {
    let operation = match record.call_type {
        // A Responses create is a chat turn in the conventions' terms; calls on a stored response
        // have no well-known operation, so they keep LiteLLM's call type names.
        CallType::Completion | CallType::Responses | CallType::AnthropicMessages => "chat",
        CallType::Embedding => "embeddings",
        CallType::GetResponses => "aget_responses",
        CallType::DeleteResponses => "adelete_responses",
        CallType::CancelResponses => "acancel_responses",
        CallType::ListInputItems => "alist_input_items",
        CallType::CountTokens => "count_tokens",
    };
    let mut attributes = vec![
        string("gen_ai.operation.name", operation),
        string(
            "gen_ai.provider.name",
            provider_name(&record.custom_llm_provider),
        ),
        string("gen_ai.request.model", record.model.as_str()),
        int("gen_ai.usage.input_tokens", record.prompt_tokens),
        int("gen_ai.usage.output_tokens", record.completion_tokens),
        boolean(SILENT_ATTRIBUTE, record.is_silent()),
        string("mirror.call_id", record.call_id.to_string()),
        string("mirror.trace_id", record.trace_id.as_str()),
        string("mirror.model_group", record.model_group.as_str()),
        string("mirror.deployment_id", record.model_id.as_str()),
        string("mirror.status", status_name(record.status)),
        boolean("mirror.stream", record.stream),
        json!({ "key": "mirror.cost_usd", "value": { "doubleValue": record.response_cost } }),
    ];
    if let Some(mirror_of) = record.metadata.mirror_of {
        attributes.push(string("mirror.mirror_of", mirror_of.to_string()));
    }
    if let Some(response) = &record.response {
        attributes.push(string("gen_ai.response.id", response.id.as_str()));
        attributes.push(string("gen_ai.response.model", response.model.as_str()));
        let reasons: Vec<String> = response
            .choices
            .iter()
            .filter_map(|choice| choice.finish_reason.clone())
            .collect();
        if !reasons.is_empty() {
            attributes.push(string_array("gen_ai.response.finish_reasons", &reasons));
        }
    }
    if let Ok(url) = Url::parse(&record.api_base) {
        if let Some(host) = url.host_str() {
            attributes.push(string("server.address", host));
            if let Some(port) = url.port_or_known_default() {
                attributes.push(int("server.port", u64::from(port)));
            }
        }
    }
    let status = if record.status == CallStatus::Failure {
        let info = record.error_information.as_ref();
        // The provider's code (an HTTP status) when there is one, else our error class.
        let error_type = info
            .and_then(|i| i.error_code.clone())
            .or_else(|| info.map(|i| i.error_class.clone()))
            .unwrap_or_else(|| "_OTHER".to_owned());
        attributes.push(string("error.type", error_type));
        let message = info.map_or("call failed", |i| i.error_class.as_str());
        json!({ "code": STATUS_ERROR, "message": message })
    } else {
        json!({ "code": STATUS_OK })
    };
    let trace_id = otel_trace_id(&record.trace_id);
    let mut span = json!({
        "traceId": trace_id,
        "spanId": otel_span_id(&record.call_id),
        "name": format!("{operation} {}", record.model),
        "kind": SPAN_KIND_CLIENT,
        "startTimeUnixNano": epoch_nanos(record.start_time).to_string(),
        "endTimeUnixNano": epoch_nanos(record.end_time).to_string(),
        "attributes": attributes,
        "status": status,
    });
    if let Some(primary) = record.metadata.mirror_of.filter(|_| record.is_silent()) {
        // A link, not a parent: the copy ran in the background and must not count in the
        // request's latency (REFERENCE-2 §6); given at creation, so samplers see it.
        span["links"] = json!([{
            "traceId": trace_id,
            "spanId": otel_span_id(&primary),
            "attributes": [string("mirror.link", "mirror_of")],
        }]);
    }
    span
}

fn status_name(status: CallStatus) -> &'static str {
    match status {
        CallStatus::Success => "success",
        CallStatus::Failure => "failure",
        CallStatus::Cancelled => "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_headers() {
        assert_eq!(
            with_traces_path("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(with_traces_path("http://c/v1/traces"), "http://c/v1/traces");
        let headers = parse_headers("x-api-key=abc, x-team = t1").unwrap();
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x-api-key", "x-team"]);
        assert_eq!(headers[1].1.expose(), "t1");
        assert_eq!(parse_headers("a=1,novalue").unwrap_err(), 2);
        let config =
            OtlpConfig::new("http://c").with_header("x-api-key", SecretString::new("s3cret"));
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
