//! Reading logs from an S3 prefix: LiteLLM's one-record `.json` objects or the sink's batched
//! `.jsonl` objects, page by page and object by object, so memory stays bounded.

use std::io::IsTerminal as _;

use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mirror_core::CallRecord;
use mirror_logging::{ObjectInfo, S3Config, S3ReadError, S3Reader};

use super::{Analyzer, Report, ReportError, ReportOptions};

/// Objects at most this large are read whole, several at a time; larger ones are streamed alone.
pub(crate) const WHOLE_OBJECT_BYTES: u64 = 8 << 20;
/// Whole-object GETs in flight at once (memory: at most this many small objects).
const GETS_IN_FLIGHT: usize = 8;

/// `s3://bucket/prefix` split into the bucket and the key prefix (`""` for the whole bucket);
/// `None` when `location` is not an `s3://` URL or names no bucket.
pub fn parse_s3_url(location: &str) -> Option<(String, String)> {
    let rest = location.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then(|| (bucket.to_owned(), prefix.to_owned()))
}

/// Feeds every object under `prefix`, in key order, to `analyzer`.
///
/// Keys ending in `.json` are one record each (LiteLLM's layout); any other key is read as JSON
/// lines (the sink's `s3_batch_file_upload` objects, or uploaded JSONL files). Empty objects and
/// "folder" markers (keys ending in `/`) are skipped. The S3 layout sorts keys by the calls' start
/// times, which is the order pairing wants.
///
/// # Errors
///
/// When listing or reading an object fails.
pub async fn feed_s3(
    reader: &S3Reader,
    prefix: &str,
    analyzer: &mut Analyzer,
    progress: &ProgressBar,
) -> Result<(), S3ReadError> {
    let mut token: Option<String> = None;
    loop {
        let page = reader.list_page(prefix, token.as_deref()).await?;
        let mut objects = page.objects.into_iter().peekable();
        while objects.peek().is_some() {
            // A run of small objects, read whole with several GETs in flight, in key order.
            let mut small: Vec<ObjectInfo> = Vec::new();
            while let Some(object) = objects.next_if(|o| o.size <= WHOLE_OBJECT_BYTES) {
                if !object.key.ends_with('/') && object.size > 0 {
                    small.push(object);
                }
            }
            let mut bodies = futures::stream::iter(small)
                .map(|object| async move {
                    let body = reader.get(&object.key).await;
                    (object, body)
                })
                .buffered(GETS_IN_FLIGHT);
            while let Some((object, body)) = bodies.next().await {
                let body = body?;
                progress.set_message(object.key.clone());
                progress.inc(body.len() as u64);
                feed_object(&object.key, &body, analyzer);
            }
            drop(bodies);
            // Then a large object, streamed alone.
            if let Some(object) = objects.next() {
                progress.set_message(object.key.clone());
                feed_large(reader, &object, analyzer, progress).await?;
            }
        }
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok(()),
        }
    }
}

/// Feeds one object's whole body.
fn feed_object(key: &str, body: &[u8], analyzer: &mut Analyzer) {
    if key.ends_with(".json") {
        let text = body.trim_ascii();
        if text.is_empty() {
            return;
        }
        match serde_json::from_slice::<CallRecord>(text) {
            Ok(record) => analyzer.push(&record),
            Err(_) => analyzer.skip_malformed(),
        }
    } else {
        for line in body.split(|b| *b == b'\n') {
            feed_line(line, analyzer);
        }
    }
}

/// Feeds one JSON line; blank lines are skipped, anything else that is not a record is counted.
fn feed_line(line: &[u8], analyzer: &mut Analyzer) {
    let text = line.trim_ascii();
    if text.is_empty() {
        return;
    }
    match serde_json::from_slice::<CallRecord>(text) {
        Ok(record) => analyzer.push(&record),
        Err(_) => analyzer.skip_malformed(),
    }
}

