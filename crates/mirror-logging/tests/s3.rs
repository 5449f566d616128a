//! The S3 sink and the S3 reader against s3s-fs, a real S3-compatible server that checks SigV4
//! signatures.
//!
//! Start it with `eval "$(crates/mirror-logging/tests/start-s3.sh)"`; set `MIRROR_SKIP_S3_TESTS=1`
//! to skip these tests on purpose.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use mirror_core::{CallRecord, SecretString};
use mirror_logging::{LogWriter, RetryPolicy, S3Config, S3Reader, S3Sink, SinkOptions};
use support::{failure, record, shadow_of, wait_until};

struct S3Server {
    endpoint: String,
    access_key: String,
    secret_key: String,
    bucket: String,
    root: PathBuf,
}

/// The server named by the environment; `None` only when the tests are skipped on purpose.
fn server() -> Option<S3Server> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(endpoint) = var("MIRROR_TEST_S3_ENDPOINT") else {
        if var("MIRROR_SKIP_S3_TESTS").as_deref() == Some("1") {
            eprintln!("MIRROR_SKIP_S3_TESTS=1: skipping an S3 test");
            return None;
        }
        panic!(
            "MIRROR_TEST_S3_ENDPOINT is not set. The S3 tests need s3s-fs: run \
             `eval \"$(crates/mirror-logging/tests/start-s3.sh)\"` from the repository root \
             (it installs s3s-fs 0.14.1 if needed and exports the MIRROR_TEST_S3_* variables), \
             or set MIRROR_SKIP_S3_TESTS=1 to skip them."
        );
    };
    let required = |name: &str| {
        var(name).unwrap_or_else(|| panic!("{name} is not set; start-s3.sh exports it"))
    };
    Some(S3Server {
        endpoint,
        access_key: required("MIRROR_TEST_S3_ACCESS_KEY"),
        secret_key: required("MIRROR_TEST_S3_SECRET_KEY"),
        bucket: required("MIRROR_TEST_S3_BUCKET"),
        root: PathBuf::from(required("MIRROR_TEST_S3_ROOT")),
    })
}

impl S3Server {
    fn config(&self, endpoint: &str, prefix: &str) -> S3Config {
        let mut config = S3Config::new(&self.bucket);
        config.s3_endpoint_url = Some(endpoint.to_owned());
        config.s3_region_name = Some("us-east-1".into());
        config.s3_aws_access_key_id = Some(self.access_key.clone());
        config.s3_aws_secret_access_key = Some(SecretString::new(self.secret_key.clone()));
        config.s3_path = Some(prefix.to_owned());
        config
    }

    fn object(&self, key: &str) -> PathBuf {
        self.root.join(&self.bucket).join(key)
    }
}

fn unique_prefix(test: &str) -> String {
    format!("mirror-tests/{test}-{}", fastrand::u64(..))
}

fn fast(max_attempts: u32) -> SinkOptions {
    SinkOptions::default()
        .with_batch_size(16)
        .with_flush_interval(Duration::from_millis(20))
        .with_retry(RetryPolicy::new(
            max_attempts,
            Duration::from_millis(50),
            Duration::from_millis(200),
            Duration::from_secs(120),
        ))
}

#[tokio::test]
async fn objects_have_litellm_keys_and_record_bodies() {
    let Some(server) = server() else { return };
    let prefix = unique_prefix("objects");
    let sink = S3Sink::new(server.config(&server.endpoint, &prefix)).unwrap();
    let writer = LogWriter::builder()
        .sink_with(sink, fast(1))
        .start()
        .unwrap();
    let mut primary = record(1);
    // An id with characters the key must replace or encode.
    primary.id = "chatcmpl:abc/1 +x".into();
    let shadow = shadow_of(&primary);
    let failed = failure(2);
    for record in [&primary, &shadow, &failed] {
        writer.submit(record.clone());
    }
    let report = writer.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.sinks[0].written, 3, "{report:?}");

    let expect = [
        (&primary, "time-11-28-54-796360_chatcmpl_abc_1 +x.json"),
        (
            &shadow,
            "time-11-28-54-796360_chatcmpl_abc_1 +x-shadow.json",
        ),
        (&failed, "time-11-28-54-796360_chatcmpl-2.json"),
    ];
    for (record, name) in expect {
        let path = server.object(&format!("{prefix}/2025-01-16/{name}"));
        let body = std::fs::read(&path)
            .unwrap_or_else(|err| panic!("object {} is missing: {err}", path.display()));
        let stored: CallRecord = serde_json::from_slice(&body).unwrap();
        assert_eq!(&stored, record);
    }
    let shadow_body: serde_json::Value = serde_json::from_slice(
        &std::fs::read(server.object(&format!(
            "{prefix}/2025-01-16/time-11-28-54-796360_chatcmpl_abc_1 +x-shadow.json"
        )))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(shadow_body["metadata"]["is_silent_experiment"], true);
    assert_eq!(shadow_body["litellm_call_id"], shadow.call_id.to_string());
    assert_eq!(shadow_body["startTime"], 1_737_026_934.796_36);
}

