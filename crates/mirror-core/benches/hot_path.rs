//! The request hot path of a mirrored call, without I/O: parse the client's body, make the call's
//! identity, make the silent copy (`ChatRequest::to_mirror`), and serialise both upstream bodies
//! (`ChatRequest::upstream`); and parse what comes back (a `ChatResponse`, or a stream's
//! `ChatChunk`s).
//!
//! `cargo bench -p mirror-core --bench hot_path`. Not run in CI: timings belong in benchmarks, never
//! in tests.

// criterion's macros define undocumented functions.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use mirror_core::{CallMeta, ChatChunk, ChatRequest, ChatResponse};

/// A typical chat request: a system prompt, a few turns, sampling parameters and metadata.
const BODY: &str = r#"{"model":"gpt-4o","messages":[{"role":"system","content":"You are a helpful assistant. Answer briefly and cite your sources."},{"role":"user","content":"Summarise the plot of Hamlet in two sentences."},{"role":"assistant","content":"Prince Hamlet seeks revenge on his uncle Claudius, who murdered Hamlet's father to seize the throne. His hesitation and feigned madness lead to a chain of deaths, including his own."},{"role":"user","content":"Now do Macbeth, in one sentence."}],"temperature":0.2,"max_tokens":256,"user":"user-1234","metadata":{"tags":["bench","hamlet"],"trace_id":"trace-abc","session":"s-42"}}"#;

/// A typical non-streaming answer as OpenAI sends it, with fields the types keep in `extra`
/// (`refusal`, `logprobs`, the token details, `service_tier`, `system_fingerprint`).
const RESPONSE: &str = r#"{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion","created":1741569952,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Macbeth, spurred by prophecy and his wife, murders his way to the throne and is destroyed by guilt and war.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":96,"completion_tokens":24,"total_tokens":120,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}"#;

/// A typical content chunk of a stream.
const CHUNK: &str = r#"{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_fc9f1d7035","choices":[{"index":0,"delta":{"content":" prophecy"},"logprobs":null,"finish_reason":null}]}"#;

fn hot_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot_path");
    group.throughput(Throughput::Elements(1));
    let request: ChatRequest = serde_json::from_str(BODY).expect("the body parses");
    let meta = CallMeta::for_request(&request.model, request.metadata.as_ref());

    group.bench_function("parse", |b| {
        b.iter(|| serde_json::from_slice::<ChatRequest>(black_box(BODY.as_bytes())))
    });
    group.bench_function("parse_response", |b| {
        b.iter(|| serde_json::from_slice::<ChatResponse>(black_box(RESPONSE.as_bytes())))
    });
    group.bench_function("parse_chunk", |b| {
        b.iter(|| serde_json::from_slice::<ChatChunk>(black_box(CHUNK.as_bytes())))
    });
    group.bench_function("call_meta", |b| {
        b.iter(|| CallMeta::for_request(black_box(&request.model), request.metadata.as_ref()))
    });
    group.bench_function("to_mirror", |b| {
        b.iter(|| black_box(&request).to_mirror(&meta, "shadow"))
    });
    group.bench_function("upstream_serialise", |b| {
        b.iter(|| serde_json::to_vec(&black_box(&request).upstream("gpt-4o-2024-08-06", false)))
    });
    // Everything a mirrored non-streaming call does to the request, end to end.
    group.bench_function("parse_copy_serialise_both", |b| {
        b.iter(|| {
            let request: ChatRequest =
                serde_json::from_slice(black_box(BODY.as_bytes())).expect("the body parses");
            let meta = CallMeta::for_request(&request.model, request.metadata.as_ref());
            let copy = request.to_mirror(&meta, "shadow");
            let primary = serde_json::to_vec(&request.upstream("gpt-4o-2024-08-06", false));
            let silent = serde_json::to_vec(&copy.request.upstream("gpt-4o-mini", false));
            (primary, silent)
        })
    });
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
