//! The Responses API through the router, over real HTTP: ids routed to the deployment that stored
//! them, records, streams, and mirroring with each side's own ids.

use futures::StreamExt;
use mirror_core::{CallMeta, CallStatus, CallType, ResponsesRequest};
use mirror_providers::ResponseOperation;
use serde_json::json;

use crate::support::{builder, http_deployment, record_where, settled, take_records, Upstream};

fn create(model: &str) -> ResponsesRequest {
    ResponsesRequest::new(model, "hi")
}

#[tokio::test]
async fn a_two_turn_conversation_continues_on_each_side_with_its_own_ids() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    let (builder, mut records) = builder();
    let router = builder
        .deployment(
            http_deployment("prod", "prod-1", &primary)
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(http_deployment("candidate", "cand-1", &shadow))
        .build()
        .unwrap();

    let first = router.responses(create("prod")).await.unwrap();
    assert_ne!(
        first.response.id, "resp_primary_1",
        "the id names its deployment"
    );
    settled(&router).await;
    let mut both = take_records(&mut records, 2).await;
    both.sort_by_key(|r| r.metadata.is_silent_experiment);
    let (record, silent) = (&both[0], &both[1]);
    assert_eq!(record.call_type, CallType::Responses);
    assert_eq!((record.prompt_tokens, record.completion_tokens), (11, 6));
    // The record carries the Responses object the caller got, named by the routed id.
    assert_eq!(record.id, first.response.id);
    let logged = record.response.as_ref().expect("the response is recorded");
    assert!(matches!(logged, mirror_core::RecordResponse::Responses(_)));
    assert_eq!(
        (logged.id(), logged.model()),
        (first.response.id.as_str(), "gpt-4o-mini")
    );
    assert_eq!(logged.text().as_deref(), Some("hello from primary"));
    // The input, as messages (for a judge and Langfuse, as LiteLLM logs it).
    let messages = record.messages.as_ref().expect("the input is recorded");
    assert_eq!(
        messages
            .iter()
            .map(|m| (m.role.as_str(), m.text()))
            .collect::<Vec<_>>(),
        [("user", Some("hi".to_owned()))]
    );
    assert_eq!(
        silent.response.as_ref().and_then(|r| r.text()).as_deref(),
        Some("hello from shadow")
    );
    settled(&router).await;

    let mut second = create("prod");
    second.previous_response_id = Some(first.response.id.clone());
    router.responses(second).await.unwrap();
    let stats = settled(&router).await;
    assert_eq!((stats.mirrored, stats.completed), (2, 2), "{stats:?}");

    let primary_seen = primary.requests();
    let shadow_seen = shadow.requests();
    assert_eq!(
        primary_seen[1].body["previous_response_id"],
        "resp_primary_1"
    );
    assert_eq!(shadow_seen[1].body["previous_response_id"], "resp_shadow_1");
    assert!(shadow_seen[0].body.get("previous_response_id").is_none());
}

#[tokio::test]
async fn a_continuation_without_a_silent_twin_and_mcp_tools_are_dropped_and_counted() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    let (builder, _records) = builder();
    let router = builder
        .deployment(
            http_deployment("prod", "prod-1", &primary)
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(http_deployment("candidate", "cand-1", &shadow))
        .build()
        .unwrap();
    let mut unknown = create("prod");
    unknown.previous_response_id = Some("resp_from_elsewhere".to_owned());
    router.responses(unknown).await.unwrap();
    let mut mcp = create("prod");
    mcp.tools = Some(vec![
        json!({"type": "mcp", "server_label": "x", "server_url": "https://x"}),
    ]);
    router.responses(mcp).await.unwrap();
    let stats = settled(&router).await;
    assert_eq!(
        (
            stats.mirrored,
            stats.dropped_missing_state,
            stats.dropped_mcp_tools
        ),
        (2, 1, 1)
    );
    assert_eq!(shadow.count(), 0);
    assert_eq!(
        primary.requests()[0].body["previous_response_id"],
        "resp_from_elsewhere"
    );
}

/// With `silent_mirror_mcp_tools` on one deployment, its `mcp` requests are mirrored (tools intact),
/// while another mirrored deployment without it still drops and counts them, whatever the body says.
#[tokio::test]
async fn mcp_tools_are_mirrored_only_where_the_deployment_allows_it() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    let (builder, _records) = builder();
    let router = builder
        .deployment(
            http_deployment("allowed", "allowed-1", &primary)
                .silent_model(["candidate"])
                .unwrap()
                .silent_mirror_mcp_tools(true),
        )
        .deployment(
            http_deployment("default", "default-1", &primary)
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(http_deployment("candidate", "cand-1", &shadow))
        .build()
        .unwrap();
    let tool = json!({"type": "mcp", "server_label": "x", "server_url": "https://x"});
    for group in ["allowed", "default"] {
        let mut request = create(group);
        request.tools = Some(vec![tool.clone()]);
        // A client cannot allow it for itself: the key is the router's and is taken out.
        request
            .extra
            .insert("silent_mirror_mcp_tools".to_owned(), json!(true));
        router.responses(request).await.unwrap();
    }
    let stats = settled(&router).await;
    assert_eq!(
        (
            stats.mirrored,
            stats.completed,
            stats.dropped_mcp_tools,
            stats.failed
        ),
        (2, 1, 1, 0),
        "{stats:?}"
    );
    let seen = shadow.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body["tools"][0], tool);
    assert!(
        seen[0].body.get("silent_mirror_mcp_tools").is_none(),
        "a router key never reaches a provider"
    );
    assert!(primary
        .requests()
        .iter()
        .all(|r| r.body.get("silent_mirror_mcp_tools").is_none()));
}

