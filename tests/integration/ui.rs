//! The live page, `GET /ui`: its numbers agree with `mirror report` on the same calls, it is behind
//! the master key, and it renders in a real headless Chromium, showing a mirrored call within
//! seconds of it happening.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mirror_cli::report::{run, OutputFormat, ReportArgs};
use serde_json::{json, Value};

use crate::support::{client, metrics_text, RunningGateway};

/// `gpt-4o` mirrored to `gpt-4o-mini`, whose two deployments answer differently (one echoes, one
/// refuses), so the answers disagree on some pairs; streams give a time to first token.
fn config(extra: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: mock/gpt-4o, mock_latency_ms: 30, silent_model: gpt-4o-mini}}
    model_info: {{input_cost_per_token: 0.0000025, output_cost_per_token: 0.00001}}
  - model_name: gpt-4o-mini
    litellm_params: {{model: mock/gpt-4o-mini, mock_latency_ms: 10}}
    model_info: {{id: mini-echo, input_cost_per_token: 0.00000015, output_cost_per_token: 0.0000006}}
  - model_name: gpt-4o-mini
    litellm_params: {{model: mock/gpt-4o-mini, mock_latency_ms: 12, mock_response: "I would rather not say."}}
    model_info: {{id: mini-refuses, input_cost_per_token: 0.00000015, output_cost_per_token: 0.0000006}}
mirror_settings:
  log_file: "{{log}}"
{extra}
"#
    )
}

async fn send(base: &str, i: usize, key: Option<&str>) {
    let mut request = client().post(format!("{base}/v1/chat/completions")).json(&json!({
        "model": "gpt-4o",
        "stream": i % 2 == 1,
        "messages": [{"role": "user", "content": format!("What is {i} squared? It is {}.", i * i)}],
    }));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
}

