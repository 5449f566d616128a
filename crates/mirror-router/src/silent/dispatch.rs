//! The silent dispatcher: runs queued copies through the router, at most `max_in_flight` at once (a
//! backstop: the memory budget in `queue.rs` is what bounds silent work).

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};

use futures::FutureExt as _;
use tokio::sync::{mpsc, watch, Semaphore};

use super::queue::QueuedCopy;
use crate::router::Inner;

/// Runs silent copies: at most `max_in_flight` at once, each under a permit; stops at hard stop.
///
/// A permit is taken before a job is received, so a job waiting for a slot stays in the channel:
/// at most `queue_size` copies are queued and `max_in_flight` running, never one more.
pub(crate) async fn dispatch_loop(
    inner: Weak<Inner>,
    mut receiver: mpsc::Receiver<QueuedCopy>,
    max_in_flight: usize,
    mut hard_stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(max_in_flight));
    loop {
        let permit = tokio::select! {
            biased;
            _ = hard_stop.wait_for(|stop| *stop) => None,
            permit = Arc::clone(&permits).acquire_owned() => permit.ok(),
        };
        let Some(permit) = permit else { break };
        let next = tokio::select! {
            biased;
            _ = hard_stop.wait_for(|stop| *stop) => None,
            next = receiver.recv() => next,
        };
        let Some((job, ticket, home)) = next else {
            break;
        };
        let Some(inner) = inner.upgrade() else {
            // The ticket's drop counts the job as dropped at shutdown.
            drop(ticket);
            break;
        };
        let mut stop = hard_stop.clone();
        let run = async move {
            let mut ticket = ticket;
            ticket.start();
            // A panicking call (a provider's bug) is a failed copy, not one dropped at shutdown;
            // its record says so too (`call.rs`).
            let run = AssertUnwindSafe(inner.run_silent(job)).catch_unwind();
            tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => drop(ticket),
                run = run => ticket.finish(run.unwrap_or(false)),
            }
            drop(permit);
        };
        // A copy fired on a worker of the per-core layout runs there (see `home_runtime`); if that
        // runtime has stopped, the task is dropped and its ticket counts the copy as dropped.
        match home {
            Some(home) => drop(home.spawn(run)),
            None => drop(tokio::spawn(run)),
        }
    }
    // Whatever is still queued is dropped (and counted) with the receiver.
    receiver.close();
    while receiver.recv().await.is_some() {}
}
