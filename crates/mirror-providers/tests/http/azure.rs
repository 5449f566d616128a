//! What the Azure OpenAI adapter sends, and its configuration errors.

use expect_test::{expect, Expect};
use mirror_core::{DeploymentParams, EmbeddingsRequest, ModelRef, SecretString};
use mirror_providers::{AzureOpenAi, HttpClient, Provider, ProviderError};
use serde_json::json;

use crate::support::{completion, deployment, hello, json, Upstream, KEY};

fn azure() -> AzureOpenAi {
    AzureOpenAi::new(HttpClient::new().unwrap())
}

fn azure_deployment(base: &str, version: &str) -> DeploymentParams {
    let mut params = deployment("azure/my-deploy", base);
    params.api_version = Some(version.to_owned());
    params
}

fn embeddings_request() -> EmbeddingsRequest {
    serde_json::from_value(json!({"model": "embed-group", "input": "hello"})).unwrap()
}

fn embeddings_response() -> serde_json::Value {
    json!({
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 1, "total_tokens": 1}
    })
}

#[tokio::test]
async fn chat_uses_the_deployment_path_api_version_and_api_key() {
    let upstream = Upstream::with_handler(|_| async { json(200, completion("Hi")) }).await;
    let mut request = hello();
    request
        .extra
        .insert("silent_model".to_owned(), json!("shadow"));

    let response = azure()
        .chat(
            &azure_deployment(&format!("{}/", upstream.url()), "2024-10-21"),
            &request,
        )
        .await
        .unwrap();

    assert_eq!(response.text().as_deref(), Some("Hi"));
    expect![[r#"
        POST /openai/deployments/my-deploy/chat/completions?api-version=2024-10-21
        api-key: sk-test-SECRET-0123456789
        content-type: application/json
        {
          "messages": [
            {
              "content": "Hello",
              "role": "user"
            }
          ],
          "model": "my-deploy"
        }"#]]
    .assert_eq(&upstream.only_request().render());
}

#[tokio::test]
async fn azure_ad_token_is_sent_as_a_bearer_token_instead_of_the_key() {
    let upstream = Upstream::with_handler(|_| async { json(200, completion("Hi")) }).await;
    let mut params = azure_deployment(upstream.url(), "2025-01-01-preview");
    params.azure_ad_token = Some(SecretString::new("entra-token"));

    azure().chat(&params, &hello()).await.unwrap();

    let sent = upstream.only_request();
    assert_eq!(sent.header("authorization"), Some("Bearer entra-token"));
    assert_eq!(sent.header("api-key"), None);
    assert_eq!(
        sent.query.as_deref(),
        Some("api-version=2025-01-01-preview")
    );
}

#[tokio::test]
async fn v1_surface_puts_the_deployment_in_the_body() {
    let upstream = Upstream::with_handler(|_| async { json(200, completion("Hi")) }).await;

    azure()
        .chat(&azure_deployment(upstream.url(), "v1"), &hello())
        .await
        .unwrap();

    expect![[r#"
        POST /openai/v1/chat/completions
        api-key: sk-test-SECRET-0123456789
        content-type: application/json
        {
          "messages": [
            {
              "content": "Hello",
              "role": "user"
            }
          ],
          "model": "my-deploy"
        }"#]]
    .assert_eq(&upstream.only_request().render());
}

#[tokio::test]
async fn embeddings_paths() {
    let upstream = Upstream::with_handler(|_| async { json(200, embeddings_response()) }).await;

    for version in ["2024-10-21", "v1"] {
        let response = azure()
            .embeddings(
                &azure_deployment(upstream.url(), version),
                &embeddings_request(),
            )
            .await
            .unwrap();
        assert_eq!(response.data.len(), 1);
    }

    let sent: Vec<String> = upstream
        .requests()
        .iter()
        .map(|request| {
            format!(
                "{} {}?{} api-key={} model={}",
                request.method,
                request.path,
                request.query.as_deref().unwrap_or(""),
                request.header("api-key") == Some(KEY),
                request.body["model"],
            )
        })
        .collect();
    expect![[r#"
        [
            "POST /openai/deployments/my-deploy/embeddings?api-version=2024-10-21 api-key=true model=\"my-deploy\"",
            "POST /openai/v1/embeddings? api-key=true model=\"my-deploy\"",
        ]
    "#]].assert_debug_eq(&sent);
}

#[track_caller]
fn check_config_error(params: &DeploymentParams, expect: Expect) {
    // The adapter reads AZURE_* defaults from the environment; these tests need them unset.
    for name in ["AZURE_API_KEY", "AZURE_API_BASE", "AZURE_API_VERSION"] {
        assert!(
            std::env::var_os(name).is_none(),
            "unset {name} to run these tests"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let azure = azure();
    let chat = runtime.block_on(azure.chat(params, &hello())).unwrap_err();
    let stream = runtime
        .block_on(azure.chat_stream(params, &hello()))
        .err()
        .unwrap();
    let embeddings = runtime
        .block_on(azure.embeddings(params, &embeddings_request()))
        .unwrap_err();
    for err in [&chat, &stream, &embeddings] {
        assert!(matches!(err, ProviderError::Config { .. }), "{err:?}");
        assert!(!err.is_retryable());
        assert_eq!(err.to_string(), chat.to_string());
    }
    expect.assert_eq(&chat.to_string());
}

#[test]
fn missing_api_base_is_a_config_error_naming_the_deployment() {
    let mut params = DeploymentParams::new(ModelRef::parse("azure/my-deploy").unwrap());
    params.api_key = Some(SecretString::new(KEY));
    params.api_version = Some("2024-10-21".to_owned());
    check_config_error(&params, expect!["deployment misconfigured: azure deployment `my-deploy` has no `api_base` and AZURE_API_BASE is not set"]);
}

#[tokio::test]
async fn missing_api_version_uses_litellms_default() {
    // LiteLLM sends its `AZURE_DEFAULT_API_VERSION` when neither the deployment nor
    // AZURE_API_VERSION names one; a LiteLLM config without `api_version` must work the same.
    assert!(
        std::env::var_os("AZURE_API_VERSION").is_none(),
        "unset AZURE_API_VERSION to run this test"
    );
    let upstream = Upstream::with_handler(|_| async { json(200, completion("Hi")) }).await;
    let mut params = DeploymentParams::new(ModelRef::parse("azure/my-deploy").unwrap());
    params.api_key = Some(SecretString::new(KEY));
    params.api_base = Some(upstream.url().to_owned());
    azure().chat(&params, &hello()).await.unwrap();
    let seen = upstream.only_request();
    assert_eq!(seen.path, "/openai/deployments/my-deploy/chat/completions");
    assert_eq!(
        seen.query.as_deref(),
        Some("api-version=2025-02-01-preview")
    );
    assert_eq!(
        mirror_providers::AZURE_DEFAULT_API_VERSION,
        "2025-02-01-preview"
    );
}

#[test]
fn missing_key_is_a_config_error_naming_the_deployment() {
    let mut params = DeploymentParams::new(ModelRef::parse("azure/my-deploy").unwrap());
    params.api_base = Some("http://127.0.0.1:9".to_owned());
    params.api_version = Some("2024-10-21".to_owned());
    check_config_error(&params, expect!["deployment misconfigured: azure deployment `my-deploy` has no `api_key` or `azure_ad_token`, and AZURE_API_KEY is not set"]);
}

#[test]
fn api_base_is_empty_when_unset() {
    let params = DeploymentParams::new(ModelRef::parse("azure/my-deploy").unwrap());
    assert!(
        std::env::var_os("AZURE_API_BASE").is_none(),
        "unset AZURE_API_BASE to run this test"
    );
    assert_eq!(azure().api_base(&params), "");
    assert_eq!(azure().name(), "azure");
}
