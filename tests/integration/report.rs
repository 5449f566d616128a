//! `mirror report` end to end: logs written by the real router (the demo) and by the real S3 sink
//! to s3s-fs, read back through the command's arguments; the judge through the router. The report's
//! own tests (pairing, statistics, agreement, HTML) are in `crates/mirror-report/tests`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mirror::logging::{JsonlConfig, JsonlSink, LogSink};
use mirror::CallRecord;
use mirror_cli::report::{run, OutputFormat, ReportArgs};
use mirror_report::{analyze_paths, Report, ReportOptions};
use mirror_test_support::records::{failed, primary, shadow};
use serde_json::Value;

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

fn edge<'a>(report: &'a Report, primary: &str, shadow: &str) -> &'a mirror_report::PairSummary {
    report
        .edges
        .iter()
        .find(|e| e.primary_group == primary && e.shadow_group == shadow)
        .unwrap_or_else(|| panic!("no edge {primary} -> {shadow} in {:#?}", report.edges))
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
        resample_pairs: mirror_report::DEFAULT_RESERVOIR,
        resamples: 200,
        gate: None,
        gate_file: None,
        no_progress: true,
    }
}

/// A log made by the real router: the built-in demo (mock `primary` mirrored to mock `shadow`).
async fn demo_log(dir: &Path, requests: usize) -> PathBuf {
    let options = mirror_cli::demo::DemoOptions {
        requests,
        concurrency: 8,
        log_path: dir.join("demo.jsonl"),
        ui: None,
    };
    mirror_cli::demo::run(&options).await.unwrap();
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
        let same_percentiles = |a: &mirror_report::Percentiles, b: &mirror_report::Percentiles| {
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
    let report = mirror_report::analyze_s3(&reader, &format!("{root}/calls/"), &options())
        .await
        .unwrap();
    check(&report, "analyze_s3, pages of 7");

    // A wrong secret: the read fails and names the prefix, not the secret.
    let mut wrong = params("", false);
    wrong.s3_aws_secret_access_key = Some(mirror::core::SecretString::new("not-the-secret"));
    let reader = mirror::logging::S3Reader::new(wrong).unwrap();
    let err = mirror_report::analyze_s3(&reader, &root, &options())
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
