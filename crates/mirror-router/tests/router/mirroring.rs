//! Silent mirroring: isolation from the primary, identity of shadows, fan-out, recursion,
//! embeddings, snapshots and connections (the limits are in `mirroring_limits.rs`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use mirror_core::{CallStatus, CallType, SpendKind};
use mirror_providers::{HttpClient, OpenAi};
use mirror_router::{MirrorSettings, ModelDeployment, RouterSettings};
use mirror_test_support::upstream::{tls::CA_PEM, Serving};
use serde_json::json;

use crate::support::{
    self, assert_no_secret, builder, http_deployment, mock_deployment, next_record, record_where,
    request, settled, stream_request, take_records, wait_for_stats, with_metadata, with_retries,
    Behaviour, Upstream,
};

#[tokio::test]
async fn primary_returns_while_shadow_is_held_and_shadow_completes_after_release() {
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

    let routed = router.chat(request("prod")).await.unwrap();
    assert_eq!(
        routed.response.text().as_deref(),
        Some("hello from primary")
    );
    // The primary answered; the shadow's upstream has the copy and is still holding it.
    shadow.wait_for_requests(1).await;
    let primary_record = next_record(&mut records).await;
    assert!(!primary_record.metadata.is_silent_experiment);
    assert_eq!(primary_record.call_id, routed.call_id);
    assert_eq!(primary_record.status, CallStatus::Success);
    let stats = router.mirror_stats();
    assert_eq!((stats.mirrored, stats.running, stats.completed), (1, 1, 0));
    assert!(
        records.try_recv().is_err(),
        "the shadow cannot have a record yet"
    );

    shadow.release();
    let shadow_record = next_record(&mut records).await;
    assert!(shadow_record.metadata.is_silent_experiment);
    assert_eq!(shadow_record.metadata.mirror_of, Some(routed.call_id));
    assert_eq!(shadow_record.trace_id, routed.trace_id);
    assert_ne!(shadow_record.call_id, routed.call_id);
    assert_eq!(shadow_record.model_group, "candidate");
    assert_eq!(shadow_record.model_id, "cand-1");
    assert_eq!(shadow_record.status, CallStatus::Success);
    assert_eq!(shadow_record.metadata.spend, SpendKind::Shadow);
    assert_eq!(primary_record.metadata.spend, SpendKind::Caller);
    assert_no_secret(&primary_record);
    assert_no_secret(&shadow_record);

    // The shadow's body is addressed to its own deployment and carries no gateway metadata.
    let seen = shadow.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(seen[0].body["model"], "gpt-4o-mini");
    assert!(seen[0].body.get("metadata").is_none(), "{}", seen[0].body);
    assert!(!seen[0].is_stream());
    assert_eq!(
        seen[0].authorization(),
        Some(format!("Bearer {}", support::SECRET_KEY).as_str())
    );

    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.completed, stats.failed), (1, 1, 0));
    // Shadow tokens are shadow spend, never the caller's.
    let spend = router.spend();
    assert_eq!((spend.caller_tokens, spend.shadow_tokens), (8, 8));
}

#[tokio::test]
async fn streaming_primary_is_not_slowed_by_a_held_streaming_shadow() {
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

    let routed = router.chat_stream(stream_request("prod")).await.unwrap();
    let mut stream = routed.response;
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        for choice in &chunk.choices {
            if let Some(content) = choice.delta.as_ref().and_then(|d| d.content.as_deref()) {
                text.push_str(content);
            }
        }
    }
    assert_eq!(text, "hello from primary");
    drop(stream);
    let primary_record = next_record(&mut records).await;
    assert!(!primary_record.metadata.is_silent_experiment);
    assert!(primary_record.stream);
    assert_eq!(primary_record.status, CallStatus::Success);

    // The primary was read to the end while the shadow's upstream still held its copy.
    shadow.wait_for_requests(1).await;
    assert_eq!(router.mirror_stats().running, 1);
    let seen = shadow.requests();
    assert!(
        seen[0].is_stream(),
        "the shadow streams too: {}",
        seen[0].body
    );
    assert_eq!(seen[0].body["stream_options"]["include_usage"], json!(true));
    assert!(seen[0].body.get("metadata").is_none());

    shadow.release();
    let shadow_record = next_record(&mut records).await;
    assert!(shadow_record.metadata.is_silent_experiment);
    assert_eq!(shadow_record.metadata.mirror_of, Some(routed.call_id));
    assert_eq!(shadow_record.trace_id, routed.trace_id);
    assert!(shadow_record.stream);
    assert_eq!(shadow_record.status, CallStatus::Success);
    assert!(shadow_record.completion_start_time.is_some());
    assert_eq!(shadow_record.total_tokens, 8);
    let text = shadow_record
        .response
        .as_ref()
        .and_then(mirror_core::RecordResponse::text);
    assert_eq!(text.as_deref(), Some("hello from shadow"));
    let stats = settled(&router).await;
    assert_eq!(stats.completed, 1);
}

