//! LiteLLM proxy configs as people write them, one pattern per file in `tests/fixtures/litellm/`,
//! each with its expected outcome in its header: it loads and serves (a request through the gateway
//! reaches the in-process upstream as LiteLLM would send it), or it is refused naming the feature.
//!
//! Header lines, before the YAML:
//! - `# expect: serves` or `# expect: refuses <text the error contains>`;
//! - `# env: NAME=value` sets a variable while the fixture runs (`{upstream}` is replaced);
//! - `# request: {json}` the body POSTed to `/v1/chat/completions` (`messages` may be left out);
//! - `# upstream_requests: n` waits for n upstream requests (silent copies arrive later);
//! - `# check: <upstream model> <what> <json>`: in the upstream request whose body `model` is the
//!   first word, `what` (`path`, `query`, `header.<name>`, `body.<key>`) equals the JSON value
//!   (`absent`: not there);
//! - `# models: a, b` the ids `/v1/models` lists;
//! - `# describe: <text>` a line `mirror check` prints.
//!
//! `{upstream}` in the YAML is the upstream's `http://127.0.0.1:<port>`.

use std::path::Path;

use axum::response::{IntoResponse, Response};
use mirror::config::load;
use mirror::gateway::Gateway;
use mirror_test_support::{Call, Seen, Upstream};
use serde_json::{json, Value};

use crate::support::{client, RunningGateway};

/// Answers any POST as an OpenAI-compatible server would (so every preset's path works), except a
/// `model` of `fail-500`, which fails.
async fn answer(call: Call) -> Response {
    let model = call.body["model"].as_str().unwrap_or_default().to_owned();
    if model == "fail-500" {
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": {"message": "upstream broke", "type": "server_error"}})),
        )
            .into_response();
    }
    axum::Json(json!({
        "id": "chatcmpl-fixture", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    }))
    .into_response()
}

#[derive(Debug, Default)]
struct Fixture {
    refuses: Option<String>,
    env: Vec<(String, String)>,
    request: Option<Value>,
    upstream_requests: usize,
    checks: Vec<(String, String, String)>,
    models: Option<Vec<String>>,
    describe: Vec<String>,
}

fn header(text: &str, upstream: &str) -> Fixture {
    let mut fixture = Fixture {
        upstream_requests: 1,
        ..Fixture::default()
    };
    let mut expect = None;
    for line in text.lines().map_while(|line| line.strip_prefix("# ")) {
        let line = line.replace("{upstream}", upstream);
        let Some((key, value)) = line.split_once(": ") else {
            continue;
        };
        match key {
            "expect" => expect = Some(value.to_owned()),
            "env" => {
                let (name, value) = value.split_once('=').unwrap();
                fixture.env.push((name.to_owned(), value.to_owned()));
            }
            "request" => fixture.request = Some(serde_json::from_str(value).unwrap()),
            "upstream_requests" => fixture.upstream_requests = value.parse().unwrap(),
            "check" => {
                let mut parts = value.splitn(3, ' ');
                fixture.checks.push((
                    parts.next().unwrap().to_owned(),
                    parts.next().unwrap().to_owned(),
                    parts.next().unwrap().to_owned(),
                ));
            }
            "models" => {
                fixture.models = Some(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|name| !name.is_empty())
                        .map(str::to_owned)
                        .collect(),
                );
            }
            "describe" => fixture.describe.push(value.to_owned()),
            _ => {}
        }
    }
    let expect = expect.expect("every fixture says `# expect: ...`");
    if let Some(text) = expect.strip_prefix("refuses ") {
        fixture.refuses = Some(text.to_owned());
    } else {
        assert_eq!(expect, "serves", "unknown expectation `{expect}`");
    }
    fixture
}

/// What `what` is in an upstream request, as JSON (`None`: absent).
fn seen_value(seen: &Seen, what: &str) -> Option<Value> {
    if what == "path" {
        return Some(Value::String(seen.path.clone()));
    }
    if what == "query" {
        return seen.query.clone().map(Value::String);
    }
    if let Some(name) = what.strip_prefix("header.") {
        return seen
            .header(name)
            .map(|value| Value::String(value.to_owned()));
    }
    let key = what
        .strip_prefix("body.")
        .expect("path, query, header.<name> or body.<key>");
    seen.body.get(key).cloned()
}

