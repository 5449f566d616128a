//! Reading streams: `ChatChunk` JSON parsing alone, and the whole public path — `OpenAi::chat_stream`
//! over loopback HTTP against an in-process server, through the SSE parser and chunk decoding, to the
//! last chunk — plus one non-streaming `OpenAi::chat` round trip for comparison.
//!
//! `cargo bench -p mirror-providers --bench sse`. Not run in CI: timings belong in benchmarks, never in
//! tests.

// criterion's macros define undocumented functions.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use axum::routing::post;
use axum::serve::ListenerExt;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use futures::StreamExt;
use mirror_core::{ChatChunk, ChatMessage, ChatRequest, DeploymentParams, ModelRef};
use mirror_providers::{HttpClient, OpenAi, Provider};

const CHUNKS: usize = 64;

fn chunk_json(index: usize) -> String {
    format!(
        r#"{{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_bench","choices":[{{"index":0,"delta":{{"content":"token{index} "}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#
    )
}

fn sse_body() -> String {
    let mut body = String::new();
    for index in 0..CHUNKS {
        body.push_str("data: ");
        body.push_str(&chunk_json(index));
        body.push_str("\n\n");
    }
    body.push_str("data: [DONE]\n\n");
    body
}

const COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"A short answer."},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":4,"total_tokens":24}}"#;

fn chunk_parse(c: &mut Criterion) {
    let text = chunk_json(7);
    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Elements(1));
    group.bench_function("chat_chunk_json", |b| {
        b.iter(|| serde_json::from_str::<ChatChunk>(black_box(&text)))
    });
    group.finish();
}

fn over_http(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let stream_body = sse_body();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |body: String| {
            let stream_body = stream_body.clone();
            async move {
                if body.contains("\"stream\":true") {
                    // Several writes, as a real upstream sends them.
                    let pieces: Vec<Result<String, std::convert::Infallible>> = stream_body
                        .split_inclusive("\n\n")
                        .map(|piece| Ok(piece.to_owned()))
                        .collect();
                    Response::builder()
                        .header(header::CONTENT_TYPE, "text/event-stream")
                        .body(Body::from_stream(futures::stream::iter(pieces)))
                        .expect("a response")
                } else {
                    Response::builder()
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Body::from(COMPLETION))
                        .expect("a response")
                }
            }
        }),
    );
    let address = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let address = listener.local_addr().expect("an address");
        // As a real upstream does: without TCP_NODELAY each chunk waits for the previous one's ACK.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        address
    });
    let provider = OpenAi::new(HttpClient::new().expect("a client"));
    let mut deployment =
        DeploymentParams::new(ModelRef::parse("openai/gpt-4o").expect("a model reference"));
    deployment.api_base = Some(format!("http://{address}/v1"));
    let request = ChatRequest::new("gpt-4o", vec![ChatMessage::user("Hello there.")]);
    let mut streaming = request.clone();
    streaming.stream = Some(true);

    let mut group = c.benchmark_group("openai_loopback");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(CHUNKS as u64));
    group.bench_function("chat_stream_64_chunks", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iterations {
                    let mut stream = provider
                        .chat_stream(&deployment, &streaming)
                        .await
                        .expect("a stream");
                    let mut chunks = 0;
                    while let Some(chunk) = stream.next().await {
                        chunk.expect("a chunk");
                        chunks += 1;
                    }
                    assert_eq!(chunks, CHUNKS);
                }
                start.elapsed()
            })
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("chat", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iterations {
                    provider
                        .chat(&deployment, &request)
                        .await
                        .expect("a response");
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, chunk_parse, over_http);
criterion_main!(benches);