/// A router whose `prod` group mirrors to `candidate` served by `shadow`, with no shadow retries.
fn failing_shadow_router(
    primary: &Upstream,
    shadow: &Upstream,
    timeout: Option<f64>,
) -> (
    mirror_router::Router,
    tokio::sync::mpsc::UnboundedReceiver<mirror_core::CallRecord>,
) {
    let (builder, records) = builder();
    let mut candidate = with_retries(http_deployment("candidate", "cand-1", shadow), 0);
    if let Some(seconds) = timeout {
        candidate = candidate.timeout(seconds);
    }
    let router = builder
        .deployment(
            http_deployment("prod", "prod-1", primary)
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(candidate)
        .build()
        .unwrap();
    (router, records)
}

async fn check_shadow_failure_leaves_primary_alone(
    shadow_behaviour: Behaviour,
    timeout: Option<f64>,
    stream: bool,
    expected_class: &str,
) {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::with_default("shadow", shadow_behaviour).await;
    let (router, mut records) = failing_shadow_router(&primary, &shadow, timeout);
    let routed = if stream {
        let routed = router.chat_stream(stream_request("prod")).await.unwrap();
        let chunks: Vec<_> = routed.response.collect().await;
        assert!(chunks.iter().all(Result::is_ok));
        assert!(chunks.len() >= 4);
        routed.call_id
    } else {
        let routed = router.chat(request("prod")).await.unwrap();
        assert_eq!(
            routed.response.text().as_deref(),
            Some("hello from primary")
        );
        routed.call_id
    };
    let (mut shadows, primaries): (Vec<_>, Vec<_>) = take_records(&mut records, 2)
        .await
        .into_iter()
        .partition(|r| r.metadata.is_silent_experiment);
    let (shadow_record, primary_record) = (shadows.remove(0), &primaries[0]);
    assert_eq!(primary_record.call_id, routed);
    assert_eq!(primary_record.status, CallStatus::Success);
    assert_eq!(shadow_record.status, CallStatus::Failure);
    assert_eq!(shadow_record.metadata.mirror_of, Some(routed));
    let info = shadow_record.error_information.as_ref().unwrap();
    assert_eq!(info.error_class, expected_class, "{info:?}");
    assert_no_secret(&shadow_record);
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.completed, stats.failed), (1, 0, 1));
    // A failing shadow group does not slow later primaries either.
    let again = router.chat(request("prod")).await.unwrap();
    assert_eq!(again.response.text().as_deref(), Some("hello from primary"));
    let stats = settled(&router).await;
    assert_eq!(stats.failed, 2);
}

#[tokio::test]
async fn shadow_500_does_not_change_the_primary_and_is_counted_failed() {
    check_shadow_failure_leaves_primary_alone(Behaviour::server_error(), None, false, "upstream")
        .await;
}

#[tokio::test]
async fn shadow_timeout_does_not_change_the_primary_and_is_counted_failed() {
    check_shadow_failure_leaves_primary_alone(Behaviour::Hold, Some(0.3), false, "timeout").await;
}

#[tokio::test]
async fn shadow_connection_reset_does_not_change_the_primary_and_is_counted_failed() {
    check_shadow_failure_leaves_primary_alone(Behaviour::Reset, None, false, "transport").await;
}

#[tokio::test]
async fn streamed_shadow_reset_mid_stream_does_not_change_the_streamed_primary() {
    check_shadow_failure_leaves_primary_alone(Behaviour::Reset, None, true, "transport").await;
}

#[tokio::test]
async fn streamed_shadow_timeout_does_not_change_the_streamed_primary() {
    check_shadow_failure_leaves_primary_alone(Behaviour::Hold, Some(0.3), true, "timeout").await;
}

