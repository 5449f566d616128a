//! Silent mirroring under limits: the bounded queue, sampling, opt-out, switch-off and shutdown.

use std::collections::HashSet;
use std::time::Duration;

use mirror_core::CallStatus;
use mirror_router::MirrorSettings;
use serde_json::json;

use crate::support::{
    self, builder, http_deployment, mock_deployment, next_record, record_where, request, settled,
    wait_for_stats, with_metadata, Upstream,
};

#[tokio::test]
async fn a_full_queue_drops_and_counts_and_never_exceeds_its_bounds() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::held("shadow").await;
    let (builder, _records) = builder();
    let router = builder
        .mirror_settings(MirrorSettings {
            max_in_flight: 1,
            queue_size: 2,
            ..MirrorSettings::default()
        })
        .deployment(
            http_deployment("prod", "prod-1", &primary)
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(http_deployment("candidate", "cand-1", &shadow))
        .build()
        .unwrap();

    let within_bounds = |stats: &mirror_router::MirrorSnapshot| {
        assert!(stats.running <= 1, "{stats:?}");
        assert!(stats.queued <= 2, "{stats:?}");
    };
    router.chat(request("prod")).await.unwrap();
    shadow.wait_for_requests(1).await;
    wait_for_stats(&router, |s| s.running == 1).await;
    let total = 8;
    for _ in 1..total {
        router.chat(request("prod")).await.unwrap();
        let stats = router.mirror_stats();
        within_bounds(&stats);
        assert!(stats.is_balanced(), "{stats:?}");
    }
    let stats = router.mirror_stats();
    assert_eq!(stats.mirrored, total);
    assert_eq!((stats.running, stats.queued), (1, 2), "{stats:?}");
    assert_eq!(stats.dropped_queue_full, total - 3, "{stats:?}");
    assert_eq!(shadow.count(), 1);

    shadow.release();
    let stats = settled(&router).await;
    assert_eq!(stats.completed, 3);
    assert_eq!(stats.dropped_queue_full, total - 3);
    assert_eq!(shadow.count(), 3);
}

#[tokio::test]
async fn sampling_holds_the_rate_and_is_deterministic_by_key() {
    let (builder, _records) = builder();
    let router = builder
        .mirror_settings(MirrorSettings {
            sample_key: Some("session_id".to_owned()),
            ..MirrorSettings::default()
        })
        .deployment(
            mock_deployment("prod", "prod-1")
                .silent_model(["candidate"])
                .unwrap()
                .silent_sample_rate(0.3),
        )
        .deployment(mock_deployment("candidate", "cand-1"))
        .build()
        .unwrap();

    // Random sampling without a key: binomial(2000, 0.3) has a standard deviation of about 20.
    let total = 2000;
    for _ in 0..total {
        router.chat(request("prod")).await.unwrap();
    }
    let stats = settled(&router).await;
    assert_eq!(stats.mirrored, total);
    let kept = stats.completed;
    assert!((480..=720).contains(&kept), "{stats:?}");
    assert_eq!(stats.dropped_sampled_out, total - kept);

    // By `user`, then by the configured metadata key: the same key decides the same way every time.
    let mut decided_in = HashSet::new();
    let mut decided_out = HashSet::new();
    for key in 0..40 {
        for round in 0..3 {
            let by_user = {
                let mut request = request("prod");
                request.user = Some(format!("user-{key}"));
                request
            };
            let by_session =
                with_metadata(request("prod"), json!({"session_id": format!("s-{key}")}));
            for (kind, request) in [("user", by_user), ("session", by_session)] {
                let before = router.mirror_stats().dropped_sampled_out;
                router.chat(request).await.unwrap();
                let sampled_out = router.mirror_stats().dropped_sampled_out > before;
                let id = format!("{kind}-{key}");
                if round == 0 {
                    if sampled_out {
                        decided_out.insert(id);
                    } else {
                        decided_in.insert(id);
                    }
                } else {
                    assert_eq!(
                        sampled_out,
                        decided_out.contains(&id),
                        "{id} changed its mind"
                    );
                }
            }
        }
    }
    // Both decisions occur across 80 keys at a rate of 0.3.
    assert!(!decided_in.is_empty() && !decided_out.is_empty());
    settled(&router).await;
}

