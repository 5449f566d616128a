//! The accept loop: HTTP/1.1 connections with a header timeout, a minimum body rate, a limit on
//! open connections and on request-body bytes in memory, and a back-off when accepting fails
//! (out of file descriptors) instead of a spin.
//!
//! It replaces `axum::serve`, which has none of these limits. HTTP/1.1 only, as LiteLLM's proxy
//! (uvicorn) and every OpenAI SDK speak it; plain-text HTTP/2 would need its own idle and stream
//! limits for no client that asks for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::limits::CheckedLimits;

/// The largest request head (request line and headers) a connection may send; a larger one gets
/// hyper's 431 and the connection is closed. It also bounds each connection's read buffer.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The longest wait between two tries when accepting fails for want of resources.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// What happened to client connections, for `/metrics`: every connection the limits cut is
/// counted.
#[derive(Debug, Default)]
pub(crate) struct ClientStats {
    open: AtomicU64,
    accepted: AtomicU64,
    accept_errors: AtomicU64,
    header_timeouts: AtomicU64,
    closed_at_shutdown: AtomicU64,
    /// Connections accepted by each worker of the per-core layout (unset in the shared one).
    workers: OnceLock<Box<[AtomicU64]>>,
}

impl ClientStats {
    /// Counts connections per worker from now on: `workers` accept loops, numbered from 0.
    pub(crate) fn per_worker(&self, workers: usize) {
        let _ = self
            .workers
            .set((0..workers).map(|_| AtomicU64::new(0)).collect());
    }

    /// Counts connections cut at the shutdown deadline.
    pub(crate) fn closed_at_shutdown(&self, connections: usize) {
        self.closed_at_shutdown
            .fetch_add(connections as u64, Ordering::Relaxed);
    }

    /// Appends the counters to a Prometheus text page.
    pub(crate) fn render(&self, out: &mut String, bodies: &BodyBudget) {
        use std::fmt::Write;
        let rows: [(&str, &str, &str, u64); 6] = [
            ("mirror_client_connections", "gauge", "Open client connections.", self.open.load(Ordering::Relaxed)),
            ("mirror_client_connections_accepted_total", "counter", "Client connections accepted.", self.accepted.load(Ordering::Relaxed)),
            ("mirror_client_accept_errors_total", "counter", "Failed accepts (out of descriptors or memory), each followed by a back-off.", self.accept_errors.load(Ordering::Relaxed)),
            ("mirror_client_header_timeouts_total", "counter", "Connections closed for not sending a request head within client_header_timeout (idle ones included).", self.header_timeouts.load(Ordering::Relaxed)),
            ("mirror_client_closed_at_shutdown_total", "counter", "Connections still open at the shutdown deadline, closed then.", self.closed_at_shutdown.load(Ordering::Relaxed)),
            ("mirror_request_body_bytes_in_flight", "gauge", "Request-body bytes held by all requests (max_body_bytes_in_flight).", bodies.used()),
        ];
        for (name, kind, help, value) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        if let Some(workers) = self.workers.get() {
            let name = "mirror_worker_connections_accepted_total";
            let _ = writeln!(
                out,
                "# HELP {name} Client connections accepted by each worker thread (--runtime per-core).\n# TYPE {name} counter"
            );
            for (worker, accepted) in workers.iter().enumerate() {
                let accepted = accepted.load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{worker=\"{worker}\"}} {accepted}");
            }
        }
    }
}

/// Request-body bytes held by every request at once.
#[derive(Debug)]
pub(crate) struct BodyBudget {
    limit: u64,
    used: AtomicU64,
}