/// Loads, serves and checks one fixture; returns a line for the table of outcomes.
async fn run(path: &Path) -> String {
    let upstream = Upstream::with_handler(answer).await;
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).unwrap();
    let fixture = header(&text, upstream.url());
    for (variable, value) in &fixture.env {
        std::env::set_var(variable, value);
    }
    let dir = std::env::temp_dir().join(format!("mirror-litellm-fixtures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join(format!("{name}.jsonl"));
    // The log goes to a temporary file unless the fixture says otherwise.
    let yaml = text.replace("{upstream}", upstream.url());
    let yaml = if yaml.contains("mirror_settings:") {
        yaml
    } else {
        format!("{yaml}\nmirror_settings:\n  log_file: {}\n", log.display())
    };
    let file = dir.join(&name);
    std::fs::write(&file, &yaml).unwrap();

    let loaded = load(Some(&file)).and_then(|config| {
        Gateway::from_config(&config)
            .map(drop)
            .map_err(|err| match err {
                mirror::gateway::GatewayError::Config(err) => err,
                other => panic!("{name}: {other}"),
            })
            .map(|()| config)
    });
    let outcome = match (&fixture.refuses, loaded) {
        (Some(expected), Err(err)) => {
            let message = err.to_string();
            assert!(
                message.contains(expected.as_str()),
                "{name}: expected the error to contain `{expected}`, got: {message}"
            );
            assert!(
                !message.contains("did you mean") || expected.contains("did you mean"),
                "{name}: {message}"
            );
            format!("{name}: refused: {expected}")
        }
        (Some(expected), Ok(_)) => panic!("{name}: loaded, expected it refused with `{expected}`"),
        (None, Err(err)) => panic!("{name}: expected it to serve, got: {err}"),
        (None, Ok(_)) => {
            serve_and_check(&name, &fixture, &yaml, &upstream, &file).await;
            format!("{name}: serves")
        }
    };
    for (variable, _) in &fixture.env {
        std::env::remove_var(variable);
    }
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&log);
    outcome
}

async fn serve_and_check(
    name: &str,
    fixture: &Fixture,
    yaml: &str,
    upstream: &Upstream,
    file: &Path,
) {
    for line in &fixture.describe {
        let args = mirror_cli::cli::CheckArgs {
            config: Some(file.to_owned()),
        };
        let described = mirror_cli::cli::check(&args).unwrap();
        assert!(
            described.contains(line.as_str()),
            "{name}: `mirror check` does not print `{line}`:\n{described}"
        );
    }
    let gateway = RunningGateway::start(yaml).await;
    if let Some(expected) = &fixture.models {
        let listed: Value = client()
            .get(format!("{}/v1/models", gateway.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ids: Vec<&str> = listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|model| model["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, *expected, "{name}: /v1/models");
    }
    if let Some(request) = &fixture.request {
        let mut body = request.clone();
        if body.get("messages").is_none() {
            body["messages"] = json!([{"role": "user", "content": "hello"}]);
        }
        let response = client()
            .post(format!("{}/v1/chat/completions", gateway.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer = response.text().await.unwrap();
        assert!(status.is_success(), "{name}: {status} {answer}");
        upstream.wait_for_requests(fixture.upstream_requests).await;
        let seen = upstream.requests();
        for (model, what, expected) in &fixture.checks {
            let request = seen
                .iter()
                .find(|seen| seen.body["model"] == *model.as_str())
                .unwrap_or_else(|| {
                    panic!("{name}: no upstream request for model `{model}`: {seen:#?}")
                });
            let actual = seen_value(request, what);
            let expected: Option<Value> = (expected != "absent").then(|| {
                serde_json::from_str(expected)
                    .unwrap_or_else(|_| panic!("{name}: `{expected}` is not JSON"))
            });
            assert_eq!(
                actual, expected,
                "{name}: {what} of the upstream request for `{model}`"
            );
        }
    }
    gateway.stop().await;
}

#[tokio::test]
async fn every_litellm_fixture_serves_or_is_refused_by_name() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/litellm");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 20, "fixtures missing from {}", dir.display());
    // Each fixture runs on its own task, so one that fails does not hide the others.
    let mut table = String::new();
    let mut failed = Vec::new();
    for path in paths {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match tokio::spawn(async move { run(&path).await }).await {
            Ok(line) => table.push_str(&line),
            Err(_) => {
                table.push_str(&format!("{name}: FAILED"));
                failed.push(name);
            }
        }
        table.push('\n');
    }
    println!("{table}");
    assert!(
        failed.is_empty(),
        "fixtures that failed: {failed:?}\n{table}"
    );
}
