//! `S3Sink`: one JSON object per call, keyed as LiteLLM's S3 logger keys them, PUT with SigV4.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use mirror_core::{deserialize_env_string, CallRecord, SecretString};
#[cfg(test)]
use reqwest::Url;
use serde::de::IgnoredAny;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::jsonl::encode_lines;
use crate::time_fmt::{date, time_of_day, utc};
use crate::{http, LogSink, RetryPolicy, SinkError, SinkOptions};

mod client;
mod reader;

use client::S3Client;
pub use reader::{ListPage, ObjectInfo, ObjectStream, S3ReadError, S3Reader};

/// How object keys are partitioned by time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum S3Partition {
    /// `YYYY-MM-DD/`.
    #[default]
    Day,
    /// `YYYY-MM-DD/HH/`.
    Hour,
}

/// `s3_callback_params`, under LiteLLM's names. Values may be `os.environ/NAME`.
///
/// Keys LiteLLM knows but this sink does not use are accepted and listed by
/// [`S3Config::ignored_keys`]; unknown keys are errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct S3Config {
    /// The bucket (required).
    #[serde(default, deserialize_with = "deserialize_env_string")]
    pub s3_bucket_name: Option<String>,
    /// The region; default `AWS_REGION`, `AWS_DEFAULT_REGION`, then `us-east-1`.
    #[serde(default, deserialize_with = "deserialize_env_string")]
    pub s3_region_name: Option<String>,
    /// An S3-compatible server, e.g. `http://127.0.0.1:9000`; default `https://s3.{region}.amazonaws.com`.
    #[serde(default, deserialize_with = "deserialize_env_string")]
    pub s3_endpoint_url: Option<String>,
    /// The access key id; default `AWS_ACCESS_KEY_ID`.
    #[serde(default, deserialize_with = "deserialize_env_string")]
    pub s3_aws_access_key_id: Option<String>,
    /// The secret access key; default `AWS_SECRET_ACCESS_KEY`.
    #[serde(default)]
    pub s3_aws_secret_access_key: Option<SecretString>,
    /// A session token for temporary credentials; default `AWS_SESSION_TOKEN`.
    #[serde(default)]
    pub s3_aws_session_token: Option<SecretString>,
    /// A key prefix, e.g. `litellm-logs`.
    #[serde(default, deserialize_with = "deserialize_env_string")]
    pub s3_path: Option<String>,
    /// Seconds between flushes (LiteLLM's default: 10).
    #[serde(default)]
    pub s3_flush_interval: Option<f64>,
    /// Records per flush (LiteLLM's default: 512).
    #[serde(default)]
    pub s3_batch_size: Option<usize>,
    /// `https://{bucket}.{endpoint host}/{key}` instead of `{endpoint}/{bucket}/{key}`.
    #[serde(default)]
    pub s3_use_virtual_hosted_style: Option<bool>,
    /// One JSON-lines object per batch instead of one object per call.
    #[serde(default)]
    pub s3_batch_file_upload: Option<bool>,
    /// `day` (default) or `hour`.
    #[serde(default)]
    pub s3_partition_granularity: Option<S3Partition>,
    /// Records waiting at most; more are dropped and counted.
    #[serde(default)]
    pub s3_max_queue_size: Option<usize>,
    /// PUTs in flight at once per batch (default 8).
    #[serde(default)]
    pub s3_max_concurrent_uploads: Option<usize>,
    /// A failing batch is retried for at most this many seconds (LiteLLM's default: 3600).
    #[serde(default)]
    pub s3_max_retry_age_seconds: Option<f64>,

    // LiteLLM keys accepted without effect; see `ignored_keys`.
    #[serde(default)]
    s3_api_version: Option<IgnoredAny>,
    #[serde(default)]
    s3_use_ssl: Option<IgnoredAny>,
    #[serde(default)]
    s3_verify: Option<IgnoredAny>,
    #[serde(default)]
    s3_aws_session_name: Option<IgnoredAny>,
    #[serde(default)]
    s3_aws_profile_name: Option<IgnoredAny>,
    #[serde(default)]
    s3_aws_role_name: Option<IgnoredAny>,
    #[serde(default)]
    s3_aws_web_identity_token: Option<IgnoredAny>,
    #[serde(default)]
    s3_aws_sts_endpoint: Option<IgnoredAny>,
    #[serde(default)]
    s3_config: Option<IgnoredAny>,
    #[serde(default)]
    s3_use_team_prefix: Option<IgnoredAny>,
    #[serde(default)]
    s3_use_key_prefix: Option<IgnoredAny>,
    #[serde(default)]
    s3_strip_base64_files: Option<IgnoredAny>,
    #[serde(default)]
    s3_server_side_encryption: Option<IgnoredAny>,
    #[serde(default)]
    s3_sse_kms_key_id: Option<IgnoredAny>,
    #[serde(default)]
    s3_log_prompts_only: Option<IgnoredAny>,
    #[serde(default)]
    s3_drop_on_terminal_error: Option<IgnoredAny>,
    #[serde(default)]
    s3_adaptive_concurrency: Option<IgnoredAny>,
    #[serde(default)]
    s3_max_adaptive_concurrency: Option<IgnoredAny>,
}

