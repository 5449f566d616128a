//! The Responses API over real HTTP: OpenAI's `/v1/responses`, both Azure surfaces, the stored-
//! response calls, and streamed events relayed unchanged, unknown types included.

use futures::StreamExt;
use mirror_core::ResponsesRequest;
use mirror_providers::{
    AzureOpenAi, HttpClient, OpenAi, Provider, ProviderError, ResponseCall, ResponseOperation,
};
use mirror_test_support::responses::UNKNOWN_EVENT;
use serde_json::json;

use crate::support::{clients, deployment, Upstream, KEY};

fn request(stream: bool) -> ResponsesRequest {
    serde_json::from_value(json!({
        "model": "group",
        "input": "Hello",
        "stream": stream,
        "previous_response_id": "resp_before",
        "metadata": {"app": "tests"},
        "litellm_metadata": {"tags": ["gateway-only"]},
        "reasoning": {"effort": "low"},
        "silent_model": "never-upstream",
    }))
    .unwrap()
}

#[tokio::test]
async fn openai_create_sends_the_body_and_reads_id_and_usage() {
    let upstream = Upstream::start("up").await;
    for (transport, http) in clients() {
        let openai = OpenAi::new(http);
        let params = deployment("openai/gpt-x", &upstream.base());
        let response = openai.responses(&params, &request(false)).await.unwrap();
        assert!(
            response.id.starts_with("resp_up_"),
            "{transport}: {response:?}"
        );
        let usage = response.usage.clone().unwrap();
        assert_eq!((usage.input_tokens, usage.cached_tokens()), (11, 2));
        assert_eq!((usage.output_tokens, usage.reasoning_tokens()), (6, 1));
        assert_eq!(response.status(), Some("completed"));
    }
    let seen = upstream.requests();
    assert_eq!(seen[0].path, "/v1/responses");
    assert_eq!(
        seen[0].authorization(),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        seen[0].body,
        json!({
            "model": "gpt-x", "input": "Hello", "previous_response_id": "resp_before",
            "metadata": {"app": "tests"}, "reasoning": {"effort": "low"},
        })
    );
}

#[tokio::test]
async fn request_defaults_reach_the_responses_body_under_the_request_s_own_values() {
    let upstream = Upstream::start("up").await;
    let (_, http) = clients().into_iter().next().unwrap();
    let openai = OpenAi::new(http);
    let mut params = deployment("openai/gpt-x", &upstream.base());
    params.extra = serde_json::from_value(json!({
        "temperature": 0.1, "max_tokens": 64, "stop": ["END"], "reasoning_effort": "high",
        "extra_headers": {"x-team": "search"},
    }))
    .unwrap();
    openai.responses(&params, &request(false)).await.unwrap();
    let seen = upstream.only_request();
    // `reasoning` is the request's own; `stop` is chat's alone and never reaches /responses.
    assert_eq!(
        seen.body,
        json!({
            "model": "gpt-x", "input": "Hello", "previous_response_id": "resp_before",
            "metadata": {"app": "tests"}, "reasoning": {"effort": "low"},
            "temperature": 0.1, "max_output_tokens": 64,
        })
    );
    assert_eq!(seen.header("x-team"), Some("search"));
}

#[tokio::test]
async fn streamed_events_arrive_in_order_unchanged_with_unknown_types() {
    let upstream = Upstream::start("up").await;
    for (_, http) in clients() {
        let openai = OpenAi::new(http);
        let params = deployment("openai/gpt-x", &upstream.base());
        let events: Vec<_> = openai
            .responses_stream(&params, &request(true))
            .await
            .unwrap()
            .map(Result::unwrap)
            .collect()
            .await;
        let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.output_text.delta",
                UNKNOWN_EVENT,
                "response.output_text.delta",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let unknown: serde_json::Value = serde_json::from_str(&events[4].data).unwrap();
        assert_eq!(unknown["note"], "relayed unchanged");
        let done = events.last().unwrap().response().unwrap();
        assert_eq!(done.usage.unwrap().total(), 17);
    }
    assert_eq!(upstream.requests()[0].body["stream"], true);
}

