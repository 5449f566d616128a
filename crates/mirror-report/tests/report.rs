//! The report over real logs: written by the real JSONL sink, read back, paired and compared; the
//! HTML page in a real headless Chromium. Logs from the real router (the demo), the judge and S3
//! prefixes are tested end to end in `tests/integration/report.rs`, which goes through `mirror report`.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mirror_core::{CallRecord, CallType};
use mirror_logging::{JsonlConfig, JsonlSink, LogSink};
use mirror_report::{analyze_paths, render_html, Analyzer, Report, ReportOptions};
use mirror_test_support::records::{
    embeddings, failed, primary, responses, shadow, streamed, with_tool_call,
};

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

#[tokio::test]
async fn html_renders_in_headless_chromium_without_script_errors() {
    let Some(chromium) = mirror_test_support::chromium("the HTML report test") else {
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

#[test]
fn cancelled_calls_are_counted_and_never_compared() {
    let kept = primary("gpt-4o", "gpt-4o", 0.1, "kept");
    let kept_shadow = shadow(&kept, "mini", "mini", 0.2, "kept");
    // The client of this primary hung up after 30 s: its latency is the client's patience.
    let mut gone = primary("gpt-4o", "gpt-4o", 30.0, "");
    gone.status = mirror_core::CallStatus::Cancelled;
    let gone_shadow = shadow(&gone, "mini", "mini", 0.2, "an answer");
    let mut analyzer = Analyzer::new(options());
    for record in [&kept, &kept_shadow, &gone, &gone_shadow] {
        analyzer.push(record);
    }
    let report = analyzer.finish();
    assert_eq!(report.totals.cancelled, 1);
    let edge = edge(&report, "gpt-4o", "mini");
    assert_eq!((edge.pairs, edge.primaries), (1, 1));
    assert_eq!(report.totals.unmatched_shadows.values().sum::<u64>(), 1);
}

#[test]
fn cache_hits_are_counted_per_side_and_shown() {
    let mut analyzer = Analyzer::new(options());
    for i in 0..4 {
        let mut p = primary("gpt-4o", "gpt-4o", 0.1, &format!("answer {i}"));
        // Every other primary came from the response cache; the shadow always called its model.
        p.metadata.cache_hit = i % 2 == 0;
        let s = shadow(&p, "mini", "mini", 0.2, &format!("answer {i}"));
        analyzer.push(&p);
        analyzer.push(&s);
    }
    let report = analyzer.finish();
    let edge = edge(&report, "gpt-4o", "mini");
    assert_eq!((edge.primary.cache_hits, edge.shadow.cache_hits), (2, 0));
    assert!((edge.primary.cache_hit_rate - 0.5).abs() < 1e-9);
    let table = mirror_report::Table(&report.edges).to_string();
    assert!(
        table.contains("cache hits: primary 2 (50.0%), shadow 0 (0.0%)"),
        "{table}"
    );
}

#[tokio::test]
async fn the_live_window_reports_what_the_log_reports() {
    let dir = temp_dir("live");
    let mut records = Vec::new();
    for i in 0..40 {
        let text = if i % 3 == 0 { "no" } else { "yes" };
        let p = streamed(
            primary("gpt-4o", "gpt-4o", 0.1 + f64::from(i) / 100.0, "yes"),
            0.05,
        );
        let mut s = streamed(shadow(&p, "mini", "mini", 0.3, text), 0.07);
        if i % 10 == 0 {
            s = failed(s, "timeout");
        }
        records.push(p);
        records.push(s);
    }
    let path = write_log(&dir, "live.jsonl", records).await;
    let logged = analyze_paths(std::slice::from_ref(&path), &options(), false).unwrap();
    // The same records as the log holds (read back: a log's floats are what the report reads).
    let mut window = mirror_report::RecentRecords::new(1_000, 16 << 20);
    for line in std::fs::read_to_string(&path).unwrap().lines() {
        window.push(serde_json::from_str(line).unwrap());
    }
    let live = window.report(&options());
    assert_eq!(live.edges, logged.edges);
    assert_eq!(live.totals, logged.totals);
    assert_eq!(edge(&live, "gpt-4o", "mini").pairs, 40);
    assert_eq!(window.stats().records, 80);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_live_window_is_bounded_in_records_and_bytes() {
    let p = primary("gpt-4o", "gpt-4o", 0.1, &"x".repeat(10_000));
    let size = mirror_report::estimated_bytes(&p);
    assert!(size > 10_000, "{size}");
    let mut window = mirror_report::RecentRecords::new(3, usize::MAX);
    for _ in 0..5 {
        window.push(primary("gpt-4o", "gpt-4o", 0.1, "a"));
    }
    assert_eq!((window.stats().records, window.stats().evicted), (3, 2));
    // Room for two large records: the third pushes the oldest out.
    let mut window = mirror_report::RecentRecords::new(100, 2 * size + size / 2);
    for _ in 0..3 {
        window.push(p.clone());
    }
    let stats = window.stats();
    assert_eq!((stats.records, stats.evicted, stats.seen), (2, 1, 3));
    assert!(stats.bytes <= stats.max_bytes);
    // A record larger than the whole budget is never kept.
    let mut window = mirror_report::RecentRecords::new(100, size / 2);
    window.push(p);
    assert_eq!((window.stats().records, window.stats().evicted), (0, 1));
    // The report reads only what the window holds: the oldest pair's primary left.
    let first = primary("gpt-4o", "gpt-4o", 0.1, "a");
    let mut window = mirror_report::RecentRecords::new(3, usize::MAX);
    window.push(first.clone());
    window.push(shadow(&first, "mini", "mini", 0.2, "a"));
    let second = primary("gpt-4o", "gpt-4o", 0.1, "b");
    window.push(second.clone());
    window.push(shadow(&second, "mini", "mini", 0.2, "b"));
    let report = window.report(&options());
    assert_eq!(edge(&report, "gpt-4o", "mini").pairs, 1);
}
fn edge_of<'a>(
    report: &'a Report,
    primary: &str,
    shadow: &str,
    call_type: CallType,
) -> &'a mirror_report::PairSummary {
    report
        .edges
        .iter()
        .find(|e| {
            e.primary_group == primary && e.shadow_group == shadow && e.call_type == call_type
        })
        .unwrap_or_else(|| {
            panic!(
                "no {call_type:?} edge {primary} -> {shadow} in {:#?}",
                report.edges
            )
        })
}

#[tokio::test]
async fn chat_responses_and_embeddings_of_one_group_are_three_populations() {
    let dir = temp_dir("call-types");
    let mut records = Vec::new();
    // Chat: 2 pairs that agree, 1 primary without a shadow.
    for i in 0..3 {
        let p = primary("prod", "gpt-4o", 0.1, &format!("chat {i}"));
        if i < 2 {
            records.push(shadow(&p, "candidate", "gpt-5", 0.2, &format!("chat {i}")));
        }
        records.push(p);
    }
    // Responses: one pair agrees on text and function call, one differs in the call's arguments,
    // one shadow fails.
    let p = responses(
        primary("prod", "gpt-4o", 0.1, ""),
        "Paris.",
        Some(("lookup", r#"{"city":"Paris"}"#)),
    );
    let s = responses(
        shadow(&p, "candidate", "gpt-5", 0.3, ""),
        "Paris.",
        Some(("lookup", r#"{ "city": "Paris" }"#)),
    );
    records.extend([p, s]);
    let p = responses(
        primary("prod", "gpt-4o", 0.1, ""),
        "Rome.",
        Some(("lookup", r#"{"city":"Rome"}"#)),
    );
    let s = responses(
        shadow(&p, "candidate", "gpt-5", 0.3, ""),
        "Rome.",
        Some(("lookup", r#"{"city":"Milan"}"#)),
    );
    records.extend([p, s]);
    let p = responses(primary("prod", "gpt-4o", 0.1, ""), "Oslo.", None);
    let s = failed(
        responses(shadow(&p, "candidate", "gpt-5", 0.3, ""), "", None),
        "timeout",
    );
    records.extend([p, s]);
    // Embeddings: identical vectors, orthogonal ones, another dimension, and vectors not logged.
    type Case<'a> = (&'a [Vec<f32>], &'a [Vec<f32>], bool);
    let cases: [Case<'_>; 4] = [
        (
            &[vec![1.0, 0.0], vec![0.0, 2.0]],
            &[vec![2.0, 0.0], vec![0.0, 1.0]],
            true,
        ),
        (&[vec![1.0, 0.0]], &[vec![0.0, 1.0]], true),
        (&[vec![1.0, 0.0]], &[vec![1.0, 0.0, 0.0]], true),
        (&[vec![1.0, 0.0]], &[vec![1.0, 0.0]], false),
    ];
    for (primary_vectors, shadow_vectors, logged) in cases {
        let p = embeddings(
            primary("prod", "te-3-small", 0.05, ""),
            primary_vectors,
            logged,
        );
        let s = embeddings(
            shadow(&p, "candidate", "te-3-large", 0.08, ""),
            shadow_vectors,
            logged,
        );
        records.extend([s, p]);
    }
    let path = write_log(&dir, "types.jsonl", records).await;
    let report = analyze_paths(&[path], &options(), false).unwrap();
    assert_eq!(report.edges.len(), 3, "{:#?}", report.edges);
    assert_eq!(report.totals.other_calls, 0);

    let chat = edge_of(&report, "prod", "candidate", CallType::Completion);
    assert_eq!((chat.primaries, chat.pairs, chat.missing), (3, 2, 1));
    assert_eq!(chat.agreement.exact, 2);
    assert!(chat.embeddings.is_none());

    let resp = edge_of(&report, "prod", "candidate", CallType::Responses);
    assert_eq!((resp.primaries, resp.pairs, resp.missing), (3, 3, 0));
    assert_eq!(resp.shadow_failed, 1);
    let a = &resp.agreement;
    assert_eq!((a.comparable, a.tool_pairs, a.tool_names_equal), (2, 2, 2));
    // Arguments compared as JSON: formatting differs in the first pair, the city in the second.
    assert_eq!(a.tool_calls_equal, 1);
    assert_eq!(a.normalized, 1);
    assert_eq!(resp.divergent.len(), 1);
    assert!(
        resp.divergent[0].shadow.contains("Milan"),
        "{:?}",
        resp.divergent[0]
    );

    let emb = edge_of(&report, "prod", "candidate", CallType::Embedding);
    assert_eq!((emb.primaries, emb.pairs, emb.missing), (4, 4, 0));
    // Vectors have no text: nothing counts as agreement.
    assert_eq!(emb.agreement.comparable, 0);
    let cosine = emb.embeddings.as_ref().unwrap();
    assert_eq!(
        (
            cosine.compared,
            cosine.dimension_mismatch,
            cosine.without_vectors
        ),
        (2, 1, 1)
    );
    assert!((cosine.mean_cosine - 0.5).abs() < 1e-9, "{cosine:?}");
    assert!(cosine.min_cosine.abs() < 1e-9, "{cosine:?}");

    // Every output names the call type of each group pair.
    let table = mirror_report::Table(&report.edges).to_string();
    for line in [
        "prod -> candidate (chat): 2 pairs",
        "prod -> candidate (responses): 3 pairs",
        "prod -> candidate (embeddings): 4 pairs",
        "vectors: cosine over 2 pairs: mean 0.5000",
    ] {
        assert!(table.contains(line), "`{line}` not in\n{table}");
    }
    let json = serde_json::to_value(&report).unwrap();
    let types: Vec<&str> = json["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["call_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["acompletion", "aembedding", "aresponses"]);
    assert_eq!(json["edges"][1]["embeddings"]["compared"], 2);
    let html = render_html(&report);
    for badge in ["chat", "responses", "embeddings"] {
        assert!(
            html.contains(&format!("<span class=\"badge call-type\">{badge}</span>")),
            "{badge}"
        );
    }
    assert!(html.contains("<table class=\"embeddings\">"));
    std::fs::remove_dir_all(&dir).unwrap();
}
