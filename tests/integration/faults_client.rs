//! The client half of the fault suite: a hostile or broken client against an in-process gateway.
//! Each case asserts the status, the error's OpenAI shape and ids, the records and the silent
//! accounting; none asserts timing. The cases that need a process of their own (descriptor limit,
//! memory high-water mark, SIGKILL) are in `crates/mirror-cli/tests/faults.rs`.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{client, metrics_text, start_upstream, RunningGateway};

/// A primary mirrored to a shadow, both on the shared fake upstream, with low client limits.
fn config(upstream: &str, limits: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: primary
    litellm_params: {{model: openai/echo, api_base: "{upstream}/v1", api_key: sk-upstream-secret, silent_model: shadow}}
  - model_name: shadow
    litellm_params: {{model: openai/shadow-echo, api_base: "{upstream}/v1", api_key: sk-upstream-secret}}
  - model_name: held
    litellm_params: {{model: openai/held, api_base: "{upstream}/v1"}}
router_settings: {{num_retries: 0}}
mirror_settings:
  log_file: "{{log}}"
  max_body_bytes: 4096
{limits}
"#
    )
}

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

/// Asserts an OpenAI-shaped error with the ids, and returns its status and body.
async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    for header in ["x-mirror-call-id", "x-mirror-trace-id"] {
        assert!(
            response.headers().contains_key(header),
            "{status} without {header}"
        );
    }
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}"));
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    (status, body)
}

/// A raw HTTP/1.1 exchange: sends `request`, reads until the server closes or `Content-Length`
/// bytes of body have come; `None` when the server closed without a response.
async fn raw(address: &str, request: &[u8]) -> Option<(u16, String, String)> {
    let mut connection = TcpStream::connect(address).await.unwrap();
    connection.write_all(request).await.unwrap();
    read_response(&mut connection).await
}

async fn read_response(connection: &mut TcpStream) -> Option<(u16, String, String)> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(30), connection.read(&mut buffer))
            .await
            .expect("the gateway neither answered nor closed the connection");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
        let text = String::from_utf8_lossy(&received);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                break;
            }
        }
    }
    if received.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&received).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, head.to_ascii_lowercase(), body.to_owned()))
}

/// Reads until the server closes the connection; panics if it never does.
async fn closed_by_server(connection: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(30), connection.read(&mut buffer))
            .await
            .expect("the gateway kept an idle or half-sent connection open");
        match read {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

fn address(gateway: &RunningGateway) -> String {
    gateway.base.trim_start_matches("http://").to_owned()
}

fn head(address: &str, length: usize) -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    )
}