#[tokio::test]
async fn fan_out_sends_independent_copies_to_each_target() {
    let primary = Upstream::start("primary").await;
    let held = Upstream::held("held").await;
    let quick = Upstream::start("quick").await;
    let (builder, mut records) = builder();
    let router = builder
        .deployment(
            http_deployment("prod", "prod-1", &primary)
                .silent_model(["slow-candidate", "fast-candidate"])
                .unwrap(),
        )
        .deployment(http_deployment("slow-candidate", "slow-1", &held))
        .deployment(http_deployment("fast-candidate", "fast-1", &quick))
        .build()
        .unwrap();
    assert_eq!(
        router.silent_targets("prod"),
        vec!["fast-candidate".to_owned(), "slow-candidate".to_owned()]
    );

    let routed = router.chat(request("prod")).await.unwrap();
    // One copy completes while the other is still held: they are independent.
    let (fast, _) = record_where(&mut records, |r| r.model_group == "fast-candidate").await;
    held.wait_for_requests(1).await;
    wait_for_stats(&router, |s| s.completed == 1 && s.running == 1).await;
    held.release();
    let (slow, _) = record_where(&mut records, |r| r.model_group == "slow-candidate").await;
    for shadow in [&fast, &slow] {
        assert!(shadow.metadata.is_silent_experiment);
        assert_eq!(shadow.metadata.mirror_of, Some(routed.call_id));
        assert_eq!(shadow.trace_id, routed.trace_id);
        assert_eq!(shadow.status, CallStatus::Success);
    }
    assert_ne!(fast.call_id, slow.call_id);
    assert_eq!((held.count(), quick.count(), primary.count()), (1, 1, 1));
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.completed), (2, 2));
}

#[tokio::test]
async fn a_shadow_never_mirrors_again_even_in_a_cycle() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let elsewhere = Upstream::start("elsewhere").await;
    let (builder, mut records) = builder();
    // a -> b -> a is a cycle, and b also names `elsewhere`.
    let router = builder
        .deployment(http_deployment("a", "a-1", &a).silent_model(["b"]).unwrap())
        .deployment(
            http_deployment("b", "b-1", &b)
                .silent_model(["a", "elsewhere"])
                .unwrap(),
        )
        .deployment(http_deployment("elsewhere", "e-1", &elsewhere))
        .build()
        .unwrap();

    let routed = router.chat(request("a")).await.unwrap();
    let stats = settled(&router).await;
    let mut all = take_records(&mut records, 2).await;
    all.retain(|r| r.metadata.is_silent_experiment);
    let shadow = all.pop().unwrap();
    assert_eq!(shadow.model_group, "b");
    assert_eq!(shadow.metadata.mirror_of, Some(routed.call_id));
    assert_eq!((stats.mirrored, stats.completed), (1, 1));
    assert_eq!((a.count(), b.count(), elsewhere.count()), (1, 1, 0));
    assert!(records.try_recv().is_err(), "no shadow of a shadow");
}

#[tokio::test]
async fn primary_retries_do_not_multiply_shadows() {
    let primary = Upstream::start("primary").await;
    primary.script([Behaviour::server_error(), Behaviour::server_error()]);
    let shadow = Upstream::start("shadow").await;
    let (builder, mut records) = builder();
    let router = builder
        .deployment(with_retries(
            http_deployment("prod", "prod-1", &primary)
                .silent_model(["candidate"])
                .unwrap(),
            2,
        ))
        .deployment(http_deployment("candidate", "cand-1", &shadow))
        .build()
        .unwrap();

    let routed = router.chat(request("prod")).await.unwrap();
    assert_eq!(primary.count(), 3);
    let (primary_record, _) = record_where(&mut records, |r| r.call_id == routed.call_id).await;
    assert_eq!(primary_record.metadata.attempts, 3);
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.completed), (1, 1));
    assert_eq!(shadow.count(), 1);
}

