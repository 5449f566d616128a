//! Shared test support: the shared fake upstream (`mirror_test_support::upstream`) answering by
//! model name, and a gateway started on a free port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mirror::config::GatewayConfig;
use mirror::gateway::{Gateway, ShutdownReport};
use mirror_test_support::{Call, Upstream};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The shared fake upstream, answering as OpenAI and Azure OpenAI do, with a behaviour that follows
/// the `model` it is asked for: `fail-500`, `rate-limited` (429, Retry-After 7), `context` (400
/// context_length_exceeded), `held` (waits for `Upstream::release`), anything else answers
/// `echo: <last user message>`. Returns the upstream and its `http://127.0.0.1:<port>`.
pub(crate) async fn start_upstream() -> (Upstream, String) {
    let upstream = Upstream::with_handler(respond).await;
    let url = upstream.url().to_owned();
    (upstream, url)
}

async fn respond(mut call: Call) -> Response {
    let path = call.path.as_str();
    let is_chat = path == "/v1/chat/completions"
        || (path.starts_with("/openai/deployments/") && path.ends_with("/chat/completions"));
    if call.method != "POST" || !(is_chat || path == "/v1/embeddings") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let body = call.body.clone();
    if path == "/v1/embeddings" {
        return axum::Json(json!({
            "object": "list", "model": body["model"],
            "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.5]}],
            "usage": {"prompt_tokens": 2, "total_tokens": 2}
        }))
        .into_response();
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    match model.as_str() {
        "fail-500" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": {"message": "upstream broke", "type": "server_error"}})),
        )
            .into_response(),
        "rate-limited" => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "7")],
            axum::Json(json!({"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}})),
        )
            .into_response(),
        "context" => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"message": "maximum context length is 8 tokens", "type": "invalid_request_error", "code": "context_length_exceeded"}})),
        )
            .into_response(),
        _ => {
            if model == "held" {
                call.released().await;
            }
            let text = body["messages"]
                .as_array()
                .and_then(|messages| messages.last())
                .and_then(|message| message["content"].as_str())
                .unwrap_or_default();
            axum::Json(json!({
                "id": "chatcmpl-upstream", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("echo: {text}")}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
            }))
            .into_response()
        }
    }
}

/// A gateway serving on a free port, stopped by `stop`.
pub(crate) struct RunningGateway {
    pub(crate) base: String,
    pub(crate) log: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<ShutdownReport>,
}

impl RunningGateway {
    /// Starts a gateway on `yaml`; `{log}` in the text is replaced by a fresh log path.
    pub(crate) async fn start(yaml: &str) -> Self {
        Self::start_on(yaml, "127.0.0.1:0", None).await
    }

    /// Starts a gateway on `yaml` listening on `bind`; with `file`, the text is written there first
    /// and the gateway reloads from it (`POST /admin/reload`, `SIGHUP`).
    pub(crate) async fn start_on(yaml: &str, bind: &str, file: Option<&std::path::Path>) -> Self {
        let (gateway, log) = Self::gateway(yaml, file);
        let listener = TcpListener::bind(bind).await.unwrap();
        let mut address: SocketAddr = listener.local_addr().unwrap();
        if address.ip().is_unspecified() {
            address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        Self::running(address, log, |stopped| async move {
            gateway
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap()
        })
    }

    /// Starts a gateway on `yaml` in the per-core layout: `workers` threads, each with its own
    /// runtime and listener on one free port of 127.0.0.1; with `file`, as `start_on`.
    pub(crate) async fn start_per_core(
        yaml: &str,
        workers: usize,
        file: Option<&std::path::Path>,
    ) -> Self {
        let (gateway, log) = Self::gateway(yaml, file);
        let workers = std::num::NonZeroUsize::new(workers).unwrap();
        let listeners = mirror::gateway::bind_per_core("127.0.0.1:0", workers).unwrap();
        let address = listeners[0].local_addr().unwrap();
        Self::running(address, log, |stopped| async move {
            gateway
                .serve_per_core(listeners, async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap()
        })
    }

    /// A gateway at `address` served by the future `serve` makes, which must end once the
    /// receiver it is given resolves (`stop` sends on it).
    fn running<F>(
        address: SocketAddr,
        log: PathBuf,
        serve: impl FnOnce(oneshot::Receiver<()>) -> F,
    ) -> Self
    where
        F: std::future::Future<Output = ShutdownReport> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        RunningGateway {
            base: format!("http://{address}"),
            log,
            stop: Some(stop),
            task: tokio::spawn(serve(stopped)),
        }
    }

    /// The gateway of `yaml` (reloading from `file`, written first, if given) and its log path.
    fn gateway(yaml: &str, file: Option<&std::path::Path>) -> (Gateway, PathBuf) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let log = std::env::temp_dir().join(format!(
            "mirror-gateway-test-{}-{}.jsonl",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_file(&log);
        let yaml = yaml.replace("{log}", &log.display().to_string());
        let gateway = match file {
            Some(file) => {
                std::fs::write(file, &yaml).unwrap();
                let config = GatewayConfig::from_file(file).unwrap();
                Gateway::from_config(&config).unwrap().reload_from(file)
            }
            None => {
                let config = GatewayConfig::from_yaml_str(&yaml, "test.yaml").unwrap();
                Gateway::from_config(&config).unwrap()
            }
        };
        (gateway, log)
    }

    /// Signals shutdown and waits for the drain; returns the report and the flushed log.
    pub(crate) async fn stop(mut self) -> (ShutdownReport, Vec<Value>) {
        self.begin_stop();
        self.finish().await
    }

    /// Signals shutdown without waiting.
    pub(crate) fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for the drain started by `begin_stop`; returns the report and the flushed log.
    pub(crate) async fn finish(self) -> (ShutdownReport, Vec<Value>) {
        let report = self.task.await.unwrap();
        let records = std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let _ = std::fs::remove_file(&self.log);
        (report, records)
    }
}

/// One HTTP client for the tests.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// The gateway's `/metrics` page at `base` (the gateway's URL), as text.
pub(crate) async fn metrics_text(base: &str) -> String {
    client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