impl S3Config {
    /// A configuration for `bucket`, everything else unset.
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Config {
            s3_bucket_name: Some(bucket.into()),
            ..S3Config::default()
        }
    }

    /// Fills unset credentials and region from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN` and `AWS_REGION` (or `AWS_DEFAULT_REGION`).
    pub fn with_env_defaults(mut self) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        if self.s3_aws_access_key_id.is_none() {
            self.s3_aws_access_key_id = var("AWS_ACCESS_KEY_ID");
        }
        if self.s3_aws_secret_access_key.is_none() {
            self.s3_aws_secret_access_key = var("AWS_SECRET_ACCESS_KEY").map(SecretString::new);
        }
        if self.s3_aws_session_token.is_none() {
            self.s3_aws_session_token = var("AWS_SESSION_TOKEN").map(SecretString::new);
        }
        if self.s3_region_name.is_none() {
            self.s3_region_name = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION"));
        }
        self
    }

    /// LiteLLM keys that were set but have no effect here, for the loader to warn about once.
    pub fn ignored_keys(&self) -> Vec<&'static str> {
        [
            ("s3_api_version", self.s3_api_version.is_some()),
            ("s3_use_ssl", self.s3_use_ssl.is_some()),
            ("s3_verify", self.s3_verify.is_some()),
            ("s3_aws_session_name", self.s3_aws_session_name.is_some()),
            ("s3_aws_profile_name", self.s3_aws_profile_name.is_some()),
            ("s3_aws_role_name", self.s3_aws_role_name.is_some()),
            (
                "s3_aws_web_identity_token",
                self.s3_aws_web_identity_token.is_some(),
            ),
            ("s3_aws_sts_endpoint", self.s3_aws_sts_endpoint.is_some()),
            ("s3_config", self.s3_config.is_some()),
            ("s3_use_team_prefix", self.s3_use_team_prefix.is_some()),
            ("s3_use_key_prefix", self.s3_use_key_prefix.is_some()),
            (
                "s3_strip_base64_files",
                self.s3_strip_base64_files.is_some(),
            ),
            (
                "s3_server_side_encryption",
                self.s3_server_side_encryption.is_some(),
            ),
            ("s3_sse_kms_key_id", self.s3_sse_kms_key_id.is_some()),
            ("s3_log_prompts_only", self.s3_log_prompts_only.is_some()),
            (
                "s3_drop_on_terminal_error",
                self.s3_drop_on_terminal_error.is_some(),
            ),
            (
                "s3_adaptive_concurrency",
                self.s3_adaptive_concurrency.is_some(),
            ),
            (
                "s3_max_adaptive_concurrency",
                self.s3_max_adaptive_concurrency.is_some(),
            ),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }
}

/// Writes each call as `{s3_path/}{YYYY-MM-DD}/time-HH-MM-SS-ffffff_{id}.json` (LiteLLM's layout), or
/// each batch as one JSON-lines object with `s3_batch_file_upload`.
#[derive(Debug)]
pub struct S3Sink {
    client: S3Client,
    prefix: String,
    partition: S3Partition,
    batch_file: bool,
    concurrency: usize,
    options: SinkOptions,
}

impl S3Sink {
    /// A sink for `config`. Call [`S3Config::with_env_defaults`] first to read `AWS_*` variables.
    ///
    /// # Errors
    ///
    /// Returns [`SinkError::Config`] when the bucket or the credentials are missing, or the endpoint
    /// is not an http(s) URL.
    pub fn new(config: S3Config) -> Result<Self, SinkError> {
        let client = S3Client::new(&config, http::client(Duration::from_secs(30))?)?;
        let mut options = SinkOptions::default()
            .with_batch_size(config.s3_batch_size.unwrap_or(512).max(1))
            .with_flush_interval(seconds(config.s3_flush_interval, 10.0))
            .with_retry(RetryPolicy::new(
                30,
                Duration::from_millis(500),
                Duration::from_secs(60),
                seconds(config.s3_max_retry_age_seconds, 3600.0),
            ));
        if let Some(capacity) = config.s3_max_queue_size {
            options = options.with_queue_capacity(capacity.max(1));
        }
        Ok(S3Sink {
            client,
            prefix: config
                .s3_path
                .map(|p| p.trim_matches('/').to_owned())
                .unwrap_or_default(),
            partition: config.s3_partition_granularity.unwrap_or_default(),
            batch_file: config.s3_batch_file_upload.unwrap_or(false),
            concurrency: config.s3_max_concurrent_uploads.unwrap_or(8).max(1),
            options,
        })
    }