#[tokio::test]
async fn embeddings_are_mirrored_like_chat() {
    let embedder = |name: &'static str| {
        Upstream::with_handler(move |call| async move {
            mirror_test_support::upstream::json(
                200,
                json!({"object": "list", "model": call.seen.body["model"],
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.5, if name == "a" { 1.0 } else { 0.9 }]}],
                    "usage": {"prompt_tokens": 2, "total_tokens": 2}}),
            )
        })
    };
    let primary = embedder("a").await;
    let shadow = embedder("b").await;
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
    let request: mirror_core::EmbeddingsRequest = serde_json::from_value(json!({
        "model": "prod", "input": "hello", "dimensions": 3,
        "metadata": {"trace_id": "t-embed", "tags": ["exp"]}
    }))
    .unwrap();
    let answered = router.embeddings(request).await.unwrap();
    assert_eq!(answered.response.data.len(), 1);
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.completed), (1, 1), "{stats:?}");
    assert!(stats.is_balanced());

    // The copy: the silent group's model, the caller's fields, no gateway metadata.
    let copy = shadow.only_request();
    assert_eq!(copy.path, "/v1/embeddings");
    assert_eq!(copy.body["input"], "hello");
    assert_eq!(copy.body["dimensions"], 3);
    assert!(copy.body.get("metadata").is_none());

    let mut both = take_records(&mut records, 2).await;
    both.sort_by_key(|r| r.metadata.is_silent_experiment);
    let (first, second) = (&both[0], &both[1]);
    assert!(second.metadata.is_silent_experiment && !first.metadata.is_silent_experiment);
    assert_eq!(first.call_type, CallType::Embedding);
    assert_eq!(second.call_type, CallType::Embedding);
    assert_eq!(second.metadata.mirror_of, Some(first.call_id));
    assert_eq!(second.trace_id, first.trace_id);
    assert_eq!(second.model_group, "candidate");
    assert_eq!(second.prompt_tokens, 2);
    // No vector is written to a record unless asked for.
    assert!(second.response.is_none());
    assert_eq!(
        second.metadata.embedding.map(|shape| shape.dimensions),
        Some(Some(3))
    );

    // Asked for (`log_embedding_vectors`): both records carry their own vectors.
    let (builder, mut records) = crate::support::builder();
    let router = builder
        .mirror_settings(MirrorSettings {
            log_embedding_vectors: true,
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
    let request: mirror_core::EmbeddingsRequest =
        serde_json::from_value(json!({"model": "prod", "input": "hello"})).unwrap();
    router.embeddings(request).await.unwrap();
    settled(&router).await;
    let mut both = take_records(&mut records, 2).await;
    both.sort_by_key(|r| r.metadata.is_silent_experiment);
    let vectors: Vec<_> = both
        .iter()
        .map(|r| {
            let list = r.response.as_ref().and_then(|r| r.as_embeddings());
            list.and_then(|l| l.data[0].vector())
        })
        .collect();
    assert_eq!(
        vectors,
        [Some(vec![0.5, -0.5, 1.0]), Some(vec![0.5, -0.5, 0.9])]
    );
}

#[tokio::test]
async fn router_settings_default_is_usable_with_mirroring() {
    // The defaults (two retries, cooldowns on) work with a mirrored group.
    let (builder, _records) = builder();
    let router = builder
        .settings(RouterSettings::default())
        .deployment(
            mock_deployment("prod", "prod-1")
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(mock_deployment("candidate", "cand-1"))
        .build()
        .unwrap();
    for _ in 0..10 {
        router.chat(request("prod")).await.unwrap();
    }
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.completed), (10, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_snapshot_is_balanced_while_copies_move_between_counters() {
    let (builder, _records) = builder();
    let router = builder
        .mirror_settings(MirrorSettings {
            max_in_flight: 4,
            queue_size: 8,
            ..MirrorSettings::default()
        })
        .deployment(
            mock_deployment("prod", "prod-1")
                .silent_model(["candidate", "other"])
                .unwrap()
                .silent_sample_rate(0.8),
        )
        .deployment(mock_deployment("candidate", "cand-1"))
        .deployment(mock_deployment("other", "other-1").mock_failure_rate(0.5))
        .build()
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = std::thread::spawn({
        let router = router.clone();
        let stop = std::sync::Arc::clone(&stop);
        move || {
            let mut reads = 0_u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let stats = router.mirror_stats();
                assert!(stats.is_balanced(), "after {reads} reads: {stats:?}");
                reads += 1;
            }
            reads
        }
    });
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move {
                for _ in 0..300 {
                    router.chat(request("prod")).await.unwrap();
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    let stats = settled(&router).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 0);
    assert_eq!(stats.mirrored, 2400);
    assert!(
        stats.dropped_sampled_out > 0 && stats.completed + stats.failed > 0,
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_consumer_that_wants_no_payloads_gets_records_without_messages_and_response() {
    struct NoPayloads(tokio::sync::mpsc::UnboundedSender<mirror_core::CallRecord>);
    impl mirror_router::RecordConsumer for NoPayloads {
        fn consume(&self, record: mirror_core::CallRecord) {
            let _ = self.0.send(record);
        }
        fn wants_payloads(&self) -> bool {
            false
        }
    }
    let upstream = Upstream::start("primary").await;
    let deployment = with_retries(http_deployment("prod", "prod-1", &upstream), 0);
    let (sender, mut lean) = tokio::sync::mpsc::unbounded_channel();
    let lean_router = mirror_router::Router::builder()
        .provider(support::openai())
        .records(NoPayloads(sender))
        .deployment(deployment.clone())
        .build()
        .unwrap();
    let (builder, mut full) = builder();
    let full_router = builder.deployment(deployment).build().unwrap();

    let routed = lean_router.chat(request("prod")).await.unwrap();
    let record = next_record(&mut lean).await;
    assert_eq!(
        (record.messages.as_ref(), record.response.as_ref()),
        (None, None)
    );
    // Everything else is as it always was: the response's id names the record, usage is counted.
    assert_eq!(record.id, routed.response.id);
    assert_eq!(record.call_id, routed.call_id);
    assert_eq!(record.total_tokens, 8);

    full_router.chat(request("prod")).await.unwrap();
    let record = next_record(&mut full).await;
    assert_eq!(record.messages.as_ref().map(Vec::len), Some(1));
    assert_eq!(
        record.response.as_ref().and_then(|r| r.text()).as_deref(),
        Some("hello from primary")
    );

    // A failed call's record is named by its call id, written as the id displays.
    upstream.script([Behaviour::server_error()]);
    let meta = mirror_core::CallMeta::for_request("prod", None);
    let call_id = meta.call_id;
    full_router
        .chat_with_meta(request("prod"), meta)
        .await
        .unwrap_err();
    let record = next_record(&mut full).await;
    assert_eq!(record.status, CallStatus::Failure);
    assert_eq!(record.id, call_id.to_string());
}

/// A primary and its silent copy to the same TLS host, which offers HTTP/2 (both deployments on
/// `http2: auto`): the primary speaks HTTP/2, the copy HTTP/1.1 on a connection of its own, so it
/// can never queue the primary behind the host's stream limit. A caller who writes the
/// silent-copy marker into the primary's metadata changes nothing.
#[tokio::test]
async fn a_silent_copy_never_shares_its_primary_s_connection_whatever_the_caller_marks() {
    let upstream = Upstream::serving("tls-h2", Serving::Tls(vec![b"h2", b"http/1.1"])).await;
    let client = HttpClient::direct_trusting(CA_PEM.as_bytes()).unwrap();
    let (builder, mut records) = builder();
    let router = builder
        .provider(Arc::new(OpenAi::new(client)))
        .deployment(
            http_deployment("prod", "prod-1", &upstream)
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(
            ModelDeployment::new("candidate", "openai/gpt-4.1")
                .unwrap()
                .api_base(upstream.base())
                .api_key(support::SECRET_KEY)
                .id("cand-1"),
        )
        .build()
        .unwrap();
    for _ in 0..2 {
        let marked = with_metadata(request("prod"), json!({"is_silent_experiment": true}));
        router.chat(marked).await.unwrap();
        // One after the other, so that a shared pool would hand a call the other's connection.
        let copies = take_records(&mut records, 2).await;
        assert!(copies
            .iter()
            .any(|record| record.metadata.is_silent_experiment));
    }
    let seen = upstream.requests();
    let of = |model: &str| {
        seen.iter()
            .filter(|seen| seen.body["model"] == model)
            .map(|seen| (seen.peer.unwrap(), seen.version.clone()))
            .collect::<HashSet<_>>()
    };
    let (primaries, copies) = (of("gpt-4o-mini"), of("gpt-4.1"));
    let versions = |seen: &HashSet<(SocketAddr, String)>| {
        seen.iter()
            .map(|(_, version)| version.clone())
            .collect::<HashSet<_>>()
    };
    assert_eq!(versions(&primaries), HashSet::from(["HTTP/2.0".to_owned()]));
    // (An HTTP/1.1 connection may not be back in its pool when the next copy starts: the copies
    // may use more than one.)
    assert_eq!(versions(&copies), HashSet::from(["HTTP/1.1".to_owned()]));
    let peers = |seen: &HashSet<(SocketAddr, String)>| {
        seen.iter().map(|(peer, _)| *peer).collect::<HashSet<_>>()
    };
    assert!(peers(&primaries).is_disjoint(&peers(&copies)), "{seen:#?}");
}
