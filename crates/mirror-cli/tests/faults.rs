//! The fault cases that need the gateway in a process of its own: the real `mirror serve` binary
//! under a lowered descriptor limit, its memory high-water mark under large bodies, and a SIGKILL in
//! the middle of its log. The in-process client cases are in `tests/integration/faults_client.rs`.
//! Unix only: they use `sh`, `kill` and `/proc`.
#![cfg(target_os = "linux")]
// A failure in a helper is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::exchange;
use serde_json::{json, Value};

const MIRROR: &str = env!("CARGO_BIN_EXE_mirror");

/// A `mirror serve` process on a free port.
struct Served {
    child: Child,
    address: String,
    dir: PathBuf,
}

impl Served {
    /// Starts `mirror serve` on `yaml` (`{log}` becomes a log path in a fresh directory), with the
    /// descriptor limit `nofile` when given.
    fn start(name: &str, yaml: &str, nofile: Option<u32>) -> Self {
        let dir = std::env::temp_dir().join(format!("mirror-faults-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self::start_in(dir, yaml, nofile)
    }

    fn start_in(dir: PathBuf, yaml: &str, nofile: Option<u32>) -> Self {
        let log = dir.join("calls.jsonl");
        let config = dir.join("config.yaml");
        std::fs::write(&config, yaml.replace("{log}", &log.display().to_string())).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // `ulimit` in a shell that then becomes the gateway: the limit is the gateway's alone.
        let limit = nofile.map_or_else(String::new, |n| format!("ulimit -n {n} && "));
        let script = format!(
            "{limit}exec \"{MIRROR}\" serve --config \"{}\" --port {port} --workers 2",
            config.display()
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let served = Served {
            child,
            address: format!("127.0.0.1:{port}"),
            dir,
        };
        for _ in 0..600 {
            if served.try_get("/health/liveliness").is_some() {
                return served;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mirror serve did not start: {}", served.stderr());
    }

    fn log(&self) -> PathBuf {
        self.dir.join("calls.jsonl")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    fn try_get(&self, path: &str) -> Option<u16> {
        let mut connection = TcpStream::connect(&self.address).ok()?;
        exchange(
            &mut connection,
            &format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n"),
        )
        .map(|(status, _)| status)
    }

    /// The gateway's peak resident memory, in KiB.
    fn high_water_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// SIGTERM, then waits for the drain; asserts a clean exit.
    fn stop(mut self) -> PathBuf {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "{exit}: {}", self.stderr());
        self.dir.clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn chat(content: &str) -> String {
    json!({"model": "primary", "messages": [{"role": "user", "content": content}]}).to_string()
}

const MOCKS: &str = r#"
model_list:
  - model_name: primary
    litellm_params: {model: mock/primary, mock_response: ok, silent_model: shadow}
  - model_name: shadow
    litellm_params: {model: mock/shadow, mock_response: ok}
"#;

#[test]
fn out_of_descriptors_the_gateway_serves_what_it_has_and_recovers() {
    let served = Served::start(
        "emfile",
        &format!("{MOCKS}mirror_settings:\n  log_file: \"{{log}}\"\n"),
        Some(64),
    );
    // A client connected before the flood.
    let mut kept = TcpStream::connect(&served.address).unwrap();
    let (status, _) = exchange(&mut kept, &post("/v1/chat/completions", &chat("before"))).unwrap();
    assert_eq!(status, 200);

    // More idle connections than the gateway has descriptors: accepting fails with EMFILE.
    let flood: Vec<TcpStream> = (0..150)
        .map(|_| TcpStream::connect(&served.address).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(1500));

    // The connection it has is still served, while it cannot accept.
    let (status, _) = exchange(&mut kept, &post("/v1/chat/completions", &chat("during"))).unwrap();
    assert_eq!(status, 200);
    let stderr = served.stderr();
    let refusals = stderr.matches("Cannot accept a connection").count();
    eprintln!("{refusals} accept errors logged while out of descriptors");
    assert!(
        refusals > 0,
        "the flood never ran the gateway out of descriptors"
    );
    // A back-off, not a spin: a spinning loop logs thousands of times a second.
    assert!(refusals < 200, "{refusals} accept errors logged");

    let (status, metrics) =
        exchange(&mut kept, "GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.lines().any(
            |line| line.starts_with("mirror_client_accept_errors_total ") && !line.ends_with(" 0")
        ),
        "{metrics}"
    );

    // The flood hangs up; the gateway accepts again.
    drop(flood);
    let mut recovered = None;
    for _ in 0..200 {
        if let Ok(mut fresh) = TcpStream::connect(&served.address) {
            if let Some((status, body)) =
                exchange(&mut fresh, &post("/v1/chat/completions", &chat("after")))
            {
                recovered = Some((status, body));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = recovered.expect("the gateway never accepted again");
    assert_eq!(status, 200, "{body}");
    drop(kept);
    let dir = served.stop();
    let log = std::fs::read_to_string(dir.join("calls.jsonl")).unwrap();
    // Three primary calls and their three shadows, all recorded.
    assert_eq!(log.lines().count(), 6, "{log}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_log_torn_by_sigkill_loses_only_the_torn_record() {
    let yaml = format!("{MOCKS}mirror_settings:\n  log_file: \"{{log}}\"\n");
    let mut served = Served::start("sigkill", &yaml, None);
    for _ in 0..2 {
        let mut connection = TcpStream::connect(&served.address).unwrap();
        let (status, _) =
            exchange(&mut connection, &post("/v1/chat/completions", &chat("one"))).unwrap();
        assert_eq!(status, 200);
    }
    // Wait until both calls and their shadows are written, then kill without a drain.
    let log = served.log();
    for _ in 0..400 {
        if std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
            == 4
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    // What a SIGKILL in the middle of a write leaves: the last record cut in half.
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    let cut = text.len() - text.lines().last().unwrap().len() / 2;
    std::fs::write(&log, &text[..cut]).unwrap();

    // The next start appends whole records after it.
    let dir = served.dir.clone();
    drop(served);
    let served = Served::start_in(dir, &yaml, None);
    let mut connection = TcpStream::connect(&served.address).unwrap();
    let (status, _) =
        exchange(&mut connection, &post("/v1/chat/completions", &chat("two"))).unwrap();
    assert_eq!(status, 200);
    drop(connection);
    let dir = served.stop();
    let text = std::fs::read_to_string(dir.join("calls.jsonl")).unwrap();
    let whole = text
        .lines()
        .filter(|line| serde_json::from_str::<Value>(line).is_ok())
        .count();
    // Three whole records from the first run, the torn one, and both records of the second run.
    assert_eq!((text.lines().count(), whole), (6, 5), "{text}");

    // `mirror report` says what it skipped.
    let report = Command::new(MIRROR)
        .arg("report")
        .arg(dir.join("calls.jsonl"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&report.stdout);
    assert!(report.status.success(), "{stdout}");
    assert!(
        stdout.contains("Skipped 1 malformed line "),
        "the report does not say it skipped the torn line:\n{stdout}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Sends 8 concurrent 15 MiB chat bodies to a gateway with `max_body_bytes_in_flight: budget`;
/// returns the statuses and the gateway's VmHWM before and after, in KiB.
fn large_bodies(name: &str, budget: u64) -> (Vec<u16>, u64, u64) {
    let served = Served::start(
        name,
        &format!(
            "{MOCKS}mirror_settings:\n  log_file: null\n  max_body_bytes: 16777216\n  silent_queue_max_bytes: 268435456\n  max_body_bytes_in_flight: {budget}\n"
        ),
        None,
    );
    let before = served.high_water_kib();
    let body = chat(&"m".repeat(15 * 1024 * 1024));
    let request = post("/v1/chat/completions", &body);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let address = served.address.clone();
            let request = request.clone();
            std::thread::spawn(move || {
                let mut connection = TcpStream::connect(address).unwrap();
                exchange(&mut connection, &request).map(|(status, _)| status)
            })
        })
        .collect();
    let mut statuses: Vec<u16> = threads
        .into_iter()
        .map(|thread| thread.join().unwrap().unwrap_or(0))
        .collect();
    statuses.sort_unstable();
    let after = served.high_water_kib();
    let dir = served.stop();
    std::fs::remove_dir_all(dir).unwrap();
    eprintln!(
        "max_body_bytes_in_flight {budget}: statuses {statuses:?}, VmHWM {before} KiB before, {after} KiB after"
    );
    (statuses, before, after)
}

#[test]
fn concurrent_large_bodies_keep_memory_bounded() {
    // The default budget (128 MiB) takes all 8 bodies (120 MiB); each is held as bytes, as a
    // parsed request and as one silent copy at most.
    let (statuses, _, after) = large_bodies("memory-default", 128 * 1024 * 1024);
    assert_eq!(statuses, [200; 8]);
    assert!(after < 512 * 1024, "VmHWM {after} KiB");
    // A 40 MiB budget takes two bodies at a time and refuses the rest with 503, so the memory
    // held for bodies is bounded by the budget, not by the number of clients. A refused client
    // still sending its body may see the connection reset before it reads the 503 (0 here).
    let (statuses, _, bounded) = large_bodies("memory-budget", 40 * 1024 * 1024);
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.iter().any(|status| *status != 200), "{statuses:?}");
    assert!(
        statuses.iter().all(|status| [0, 200, 503].contains(status)),
        "{statuses:?}"
    );
    assert!(bounded < 512 * 1024, "VmHWM {bounded} KiB");
}
