//! The OpenAI-compatible gateway: `mirror serve`.
//!
//! Endpoints: `POST /v1/chat/completions` (and `/chat/completions`, and Azure's
//! `/openai/deployments/{model}/chat/completions`), `POST /v1/embeddings`, the Responses API
//! (`/v1/responses`, `/responses`, `/openai/v1/responses`: create, retrieve, delete, cancel,
//! input items), `GET /v1/models`,
//! `GET /health`, `/health/liveliness`, `/health/readiness`, `GET /metrics`, the admin API
//! (`/admin/mirror`, `/admin/mirror/targets/{silent_group}`, `/admin/reload`; see
//! `docs/experiments.md`), and with the `ui` feature the live page, `GET /ui` (its numbers at
//! `GET /ui/data`).
//!
//! Every response carries `x-mirror-call-id` and `x-mirror-trace-id`; `x-mirror-silent: off` opts one
//! request out of mirroring. Clients choose a model group, never an upstream URL.

mod admin;
mod auth;
mod error;
mod handlers;
mod limits;
mod listen;
mod messages;
mod metrics;
mod responses;
#[cfg(feature = "ui")]
mod ui;
mod workers;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use mirror_core::CallRecord;
use mirror_logging::{
    JsonlConfig, JsonlSink, LangfuseConfig, LangfuseSink, LogWriter, OtlpConfig, OtlpSink, S3Sink,
    SinkError, WriterReport,
};
use mirror_router::{ConfigError, MirrorSnapshot, RecordConsumer, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::GatewayConfig;
pub use auth::{check_master_key, MASTER_KEY_PATH};
use limits::CheckedLimits;
pub use limits::{ClientLimits, CLIENT_LIMIT_KEYS};
use listen::{BodyBudget, ClientStats, Slots};
use metrics::Metrics;
pub use workers::bind_per_core;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A log sink could not be set up.
    #[error("log sink `{sink}` cannot start")]
    Sink {
        /// The sink.
        sink: &'static str,
        /// Why.
        #[source]
        source: SinkError,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Http(#[source] mirror_providers::ProviderError),
    /// The listener failed.
    #[error("cannot serve on {address}")]
    Io {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where the gateway's router records go: the metrics, and the log writer when a sink is configured.
#[derive(Clone)]
pub(crate) struct GatewayRecords {
    metrics: Arc<Metrics>,
    /// None without sinks: nothing would read the records, so they are not queued, and the router
    /// leaves the messages and the response out of them (`wants_payloads`).
    writer: Option<Arc<LogWriter>>,
    /// The live page's window of recent records.
    #[cfg(feature = "ui")]
    page: Arc<ui::LivePage>,
}

impl RecordConsumer for GatewayRecords {
    #[cfg_attr(not(feature = "ui"), allow(unused_mut))]
    fn consume(&self, mut record: CallRecord) {
        self.metrics.observe(&record);
        #[cfg(feature = "ui")]
        self.page.offer(&mut record);
        if let Some(writer) = &self.writer {
            writer.submit(record);
        }
    }

    fn wants_payloads(&self) -> bool {
        self.writer.is_some()
    }
}

/// Shared by every request handler.
pub(crate) struct AppState {
    /// The router and master key, swapped whole by a reload.
    pub(crate) live: ArcSwap<admin::Live>,
    pub(crate) reloader: admin::Reloader,
    /// Where a rebuilt router's records go (the sinks are not reloaded).
    pub(crate) records: GatewayRecords,
    /// Whether the listener is bound to a loopback address (the admin API is then open without a
    /// master key).
    pub(crate) loopback_only: AtomicBool,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) writer: Arc<LogWriter>,
    pub(crate) shutting_down: AtomicBool,
    /// Turns true at the shutdown deadline: open streams end with an error event.
    pub(crate) deadline: watch::Sender<bool>,
    /// Request-body bytes in memory, across requests.
    pub(crate) bodies: Arc<BodyBudget>,
    /// The largest request body.
    pub(crate) max_body_bytes: usize,
    /// Client connection counters.
    pub(crate) clients: Arc<ClientStats>,
    /// The runtime of the background tasks in the per-core layout (reloads run there).
    pub(crate) background: std::sync::OnceLock<tokio::runtime::Handle>,
    /// The live page's window of recent records.
    #[cfg(feature = "ui")]
    pub(crate) page: Arc<ui::LivePage>,
}

/// A configured gateway, ready to serve.
pub struct Gateway {
    state: Arc<AppState>,
    max_body_bytes: usize,
    shutdown_timeout: Duration,
    limits: CheckedLimits,
    sinks: Vec<String>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("router", &self.router())
            .field("sinks", &self.sinks)
            .finish_non_exhaustive()
    }
}

/// What a shutdown achieved.
#[derive(Debug)]
pub struct ShutdownReport {
    /// Whether in-flight requests finished before the deadline.
    pub requests_drained: bool,
    /// Client connections still open at the deadline, closed then (their calls are recorded as
    /// `cancelled`, their streams ended with an error event).
    pub connections_closed: usize,
    /// Silent-mirroring counters at the end.
    pub mirror: MirrorSnapshot,
    /// Sink counters at the end.
    pub writer: WriterReport,
}

impl Gateway {
    /// Builds the router, the log writer and its sinks from a configuration. Must run inside a Tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// [`GatewayError`] naming what is wrong.
    pub fn from_config(config: &GatewayConfig) -> Result<Self, GatewayError> {
        let section = &config.mirror_settings;
        // Checked when the file was parsed; checked again here, since the fields are public.
        let shutdown_timeout =
            section
                .shutdown_duration()
                .map_err(|message| ConfigError::Invalid {
                    origin: config.origin().to_owned(),
                    location: "mirror_settings.shutdown_timeout".to_owned(),
                    message,
                    position: None,
                })?;
        let limits =
            section
                .limits
                .checked()
                .map_err(|(location, message)| ConfigError::Invalid {
                    origin: config.origin().to_owned(),
                    location: location.to_owned(),
                    message,
                    position: None,
                })?;
        let mut writer = LogWriter::builder();
        let mut sinks = Vec::new();
        if let Some(path) = &section.log_file {
            let mut jsonl = JsonlConfig::new(path).with_daily_rotation(section.log_daily_rotation);
            if let Some(bytes) = section.log_max_bytes {
                jsonl = jsonl.with_max_bytes(bytes);
            }
            writer = writer.sink(JsonlSink::new(jsonl));
            sinks.push(format!("jsonl ({})", path.display()));
        }
        let choice = config.sinks();
        if !choice.unknown.is_empty() {
            tracing::warn!(
                callbacks = ?choice.unknown,
                "Callbacks Mirror does not implement are ignored."
            );
        }
        if choice.langfuse {
            let langfuse = LangfuseConfig::from_env()
                .and_then(LangfuseSink::new)
                .map_err(|source| GatewayError::Sink {
                    sink: "langfuse",
                    source,
                })?;
            sinks.push(format!("langfuse ({})", langfuse.endpoint()));
            writer = writer.sink(langfuse);
        }
        if choice.otel {
            let otlp = OtlpConfig::from_env()
                .and_then(OtlpSink::new)
                .map_err(|source| GatewayError::Sink {
                    sink: "otel",
                    source,
                })?;
            sinks.push(format!("otel ({})", otlp.endpoint()));
            writer = writer.sink(otlp);
        }
        if choice.s3 {
            let params = config
                .litellm_settings
                .s3_callback_params
                .clone()
                .unwrap_or_default()
                .with_env_defaults();
            let s3 =
                S3Sink::new(params).map_err(|source| GatewayError::Sink { sink: "s3", source })?;
            sinks.push("s3".to_owned());
            writer = writer.sink(s3);
        }
        let writer = Arc::new(writer.start().map_err(|source| GatewayError::Sink {
            sink: "writer",
            source,
        })?);

        let metrics = Arc::new(Metrics::default());
        #[cfg(feature = "ui")]
        let page = ui::LivePage::start(!sinks.is_empty());
        let records = GatewayRecords {
            metrics: Arc::clone(&metrics),
            writer: (!sinks.is_empty()).then(|| Arc::clone(&writer)),
            #[cfg(feature = "ui")]
            page: Arc::clone(&page),
        };
        let router = build_router(config, &records, None)?;
        // Only the built router knows the generated deployment ids; no call has run yet.
        metrics.register(&router.deployments());
        Ok(Gateway {
            state: Arc::new(AppState {
                live: ArcSwap::from_pointee(admin::Live {
                    router: Arc::new(router),
                    master_key: config.general_settings.master_key.clone(),
                    admin_without_key: section.admin_without_key,
                    version: 1,
                }),
                reloader: admin::Reloader {
                    path: std::sync::OnceLock::new(),
                    lock: tokio::sync::Mutex::new(()),
                    shutdown_timeout,
                },
                records,
                loopback_only: AtomicBool::new(false),
                metrics,
                writer,
                shutting_down: AtomicBool::new(false),
                deadline: watch::Sender::new(false),
                bodies: Arc::new(BodyBudget::new(limits.body_bytes_in_flight)),
                max_body_bytes: section.max_body_bytes,
                clients: Arc::new(ClientStats::default()),
                background: std::sync::OnceLock::new(),
                #[cfg(feature = "ui")]
                page,
            }),
            max_body_bytes: section.max_body_bytes,
            shutdown_timeout,
            limits,
            sinks,
        })
    }

    /// Starts filling the live page's window now, as a view of the page does (`mirror demo --ui`:
    /// the page shows the demo's calls even when opened after them). Without the `ui` feature, a
    /// no-op.
    pub fn watch_live_page(&self) {
        #[cfg(feature = "ui")]
        self.state.page.watch();
    }

    /// The router serving new requests (a reload swaps it).
    pub fn router(&self) -> Arc<Router> {
        self.state.router()
    }

    /// Reloads from `path` on `SIGHUP` and `POST /admin/reload` (the file the configuration was
    /// read from); without it a reload is refused.
    /// Set once: a second call is ignored.
    pub fn reload_from(self, path: impl Into<std::path::PathBuf>) -> Self {
        let _ = self.state.reloader.path.set(path.into());
        self
    }

    /// Reloads the config file now, as `SIGHUP` does; returns the new config version.
    ///
    /// # Errors
    ///
    /// The configuration error (the old configuration keeps serving).
    pub async fn reload(&self) -> Result<u64, String> {
        admin::reload(&self.state, "API").await
    }

    /// Whether every request but health checks needs the master key.
    pub fn requires_key(&self) -> bool {
        self.state.live.load().master_key.is_some()
    }

    /// Descriptions of the sinks in use.
    pub fn sinks(&self) -> &[String] {
        &self.sinks
    }

    /// The HTTP application.
    pub fn app(&self) -> axum::Router {
        let state = Arc::clone(&self.state);
        let protected = messages::routes(responses::routes(axum::Router::new()))
            .route("/v1/chat/completions", post(handlers::chat))
            .route("/chat/completions", post(handlers::chat))
            .route(
                "/openai/deployments/{deployment}/chat/completions",
                post(handlers::azure_chat),
            )
            .route("/v1/embeddings", post(handlers::embeddings))
            .route("/embeddings", post(handlers::embeddings))
            .route(
                "/openai/deployments/{deployment}/embeddings",
                post(handlers::azure_embeddings),
            )
            .route("/v1/models", get(handlers::models))
            .route("/models", get(handlers::models))
            .route("/metrics", get(handlers::metrics))
            .route(
                "/admin/mirror",
                get(admin::get_mirror).post(admin::post_mirror),
            )
            .route(
                "/admin/mirror/targets/{silent_group}",
                post(admin::post_target),
            )
            .route("/admin/reload", post(admin::post_reload));
        #[cfg(feature = "ui")]
        let protected = protected.route("/ui/data", get(ui::data));
        let protected = protected.route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            handlers::authenticate,
        ));
        let public = axum::Router::new()
            .route("/health", get(handlers::liveliness))
            .route("/health/liveliness", get(handlers::liveliness))
            .route("/health/readiness", get(handlers::readiness));
        #[cfg(feature = "ui")]
        let public = public.route("/ui", get(ui::page));
        public
            .merge(protected)
            .fallback(handlers::not_found)
            .layer(DefaultBodyLimit::max(self.max_body_bytes))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                handlers::panic_response,
            ))
            .layer(axum::middleware::from_fn(handlers::error_shape))
            .layer(tower_http::trace::TraceLayer::new_for_http())
            .with_state(state)
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting and drains within one
    /// deadline, `shutdown_timeout`, shared by everything: in-flight requests and silent calls get
    /// the first nine tenths; at that point open streams end with an error event, connections still
    /// open are closed (their calls are recorded as `cancelled`) and silent calls still running are
    /// cut; the sinks get the last tenth to write every record.
    ///
    /// # Errors
    ///
    /// None today: accept errors are logged and retried with a back-off; the `Result` is kept for
    /// listener set-up errors.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<ShutdownReport, GatewayError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
        self.state.loopback_only.store(loopback, Ordering::Release);
        let accepting = tokio::spawn(listen::accept(
            listener,
            self.app(),
            self.limits,
            Arc::clone(&self.state.bodies),
            Arc::clone(&self.state.clients),
            Slots::new(self.limits.max_connections),
            None,
            stop_rx,
        ));
        Ok(self.run(vec![accepting], stop_tx, shutdown).await)
    }

    /// Waits for `shutdown`, then stops the accept loops (`stop`) and drains within the deadline
    /// (see [`Gateway::serve`]); `accepting` gives each loop's open connections once it stopped.
    async fn run(
        self,
        accepting: Vec<tokio::task::JoinHandle<JoinSet<()>>>,
        stop_tx: watch::Sender<bool>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> ShutdownReport {
        #[cfg(unix)]
        let hangup = admin::reload_on_hangup(Arc::clone(&self.state));
        shutdown.await;
        #[cfg(unix)]
        if let Some(hangup) = hangup {
            hangup.abort();
        }
        tracing::info!(
            "Shutting down: no new connections; draining requests, silent calls and sinks."
        );
        let started = Instant::now();
        let deadline = started + self.shutdown_timeout;
        // The sinks write last, so they get the last tenth, and no more than two seconds of it.
        let drain_until = deadline - (self.shutdown_timeout / 10).min(Duration::from_secs(2));
        self.state.shutting_down.store(true, Ordering::Release);
        let _ = stop_tx.send(true);
        let mut connections = Vec::new();
        for loop_ in accepting {
            if let Ok(open) = loop_.await {
                connections.push(open);
            }
        }
        let drained = tokio::time::timeout_at(drain_until, join_all(&mut connections))
            .await
            .is_ok();
        let mut connections_closed = 0;
        if !drained {
            connections_closed = connections.iter().map(JoinSet::len).sum();
            self.state.clients.closed_at_shutdown(connections_closed);
            // Streams end with an error event; give them a moment to write it before the
            // connections are closed.
            self.state.deadline.send_replace(true);
            let grace = (deadline - drain_until) / 4;
            let _ = tokio::time::timeout(grace, join_all(&mut connections)).await;
            for open in &mut connections {
                open.abort_all();
            }
            join_all(&mut connections).await;
        }
        let mirror = self
            .state
            .router()
            .shutdown(drain_until.saturating_duration_since(Instant::now()))
            .await;
        let writer = self
            .state
            .writer
            .shutdown(deadline.saturating_duration_since(Instant::now()))
            .await;
        ShutdownReport {
            requests_drained: drained,
            connections_closed,
            mirror,
            writer,
        }
    }

    /// Binds `address` and serves until SIGINT or SIGTERM.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Io`] when the address cannot be bound.
    pub async fn serve_until_signal(self, address: &str) -> Result<ShutdownReport, GatewayError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| GatewayError::Io {
                address: address.to_owned(),
                source,
            })?;
        tracing::info!(address = %address, "Mirror gateway listening.");
        self.serve(listener, shutdown_signal()).await
    }
}

/// Waits for every connection of every accept loop to end.
async fn join_all(connections: &mut [JoinSet<()>]) {
    for open in connections {
        while open.join_next().await.is_some() {}
    }
}

impl AppState {
    /// The router serving new requests.
    pub(crate) fn router(&self) -> Arc<Router> {
        Arc::clone(&self.live.load().router)
    }
}

/// Builds the router of `config`, its records going to `records`; `previous` is the router a
/// reload replaces (its counters and run-time switches carry over).
fn build_router(
    config: &GatewayConfig,
    records: &GatewayRecords,
    previous: Option<&Router>,
) -> Result<Router, GatewayError> {
    let mut builder = crate::router_builder()
        .map_err(GatewayError::Http)?
        .origin(config.origin())
        .config(config.router_config())
        .cache(config.cache_config())
        .mirror_settings(config.mirror_settings.mirror_settings())
        .records(records.clone());
    if let Some(previous) = previous {
        builder = builder.carry_over(previous);
    }
    Ok(builder.build().map_err(|err| config.locate(err))?)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