/// Streams a large object: JSON lines are fed as they complete, so only the longest line is held.
async fn feed_large(
    reader: &S3Reader,
    object: &ObjectInfo,
    analyzer: &mut Analyzer,
    progress: &ProgressBar,
) -> Result<(), S3ReadError> {
    let mut stream = reader.get_stream(&object.key).await?;
    let whole_document = object.key.ends_with(".json");
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.chunk().await? {
        progress.inc(chunk.len() as u64);
        pending.extend_from_slice(&chunk);
        if whole_document {
            continue;
        }
        if let Some(last) = pending.iter().rposition(|b| *b == b'\n') {
            for line in pending[..last].split(|b| *b == b'\n') {
                feed_line(line, analyzer);
            }
            pending.drain(..=last);
        }
    }
    feed_object(&object.key, &pending, analyzer);
    Ok(())
}

/// A progress spinner on standard error (the size of a prefix is not known before it is listed).
pub fn s3_progress(show: bool) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bytes} ({bytes_per_sec}) {wide_msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Reads every object under `prefix` in the bucket of `reader`, in key order, and builds the
/// report. Objects are read one at a time (a few small ones in flight), so memory is bounded by the
/// pairing window and the largest object under 8 MiB, never by the size of the prefix.
///
/// # Errors
///
/// [`ReportError::S3`] when listing or reading fails.
pub async fn analyze_s3(
    reader: &S3Reader,
    prefix: &str,
    options: &ReportOptions,
) -> Result<Report, ReportError> {
    let mut analyzer = Analyzer::new(options.clone());
    feed_s3(reader, prefix, &mut analyzer, &ProgressBar::hidden())
        .await
        .map_err(|source| ReportError::S3 {
            location: format!("s3://{}/{prefix}", reader.bucket()),
            source,
        })?;
    Ok(analyzer.finish())
}

/// The S3 parameters for reading `bucket` (or the configured one): `base` (the config file's
/// `s3_callback_params`, if any), then `endpoint`, then `AWS_*` variables for what is still unset.
///
/// # Errors
///
/// [`ReportError::S3Config`] when no bucket is named anywhere.
pub fn reader_config(
    base: Option<&S3Config>,
    bucket: Option<&str>,
    endpoint: Option<&str>,
) -> Result<S3Config, ReportError> {
    let mut config = base.cloned().unwrap_or_default();
    if let Some(bucket) = bucket {
        config.s3_bucket_name = Some(bucket.to_owned());
    }
    if let Some(endpoint) = endpoint {
        config.s3_endpoint_url = Some(endpoint.to_owned());
    }
    if config.s3_bucket_name.as_deref().is_none_or(str::is_empty) {
        return Err(ReportError::S3Config {
            message: "no bucket: give `s3://BUCKET/PREFIX`, `--s3-bucket`, or `--config` with \
                      `litellm_settings.s3_callback_params.s3_bucket_name`"
                .to_owned(),
            source: None,
        });
    }
    Ok(config.with_env_defaults())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(
            parse_s3_url("s3://logs/litellm-logs/2025-01-16/"),
            Some(("logs".into(), "litellm-logs/2025-01-16/".into()))
        );
        assert_eq!(parse_s3_url("s3://logs"), Some(("logs".into(), "".into())));
        assert_eq!(parse_s3_url("s3://logs/"), Some(("logs".into(), "".into())));
        assert_eq!(parse_s3_url("s3:///x"), None);
        assert_eq!(parse_s3_url("logs/mirror.jsonl"), None);
    }

    #[test]
    fn objects_are_records_or_json_lines() {
        let record = r#"{"id":"x"}"#;
        let mut analyzer = Analyzer::new(ReportOptions::default());
        feed_object("a/time-1.json", record.as_bytes(), &mut analyzer);
        feed_object(
            "a/batch.jsonl",
            b"not json\n\n{\"a\":1}\nlast",
            &mut analyzer,
        );
        feed_object("a/empty.json", b"  \n", &mut analyzer);
        let report = analyzer.finish();
        // Neither is a whole record: one malformed object, three malformed lines.
        assert_eq!(report.totals.malformed_lines, 4);
        assert_eq!(report.totals.records, 0);
    }
}