impl BodyBudget {
    pub(crate) fn new(limit: u64) -> Self {
        BodyBudget {
            limit,
            used: AtomicU64::new(0),
        }
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

/// One request's share of the [`BodyBudget`], given back when the request is over (dropped).
#[derive(Debug)]
struct BodyCharge {
    budget: Arc<BodyBudget>,
    charged: AtomicU64,
}

impl BodyCharge {
    fn add(&self, bytes: u64) -> bool {
        let before = self.budget.used.fetch_add(bytes, Ordering::AcqRel);
        if before.saturating_add(bytes) > self.budget.limit {
            self.budget.used.fetch_sub(bytes, Ordering::AcqRel);
            return false;
        }
        self.charged.fetch_add(bytes, Ordering::Relaxed);
        true
    }
}

impl Drop for BodyCharge {
    fn drop(&mut self) {
        let charged = *self.charged.get_mut();
        self.budget.used.fetch_sub(charged, Ordering::AcqRel);
    }
}

/// Why a request body was cut off; the handlers map it to an OpenAI-shaped answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// The body arrived slower than `client_body_min_rate`.
    #[error(
        "request body arrived slower than {rate} bytes per second \
         (`mirror_settings.client_body_min_rate`)"
    )]
    TooSlow {
        /// The minimum rate.
        rate: u64,
    },
    /// Taking it would put the request bodies in memory past `max_body_bytes_in_flight`.
    #[error(
        "the gateway holds too many request bodies at once \
         (`mirror_settings.max_body_bytes_in_flight`); retry shortly"
    )]
    OverBudget,
    /// The connection failed.
    #[error("cannot read the request body")]
    Read(#[source] hyper::Error),
}

/// A request body with a minimum rate, charged to the body budget as it arrives.
struct GuardedBody {
    inner: Incoming,
    charge: Arc<BodyCharge>,
    started: Instant,
    received: u64,
    rate: u64,
    grace: Duration,
    timer: Pin<Box<Sleep>>,
    done: bool,
}

