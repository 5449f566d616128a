//! Helpers of the adapter tests: clients on both transports, deployments with a test key, requests,
//! and the shared fake upstream (`mirror_test_support::upstream`) with its response builders.

use futures::stream::StreamExt;
use mirror_core::{ChatRequest, DeploymentParams, ModelRef, SecretString};
use mirror_providers::HttpClient;
use serde_json::Value;

pub(crate) use mirror_test_support::upstream::{
    chop, events, json, raw, sse, Ending, Seen, Upstream,
};

/// The key every test deployment uses; no error may ever show it.
pub(crate) const KEY: &str = "sk-test-SECRET-0123456789";

/// The client on each transport, whatever the environment says: the direct one `HttpClient::new`
/// uses without proxy variables, and reqwest (here without a proxy), which it uses with them.
pub(crate) fn clients() -> [(&'static str, HttpClient); 2] {
    [
        ("direct", HttpClient::direct().unwrap()),
        ("reqwest", HttpClient::reqwest(None).unwrap()),
    ]
}

/// A deployment of `model` at `base` with the test key.
pub(crate) fn deployment(model: &str, base: &str) -> DeploymentParams {
    let mut params = DeploymentParams::new(ModelRef::parse(model).unwrap());
    params.api_base = Some(base.to_owned());
    params.api_key = Some(SecretString::new(KEY));
    params
}

/// A request from JSON.
pub(crate) fn request(body: Value) -> ChatRequest {
    serde_json::from_value(body).unwrap()
}

/// A one-message request to the `gpt-group` model group.
pub(crate) fn hello() -> ChatRequest {
    request(serde_json::json!({
        "model": "gpt-group",
        "messages": [{"role": "user", "content": "Hello"}],
    }))
}

/// The error and its sources, as a reporter prints them: `a: b: c`.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Fails if the key shows anywhere in the error: its `Display`, its `Debug`, or its sources.
#[track_caller]
pub(crate) fn assert_no_secret(err: &mirror_providers::ProviderError) {
    let mut seen = vec![err.to_string(), format!("{err:?}")];
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        seen.push(cause.to_string());
        seen.push(format!("{cause:?}"));
        source = cause.source();
    }
    for text in seen {
        assert!(!text.contains(KEY), "the key leaked: {text}");
        assert!(!text.contains("SECRET"), "part of the key leaked: {text}");
    }
}

/// A chat completion as OpenAI sends it.
pub(crate) fn completion(text: &str) -> Value {
    serde_json::json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
        "system_fingerprint": "fp_1"
    })
}

/// Collects a stream: the chunks, then the error that ended it, if any.
pub(crate) async fn collect(
    mut stream: mirror_providers::ChunkStream,
) -> (
    Vec<mirror_core::ChatChunk>,
    Option<mirror_providers::ProviderError>,
) {
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => chunks.push(chunk.into_chunk()),
            Err(err) => {
                assert!(
                    stream.next().await.is_none(),
                    "an error must end the stream"
                );
                return (chunks, Some(err));
            }
        }
    }
    (chunks, None)
}
