//! How error answers, timeouts and broken connections become [`ProviderError`]s.

use std::sync::Arc;
use std::time::Duration;

use expect_test::{expect, Expect};
use mirror_providers::{AzureOpenAi, HttpClient, OpenAi, Provider, ProviderError};
use serde_json::json;
use tokio::sync::Notify;

use crate::support::{
    assert_no_secret, chain, clients, deployment, hello, raw, sse, Ending, Upstream, KEY,
};

fn render(err: &ProviderError) -> String {
    format!(
        "{} status={:?} retryable={} counts={} retry_after={:?}\n{err}",
        err.class(),
        err.status(),
        err.is_retryable(),
        err.counts_against_deployment(),
        err.retry_after(),
    )
}

/// Answers `status` with `headers` and `body` and checks the error of `chat` and of `chat_stream`
/// (both must agree) through the OpenAI adapter, on each transport (all must agree).
async fn check(
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    expect: Expect,
) {
    let upstream =
        Upstream::with_handler(
            move |_| async move { raw(status, "application/json", headers, body) },
        )
        .await;
    let params = deployment("openai/gpt-4o-mini", upstream.url());
    let mut rendered = Vec::new();
    for (transport, client) in clients() {
        let openai = OpenAi::new(client);
        let chat = openai.chat(&params, &hello()).await.unwrap_err();
        let stream = openai.chat_stream(&params, &hello()).await.err().unwrap();

        assert_no_secret(&chat);
        assert_no_secret(&stream);
        assert_eq!(render(&chat), render(&stream), "{transport}");
        rendered.push(render(&chat));
    }
    assert_eq!(rendered[0], rendered[1], "the transports disagree");
    expect.assert_eq(&rendered[0]);
}

