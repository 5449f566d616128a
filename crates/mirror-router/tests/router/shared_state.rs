//! Several router instances sharing cooldowns, usage and the mirror budget through one Redis.
//!
//! These tests need Redis: `.ci/setup.sh` starts one and prints `MIRROR_TEST_REDIS_URL`. Without it
//! they fail, unless `MIRROR_SKIP_REDIS_TESTS=1`. The test that kills Redis starts its own
//! `redis-server` (from `PATH`) on a free port.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mirror_core::CallRecord;
use mirror_router::{
    MirrorSettings, ModelDeployment, Router, RouterConfig, RouterError, RouterSettings,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::support::{
    builder, http_deployment, mock_deployment, request, settled, Behaviour, Upstream, PATIENCE,
};

/// The shared Redis of the test run, or None (after saying so) when Redis tests are skipped.
fn redis_url() -> Option<String> {
    if let Ok(url) = std::env::var("MIRROR_TEST_REDIS_URL") {
        return Some(url);
    }
    if std::env::var("MIRROR_SKIP_REDIS_TESTS").as_deref() == Ok("1") {
        eprintln!("MIRROR_SKIP_REDIS_TESTS=1: skipping a test that needs Redis");
        return None;
    }
    panic!(
        "MIRROR_TEST_REDIS_URL is not set: this test needs Redis. Run `bash .ci/setup.sh` (it starts \
         redis-server and prints MIRROR_TEST_REDIS_URL=...) and export that line, or set \
         MIRROR_SKIP_REDIS_TESTS=1 to skip the Redis tests"
    );
}

/// Settings that share state through `url` under a key prefix of this test's own.
fn shared_settings(url: &str, configure: impl FnOnce(&mut RouterSettings)) -> RouterSettings {
    let mut settings = RouterSettings::default().with_redis_url(url);
    settings.redis_key_prefix = format!("mirror-test-{}", uuid::Uuid::new_v4().simple());
    settings.redis_sync_interval_ms = 50;
    configure(&mut settings);
    settings
}

/// `n` routers built from the same configuration, each with its own state.
fn instances(
    n: usize,
    config: &RouterConfig,
    mirror: &MirrorSettings,
) -> (Vec<Router>, Vec<mpsc::UnboundedReceiver<CallRecord>>) {
    (0..n)
        .map(|_| {
            let (builder, records) = builder();
            let router = builder
                .config(config.clone())
                .mirror_settings(mirror.clone())
                .build()
                .unwrap();
            (router, records)
        })
        .unzip()
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until every router has synced with Redis twice more: whatever one published before is
/// now seen by all.
async fn all_synced(routers: &[Router]) {
    for router in routers {
        let start = router.shared_state_stats().syncs;
        wait_for("two more syncs", || {
            let stats = router.shared_state_stats();
            stats.connected && stats.syncs >= start + 2
        })
        .await;
    }
}

/// Waits, if needed, until the current wall-clock minute has at least 20 seconds left, so that a
/// test counting per-minute usage stays within one minute.
async fn fresh_minute() {
    let second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 60_000;
    if second > 40_000 {
        tokio::time::sleep(Duration::from_millis(
            u64::try_from(60_000 - second).unwrap() + 500,
        ))
        .await;
    }
}

/// Sends through `router` until `upstream` answers one with a 429 (which cools its deployment
/// down at once).
async fn cool_down_through(router: &Router, upstream: &Upstream) {
    let before = upstream.count();
    for _ in 0..200 {
        let _ = router.chat(request("g")).await;
        if upstream.count() > before {
            return;
        }
    }
    panic!("the rate-limited deployment was never picked");
}

fn two_upstream_config(
    settings: RouterSettings,
    limited: &Upstream,
    healthy: &Upstream,
) -> RouterConfig {
    RouterConfig::default()
        .deployment(http_deployment("g", "limited", limited).rpm(100_000))
        .deployment(http_deployment("g", "healthy", healthy).rpm(100_000))
        .with_settings(settings)
}

trait WithSettings {
    fn with_settings(self, settings: RouterSettings) -> Self;
}

impl WithSettings for RouterConfig {
    fn with_settings(mut self, settings: RouterSettings) -> Self {
        self.router_settings = settings;
        self
    }
}

#[tokio::test]
async fn a_cooldown_set_through_one_instance_is_honoured_by_the_others() {
    let Some(url) = redis_url() else { return };
    let limited = Upstream::with_default("limited", Behaviour::rate_limited(10)).await;
    let healthy = Upstream::start("healthy").await;
    let settings = shared_settings(&url, |s| {
        s.num_retries = 0;
        s.allowed_fails = 100;
        s.cooldown_time = 60.0;
    });
    let config = two_upstream_config(settings, &limited, &healthy);
    let (routers, _records) = instances(3, &config, &MirrorSettings::default());
    all_synced(&routers).await;

    cool_down_through(&routers[0], &limited).await;
    limited.set_default(Behaviour::Answer);
    let seen = limited.count();
    all_synced(&routers).await;
    for router in &routers[1..] {
        for _ in 0..30 {
            let routed = router.chat(request("g")).await.unwrap();
            assert_eq!(routed.deployment_id, "healthy");
        }
    }
    assert_eq!(
        limited.count(),
        seen,
        "another instance called the cooled-down deployment"
    );
    for router in &routers {
        let stats = router.shared_state_stats();
        assert!(
            stats.enabled && stats.connected && stats.errors == 0,
            "{stats:?}"
        );
        assert!(stats.reservations > 0, "{stats:?}");
    }

    // Every key is namespaced and expires: nothing grows without bound.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let pattern = format!("{}:*", config.router_settings.redis_key_prefix);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut connection)
        .await
        .unwrap();
    let expected = ["{limited}:cooldown", "{limited}:rpm:", "{healthy}:rpm:"];
    for part in expected {
        assert!(
            keys.iter().any(|key| key.contains(part)),
            "{part} in {keys:?}"
        );
    }
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 120_000, "{key} has TTL {ttl} ms");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpm_limits_hold_across_instances_under_concurrent_load() {
    let Some(url) = redis_url() else { return };
    // Two deployments, 60 + 90 = 150 requests a minute for the group, against 3 instances x 8
    // workers x 25 attempts = 600 attempts.
    let settings = shared_settings(&url, |s| s.num_retries = 0);
    let config = RouterConfig::default()
        .deployment(mock_deployment("g", "small").rpm(60))
        .deployment(mock_deployment("g", "large").rpm(90))
        .with_settings(settings);
    let (routers, _records) = instances(3, &config, &MirrorSettings::default());
    all_synced(&routers).await;
    fresh_minute().await;

    let admitted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for router in &routers {
        for _ in 0..8 {
            let router = router.clone();
            let (admitted, refused) = (Arc::clone(&admitted), Arc::clone(&refused));
            workers.push(tokio::spawn(async move {
                for _ in 0..25 {
                    match router.chat(request("g")).await {
                        Ok(_) => admitted.fetch_add(1, Ordering::Relaxed),
                        Err(RouterError::NoHealthyDeployment { .. }) => {
                            refused.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(err) => panic!("unexpected error: {err}"),
                    };
                }
            }));
        }
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();
    let admitted = admitted.load(Ordering::Relaxed);
    let refused = refused.load(Ordering::Relaxed);
    let local: u64 = routers
        .iter()
        .map(|r| r.shared_state_stats().local_decisions)
        .sum();
    eprintln!(
        "rpm across 3 instances: limit 150, admitted {admitted}, refused {refused}, decided locally \
         {local}, {:.0} requests/s",
        600.0 / elapsed.as_secs_f64()
    );
    assert_eq!(admitted + refused, 600);
    // Within 5% of the group's limit (exact while Redis answers in time).
    assert!(
        (143..=157).contains(&admitted),
        "admitted {admitted} of a 150 rpm limit"
    );
}

#[tokio::test]
async fn max_mirrors_per_minute_holds_across_instances() {
    let Some(url) = redis_url() else { return };
    let settings = shared_settings(&url, |_| {});
    let config = RouterConfig::default()
        .deployment(
            mock_deployment("prod", "prod-1")
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(mock_deployment("candidate", "candidate-1"))
        .with_settings(settings);
    let mirror = MirrorSettings {
        max_mirrors_per_minute: Some(10),
        ..MirrorSettings::default()
    };
    let (routers, _records) = instances(2, &config, &mirror);
    all_synced(&routers).await;
    fresh_minute().await;

    for _ in 0..8 {
        routers[0].chat(request("prod")).await.unwrap();
    }
    all_synced(&routers).await;
    for _ in 0..8 {
        routers[1].chat(request("prod")).await.unwrap();
    }
    let first = settled(&routers[0]).await;
    let second = settled(&routers[1]).await;
    assert_eq!((first.completed, first.dropped_rate_capped), (8, 0));
    assert_eq!(
        (second.completed, second.dropped_rate_capped),
        (2, 6),
        "{second:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn max_mirrors_per_minute_holds_in_memory_and_resets_each_minute() {
    let (builder, _records) = builder();
    let router = builder
        .mirror_settings(MirrorSettings {
            max_mirrors_per_minute: Some(3),
            ..MirrorSettings::default()
        })
        .deployment(
            mock_deployment("prod", "prod-1")
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(mock_deployment("candidate", "candidate-1"))
        .build()
        .unwrap();
    for _ in 0..5 {
        router.chat(request("prod")).await.unwrap();
    }
    let snapshot = settled(&router).await;
    assert_eq!((snapshot.completed, snapshot.dropped_rate_capped), (3, 2));
    tokio::time::advance(Duration::from_secs(61)).await;
    for _ in 0..5 {
        router.chat(request("prod")).await.unwrap();
    }
    let snapshot = settled(&router).await;
    assert_eq!((snapshot.completed, snapshot.dropped_rate_capped), (6, 4));
    assert!(!router.shared_state_stats().enabled);
}

/// A `redis-server` of the test's own, killed when dropped.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = OwnRedis { port, child: None };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start `redis-server` from PATH: {err}"));
        self.child = Some(child);
        let deadline = std::time::Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not listen on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_fails_no_request_and_sharing_resumes() {
    // Needs only `redis-server` on PATH, but it is there exactly when the shared one is.
    if redis_url().is_none() {
        return;
    }
    let mut redis = OwnRedis::start();
    let limited = Upstream::start("limited").await;
    let healthy = Upstream::start("healthy").await;
    let settings = shared_settings(&redis.url(), |s| {
        s.num_retries = 0;
        s.allowed_fails = 100;
        s.cooldown_time = 60.0;
    });
    let config = two_upstream_config(settings, &limited, &healthy);
    let (routers, _records) = instances(2, &config, &MirrorSettings::default());
    all_synced(&routers).await;
    let send = |rounds: usize| {
        let routers = routers.clone();
        async move {
            for _ in 0..rounds {
                for router in &routers {
                    let routed = router.chat(request("g")).await;
                    assert!(routed.is_ok(), "a request failed: {routed:?}");
                }
            }
        }
    };
    send(20).await;

    redis.kill();
    // Requests keep being served while Redis is gone, and both instances notice.
    let deadline = Instant::now() + PATIENCE;
    while routers
        .iter()
        .any(|r| r.shared_state_stats().connected || r.shared_state_stats().errors == 0)
    {
        assert!(Instant::now() < deadline, "the outage was not noticed");
        send(5).await;
    }
    send(50).await;
    for router in &routers {
        let stats = router.shared_state_stats();
        assert!(!stats.connected && stats.errors > 0, "{stats:?}");
    }

    redis.restart();
    let deadline = Instant::now() + PATIENCE;
    while routers.iter().any(|r| !r.shared_state_stats().connected) {
        assert!(Instant::now() < deadline, "the instances did not rejoin");
        send(5).await;
    }
    all_synced(&routers).await;

    // Sharing resumes: a cooldown set through one instance holds for the other.
    limited.set_default(Behaviour::rate_limited(10));
    cool_down_through(&routers[0], &limited).await;
    limited.set_default(Behaviour::Answer);
    let seen = limited.count();
    all_synced(&routers).await;
    for _ in 0..30 {
        let routed = routers[1].chat(request("g")).await.unwrap();
        assert_eq!(routed.deployment_id, "healthy");
    }
    assert_eq!(limited.count(), seen);
    let stats = routers[1].shared_state_stats();
    assert!(stats.connected && stats.errors > 0, "{stats:?}");
}

#[test]
fn redis_settings_are_read_with_litellm_names_and_env_references() {
    std::env::set_var("MIRROR_ROUTER_TEST_REDIS_PORT", "6380");
    std::env::set_var("MIRROR_ROUTER_TEST_REDIS_PASSWORD", "hunter2-redis");
    let config = RouterConfig::from_yaml_str(
        "
model_list:
  - model_name: g
    litellm_params: {model: mock/echo}
router_settings:
  redis_host: 127.0.0.1
  redis_port: os.environ/MIRROR_ROUTER_TEST_REDIS_PORT
  redis_password: os.environ/MIRROR_ROUTER_TEST_REDIS_PASSWORD
  redis_sync_interval_ms: 250
",
        "config.yaml",
    )
    .unwrap();
    let settings = &config.router_settings;
    assert_eq!(settings.redis_host.as_deref(), Some("127.0.0.1"));
    assert_eq!(settings.redis_port, Some(6380));
    assert_eq!(
        settings.redis_password.as_ref().map(|p| p.expose()),
        Some("hunter2-redis")
    );
    assert_eq!(settings.redis_sync_interval_ms, 250);
    assert!(settings.is_shared());
    assert!(
        config.ignored_keys().is_empty(),
        "{:?}",
        config.ignored_keys()
    );
    assert!(!format!("{settings:?}").contains("hunter2"));

    let err = RouterConfig::from_yaml_str(
        "router_settings: {redis_host: h, redis_port: not-a-port}\n",
        "config.yaml",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("invalid port `not-a-port`"),
        "{err}"
    );
    let err = RouterConfig::from_yaml_str(
        "router_settings: {redis_url: os.environ/MIRROR_ROUTER_TEST_UNSET_REDIS}\n",
        "config.yaml",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("environment variable `MIRROR_ROUTER_TEST_UNSET_REDIS` is not set"),
        "{err}"
    );
}

#[tokio::test]
async fn an_invalid_redis_url_is_refused_without_echoing_it() {
    let (builder, _records) = builder();
    let err = builder
        .settings(RouterSettings::default().with_redis_url("http://user:s3cret@host"))
        .deployment(ModelDeployment::new("g", "mock/echo").unwrap())
        .build()
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("router_settings.redis_url"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

#[tokio::test]
async fn an_unreachable_redis_leaves_the_router_serving_on_local_state() {
    // A port nothing listens on: connecting fails at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = shared_settings(&format!("redis://127.0.0.1:{port}"), |s| {
        s.num_retries = 0;
    });
    let (builder, _records) = builder();
    let router = builder
        .settings(settings)
        .deployment(mock_deployment("g", "g-1").rpm(5))
        .build()
        .unwrap();
    wait_for("the failed connection to be counted", || {
        router.shared_state_stats().errors > 0
    })
    .await;
    fresh_minute().await;
    let results: Vec<bool> = {
        let mut results = Vec::new();
        for _ in 0..8 {
            results.push(router.chat(request("g")).await.is_ok());
        }
        results
    };
    // The rpm limit still holds, on local state.
    assert_eq!(results.iter().filter(|ok| **ok).count(), 5, "{results:?}");
    let stats = router.shared_state_stats();
    assert!(stats.enabled && !stats.connected, "{stats:?}");
    assert!(stats.local_decisions >= 5, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_rates_and_spend_apply_on_every_instance() {
    let Some(url) = redis_url() else { return };
    let settings = shared_settings(&url, |_| {});
    let mut candidate = mock_deployment("candidate", "candidate-1");
    candidate.litellm_params.input_cost_per_token = Some(0.001);
    let config = RouterConfig::default()
        .deployment(
            mock_deployment("prod", "prod-1")
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(candidate)
        .with_settings(settings);
    let mirror = MirrorSettings {
        silent_targets: [(
            "candidate".to_owned(),
            mirror_router::SilentTargetSettings {
                max_spend_usd: Some(0.000_001),
                ..Default::default()
            },
        )]
        .into_iter()
        .collect(),
        ..MirrorSettings::default()
    };
    let (routers, _records) = instances(2, &config, &mirror);
    all_synced(&routers).await;

    // A target switched off and re-rated on one instance is so on the other.
    routers[0]
        .set_target(
            "candidate",
            mirror_router::TargetChange {
                enabled: Some(false),
                sample_rate: Some(0.25),
            },
        )
        .unwrap();
    all_synced(&routers).await;
    let target = &routers[1].mirror_controls().targets[0];
    assert_eq!((target.enabled, target.sample_rate), (false, 0.25));
    routers[1].set_mirroring(false);
    all_synced(&routers).await;
    assert!(!routers[0].is_mirroring());
    routers[0].set_mirroring(true);
    routers[1]
        .set_target(
            "candidate",
            mirror_router::TargetChange {
                enabled: Some(true),
                sample_rate: Some(1.0),
            },
        )
        .unwrap();
    all_synced(&routers).await;
    assert!(routers[1].is_mirroring());

    // What one instance's shadows spent counts against the budget on the other.
    routers[0].chat(request("prod")).await.unwrap();
    assert_eq!(settled(&routers[0]).await.completed, 1);
    all_synced(&routers).await;
    let target = &routers[1].mirror_controls().targets[0];
    assert_eq!(target.state, "budget_exhausted", "{target:?}");
    routers[1].chat(request("prod")).await.unwrap();
    let stats = settled(&routers[1]).await;
    assert_eq!((stats.mirrored, stats.dropped_budget_exhausted), (1, 1));
}