    /// The key of a call's object: `{s3_path/}{YYYY-MM-DD}/[HH/]time-HH-MM-SS-ffffff_{id}.json`, with
    /// the date and time of the call's start in UTC, and `/` and `:` in the id replaced by `_`.
    pub fn object_key(&self, record: &CallRecord) -> String {
        let start = utc(record.start_time);
        let id = record.id.replace(['/', ':'], "_");
        format!(
            "{}time-{}_{id}.json",
            self.parent(record.start_time),
            time_of_day(start)
        )
    }

    /// The key of a batch object: `{s3_path/}{YYYY-MM-DD}/[HH/]batch_HH-MM-SS_{hex}.jsonl`, named
    /// after the first call's start and a hash of the batch's call ids, so a retried batch overwrites
    /// its own object.
    fn batch_key(&self, batch: &[Arc<CallRecord>]) -> String {
        let first = batch.first().map_or(0.0, |record| record.start_time);
        let start = utc(first);
        let mut hasher = Sha256::new();
        for record in batch {
            hasher.update(record.call_id.as_uuid().as_bytes());
        }
        let digest = hasher.finalize();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}batch_{:02}-{:02}-{:02}_{hex}.jsonl",
            self.parent(first),
            start.hour(),
            start.minute(),
            start.second()
        )
    }

    fn parent(&self, start_time: f64) -> String {
        let start = utc(start_time);
        let mut parent = String::new();
        if !self.prefix.is_empty() {
            parent.push_str(&self.prefix);
            parent.push('/');
        }
        parent.push_str(&date(start.date()));
        parent.push('/');
        if self.partition == S3Partition::Hour {
            parent.push_str(&format!("{:02}/", start.hour()));
        }
        parent
    }

    /// The URL of an object; the key is percent-encoded once, and this exact URL is signed and sent.
    #[cfg(test)]
    fn object_url(&self, key: &str) -> Result<Url, SinkError> {
        self.client.object_url(key)
    }

    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), SinkError> {
        let url = self.client.object_url(key)?;
        let endpoint = http::display_endpoint(&url);
        let signed = self
            .client
            .sign("PUT", &url, &[("content-type", content_type)], &body)?;
        let mut request = self
            .client
            .http()
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, content_type);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|err| http::transport(&endpoint, err))?;
        http::check_status(&endpoint, response).await?;
        Ok(())
    }

    /// The SigV4 headers for a PUT of `body` to `url` (`authorization`, `x-amz-date`,
    /// `x-amz-content-sha256`, and `x-amz-security-token` with a session token).
    #[cfg(test)]
    fn sign_put(
        &self,
        url: &Url,
        body: &[u8],
        content_type: &str,
    ) -> Result<Vec<(&'static str, String)>, SinkError> {
        self.client
            .sign("PUT", url, &[("content-type", content_type)], body)
    }
}

fn seconds(value: Option<f64>, default: f64) -> Duration {
    value
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or_else(|| Duration::from_secs_f64(default))
}

#[async_trait]
impl LogSink for S3Sink {
    fn name(&self) -> &str {
        "s3"
    }

    async fn write(&self, batch: &[Arc<CallRecord>]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.batch_file {
            let body = encode_lines(batch)?;
            return self
                .put(&self.batch_key(batch), body, "application/x-ndjson")
                .await;
        }
        let mut uploads = Vec::with_capacity(batch.len());
        for record in batch {
            let body =
                serde_json::to_vec(&**record).map_err(|source| SinkError::Encode { source })?;
            uploads.push((self.object_key(record), body));
        }
        let results: Vec<Result<(), SinkError>> = futures::stream::iter(uploads)
            .map(|(key, body)| async move { self.put(&key, body, "application/json").await })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        // PUTs are idempotent, so a batch with a retryable failure is sent again whole.
        let mut refused = 0;
        let mut first_refusal = None;
        for res in results {
            match res {
                Ok(()) => {}
                Err(err) if err.is_retryable() => return Err(err),
                Err(err) => {
                    refused += 1;
                    first_refusal.get_or_insert(err);
                }
            }
        }
        match first_refusal {
            None => Ok(()),
            Some(err) if refused == batch.len() => Err(err),
            Some(err) => Err(SinkError::Rejected {
                rejected: refused,
                total: batch.len(),
                message: err.to_string(),
            }),
        }
    }

    fn default_options(&self) -> SinkOptions {
        self.options.clone()
    }
}

#[cfg(test)]
mod tests;
