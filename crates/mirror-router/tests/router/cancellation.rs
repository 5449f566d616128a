//! Cancel safety: a call whose future is dropped mid-call (a client that hangs up, a handler
//! cancelled at shutdown) leaks no deployment load, is recorded exactly once as cancelled, and keeps
//! the silent accounting balanced.

use std::time::Duration;

use futures::StreamExt;
use mirror_core::{CallRecord, CallStatus};
use mirror_router::{Router, RouterSettings, RoutingStrategy};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::support::{
    builder, drain, http_deployment, record_where, request, settled, stream_request, with_retries,
    Behaviour, Upstream, PATIENCE,
};

/// Every deployment's in-flight load, summed.
fn load(router: &Router) -> u64 {
    router.in_flight().iter().map(|(_, _, calls)| calls).sum()
}

/// Waits for the one cancelled record of a primary call and checks there is no other record of it.
async fn cancelled_primary(records: &mut UnboundedReceiver<CallRecord>) -> CallRecord {
    let (record, _) = record_where(records, |r| !r.metadata.is_silent_experiment).await;
    assert_eq!(record.status, CallStatus::Cancelled, "{record:?}");
    let info = record
        .error_information
        .as_ref()
        .expect("error information");
    assert_eq!(info.error_class, "cancelled");
    // Nothing else arrives for this call, even later.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let more: Vec<CallRecord> = drain(records)
        .into_iter()
        .filter(|r| r.call_id == record.call_id)
        .collect();
    assert!(more.is_empty(), "recorded twice: {more:?}");
    record
}

/// Spawns `call`, waits until `upstream` saw `arrivals` requests, then drops the call's future.
async fn drop_when_arrived<F>(upstream: &Upstream, arrivals: usize, call: F)
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let task = tokio::spawn(call);
    upstream.wait_for_requests(arrivals).await;
    task.abort();
    let joined = tokio::time::timeout(PATIENCE, task).await.expect("abort");
    assert!(joined.is_err_and(|err| err.is_cancelled()));
}

#[tokio::test]
async fn a_dropped_call_releases_its_load_and_is_recorded_once_as_cancelled() {
    let primary = Upstream::held("primary").await;
    let shadow = Upstream::start("shadow").await;
    let (builder, mut records) = builder();
    let router = builder
        .deployment(
            http_deployment("g", "p", &primary)
                .silent_model(["s"])
                .unwrap(),
        )
        .deployment(http_deployment("s", "s-1", &shadow))
        .build()
        .unwrap();

    let call = {
        let router = router.clone();
        async move { router.chat(request("g")).await }
    };
    drop_when_arrived(&primary, 1, call).await;

    assert_eq!(load(&router), 0, "{:?}", router.in_flight());
    let record = cancelled_primary(&mut records).await;
    assert_eq!(record.model_id, "p");
    assert_eq!(record.metadata.attempts, 1);
    // The copy was fired with the first pick, before the primary was dropped: it still runs.
    let snapshot = settled(&router).await;
    assert_eq!((snapshot.mirrored, snapshot.completed), (1, 1));
    primary.release();
}

#[tokio::test]
async fn a_call_dropped_while_a_retry_waits_releases_its_load() {
    let primary = Upstream::start("primary").await;
    // A 500 that asks for a long wait: the router sleeps before its retry.
    primary.set_default(Behaviour::Fail {
        status: 500,
        code: Some("server_error"),
        message: "try later".to_owned(),
        headers: vec![("retry-after", "30".to_owned())],
    });
    let (builder, mut records) = builder();
    let router = builder
        .deployment(with_retries(http_deployment("g", "p", &primary), 3))
        .build()
        .unwrap();

    let call = {
        let router = router.clone();
        async move { router.chat(request("g")).await }
    };
    drop_when_arrived(&primary, 1, call).await;

    assert_eq!(load(&router), 0, "{:?}", router.in_flight());
    let record = cancelled_primary(&mut records).await;
    assert_eq!(record.metadata.attempts, 1);
    assert_eq!(primary.count(), 1, "no retry after the caller left");
}

#[tokio::test]
async fn a_stream_dropped_before_it_started_releases_its_load() {
    let primary = Upstream::held("primary").await;
    let (builder, mut records) = builder();
    let router = builder
        .deployment(http_deployment("g", "p", &primary))
        .build()
        .unwrap();

    let call = {
        let router = router.clone();
        async move { router.chat_stream(stream_request("g")).await.map(|_| ()) }
    };
    drop_when_arrived(&primary, 1, call).await;

    assert_eq!(load(&router), 0, "{:?}", router.in_flight());
    let record = cancelled_primary(&mut records).await;
    assert!(record.stream);
    primary.release();
}

#[tokio::test]
async fn a_stream_dropped_mid_way_holds_its_load_until_then_and_is_recorded_once() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    let (builder, mut records) = builder();
    let router = builder
        .settings({
            let mut settings = RouterSettings::default();
            settings.routing_strategy = RoutingStrategy::LeastBusy;
            settings
        })
        .deployment(
            http_deployment("g", "p", &primary)
                .silent_model(["s"])
                .unwrap(),
        )
        .deployment(http_deployment("s", "s-1", &shadow))
        .build()
        .unwrap();

    let mut stream = router
        .chat_stream(stream_request("g"))
        .await
        .unwrap()
        .response;
    let first = stream.next().await.expect("a chunk").expect("not an error");
    drop(first);
    // The stream is open: its deployment is busy.
    assert_eq!(
        router.in_flight(),
        vec![
            ("g".to_owned(), "p".to_owned(), 1),
            ("s".to_owned(), "s-1".to_owned(), 0)
        ]
    );
    drop(stream);

    let record = cancelled_primary(&mut records).await;
    assert!(record.stream);
    let snapshot = settled(&router).await;
    assert_eq!((snapshot.mirrored, snapshot.completed), (1, 1));
    assert_eq!(load(&router), 0, "{:?}", router.in_flight());
}

#[tokio::test]
async fn a_silent_call_cut_at_shutdown_is_recorded_as_cancelled_and_balanced() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::held("shadow").await;
    let (builder, mut records) = builder();
    let router = builder
        .deployment(
            http_deployment("g", "p", &primary)
                .silent_model(["s"])
                .unwrap(),
        )
        .deployment(http_deployment("s", "s-1", &shadow))
        .build()
        .unwrap();

    router.chat(request("g")).await.unwrap();
    shadow.wait_for_requests(1).await;
    let snapshot = router.shutdown(Duration::from_millis(50)).await;
    assert!(snapshot.is_balanced(), "{snapshot:?}");
    assert_eq!(
        (
            snapshot.mirrored,
            snapshot.dropped_shutdown,
            snapshot.in_flight()
        ),
        (1, 1, 0)
    );

    let (silent, _) = record_where(&mut records, |r| r.metadata.is_silent_experiment).await;
    assert_eq!(silent.status, CallStatus::Cancelled);
    assert_eq!(silent.model_id, "s-1");
    assert_eq!(load(&router), 0, "{:?}", router.in_flight());
    shadow.release();
}
