//! What the OpenAI adapter sends, and how it reads complete answers.

use expect_test::expect;
use mirror_core::EmbeddingsRequest;
use mirror_providers::{HttpClient, OpenAi, Provider};
use serde_json::json;

use crate::support::{completion, deployment, events, json, request, sse, Ending, Upstream};

fn openai() -> OpenAi {
    OpenAi::new(HttpClient::new().unwrap())
}

#[tokio::test]
async fn chat_sends_the_provider_model_and_no_gateway_fields() {
    let upstream = Upstream::with_handler(|_| async { json(200, completion("Hi there")) }).await;
    let mut params = deployment("openai/gpt-4o-mini", &format!("{}/v1/", upstream.url()));
    params.organization = Some("org-42".to_owned());
    // A client asking for a stream in the body still gets a plain call when the router calls `chat`.
    let request = request(json!({
        "model": "gpt-group",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        "stream": true,
        "stream_options": {"include_usage": true},
        "temperature": 0.2,
        "seed": 7,
        "metadata": {"trace_id": "t-1", "tags": ["a"]},
        "silent_model": "shadow-group",
        "silent_sample_rate": 0.5,
        "litellm_metadata": {"x": 1},
    }));

    let response = openai().chat(&params, &request).await.unwrap();

    assert_eq!(response.text().as_deref(), Some("Hi there"));
    assert_eq!(response.usage.as_ref().map(|u| u.total_tokens), Some(6));
    assert_eq!(response.extra["system_fingerprint"], "fp_1");
    expect![[r#"
        POST /v1/chat/completions
        authorization: Bearer sk-test-SECRET-0123456789
        openai-organization: org-42
        content-type: application/json
        {
          "messages": [
            {
              "content": "Be brief.",
              "role": "system"
            },
            {
              "content": "Hello",
              "role": "user"
            }
          ],
          "model": "gpt-4o-mini",
          "seed": 7,
          "temperature": 0.2
        }"#]]
    .assert_eq(&upstream.only_request().render());
}

#[tokio::test]
async fn chat_stream_sends_stream_and_stream_options() {
    let upstream =
        Upstream::with_handler(|_| async { sse(vec![events(&["[DONE]"]).into()], Ending::Close) })
            .await;
    let params = deployment("openai/gpt-4o-mini", &format!("{}/v1", upstream.url()));
    let request = request(json!({
        "model": "gpt-group",
        "messages": [{"role": "user", "content": "Hello"}],
        "stream_options": {"include_usage": true},
        "metadata": {"trace_id": "t-1"},
        "silent_model": ["shadow-a", "shadow-b"],
    }));

    let stream = openai().chat_stream(&params, &request).await.unwrap();
    let (chunks, err) = crate::support::collect(stream).await;

    assert!(chunks.is_empty() && err.is_none(), "{chunks:?} {err:?}");
    expect![[r#"
        POST /v1/chat/completions
        authorization: Bearer sk-test-SECRET-0123456789
        content-type: application/json
        {
          "messages": [
            {
              "content": "Hello",
              "role": "user"
            }
          ],
          "model": "gpt-4o-mini",
          "stream": true,
          "stream_options": {
            "include_usage": true
          }
        }"#]]
    .assert_eq(&upstream.only_request().render());
}

#[tokio::test]
async fn chat_stream_without_stream_options_sends_none() {
    let upstream =
        Upstream::with_handler(|_| async { sse(vec![events(&["[DONE]"]).into()], Ending::Close) })
            .await;
    let params = deployment("openai/gpt-4o-mini", &format!("{}/v1", upstream.url()));

    let stream = openai()
        .chat_stream(&params, &crate::support::hello())
        .await
        .unwrap();
    let _ = crate::support::collect(stream).await;

    let sent = upstream.only_request().body;
    assert_eq!(sent["stream"], true);
    assert!(sent.get("stream_options").is_none(), "{sent}");
}

#[tokio::test]
async fn embeddings_post_to_embeddings_with_the_provider_model() {
    let upstream = Upstream::with_handler(|_| async {
        json(
            200,
            json!({
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 2, "total_tokens": 2}
            }),
        )
    })
    .await;
    let params = deployment(
        "openai/text-embedding-3-small",
        &format!("{}/v1", upstream.url()),
    );
    let request: EmbeddingsRequest = serde_json::from_value(json!({
        "model": "embed-group",
        "input": ["hello", "world"],
        "dimensions": 2,
        "metadata": {"trace_id": "t-1"},
        "silent_model": "shadow",
    }))
    .unwrap();

    let response = openai().embeddings(&params, &request).await.unwrap();

    assert_eq!(response.data.len(), 1);
    assert_eq!(response.data[0].embedding, json!([0.25, -0.5]));
    expect![[r#"
        POST /v1/embeddings
        authorization: Bearer sk-test-SECRET-0123456789
        content-type: application/json
        {
          "dimensions": 2,
          "input": [
            "hello",
            "world"
          ],
          "model": "text-embedding-3-small"
        }"#]]
    .assert_eq(&upstream.only_request().render());
}

#[test]
fn api_base_is_reported_without_the_trailing_slash() {
    let params = deployment("openai/gpt-4o", "http://localhost:11434/v1/");
    let openai = OpenAi::new(HttpClient::new().unwrap());
    assert_eq!(openai.api_base(&params), "http://localhost:11434/v1");
    assert_eq!(openai.name(), "openai");
}
