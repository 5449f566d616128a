//! The silent breaker: a failing shadow stops costing copies and recovers after a probe; and a zero
//! byte budget is refused (the budget itself: `silent_budget.rs`).

use std::time::Duration;

use mirror_router::{MirrorSettings, Router, RouterSettings};

use crate::support::{
    builder, http_deployment, request, settled, with_retries, Behaviour, Upstream, PATIENCE,
};

/// A primary group `prod` mirrored to a one-deployment group `candidate` served by `shadow`, neither
/// retrying, with the silent breaker's threshold and open time.
fn router(primary: &Upstream, shadow: &Upstream, allowed_fails: u32, cooldown_secs: f64) -> Router {
    let (builder, _records) = builder();
    builder
        .deployment(with_retries(
            http_deployment("prod", "prod-1", primary)
                .silent_model(["candidate"])
                .unwrap(),
            0,
        ))
        .deployment(with_retries(
            http_deployment("candidate", "cand-1", shadow),
            0,
        ))
        .settings(settings(allowed_fails, cooldown_secs))
        .build()
        .unwrap()
}

fn settings(allowed_fails: u32, cooldown_secs: f64) -> RouterSettings {
    let mut settings = RouterSettings::default();
    settings.allowed_fails = allowed_fails;
    settings.cooldown_time = cooldown_secs;
    settings
}

/// Sends one primary request, checks it succeeded, and waits until its copy (if any) has ended.
async fn primary_call(router: &Router) {
    let routed = router.chat(request("prod")).await.unwrap();
    assert_eq!(
        routed.response.text().as_deref(),
        Some("hello from primary")
    );
    settled(router).await;
}

#[tokio::test]
async fn a_failing_one_deployment_shadow_trips_the_breaker_and_copies_are_dropped_before_they_are_made(
) {
    let primary = Upstream::start("primary").await;
    // Half the failures are 500s, half connection resets, as in the benchmark.
    let shadow = Upstream::with_default("shadow", Behaviour::Reset).await;
    shadow.script([Behaviour::server_error(), Behaviour::Reset]);
    // Open for a minute: long enough that no probe can happen during the test.
    let router = router(&primary, &shadow, 3, 60.0);

    for _ in 0..3 {
        primary_call(&router).await;
    }
    let stats = router.mirror_stats();
    assert_eq!((stats.mirrored, stats.failed), (3, 3), "{stats:?}");
    assert_eq!(stats.breakers_open, 1, "{stats:?}");
    assert_eq!(router.silent_breakers(), [("candidate".to_owned(), true)]);
    assert_eq!(shadow.count(), 3);

    for _ in 0..10 {
        primary_call(&router).await;
    }
    let stats = settled(&router).await;
    // Every later copy was dropped before it was made: the shadow saw nothing more.
    assert_eq!(shadow.count(), 3);
    assert_eq!(
        (stats.mirrored, stats.failed, stats.dropped_unhealthy),
        (13, 3, 10),
        "{stats:?}"
    );
    assert_eq!(stats.dropped(), 10);
    assert!(stats.is_balanced(), "{stats:?}");

    // The breaker only guards silent copies: a caller may still call the group itself.
    let err = router.chat(request("candidate")).await.unwrap_err();
    assert!(
        err.provider_error().is_some(),
        "the call reached the shadow: {err}"
    );
    assert_eq!(shadow.count(), 4);
}

#[tokio::test]
async fn a_tripped_breaker_lets_a_probe_through_and_copies_flow_again_once_it_succeeds() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::with_default("shadow", Behaviour::server_error()).await;
    let router = router(&primary, &shadow, 2, 1.0);

    primary_call(&router).await;
    primary_call(&router).await;
    let stats = router.mirror_stats();
    assert_eq!((stats.failed, stats.breakers_open), (2, 1), "{stats:?}");

    // The shadow is fixed. Copies are dropped until the breaker's open second has passed; then one
    // copy is the probe, and its success closes the breaker. The loop waits for that event.
    shadow.set_default(Behaviour::Answer);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while router.mirror_stats().completed == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no probe: {:?}",
            router.mirror_stats()
        );
        primary_call(&router).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = router.mirror_stats();
    assert_eq!(stats.breakers_open, 0, "{stats:?}");
    assert_eq!(shadow.count(), 3, "exactly one probe reached the shadow");
    assert_eq!(router.silent_breakers(), [("candidate".to_owned(), false)]);

    // Closed again: every copy is sent.
    let before = router.mirror_stats();
    for _ in 0..3 {
        primary_call(&router).await;
    }
    let after = settled(&router).await;
    assert_eq!(after.mirrored - before.mirrored, 3);
    assert_eq!(after.completed - before.completed, 3);
    assert_eq!(after.dropped_unhealthy, before.dropped_unhealthy);
    assert_eq!(shadow.count(), 6);
    assert_eq!(
        after.mirrored,
        after.completed + after.failed + after.dropped_unhealthy
    );
}

#[tokio::test]
async fn copies_to_a_group_whose_deployments_all_cool_down_are_dropped_as_unhealthy() {
    let primary = Upstream::start("primary").await;
    // A 429 cools a deployment down at once, for the router's cooldown time (a minute here).
    let shadow = Upstream::with_default("shadow", Behaviour::rate_limited(10)).await;
    let (builder, _records) = builder();
    let router = builder
        .deployment(with_retries(
            http_deployment("prod", "prod-1", &primary)
                .silent_model(["candidate"])
                .unwrap(),
            0,
        ))
        .deployment(with_retries(
            http_deployment("candidate", "cand-1", &shadow),
            1,
        ))
        .deployment(with_retries(
            http_deployment("candidate", "cand-2", &shadow),
            1,
        ))
        .settings(settings(3, 60.0))
        .build()
        .unwrap();

    // One copy: both deployments answer 429 and cool down.
    primary_call(&router).await;
    assert_eq!(shadow.count(), 2);
    primary_call(&router).await;
    let stats = settled(&router).await;
    assert_eq!(
        (stats.mirrored, stats.failed, stats.dropped_unhealthy),
        (2, 1, 1),
        "{stats:?}"
    );
    // Cooldowns did it, not the breaker (one failure is under `allowed_fails`).
    assert_eq!(stats.breakers_open, 0);
    assert_eq!(shadow.count(), 2);
}

#[tokio::test]
async fn a_zero_byte_bound_is_refused_naming_the_field() {
    let (builder, _records) = builder();
    let err = builder
        .deployment(crate::support::mock_deployment("m", "m-1"))
        .mirror_settings(MirrorSettings {
            max_bytes: 0,
            ..MirrorSettings::default()
        })
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("mirror_settings.silent_max_bytes"), "{err}");
    assert!(err.contains("greater than 0"), "{err}");
}
