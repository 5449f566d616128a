//! `mirror report` end to end: logs written by the real JSONL sink (or by the real router with mock
//! providers), read back, paired and compared; the judge through the router; the HTML page in a
//! real headless Chromium; logs written by the real S3 sink to s3s-fs and read back from the prefix.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mirror::logging::{JsonlConfig, JsonlSink, LogSink};
use mirror::report::{
    analyze_paths, render_html, run, Analyzer, OutputFormat, Report, ReportArgs, ReportOptions,
};
use mirror::{CallId, CallRecord};
use serde_json::{json, Value};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mirror-report-{name}-{}-{}",
        std::process::id(),
        fastrand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fastrand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A successful primary call of `group` on `model` that took `latency` seconds and answered `text`.
fn primary(group: &str, model: &str, latency: f64, text: &str) -> CallRecord {
    let record = json!({
        "id": "chatcmpl-test", "trace_id": mirror::TraceId::new(), "litellm_call_id": CallId::new(),
        "call_type": "acompletion", "stream": false, "status": "success",
        "custom_llm_provider": "openai", "model": model, "model_id": format!("{group}-dep"),
        "model_group": group, "api_base": "https://api.example.invalid/v1",
        "startTime": 1_700_000_000.0, "endTime": 1_700_000_000.0 + latency,
        "completionStartTime": 1_700_000_000.0 + latency, "response_time": latency,
        "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "response_cost": 0.001,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "response": {"id": "chatcmpl-test", "object": "chat.completion", "created": 1_700_000_000_u64,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]},
        "metadata": {"is_silent_experiment": false, "spend": "caller", "attempts": 1, "requester_metadata": {}},
        "request_tags": []
    });
    serde_json::from_value(record).unwrap()
}

/// The silent copy of `of`, answered by `group` on `model`.
fn shadow(of: &CallRecord, group: &str, model: &str, latency: f64, text: &str) -> CallRecord {
    let mut record = primary(group, model, latency, text);
    record.trace_id = of.trace_id.clone();
    record.metadata.is_silent_experiment = true;
    record.metadata.mirror_of = Some(of.call_id);
    record.metadata.spend = serde_json::from_value(json!("shadow")).unwrap();
    record
}

fn failed(mut record: CallRecord, class: &str) -> CallRecord {
    let mut value = serde_json::to_value(&record).unwrap();
    value["status"] = json!("failure");
    value["error_str"] = json!("upstream said no");
    value["error_information"] = json!({
        "error_code": "429", "error_class": class, "llm_provider": "openai", "error_message": "no"
    });
    value.as_object_mut().unwrap().remove("response");
    record = serde_json::from_value(value).unwrap();
    record
}

fn with_tool_call(mut record: CallRecord, name: &str, arguments: &str) -> CallRecord {
    let mut value = serde_json::to_value(&record).unwrap();
    value["response"]["choices"][0]["message"] = json!({
        "role": "assistant", "content": null,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}]
    });
    record = serde_json::from_value(value).unwrap();
    record
}

fn streamed(mut record: CallRecord, ttft: f64) -> CallRecord {
    record.stream = true;
    record.completion_start_time = Some(record.start_time + ttft);
    record
}

/// Writes `records` with the real JSONL sink, in order.
async fn write_log(dir: &Path, name: &str, records: Vec<CallRecord>) -> PathBuf {
    let path = dir.join(name);
    let sink = JsonlSink::new(JsonlConfig::new(&path));
    let batch: Vec<Arc<CallRecord>> = records.into_iter().map(Arc::new).collect();
    sink.write(&batch).await.unwrap();
    sink.flush().await.unwrap();
    path
}

fn options() -> ReportOptions {
    ReportOptions::default()
}

fn edge<'a>(report: &'a Report, primary: &str, shadow: &str) -> &'a mirror::report::PairSummary {
    report
        .edges
        .iter()
        .find(|e| e.primary_group == primary && e.shadow_group == shadow)
        .unwrap_or_else(|| panic!("no edge {primary} -> {shadow} in {:#?}", report.edges))
}

