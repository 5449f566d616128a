//! The blocking router, from plain threads and (wrongly) from inside a runtime.

use std::time::Duration;

use mirror_core::CallStatus;
use mirror_router::{BlockingRouter, RouterError};

use crate::support::{builder, http_deployment, request, stream_request, Upstream, PATIENCE};

/// Starts upstreams on a runtime of their own, so the blocking router's callers have none.
fn upstreams() -> (tokio::runtime::Runtime, Upstream, Upstream) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (primary, shadow) = runtime.block_on(async {
        (
            Upstream::start("primary").await,
            Upstream::held("shadow").await,
        )
    });
    (runtime, primary, shadow)
}

#[test]
fn blocking_router_chats_streams_and_mirrors_from_a_plain_thread() {
    let (_server_runtime, primary, shadow) = upstreams();
    let (builder, mut records) = builder();
    let builder = builder
        .deployment(
            http_deployment("prod", "prod-1", &primary)
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(http_deployment("candidate", "cand-1", &shadow));
    let thread_shadow = shadow.clone();
    let handle = std::thread::spawn(move || {
        let router = BlockingRouter::new(builder).unwrap();
        let routed = router.chat(request("prod")).unwrap();
        assert_eq!(
            routed.response.text().as_deref(),
            Some("hello from primary")
        );

        let routed = router.chat_stream(stream_request("prod")).unwrap();
        let chunks: Vec<_> = routed.response.collect::<Result<_, _>>().unwrap();
        assert!(chunks.len() >= 4);

        // Both shadows are held in the background; the calls above returned regardless.
        let stats = router.router().mirror_stats();
        assert_eq!(stats.mirrored, 2);
        assert_eq!(stats.completed, 0);
        thread_shadow.release();
        let deadline = std::time::Instant::now() + PATIENCE;
        while router.router().mirror_stats().completed < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "shadows never completed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let stats = router.shutdown(Duration::from_secs(5)).unwrap();
        assert!(stats.is_balanced(), "{stats:?}");
        assert_eq!((stats.completed, stats.in_flight()), (2, 0));
    });
    handle.join().unwrap();
    let mut all = Vec::new();
    while let Ok(record) = records.try_recv() {
        all.push(record);
    }
    assert_eq!(all.len(), 4, "{all:#?}");
    assert_eq!(
        all.iter()
            .filter(|r| r.metadata.is_silent_experiment)
            .count(),
        2
    );
    assert!(all.iter().all(|r| r.status == CallStatus::Success));
    assert_eq!(
        shadow.requests().iter().filter(|s| s.is_stream()).count(),
        1
    );
}

#[test]
fn blocking_calls_inside_a_runtime_fail_instead_of_panicking() {
    let (_server_runtime, primary, shadow) = upstreams();
    let (builder, _records) = builder();
    let builder = builder
        .deployment(http_deployment("prod", "prod-1", &primary))
        .deployment(http_deployment("candidate", "cand-1", &shadow));
    let router = BlockingRouter::new(builder).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let err = router.chat(request("prod")).unwrap_err();
        assert!(matches!(err, RouterError::BlockingInRuntime), "{err:?}");
        let err = router.chat_stream(request("prod")).unwrap_err();
        assert!(matches!(err, RouterError::BlockingInRuntime), "{err:?}");
    });
    drop(runtime);
    // The same router works from the plain thread, and a stream made here refuses to be read inside a
    // runtime.
    let mut stream = router.chat_stream(stream_request("prod")).unwrap().response;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let item = stream.next().unwrap();
        assert!(
            matches!(item, Err(RouterError::BlockingInRuntime)),
            "{item:?}"
        );
    });
    drop(runtime);
    assert!(stream.next().unwrap().is_ok());
    drop(stream);
    let err = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                runtime.block_on(async { router.chat(request("prod")).unwrap_err() })
            })
            .join()
            .unwrap()
    });
    assert!(matches!(err, RouterError::BlockingInRuntime));
    let stats = router.shutdown(Duration::from_secs(5)).unwrap();
    assert!(stats.is_balanced());
}