#[tokio::test]
async fn a_stream_cut_before_its_terminal_event_ends_with_an_error() {
    use mirror_test_support::upstream::{sse, Ending};
    let upstream = Upstream::with_handler(|_| async {
        sse(
            vec!["event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\"}}\n\n".into()],
            Ending::Close,
        )
    })
    .await;
    let openai = OpenAi::new(HttpClient::new().unwrap());
    let params = deployment("openai/gpt-x", &upstream.base());
    let items: Vec<_> = openai
        .responses_stream(&params, &request(true))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert!(
        matches!(&items[1], Err(ProviderError::Transport { .. })),
        "{items:?}"
    );
}

#[tokio::test]
async fn stored_response_calls_use_their_method_path_and_query() {
    let upstream = Upstream::start("up").await;
    let openai = OpenAi::new(HttpClient::new().unwrap());
    let params = deployment("openai/gpt-x", &upstream.base());
    let calls = [
        (
            ResponseOperation::Retrieve,
            None,
            "GET",
            "/v1/responses/resp_9",
        ),
        (
            ResponseOperation::Delete,
            None,
            "DELETE",
            "/v1/responses/resp_9",
        ),
        (
            ResponseOperation::Cancel,
            None,
            "POST",
            "/v1/responses/resp_9/cancel",
        ),
        (
            ResponseOperation::InputItems,
            Some("limit=5&order=asc"),
            "GET",
            "/v1/responses/resp_9/input_items",
        ),
    ];
    for (operation, query, method, path) in calls {
        let answer = openai
            .response_call(
                &params,
                ResponseCall {
                    operation,
                    id: "resp_9",
                    query,
                },
            )
            .await
            .unwrap();
        let seen = upstream.requests().pop().unwrap();
        assert_eq!((seen.method.as_str(), seen.path.as_str()), (method, path));
        assert_eq!(seen.query.as_deref(), query);
        assert!(answer.is_object());
    }
}

#[tokio::test]
async fn azure_serves_both_surfaces() {
    let upstream = Upstream::start("az").await;
    let azure = AzureOpenAi::new(HttpClient::new().unwrap());
    let cases = [
        (None, "/openai/v1/responses", Some("api-version=preview")),
        (Some("v1"), "/openai/v1/responses", None),
        (
            Some("2025-04-01-preview"),
            "/openai/responses",
            Some("api-version=2025-04-01-preview"),
        ),
    ];
    for (version, path, query) in cases {
        let mut params = deployment("azure/my-deploy", upstream.url());
        params.api_version = version.map(str::to_owned);
        let response = azure.responses(&params, &request(false)).await.unwrap();
        assert!(response.id.starts_with("resp_az_"));
        let seen = upstream.requests().pop().unwrap();
        assert_eq!(seen.path, path);
        assert_eq!(seen.query.as_deref(), query);
        assert_eq!(seen.header("api-key"), Some(KEY));
        assert_eq!(seen.body["model"], "my-deploy");
        let retrieved = azure
            .response_call(
                &params,
                ResponseCall {
                    operation: ResponseOperation::InputItems,
                    id: &response.id,
                    query: Some("limit=1"),
                },
            )
            .await
            .unwrap();
        assert_eq!(retrieved["object"], "list");
        let seen = upstream.requests().pop().unwrap();
        assert_eq!(seen.path, format!("{path}/{}/input_items", response.id));
        let expected = query.map_or("limit=1".to_owned(), |q| format!("{q}&limit=1"));
        assert_eq!(seen.query.as_deref(), Some(expected.as_str()));
    }
}

#[tokio::test]
async fn a_provider_without_responses_says_so() {
    struct ChatOnly;
    #[async_trait::async_trait]
    impl Provider for ChatOnly {
        fn name(&self) -> &str {
            "chat-only"
        }
        async fn chat(
            &self,
            _: &mirror_core::DeploymentParams,
            _: &mirror_core::ChatRequest,
        ) -> Result<mirror_core::ChatResponse, ProviderError> {
            unreachable!()
        }
        async fn chat_stream(
            &self,
            _: &mirror_core::DeploymentParams,
            _: &mirror_core::ChatRequest,
        ) -> Result<mirror_providers::ChunkStream, ProviderError> {
            unreachable!()
        }
    }
    let params = deployment("chat-only/x", "http://127.0.0.1:9");
    let err = ChatOnly
        .responses(&params, &request(false))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("responses"), "{err}");
    assert!(matches!(err, ProviderError::Unsupported { .. }));
}
