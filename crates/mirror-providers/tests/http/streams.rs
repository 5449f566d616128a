//! Server-sent events as OpenAI and Azure send them, and the ways a stream breaks.

use std::sync::Arc;
use std::time::Duration;

use expect_test::expect;
use futures::StreamExt;
use mirror_core::{ChatChunk, DeploymentParams, StreamAccumulator};
use mirror_providers::{AzureOpenAi, HttpClient, OpenAi, Provider, ProviderError};
use tokio::sync::Notify;

use crate::support::{
    assert_no_secret, chain, chop, clients, collect, deployment, events, hello, json, sse, Ending,
    Upstream,
};

const OPENAI_STREAM: &[&str] = &[
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"Héllo"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":" wörld 🌍"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
    r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}"#,
];

const AZURE_STREAM: &[&str] = &[
    r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"},"jailbreak":{"filtered":false,"detected":false}}}]}"#,
    r#"{"choices":[{"content_filter_results":{},"delta":{"content":"","refusal":null,"role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"created":1700000000,"id":"chatcmpl-az","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk","system_fingerprint":"fp_az","usage":null}"#,
    r#"{"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}},"delta":{"content":"Hi"},"finish_reason":null,"index":0,"logprobs":null}],"created":1700000000,"id":"chatcmpl-az","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk","system_fingerprint":"fp_az","usage":null}"#,
    r#"{"choices":[{"content_filter_results":{},"delta":{},"finish_reason":"stop","index":0,"logprobs":null}],"created":1700000000,"id":"chatcmpl-az","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk","system_fingerprint":"fp_az","usage":null}"#,
    r#"{"choices":[{"content_filter_offsets":{"check_offset":0,"start_offset":0,"end_offset":2},"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}},"finish_reason":null,"index":0}],"created":0,"id":"","model":"","object":""}"#,
    r#"{"choices":[],"created":1700000000,"id":"chatcmpl-az","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk","usage":{"completion_tokens":1,"prompt_tokens":8,"total_tokens":9}}"#,
];

fn stream_deployment(base: &str) -> DeploymentParams {
    let mut params = deployment("openai/gpt-4o-mini", &format!("{base}/v1"));
    params.timeout = Some(10.0);
    params.stream_timeout = Some(10.0);
    params
}

/// Streams `body` (in `piece`-byte writes, then `ending`) through the OpenAI adapter, on each
/// transport; they must agree, and the direct client's result is returned.
async fn openai_stream(
    body: String,
    piece: usize,
    ending: Ending,
    params: impl FnOnce(&str) -> DeploymentParams,
) -> (Vec<ChatChunk>, Option<ProviderError>) {
    let upstream = Upstream::with_handler(move |_| {
        let body = body.clone();
        let ending = ending.clone();
        async move { sse(chop(&body, piece), ending) }
    })
    .await;
    let params = params(upstream.url());
    let mut results = Vec::new();
    for (transport, client) in clients() {
        let openai = OpenAi::new(client);
        let stream = openai.chat_stream(&params, &hello()).await.unwrap();
        // Generous: a hang fails the test instead of blocking it.
        let result = tokio::time::timeout(Duration::from_secs(20), collect(stream))
            .await
            .expect("the stream neither ended nor failed");
        results.push((transport, result));
    }
    let render = |(chunks, err): &(Vec<ChatChunk>, Option<ProviderError>)| {
        let err = err.as_ref().map(|err| format!("{} {err}", err.class()));
        format!("{chunks:?}\n{err:?}")
    };
    let (_, direct) = results.remove(0);
    for (transport, result) in &results {
        assert_eq!(render(result), render(&direct), "{transport} disagrees");
    }
    direct
}

/// The streamed text and usage, as the accumulator rebuilds them.
fn summary(chunks: &[ChatChunk]) -> String {
    let mut accumulator = StreamAccumulator::default();
    for chunk in chunks {
        accumulator.push(chunk);
    }
    let response = accumulator.finish();
    format!(
        "{} chunks, id {:?}, text {:?}, finish {:?}, usage {:?}",
        chunks.len(),
        response.id,
        response.text().unwrap_or_default(),
        response
            .choices
            .first()
            .and_then(|c| c.finish_reason.clone()),
        response
            .usage
            .map(|u| (u.prompt_tokens, u.completion_tokens, u.total_tokens)),
    )
}

