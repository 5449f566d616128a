//! Integration tests of the router against real HTTP upstreams (and the mock provider for volume).

// Helpers shared by tests panic like the tests do; clippy only exempts `#[test]` functions themselves.
#![allow(clippy::unwrap_used)]

mod across;
mod blocking;
mod cancellation;
mod config;
mod controls;
mod messages;
mod mirroring;
mod mirroring_limits;
mod panics;
mod responses;
mod routing;
mod shared_state;
mod silent_budget;
mod silent_health;
mod support;

/// `Router` and the futures of its calls can move between threads.
#[test]
fn router_and_its_futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<mirror_router::Router>();
    is_send_sync::<mirror_router::BlockingRouter>();
    is_send_sync::<mirror_router::MirrorStats>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let (builder, _records) = support::builder();
    let router = builder
        .deployment(support::mock_deployment("m", "m-1"))
        .build()
        .unwrap();
    is_send(&router.chat(support::request("m")));
    is_send(&router.chat_stream(support::request("m")));
    is_send(&router.shutdown(std::time::Duration::from_secs(1)));
}