#[tokio::test]
async fn batch_file_upload_writes_one_json_lines_object() {
    let Some(server) = server() else { return };
    let prefix = unique_prefix("batch");
    let mut config = server.config(&server.endpoint, &prefix);
    config.s3_batch_file_upload = Some(true);
    let writer = LogWriter::builder()
        .sink_with(
            S3Sink::new(config).unwrap(),
            fast(1).with_flush_interval(Duration::from_millis(300)),
        )
        .start()
        .unwrap();
    for i in 0..10 {
        writer.submit(record(i));
    }
    let report = writer.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.sinks[0].written, 10, "{report:?}");
    let day = server.object(&format!("{prefix}/2025-01-16"));
    let files: Vec<PathBuf> = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let mut lines = 0;
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("batch_11-28-54_") && name.ends_with(".jsonl"),
            "{name}"
        );
        let text = std::fs::read_to_string(file).unwrap();
        for line in text.lines() {
            let _: CallRecord = serde_json::from_str(line).unwrap();
            lines += 1;
        }
    }
    assert_eq!(lines, 10);
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_not_retried() {
    let Some(server) = server() else { return };
    let prefix = unique_prefix("wrong-secret");
    let mut config = server.config(&server.endpoint, &prefix);
    config.s3_aws_secret_access_key = Some(SecretString::new("not-the-secret"));
    let writer = LogWriter::builder()
        .sink_with(S3Sink::new(config).unwrap(), fast(20))
        .start()
        .unwrap();
    for i in 0..4 {
        writer.submit(record(i));
    }
    let report = writer.shutdown(Duration::from_secs(30)).await;
    let stats = &report.sinks[0];
    assert_eq!(stats.dropped.failed, 4, "{stats:?}");
    assert_eq!(stats.retried, 0, "{stats:?}");
    assert_eq!(stats.written, 0);
    assert!(!server.object(&prefix).exists());
}

/// Forwards every connection on `listener` to `target`.
async fn proxy(listener: tokio::net::TcpListener, target: String) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
        let target = target.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_then_recovery_loses_nothing() {
    let Some(server) = server() else { return };
    let prefix = unique_prefix("outage");
    // A port with nothing listening: the server is "down" until the proxy starts on it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let writer = LogWriter::builder()
        .sink_with(
            S3Sink::new(server.config(&endpoint, &prefix)).unwrap(),
            fast(1_000),
        )
        .start()
        .unwrap();
    let records: Vec<CallRecord> = (0..20).map(record).collect();
    for record in &records {
        writer.submit(record.clone());
    }
    wait_until(Duration::from_secs(30), "failed attempts", || {
        writer.stats()[0].retried >= 40
    })
    .await;
    assert_eq!(writer.stats()[0].written, 0);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let target = server.endpoint.trim_start_matches("http://").to_owned();
    tokio::spawn(proxy(listener, target));

    let report = writer.shutdown(Duration::from_secs(60)).await;
    let stats = &report.sinks[0];
    assert_eq!(stats.written, 20, "{stats:?}");
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
    for record in &records {
        let key = format!(
            "{prefix}/2025-01-16/time-11-28-54-796360_{}.json",
            record.id
        );
        let stored: CallRecord =
            serde_json::from_slice(&std::fs::read(server.object(&key)).unwrap()).unwrap();
        assert_eq!(&stored, record);
    }
}

/// Writes `records` with the real sink, one object per call (or one per batch), and waits for them.
async fn write_with_sink(config: S3Config, records: &[CallRecord]) {
    let writer = LogWriter::builder()
        .sink_with(S3Sink::new(config).unwrap(), fast(1).with_batch_size(64))
        .start()
        .unwrap();
    for record in records {
        writer.submit(record.clone());
    }
    let report = writer.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.sinks[0].written, records.len() as u64, "{report:?}");
}