impl GuardedBody {
    /// The body must have `received` bytes by `started + grace + received / rate`, so a slow body
    /// is cut at the first moment it falls below the rate, however large it is.
    fn deadline(&self) -> Instant {
        let earned = Duration::from_secs_f64(self.received as f64 / self.rate as f64);
        self.started + self.grace + earned
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let bytes = data.len() as u64;
                    if !this.charge.add(bytes) {
                        this.done = true;
                        return Poll::Ready(Some(Err(BodyError::OverBudget)));
                    }
                    this.received += bytes;
                    let deadline = this.deadline();
                    this.timer.as_mut().reset(deadline);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                this.done = true;
                Poll::Ready(Some(Err(BodyError::Read(err))))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.done = true;
                    Poll::Ready(Some(Err(BodyError::TooSlow { rate: this.rate })))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection limit, shared by every accept loop (one per worker in the per-core layout), and
/// the signal that a connection closed (an accept loop backing off may try again).
#[derive(Clone)]
pub(crate) struct Slots {
    permits: Arc<Semaphore>,
    closed: Arc<Notify>,
}

impl Slots {
    pub(crate) fn new(max_connections: usize) -> Self {
        Slots {
            permits: Arc::new(Semaphore::new(max_connections)),
            closed: Arc::new(Notify::new()),
        }
    }
}

/// A connection slot, once one is free; `None` when the gateway stops first (or the limit is closed).
async fn take_slot(
    slots: &Arc<Semaphore>,
    stop: &mut watch::Receiver<bool>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    tokio::select! {
        slot = Arc::clone(slots).acquire_owned() => slot.ok(),
        _ = stop.wait_for(|stop| *stop) => None,
    }
}

/// Accepts connections until `stop` turns true, then returns the open ones, which were told to
/// finish their current request and close. `worker` is the accept loop's number in the per-core
/// layout. The connections are served on the runtime this runs on.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn accept(
    listener: TcpListener,
    app: axum::Router,
    limits: CheckedLimits,
    budget: Arc<BodyBudget>,
    stats: Arc<ClientStats>,
    slots: Slots,
    worker: Option<usize>,
    mut stop: watch::Receiver<bool>,
) -> JoinSet<()> {
    let Slots {
        permits: slots,
        closed,
    } = slots;
    let mut connections = JoinSet::new();
    let mut backoff = Duration::from_millis(5);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let builder = Arc::new(builder);
    loop {
        while connections.try_join_next().is_some() {}
        // At the limit, stop accepting: new connections wait in the kernel's backlog, and the
        // timeouts close the idle and slow ones that hold the slots. With one loop per worker the
        // slot is taken after the accept instead: a worker idle on its listener must not hold a slot
        // that a connection queued at another worker's listener is waiting for (each accepted
        // connection waiting for a slot is one per worker at most).
        let mut early = None;
        if worker.is_none() {
            let Some(slot) = take_slot(&slots, &mut stop).await else {
                break;
            };
            early = Some(slot);
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let tcp = match accepted {
            Ok((tcp, _remote)) => {
                backoff = Duration::from_millis(5);
                if let (Some(worker), Some(workers)) = (worker, stats.workers.get()) {
                    if let Some(accepted) = workers.get(worker) {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tcp
            }
            // The peer gave up before we took it: nothing to wait for.
            Err(err) if is_per_connection(&err) => continue,
            Err(err) => {
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                // Out of descriptors (EMFILE, ENFILE) or memory: the open connections keep being
                // served; try again when one closes, or after a growing pause, never in a spin.
                // An error, not a warning: the default log level shows it, and the back-off keeps it
                // to a few lines a second.
                tracing::error!(
                    error = %err,
                    retry_in_ms = backoff.as_millis() as u64,
                    "Cannot accept a connection."
                );
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = closed.notified() => {}
                    _ = stop.wait_for(|stop| *stop) => break,
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        let slot = match early {
            Some(slot) => slot,
            None => match take_slot(&slots, &mut stop).await {
                Some(slot) => slot,
                None => break,
            },
        };
        // Without TCP_NODELAY, every streamed chunk after the first waits for the client's delayed
        // ACK (40 ms on Linux); the benchmark showed it as a 42 ms stream p99.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "Cannot set TCP_NODELAY.");
        }
        let app = app.clone();
        let budget = Arc::clone(&budget);
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let charge = Arc::new(BodyCharge {
                budget: Arc::clone(&budget),
                charged: AtomicU64::new(0),
            });
            let started = Instant::now();
            let request = request.map(|inner| {
                axum::body::Body::new(GuardedBody {
                    inner,
                    charge: Arc::clone(&charge),
                    started,
                    received: 0,
                    rate: limits.body_min_rate,
                    grace: limits.body_grace,
                    timer: Box::pin(tokio::time::sleep_until(started + limits.body_grace)),
                    done: false,
                })
            });
            let mut app = app.clone();
            async move {
                let response = app.call(request).await;
                // The body's bytes count until the handler is done with the request.
                drop(charge);
                response
            }
        });
        let connection = builder.serve_connection(TokioIo::new(tcp), service);
        let mut stop = stop.clone();
        let closed = Arc::clone(&closed);
        let open = OpenConnection::new(Arc::clone(&stats));
        connections.spawn(async move {
            let _slot = slot;
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => Some(ended),
                _ = stop.wait_for(|stop| *stop) => None,
            };
            let ended = match ended {
                Some(ended) => ended,
                None => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if ended.is_err_and(|err| err.is_timeout()) {
                open.0.header_timeouts.fetch_add(1, Ordering::Relaxed);
            }
            closed.notify_one();
        });
    }
    connections
}

/// One open connection, counted until its task ends or is aborted.
struct OpenConnection(Arc<ClientStats>);

impl OpenConnection {
    fn new(stats: Arc<ClientStats>) -> Self {
        stats.open.fetch_add(1, Ordering::Relaxed);
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        OpenConnection(stats)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accept errors that concern one connection only (it was reset before we took it).
fn is_per_connection(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