#[tokio::test]
async fn pairs_by_mirror_of_and_trace_and_counts_the_unpaired() {
    let dir = temp_dir("pairing");
    let p: Vec<CallRecord> = (0..6)
        .map(|i| primary("gpt-4o", "gpt-4o", 0.1, &format!("answer {i}")))
        .collect();
    let s0 = shadow(&p[0], "mini", "gpt-4o-mini", 0.1, "answer 0");
    let s1 = failed(
        shadow(&p[1], "mini", "gpt-4o-mini", 0.1, ""),
        "rate_limited",
    );
    // Written before its primary, as a fast shadow is.
    let s2 = shadow(&p[2], "mini", "gpt-4o-mini", 0.1, "answer 2");
    // No `mirror_of`: paired by the shared trace id.
    let mut s3 = shadow(&p[3], "mini", "gpt-4o-mini", 0.1, "answer 3");
    s3.metadata.mirror_of = None;
    // Its primary is not in the log.
    let stray = primary("gpt-4o", "gpt-4o", 0.1, "elsewhere");
    let s_stray = shadow(&stray, "mini", "gpt-4o-mini", 0.1, "x");
    let records = vec![
        p[0].clone(),
        s0.clone(),
        p[1].clone(),
        s1,
        s2,
        p[2].clone(),
        p[3].clone(),
        s3,
        p[4].clone(),
        p[5].clone(),
        s0, // a duplicate line, as a retried batch writes
        s_stray,
    ];
    let path = write_log(&dir, "calls.jsonl", records).await;
    // A torn last line, as a reader of a live file may see.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"id\": \"chatcmpl-cut");
    std::fs::write(&path, text).unwrap();

    let report = analyze_paths(&[path], &options(), false).unwrap();
    let t = &report.totals;
    assert_eq!((t.records, t.primaries, t.shadows), (12, 6, 6), "{t:?}");
    assert_eq!(t.malformed_lines, 1);
    assert_eq!(t.duplicates, 1);
    assert_eq!(t.shadows_without_mirror_of, 1);
    assert_eq!(t.unmatched_shadows.get("mini"), Some(&1));
    assert_eq!(report.edges.len(), 1);
    let e = edge(&report, "gpt-4o", "mini");
    assert_eq!(e.primaries, 6);
    assert_eq!(e.pairs, 4);
    assert_eq!(e.missing, 2);
    assert_eq!(e.shadow_failed, 1);
    assert_eq!(e.primary_failed, 0);
    assert_eq!(e.shadow.errors_by_class.get("rate_limited"), Some(&1));
    assert!((e.shadow.error_rate - 0.25).abs() < 1e-9);
    assert_eq!(e.agreement.comparable, 3);
    assert_eq!(e.agreement.exact, 3);
    assert!(!e.is_self_copy);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_window_bounds_what_waits_for_a_partner() {
    let dir = temp_dir("window");
    let mut records = Vec::new();
    let early = primary("a", "m1", 0.1, "x");
    let late_shadow = shadow(&early, "b", "m2", 0.1, "x");
    records.push(early);
    for i in 0..50 {
        let p = primary("a", "m1", 0.1, &format!("{i}"));
        records.push(shadow(&p, "b", "m2", 0.1, &format!("{i}")));
        records.push(p);
    }
    // 101 records after its primary: past a window of 20.
    records.push(late_shadow);
    let path = write_log(&dir, "calls.jsonl", records).await;

    let narrow = ReportOptions {
        window: 20,
        ..options()
    };
    let mut analyzer = Analyzer::new(narrow.clone());
    let text = std::fs::read_to_string(&path).unwrap();
    for line in text.lines() {
        analyzer.push(&serde_json::from_str(line).unwrap());
        assert!(analyzer.pending() <= 20, "{}", analyzer.pending());
    }
    let report = analyzer.finish();
    let e = edge(&report, "a", "b");
    assert_eq!((e.primaries, e.pairs, e.missing), (51, 50, 1));
    assert_eq!(report.totals.unmatched_shadows.get("b"), Some(&1));

    // A wide enough window pairs the straggler.
    let report = analyze_paths(&[path], &options(), false).unwrap();
    let e = edge(&report, "a", "b");
    assert_eq!((e.pairs, e.missing), (51, 0));
    assert!(report.totals.unmatched_shadows.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn percentiles_tokens_and_cost_on_known_data() {
    let dir = temp_dir("percentiles");
    let mut records = Vec::new();
    for i in 1..=100 {
        let ms = f64::from(i) / 1000.0;
        let mut p = streamed(primary("p", "m1", ms, "same"), ms / 2.0);
        p.response_cost = 0.002;
        let mut s = streamed(shadow(&p, "s", "m2", 2.0 * ms, "same"), ms);
        s.response_cost = 0.0005;
        s.prompt_tokens = 10;
        s.completion_tokens = 7;
        records.push(p);
        records.push(s);
    }
    let path = write_log(&dir, "calls.jsonl", records).await;
    let report = analyze_paths(&[path], &options(), false).unwrap();
    let e = edge(&report, "p", "s");
    let close = |got: f64, want: f64| {
        // HDR histograms keep 3 significant digits.
        assert!(
            (got - want).abs() <= want.abs() * 2e-3 + 1e-6,
            "{got} vs {want}"
        );
    };
    close(e.primary.latency_ms.p50, 50.0);
    close(e.primary.latency_ms.p90, 90.0);
    close(e.primary.latency_ms.p99, 99.0);
    close(e.shadow.latency_ms.p50, 100.0);
    close(e.shadow.latency_ms.p90, 180.0);
    close(e.shadow.latency_ms.p99, 198.0);
    // Paired differences: shadow - primary = i ms.
    close(e.latency_diff_ms.p50, 50.0);
    close(e.latency_diff_ms.p99, 99.0);
    assert_eq!(e.primary.streams, 100);
    close(e.primary.ttft_ms.p50, 25.0);
    close(e.shadow.ttft_ms.p90, 90.0);
    close(e.ttft_diff_ms.p50, 25.0);
    assert_eq!(e.primary.prompt_tokens, 1000);
    assert_eq!(e.primary.completion_tokens, 500);
    assert_eq!(e.shadow.completion_tokens, 700);
    close(e.primary.cost, 0.2);
    close(e.shadow.cost, 0.05);
    close(e.primary.cost_per_1k, 2.0);
    close(e.shadow.cost_per_1k, 0.5);
    close(e.cost_per_1k_diff, -1.5);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn agreement_on_crafted_pairs() {
    let dir = temp_dir("agreement");
    let pairs: Vec<(CallRecord, &str)> = vec![
        (primary("p", "m1", 0.1, "Paris."), "Paris."),
        (
            primary("p", "m1", 0.1, "The  capital is\nParis."),
            "the capital is PARIS.",
        ),
        (
            primary("p", "m1", 0.1, r#"{"city": "Paris", "n": [1, 2]}"#),
            "```json\n{\"n\":[1,2],\"city\":\"Paris\"}\n```",
        ),
        (
            primary("p", "m1", 0.1, r#"{"city": "Paris"}"#),
            r#"{"city": "Lyon"}"#,
        ),
        (
            primary(
                "p",
                "m1",
                0.1,
                "The capital of France is Paris, on the Seine.",
            ),
            "Bananas are yellow.",
        ),
    ];
    let mut records = Vec::new();
    for (p, answer) in pairs {
        let s = shadow(&p, "s", "m2", 0.1, answer);
        records.push(p);
        records.push(s);
    }
    // Tool calls: same call with arguments in another order, and a different argument.
    let p = with_tool_call(
        primary("p", "m1", 0.1, ""),
        "get_weather",
        r#"{"city": "Paris", "unit": "c"}"#,
    );
    let s = with_tool_call(
        shadow(&p, "s", "m2", 0.1, ""),
        "get_weather",
        r#"{"unit":"c","city":"Paris"}"#,
    );
    records.extend([p, s]);
    let p = with_tool_call(
        primary("p", "m1", 0.1, ""),
        "get_weather",
        r#"{"city": "Paris"}"#,
    );
    let s = with_tool_call(
        shadow(&p, "s", "m2", 0.1, ""),
        "get_weather",
        r#"{"city": "Lyon"}"#,
    );
    records.extend([p, s]);
    let path = write_log(&dir, "calls.jsonl", records).await;

    let report = analyze_paths(&[path], &options(), false).unwrap();
    let a = &edge(&report, "p", "s").agreement;
    assert_eq!(a.comparable, 7);
    assert_eq!(a.exact, 1, "{a:?}");
    // Paris., the normalised one, the reordered tool-call arguments.
    assert_eq!(a.normalized, 3, "{a:?}");
    assert_eq!((a.json_pairs, a.json_equal), (2, 1), "{a:?}");
    assert_eq!(
        (a.tool_pairs, a.tool_names_equal, a.tool_calls_equal),
        (2, 2, 1),
        "{a:?}"
    );
    // Equal (4 counting JSON) pairs score 1; the other three less.
    assert_eq!(a.similarity_histogram[10], 4, "{a:?}");
    assert_eq!(a.similarity_histogram.iter().sum::<u64>(), 7);
    assert!((a.disagreement_rate - 4.0 / 7.0).abs() < 1e-9);
    let divergent = &edge(&report, "p", "s").divergent;
    assert_eq!(
        divergent.len(),
        4,
        "the JSON-equal pair is not divergent: {divergent:#?}"
    );
    // Least similar first: the unrelated answer.
    assert!(divergent[0].primary.contains("Seine") && divergent[0].shadow.contains("Bananas"));
    assert!(divergent
        .windows(2)
        .all(|w| w[0].similarity <= w[1].similarity));
    assert!(divergent[0].diff_text.contains("[-") && divergent[0].diff_text.contains("{+"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn noise_baseline_from_a_copy_of_the_primary() {
    let dir = temp_dir("noise");
    let mut records = Vec::new();
    for i in 0..10 {
        let p = primary("prod", "gpt-4o", 0.1, "Paris.");
        // The same model disagrees with itself 2 times in 10 ...
        let copy = shadow(
            &p,
            "prod-copy",
            "gpt-4o",
            0.1,
            if i < 2 { "Lyon." } else { "Paris." },
        );
        // ... the candidate 5 times in 10.
        let candidate = shadow(
            &p,
            "candidate",
            "gpt-4o-mini",
            0.1,
            if i < 5 { "Nice." } else { "Paris." },
        );
        records.extend([p, copy, candidate]);
    }
    let path = write_log(&dir, "calls.jsonl", records).await;
    let report = analyze_paths(&[path], &options(), false).unwrap();
    let copy = edge(&report, "prod", "prod-copy");
    assert!(copy.is_self_copy);
    assert!(copy.noise.is_none());
    let candidate = edge(&report, "prod", "candidate");
    assert!(!candidate.is_self_copy);
    let noise = candidate.noise.as_ref().expect("a noise baseline");
    assert_eq!(noise.baseline_group, "prod-copy");
    assert_eq!(noise.baseline_pairs, 10);
    assert!(
        (noise.baseline_disagreement_rate - 0.2).abs() < 1e-9,
        "{noise:?}"
    );
    assert!((noise.disagreement_rate - 0.5).abs() < 1e-9, "{noise:?}");
    assert!((noise.excess_disagreement - 0.3).abs() < 1e-9, "{noise:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn args(logs: Vec<PathBuf>) -> ReportArgs {
    ReportArgs {
        logs,
        s3_prefix: None,
        s3_bucket: None,
        s3_endpoint: None,
        format: OutputFormat::Json,
        html: None,
        window: 100_000,
        top: 3,
        judge: None,
        config: None,
        judge_samples: 200,
        seed: 7,
        no_progress: true,
    }
}

/// A log made by the real router: the built-in demo (mock `primary` mirrored to mock `shadow`).
async fn demo_log(dir: &Path, requests: usize) -> PathBuf {
    let options = mirror::demo::DemoOptions {
        requests,
        concurrency: 8,
        log_path: dir.join("demo.jsonl"),
    };
    mirror::demo::run(&options).await.unwrap();
    options.log_path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_has_the_documented_shape() {
    let dir = temp_dir("json");
    let log = demo_log(&dir, 30).await;
    let mut out = Vec::new();
    let report = run(&args(vec![log]), &mut out).await.unwrap();
    let value: Value = serde_json::from_slice(&out).unwrap();
    // Compare through text on both sides: serde_json's float parsing does not round-trip every f64.
    let expected: Value = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(value, expected);
    assert_eq!(value["window"], 100_000);
    for key in [
        "records",
        "primaries",
        "shadows",
        "malformed_lines",
        "unmatched_shadows",
    ] {
        assert!(value["totals"].get(key).is_some(), "totals.{key}");
    }
    assert_eq!(value["totals"]["primaries"], 30);
    let edge = &value["edges"][0];
    assert_eq!(edge["primary_group"], "primary");
    assert_eq!(edge["shadow_group"], "shadow");
    for key in [
        "primaries",
        "pairs",
        "missing",
        "primary_failed",
        "shadow_failed",
        "is_self_copy",
        "latency_diff_ms",
        "ttft_diff_ms",
        "cost_per_1k_diff",
        "agreement",
        "divergent",
    ] {
        assert!(edge.get(key).is_some(), "edges[0].{key}");
    }
    for side in ["primary", "shadow"] {
        for key in [
            "calls",
            "failures",
            "errors_by_class",
            "error_rate",
            "streams",
            "prompt_tokens",
            "completion_tokens",
            "cost",
            "cost_per_1k",
        ] {
            assert!(edge[side].get(key).is_some(), "{side}.{key}");
        }
        for key in ["count", "p50", "p90", "p99", "mean"] {
            assert!(
                edge[side]["latency_ms"][key].is_number(),
                "{side}.latency_ms.{key}"
            );
        }
    }
    assert_eq!(
        edge["agreement"]["similarity_histogram"]
            .as_array()
            .unwrap()
            .len(),
        11
    );
    // The mock echoes the question on both sides: every comparable pair agrees.
    assert_eq!(edge["agreement"]["exact"], edge["agreement"]["comparable"]);
    // Real prices from the built-in configuration's model_info.
    assert!(
        edge["primary"]["cost_per_1k"].as_f64().unwrap()
            > edge["shadow"]["cost_per_1k"].as_f64().unwrap()
    );
    assert!(
        edge.get("judge").is_none(),
        "the judge never runs unless asked"
    );
    // The table names the group pair.
    let mut table = Vec::new();
    run(
        &ReportArgs {
            format: OutputFormat::Table,
            ..args(vec![dir.join("demo.jsonl")])
        },
        &mut table,
    )
    .await
    .unwrap();
    let table = String::from_utf8(table).unwrap();
    assert!(table.contains("primary -> shadow:"), "{table}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn judge_config(dir: &Path, answer: &str, failure_rate: f64) -> PathBuf {
    let path = dir.join(format!("judge-{failure_rate}-{}.yaml", answer.len()));
    std::fs::write(
        &path,
        format!(
            "model_list:\n  - model_name: judge\n    litellm_params:\n      model: mock/judge-v1\n      mock_response: \"{answer}\"\n      mock_failure_rate: {failure_rate}\nrouter_settings:\n  num_retries: 0\n"
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_judge_runs_through_the_router() {
    let dir = temp_dir("judge");
    let log = demo_log(&dir, 40).await;
    let judged = |answer: &'static str, failure_rate: f64| {
        let dir = dir.clone();
        let log = log.clone();
        async move {
            let args = ReportArgs {
                judge: Some("judge".to_owned()),
                config: Some(judge_config(&dir, answer, failure_rate)),
                judge_samples: 25,
                ..args(vec![log])
            };
            let mut out = Vec::new();
            let report = run(&args, &mut out).await.unwrap();
            let edge = report.edges[0].clone();
            (
                edge.agreement.comparable,
                edge.judge.expect("the judge ran"),
            )
        }
    };

    // The judge always says "A": the randomised order makes that a win for either side.
    let (comparable, verdicts) = judged("A", 0.0).await;
    assert_eq!(verdicts.model, "judge");
    assert_eq!(verdicts.sampled, comparable.min(25));
    assert_eq!(verdicts.judged, verdicts.sampled);
    assert_eq!(verdicts.ties, 0);
    assert_eq!(
        verdicts.shadow_wins + verdicts.shadow_losses,
        verdicts.judged
    );
    assert!(
        verdicts.shadow_wins > 0 && verdicts.shadow_losses > 0,
        "order is randomised: {verdicts:?}"
    );

    let (_, verdicts) = judged("TIE", 0.0).await;
    assert_eq!(verdicts.ties, verdicts.sampled);
    let (_, verdicts) = judged("Both are fine", 0.0).await;
    assert_eq!(verdicts.invalid, verdicts.sampled);
    let (_, verdicts) = judged("A", 1.0).await;
    assert_eq!(verdicts.failed, verdicts.sampled);
    assert_eq!(verdicts.judged, 0);

    // A judge group that the configuration does not define is refused before reading.
    let args = ReportArgs {
        judge: Some("nobody".to_owned()),
        config: Some(judge_config(&dir, "A", 0.0)),
        ..args(vec![log.clone()])
    };
    let err = run(&args, &mut Vec::new()).await.unwrap_err();
    assert!(err.to_string().contains("nobody"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A report with something in every chart: latencies, costs, errors on both sides, disagreement.
async fn rich_report(dir: &Path) -> Report {
    let mut records = Vec::new();
    for i in 0..60_u32 {
        let latency = 0.05 + f64::from(i % 17) * 0.01;
        let mut p = primary(
            "gpt-4o",
            "gpt-4o",
            latency,
            &format!("The answer to question {i} is {}.", i * i),
        );
        p.response_cost = 0.002;
        let answer = if i % 3 == 0 {
            format!("I think it is {}.", i + 1)
        } else {
            format!("The answer to question {i} is {}.", i * i)
        };
        let mut s = shadow(&p, "gpt-4o-mini", "gpt-4o-mini", latency * 1.6, &answer);
        s.response_cost = 0.0003;
        if i % 10 == 0 {
            s = failed(s, "rate_limited");
        }
        if i % 25 == 0 {
            p = failed(p, "timeout");
        }
        records.extend([p, s]);
    }
    let path = write_log(dir, "rich.jsonl", records).await;
    analyze_paths(&[path], &options(), false).unwrap()
}

#[tokio::test]
async fn html_is_self_contained() {
    let dir = temp_dir("html");
    let report = rich_report(&dir).await;
    let html = render_html(&report);
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 4);
    for chart in ["latency", "cost", "agreement", "errors"] {
        assert!(html.contains(&format!("data-chart=\"{chart}\"")), "{chart}");
    }
    // No CDN, no fetch: nothing refers to another origin or file.
    for needle in [
        "http://",
        "https://",
        " src=",
        "href=\"http",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(needle), "external reference `{needle}`");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Headless Chromium, or why not.
fn chromium() -> Option<String> {
    if std::env::var("MIRROR_SKIP_BROWSER_TESTS").as_deref() == Ok("1") {
        return None;
    }
    match std::env::var("MIRROR_TEST_CHROMIUM") {
        Ok(path) if !path.is_empty() => Some(path),
        _ => panic!(
            "MIRROR_TEST_CHROMIUM is not set: the HTML report test needs headless Chromium. \
             Install it with `apt-get install -y chromium` (or run `.ci/setup.sh`, which does) and \
             set MIRROR_TEST_CHROMIUM=/usr/bin/chromium; set MIRROR_SKIP_BROWSER_TESTS=1 to skip on purpose."
        ),
    }
}

#[tokio::test]
async fn html_renders_in_headless_chromium_without_script_errors() {
    let Some(chromium) = chromium() else {
        eprintln!("MIRROR_SKIP_BROWSER_TESTS=1: not rendering the HTML report.");
        return;
    };
    let dir = temp_dir("chromium");
    let report = rich_report(&dir).await;
    let page = dir.join("report.html");
    std::fs::write(&page, render_html(&report)).unwrap();
    let screenshot = dir.join("report.png");
    let profile = dir.join("profile");
    let output = std::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|err| panic!("cannot run {chromium}: {err}"));
    let dom = String::from_utf8_lossy(&output.stdout);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "chromium failed: {log}");
    // The inline script ran to its end and counted the charts it found.
    assert!(
        dom.contains("data-report-ready=\"4\""),
        "the page script did not finish:\n{log}\n{dom}"
    );
    // The error handler sets this attribute on <html>; its own source names it unquoted.
    assert!(
        !dom.contains("data-script-error=\""),
        "script error in the page:\n{dom}"
    );
    assert!(!log.contains("Uncaught"), "console error:\n{log}");
    assert_eq!(dom.matches("<svg class=\"chart\"").count(), 4);
    for chart in ["latency", "cost", "agreement", "errors"] {
        assert!(dom.contains(&format!("data-chart=\"{chart}\"")), "{chart}");
    }
    // The latency chart has both series, the errors chart has bars for both sides.
    assert!(dom.contains("data-series=\"primary\"") && dom.contains("data-series=\"shadow\""));
    assert!(dom.contains("rate_limited") && dom.contains("timeout"));
    let png = std::fs::read(&screenshot).expect("chromium wrote a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    if let Ok(keep) = std::env::var("MIRROR_KEEP_SCREENSHOT") {
        std::fs::copy(&screenshot, keep).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// s3s-fs as `crates/mirror-logging/tests/start-s3.sh` exports it: endpoint, access key, secret,
/// bucket. `None` only when S3 tests are skipped on purpose (`MIRROR_SKIP_S3_TESTS=1`).
fn s3_server() -> Option<[String; 4]> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(endpoint) = var("MIRROR_TEST_S3_ENDPOINT") else {
        if var("MIRROR_SKIP_S3_TESTS").as_deref() == Some("1") {
            eprintln!("MIRROR_SKIP_S3_TESTS=1: skipping an S3 test");
            return None;
        }
        panic!(
            "MIRROR_TEST_S3_ENDPOINT is not set. Run `eval \"$(crates/mirror-logging/tests/start-s3.sh)\"` \
             from the repository root, or set MIRROR_SKIP_S3_TESTS=1 to skip the S3 tests."
        );
    };
    let required = |name: &str| {
        var(name).unwrap_or_else(|| panic!("{name} is not set; start-s3.sh exports it"))
    };
    Some([
        endpoint,
        required("MIRROR_TEST_S3_ACCESS_KEY"),
        required("MIRROR_TEST_S3_SECRET_KEY"),
        required("MIRROR_TEST_S3_BUCKET"),
    ])
}

/// Writes `records` with the real S3 sink (one object per call, or per batch) under `prefix`.
async fn write_s3(params: &mirror::logging::S3Config, records: &[CallRecord]) {
    use mirror::logging::{LogWriter, S3Sink, SinkOptions};
    let options = SinkOptions::default()
        .with_batch_size(16)
        .with_flush_interval(std::time::Duration::from_millis(20));
    let writer = LogWriter::builder()
        .sink_with(S3Sink::new(params.clone()).unwrap(), options)
        .start()
        .unwrap();
    for record in records {
        writer.submit(record.clone());
    }
    let report = writer.shutdown(std::time::Duration::from_secs(30)).await;
    assert_eq!(report.sinks[0].written, records.len() as u64, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_an_s3_prefix_written_by_the_s3_sink() {
    let Some([endpoint, access_key, secret_key, bucket]) = s3_server() else {
        return;
    };
    let dir = temp_dir("s3");
    let root = format!("mirror-tests/report-{}", fastrand_suffix());
    // 30 primaries, one second apart; 25 with a shadow 10 ms later (3 of them failed).
    let mut records = Vec::new();
    for i in 0..30_u32 {
        let text = format!("answer {i}");
        let mut p = primary("gpt-4o", "gpt-4o", 0.2 + f64::from(i) / 100.0, &text);
        p.id = format!("chatcmpl-p{i}");
        p.start_time += f64::from(i);
        records.push(p.clone());
        if i >= 25 {
            continue;
        }
        let answer = if i % 2 == 0 {
            text
        } else {
            format!("other {i}")
        };
        let mut s = shadow(&p, "mini", "gpt-4o-mini", 0.1, &answer);
        s.id = format!("chatcmpl-s{i}");
        s.start_time = p.start_time + 0.01;
        if i < 3 {
            s = failed(s, "rate_limited");
        }
        records.push(s);
    }
    let params = |prefix: &str, batch: bool| {
        let mut config = mirror::logging::S3Config::new(&bucket);
        config.s3_endpoint_url = Some(endpoint.clone());
        config.s3_aws_access_key_id = Some(access_key.clone());
        config.s3_aws_secret_access_key = Some(mirror::core::SecretString::new(secret_key.clone()));
        config.s3_path = Some(prefix.to_owned());
        config.s3_batch_file_upload = Some(batch);
        config
    };
    write_s3(&params(&format!("{root}/calls"), false), &records).await;
    write_s3(&params(&format!("{root}/batches"), true), &records).await;
    let file = write_log(&dir, "calls.jsonl", records.clone()).await;
    let from_file = analyze_paths(&[file], &options(), false).unwrap();

    let check = |report: &Report, how: &str| {
        let t = &report.totals;
        assert_eq!(
            (t.records, t.primaries, t.shadows),
            (55, 30, 25),
            "{how}: {t:?}"
        );
        assert_eq!((t.malformed_lines, t.duplicates), (0, 0), "{how}: {t:?}");
        assert!(t.unmatched_shadows.is_empty(), "{how}: {t:?}");
        let e = edge(report, "gpt-4o", "mini");
        assert_eq!((e.primaries, e.pairs, e.missing), (30, 25, 5), "{how}");
        assert_eq!((e.shadow_failed, e.primary_failed), (3, 0), "{how}");
        assert_eq!(e.agreement.comparable, 22, "{how}");
        assert_eq!(e.agreement.exact, 11, "{how}");
        // The same statistics as from the file; sums may differ in the last bit when batches
        // come back in another order, so means and costs are compared with a tolerance.
        let f = edge(&from_file, "gpt-4o", "mini");
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
        let same_percentiles = |a: &mirror::report::Percentiles,
                                b: &mirror::report::Percentiles| {
            (a.count, a.p50, a.p90, a.p99) == (b.count, b.p50, b.p90, b.p99)
                && close(a.mean, b.mean)
        };
        for (side, file_side) in [(&e.primary, &f.primary), (&e.shadow, &f.shadow)] {
            assert_eq!(
                (
                    side.calls,
                    side.failures,
                    side.prompt_tokens,
                    side.completion_tokens
                ),
                (
                    file_side.calls,
                    file_side.failures,
                    file_side.prompt_tokens,
                    file_side.completion_tokens
                ),
                "{how}"
            );
            assert_eq!(side.errors_by_class, file_side.errors_by_class, "{how}");
            assert!(
                same_percentiles(&side.latency_ms, &file_side.latency_ms),
                "{how}"
            );
            assert!(close(side.cost, file_side.cost), "{how}");
        }
        assert!(
            same_percentiles(&e.latency_diff_ms, &f.latency_diff_ms),
            "{how}"
        );
        assert_eq!(e.agreement.normalized, f.agreement.normalized, "{how}");
        assert!(
            close(e.agreement.mean_similarity, f.agreement.mean_similarity),
            "{how}"
        );
    };
    check(&from_file, "file");

    // `s3://bucket/prefix` with the parameters from `--config` (LiteLLM's s3_callback_params).
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "litellm_settings:\n  callbacks: [\"s3_v2\"]\n  s3_callback_params:\n    \
             s3_bucket_name: {bucket}\n    s3_endpoint_url: {endpoint}\n    \
             s3_aws_access_key_id: {access_key}\n    s3_aws_secret_access_key: {secret_key}\n    \
             s3_path: {root}/calls\n"
        ),
    )
    .unwrap();
    let report = run(
        &ReportArgs {
            config: Some(config.clone()),
            ..args(vec![PathBuf::from(format!("s3://{bucket}/{root}/calls/"))])
        },
        &mut Vec::new(),
    )
    .await
    .unwrap();
    check(&report, "one object per call, s3:// URL");

    // `--s3-prefix` in the configured bucket, batched JSON-lines objects, the table output.
    let mut table = Vec::new();
    let report = run(
        &ReportArgs {
            config: Some(config.clone()),
            s3_prefix: Some(format!("{root}/batches/")),
            format: OutputFormat::Table,
            ..args(Vec::new())
        },
        &mut table,
    )
    .await
    .unwrap();
    check(&report, "batch objects, --s3-prefix");
    assert!(
        String::from_utf8(table).unwrap().contains("gpt-4o -> mini"),
        "the table names the group pair"
    );

    // The library call, with a reader and small listing pages (continuation tokens).
    let reader = mirror::logging::S3Reader::new(params("", false))
        .unwrap()
        .with_page_size(7);
    let report = mirror::report::analyze_s3(&reader, &format!("{root}/calls/"), &options())
        .await
        .unwrap();
    check(&report, "analyze_s3, pages of 7");

    // A wrong secret: the read fails and names the prefix, not the secret.
    let mut wrong = params("", false);
    wrong.s3_aws_secret_access_key = Some(mirror::core::SecretString::new("not-the-secret"));
    let reader = mirror::logging::S3Reader::new(wrong).unwrap();
    let err = mirror::report::analyze_s3(&reader, &root, &options())
        .await
        .unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains(&format!("s3://{bucket}/{root}")), "{chain}");
    assert!(chain.contains("403"), "{chain}");
    assert!(!chain.contains("not-the-secret"), "{chain}");

    // No bucket anywhere: refused before anything is read.
    let err = run(
        &ReportArgs {
            s3_prefix: Some("x/".into()),
            ..args(Vec::new())
        },
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no bucket"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
