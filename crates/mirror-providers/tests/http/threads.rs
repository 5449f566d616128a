//! `pools_per_thread`: a thread that asks for its own pools never reuses a connection opened on
//! another thread (whose task runs on that thread's runtime), while threads with the shared pool do.

use std::collections::HashSet;

use mirror_providers::{HttpClient, OpenAi, Provider};
use mirror_test_support::upstream::tls::CA_PEM;
use tokio::sync::oneshot;

use crate::support::{deployment, hello, Upstream};

/// Two threads, each on its own current-thread runtime kept running, call the upstream one after
/// the other through one client; returns how many connections carried the two calls.
fn connections_of_two_threads(per_thread: bool) -> usize {
    let server = tokio::runtime::Runtime::new().unwrap();
    let upstream = server.block_on(Upstream::start("threads"));
    // The direct client (hyper-util), whatever proxy variables say; the CA is unused on http://.
    let client = HttpClient::direct_trusting(CA_PEM.as_bytes()).unwrap();
    let params = deployment("openai/gpt-4o-mini", &upstream.base());
    let mut releases = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..2 {
        let (client, params) = (client.clone(), params.clone());
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = oneshot::channel::<()>();
        threads.push(std::thread::spawn(move || {
            if per_thread {
                mirror_providers::pools_per_thread();
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let answer = OpenAi::new(client).chat(&params, &hello()).await;
                done_tx.send(answer.is_ok()).unwrap();
                // Keeps driving this runtime, and the connections whose tasks live on it.
                let _ = release_rx.await;
            });
        }));
        // One after the other: the first call's connection is idle in a pool when the second
        // call starts.
        assert!(done_rx.recv().unwrap(), "a call failed");
        releases.push(release_tx);
    }
    let connections = upstream
        .requests()
        .iter()
        .map(|seen| seen.peer.unwrap())
        .collect::<HashSet<_>>()
        .len();
    drop(releases);
    for thread in threads {
        thread.join().unwrap();
    }
    connections
}

#[test]
fn threads_with_their_own_pools_never_share_a_connection() {
    assert_eq!(connections_of_two_threads(true), 2);
    // The control: with the shared pool the second thread takes the first one's idle connection.
    assert_eq!(connections_of_two_threads(false), 1);
}