#[tokio::test]
async fn stored_response_calls_reach_the_deployment_that_stored_it() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let (builder, mut records) = builder();
    let router = builder
        .deployment(http_deployment("group", "dep-a", &a))
        .deployment(http_deployment("group", "dep-b", &b))
        .build()
        .unwrap();
    let created = router.responses(create("group")).await.unwrap();
    let stored_on = if created.deployment_id == "dep-a" {
        &a
    } else {
        &b
    };
    let other = if created.deployment_id == "dep-a" {
        &b
    } else {
        &a
    };
    for _ in 0..4 {
        let meta = CallMeta::for_request("group", None);
        let got = router
            .response_call(
                ResponseOperation::Retrieve,
                &created.response.id,
                None,
                meta,
            )
            .await
            .unwrap();
        assert_eq!(got.response["id"], created.response.id.as_str());
    }
    assert_eq!(stored_on.count(), 5);
    assert_eq!(other.count(), 0);
    let (record, _) = record_where(&mut records, |r| r.call_type == CallType::GetResponses).await;
    assert_eq!(record.status, CallStatus::Success);
    assert_eq!(record.model_id, created.deployment_id);

    let meta = CallMeta::for_request("group", None);
    let err = router
        .response_call(ResponseOperation::Delete, "resp_not_ours", None, meta)
        .await
        .unwrap_err();
    let source = err.provider_error().unwrap().to_string();
    assert!(source.contains("resp_not_ours"), "{source}");
    assert_eq!(
        err.provider_error()
            .and_then(mirror_providers::ProviderError::status),
        Some(404)
    );
    assert_eq!(
        a.count() + b.count(),
        5,
        "an unroutable id calls no deployment"
    );
}

#[tokio::test]
async fn a_stream_relays_every_event_and_records_usage_at_the_end() {
    let upstream = Upstream::start("up").await;
    let (builder, mut records) = builder();
    let router = builder
        .deployment(http_deployment("group", "dep", &upstream))
        .build()
        .unwrap();
    let mut request = create("group");
    request.stream = Some(true);
    let routed = router.responses_stream(request).await.unwrap();
    let events: Vec<_> = routed.response.map(Result::unwrap).collect().await;
    assert_eq!(events.len(), 8);
    assert_eq!(
        events[4].event,
        mirror_test_support::responses::UNKNOWN_EVENT
    );
    let completed = events[7].response().unwrap();
    assert_ne!(completed.id, "resp_up_1");
    assert_eq!(events[0].response().unwrap().id, completed.id);
    let (record, _) = record_where(&mut records, |_| true).await;
    assert!(record.stream);
    assert_eq!(record.total_tokens, 17);
    // The terminal event's response, with the routed id, is the record's.
    assert_eq!(record.id, completed.id);
    let logged = record.response.as_ref().expect("the response is recorded");
    assert_eq!(logged.id(), completed.id);
    assert_eq!(logged.text().as_deref(), Some("hello from up"));
}

#[tokio::test]
async fn a_silent_stream_ending_in_an_error_event_is_counted_failed_as_it_is_recorded() {
    let primary = Upstream::start("primary").await;
    // The shadow starts a stream (200) and then reports an error event, as OpenAI does when a
    // response fails after it began.
    let shadow = Upstream::with_handler(|_call| async {
        let text = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_s\",\"object\":\"response\",\"status\":\"in_progress\"}}\n\n\
                    event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"boom\",\"param\":null,\"sequence_number\":1}\n\n";
        mirror_test_support::upstream::sse(
            vec![axum::body::Bytes::from(text)],
            mirror_test_support::upstream::Ending::Close,
        )
    })
    .await;
    let (builder, mut records) = builder();
    let router = builder
        .deployment(
            http_deployment("prod", "prod-1", &primary)
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(http_deployment("candidate", "cand-1", &shadow))
        .build()
        .unwrap();
    let mut request = create("prod");
    request.stream = Some(true);
    let mut stream = router.responses_stream(request).await.unwrap().response;
    while let Some(event) = stream.next().await {
        event.unwrap();
    }
    let (record, _) = record_where(&mut records, |r| r.metadata.is_silent_experiment).await;
    assert_eq!(record.status, CallStatus::Failure);
    let stats = settled(&router).await;
    assert_eq!((stats.completed, stats.failed), (0, 1), "{stats:?}");
    assert!(stats.is_balanced());
}

#[tokio::test]
async fn cache_controls_never_reach_the_upstream_or_the_shadow() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    let (builder, _records) = builder();
    let router = builder
        .deployment(
            http_deployment("prod", "prod-1", &primary)
                .silent_model(["candidate"])
                .unwrap(),
        )
        .deployment(http_deployment("candidate", "cand-1", &shadow))
        .build()
        .unwrap();
    let mut request = create("prod");
    request
        .extra
        .insert("cache".to_owned(), json!({"no-cache": true}));
    router.responses(request).await.unwrap();
    settled(&router).await;
    for upstream in [&primary, &shadow] {
        let seen = upstream.only_request();
        assert!(seen.body.get("cache").is_none(), "{}", seen.body);
    }
}
