//! An open-loop, constant-rate HTTP/1.1 load generator on std threads and blocking sockets.
//!
//! Request `i` is scheduled at `start + i / rate`, whatever happened to earlier requests. A pool of
//! workers, each with one keep-alive connection, takes the next ticket, sleeps until its scheduled
//! time and sends it. Latency is measured from the *scheduled* time, so a stalled server is charged
//! for the requests it kept the generator from sending (no coordinated omission, as in wrk2).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// One load run.
#[derive(Debug, Clone)]
pub(crate) struct LoadSpec {
    /// Where to connect.
    pub(crate) address: SocketAddr,
    /// The whole request, head and body, sent as is on every call.
    pub(crate) request: Arc<[u8]>,
    /// Requests per second.
    pub(crate) rate: f64,
    /// How long to schedule requests for.
    pub(crate) duration: Duration,
    /// Concurrent connections (worker threads): the most requests in flight at once.
    pub(crate) connections: usize,
    /// A response slower than this is an error and its connection is closed.
    pub(crate) timeout: Duration,
    /// Closed loop (as `wrk -c1`): each connection sends its next request as soon as the previous
    /// answer is read, for `duration`; `rate` is ignored and latency runs from the actual send.
    pub(crate) closed: bool,
}

/// What a run measured. Latencies are in microseconds.
#[derive(Debug)]
pub(crate) struct LoadResult {
    /// Scheduled requests.
    pub(crate) scheduled: u64,
    /// 2xx answers.
    pub(crate) ok: u64,
    /// Non-2xx answers, transport errors and timeouts.
    pub(crate) errors: u64,
    /// Requests never sent: the generator fell too far behind its schedule.
    pub(crate) missed: u64,
    /// Non-2xx answers by status.
    pub(crate) statuses: Vec<(u16, u64)>,
    /// The first transport error seen, for the log.
    pub(crate) first_error: Option<String>,
    /// Scheduled send to the end of the response.
    pub(crate) latency: Histogram<u64>,
    /// Scheduled send to the first body byte (time to first token, for streams).
    pub(crate) first_byte: Histogram<u64>,
    /// Per streamed answer, the mean time between its body chunks after the first (inter-chunk
    /// time), in microseconds.
    pub(crate) chunk_gap: Histogram<u64>,
    /// From the first scheduled send to the last actual send (plus one interval), or the planned
    /// duration if longer: a generator held up by slow answers stretches it, so the achieved rate
    /// falls; the latency of the last answers does not.
    pub(crate) elapsed: Duration,
}

impl LoadResult {
    /// 2xx answers per second over the run.
    pub(crate) fn achieved_rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How far behind schedule the generator may fall before it stops sending.
const GRACE: Duration = Duration::from_secs(1);

fn histogram() -> Histogram<u64> {
    // 1 µs to 100 s at three significant digits.
    Histogram::new_with_bounds(1, 100_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("three digits are always valid"))
    })
}

struct Shared {
    spec: LoadSpec,
    next: AtomicU64,
    total: u64,
    /// Set once every worker has its connection open, so connecting is not measured; workers wait
    /// on the condition variable rather than poll, which would cost thousands of wake-ups.
    start: (Mutex<Option<Instant>>, Condvar),
    ready: AtomicUsize,
    missed: AtomicU64,
}

struct WorkerResult {
    ok: u64,
    errors: u64,
    statuses: Vec<(u16, u64)>,
    first_error: Option<String>,
    latency: Histogram<u64>,
    first_byte: Histogram<u64>,
    chunk_gap: Histogram<u64>,
    last_send: Instant,
}

