//! The per-core layout (`mirror serve --runtime per-core`): one thread per worker, each running a
//! current-thread Tokio runtime with its own listener on the shared port (`SO_REUSEPORT`, so the
//! kernel spreads new connections over the listeners), so that a request's accept, parsing,
//! upstream call (on the thread's own connection pools) and answer stay on one thread and never
//! wake another. Silent copies fired on a worker run on it too.
//!
//! What stays shared: the router and its state (atomics), the connection limit and the body
//! budget (one semaphore and one counter for all workers), the counters of `/metrics`, and the
//! background tasks (the silent dispatcher, the log writer, reloads, signals), which run on the
//! runtime that calls [`Gateway::serve_per_core`].

use std::net::{SocketAddr, ToSocketAddrs};
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::listen::{self, Slots};
use super::{Gateway, GatewayError, ShutdownReport};

/// The kernel's backlog of each listener (what `std` and tokio ask for).
const BACKLOG: i32 = 1024;

/// Binds `workers` listeners to `address`, all on the same port with `SO_REUSEPORT`, for
/// [`Gateway::serve_per_core`]. With port 0 the first listener picks a free port and the others
/// join it.
///
/// # Errors
///
/// [`GatewayError::Io`] when the address does not resolve or cannot be bound (`SO_REUSEPORT` is
/// Linux's and the BSDs'; on Linux only processes of the same user may join the port).
pub fn bind_per_core(
    address: &str,
    workers: NonZeroUsize,
) -> Result<Vec<std::net::TcpListener>, GatewayError> {
    let failed = |source: std::io::Error| GatewayError::Io {
        address: address.to_owned(),
        source,
    };
    let mut at: SocketAddr = address
        .to_socket_addrs()
        .map_err(failed)?
        .next()
        .ok_or_else(|| failed(std::io::Error::other("the address resolves to nothing")))?;
    let mut listeners = Vec::with_capacity(workers.get());
    for _ in 0..workers.get() {
        let listener = bind_shared(at).map_err(failed)?;
        // Port 0: the others join the port the first one was given.
        at = listener.local_addr().map_err(failed)?;
        listeners.push(listener);
    }
    Ok(listeners)
}

#[cfg(unix)]
fn bind_shared(at: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(at), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&at.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(not(unix))]
fn bind_shared(_at: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "the per-core layout needs SO_REUSEPORT (Linux, the BSDs); use --runtime shared",
    ))
}

impl Gateway {
    /// Serves on `listeners` (from [`bind_per_core`]), one worker thread each, until `shutdown`
    /// resolves, then drains as [`Gateway::serve`] does, all workers within the one deadline; the
    /// worker threads end after the sinks are written. Must run on a Tokio runtime, which keeps the
    /// background tasks (the one the gateway was built on).
    ///
    /// # Errors
    ///
    /// [`GatewayError::Io`] when there is no listener or a worker thread or runtime cannot start.
    pub async fn serve_per_core(
        self,
        listeners: Vec<std::net::TcpListener>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<ShutdownReport, GatewayError> {
        let address = listeners
            .first()
            .and_then(|listener| listener.local_addr().ok());
        let failed = |source: std::io::Error| GatewayError::Io {
            address: address.map_or_else(|| "(no listener)".to_owned(), |a| a.to_string()),
            source,
        };
        let Some(first) = address else {
            return Err(failed(std::io::Error::other("no listener to serve on")));
        };
        self.state
            .loopback_only
            .store(first.ip().is_loopback(), Ordering::Release);
        self.state.clients.per_worker(listeners.len());
        let _ = self.state.background.set(tokio::runtime::Handle::current());
        let (stop_tx, stop_rx) = watch::channel(false);
        // Dropped when this function ends (or is cancelled): every worker thread then returns.
        let (exit_tx, exit_rx) = watch::channel(false);
        let slots = Slots::new(self.limits.max_connections);
        let app = self.app();
        let mut accepting = Vec::with_capacity(listeners.len());
        let mut threads = Vec::with_capacity(listeners.len());
        for (worker, listener) in listeners.into_iter().enumerate() {
            // The runtime is made and dropped on its own thread (dropping one inside this async
            // context would panic); the thread hands back its handle.
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            let mut exit = exit_rx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("mirror-worker-{worker}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(err) => {
                            let _ = ready_tx.send(Err(err));
                            return;
                        }
                    };
                    mirror_providers::pools_per_thread();
                    mirror_router::silent_copies_stay_on_thread();
                    let _ = ready_tx.send(Ok(runtime.handle().clone()));
                    runtime.block_on(async move {
                        let _ = exit.wait_for(|exit| *exit).await;
                    });
                })
                .map_err(failed)?;
            threads.push(thread);
            let handle = ready_rx
                .await
                .map_err(|_| failed(std::io::Error::other("a worker thread ended at start")))?
                .map_err(failed)?;
            let listener = {
                // Registered with the worker's own reactor.
                let _entered = handle.enter();
                listener.set_nonblocking(true).map_err(failed)?;
                TcpListener::from_std(listener).map_err(failed)?
            };
            accepting.push(handle.spawn(listen::accept(
                listener,
                app.clone(),
                self.limits,
                Arc::clone(&self.state.bodies),
                Arc::clone(&self.state.clients),
                slots.clone(),
                Some(worker),
                stop_rx.clone(),
            )));
        }
        drop(stop_rx);
        let report = self.run(accepting, stop_tx, shutdown).await;
        drop(exit_tx);
        // Each thread's runtime drops what is left on it (nothing, once drained) as it returns.
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
        Ok(report)
    }
}
