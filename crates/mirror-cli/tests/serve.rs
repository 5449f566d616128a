//! A real `mirror serve` process: `SIGHUP` reloads its config file (a new model group appears, an
//! invalid file is refused with the error logged and the old config keeps serving), and a caller's
//! W3C `traceparent` becomes the trace of the primary's and the shadow's OTLP spans.
#![cfg(target_os = "linux")]
// A failure in a helper is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::exchange;

const MIRROR: &str = env!("CARGO_BIN_EXE_mirror");

const CONFIG: &str = r#"
model_list:
  - model_name: primary
    litellm_params: {model: mock/primary, mock_response: ok, silent_model: shadow}
  - model_name: shadow
    litellm_params: {model: mock/shadow, mock_response: ok}
mirror_settings:
  log_file: null
"#;

struct Served {
    child: Child,
    address: String,
    dir: PathBuf,
}

impl Served {
    fn start(name: &str, yaml: &str, env: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("mirror-serve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.yaml"), yaml).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(MIRROR)
            .arg("serve")
            .arg("--config")
            .arg(dir.join("config.yaml"))
            .arg("--port")
            .arg(port.to_string())
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let served = Served {
            child,
            address: format!("127.0.0.1:{port}"),
            dir,
        };
        served.wait_until("the gateway answers", |s| {
            s.get("/health/liveliness").is_some()
        });
        served
    }

    fn write_config(&self, yaml: &str) {
        std::fs::write(self.dir.join("config.yaml"), yaml).unwrap();
    }

    fn hang_up(&self) {
        let status = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    fn wait_until(&self, what: &str, check: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting until {what}: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        self.send(&format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n"))
    }

    fn chat(&self, model: &str) -> u16 {
        self.chat_with(model, "")
    }

    /// A chat request with extra header lines (`name: value\r\n` each).
    fn chat_with(&self, model: &str, headers: &str) -> u16 {
        let body =
            format!(r#"{{"model": "{model}", "messages": [{{"role": "user", "content": "hi"}}]}}"#);
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n{headers}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        self.send(&request).map_or(0, |(status, _)| status)
    }

    fn send(&self, request: &str) -> Option<(u16, String)> {
        let mut connection = TcpStream::connect(&self.address).ok()?;
        exchange(&mut connection, request)
    }

    fn models(&self) -> String {
        self.get("/v1/models")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn sighup_reloads_the_file_and_refuses_an_invalid_one() {
    let served = Served::start("reload", CONFIG, &[]);
    assert_eq!(served.chat("primary"), 200);
    assert_eq!(served.chat("added"), 404);

    // A new model group appears on SIGHUP.
    served.write_config(&CONFIG.replace(
        "mirror_settings:",
        "  - model_name: added\n    litellm_params: {model: mock/added, mock_response: new}\nmirror_settings:",
    ));
    served.hang_up();
    served.wait_until("the new group is served", |s| {
        s.models().contains("\"added\"")
    });
    assert_eq!(served.chat("added"), 200);
    assert!(
        served.stderr().contains("Config reloaded"),
        "{}",
        served.stderr()
    );

    // An invalid file is refused, the error logged with its location, the old config kept.
    served.write_config(&CONFIG.replace("silent_model: shadow", "silent_model: nowhere"));
    served.hang_up();
    served.wait_until("the refusal is logged", |s| {
        s.stderr().contains("Config reload refused")
    });
    let stderr = served.stderr();
    assert!(
        stderr.contains("silent_model") && stderr.contains("nowhere"),
        "{stderr}"
    );
    assert_eq!(served.chat("added"), 200);
    assert_eq!(served.chat("primary"), 200);
    // The process is alive and still on version 2.
    let (status, body) = served.get("/admin/mirror").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"config_version\":2"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_is_the_trace_of_the_primary_and_shadow_spans() {
    let collector = mirror_test_support::Upstream::start("otlp").await;
    let config = format!("{CONFIG}litellm_settings:\n  callbacks: [\"otel\"]\n");
    let endpoint = collector.url().to_owned();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let status = tokio::task::spawn_blocking(move || {
        let mut served = Served::start(
            "traces",
            &config,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
        );
        let status = served.chat_with(
            "primary",
            &format!("traceparent: 00-{trace}-00f067aa0ba902b7-01\r\n"),
        );
        // The sinks flush on shutdown.
        let stopped = Command::new("kill")
            .arg("-TERM")
            .arg(served.child.id().to_string())
            .status()
            .unwrap();
        assert!(stopped.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while served.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "mirror serve did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        status
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    let spans: Vec<serde_json::Value> = collector
        .requests()
        .iter()
        .filter(|seen| seen.path == "/v1/traces")
        .flat_map(|seen| {
            seen.body["resourceSpans"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|rs| rs["scopeSpans"].as_array().into_iter().flatten())
                .flat_map(|ss| ss["spans"].as_array().into_iter().flatten())
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        spans.len(),
        2,
        "a span for the primary and one for the shadow: {spans:?}"
    );
    assert!(
        spans.iter().all(|span| span["traceId"] == trace),
        "{spans:?}"
    );
}
