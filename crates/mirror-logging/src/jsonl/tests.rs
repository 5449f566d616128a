//! Tests of the JSONL sink's daily rotation and rotated file names.

use std::sync::atomic::{AtomicI64, Ordering};

use super::*;
use crate::test_support::record;

static FAKE_NOW: AtomicI64 = AtomicI64::new(1_737_026_934);

fn fake_clock() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(FAKE_NOW.load(Ordering::SeqCst))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[tokio::test]
async fn daily_rotation_names_the_file_after_its_day() {
    let dir = std::env::temp_dir().join(format!(
        "mirror-logging-daily-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let path = dir.join("mirror.jsonl");
    let sink =
        JsonlSink::new(JsonlConfig::new(&path).with_daily_rotation(true)).with_clock(fake_clock);

    // 2025-01-16T11:28:54Z
    FAKE_NOW.store(1_737_026_934, Ordering::SeqCst);
    sink.write(&[record(), record()]).await.unwrap();
    // Same day: no rotation.
    FAKE_NOW.store(1_737_026_934 + 3600, Ordering::SeqCst);
    sink.write(&[record()]).await.unwrap();
    // Next day.
    FAKE_NOW.store(1_737_026_934 + 86_400, Ordering::SeqCst);
    sink.write(&[record()]).await.unwrap();
    sink.flush().await.unwrap();

    let rotated = dir.join("mirror.2025-01-16.1.jsonl");
    let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
    assert_eq!(lines(&rotated), 3);
    assert_eq!(lines(&path), 1);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["mirror.2025-01-16.1.jsonl", "mirror.jsonl"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rotated_names_take_the_next_free_number() {
    let dir = std::env::temp_dir().join(format!("mirror-logging-names-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("calls.log");
    let day = OffsetDateTime::from_unix_timestamp(1_737_026_934)
        .unwrap()
        .date();
    let first = rotated_path(&path, day);
    assert_eq!(first, dir.join("calls.2025-01-16.1.log"));
    std::fs::write(&first, b"").unwrap();
    assert_eq!(rotated_path(&path, day), dir.join("calls.2025-01-16.2.log"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_torn_last_line_is_ended_so_every_later_record_is_whole() {
    let dir = std::env::temp_dir().join(format!("mirror-logging-torn-{}", fastrand::u64(..)));
    let path = dir.join("mirror.jsonl");
    std::fs::create_dir_all(&dir).unwrap();
    // What a SIGKILL in the middle of a write leaves: one whole record, then half of one.
    let whole = serde_json::to_string(&*record()).unwrap();
    std::fs::write(&path, format!("{whole}\n{}", &whole[..whole.len() / 2])).unwrap();

    let sink = JsonlSink::new(JsonlConfig::new(&path));
    sink.write(&[record(), record()]).await.unwrap();
    sink.flush().await.unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let parsed = |line: &str| serde_json::from_str::<CallRecord>(line).is_ok();
    assert!(parsed(lines[0]));
    assert!(
        !parsed(lines[1]),
        "the torn record stays one malformed line"
    );
    assert!(
        parsed(lines[2]) && parsed(lines[3]),
        "later records are whole"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
