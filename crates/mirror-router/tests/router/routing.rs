//! Deployment selection, cooldowns, retries and fallbacks.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use mirror_core::CallStatus;
use mirror_router::{Router, RouterError, RouterSettings, RoutingStrategy};

use crate::support::{
    assert_no_secret, builder, drain, http_deployment, mock_deployment, next_record, record_where,
    request, settled, Behaviour, Upstream, SECRET_KEY,
};

fn settings(configure: impl FnOnce(&mut RouterSettings)) -> RouterSettings {
    let mut settings = RouterSettings::default();
    configure(&mut settings);
    settings
}

fn fallback_map(from: &str, to: &[&str]) -> Vec<BTreeMap<String, Vec<String>>> {
    vec![BTreeMap::from([(
        from.to_owned(),
        to.iter().map(|name| (*name).to_owned()).collect(),
    )])]
}

async fn tally(router: &Router, model: &str, calls: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..calls {
        let routed = router.chat(request(model)).await.unwrap();
        *counts.entry(routed.deployment_id).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn simple_shuffle_follows_weights() {
    let (builder, _records) = builder();
    let router = builder
        .deployment(mock_deployment("g", "light").weight(1.0))
        .deployment(mock_deployment("g", "heavy").weight(3.0))
        .build()
        .unwrap();
    let total = 4000;
    let counts = tally(&router, "g", total).await;
    // Binomial(4000, 0.75): the standard deviation is about 27; allow more than six of them.
    let heavy = counts.get("heavy").copied().unwrap_or(0);
    assert!((2830..=3170).contains(&heavy), "{counts:?}");
    assert_eq!(heavy + counts.get("light").copied().unwrap_or(0), total);
    settled(&router).await;
}

#[tokio::test]
async fn least_busy_prefers_the_idle_deployment() {
    let one = Upstream::held("one").await;
    let two = Upstream::held("two").await;
    let (builder, _records) = builder();
    let router = builder
        .settings(settings(|s| {
            s.routing_strategy = RoutingStrategy::LeastBusy
        }))
        .deployment(http_deployment("g", "one", &one))
        .deployment(http_deployment("g", "two", &two))
        .build()
        .unwrap();

    // The first call is held wherever it lands; that deployment is then busy.
    let busy_call = tokio::spawn({
        let router = router.clone();
        async move { router.chat(request("g")).await }
    });
    let deadline = tokio::time::Instant::now() + crate::support::PATIENCE;
    while one.count() + two.count() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first call never arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (busy, idle) = if one.count() == 1 {
        (&one, &two)
    } else {
        (&two, &one)
    };
    idle.set_default(Behaviour::Answer);
    idle.release();
    for _ in 0..20 {
        router.chat(request("g")).await.unwrap();
    }
    assert_eq!((busy.count(), idle.count()), (1, 20));
    busy.release();
    busy_call.await.unwrap().unwrap();
    settled(&router).await;
}

#[tokio::test]
async fn latency_based_routing_prefers_the_faster_deployment() {
    let fast = Upstream::start("fast").await;
    let slow = Upstream::with_default("slow", Behaviour::Delay(Duration::from_millis(250))).await;
    let (builder, _records) = builder();
    let router = builder
        .settings(settings(|s| {
            s.routing_strategy = RoutingStrategy::LatencyBasedRouting;
        }))
        .deployment(http_deployment("g", "fast", &fast))
        .deployment(http_deployment("g", "slow", &slow))
        .build()
        .unwrap();
    let counts = tally(&router, "g", 20).await;
    // Each is measured once; from then on the fast one (far outside the 10% buffer) takes every call.
    assert_eq!(counts.get("slow"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("fast"), Some(&19), "{counts:?}");
    settled(&router).await;
}

#[tokio::test(start_paused = true)]
async fn usage_based_routing_skips_a_deployment_over_its_rpm() {
    let (builder, _records) = builder();
    let router = builder
        .settings(settings(|s| {
            s.routing_strategy = RoutingStrategy::UsageBasedRouting;
        }))
        .deployment(mock_deployment("g", "small").rpm(3))
        .deployment(mock_deployment("g", "large").rpm(1000))
        .build()
        .unwrap();
    // Paused time: all calls fall in the same minute.
    let counts = tally(&router, "g", 40).await;
    assert!(counts.get("small").copied().unwrap_or(0) <= 3, "{counts:?}");
    assert_eq!(counts.values().sum::<usize>(), 40);

    // Both over their limits: the group says when to retry, without calling anyone.
    let (builder, _records) = crate::support::builder();
    let tiny = builder
        .deployment(mock_deployment("t", "only").rpm(2))
        .build()
        .unwrap();
    tiny.chat(request("t")).await.unwrap();
    tiny.chat(request("t")).await.unwrap();
    let err = tiny.chat(request("t")).await.unwrap_err();
    assert!(
        matches!(err, RouterError::NoHealthyDeployment { .. }),
        "{err:?}"
    );
    assert!(err.retry_after().is_some());
    settled(&router).await;
}

#[tokio::test]
async fn order_tiers_use_the_next_tier_only_while_the_first_is_cooling_down() {
    let first = Upstream::start("first").await;
    let second = Upstream::start("second").await;
    let (builder, mut records) = builder();
    let router = builder
        .settings(settings(|s| {
            s.allowed_fails = 1;
            s.cooldown_time = 60.0;
        }))
        .deployment(http_deployment("g", "tier-1", &first).order(1))
        .deployment(http_deployment("g", "tier-2", &second).order(2))
        .build()
        .unwrap();
    let counts = tally(&router, "g", 10).await;
    assert_eq!(counts.get("tier-1"), Some(&10), "{counts:?}");
    assert_eq!(second.count(), 0);

    // Tier 1 fails once and cools down; the retry and later calls go to tier 2.
    first.script([Behaviour::server_error()]);
    drain(&mut records);
    let routed = router.chat(request("g")).await.unwrap();
    assert_eq!(routed.deployment_id, "tier-2");
    let record = next_record(&mut records).await;
    assert_eq!(record.metadata.attempts, 2);
    let counts = tally(&router, "g", 10).await;
    assert_eq!(counts.get("tier-2"), Some(&10), "{counts:?}");
    assert_eq!(first.count(), 11);
    settled(&router).await;
}

#[tokio::test(start_paused = true)]
async fn cooldown_skips_a_failing_deployment_for_cooldown_time() {
    let (builder, _records) = builder();
    let router = builder
        .settings(settings(|s| {
            s.allowed_fails = 2;
            s.cooldown_time = 10.0;
            s.num_retries = 0;
        }))
        .deployment(mock_deployment("g", "broken").mock_failure_rate(1.0))
        .deployment(mock_deployment("g", "healthy"))
        .build()
        .unwrap();

    let mut failures = 0;
    for _ in 0..500 {
        if router.chat(request("g")).await.is_err() {
            failures += 1;
            if failures == 2 {
                break;
            }
        }
    }
    assert_eq!(failures, 2, "the broken deployment was never picked twice");
    // Cooling down: every call goes to the healthy deployment.
    let counts = tally(&router, "g", 50).await;
    assert_eq!(counts.get("healthy"), Some(&50), "{counts:?}");

    // After the cooldown the broken deployment is picked again.
    tokio::time::advance(Duration::from_secs(11)).await;
    let mut picked_again = false;
    for _ in 0..200 {
        if router.chat(request("g")).await.is_err() {
            picked_again = true;
            break;
        }
    }
    assert!(picked_again);
    settled(&router).await;
}

#[tokio::test]
async fn a_429_cools_a_deployment_down_at_once() {
    let limited = Upstream::with_default("limited", Behaviour::rate_limited(20)).await;
    let healthy = Upstream::start("healthy").await;
    let (builder, _records) = builder();
    let router = builder
        .settings(settings(|s| {
            s.allowed_fails = 100;
            s.num_retries = 0;
        }))
        .deployment(http_deployment("g", "limited", &limited))
        .deployment(http_deployment("g", "healthy", &healthy))
        .build()
        .unwrap();
    let mut limited_seen = false;
    for _ in 0..200 {
        if let Err(err) = router.chat(request("g")).await {
            assert_eq!(err.class(), "rate_limited");
            limited_seen = true;
            break;
        }
    }
    assert!(limited_seen);
    let counts = tally(&router, "g", 30).await;
    assert_eq!(counts.get("healthy"), Some(&30), "{counts:?}");
    assert_eq!(limited.count(), 1);
    settled(&router).await;
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_the_asked_wait() {
    let upstream = Upstream::start("only").await;
    upstream.script([Behaviour::rate_limited(50)]);
    let (builder, mut records) = builder();
    let router = builder
        .deployment(http_deployment("g", "only", &upstream))
        .build()
        .unwrap();
    let routed = router.chat(request("g")).await.unwrap();
    assert_eq!(routed.response.text().as_deref(), Some("hello from only"));
    let record = next_record(&mut records).await;
    assert_eq!(record.status, CallStatus::Success);
    assert_eq!(record.metadata.attempts, 2);
    assert_eq!(upstream.count(), 2);
    settled(&router).await;
}

async fn check_fallback(
    failure: Behaviour,
    configure: impl FnOnce(&mut RouterSettings),
    expected_group: Option<&str>,
) {
    let primary = Upstream::with_default("primary", failure).await;
    let generic = Upstream::start("generic").await;
    let context = Upstream::start("context").await;
    let policy = Upstream::start("policy").await;
    let (builder, mut records) = builder();
    let router = builder
        .settings(settings(|s| {
            s.num_retries = 0;
            configure(s);
        }))
        .deployment(http_deployment("primary", "primary-1", &primary))
        .deployment(http_deployment("generic", "generic-1", &generic))
        .deployment(http_deployment("bigger-context", "context-1", &context))
        .deployment(http_deployment("lenient", "policy-1", &policy))
        .build()
        .unwrap();
    let result = router.chat(request("primary")).await;
    let record = next_record(&mut records).await;
    assert_no_secret(&record);
    match expected_group {
        Some(group) => {
            let routed = result.unwrap();
            assert_eq!(routed.model_group, group);
            assert_eq!(record.model_group, group);
            assert_eq!(record.metadata.fallbacks_tried, vec![group.to_owned()]);
            assert_eq!(record.metadata.attempts, 2);
        }
        None => {
            let err = result.unwrap_err();
            assert!(!format!("{err:?}").contains(SECRET_KEY));
            assert_eq!(err.class(), "bad_request");
            assert_eq!(record.status, CallStatus::Failure);
            assert!(record.metadata.fallbacks_tried.is_empty());
        }
    }
    let others = generic.count() + context.count() + policy.count();
    assert_eq!(others, usize::from(expected_group.is_some()));
    settled(&router).await;
}

fn all_fallbacks(s: &mut RouterSettings) {
    s.fallbacks = fallback_map("primary", &["generic"]);
    s.context_window_fallbacks = fallback_map("primary", &["bigger-context"]);
    s.content_policy_fallbacks = fallback_map("primary", &["lenient"]);
}

#[tokio::test]
async fn generic_fallbacks_follow_a_server_error() {
    check_fallback(Behaviour::server_error(), all_fallbacks, Some("generic")).await;
}

#[tokio::test]
async fn context_window_fallbacks_follow_context_length_exceeded() {
    let failure = Behaviour::bad_request(
        "context_length_exceeded",
        "This model's maximum context length is 8192 tokens",
    );
    check_fallback(failure, all_fallbacks, Some("bigger-context")).await;
}

#[tokio::test]
async fn content_policy_fallbacks_follow_an_azure_content_filter() {
    let failure = Behaviour::bad_request(
        "content_filter",
        "The response was filtered due to the prompt triggering Azure OpenAI's content management policy",
    );
    check_fallback(failure, all_fallbacks, Some("lenient")).await;
}

#[tokio::test]
async fn a_bad_request_does_not_fall_back() {
    let failure = Behaviour::bad_request("invalid_value", "temperature must be at most 2");
    check_fallback(failure, all_fallbacks, None).await;
}

#[tokio::test]
async fn an_upstream_echoing_the_key_leaks_it_nowhere() {
    let upstream = Upstream::with_default(
        "echo",
        Behaviour::Fail {
            status: 401,
            code: Some("invalid_api_key"),
            message: format!("Incorrect API key provided: {SECRET_KEY}"),
            headers: Vec::new(),
        },
    )
    .await;
    let (builder, mut records) = builder();
    let router = builder
        .deployment(http_deployment("g", "echo-1", &upstream))
        .build()
        .unwrap();
    let err = router.chat(request("g")).await.unwrap_err();
    assert_eq!(err.class(), "auth");
    let mut chain = format!("{err} {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    assert!(!chain.contains(SECRET_KEY), "{chain}");
    let (record, _) = record_where(&mut records, |r| r.status == CallStatus::Failure).await;
    assert_no_secret(&record);
    settled(&router).await;
}

#[tokio::test]
async fn unknown_model_suggests_the_nearest_group() {
    let (builder, _records) = builder();
    let router = builder
        .deployment(mock_deployment("gpt-4o", "a"))
        .build()
        .unwrap();
    let err = router.chat(request("gpt-4p")).await.unwrap_err();
    assert!(err.to_string().contains("did you mean `gpt-4o`"), "{err}");
}

/// Load-aware strategies read each deployment's load once per pick: under contention, filtering on a
/// second read once left no candidate and panicked (found by the router benchmark).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_aware_strategies_never_run_out_of_candidates_under_contention() {
    for strategy in [
        RoutingStrategy::LeastBusy,
        RoutingStrategy::LatencyBasedRouting,
        RoutingStrategy::UsageBasedRouting,
    ] {
        let (builder, _records) = builder();
        let router = builder
            .deployment(mock_deployment("busy", "busy-a"))
            .deployment(mock_deployment("busy", "busy-b"))
            .deployment(mock_deployment("busy", "busy-c"))
            .settings(settings(|s| s.routing_strategy = strategy))
            .build()
            .unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let router = router.clone();
                tokio::spawn(async move {
                    for _ in 0..1_500 {
                        router.chat(request("busy")).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            // A panic inside selection surfaces here as a JoinError.
            task.await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_wildcard_serves_any_name_but_its_own_pattern() {
    let upstream = Upstream::start("any").await;
    let (builder, _records) = builder();
    let router = builder
        .deployment(
            mirror_router::ModelDeployment::new("*", "openai/*")
                .unwrap()
                .api_base(upstream.base())
                .api_key(SECRET_KEY),
        )
        .build()
        .unwrap();
    router.chat(request("gpt-4o-mini")).await.unwrap();
    assert_eq!(upstream.only_request().body["model"], "gpt-4o-mini");
    let err = router.chat(request("*")).await.unwrap_err();
    assert!(
        matches!(err, RouterError::UnknownModel { ref model, .. } if model == "*"),
        "{err:?}"
    );
    assert_eq!(upstream.count(), 1, "nothing sent for the pattern itself");
}
