//! `mirror report --gate` over logs written by the real JSONL sink: the verdict per criterion, and
//! the exit codes of `run` and of the real `mirror` binary (0 pass, 3 gate failed, 2 bad gate, 1
//! unreadable log).

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use expect_test::{expect, Expect};
use mirror::logging::{JsonlConfig, JsonlSink, LogSink};
use mirror::CallRecord;
use mirror_cli::report::{exit_code, run, OutputFormat, ReportArgs};
use mirror_test_support::records::{failed, primary, shadow};

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir =
        std::env::temp_dir().join(format!("mirror-gate-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `records` with the real JSONL sink.
async fn write_log(dir: &Path, records: Vec<CallRecord>) -> PathBuf {
    let path = dir.join("calls.jsonl");
    let sink = JsonlSink::new(JsonlConfig::new(&path));
    let batch: Vec<Arc<CallRecord>> = records.into_iter().map(Arc::new).collect();
    sink.write(&batch).await.unwrap();
    sink.flush().await.unwrap();
    path
}

/// An experiment: `pairs` primary calls of `gpt-4o` mirrored to `mini`; primary latency 100 to
/// 139 ms, the shadow's `slowdown` times that; the first `failures` shadows fail, the next
/// `disagreements` answer differently; `unpaired` more primaries have no shadow.
#[derive(Clone, Copy)]
struct Experiment {
    pairs: u32,
    slowdown: f64,
    failures: u32,
    disagreements: u32,
    unpaired: u32,
}

const GOOD: Experiment = Experiment {
    pairs: 40,
    slowdown: 1.05,
    failures: 0,
    disagreements: 1,
    unpaired: 2,
};

fn records(e: Experiment) -> Vec<CallRecord> {
    let mut out = Vec::new();
    for i in 0..e.pairs {
        let latency = 0.1 + f64::from(i) / 1000.0;
        let answer = format!("Paris {i}");
        let p = primary("gpt-4o", "gpt-4o", latency, &answer);
        let shadow_answer = if i >= e.failures && i < e.failures + e.disagreements {
            "Lyon".to_owned()
        } else {
            answer
        };
        let mut s = shadow(
            &p,
            "mini",
            "gpt-4o-mini",
            latency * e.slowdown,
            &shadow_answer,
        );
        if i < e.failures {
            s = failed(s, "rate_limited");
        }
        out.push(p);
        out.push(s);
    }
    for _ in 0..e.unpaired {
        out.push(primary("gpt-4o", "gpt-4o", 0.1, "Paris"));
    }
    out
}

fn args(logs: Vec<PathBuf>, gate: &str) -> ReportArgs {
    ReportArgs {
        logs,
        s3_prefix: None,
        s3_bucket: None,
        s3_endpoint: None,
        format: OutputFormat::Table,
        html: None,
        window: 100_000,
        top: 3,
        judge: None,
        config: None,
        judge_samples: 200,
        seed: 7,
        resample_pairs: 1000,
        resamples: 200,
        gate: Some(gate.to_owned()),
        gate_file: None,
        no_progress: true,
    }
}

/// Runs `mirror report --gate GATE` on the experiment's log and checks the gate's lines and the
/// exit code.
#[track_caller]
fn check(experiment: Experiment, gate: &str, expect: Expect) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = temp_dir("check");
    let text = runtime.block_on(async {
        let log = write_log(&dir, records(experiment)).await;
        let mut out = Vec::new();
        let result = run(&args(vec![log], gate), &mut out).await;
        let code = exit_code(&result);
        let out = String::from_utf8(out).unwrap();
        let gate_lines = out
            .find("Gate:")
            .map_or("(no gate output)", |at| &out[at..]);
        format!("exit {code}\n{gate_lines}")
    });
    std::fs::remove_dir_all(&dir).unwrap();
    expect.assert_eq(&text);
}

const ALL: &str = "p99_latency_pct=10,error_rate_points=0.5,agreement_pct=95";

#[test]
fn a_good_shadow_passes() {
    check(
        GOOD,
        ALL,
        expect![[r#"
            exit 0
            Gate: PASS (criteria need 30 pairs; insufficient data: fail)
              gpt-4o -> mini (chat): 40 pairs; unpaired 2 (sampled out, dropped or unfinished), unmatched shadows 0, cancelled 0, unjudged 40
                pass              p99_latency_pct        5.00 [5.00, 5.00] <= 10 (n=40; unpaired 2, unjudged 40)
                pass              error_rate_points      0.00 [0.00, 0.00] <= 0.5 (n=40; unpaired 2, unjudged 40)
                pass              agreement_pct          97.50 [92.50, 100.00] >= 95 (n=40; unpaired 2, unjudged 40)
        "#]],
    );
}

#[test]
fn a_slow_shadow_fails_on_latency_alone() {
    check(
        Experiment {
            slowdown: 1.5,
            ..GOOD
        },
        ALL,
        expect![[r#"
            exit 3
            Gate: FAIL (criteria need 30 pairs; insufficient data: fail)
              gpt-4o -> mini (chat): 40 pairs; unpaired 2 (sampled out, dropped or unfinished), unmatched shadows 0, cancelled 0, unjudged 40
                FAIL              p99_latency_pct        50.00 [50.00, 50.00] <= 10 (n=40; unpaired 2, unjudged 40)
                pass              error_rate_points      0.00 [0.00, 0.00] <= 0.5 (n=40; unpaired 2, unjudged 40)
                pass              agreement_pct          97.50 [92.50, 100.00] >= 95 (n=40; unpaired 2, unjudged 40)
        "#]],
    );
}

#[test]
fn a_failing_shadow_fails_on_errors() {
    check(
        Experiment {
            failures: 3,
            ..GOOD
        },
        ALL,
        expect![[r#"
            exit 3
            Gate: FAIL (criteria need 30 pairs; insufficient data: fail)
              gpt-4o -> mini (chat): 40 pairs; unpaired 2 (sampled out, dropped or unfinished), unmatched shadows 0, cancelled 0, unjudged 40
                pass              p99_latency_pct        5.00 [5.00, 5.00] <= 10 (n=40; unpaired 2, unjudged 40)
                FAIL              error_rate_points      7.50 [0.00, 17.50] <= 0.5 (n=40; unpaired 2, unjudged 40)
                pass              agreement_pct          97.30 [89.47, 100.00] >= 95 (n=37; unpaired 2, unjudged 40)
        "#]],
    );
}

#[test]
fn a_disagreeing_shadow_fails_on_agreement() {
    check(
        Experiment {
            disagreements: 10,
            ..GOOD
        },
        ALL,
        expect![[r#"
            exit 3
            Gate: FAIL (criteria need 30 pairs; insufficient data: fail)
              gpt-4o -> mini (chat): 40 pairs; unpaired 2 (sampled out, dropped or unfinished), unmatched shadows 0, cancelled 0, unjudged 40
                pass              p99_latency_pct        5.00 [5.00, 5.00] <= 10 (n=40; unpaired 2, unjudged 40)
                pass              error_rate_points      0.00 [0.00, 0.00] <= 0.5 (n=40; unpaired 2, unjudged 40)
                FAIL              agreement_pct          75.00 [60.00, 85.00] >= 95 (n=40; unpaired 2, unjudged 40)
        "#]],
    );
}

#[test]
fn too_few_pairs_is_insufficient_data_and_fails_unless_told_otherwise() {
    let few = Experiment { pairs: 10, ..GOOD };
    check(
        few,
        ALL,
        expect![[r#"
            exit 3
            Gate: FAIL (criteria need 30 pairs; insufficient data: fail)
              gpt-4o -> mini (chat): 10 pairs; unpaired 2 (sampled out, dropped or unfinished), unmatched shadows 0, cancelled 0, unjudged 10
                insufficient data p99_latency_pct        5.00 [5.00, 5.00] <= 10 (n=10; unpaired 2, unjudged 10)
                insufficient data error_rate_points      0.00 [0.00, 0.00] <= 0.5 (n=10; unpaired 2, unjudged 10)
                insufficient data agreement_pct          90.00 [70.00, 100.00] >= 95 (n=10; unpaired 2, unjudged 10)
        "#]],
    );
    check(
        few,
        &format!("{ALL},insufficient=pass"),
        expect![[r#"
            exit 0
            Gate: PASS (criteria need 30 pairs; insufficient data: pass)
              gpt-4o -> mini (chat): 10 pairs; unpaired 2 (sampled out, dropped or unfinished), unmatched shadows 0, cancelled 0, unjudged 10
                insufficient data p99_latency_pct        5.00 [5.00, 5.00] <= 10 (n=10; unpaired 2, unjudged 10)
                insufficient data error_rate_points      0.00 [0.00, 0.00] <= 0.5 (n=10; unpaired 2, unjudged 10)
                insufficient data agreement_pct          90.00 [70.00, 100.00] >= 95 (n=10; unpaired 2, unjudged 10)
        "#]],
    );
    check(
        few,
        &format!("{ALL},min_pairs=10"),
        expect![[r#"
            exit 3
            Gate: FAIL (criteria need 10 pairs; insufficient data: fail)
              gpt-4o -> mini (chat): 10 pairs; unpaired 2 (sampled out, dropped or unfinished), unmatched shadows 0, cancelled 0, unjudged 10
                pass              p99_latency_pct        5.00 [5.00, 5.00] <= 10 (n=10; unpaired 2, unjudged 10)
                pass              error_rate_points      0.00 [0.00, 0.00] <= 0.5 (n=10; unpaired 2, unjudged 10)
                FAIL              agreement_pct          90.00 [70.00, 100.00] >= 95 (n=10; unpaired 2, unjudged 10)
        "#]],
    );
}

#[test]
fn a_judge_criterion_without_a_judge_is_insufficient_data() {
    check(
        GOOD,
        "judge_win_or_tie_pct=50",
        expect![[r#"
            exit 3
            Gate: FAIL (criteria need 30 pairs; insufficient data: fail)
              gpt-4o -> mini (chat): 40 pairs; unpaired 2 (sampled out, dropped or unfinished), unmatched shadows 0, cancelled 0, unjudged 40
                insufficient data judge_win_or_tie_pct   - >= 50 (n=0; unpaired 2, unjudged 40)
        "#]],
    );
}

#[test]
fn the_binary_exits_with_distinct_codes() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = temp_dir("binary");
    let good = runtime.block_on(write_log(&dir, records(GOOD)));
    let mirror = |gate: &str, log: &Path| {
        let output = Command::new(env!("CARGO_BIN_EXE_mirror"))
            .args([
                "report",
                "--no-progress",
                "--resamples",
                "100",
                "--gate",
                gate,
            ])
            .arg(log)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    assert_eq!(mirror(ALL, &good).0, Some(0));
    assert_eq!(mirror("p99_latency_pct=1", &good).0, Some(3));
    let (code, stderr) = mirror("p99_latncy_pct=1", &good);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("did you mean `p99_latency_pct`"),
        "{stderr}"
    );
    let (code, stderr) = mirror(ALL, &dir.join("missing.jsonl"));
    assert_eq!(code, Some(1), "{stderr}");
    // A usage error clap finds exits 2 too.
    let clap = Command::new(env!("CARGO_BIN_EXE_mirror"))
        .args(["report", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(clap.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}