#[tokio::test]
async fn the_reader_lists_page_by_page_and_reads_back_what_the_sink_wrote() {
    let Some(server) = server() else { return };
    let prefix = unique_prefix("reader");
    let mut records: Vec<CallRecord> = (0..23).map(record).collect();
    // Keys with a space, a plus and a replaced colon and slash: listed decoded, read back by name.
    records[0].id = "chatcmpl:abc/1 +x".into();
    records[1] = shadow_of(&records[0]);
    for (i, record) in records.iter_mut().enumerate() {
        // Distinct start times, so key order is call order.
        record.start_time += i as f64;
    }
    write_with_sink(server.config(&server.endpoint, &prefix), &records).await;

    let reader = S3Reader::new(server.config(&server.endpoint, "ignored"))
        .unwrap()
        .with_page_size(5);
    assert_eq!(reader.bucket(), server.bucket);

    let first = reader.list_page(&format!("{prefix}/"), None).await.unwrap();
    assert_eq!(first.objects.len(), 5);
    let token = first
        .next
        .clone()
        .expect("a first page of 5 of 23 is truncated");
    let second = reader
        .list_page(&format!("{prefix}/"), Some(&token))
        .await
        .unwrap();
    assert_eq!(second.objects.len(), 5);
    assert!(first.objects[4].key < second.objects[0].key);

    let objects = reader.list(&format!("{prefix}/")).await.unwrap();
    assert_eq!(objects.len(), records.len());
    let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted, "listings come in key order");
    assert_eq!(
        keys[0],
        format!("{prefix}/2025-01-16/time-11-28-54-796360_chatcmpl_abc_1 +x.json")
    );
    for (object, record) in objects.iter().zip(&records) {
        let body = reader.get(&object.key).await.unwrap();
        assert_eq!(object.size, body.len() as u64);
        assert!(object.last_modified.is_some());
        let stored: CallRecord = serde_json::from_slice(&body).unwrap();
        assert_eq!(&stored, record, "{}", object.key);
    }

    // A prefix with nothing under it is an empty listing, not an error.
    assert!(reader
        .list(&format!("{prefix}/1999-01-01/"))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn the_reader_streams_batch_objects_and_reports_missing_ones() {
    let Some(server) = server() else { return };
    let prefix = unique_prefix("reader-batch");
    let mut config = server.config(&server.endpoint, &prefix);
    config.s3_batch_file_upload = Some(true);
    let records: Vec<CallRecord> = (0..40).map(record).collect();
    write_with_sink(config, &records).await;

    let reader = S3Reader::new(server.config(&server.endpoint, "")).unwrap();
    let objects = reader.list(&prefix).await.unwrap();
    assert!(!objects.is_empty());
    let mut read = Vec::new();
    for object in &objects {
        assert!(object.key.ends_with(".jsonl"), "{}", object.key);
        let whole = reader.get(&object.key).await.unwrap();
        let mut stream = reader.get_stream(&object.key).await.unwrap();
        assert_eq!(stream.content_length(), Some(object.size));
        let mut streamed = Vec::new();
        while let Some(chunk) = stream.chunk().await.unwrap() {
            streamed.extend_from_slice(&chunk);
        }
        assert_eq!(streamed, whole);
        for line in std::str::from_utf8(&streamed).unwrap().lines() {
            read.push(serde_json::from_str::<CallRecord>(line).unwrap());
        }
    }
    read.sort_by_key(|r| r.id.clone());
    let mut expected = records.clone();
    expected.sort_by_key(|r| r.id.clone());
    assert_eq!(read, expected);

    let missing = reader
        .get(&format!("{prefix}/no-such-object.json"))
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404), "{missing}");
    assert!(!missing.is_retryable());
}

#[tokio::test]
async fn the_reader_with_a_wrong_secret_is_refused() {
    let Some(server) = server() else { return };
    let mut config = server.config(&server.endpoint, "");
    config.s3_aws_secret_access_key = Some(SecretString::new("not-the-secret"));
    let reader = S3Reader::new(config).unwrap();
    let err = reader.list("mirror-tests/").await.unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("not-the-secret"), "{err}");

    let err = S3Reader::new(S3Config::new("b")).unwrap_err();
    assert!(err.to_string().contains("s3_aws_access_key_id"), "{err}");
}
