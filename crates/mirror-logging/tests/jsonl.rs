//! The JSONL sink and the writer, against real files.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mirror_core::CallRecord;
use mirror_logging::{
    ContentPolicy, JsonlConfig, JsonlSink, LogWriter, RetryPolicy, SinkOptions, REDACTED,
};
use support::{record, temp_dir, wait_until};

fn read_records(path: &Path) -> Vec<CallRecord> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "unterminated last line"
    );
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::new(
        max_attempts,
        Duration::from_millis(20),
        Duration::from_millis(100),
        Duration::from_secs(60),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submitters_and_two_sinks_on_one_file_write_whole_lines() {
    let dir = temp_dir("concurrent");
    let path = dir.join("calls.jsonl");
    let options = SinkOptions::default()
        .with_batch_size(7)
        .with_flush_interval(Duration::from_millis(5));
    let writer = Arc::new(
        LogWriter::builder()
            .sink_with(JsonlSink::new(JsonlConfig::new(&path)), options.clone())
            .sink_with(JsonlSink::new(JsonlConfig::new(&path)), options)
            .start()
            .unwrap(),
    );
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let writer = Arc::clone(&writer);
            std::thread::spawn(move || {
                for i in 0..250 {
                    writer.submit(record(thread * 1000 + i));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let report = writer.shutdown(Duration::from_secs(30)).await;
    assert!(report.completed);
    for sink in &report.sinks {
        assert_eq!(sink.submitted, 1000);
        assert_eq!(sink.written, 1000, "{sink:?}");
        assert_eq!(sink.dropped.total(), 0, "{sink:?}");
        assert_eq!(sink.queued, 0);
    }

    let mut seen: HashMap<String, usize> = HashMap::new();
    for record in read_records(&path) {
        *seen.entry(record.id).or_default() += 1;
    }
    assert_eq!(seen.len(), 1000);
    assert!(seen.values().all(|&n| n == 2), "every record once per sink");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_never_sees_a_partial_line() {
    let dir = temp_dir("reader");
    let path = dir.join("calls.jsonl");
    std::fs::write(&path, b"").unwrap();
    let done = Arc::new(AtomicBool::new(false));

    // Tail the file as a log shipper would: keep an unterminated last line until its `\n` arrives.
    let reader = {
        let path = path.clone();
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut file = std::fs::File::open(&path).unwrap();
            let mut pending = Vec::new();
            let mut lines = 0usize;
            let mut partial_reads = 0usize;
            let mut progress_points = 0usize;
            loop {
                let finished = done.load(Ordering::Acquire);
                let mut chunk = Vec::new();
                file.read_to_end(&mut chunk).unwrap();
                if !chunk.is_empty() {
                    progress_points += 1;
                }
                pending.extend_from_slice(&chunk);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let record: CallRecord = serde_json::from_slice(&line[..line.len() - 1])
                        .unwrap_or_else(|err| panic!("line {lines} is not a whole record: {err}"));
                    assert!(record.id.starts_with("chatcmpl-"));
                    lines += 1;
                }
                if !pending.is_empty() {
                    partial_reads += 1;
                }
                if finished {
                    assert!(pending.is_empty(), "file ends with a partial line");
                    return (lines, progress_points, partial_reads);
                }
                std::thread::yield_now();
            }
        })
    };

    let writer = LogWriter::builder()
        .sink_with(
            JsonlSink::new(JsonlConfig::new(&path)),
            SinkOptions::default()
                .with_batch_size(3)
                .with_flush_interval(Duration::from_millis(1)),
        )
        .start()
        .unwrap();
    // Large records, so that one write spans several pages.
    let big = "x".repeat(20_000);
    for i in 0..600 {
        let mut record = record(i);
        record.messages = Some(vec![mirror_core::ChatMessage::user(big.clone())]);
        writer.submit(record);
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let report = writer.shutdown(Duration::from_secs(60)).await;
    assert_eq!(report.sinks[0].written, 600, "{report:?}");
    done.store(true, Ordering::Release);
    let (lines, progress_points, partial_reads) = reader.join().unwrap();
    assert_eq!(lines, 600);
    // The reader really read while the file grew, not once at the end.
    assert!(progress_points > 1, "reader saw the file only once");
    eprintln!("reader: {progress_points} reads with new data, {partial_reads} with a partial tail");
}

#[tokio::test]
async fn size_rotation_keeps_every_record_and_names_files_by_day() {
    let dir = temp_dir("rotation");
    let path = dir.join("mirror.jsonl");
    // Numbers 10 to 32 make lines of one length.
    let one_line = serde_json::to_vec(&record(10)).unwrap().len() as u64 + 1;
    let writer = LogWriter::builder()
        .sink_with(
            JsonlSink::new(JsonlConfig::new(&path).with_max_bytes(one_line * 5 + 10)),
            SinkOptions::default()
                .with_batch_size(1)
                .with_flush_interval(Duration::from_millis(1)),
        )
        .start()
        .unwrap();
    for i in 10..33 {
        writer.submit(record(i));
    }
    let report = writer.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.sinks[0].written, 23);

    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let rotated: Vec<&String> = names.iter().filter(|n| *n != "mirror.jsonl").collect();
    assert_eq!(rotated.len(), 4, "{names:?}");
    let today = {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let days = now / 86_400;
        // Civil date from days (Howard Hinnant's algorithm), to check the sink's naming independently.
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{y:04}-{m:02}-{d:02}")
    };
    for (n, name) in rotated.iter().enumerate() {
        assert_eq!(**name, format!("mirror.{today}.{}.jsonl", n + 1));
    }
    let mut total = 0;
    let mut ids = Vec::new();
    for name in &names {
        let file = dir.join(name);
        assert!(std::fs::metadata(&file).unwrap().len() <= one_line * 5 + 10);
        let records = read_records(&file);
        total += records.len();
        ids.extend(records.into_iter().map(|r| r.id));
    }
    assert_eq!(total, 23);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 23);
}

#[tokio::test]
async fn omit_and_redact_apply_per_sink() {
    let dir = temp_dir("content");
    let keep = dir.join("keep.jsonl");
    let omit = dir.join("omit.jsonl");
    let redact = dir.join("redact.jsonl");
    let fast = SinkOptions::default().with_flush_interval(Duration::from_millis(1));
    let writer = LogWriter::builder()
        .sink_with(JsonlSink::new(JsonlConfig::new(&keep)), fast.clone())
        .sink_with(
            JsonlSink::new(JsonlConfig::new(&omit)),
            fast.clone().with_content(ContentPolicy::Omit),
        )
        .sink_with(
            JsonlSink::new(JsonlConfig::new(&redact)),
            fast.with_content(ContentPolicy::Redact),
        )
        .start()
        .unwrap();
    writer.submit(record(1));
    writer.shutdown(Duration::from_secs(10)).await;

    let kept = std::fs::read_to_string(&keep).unwrap();
    assert!(kept.contains("question 1") && kept.contains("answer 1"));
    let omitted = std::fs::read_to_string(&omit).unwrap();
    assert!(!omitted.contains("question 1") && !omitted.contains("answer 1"));
    assert!(!omitted.contains("\"messages\"") && !omitted.contains("\"response\""));
    let redacted = std::fs::read_to_string(&redact).unwrap();
    assert!(!redacted.contains("question 1") && !redacted.contains("answer 1"));
    assert_eq!(redacted.matches(REDACTED).count(), 2, "{redacted}");
}

/// A path whose parent is a regular file cannot be opened until the file is removed.
fn blocked_path(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let blocker = dir.join("logs");
    std::fs::write(&blocker, b"not a directory").unwrap();
    (blocker.clone(), blocker.join("calls.jsonl"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_recovers_without_losing_records_and_does_not_block_others() {
    let dir = temp_dir("recover");
    let (blocker, blocked) = blocked_path(&dir);
    let healthy = dir.join("healthy.jsonl");
    let writer = LogWriter::builder()
        .sink_with(
            JsonlSink::new(JsonlConfig::new(&blocked)),
            SinkOptions::default()
                .with_batch_size(10)
                .with_flush_interval(Duration::from_millis(5))
                .with_retry(fast_retry(1000)),
        )
        .sink_with(
            JsonlSink::new(JsonlConfig::new(&healthy)),
            SinkOptions::default().with_flush_interval(Duration::from_millis(5)),
        )
        .start()
        .unwrap();
    for i in 0..30 {
        writer.submit(record(i));
    }
    // The healthy sink writes everything while the other one keeps failing.
    wait_until(Duration::from_secs(20), "the healthy sink", || {
        writer.stats()[1].written == 30
    })
    .await;
    wait_until(Duration::from_secs(20), "retries", || {
        writer.stats()[0].retried >= 20
    })
    .await;
    assert_eq!(writer.stats()[0].written, 0);

    std::fs::remove_file(&blocker).unwrap();
    let report = writer.shutdown(Duration::from_secs(30)).await;
    let failing = &report.sinks[0];
    assert_eq!(failing.written, 30, "{failing:?}");
    assert_eq!(failing.dropped.total(), 0, "{failing:?}");
    assert_eq!(read_records(&blocked).len(), 30);
}

#[tokio::test]
async fn retries_are_bounded_and_counted_as_failed() {
    let dir = temp_dir("bounded");
    let (_blocker, blocked) = blocked_path(&dir);
    let writer = LogWriter::builder()
        .sink_with(
            JsonlSink::new(JsonlConfig::new(&blocked)),
            SinkOptions::default()
                .with_batch_size(5)
                .with_flush_interval(Duration::from_millis(1))
                .with_retry(fast_retry(3)),
        )
        .start()
        .unwrap();
    for i in 0..5 {
        writer.submit(record(i));
    }
    wait_until(Duration::from_secs(20), "the batch to be dropped", || {
        writer.stats()[0].dropped.failed == 5
    })
    .await;
    let stats = &writer.stats()[0];
    // Three attempts: two retries of five records.
    assert_eq!(stats.retried, 10, "{stats:?}");
    assert_eq!(stats.written, 0);
    assert_eq!(stats.queued, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_at_the_deadline_and_counts_what_is_left() {
    let dir = temp_dir("deadline");
    let (_blocker, blocked) = blocked_path(&dir);
    let writer = LogWriter::builder()
        .sink_with(
            JsonlSink::new(JsonlConfig::new(&blocked)),
            SinkOptions::default()
                .with_batch_size(4)
                .with_flush_interval(Duration::from_millis(1))
                .with_retry(fast_retry(u32::MAX)),
        )
        .start()
        .unwrap();
    for i in 0..10 {
        writer.submit(record(i));
    }
    let started = std::time::Instant::now();
    let report = writer.shutdown(Duration::from_millis(300)).await;
    let elapsed = started.elapsed();
    assert!(report.completed, "{report:?}");
    assert!(
        elapsed < Duration::from_secs(5),
        "shutdown took {elapsed:?}"
    );
    assert!(elapsed >= Duration::from_millis(300), "stopped early");
    let stats = &report.sinks[0];
    assert_eq!(stats.dropped.shutdown, 10, "{stats:?}");
    assert_eq!(stats.queued, 0);

    // Records submitted after shutdown are refused and counted.
    writer.submit(record(99));
    let stats = &writer.stats()[0];
    assert_eq!(stats.dropped.shutdown, 11);
    assert_eq!(stats.submitted, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_without_blocking() {
    let dir = temp_dir("full");
    let (_blocker, blocked) = blocked_path(&dir);
    let writer = LogWriter::builder()
        .sink_with(
            JsonlSink::new(JsonlConfig::new(&blocked)),
            SinkOptions::default()
                .with_queue_capacity(8)
                .with_batch_size(4)
                .with_flush_interval(Duration::from_millis(1))
                .with_retry(fast_retry(u32::MAX)),
        )
        .start()
        .unwrap();
    let started = std::time::Instant::now();
    for i in 0..1000 {
        writer.submit(record(i));
        assert!(writer.stats()[0].queued <= 8 + 4);
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let stats = &writer.stats()[0];
    assert_eq!(stats.submitted, 1000);
    assert!(stats.dropped.queue_full >= 1000 - 12, "{stats:?}");
    assert_eq!(stats.dropped.queue_full + stats.queued, 1000, "{stats:?}");
    let report = writer.shutdown(Duration::from_millis(100)).await;
    let stats = &report.sinks[0];
    assert_eq!(stats.dropped.total(), 1000, "{stats:?}");
}

#[tokio::test]
async fn dropping_the_writer_still_writes_what_was_queued() {
    let dir = temp_dir("drop");
    let path = dir.join("calls.jsonl");
    let writer = LogWriter::builder()
        .sink(JsonlSink::new(JsonlConfig::new(&path)))
        .start()
        .unwrap();
    for i in 0..3 {
        writer.submit(record(i));
    }
    drop(writer);
    wait_until(Duration::from_secs(20), "the queued records", || {
        path.exists() && read_records(&path).len() == 3
    })
    .await;
}

#[test]
fn starting_outside_a_runtime_is_an_error() {
    let err = LogWriter::builder()
        .sink(JsonlSink::new(JsonlConfig::new("unused.jsonl")))
        .start()
        .unwrap_err();
    assert!(err.to_string().contains("Tokio runtime"), "{err}");
}