#[tokio::test]
async fn rate_limited_with_retry_after_seconds() {
    check(
        429,
        &[("retry-after", "2")],
        r#"{"error":{"message":"Rate limit reached for gpt-4o-mini","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
        expect![[r#"
            rate_limited status=Some(429) retryable=true counts=true retry_after=Some(2s)
            rate limited: Rate limit reached for gpt-4o-mini"#]],
    )
    .await;
}

#[tokio::test]
async fn rate_limited_with_retry_after_ms_preferred() {
    check(
        429,
        &[("retry-after", "2"), ("retry-after-ms", "1500")],
        r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
        expect![[r#"
            rate_limited status=Some(429) retryable=true counts=true retry_after=Some(1.5s)
            rate limited: Rate limit reached"#]],
    )
    .await;
}

#[tokio::test]
async fn rate_limited_with_an_absurd_retry_after() {
    check(
        429,
        &[("retry-after", "1e300")],
        r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
        expect![[r#"
            rate_limited status=Some(429) retryable=true counts=true retry_after=None
            rate limited: Rate limit reached"#]],
    )
    .await;
}

#[tokio::test]
async fn rate_limited_with_an_http_date_retry_after() {
    check(
        429,
        &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")],
        r#"{"error":{"message":"Requests to the ChatCompletions_Create Operation have exceeded the rate limit.","code":"429"}}"#,
        expect![[r#"
            rate_limited status=Some(429) retryable=true counts=true retry_after=None
            rate limited: Requests to the ChatCompletions_Create Operation have exceeded the rate limit."#]],
    )
    .await;
}

#[tokio::test]
async fn insufficient_quota_is_not_retryable() {
    check(
        429,
        &[],
        r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
        expect![[r#"
            quota_exhausted status=Some(429) retryable=false counts=true retry_after=None
            quota exhausted: You exceeded your current quota, please check your plan and billing details."#]],
    )
    .await;
}

#[tokio::test]
async fn server_error_is_retryable_upstream() {
    check(
        500,
        &[],
        r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#,
        expect![[r#"
            upstream status=Some(500) retryable=true counts=true retry_after=None
            upstream error (500): The server had an error while processing your request."#]],
    )
    .await;
}

#[tokio::test]
async fn overloaded_with_retry_after() {
    check(
        503,
        &[("retry-after", "3")],
        r#"{"error":{"message":"Slow down","type":"server_error","param":null,"code":null}}"#,
        expect![[r#"
            upstream status=Some(503) retryable=true counts=true retry_after=Some(3s)
            upstream error (503): Slow down"#]],
    )
    .await;
}

#[tokio::test]
async fn bad_gateway_with_an_html_body() {
    check(
        502,
        &[],
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
        expect![[r#"
            upstream status=Some(502) retryable=true counts=true retry_after=None
            upstream error (502): <html><body><h1>502 Bad Gateway</h1></body></html>"#]],
    )
    .await;
}

#[tokio::test]
async fn context_length_exceeded() {
    check(
        400,
        &[],
        r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        expect![[r#"
            context_window_exceeded status=Some(400) retryable=false counts=false retry_after=None
            context window exceeded: This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens."#]],
    )
    .await;
}

#[tokio::test]
async fn context_length_exceeded_without_a_code() {
    check(
        400,
        &[],
        r#"{"object":"error","message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400,"error":{"message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.","code":400}}"#,
        expect![[r#"
            context_window_exceeded status=Some(400) retryable=false counts=false retry_after=None
            context window exceeded: This model's maximum context length is 4096 tokens. However, you requested 5000 tokens."#]],
    )
    .await;
}

#[tokio::test]
async fn azure_content_filter_is_content_policy() {
    check(
        400,
        &[],
        r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"},"jailbreak":{"filtered":false,"detected":false}}}}}"#,
        expect![[r#"
            content_policy status=Some(400) retryable=false counts=false retry_after=None
            content policy violation: The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry."#]],
    )
    .await;
}

#[tokio::test]
async fn invalid_parameter_is_bad_request_with_code() {
    check(
        400,
        &[],
        r#"{"error":{"message":"Invalid value for 'temperature'.","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}"#,
        expect![[r#"
            bad_request status=Some(400) retryable=false counts=false retry_after=None
            bad request (400): Invalid value for 'temperature'."#]],
    )
    .await;
}

#[tokio::test]
async fn unauthorized_is_auth() {
    check(
        401,
        &[],
        r#"{"error":{"message":"Incorrect API key provided: sk-test-***6789. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
        expect![[r#"
            auth status=Some(401) retryable=false counts=true retry_after=None
            authentication failed (401): Incorrect API key provided: sk-test-***6789. You can find your API key at https://platform.openai.com/account/api-keys."#]],
    )
    .await;
}

#[tokio::test]
async fn forbidden_is_auth() {
    check(
        403,
        &[],
        r#"{"error":{"message":"Country, region, or territory not supported","type":"request_forbidden","param":null,"code":"unsupported_country_region_territory"}}"#,
        expect![[r#"
            auth status=Some(403) retryable=false counts=true retry_after=None
            authentication failed (403): Country, region, or territory not supported"#]],
    )
    .await;
}

#[tokio::test]
async fn not_found() {
    check(
        404,
        &[],
        r#"{"error":{"message":"The model `gpt-5-nano-x` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#,
        expect![[r#"
            not_found status=Some(404) retryable=false counts=true retry_after=None
            not found: The model `gpt-5-nano-x` does not exist or you do not have access to it."#]],
    )
    .await;
}

#[tokio::test]
async fn unprocessable_with_an_empty_body() {
    check(
        422,
        &[],
        "",
        expect![[r#"
        bad_request status=Some(422) retryable=false counts=false retry_after=None
        bad request (422): HTTP 422 with an empty body"#]],
    )
    .await;
}

#[tokio::test]
async fn an_echoed_key_is_not_repeated() {
    // Some OpenAI-compatible servers echo the key they refused in full.
    let upstream = Upstream::with_handler(|_| async {
        raw(
            401,
            "application/json",
            &[],
            json!({"error": {"message": format!("invalid key {KEY}"), "code": "invalid_api_key"}})
                .to_string(),
        )
    })
    .await;
    let params = deployment("openai/gpt-4o-mini", upstream.url());
    let openai = OpenAi::new(HttpClient::new().unwrap());
    let err = openai.chat(&params, &hello()).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Auth { status: 401, .. }),
        "{err:?}"
    );
    assert_no_secret(&err);

    // And an Azure key, which travels in `api-key`.
    let mut params = deployment("azure/my-deploy", upstream.url());
    params.api_version = Some("2024-10-21".to_owned());
    let azure = AzureOpenAi::new(HttpClient::new().unwrap());
    let err = azure.chat_stream(&params, &hello()).await.err().unwrap();
    assert_no_secret(&err);
}

#[tokio::test]
async fn malformed_json_is_malformed_response_with_an_excerpt() {
    let upstream = Upstream::with_handler(|_| async {
        raw(
            200,
            "application/json",
            &[],
            format!(
                "{{\"id\": \"chatcmpl-1\", \"choices\": [{}",
                "x".repeat(1000)
            ),
        )
    })
    .await;
    let params = deployment("openai/gpt-4o-mini", upstream.url());
    let openai = OpenAi::new(HttpClient::new().unwrap());
    let err = openai.chat(&params, &hello()).await.unwrap_err();
    let ProviderError::MalformedResponse { excerpt, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(excerpt.starts_with("{\"id\": \"chatcmpl-1\""), "{excerpt}");
    assert!(
        excerpt.len() <= 200,
        "the excerpt is short: {}",
        excerpt.len()
    );
    assert!(err.is_retryable());
    assert_no_secret(&err);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let never = Arc::new(Notify::new());
    let upstream = Upstream::with_handler({
        let never = Arc::clone(&never);
        move |_| {
            let never = Arc::clone(&never);
            async move {
                never.notified().await;
                raw(200, "application/json", &[], "{}")
            }
        }
    })
    .await;
    let mut params = deployment("openai/gpt-4o-mini", upstream.url());
    params.timeout = Some(0.2);
    for (transport, client) in clients() {
        let openai = OpenAi::new(client);

        let chat = openai.chat(&params, &hello()).await.unwrap_err();
        let stream = openai.chat_stream(&params, &hello()).await.err().unwrap();
        let embeddings = openai
            .embeddings(
                &params,
                &serde_json::from_value(json!({"model": "e", "input": "x"})).unwrap(),
            )
            .await
            .unwrap_err();

        for err in [chat, stream, embeddings] {
            assert!(
                matches!(err, ProviderError::Timeout { after } if after == Duration::from_millis(200)),
                "{transport}: {err:?}"
            );
            assert!(err.is_retryable());
        }
    }
    // (How many requests the upstream recorded is not asserted: under load the client may give up
    // before the upstream has read a body.)
}

#[tokio::test]
async fn timeout_covers_a_body_that_never_finishes() {
    let upstream = Upstream::with_handler(|_| async {
        let mut response = sse(vec!["{\"id\": ".into()], Ending::Stall);
        response.headers_mut().insert(
            "content-type",
            axum::http::HeaderValue::from_static("application/json"),
        );
        response
    })
    .await;
    let mut params = deployment("openai/gpt-4o-mini", upstream.url());
    params.timeout = Some(0.2);
    for (transport, client) in clients() {
        let openai = OpenAi::new(client);
        let err = openai.chat(&params, &hello()).await.unwrap_err();
        assert!(
            matches!(err, ProviderError::Timeout { .. }),
            "{transport}: {err:?}"
        );
    }
}

#[tokio::test]
async fn connection_refused_is_transport() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let params = deployment("openai/gpt-4o-mini", &base);
    for (transport, client) in clients() {
        let openai = OpenAi::new(client);
        let err = openai.chat(&params, &hello()).await.unwrap_err();
        assert!(
            matches!(err, ProviderError::Transport { .. }),
            "{transport}: {err:?}"
        );
        assert!(err.is_retryable());
        assert!(std::error::Error::source(&err).is_some());
        assert_no_secret(&err);
        // The message says this level; the causes are the sources, as reqwest words them, each
        // once.
        assert_eq!(
            err.to_string(),
            "transport error: error sending request",
            "{transport}"
        );
        let chain = chain(&err);
        assert!(
            chain.starts_with(
                "transport error: error sending request: client error (Connect): tcp connect error: "
            ),
            "{transport}: {chain}"
        );
        assert_eq!(
            chain.matches("tcp connect error").count(),
            1,
            "{transport}: {chain}"
        );
    }
}

#[tokio::test]
async fn credentials_in_api_base_are_not_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let params = deployment(
        "openai/gpt-4o-mini",
        &format!("http://user:{KEY}@{addr}/v1"),
    );
    for (transport, client) in clients() {
        let openai = OpenAi::new(client);
        let err = openai.chat(&params, &hello()).await.unwrap_err();
        assert!(
            matches!(err, ProviderError::Transport { .. }),
            "{transport}: {err:?}"
        );
        assert_no_secret(&err);
        assert_eq!(openai.api_base(&params), format!("http://{addr}/v1"));
    }
}

#[tokio::test]
async fn invalid_key_characters_are_a_config_error_without_the_value() {
    let mut params = deployment("openai/gpt-4o-mini", "http://127.0.0.1:9");
    params.api_key = Some(mirror_core::SecretString::new(format!("{KEY}\n")));
    let openai = OpenAi::new(HttpClient::new().unwrap());
    let err = openai.chat(&params, &hello()).await.unwrap_err();
    expect![[r#"
        config status=None retryable=false counts=true retry_after=None
        deployment misconfigured: the value for header `authorization` contains characters a header cannot hold"#]].assert_eq(&render(&err));
    assert_no_secret(&err);
}
