//! The built-in offline default, end to end: router, mock providers, silent copies, JSONL log,
//! pairing.

use std::collections::HashMap;

use mirror_cli::demo::{run, DemoOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mirrors_every_request_and_pairs_every_shadow() {
    let dir = std::env::temp_dir().join(format!("mirror-demo-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let options = DemoOptions {
        requests: 60,
        concurrency: 8,
        log_path: dir.join("calls.jsonl"),
        ui: None,
    };
    let outcome = run(&options).await.unwrap();

    assert_eq!(outcome.primary_ok + outcome.primary_failed, 60);
    let mirror = outcome.mirror;
    assert!(mirror.is_balanced(), "{mirror:?}");
    assert_eq!(mirror.mirrored, 60, "one copy per request: {mirror:?}");
    assert_eq!(mirror.in_flight(), 0, "{mirror:?}");
    assert_eq!(outcome.writer.dropped(), 0);

    // Every call reached the log: one record per primary, one per silent copy that ran.
    let (shadows, primaries): (Vec<_>, Vec<_>) = outcome
        .records
        .iter()
        .partition(|record| record.metadata.is_silent_experiment);
    assert_eq!(primaries.len(), 60);
    assert_eq!(
        shadows.len() as u64,
        mirror.completed + mirror.failed,
        "{mirror:?}"
    );

    // Each shadow points at a real primary, shares its trace, and has its own call id.
    let by_id: HashMap<_, _> = primaries.iter().map(|r| (r.call_id, *r)).collect();
    for shadow in &shadows {
        let primary = by_id[&shadow.metadata.mirror_of.expect("mirror_of is set")];
        assert_eq!(shadow.trace_id, primary.trace_id);
        assert_ne!(shadow.call_id, primary.call_id);
        assert_eq!(primary.model_group, "primary");
        assert_eq!(shadow.model_group, "shadow");
        assert_eq!(shadow.model, "shadow-v2");
    }

    let summary = &outcome.summaries[0];
    assert_eq!(
        (
            summary.primary_group.as_str(),
            summary.shadow_group.as_str()
        ),
        ("primary", "shadow")
    );
    assert_eq!(summary.pairs, shadows.len() as u64);
    assert_eq!(summary.primaries, 60);
    assert_eq!(summary.missing, 60 - summary.pairs);
    std::fs::remove_dir_all(&dir).unwrap();
}
