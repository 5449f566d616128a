//! The silent lane's HTTP/1.1 connections read through a small buffer (4 KiB, against hyper's 8 KiB
//! growing to 400 KiB), since each copy in flight holds one: bodies of any size still arrive, plain
//! and streamed, and a response head larger than the buffer fails the copy clearly, never a
//! primary call.

use futures::StreamExt as _;
use mirror_core::{CallMeta, ChatRequest, Http2};
use mirror_providers::{OpenAi, Provider};

use crate::support::{
    chain, chop, clients, completion, deployment, events, json, raw, request, sse, Ending, Upstream,
};

/// Larger than the silent lane's read buffer many times over.
const LARGE: usize = 100_000;

/// A request saying `text` (streamed or not) and its silent copy, as the copy point makes it.
fn primary_and_silent(text: &str, stream: bool) -> (ChatRequest, ChatRequest) {
    let primary = request(serde_json::json!({
        "model": "gpt-group",
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }));
    let meta = CallMeta::for_request("gpt-group", None);
    let silent = primary.to_mirror(&meta, "shadow-group").request;
    (primary, silent)
}

/// One chunk of a streamed answer adding `text`.
fn chunk(text: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": text}, "logprobs": null, "finish_reason": null}],
    })
    .to_string()
}

#[tokio::test]
async fn silent_copies_receive_bodies_larger_than_their_read_buffer() {
    let text = "0123456789abcdef".repeat(LARGE / 16);
    let answer = text.clone();
    let upstream = Upstream::with_handler(move |call| {
        let answer = answer.clone();
        async move {
            if call.seen.body["stream"] == true {
                // Two events of 50 kB each, in writes of 9,000 bytes: every event spans reads.
                let half = answer.len() / 2;
                let body = events(&[&chunk(&answer[..half]), &chunk(&answer[half..]), "[DONE]"]);
                sse(chop(&body, 9_000), Ending::Close)
            } else {
                json(200, completion(&answer))
            }
        }
    })
    .await;
    for (name, client) in clients() {
        let openai = OpenAi::new(client);
        for http2 in [None, Some(Http2::Never)] {
            let mut params = deployment("openai/gpt-4o-mini", &upstream.base());
            params.http2 = http2;
            let (_, silent) = primary_and_silent("plain", false);
            let response = openai.chat(&params, &silent).await.unwrap();
            assert_eq!(response.text().as_deref(), Some(text.as_str()), "{name}");
            let (_, silent) = primary_and_silent("streamed", true);
            let mut stream = openai.chat_stream(&params, &silent).await.unwrap();
            let mut streamed = String::new();
            while let Some(item) = stream.next().await {
                let chunk = item.unwrap();
                let added = chunk
                    .choices
                    .into_iter()
                    .filter_map(|choice| choice.delta?.content);
                streamed.extend(added);
            }
            assert_eq!(streamed, text, "{name} {http2:?}");
        }
    }
    assert!(upstream
        .requests()
        .iter()
        .all(|seen| seen.version == "HTTP/1.1"));
}

/// A response head (status line and headers) of about `bytes` bytes.
fn head_of(bytes: usize) -> String {
    "h".repeat(bytes)
}

#[tokio::test]
async fn a_response_head_past_the_silent_read_buffer_fails_the_copy_clearly_and_no_primary() {
    let upstream = Upstream::with_handler(|call| async move {
        let padding = match call.seen.body["messages"][0]["content"].as_str() {
            Some("fits") => head_of(3_000),
            _ => head_of(6_000),
        };
        raw(
            200,
            "application/json",
            &[("x-padding", &padding)],
            completion("hello").to_string(),
        )
    })
    .await;
    let params = deployment("openai/gpt-4o-mini", &upstream.base());
    // The direct client is the one with the small buffer (behind a proxy, reqwest keeps its own).
    let (_, client) = clients().into_iter().next().unwrap();
    let openai = OpenAi::new(client);
    let (_, silent) = primary_and_silent("fits", false);
    assert!(openai
        .chat(&params, &silent)
        .await
        .unwrap()
        .text()
        .is_some());
    let (primary, silent) = primary_and_silent("too large", false);
    assert!(openai
        .chat(&params, &primary)
        .await
        .unwrap()
        .text()
        .is_some());
    let err = openai.chat(&params, &silent).await.unwrap_err();
    let said = chain(&err);
    assert!(said.contains("error sending request"), "{said}");
    assert!(said.contains("too large"), "{said}");
}
