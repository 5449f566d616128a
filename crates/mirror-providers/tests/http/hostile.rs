//! Upstreams that misbehave: answers too large to hold, answers without what a client needs,
//! redirects, and base URLs with a query. Every case runs on both transports.

use axum::body::{Body, Bytes};
use expect_test::{expect, Expect};
use futures::stream::{self, StreamExt};
use mirror_core::{DeploymentParams, EmbeddingsRequest, ModelRef, SecretString};
use mirror_providers::{AzureOpenAi, OpenAi, Provider, ProviderError};
use serde_json::json;

use crate::support::{
    assert_no_secret, chain, clients, collect, completion, deployment, hello, json, raw, sse,
    Ending, Upstream,
};

/// A body that never ends: `piece` again and again. Reading it whole never finishes.
fn endless(piece: &'static [u8]) -> Body {
    Body::from_stream(stream::repeat_with(move || {
        Ok::<_, std::io::Error>(Bytes::from_static(piece))
    }))
}

async fn chat_error(upstream: &Upstream, params: impl Fn(&str) -> DeploymentParams) -> Vec<String> {
    let params = params(upstream.url());
    let mut errors = Vec::new();
    for (transport, client) in clients() {
        let err = OpenAi::new(client)
            .chat(&params, &hello())
            .await
            .expect_err(transport);
        assert_no_secret(&err);
        errors.push(format!("{transport}: {} {}", err.class(), chain(&err)));
    }
    errors
}

#[track_caller]
fn check_same(errors: &[String], expect: Expect) {
    let first = errors[0].split_once(": ").unwrap().1;
    for error in errors {
        assert_eq!(error.split_once(": ").unwrap().1, first, "{errors:#?}");
    }
    expect.assert_eq(first);
}

