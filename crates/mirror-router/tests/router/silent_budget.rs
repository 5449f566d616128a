//! The memory budget of silent work: queued and running copies are charged their request bytes
//! plus a per-call allowance until they end; the defaults let thousands run at once, a small budget
//! drops and counts, and every byte comes back, also from aborted calls.

use std::time::Duration;

use futures::StreamExt;
use mirror_core::{ChatMessage, ChatRequest};
use mirror_router::{MirrorSettings, Router, SILENT_CALL_BYTES};

use crate::support::{
    builder, http_deployment, request, settled, stream_request, wait_for_stats, Upstream,
};

/// `prod` mirrored to `candidate`, served by `shadow`, with these mirror settings.
fn router(primary: &Upstream, shadow: &Upstream, mirror: MirrorSettings) -> Router {
    let (builder, _records) = builder();
    builder
        .deployment(
            http_deployment("prod", "prod-1", primary)
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(http_deployment("candidate", "cand-1", shadow))
        .mirror_settings(mirror)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_default_settings_two_thousand_copies_in_flight_at_once_are_all_delivered() {
    // A slow shadow at a real rate: by Little's law thousands of copies are in flight at once (the
    // former default ran 128 and queued 1,024, and dropped the rest as `queue_full`).
    const COPIES: u64 = 2_000;
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::held("shadow").await;
    let router = router(&primary, &shadow, MirrorSettings::default());

    let calls = futures::stream::iter(0..COPIES)
        .map(|_| router.chat(request("prod")))
        .buffer_unordered(64);
    calls
        .for_each(|result| async move {
            result.unwrap();
        })
        .await;
    shadow.wait_for_requests(COPIES as usize).await;
    let stats = router.mirror_stats();
    assert_eq!(
        (stats.mirrored, stats.running, stats.dropped()),
        (COPIES, COPIES, 0),
        "{stats:?}"
    );
    // Every running copy is charged at least the per-call allowance.
    assert!(
        stats.silent_bytes >= COPIES * SILENT_CALL_BYTES,
        "{stats:?}"
    );

    shadow.release();
    let stats = settled(&router).await;
    assert_eq!(
        (
            stats.mirrored,
            stats.completed,
            stats.failed,
            stats.dropped()
        ),
        (COPIES, COPIES, 0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.silent_bytes, 0, "{stats:?}");
}

#[tokio::test]
async fn running_copies_count_against_the_byte_budget_and_what_does_not_fit_is_dropped_and_counted()
{
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::held("shadow").await;
    // Room by count for many, by bytes for three of these large copies and one small one: each is
    // charged its request (~100 kB or ~1 kB) plus SILENT_CALL_BYTES.
    let large_charge = 100_000 + SILENT_CALL_BYTES;
    let budget = 3 * large_charge + 3 * SILENT_CALL_BYTES / 2 + 6_000;
    let router = router(
        &primary,
        &shadow,
        MirrorSettings {
            max_bytes: budget,
            ..MirrorSettings::default()
        },
    );
    let large = || ChatRequest::new("prod", vec![ChatMessage::user("x".repeat(100_000))]);

    for _ in 0..5 {
        router.chat(large()).await.unwrap();
    }
    // Charged before the copy is made, so the counters are final as soon as the calls return.
    let stats = router.mirror_stats();
    assert_eq!(
        (stats.mirrored, stats.in_flight(), stats.dropped_queue_full),
        (5, 3, 2),
        "{stats:?}"
    );
    assert!(
        (3 * large_charge..=budget).contains(&stats.silent_bytes),
        "{stats:?}"
    );
    // They still hold their bytes once running, not only while queued.
    wait_for_stats(&router, |s| s.running == 3).await;
    assert!(
        router.mirror_stats().silent_bytes >= 3 * large_charge,
        "{stats:?}"
    );

    // The bound is on bytes, not count: a small copy still fits, a second one does not.
    router.chat(request("prod")).await.unwrap();
    router.chat(request("prod")).await.unwrap();
    let stats = router.mirror_stats();
    assert_eq!(
        (stats.in_flight(), stats.dropped_queue_full),
        (4, 3),
        "{stats:?}"
    );
    assert!(stats.silent_bytes <= budget, "{stats:?}");

    shadow.release();
    let stats = settled(&router).await;
    assert_eq!(
        (stats.mirrored, stats.completed, stats.dropped_queue_full),
        (7, 4, 3),
        "{stats:?}"
    );
    assert_eq!(stats.silent_bytes, 0, "{stats:?}");
}

#[tokio::test]
async fn calls_aborted_at_shutdown_give_their_bytes_back() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::held("shadow").await;
    let router = router(&primary, &shadow, MirrorSettings::default());
    for _ in 0..3 {
        router.chat(request("prod")).await.unwrap();
    }
    shadow.wait_for_requests(3).await;
    wait_for_stats(&router, |s| s.running == 3).await;
    assert!(router.mirror_stats().silent_bytes >= 3 * SILENT_CALL_BYTES);

    // The shadow never answers: the running calls are aborted, their tickets dropped.
    let stats = router.shutdown(Duration::ZERO).await;
    assert_eq!(
        (stats.mirrored, stats.dropped_shutdown, stats.in_flight()),
        (3, 3, 0),
        "{stats:?}"
    );
    assert_eq!(stats.silent_bytes, 0, "{stats:?}");
}

#[tokio::test]
async fn a_streamed_copy_gives_back_its_request_and_answer_bytes_when_it_ends() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::held("shadow").await;
    let router = router(&primary, &shadow, MirrorSettings::default());

    let routed = router.chat_stream(stream_request("prod")).await.unwrap();
    let chunks: Vec<_> = routed.response.collect().await;
    assert!(chunks.iter().all(Result::is_ok));
    shadow.wait_for_requests(1).await;
    wait_for_stats(&router, |s| s.running == 1).await;
    assert!(router.mirror_stats().silent_bytes >= SILENT_CALL_BYTES);

    shadow.release();
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.completed), (1, 1), "{stats:?}");
    assert_eq!(stats.silent_bytes, 0, "{stats:?}");
}