/// Checks the silent accounting of a stopped gateway.
fn assert_balanced(report: &mirror::gateway::ShutdownReport) {
    let silent = &report.mirror;
    assert_eq!(silent.in_flight(), 0, "{silent:?}");
    assert_eq!(
        silent.mirrored,
        silent.completed + silent.failed + silent.dropped(),
        "{silent:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_cannot_lock_others_out() {
    let (_upstream, base) = start_upstream().await;
    let gateway = RunningGateway::start(&config(
        &base,
        "  max_client_connections: 4\n  client_header_timeout: 1\n  client_body_grace: 1\n  client_body_min_rate: 1000",
    ))
    .await;
    let address = address(&gateway);
    // Two sockets that send nothing, one that stops in the middle of its headers and one that
    // stops in the middle of its body: together they take every connection slot.
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    let mut slow_head = TcpStream::connect(&address).await.unwrap();
    slow_head
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut slow_body = TcpStream::connect(&address).await.unwrap();
    slow_body
        .write_all(format!("{}{{\"model\":", head(&address, 1000)).as_bytes())
        .await
        .unwrap();

    // Another client still gets its answer: the timeouts free the slots.
    let response = client()
        .post(format!("{}/v1/chat/completions", gateway.base))
        .json(&chat_body("primary"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // The idle and slow-header sockets were closed without an answer, the slow body got a 408.
    for mut connection in idle {
        assert!(closed_by_server(&mut connection).await.is_empty());
    }
    closed_by_server(&mut slow_head).await;
    let answer = String::from_utf8(closed_by_server(&mut slow_body).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    assert!(answer.contains("x-mirror-call-id"), "{answer}");
    // Every cut is counted where an operator sees it.
    let metrics = metrics_text(&gateway.base).await;
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert!(
        value("mirror_client_header_timeouts_total") >= 3,
        "{metrics}"
    );
    assert!(
        value("mirror_client_connections_accepted_total") >= 5,
        "{metrics}"
    );
    assert_eq!(value("mirror_request_body_bytes_in_flight"), 0);

    let (report, records) = gateway.stop().await;
    assert_balanced(&report);
    // The answered call and its shadow; nothing for the refused ones (no call was made).
    assert_eq!(records.len(), 2, "{records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_in_memory_are_bounded_across_requests() {
    let (_upstream, base) = start_upstream().await;
    // A long grace: the held body must not be cut as too slow while the test looks at it.
    let gateway = RunningGateway::start(&config(
        &base,
        "  max_body_bytes_in_flight: 3000\n  client_body_grace: 3600",
    ))
    .await;
    let address = address(&gateway);
    // One client holds 1900 bytes of a 2000-byte body...
    let content =
        "x".repeat(2000 - r#"{"model":"primary","messages":[{"role":"user","content":""}]}"#.len());
    let body =
        format!(r#"{{"model":"primary","messages":[{{"role":"user","content":"{content}"}}]}}"#);
    assert_eq!(body.len(), 2000);
    let mut holder = TcpStream::connect(&address).await.unwrap();
    holder
        .write_all(format!("{}{}", head(&address, 2000), &body[..1900]).as_bytes())
        .await
        .unwrap();
    // ...and once the gateway holds them (an event, not a delay)...
    let readiness_url = format!("{}/health/readiness", gateway.base);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let readiness: Value = client()
            .get(&readiness_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if readiness["request_body_bytes_in_flight"].as_u64() >= Some(1900) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the held body never counted: {readiness}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...a second 1500-byte body does not fit: 503, retry shortly.
    let bigger =
        json!({"model": "primary", "messages": [{"role": "user", "content": "y".repeat(1400)}]});
    let refused = client()
        .post(format!("{}/v1/chat/completions", gateway.base))
        .json(&bigger)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.headers()["retry-after"], "1");
    let (status, error) = error_of(refused).await;
    assert_eq!(status, 503);
    assert_eq!(error["error"]["code"], "overloaded");
    // The holder finishes and is answered; its bytes are given back.
    holder.write_all(&body.as_bytes()[1900..]).await.unwrap();
    let (status, _, _) = read_response(&mut holder).await.unwrap();
    assert_eq!(status, 200);
    let readiness: Value = client()
        .get(format!("{}/health/readiness", gateway.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(readiness["request_body_bytes_in_flight"], 0);

    let (report, _records) = gateway.stop().await;
    assert_balanced(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_deep_huge_and_odd_requests_get_openai_shaped_errors() {
    let (upstream, base) = start_upstream().await;
    let gateway = RunningGateway::start(&config(&base, "")).await;
    let url = format!("{}/v1/chat/completions", gateway.base);
    let send = |body: Vec<u8>| {
        client()
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // Malformed JSON, nesting deeper than serde_json's limit, a body over `max_body_bytes`.
    let (status, _) = error_of(send(b"{\"model\": ".to_vec()).await.unwrap()).await;
    assert_eq!(status, 400);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge =
        json!({"model": "primary", "messages": [{"role": "user", "content": "z".repeat(10_000)}]});
    let (status, _) = error_of(send(deep.into_bytes()).await.unwrap()).await;
    assert_eq!(status, 413, "deeper than max_body_bytes");
    let deep = format!("{{\"model\": {}{}}}", "[".repeat(1000), "]".repeat(1000));
    let (status, _) = error_of(send(deep.into_bytes()).await.unwrap()).await;
    assert_eq!(status, 400);
    let (status, body) = error_of(send(huge.to_string().into_bytes()).await.unwrap()).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (413, &json!("request_too_large"))
    );

    // A wrong method, an unknown path, an Azure deployment that is not UTF-8.
    let response = client().get(&url).send().await.unwrap();
    assert!(response.headers().contains_key("allow"));
    let (status, body) = error_of(response).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (405, &json!("method_not_allowed"))
    );
    let (status, _) = error_of(
        client()
            .get(format!("{}/nowhere", gateway.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    let azure = format!(
        "{}/openai/deployments/%FF%FE/chat/completions",
        gateway.base
    );
    let (status, _) = error_of(
        client()
            .post(azure)
            .json(&chat_body("primary"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);

    // A trace id is echoed in a header, so it is short visible ASCII or refused.
    let mut long = chat_body("primary");
    long["metadata"] = json!({"trace_id": "t".repeat(3000)});
    let response = client().post(&url).json(&long).send().await.unwrap();
    let trace = response.headers()["x-mirror-trace-id"].len();
    let (status, body) = error_of(response).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_trace_id"))
    );
    assert!(trace <= 128, "a {trace}-byte trace id header");
    let mut spaced = chat_body("primary");
    spaced["metadata"] = json!({"trace_id": "a b"});
    let (status, _) = error_of(client().post(&url).json(&spaced).send().await.unwrap()).await;
    assert_eq!(status, 400);
    let mut fine = chat_body("primary");
    fine["metadata"] =
        json!({"trace_id": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"});
    let response = client().post(&url).json(&fine).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-mirror-trace-id"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );

    let (report, records) = gateway.stop().await;
    assert_balanced(&report);
    // Only the one valid call and its shadow reached the router; the upstream saw only them.
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(upstream.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggled_requests_are_refused_and_never_reach_the_upstream() {
    let (upstream, base) = start_upstream().await;
    let gateway = RunningGateway::start(&config(&base, "")).await;
    let address = address(&gateway);
    let body = chat_body("primary").to_string();
    // Two different Content-Lengths: which one frames the body is ambiguous, so it is refused.
    let double = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\ncontent-length: 5\r\n\r\n{body}",
        body.len()
    );
    let (status, _head, answer) = raw(&address, double.as_bytes()).await.unwrap();
    assert_eq!(status, 400);
    // FIXME(hyper): hyper refuses it while parsing the head and answers with an empty body before
    // any of our code runs; it has no hook to shape that answer.
    assert_eq!(answer, "");
    // Content-Length and Transfer-Encoding: chunked framing wins (RFC 9112 6.3), so the
    // "smuggled" second request inside the body is just bytes of a body that is not JSON.
    let smuggled = "GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n";
    let chunked = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
        smuggled.len()
    );
    let answer = raw(&address, chunked.as_bytes()).await;
    let (status, head, body) = answer.expect("an answer");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid request body"), "{body}");
    // A request framed both ways never leaves its connection open for a next one.
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        !body.contains("\"object\":\"list\""),
        "the smuggled GET was served"
    );
    let (report, records) = gateway.stop().await;
    assert_balanced(&report);
    assert!(records.is_empty(), "{records:?}");
    assert!(upstream.requests().is_empty());
}

#[test]
fn empty_master_keys_and_zero_limits_are_refused_and_check_says_what_auth_is() {
    let dir = std::env::temp_dir().join(format!("mirror-faults-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Set before any configuration reads it; no other test names this variable.
    std::env::set_var("MIRROR_FAULTS_EMPTY_KEY", "");
    let entry = "model_list:\n  - model_name: gpt-4\n    litellm_params: {model: mock/gpt-4}\n";
    let cases = [
        format!("{entry}general_settings:\n  master_key: \"\"\n"),
        format!("{entry}general_settings:\n  master_key: \"  \"\n"),
        format!("{entry}general_settings:\n  master_key: os.environ/MIRROR_FAULTS_EMPTY_KEY\n"),
        format!("{entry}mirror_settings:\n  max_client_connections: 0\n"),
        format!("{entry}mirror_settings:\n  client_header_timeout: 0\n"),
        format!("{entry}mirror_settings:\n  client_body_min_rate: 0\n"),
        format!("{entry}mirror_settings:\n  max_body_bytes_in_flight: 0\n"),
        format!("{entry}general_settings:\n  master_key: sk-1234\n"),
        entry.to_owned(),
    ];
    let mut out = String::new();
    for (index, yaml) in cases.iter().enumerate() {
        let path = dir.join(format!("case-{index}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let args = mirror_cli::cli::CheckArgs { config: Some(path) };
        let message = match tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async { mirror_cli::cli::check(&args) })
        {
            Ok(description) => description
                .lines()
                .filter(|line| line.starts_with("Auth:"))
                .collect(),
            Err(err) => err.to_string(),
        };
        out.push_str(&message.replace(&dir.display().to_string(), "$DIR"));
        out.push('\n');
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.contains("sk-1234"));
    expect_test::expect![[r#"
        $DIR/case-0.yaml: general_settings.master_key: is empty or whitespace (an `os.environ/NAME` reference to an empty variable too): it would turn authentication off; set a key, or remove the line to run without one at line 5 column 15
        $DIR/case-1.yaml: general_settings.master_key: is empty or whitespace (an `os.environ/NAME` reference to an empty variable too): it would turn authentication off; set a key, or remove the line to run without one at line 5 column 15
        $DIR/case-2.yaml: general_settings.master_key: is empty or whitespace (an `os.environ/NAME` reference to an empty variable too): it would turn authentication off; set a key, or remove the line to run without one at line 5 column 15
        $DIR/case-3.yaml: mirror_settings.max_client_connections: must be greater than 0 (a number of connections) at line 5 column 27
        $DIR/case-4.yaml: mirror_settings.client_header_timeout: must be a number of seconds greater than 0 and at most 3600 (1 hour), got 0.0 at line 5 column 26
        $DIR/case-5.yaml: mirror_settings.client_body_min_rate: must be greater than 0 (a number of bytes per second) at line 5 column 25
        $DIR/case-6.yaml: mirror_settings.max_body_bytes_in_flight: must be greater than 0 (a number of bytes) at line 5 column 29
        Auth: master key required on every route but /health* (key redacted)
        Auth: OFF: no master key, every client is accepted
    "#]].assert_eq(&out);
}

/// An upstream whose streams send one chunk and then hang, and whose other answers never come.
async fn hanging_upstream() -> mirror_test_support::Upstream {
    mirror_test_support::Upstream::with_handler(|call| async move {
        if call.body["stream"] == true {
            let chunk = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "partial"}, "finish_reason": null}]});
            let first = futures::stream::once(async move {
                Ok::<_, std::convert::Infallible>(format!("data: {chunk}\n\n"))
            });
            let body = axum::body::Body::from_stream(first.chain(futures::stream::pending()));
            return axum::response::Response::builder()
                .header("content-type", "text/event-stream")
                .body(body)
                .unwrap();
        }
        futures::future::pending::<()>().await;
        unreachable!()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_has_one_deadline_and_records_what_it_cuts() {
    let upstream = hanging_upstream().await;
    let mut gateway = RunningGateway::start(&format!(
        r#"
model_list:
  - model_name: hang
    litellm_params: {{model: openai/hang, api_base: "{}/v1", api_key: sk-upstream-secret}}
router_settings: {{num_retries: 0}}
mirror_settings:
  log_file: "{{log}}"
  shutdown_timeout: 1
"#,
        upstream.url()
    ))
    .await;
    let url = format!("{}/v1/chat/completions", gateway.base);
    // A call the upstream never answers, a stream that stops after one chunk, and a client that
    // stops in the middle of its body.
    let held = tokio::spawn({
        let url = url.clone();
        async move { client().post(url).json(&chat_body("hang")).send().await }
    });
    let stream =
        json!({"model": "hang", "stream": true, "messages": [{"role": "user", "content": "s"}]});
    let response = client().post(&url).json(&stream).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut events = response.bytes_stream();
    let first = events.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("partial"));
    let address = address(&gateway);
    let mut stuck = TcpStream::connect(&address).await.unwrap();
    stuck
        .write_all(format!("{}{{\"model\":", head(&address, 1000)).as_bytes())
        .await
        .unwrap();
    upstream
        .wait_until("both calls", |seen| seen.len() == 2)
        .await;
    // The stuck client's first bytes are in: its connection was accepted and its request is open.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let readiness: Value = client()
            .get(format!("{}/health/readiness", gateway.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if readiness["request_body_bytes_in_flight"].as_u64() > Some(0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stuck client's body never counted: {readiness}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let started = std::time::Instant::now();
    gateway.begin_stop();
    // The open stream ends with an error event at the deadline.
    let mut rest = Vec::new();
    while let Some(Ok(bytes)) = events.next().await {
        rest.extend_from_slice(&bytes);
    }
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("\"code\":\"shutting_down\""), "{rest}");
    assert!(!rest.contains("[DONE]"), "{rest}");
    // The held call and the stuck client are cut, not waited for.
    assert!(held.await.unwrap().is_err(), "the held call was answered");
    closed_by_server(&mut stuck).await;
    let (report, records) = gateway.finish().await;
    eprintln!(
        "shutdown with shutdown_timeout 1 s took {:?}",
        started.elapsed()
    );
    assert!(!report.requests_drained);
    assert_eq!(report.connections_closed, 3, "{report:?}");
    assert_balanced(&report);
    assert_eq!(report.writer.dropped(), 0);
    // Nothing in flight is lost from the log: both cut calls are there, as cancelled.
    let statuses: Vec<&str> = records
        .iter()
        .map(|record| record["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, ["cancelled", "cancelled"], "{records:?}");
}