#[tokio::test]
async fn openai_stream_in_one_write() {
    let body = events(OPENAI_STREAM) + "data: [DONE]\n\n";
    let (chunks, err) = openai_stream(body, usize::MAX, Ending::Close, stream_deployment).await;
    assert!(err.is_none(), "{err:?}");
    expect![[r#"5 chunks, id "chatcmpl-1", text "Héllo wörld 🌍", finish Some("stop"), usage Some((9, 3, 12))"#]].assert_eq(&summary(&chunks));
    // Chunks are relayed with every field the provider sent.
    assert_eq!(chunks[0].extra["system_fingerprint"], "fp_1");
    assert!(chunks[4].choices.is_empty());
}

#[tokio::test]
async fn openai_stream_split_across_writes_at_every_size() {
    let body = events(OPENAI_STREAM) + "data: [DONE]\n\n";
    let expected = openai_stream(body.clone(), usize::MAX, Ending::Close, stream_deployment)
        .await
        .0;
    // Cuts fall inside `data:`, inside JSON, between `\n` and `\n`, and inside UTF-8 characters.
    for piece in [1, 2, 3, 7, 64] {
        let (chunks, err) =
            openai_stream(body.clone(), piece, Ending::Close, stream_deployment).await;
        assert!(err.is_none(), "piece {piece}: {err:?}");
        assert_eq!(chunks, expected, "piece {piece}");
    }
}

#[tokio::test]
async fn crlf_line_endings_keep_alives_and_other_fields() {
    let mut body = String::from(": keep-alive\r\n\r\n");
    for (n, event) in OPENAI_STREAM.iter().enumerate() {
        body.push_str(&format!(
            "event: message\r\nid: {n}\r\nretry: 1000\r\ndata: {event}\r\n\r\n: keep-alive\r\n\r\n"
        ));
    }
    body.push_str("data: [DONE]\r\n\r\n");
    let mut summaries = Vec::new();
    for piece in [1, 5, usize::MAX] {
        let (chunks, err) =
            openai_stream(body.clone(), piece, Ending::Close, stream_deployment).await;
        assert!(err.is_none(), "piece {piece}: {err:?}");
        summaries.push(summary(&chunks));
    }
    summaries.dedup();
    expect![[r#"
        [
            "5 chunks, id \"chatcmpl-1\", text \"Héllo wörld 🌍\", finish Some(\"stop\"), usage Some((9, 3, 12))",
        ]
    "#]].assert_debug_eq(&summaries);
}

#[tokio::test]
async fn cr_line_endings() {
    let mut body = String::new();
    for event in OPENAI_STREAM {
        body.push_str(&format!("data: {event}\r\r"));
    }
    body.push_str("data: [DONE]\r\r");
    let mut summaries = Vec::new();
    for piece in [1, usize::MAX] {
        let (chunks, err) =
            openai_stream(body.clone(), piece, Ending::Close, stream_deployment).await;
        assert!(err.is_none(), "piece {piece}: {err:?}");
        summaries.push(summary(&chunks));
    }
    summaries.dedup();
    expect![[r#"
        [
            "5 chunks, id \"chatcmpl-1\", text \"Héllo wörld 🌍\", finish Some(\"stop\"), usage Some((9, 3, 12))",
        ]
    "#]].assert_debug_eq(&summaries);
}

#[tokio::test]
async fn azure_stream_with_filter_only_chunks_and_usage() {
    let body = events(AZURE_STREAM) + "data: [DONE]\n\n";
    let upstream = Upstream::with_handler(move |_| {
        let body = body.clone();
        async move { sse(chop(&body, 13), Ending::Close) }
    })
    .await;
    let mut params = deployment("azure/my-deploy", upstream.url());
    params.api_version = Some("2024-10-21".to_owned());
    params.timeout = Some(10.0);
    params.stream_timeout = Some(10.0);
    let azure = AzureOpenAi::new(HttpClient::new().unwrap());
    let mut request = hello();
    request.stream_options =
        serde_json::from_value(serde_json::json!({"include_usage": true})).unwrap();

    let stream = azure.chat_stream(&params, &request).await.unwrap();
    let (chunks, err) = collect(stream).await;

    assert!(err.is_none(), "{err:?}");
    expect![[
        r#"6 chunks, id "chatcmpl-az", text "Hi", finish Some("stop"), usage Some((8, 1, 9))"#
    ]]
    .assert_eq(&summary(&chunks));
    // The annotation-only chunks are relayed unchanged.
    assert!(chunks[0].choices.is_empty());
    assert!(chunks[0].extra.contains_key("prompt_filter_results"));
    assert_eq!(chunks[4].choices[0].delta, None);
    assert!(chunks[4].choices[0]
        .extra
        .contains_key("content_filter_offsets"));
    let sent = upstream.only_request();
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn nothing_after_done_is_read() {
    let body = events(&OPENAI_STREAM[..2]) + "data: [DONE]\n\n" + &events(&OPENAI_STREAM[2..]);
    let (chunks, err) = openai_stream(body, usize::MAX, Ending::Stall, stream_deployment).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(chunks.len(), 2);
}

#[tokio::test]
async fn error_event_mid_stream_is_an_error_item() {
    let body = events(&OPENAI_STREAM[..2])
        + &events(&[
            r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#,
        ])
        + "data: [DONE]\n\n";
    let (chunks, err) = openai_stream(body, 9, Ending::Close, stream_deployment).await;
    assert_eq!(chunks.len(), 2);
    let err = err.expect("an error item");
    expect!["upstream true upstream error (500): error event in stream: The server had an error while processing your request."].assert_eq(&format!("{} {} {err}", err.class(), err.is_retryable()));
    assert_no_secret(&err);
}

/// Sends `body`, lets the client read `read` chunks, then drops the connection, on each transport;
/// they must agree, and the direct client's error is returned.
async fn dropped_after(body: String, piece: usize, read: usize) -> ProviderError {
    let mut errors = Vec::new();
    for (transport, client) in clients() {
        let err = dropped_after_on(client, body.clone(), piece, read).await;
        errors.push((transport, format!("{} {err}", err.class()), err));
    }
    let (_, direct, err) = errors.remove(0);
    for (transport, rendered, _) in &errors {
        assert_eq!(rendered, &direct, "{transport} disagrees");
    }
    err
}

async fn dropped_after_on(
    client: HttpClient,
    body: String,
    piece: usize,
    read: usize,
) -> ProviderError {
    let abort = Arc::new(Notify::new());
    let upstream = Upstream::with_handler({
        let abort = Arc::clone(&abort);
        move |_| {
            let body = body.clone();
            let abort = Arc::clone(&abort);
            async move { sse(chop(&body, piece), Ending::AbortWhen(abort)) }
        }
    })
    .await;
    let openai = OpenAi::new(client);
    let mut stream = openai
        .chat_stream(&stream_deployment(upstream.url()), &hello())
        .await
        .unwrap();
    for _ in 0..read {
        stream.next().await.unwrap().unwrap();
    }
    abort.notify_one();
    let (rest, err) = tokio::time::timeout(Duration::from_secs(20), collect(stream))
        .await
        .expect("the stream neither ended nor failed");
    assert!(rest.is_empty(), "{rest:?}");
    let err = err.expect("a dropped connection must not end the stream cleanly");
    assert_no_secret(&err);
    err
}

#[tokio::test]
async fn connection_dropped_mid_stream_is_a_transport_error() {
    for piece in [5, usize::MAX] {
        let err = dropped_after(events(&OPENAI_STREAM[..3]), piece, 3).await;
        assert!(matches!(err, ProviderError::Transport { .. }), "{err:?}");
        assert!(err.is_retryable());
    }
}

#[tokio::test]
async fn connection_dropped_inside_an_event_is_a_transport_error() {
    let body = events(&OPENAI_STREAM[..1]) + "data: {\"id\":\"chatcmpl-1\",\"obj";
    let err = dropped_after(body, usize::MAX, 1).await;
    assert!(matches!(err, ProviderError::Transport { .. }), "{err:?}");
}

#[tokio::test]
async fn connection_dropped_before_any_event_is_a_transport_error() {
    let err = dropped_after(String::new(), usize::MAX, 0).await;
    expect!["transport transport error: stream broke: error decoding response body: error reading a body from connection: unexpected EOF during chunk size line"]
        .assert_eq(&format!("{} {}", err.class(), chain(&err)));
}

#[tokio::test]
async fn stream_ending_with_its_finish_reason_but_without_done_is_complete() {
    // Some OpenAI-compatible servers never send `[DONE]`; the official SDKs end at the close.
    let body = events(OPENAI_STREAM);
    let (chunks, err) = openai_stream(body, usize::MAX, Ending::Close, stream_deployment).await;
    assert_eq!(chunks.len(), OPENAI_STREAM.len());
    assert!(err.is_none(), "{err:?}");
    // The same holds up to the finish reason, before the usage chunk.
    let body = events(&OPENAI_STREAM[..4]);
    let (chunks, err) = openai_stream(body, 7, Ending::Close, stream_deployment).await;
    assert_eq!(chunks.len(), 4);
    assert!(err.is_none(), "{err:?}");
}

#[tokio::test]
async fn stream_ending_before_its_finish_reason_without_done_is_a_transport_error() {
    let body = events(&OPENAI_STREAM[..3]);
    let (chunks, err) = openai_stream(body, usize::MAX, Ending::Close, stream_deployment).await;
    assert_eq!(chunks.len(), 3);
    let err = err.expect("a stream cut before [DONE] must not end cleanly");
    expect!["transport transport error: stream ended before [DONE]"]
        .assert_eq(&format!("{} {err}", err.class()));
}

#[tokio::test]
async fn stalled_stream_hits_stream_timeout() {
    let body = events(&OPENAI_STREAM[..2]);
    let (chunks, err) = openai_stream(body, usize::MAX, Ending::Stall, |base| {
        let mut params = stream_deployment(base);
        params.stream_timeout = Some(0.2);
        params
    })
    .await;
    assert_eq!(chunks.len(), 2);
    let err = err.expect("a stalled stream must time out");
    assert!(
        matches!(err, ProviderError::Timeout { after } if after == Duration::from_millis(200)),
        "{err:?}"
    );
}

#[tokio::test]
async fn invalid_chunk_is_malformed_response() {
    let body = events(&OPENAI_STREAM[..1]) + "data: {not json\n\n" + "data: [DONE]\n\n";
    let (chunks, err) = openai_stream(body, usize::MAX, Ending::Close, stream_deployment).await;
    assert_eq!(chunks.len(), 1);
    let err = err.expect("an error item");
    expect![[r#"malformed_response malformed upstream response: invalid stream chunk: key must be a string at line 1 column 2; body starts with "{not json""#]].assert_eq(&format!("{} {err}", err.class()));
}

#[tokio::test]
async fn error_status_fails_before_the_stream_starts() {
    let upstream = Upstream::with_handler(|_| async {
        json(
            429,
            serde_json::json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
        )
    })
    .await;
    let openai = OpenAi::new(HttpClient::new().unwrap());
    let err = openai
        .chat_stream(&stream_deployment(upstream.url()), &hello())
        .await
        .err()
        .expect("a 429 fails the call");
    assert!(matches!(err, ProviderError::RateLimited { .. }), "{err:?}");
}

#[tokio::test]
async fn done_without_its_blank_line_still_ends_cleanly() {
    let body = events(&OPENAI_STREAM[..2]) + "data: [DONE]\n";
    let (chunks, err) = openai_stream(body, usize::MAX, Ending::Close, stream_deployment).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(chunks.len(), 2);
}

#[tokio::test]
async fn stream_cut_inside_a_line_is_a_transport_error() {
    let body = events(&OPENAI_STREAM[..2]) + "data: {\"id\":\"chatcmpl-1\",\"obj";
    let (chunks, err) = openai_stream(body, usize::MAX, Ending::Close, stream_deployment).await;
    assert_eq!(chunks.len(), 2);
    let err = err.expect("a stream cut before [DONE] must not end cleanly");
    assert!(matches!(err, ProviderError::Transport { .. }), "{err:?}");
}

#[tokio::test]
async fn json_answer_to_a_stream_request_is_malformed_response() {
    let upstream =
        Upstream::with_handler(|_| async { json(200, crate::support::completion("Hi")) }).await;
    let openai = OpenAi::new(HttpClient::new().unwrap());
    let err = openai
        .chat_stream(&stream_deployment(upstream.url()), &hello())
        .await
        .err()
        .expect("a JSON answer is no stream");
    assert!(
        matches!(err, ProviderError::MalformedResponse { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("chatcmpl-1"), "{err}");
}

#[tokio::test]
async fn an_echoed_key_in_an_error_event_is_scrubbed() {
    let event = format!(
        r#"{{"error":{{"message":"key {} was revoked","type":"invalid_request_error"}}}}"#,
        crate::support::KEY
    );
    let body = events(&[&event]) + "data: [DONE]\n\n";
    let (_, err) = openai_stream(body, usize::MAX, Ending::Close, stream_deployment).await;
    let err = err.expect("an error item");
    assert!(
        err.to_string().contains("key <redacted> was revoked"),
        "{err}"
    );
    assert_no_secret(&err);
}
