//! The silent lane's HTTP/1.1 connections take what the primary's take: bodies larger than a read
//! buffer, plain and streamed, and response heads past hyper's initial 8 KiB read buffer. A smaller
//! buffer would save ~4 kB per copy in flight but cap a shadow's response head (hyper's
//! `read_buf_exact_size` is also the largest head it reads), failing every copy of a shadow behind a
//! proxy that adds large headers: not a trade a user comparing models would choose.

use futures::StreamExt as _;
use mirror_core::{CallMeta, ChatRequest, Http2};
use mirror_providers::{OpenAi, Provider};

use crate::support::{
    chain, chop, clients, completion, deployment, events, json, raw, request, sse, Ending, Upstream,
};

/// Larger than a connection's read buffer many times over.
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
                let chunk = item.unwrap().into_chunk();
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
async fn a_shadow_with_a_large_response_head_is_answered_as_a_primary_is() {
    let upstream = Upstream::with_handler(|call| async move {
        let padding = match call.seen.body["messages"][0]["content"].as_str() {
            Some("small") => head_of(1_000),
            _ => head_of(20_000),
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
    for (name, client) in clients() {
        let openai = OpenAi::new(client);
        for text in ["small", "large"] {
            let (primary, silent) = primary_and_silent(text, false);
            for (lane, request) in [("primary", &primary), ("silent", &silent)] {
                let answer = openai.chat(&params, request).await;
                let answer =
                    answer.unwrap_or_else(|err| panic!("{name} {lane} {text}: {}", chain(&err)));
                assert_eq!(
                    answer.text().as_deref(),
                    Some("hello"),
                    "{name} {lane} {text}"
                );
            }
        }
    }
}
