//! Records per second of `mirror report`'s analysis on a generated log.
//!
//! `cargo bench -p mirror-report --bench report` writes a 1,000,000-record JSONL log (500,000 primary calls,
//! each with one silent call a few records later) to the temporary directory once, then times
//! `mirror_report::analyze_paths` over it. `MIRROR_BENCH_RECORDS` changes the size.

// criterion's macros define undocumented functions.
#![allow(missing_docs)]

use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mirror_core::{CallId, CallRecord};
use mirror_report::{analyze_paths, ReportOptions};

const ANSWERS: &[&str] = &[
    "The capital of France is Paris.",
    "Paris is the capital of France.",
    "The answer is 42, as computed above.",
    "{\"city\": \"Paris\", \"country\": \"France\"}",
    "I cannot help with that request.",
    "Sure! Here is a short summary of the text you sent.",
];

fn template() -> CallRecord {
    let value = serde_json::json!({
        "id": "chatcmpl-bench", "trace_id": "trace", "litellm_call_id": CallId::new(),
        "call_type": "acompletion", "stream": false, "status": "success",
        "custom_llm_provider": "openai", "model": "gpt-4o", "model_id": "dep-1",
        "model_group": "primary", "api_base": "https://api.example.invalid/v1",
        "startTime": 1_700_000_000.0, "endTime": 1_700_000_000.5, "completionStartTime": 1_700_000_000.5,
        "response_time": 0.5, "prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52,
        "response_cost": 0.00022,
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is the capital of France?"}],
        "response": {"id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000_u64, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}},
        "metadata": {"is_silent_experiment": false, "spend": "caller", "attempts": 1, "requester_metadata": {}},
        "request_tags": []
    });
    serde_json::from_value(value).expect("the template is a record")
}

fn write_line(out: &mut impl std::io::Write, record: &CallRecord, written: &mut usize) {
    serde_json::to_writer(&mut *out, record).expect("encode");
    out.write_all(b"\n").expect("write");
    *written += 1;
}

fn generate(records: usize) -> PathBuf {
    let path = std::env::temp_dir().join(format!("mirror-report-bench-{records}.jsonl"));
    if path.exists() {
        return path;
    }
    let partial = path.with_extension("partial");
    let mut out = BufWriter::new(std::fs::File::create(&partial).expect("create the bench log"));
    let base = template();
    let mut rng = fastrand::Rng::with_seed(7);
    // Shadows trail their primaries by up to 8 pairs, as a mirror queue makes them.
    let mut waiting: std::collections::VecDeque<CallRecord> = std::collections::VecDeque::new();
    let mut written = 0;
    let mut i = 0_u64;
    while written < records {
        if waiting.len() >= 8 || written + waiting.len() >= records {
            if let Some(shadow) = waiting.pop_front() {
                write_line(&mut out, &shadow, &mut written);
                continue;
            }
        }
        let mut primary = base.clone();
        primary.call_id = CallId::new();
        primary.trace_id = mirror_core::TraceId::new();
        primary.response_time = 0.2 + rng.f64();
        let answer = ANSWERS[rng.usize(..ANSWERS.len())];
        if let Some(mirror_core::RecordResponse::Chat(response)) = primary.response.as_mut() {
            response.choices[0].message = mirror_core::ChatMessage::new("assistant", answer);
        }
        let mut shadow = primary.clone();
        shadow.call_id = CallId::new();
        shadow.model = "gpt-4o-mini".to_owned();
        shadow.model_group = "shadow".to_owned();
        shadow.metadata.is_silent_experiment = true;
        shadow.metadata.mirror_of = Some(primary.call_id);
        shadow.response_time = 0.1 + rng.f64();
        shadow.response_cost = 0.00001;
        let answer = ANSWERS[rng.usize(..ANSWERS.len())];
        if let Some(mirror_core::RecordResponse::Chat(response)) = shadow.response.as_mut() {
            response.choices[0].message = mirror_core::ChatMessage::new("assistant", answer);
        }
        write_line(&mut out, &primary, &mut written);
        waiting.push_back(shadow);
        i += 1;
    }
    out.flush().expect("flush");
    drop(out);
    std::fs::rename(&partial, &path).expect("finish the bench log");
    eprintln!(
        "generated {records} records ({i} primaries) at {}",
        path.display()
    );
    path
}

fn bench(c: &mut Criterion) {
    let records: usize = std::env::var("MIRROR_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let path = generate(records);
    let mut group = c.benchmark_group("report");
    group.throughput(Throughput::Elements(records as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(30));
    group.bench_function(format!("analyze_{records}_records"), |b| {
        b.iter(|| {
            analyze_paths(
                std::slice::from_ref(&path),
                &ReportOptions::default(),
                false,
            )
            .expect("the bench log is readable")
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