#[tokio::test]
async fn opt_out_and_switch_off_are_counted_as_drops() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    let (builder, mut records) = builder();
    let router = builder
        .deployment(
            http_deployment("prod", "prod-1", &primary)
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(http_deployment("candidate", "cand-1", &shadow))
        .build()
        .unwrap();

    let opted_out = with_metadata(request("prod"), json!({"disable_mirroring": true}));
    router.chat(opted_out).await.unwrap();
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.dropped_opted_out), (1, 1));
    // The opt-out flag is the gateway's: it reaches neither the upstream nor the requester metadata.
    assert!(primary.requests()[0].body.get("metadata").is_none());
    let record = next_record(&mut records).await;
    assert!(!record
        .metadata
        .requester_metadata
        .contains_key("disable_mirroring"));

    assert!(router.is_mirroring());
    router.set_mirroring(false);
    assert!(!router.is_mirroring());
    router.chat(request("prod")).await.unwrap();
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.dropped_switched_off), (2, 1));

    router.set_mirroring(true);
    router.chat(request("prod")).await.unwrap();
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.completed), (3, 1));
    assert_eq!(shadow.count(), 1);
    // A caller cannot make its request look like a shadow.
    let spoofed = with_metadata(request("prod"), json!({"is_silent_experiment": true}));
    let routed = router.chat(spoofed).await.unwrap();
    let (record, _) = record_where(&mut records, |r| r.call_id == routed.call_id).await;
    assert!(!record.metadata.is_silent_experiment);
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.completed), (4, 2));
}

#[tokio::test]
async fn shutdown_lets_a_shadow_finish_before_the_deadline() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::held("shadow").await;
    let (builder, mut records) = builder();
    let router = builder
        .deployment(
            http_deployment("prod", "prod-1", &primary)
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(http_deployment("candidate", "cand-1", &shadow))
        .build()
        .unwrap();

    router.chat(request("prod")).await.unwrap();
    shadow.wait_for_requests(1).await;
    let shutting_down = tokio::spawn({
        let router = router.clone();
        async move { router.shutdown(Duration::from_secs(60)).await }
    });
    // Let the shutdown task start (the test runtime has one thread).
    tokio::task::yield_now().await;
    // Copies offered once shutdown began are dropped and counted, and the primary still works.
    let routed = router.chat(request("prod")).await.unwrap();
    assert_eq!(
        routed.response.text().as_deref(),
        Some("hello from primary")
    );
    assert_eq!(router.mirror_stats().dropped_shutdown, 1);
    assert!(!shutting_down.is_finished());
    shadow.release();
    let stats = tokio::time::timeout(support::PATIENCE, shutting_down)
        .await
        .expect("shutdown returns once the shadow finished")
        .unwrap();
    assert_eq!(
        (stats.completed, stats.dropped_shutdown),
        (1, 1),
        "{stats:?}"
    );
    assert!(stats.is_balanced());
    let (shadow_record, _) = record_where(&mut records, |r| r.metadata.is_silent_experiment).await;
    assert_eq!(shadow_record.status, CallStatus::Success);

    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.dropped_shutdown), (2, 1));
    assert_eq!(shadow.count(), 1);
}

#[tokio::test]
async fn shutdown_counts_a_still_held_shadow_as_dropped_after_the_deadline() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::held("shadow").await;
    let (builder, _records) = builder();
    let router = builder
        .mirror_settings(MirrorSettings {
            max_in_flight: 1,
            ..MirrorSettings::default()
        })
        .deployment(
            http_deployment("prod", "prod-1", &primary)
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(http_deployment("candidate", "cand-1", &shadow))
        .build()
        .unwrap();

    // One copy runs (held), one waits in the queue.
    router.chat(request("prod")).await.unwrap();
    shadow.wait_for_requests(1).await;
    router.chat(request("prod")).await.unwrap();
    wait_for_stats(&router, |s| s.running == 1 && s.queued == 1).await;

    let stats = router.shutdown(Duration::from_millis(300)).await;
    assert_eq!(stats.dropped_shutdown, 2, "{stats:?}");
    assert_eq!((stats.completed, stats.in_flight()), (0, 0), "{stats:?}");
    assert!(stats.is_balanced(), "{stats:?}");

    // After shutdown, copies are dropped at once; primaries keep working.
    router.chat(request("prod")).await.unwrap();
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.dropped_shutdown), (3, 3));
    shadow.release();
    assert_eq!(shadow.count(), 1);
}