async fn data(base: &str, key: Option<&str>) -> reqwest::Response {
    let mut request = client().get(format!("{base}/ui/data"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

/// Polls `/ui/data` until `done` holds, for at most 30 seconds.
async fn data_until(base: &str, key: Option<&str>, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body: Value = data(base, key).await.json().await.unwrap();
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed it: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn report_args(log: PathBuf) -> ReportArgs {
    ReportArgs {
        logs: vec![log],
        s3_prefix: None,
        s3_bucket: None,
        s3_endpoint: None,
        format: OutputFormat::Json,
        html: None,
        window: 100_000,
        top: 10,
        judge: None,
        config: None,
        judge_samples: 0,
        seed: 7,
        resample_pairs: mirror_report::DEFAULT_RESERVOIR,
        resamples: 200,
        gate: None,
        gate_file: None,
        no_progress: true,
    }
}

/// An edge without its confidence intervals (bootstrap resamples differ between the page and the
/// command by design).
fn without_intervals(edge: &Value) -> Value {
    let mut edge = edge.clone();
    edge.as_object_mut().unwrap().remove("intervals");
    edge
}

/// Equal JSON, numbers up to how a log stores them: sums may run in another order, and times are
/// epoch seconds in an `f64` (about 0.2 µs apart at today's dates) that serde_json reads back to
/// within one ULP, so a latency can move by a fraction of a microsecond and, rarely, into the
/// next bucket of the report's histograms (3 significant digits). Durations (`*_ms`, and every
/// latency and time to first token, in ms) agree to a microsecond or 0.2%; everything else to 1e-9.
fn same(page: &Value, command: &Value, path: &str) {
    match (page, command) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            let scale = a.abs().max(b.abs());
            let duration = ["_ms", "latency", "ttft"].iter().any(|d| path.contains(d));
            let tolerance = if duration {
                (2e-3 * scale).max(1e-3)
            } else {
                1e-9 * scale.max(1.0)
            };
            assert!(
                (a - b).abs() <= tolerance,
                "{path}: the page says {a}, mirror report {b}"
            );
        }
        (Value::Object(a), Value::Object(b)) => {
            let keys = |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(a), keys(b), "{path}");
            for (key, value) in a {
                same(value, &b[key], &format!("{path}.{key}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                same(x, y, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(page, command, "{path}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_mirror_report_agree_on_the_same_calls() {
    let gateway = RunningGateway::start(&config("")).await;
    // Unwatched, the page takes no records (nobody pays for a page nobody views) ...
    send(&gateway.base, 100, None).await;
    // Its shadow finishes before the first view (else it could enter the window unpaired).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = metrics_text(&gateway.base).await;
        if metrics
            .lines()
            .any(|l| l == "mirror_silent_completed_total 1")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the shadow never completed: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unwatched: Value = data(&gateway.base, None).await.json().await.unwrap();
    assert_eq!(unwatched["window"]["records"], 0, "{unwatched}");
    // ... and that view started it: every call from now on reaches the window.
    let calls = 24;
    for i in 0..calls {
        send(&gateway.base, i, None).await;
    }
    let calls_seen = calls + 1;
    let live = data_until(&gateway.base, None, |d| {
        d["mirror"]["completed"] == calls_seen && d["window"]["records"] == 2 * calls
    })
    .await;
    assert_eq!(live["mirroring"], true);
    assert_eq!(live["payloads"], true);
    assert_eq!(live["dropped"], 0);
    let metrics = metrics_text(&gateway.base).await;
    assert!(
        metrics.lines().any(|l| l
            == format!(
                "mirror_live_page_feed_dropped_total {}",
                live["feed_dropped"]
            )),
        "the feed's drops are not on /metrics as on the page: {metrics}"
    );
    assert_eq!(
        live["breakers"],
        json!([{"group": "gpt-4o-mini", "open": false}])
    );
    let log = gateway.log.clone();
    let keep = log.with_extension("kept.jsonl");
    // The gateway's log file is removed by `stop`: keep a copy for the report.
    let (_report, records) = gateway.stop().await;
    assert_eq!(records.len(), 2 * calls_seen);
    // The log has the unwatched call too; the report is given what the window saw.
    let text: String = records
        .iter()
        .filter(|r| !r.to_string().contains("What is 100 squared"))
        .map(|r| format!("{r}\n"))
        .collect();
    std::fs::write(&keep, text).unwrap();
    let mut out = Vec::new();
    run(&report_args(keep.clone()), &mut out).await.unwrap();
    let _ = std::fs::remove_file(&keep);
    let report: Value = serde_json::from_slice(&out).unwrap();
    let (page, command) = (&live["edges"], &report["edges"]);
    assert_eq!(page.as_array().unwrap().len(), 1);
    same(
        &without_intervals(&page[0]),
        &without_intervals(&command[0]),
        "edge",
    );
    same(&live["totals"], &report["totals"], "totals");
    let edge = &page[0];
    assert_eq!(edge["pairs"], calls);
    assert_eq!(edge["shadow"]["streams"], calls / 2);
    assert!(edge["agreement"]["comparable"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_behind_the_master_key_and_never_asks_for_it_in_a_url() {
    let gateway = RunningGateway::start(&format!(
        "{}general_settings: {{master_key: sk-live-page-key}}\n",
        config("")
    ))
    .await;
    // The page itself holds no data: anyone may load it; it locks itself down.
    let page = client()
        .get(format!("{}/ui", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.headers().contains_key("x-mirror-call-id"));
    let html = page.text().await.unwrap();
    assert!(html.contains("type=\"password\"") && html.contains("sessionStorage"));
    for external in [" src=", "href=\"http", "@import", "url("] {
        assert!(!html.contains(external), "external asset `{external}`");
    }
    // Its numbers need the key, in a header.
    let refused = data(&gateway.base, None).await;
    assert_eq!(refused.status(), 401);
    let refused: Value = refused.json().await.unwrap();
    assert!(refused["error"]["message"].is_string());
    assert_eq!(data(&gateway.base, Some("sk-wrong")).await.status(), 401);
    send(&gateway.base, 3, Some("sk-live-page-key")).await;
    let live = data_until(&gateway.base, Some("sk-live-page-key"), |d| {
        d["mirror"]["completed"] == 1
    })
    .await;
    assert!(!live.to_string().contains("sk-live-page-key"));
    gateway.stop().await;
}

/// Loads `url` in headless Chromium, lets its script run for `budget_ms` of virtual time, and
/// returns the DOM (and writes a screenshot when asked).
fn browse(
    chromium: &str,
    dir: &Path,
    url: &str,
    budget_ms: u32,
    screenshot: Option<&Path>,
) -> String {
    let mut command = std::process::Command::new(chromium);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,1000",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--virtual-time-budget={budget_ms}"));
    if let Some(path) = screenshot {
        command.arg(format!("--screenshot={}", path.display()));
    } else {
        command.arg("--dump-dom");
    }
    let output = command
        .arg(url)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {chromium}: {err}"));
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "chromium failed: {log}");
    assert!(!log.contains("Uncaught"), "console error:\n{log}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_renders_in_headless_chromium_and_shows_a_call_within_seconds() {
    let Some(chromium) = mirror_test_support::chromium("the live page test") else {
        eprintln!("MIRROR_SKIP_BROWSER_TESTS=1: not rendering the live page.");
        return;
    };
    let dir = std::env::temp_dir().join(format!("mirror-ui-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gateway = RunningGateway::start(&config("")).await;
    let url = format!("{}/ui", gateway.base);

    // Before any call: the page renders, with no pair yet.
    let dom = browse(&chromium, &dir, &url, 3_000, None);
    assert!(
        !dom.contains("data-script-error=\""),
        "script error:\n{dom}"
    );
    assert!(
        !dom.contains("data-ui-ready=\"0\""),
        "the page never rendered:\n{dom}"
    );
    assert!(dom.contains("data-mirrored=\"0\""), "{dom}");
    assert!(dom.contains("No mirrored call in the window yet"), "{dom}");

    // One call: the page shows it (mirrored, completed, one pair) within seconds.
    send(&gateway.base, 7, None).await;
    let sent = Instant::now();
    let deadline = sent + Duration::from_secs(30);
    let dom = loop {
        let dom = browse(&chromium, &dir, &url, 3_000, None);
        if dom.contains("data-completed=\"1\"") && dom.contains("data-pairs=\"1\"") {
            break dom;
        }
        assert!(Instant::now() < deadline, "the call never showed:\n{dom}");
    };
    eprintln!("the call showed {:?} after it was answered", sent.elapsed());
    assert!(
        dom.contains("data-primary=\"gpt-4o\" data-shadow=\"gpt-4o-mini\""),
        "{dom}"
    );
    assert!(dom.contains("data-breaker=\"closed\""));
    assert!(dom.contains("data-chart=\"latency\"") && dom.contains("data-chart=\"trend\""));
    assert!(dom.contains("data-series=\"primary\"") && dom.contains("data-series=\"shadow\""));
    // Without the admin API the controls say so rather than fail.
    assert!(dom.contains("data-admin="), "{dom}");

    // More calls for the screenshot, which must not be blank: a PNG of the empty page's size
    // compresses to a few kilobytes; this page has text, tables and charts.
    for i in 0..30 {
        send(&gateway.base, i, None).await;
    }
    data_until(&gateway.base, None, |d| d["mirror"]["completed"] == 31).await;
    let shot = dir.join("ui.png");
    browse(&chromium, &dir, &url, 3_000, Some(&shot));
    let blank = dir.join("blank.png");
    browse(&chromium, &dir, "about:blank", 100, Some(&blank));
    let (png, blank_png) = (
        std::fs::read(&shot).unwrap(),
        std::fs::read(&blank).unwrap(),
    );
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        png.len() > 8 * blank_png.len(),
        "the screenshot looks blank: {} bytes, a blank page {} bytes",
        png.len(),
        blank_png.len()
    );
    if let Ok(keep) = std::env::var("MIRROR_UI_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    gateway.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Just enough of the Chrome DevTools Protocol to run script in a page: a WebSocket client (RFC
/// 6455: masked text frames out, text frames in) and `Runtime.evaluate`.
struct DevTools {
    stream: tokio::net::TcpStream,
    next_id: u64,
}

impl DevTools {
    /// Opens `url` in a new tab of the Chromium listening on `port` and connects to that tab.
    async fn open(port: u16, url: &str) -> Self {
        let tab: Value = client()
            .put(format!("http://127.0.0.1:{port}/json/new?{url}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ws = tab["webSocketDebuggerUrl"].as_str().unwrap();
        let path = &ws[ws.find("/devtools/").unwrap()..];
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            tokio::io::AsyncReadExt::read_exact(&mut stream, &mut byte)
                .await
                .unwrap();
            head.push(byte[0]);
            assert!(head.len() < 4096, "no WebSocket handshake");
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        DevTools { stream, next_id: 0 }
    }

    async fn send(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81u8];
        match payload.len() {
            len @ 0..=125 => frame.push(0x80 | len as u8),
            len @ 126..=65535 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        let mask = [0x5a, 0x13, 0xc7, 0x2e];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        tokio::io::AsyncWriteExt::write_all(&mut self.stream, &frame)
            .await
            .unwrap();
    }

    /// One whole text message.
    async fn receive(&mut self) -> Value {
        use tokio::io::AsyncReadExt;
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head).await.unwrap();
            let len = match head[1] & 0x7f {
                126 => u64::from(self.stream.read_u16().await.unwrap()),
                127 => self.stream.read_u64().await.unwrap(),
                len => u64::from(len),
            };
            let mut payload = vec![0u8; usize::try_from(len).unwrap()];
            self.stream.read_exact(&mut payload).await.unwrap();
            assert_ne!(head[0] & 0x0f, 8, "DevTools closed the connection");
            message.extend_from_slice(&payload);
            if head[0] & 0x80 != 0 {
                return serde_json::from_slice(&message).unwrap();
            }
        }
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value.
    async fn eval(&mut self, expression: &str) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let call = json!({"id": id, "method": "Runtime.evaluate", "params": {
            "expression": expression, "returnByValue": true, "awaitPromise": true}});
        self.send(&call.to_string()).await;
        let answer = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let message = self.receive().await;
                if message["id"] == id {
                    return message;
                }
            }
        })
        .await
        .expect("DevTools answered within 20 s");
        assert!(
            answer["result"]["exceptionDetails"].is_null(),
            "{expression}: {answer}"
        );
        answer["result"]["result"]["value"].clone()
    }

    /// Evaluates `expression` until it is `true`, for at most 30 seconds.
    async fn wait_for(&mut self, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        // Before the page has loaded (or between two renders) an element may be missing: false.
        let guarded = format!(
            "(() => {{ try {{ return ({expression}); }} catch (e) {{ return false; }} }})()"
        );
        while self.eval(&guarded).await != json!(true) {
            assert!(
                Instant::now() < deadline,
                "never true: {expression}\n{}",
                self.eval("document.body.outerHTML").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Headless Chromium with the DevTools protocol on a free port; killed on drop.
struct Browser {
    child: std::process::Child,
    port: u16,
}

impl Browser {
    async fn start(chromium: &str, dir: &Path) -> Self {
        let profile = dir.join("devtools-profile");
        let child = std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {chromium}: {err}"));
        // Chromium writes the port it listens on into the profile.
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(profile.join("DevToolsActivePort"))
                .ok()
                .and_then(|text| text.lines().next().and_then(|l| l.parse().ok()))
            {
                break port;
            }
            assert!(Instant::now() < deadline, "Chromium never opened DevTools");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Browser { child, port }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn settings(base: &str, key: &str) -> Value {
    client()
        .get(format!("{base}/admin/mirror"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls the admin API until `done` holds, for at most 30 seconds.
async fn settings_until(base: &str, key: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = settings(base, key).await;
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "the settings never changed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_logs_in_and_its_buttons_steer_the_mirror_through_the_admin_api() {
    let Some(chromium) = mirror_test_support::chromium("the live page test") else {
        eprintln!("MIRROR_SKIP_BROWSER_TESTS=1: not clicking the live page.");
        return;
    };
    let dir = std::env::temp_dir().join(format!("mirror-ui-clicks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = "sk-live-page-buttons";
    let gateway = RunningGateway::start(&format!(
        "{}general_settings: {{master_key: {key}}}\n",
        config("")
    ))
    .await;
    let browser = Browser::start(&chromium, &dir).await;
    let mut page = DevTools::open(browser.port, &format!("{}/ui", gateway.base)).await;

    // The numbers need the key: the page asks for it, and gets it through its form.
    page.wait_for("document.body.getAttribute('data-login') === 'required'")
        .await;
    page.eval(&format!(
        "document.getElementById('key').value = '{key}'; \
         document.getElementById('login-form').requestSubmit(); true"
    ))
    .await;
    page.wait_for("document.querySelector('[data-target=\"gpt-4o-mini\"]') !== null")
        .await;
    assert_eq!(
        page.eval("location.href").await,
        json!(format!("{}/ui", gateway.base))
    );
    assert_eq!(
        page.eval("document.getElementById('key').value").await,
        json!("")
    );

    // Switch the target off.
    assert_eq!(
        settings(&gateway.base, key).await["targets"][0]["enabled"],
        true
    );
    page.eval("document.querySelector('[data-target-toggle=\"gpt-4o-mini\"]').click(); true")
        .await;
    settings_until(&gateway.base, key, |s| s["targets"][0]["enabled"] == false).await;
    page.wait_for(
        "document.querySelector('[data-target-toggle=\"gpt-4o-mini\"]').textContent === 'switch on'",
    )
    .await;
    // A call now: its copy is dropped, and the page counts the drop.
    send(&gateway.base, 2, Some(key)).await;
    page.wait_for(
        "Number(document.querySelector('[data-key=\"dropped\"]').getAttribute('data-value')) === 1",
    )
    .await;

    // Its sample rate.
    page.eval(
        "const row = document.querySelector('[data-target=\"gpt-4o-mini\"]'); \
         row.querySelector('input').value = '0.25'; \
         row.querySelector('[data-target-rate]').click(); true",
    )
    .await;
    settings_until(&gateway.base, key, |s| {
        s["targets"][0]["sample_rate"] == 0.25
    })
    .await;

    // And mirroring as a whole.
    page.eval("document.getElementById('toggle-global').click(); true")
        .await;
    settings_until(&gateway.base, key, |s| s["enabled"] == false).await;
    page.wait_for("document.getElementById('mirroring').getAttribute('data-on') === 'false'")
        .await;
    drop(page);
    drop(browser);
    gateway.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