/// Runs the load and waits for every response.
pub(crate) fn run(spec: &LoadSpec) -> LoadResult {
    let total = if spec.closed {
        u64::MAX
    } else {
        (spec.rate * spec.duration.as_secs_f64()).round().max(1.0) as u64
    };
    let shared = Arc::new(Shared {
        spec: spec.clone(),
        next: AtomicU64::new(0),
        total,
        start: (Mutex::new(None), Condvar::new()),
        ready: AtomicUsize::new(0),
        missed: AtomicU64::new(0),
    });
    let results = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for _ in 0..spec.connections.max(1) {
        let shared = Arc::clone(&shared);
        let results = Arc::clone(&results);
        let handle = std::thread::Builder::new()
            .name("bench-load".to_owned())
            .stack_size(128 * 1024)
            .spawn(move || {
                let result = worker(&shared);
                if let Ok(mut results) = results.lock() {
                    results.push(result);
                }
            });
        match handle {
            Ok(handle) => handles.push(handle),
            Err(err) => {
                eprintln!("bench: cannot start a load thread ({err}); continuing with fewer");
                break;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while shared.ready.load(Ordering::Acquire) < handles.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    // Give the workers a moment to see the start before the first request is due.
    let start = Instant::now() + Duration::from_millis(20);
    *shared.start.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(start);
    shared.start.1.notify_all();
    for handle in handles {
        let _ = handle.join();
    }
    let mut out = LoadResult {
        scheduled: if spec.closed { 0 } else { total },
        ok: 0,
        errors: 0,
        missed: shared.missed.load(Ordering::Relaxed),
        statuses: Vec::new(),
        first_error: None,
        latency: histogram(),
        first_byte: histogram(),
        chunk_gap: histogram(),
        elapsed: spec.duration,
    };
    let mut last = start;
    let results = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    for result in results {
        out.ok += result.ok;
        out.errors += result.errors;
        let _ = out.latency.add(&result.latency);
        let _ = out.first_byte.add(&result.first_byte);
        let _ = out.chunk_gap.add(&result.chunk_gap);
        for (status, count) in result.statuses {
            match out.statuses.iter_mut().find(|(s, _)| *s == status) {
                Some(entry) => entry.1 += count,
                None => out.statuses.push((status, count)),
            }
        }
        if out.first_error.is_none() {
            out.first_error = result.first_error;
        }
        last = last.max(result.last_send);
    }
    out.statuses.sort_unstable();
    if spec.closed {
        out.scheduled = out.ok + out.errors;
        out.elapsed = last
            .saturating_duration_since(start)
            .max(Duration::from_millis(1));
        return out;
    }
    let interval = Duration::from_secs_f64(1.0 / spec.rate);
    out.elapsed = (last.saturating_duration_since(start) + interval).max(spec.duration);
    out
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn worker(shared: &Shared) -> WorkerResult {
    let spec = &shared.spec;
    let mut result = WorkerResult {
        ok: 0,
        errors: 0,
        statuses: Vec::new(),
        first_error: None,
        latency: histogram(),
        first_byte: histogram(),
        chunk_gap: histogram(),
        last_send: Instant::now(),
    };
    let mut connection = match Connection::open(spec.address, spec.timeout) {
        Ok(open) => Some(open),
        Err(err) => {
            result.first_error = Some(err.to_string());
            None
        }
    };
    shared.ready.fetch_add(1, Ordering::Release);
    let start = {
        let (lock, ready) = &shared.start;
        let mut start = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(start) = *start {
                break start;
            }
            start = ready.wait(start).unwrap_or_else(|e| e.into_inner());
        }
    };
    let end = start + spec.duration;
    let interval_nanos = 1e9 / spec.rate;
    loop {
        let ticket = shared.next.fetch_add(1, Ordering::Relaxed);
        if ticket >= shared.total {
            break;
        }
        let now = Instant::now();
        if spec.closed && now >= end {
            break;
        }
        let scheduled = if spec.closed {
            now
        } else {
            start + Duration::from_nanos((ticket as f64 * interval_nanos) as u64)
        };
        if now > end + GRACE {
            shared.missed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if scheduled > now {
            std::thread::sleep(scheduled - now);
        }
        result.last_send = result.last_send.max(Instant::now());
        let outcome = match connection.as_mut() {
            Some(open) => open.call(&spec.request),
            None => match Connection::open(spec.address, spec.timeout) {
                Ok(open) => connection.insert(open).call(&spec.request),
                Err(err) => Err(err),
            },
        };
        let done = Instant::now();
        match outcome {
            Ok(answer) => {
                if (200..300).contains(&answer.status) {
                    result.ok += 1;
                    let _ = result
                        .latency
                        .record(micros(done.saturating_duration_since(scheduled)));
                    if let Some(first) = answer.first_byte {
                        let _ = result
                            .first_byte
                            .record(micros(first.saturating_duration_since(scheduled)));
                    }
                    if let (Some(first), Some(last)) = (answer.first_byte, answer.last_chunk) {
                        if answer.chunks > 1 {
                            let gap = last.saturating_duration_since(first) / (answer.chunks - 1);
                            let _ = result.chunk_gap.record(micros(gap));
                        }
                    }
                } else {
                    result.errors += 1;
                    match result
                        .statuses
                        .iter_mut()
                        .find(|(s, _)| *s == answer.status)
                    {
                        Some(entry) => entry.1 += 1,
                        None => result.statuses.push((answer.status, 1)),
                    }
                }
                if answer.close {
                    connection = None;
                }
            }
            Err(err) => {
                result.errors += 1;
                if result.first_error.is_none() {
                    result.first_error = Some(err.to_string());
                }
                connection = None;
            }
        }
    }
    result
}

/// One answer.
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// When the first body byte arrived (for a chunked body, the first non-empty chunk).
    pub(crate) first_byte: Option<Instant>,
    /// When the last non-empty chunk of a chunked body arrived, and how many there were.
    pub(crate) last_chunk: Option<Instant>,
    pub(crate) chunks: u32,
    /// The body, when it was kept.
    pub(crate) body: Vec<u8>,
    /// The server will close the connection.
    pub(crate) close: bool,
}

/// A keep-alive HTTP/1.1 connection.
pub(crate) struct Connection {
    reader: BufReader<TcpStream>,
    line: Vec<u8>,
    keep_body: bool,
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

impl Connection {
    pub(crate) fn open(address: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Connection {
            reader: BufReader::with_capacity(16 * 1024, stream),
            line: Vec::with_capacity(256),
            keep_body: false,
        })
    }

    /// Keeps response bodies (for small admin calls such as `/metrics`).
    pub(crate) fn keeping_bodies(mut self) -> Self {
        self.keep_body = true;
        self
    }

    /// Sends `request` and reads one response.
    pub(crate) fn call(&mut self, request: &[u8]) -> io::Result<Answer> {
        self.reader.get_mut().write_all(request)?;
        self.read_line()?;
        let status = self
            .line
            .split(|b| *b == b' ')
            .nth(1)
            .and_then(|code| std::str::from_utf8(code).ok())
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| invalid("malformed status line"))?;
        let mut length = None;
        let mut chunked = false;
        let mut close = self.line.starts_with(b"HTTP/1.0");
        loop {
            self.read_line()?;
            let line = trim(&self.line);
            if line.is_empty() {
                break;
            }
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
            if name.eq_ignore_ascii_case(b"content-length") {
                length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok());
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                chunked = value.eq_ignore_ascii_case(b"chunked");
            } else if name.eq_ignore_ascii_case(b"connection") {
                close = value.eq_ignore_ascii_case(b"close");
            }
        }
        let mut body = Vec::new();
        let mut first_byte = None;
        let mut last_chunk = None;
        let mut chunks = 0u32;
        if chunked {
            loop {
                self.read_line()?;
                let size_text = trim(&self.line);
                let size_text = size_text.split(|b| *b == b';').next().unwrap_or(size_text);
                let size = std::str::from_utf8(size_text)
                    .ok()
                    .and_then(|v| usize::from_str_radix(v, 16).ok())
                    .ok_or_else(|| invalid("malformed chunk size"))?;
                if size == 0 {
                    // Trailers, then the blank line.
                    loop {
                        self.read_line()?;
                        if trim(&self.line).is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let now = Instant::now();
                first_byte.get_or_insert(now);
                last_chunk = Some(now);
                chunks = chunks.saturating_add(1);
                self.read_body(size, &mut body)?;
                self.read_line()?;
            }
        } else if let Some(length) = length {
            if length > 0 {
                self.reader.fill_buf()?;
                first_byte = Some(Instant::now());
                self.read_body(length, &mut body)?;
            }
        } else {
            // No length: the body runs to the end of the connection.
            close = true;
            first_byte = Some(Instant::now());
            self.reader.read_to_end(&mut body)?;
        }
        Ok(Answer {
            status,
            first_byte,
            last_chunk,
            chunks,
            body,
            close,
        })
    }

    fn read_line(&mut self) -> io::Result<()> {
        self.line.clear();
        let read = self.reader.read_until(b'\n', &mut self.line)?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        Ok(())
    }

    fn read_body(&mut self, length: usize, body: &mut Vec<u8>) -> io::Result<()> {
        if self.keep_body {
            let start = body.len();
            body.resize(start + length, 0);
            self.reader.read_exact(&mut body[start..])
        } else {
            let copied = io::copy(&mut (&mut self.reader).take(length as u64), &mut io::sink())?;
            if copied == length as u64 {
                Ok(())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed mid-body",
                ))
            }
        }
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}

/// The bytes of an HTTP/1.1 request.
pub(crate) fn request_bytes(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Arc<[u8]> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n");
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" {
        out.push_str("content-type: application/json\r\n");
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes.into()
}

/// One request on a fresh connection, for admin calls: returns the status and the body.
pub(crate) fn fetch(address: SocketAddr, request: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let mut connection = Connection::open(address, Duration::from_secs(5))?.keeping_bodies();
    let answer = connection.call(request)?;
    Ok((answer.status, answer.body))
}