fn limited(max_response_bytes: u64) -> impl Fn(&str) -> DeploymentParams {
    move |base| {
        let mut params = deployment("openai/gpt-4o-mini", base);
        params.max_response_bytes = Some(max_response_bytes);
        params
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_too_large_with_or_without_a_content_length() {
    let big = completion(&"x".repeat(4096)).to_string();
    // With a `Content-Length`: refused before the body is read.
    let body = big.clone();
    let upstream = Upstream::with_handler(move |_| {
        let body = body.clone();
        async move { raw(200, "application/json", &[], body) }
    })
    .await;
    check_same(
        &chat_error(&upstream, limited(1024)).await,
        expect!["response_too_large upstream response too large: the body exceeds the limit of 1024 bytes"],
    );
    // Chunked, without a length: refused once the limit is passed.
    let upstream = Upstream::with_handler(move |_| {
        let pieces: Vec<Result<Bytes, std::io::Error>> = big
            .as_bytes()
            .chunks(100)
            .map(|piece| Ok(Bytes::copy_from_slice(piece)))
            .collect();
        async move {
            raw(
                200,
                "application/json",
                &[],
                Body::from_stream(stream::iter(pieces)),
            )
        }
    })
    .await;
    check_same(
        &chat_error(&upstream, limited(1024)).await,
        expect!["response_too_large upstream response too large: the body exceeds the limit of 1024 bytes"],
    );
    // Under the limit, the same answer is fine.
    let params = limited(1024 * 1024)(upstream.url());
    for (_, client) in clients() {
        OpenAi::new(client).chat(&params, &hello()).await.unwrap();
    }
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_default_limit() {
    // Were the body read whole, this would never end.
    let upstream = Upstream::with_handler(|_| async {
        raw(200, "application/json", &[], endless(&[b' '; 65536]))
    })
    .await;
    check_same(
        &chat_error(&upstream, |base| deployment("openai/gpt-4o-mini", base)).await,
        expect!["response_too_large upstream response too large: the body exceeds the limit of 16777216 bytes"],
    );
}

#[tokio::test]
async fn an_endless_error_body_is_read_only_for_its_excerpt() {
    let upstream =
        Upstream::with_handler(|_| async { raw(503, "text/plain", &[], endless(b"overloaded ")) })
            .await;
    let errors = chat_error(&upstream, |base| deployment("openai/gpt-4o-mini", base)).await;
    for error in &errors {
        assert!(
            error.contains("upstream upstream error (503): overloaded overloaded"),
            "{error}"
        );
    }
}

async fn stream_error(
    upstream: &Upstream,
    params: impl Fn(&str) -> DeploymentParams,
) -> Vec<String> {
    let params = params(upstream.url());
    let mut errors = Vec::new();
    for (transport, client) in clients() {
        let stream = OpenAi::new(client)
            .chat_stream(&params, &hello())
            .await
            .expect(transport);
        let (_, err) = collect(stream).await;
        let err = err.expect(transport);
        assert_no_secret(&err);
        errors.push(format!("{transport}: {} {}", err.class(), chain(&err)));
    }
    errors
}

#[tokio::test]
async fn an_endless_event_is_cut_at_the_event_limit() {
    let upstream = Upstream::with_handler(|_| async {
        let start = stream::once(async {
            Ok::<_, std::io::Error>(Bytes::from_static(b"data: {\"id\":\""))
        });
        let rest = stream::repeat_with(|| Ok(Bytes::from_static(&[b'a'; 65536])));
        raw(
            200,
            "text/event-stream",
            &[],
            Body::from_stream(start.chain(rest)),
        )
    })
    .await;
    check_same(
        &stream_error(&upstream, |base| deployment("openai/gpt-4o-mini", base)).await,
        expect!["response_too_large upstream response too large: the stream event exceeds the limit of 4194304 bytes"],
    );
    // An event spread over many `data:` lines counts as one.
    let upstream = Upstream::with_handler(|_| async {
        raw(
            200,
            "text/event-stream",
            &[],
            endless(b"data: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"),
        )
    })
    .await;
    check_same(
        &stream_error(&upstream, |base| {
            let mut params = deployment("openai/gpt-4o-mini", base);
            params.max_stream_event_bytes = Some(4096);
            params
        })
        .await,
        expect!["response_too_large upstream response too large: the stream event exceeds the limit of 4096 bytes"],
    );
}

#[tokio::test]
async fn an_endless_stream_of_small_events_is_cut_at_the_stream_limit() {
    let upstream = Upstream::with_handler(|_| async {
        raw(200, "text/event-stream", &[], endless(b": keep-alive\n\n"))
    })
    .await;
    check_same(
        &stream_error(&upstream, |base| {
            let mut params = deployment("openai/gpt-4o-mini", base);
            params.max_stream_bytes = Some(64 * 1024);
            params
        })
        .await,
        expect!["response_too_large upstream response too large: the stream exceeds the limit of 65536 bytes"],
    );
    // Events under both limits pass.
    let upstream = Upstream::with_handler(|_| async {
        sse(
            vec![Bytes::from(crate::support::events(&[
                r#"{"id":"c","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}"#,
            ]) + "data: [DONE]\n\n")],
            Ending::Close,
        )
    })
    .await;
    let mut params = deployment("openai/gpt-4o-mini", upstream.url());
    params.max_stream_bytes = Some(1024);
    params.max_stream_event_bytes = Some(200);
    for (_, client) in clients() {
        let stream = OpenAi::new(client)
            .chat_stream(&params, &hello())
            .await
            .unwrap();
        let (chunks, err) = collect(stream).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(chunks.len(), 1);
    }
}

#[tokio::test]
async fn a_completion_without_choices_is_malformed() {
    for body in [
        json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "m"}),
        json!({"id": "chatcmpl-1", "object": "chat.completion", "choices": null}),
        json!({"id": "chatcmpl-1", "object": "chat.completion", "choices": []}),
    ] {
        let upstream = Upstream::with_handler(move |_| {
            let body = body.clone();
            async move { json(200, body) }
        })
        .await;
        let errors = chat_error(&upstream, |base| deployment("openai/gpt-4o-mini", base)).await;
        for error in &errors {
            assert!(
                error.contains(
                    "malformed_response malformed upstream response: the chat completion has no `choices`"
                ),
                "{error}"
            );
        }
    }
    let upstream = Upstream::with_handler(|_| async { json(200, json!({"object": "list"})) }).await;
    let params = deployment("openai/text-embedding-3-small", upstream.url());
    let request: EmbeddingsRequest =
        serde_json::from_value(json!({"model": "e", "input": "hi"})).unwrap();
    for (_, client) in clients() {
        let err = OpenAi::new(client)
            .embeddings(&params, &request)
            .await
            .unwrap_err();
        expect![[r#"malformed upstream response: the embeddings response has no `data`; body starts with "{\"object\":\"list\"}""#]]
            .assert_eq(&err.to_string());
    }
}

#[tokio::test]
async fn a_redirect_is_an_upstream_error_and_is_not_followed() {
    let upstream = Upstream::with_handler(|call| async move {
        if call.path == "/v1/chat/completions" {
            raw(
                307,
                "text/plain",
                &[("location", "/elsewhere?token=sk-leaked-secret-123")],
                "",
            )
        } else {
            json(200, completion("followed"))
        }
    })
    .await;
    let errors = chat_error(&upstream, |base| {
        deployment("openai/gpt-4o-mini", &format!("{base}/v1"))
    })
    .await;
    check_same(
        &errors,
        expect!["upstream upstream error (307): the upstream answered with a redirect, which is not followed; set `api_base` to the URL it redirects to"],
    );
    assert!(errors.iter().all(|error| !error.contains("leaked")));
    assert_eq!(
        upstream.count(),
        2,
        "one request per transport, none followed"
    );
    // Streams too.
    let params = deployment("openai/gpt-4o-mini", &format!("{}/v1", upstream.url()));
    for (_, client) in clients() {
        let err = OpenAi::new(client)
            .chat_stream(&params, &hello())
            .await
            .err()
            .unwrap();
        assert_eq!(err.status(), Some(307));
    }
    assert_eq!(upstream.count(), 4);
}

#[tokio::test]
async fn a_query_in_api_base_stays_a_query_and_is_redacted() {
    let upstream = Upstream::with_handler(|call| async move {
        // Some upstreams echo what they got.
        json(
            401,
            json!({"error": {"message": format!("bad code {}", call.query.clone().unwrap_or_default())}}),
        )
    })
    .await;
    let base = format!("{}/v1/?code=query-SECRET-987654&region=eu", upstream.url());
    let params = deployment("openai/gpt-4o-mini", &base);
    for (transport, client) in clients() {
        let openai = OpenAi::new(client);
        let err = openai.chat(&params, &hello()).await.unwrap_err();
        let text = chain(&err);
        assert!(!text.contains("query-SECRET"), "{transport}: {text}");
        assert_eq!(
            openai.api_base(&params),
            format!("{}/v1/?code=<redacted>&region=<redacted>", upstream.url())
        );
    }
    let seen = upstream.requests();
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(
        seen[0].query.as_deref(),
        Some("code=query-SECRET-987654&region=eu")
    );
}

#[tokio::test]
async fn azure_deployment_names_are_one_path_segment_and_the_query_joins() {
    let upstream = Upstream::start("azure").await;
    let mut params = deployment(
        "azure/my deploy/../x?y#z",
        &format!("{}?code=azure-SECRET-12345", upstream.url()),
    );
    params.api_version = Some("2024-10-21".to_owned());
    params.api_key = Some(SecretString::new("azure-key-0123456789"));
    let azure = AzureOpenAi::new(mirror_providers::HttpClient::direct().unwrap());
    azure.chat(&params, &hello()).await.unwrap();
    let seen = upstream.only_request();
    assert_eq!(
        seen.path,
        "/openai/deployments/my%20deploy%2F..%2Fx%3Fy%23z/chat/completions"
    );
    assert_eq!(
        seen.query.as_deref(),
        Some("code=azure-SECRET-12345&api-version=2024-10-21")
    );
    assert_eq!(
        azure.api_base(&params),
        format!("{}?code=<redacted>", upstream.url())
    );
    // The model name parses as given: only the path encodes it.
    assert_eq!(
        ModelRef::parse("azure/my deploy/../x?y#z").unwrap().name(),
        "my deploy/../x?y#z"
    );
}

#[test]
fn a_too_large_answer_is_not_retried() {
    // A too-large answer is not worth asking for again.
    let err = ProviderError::ResponseTooLarge {
        what: "body",
        limit: 1,
    };
    assert!(!err.is_retryable());
    assert!(err.counts_against_deployment());
    assert_eq!(err.status(), None);
}
