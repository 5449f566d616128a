//! The processes a benchmark starts (mock upstreams, the gateway), and what `/proc` says about them.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use super::load::{fetch, request_bytes};

/// A child process that is killed when dropped.
pub(crate) struct Managed {
    pub(crate) child: Child,
    // Kept open so the child never writes into a closed pipe.
    _stdout: Option<BufReader<ChildStdout>>,
}

impl Managed {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        // Only this child, by its own handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a mock upstream behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MockOptions {
    pub(crate) latency_ms: u64,
    pub(crate) failure_rate: f64,
    pub(crate) reset_rate: f64,
    pub(crate) stream_chunks: usize,
    /// Delay between streamed chunks.
    pub(crate) chunk_interval_ms: u64,
}

impl MockOptions {
    pub(crate) const HEALTHY: MockOptions = MockOptions {
        latency_ms: 0,
        failure_rate: 0.0,
        reset_rate: 0.0,
        stream_chunks: 8,
        chunk_interval_ms: 0,
    };

    pub(crate) fn describe(&self) -> String {
        let mut parts = vec![format!("{} ms", self.latency_ms)];
        if self.chunk_interval_ms > 0 {
            parts.push(format!(
                "streams of {} chunks, one every {} ms",
                self.stream_chunks, self.chunk_interval_ms
            ));
        }
        if self.failure_rate > 0.0 {
            parts.push(format!("{:.0}% 500s", self.failure_rate * 100.0));
        }
        if self.reset_rate > 0.0 {
            parts.push(format!("{:.0}% resets", self.reset_rate * 100.0));
        }
        parts.join(", ")
    }
}

/// Starts `mirror mock-upstream` and reads its address from its first line.
pub(crate) fn start_mock(
    binary: &Path,
    name: &str,
    port: u16,
    options: MockOptions,
) -> Result<(Managed, SocketAddr), String> {
    let mut child = Command::new(binary)
        .args([
            "mock-upstream",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--latency-ms",
            &options.latency_ms.to_string(),
            "--failure-rate",
            &options.failure_rate.to_string(),
            "--reset-rate",
            &options.reset_rate.to_string(),
            "--stream-chunks",
            &options.stream_chunks.to_string(),
            "--chunk-interval-ms",
            &options.chunk_interval_ms.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", binary.display()))?;
    let stdout = child.stdout.take();
    let mut managed = Managed {
        child,
        _stdout: None,
    };
    let mut reader = BufReader::new(stdout.ok_or("the mock's stdout is not piped")?);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|err| format!("cannot read the mock's address: {err}"))?;
    managed._stdout = Some(reader);
    let address = line
        .trim()
        .rsplit("http://")
        .next()
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .ok_or_else(|| format!("the mock `{name}` did not print its address (got {line:?})"))?;
    Ok((managed, address))
}

/// A port that was free a moment ago.
pub(crate) fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|err| format!("cannot find a free port: {err}"))
}

/// Starts `mirror serve` on `config` and waits until it answers its health check.
pub(crate) fn start_gateway(
    binary: &Path,
    config: &Path,
    log: &Path,
    workers: Option<u16>,
    runtime: Option<&str>,
) -> Result<(Managed, SocketAddr), String> {
    let mut last_error = String::new();
    // A free port can be taken between the check and the bind: try a few.
    for _ in 0..5 {
        let port = free_port()?;
        let log_file = std::fs::File::create(log)
            .map_err(|err| format!("cannot create {}: {err}", log.display()))?;
        let child = Command::new(binary)
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--config")
            .arg(config)
            .args(workers.map(|n| format!("--workers={n}")))
            .args(runtime.map(|name| format!("--runtime={name}")))
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", binary.display()))?;
        let mut managed = Managed {
            child,
            _stdout: None,
        };
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(15);
        let health = request_bytes("GET", "127.0.0.1", "/health/liveliness", &[], b"");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = managed.child.try_wait() {
                last_error = format!("the gateway exited ({status}); see {}", log.display());
                break;
            }
            if matches!(fetch(address, &health), Ok((200, _))) {
                return Ok((managed, address));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if last_error.is_empty() {
            last_error = format!("the gateway did not become healthy; see {}", log.display());
        }
    }
    Err(last_error)
}

/// Reads a `kB` line of `/proc/PID/status`, in bytes.
pub(crate) fn status_bytes(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// User plus system CPU time of a process, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name and state.
    let user = fields.get(11)?.parse::<u64>().ok()?;
    let system = fields.get(12)?.parse::<u64>().ok()?;
    Some(user + system)
}

/// Clock ticks per second (`getconf CLK_TCK`), 100 when unknown.
pub(crate) fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

/// The `mirror` binary under the target directory cargo uses.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| root.join("target"), |dir| root.join(dir))
}
