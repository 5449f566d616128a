//! Which HTTP version reaches an upstream, per deployment (`http2: auto | always | never`), and that
//! concurrent calls over HTTP/2 share a connection: against an in-process upstream over TLS (the
//! test certificate authority) or plain h2c, which records the version and connection of each request.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use futures::StreamExt as _;
use mirror_core::{CallMeta, ChatRequest, Http2};
use mirror_providers::{HttpClient, OpenAi, Provider};
use mirror_test_support::upstream::{tls::CA_PEM, Serving};

use crate::support::{completion, deployment, hello, json, request, Upstream};

/// How many calls run at once in the sharing tests.
const CONCURRENT: usize = 48;

const H2_AND_HTTP1: &[&[u8]] = &[b"h2", b"http/1.1"];

/// How long a primary call may take while silent copies are held: generous, since it only has to
/// tell "answered" from "queued behind the held copies forever".
const PRIMARY_DEADLINE: Duration = Duration::from_secs(10);

fn tls(alpn: &[&'static [u8]]) -> Serving {
    Serving::Tls(alpn.to_vec())
}

/// The direct client and the reqwest one (used behind a proxy), both trusting the test CA.
fn clients() -> [(&'static str, HttpClient); 2] {
    [
        (
            "direct",
            HttpClient::direct_trusting(CA_PEM.as_bytes()).unwrap(),
        ),
        (
            "reqwest",
            HttpClient::reqwest_trusting(CA_PEM.as_bytes()).unwrap(),
        ),
    ]
}

/// Sends `CONCURRENT` chat calls at once with `http2`, all of which must succeed; returns the
/// versions the upstream saw and how many connections carried them.
async fn concurrent_calls(
    client: &HttpClient,
    upstream: &Upstream,
    http2: Option<Http2>,
) -> (HashSet<String>, usize) {
    let openai = OpenAi::new(client.clone());
    let mut params = deployment("openai/gpt-4o-mini", &upstream.base());
    params.http2 = http2;
    let request = hello();
    let calls = (0..CONCURRENT).map(|_| openai.chat(&params, &request));
    for result in join_all(calls).await {
        let response = result.unwrap();
        assert!(response.text().is_some_and(|text| text.contains("hello")));
    }
    let seen = upstream.requests();
    assert_eq!(seen.len(), CONCURRENT);
    let versions = seen.iter().map(|seen| seen.version.clone()).collect();
    let connections = seen
        .iter()
        .map(|seen| {
            seen.peer
                .expect("the upstream knows each request's connection")
        })
        .collect::<HashSet<_>>()
        .len();
    (versions, connections)
}

fn only(version: &str) -> HashSet<String> {
    HashSet::from([version.to_owned()])
}

#[tokio::test]
async fn auto_negotiates_http2_over_tls_and_concurrent_calls_share_a_connection() {
    for (name, client) in clients() {
        let upstream = Upstream::serving("tls-h2", tls(H2_AND_HTTP1)).await;
        assert!(upstream.url().starts_with("https://"));
        let (versions, connections) = concurrent_calls(&client, &upstream, None).await;
        assert_eq!(versions, only("HTTP/2.0"), "{name}");
        // Concurrent first calls may race to connect; one connection wins and carries them all
        // (the losers are closed before a request). Never one connection per call.
        assert!(connections <= 2, "{name}: {connections} connections");
    }
}

#[tokio::test]
async fn auto_speaks_http1_to_a_tls_server_that_offers_only_http1() {
    for (name, client) in clients() {
        let upstream = Upstream::serving("tls-h1", tls(&[b"http/1.1"])).await;
        let (versions, _) = concurrent_calls(&client, &upstream, Some(Http2::Auto)).await;
        assert_eq!(versions, only("HTTP/1.1"), "{name}");
    }
}

#[tokio::test]
async fn never_speaks_http1_even_where_http2_is_offered() {
    for (name, client) in clients() {
        let upstream = Upstream::serving("tls-h2", tls(H2_AND_HTTP1)).await;
        let (versions, _) = concurrent_calls(&client, &upstream, Some(Http2::Never)).await;
        assert_eq!(versions, only("HTTP/1.1"), "{name}");
    }
}

#[tokio::test]
async fn always_speaks_http2_over_tls_and_fails_clearly_where_it_is_not_offered() {
    for (name, client) in clients() {
        let upstream = Upstream::serving("tls-h2", tls(H2_AND_HTTP1)).await;
        let (versions, connections) =
            concurrent_calls(&client, &upstream, Some(Http2::Always)).await;
        assert_eq!(versions, only("HTTP/2.0"), "{name}");
        assert!(connections <= 2, "{name}: {connections} connections");

        let upstream = Upstream::serving("tls-h1", tls(&[b"http/1.1"])).await;
        let mut params = deployment("openai/gpt-4o-mini", &upstream.base());
        params.http2 = Some(Http2::Always);
        let err = OpenAi::new(client.clone())
            .chat(&params, &hello())
            .await
            .unwrap_err();
        assert!(
            matches!(err, mirror_providers::ProviderError::Transport { .. }),
            "{name}: {err:?}"
        );
        assert_eq!(upstream.count(), 0, "{name}");
    }
}

#[tokio::test]
async fn always_on_plain_http_is_h2c_with_prior_knowledge() {
    for (name, client) in clients() {
        let upstream = Upstream::serving("h2c", Serving::H2c).await;
        assert!(upstream.url().starts_with("http://"));
        let (versions, connections) =
            concurrent_calls(&client, &upstream, Some(Http2::Always)).await;
        assert_eq!(versions, only("HTTP/2.0"), "{name}");
        assert!(connections <= 2, "{name}: {connections} connections");
    }
    // `auto` on plain `http://` stays HTTP/1.1 (no upgrade dance), even to a server that speaks h2c.
    let upstream = Upstream::serving("h2c", Serving::H2c).await;
    let (versions, _) = concurrent_calls(&clients()[0].1, &upstream, None).await;
    assert_eq!(versions, only("HTTP/1.1"));
}

#[tokio::test]
async fn a_stream_over_http2_arrives_whole() {
    let upstream = Upstream::serving("tls-h2", tls(H2_AND_HTTP1)).await;
    let (_, client) = clients().into_iter().next().unwrap();
    let params = deployment("openai/gpt-4o-mini", &upstream.base());
    let request = request(serde_json::json!({
        "model": "gpt-group",
        "messages": [{"role": "user", "content": "Hello"}],
        "stream": true,
    }));
    let stream = OpenAi::new(client)
        .chat_stream(&params, &request)
        .await
        .unwrap();
    let chunks: Vec<_> = stream.collect().await;
    let text: String = chunks
        .into_iter()
        .map(|chunk| chunk.unwrap())
        .filter_map(|chunk| chunk.choices.first()?.delta.as_ref()?.content.clone())
        .collect();
    assert!(text.contains("hello from tls-h2"), "{text}");
    assert_eq!(upstream.only_request().version, "HTTP/2.0");
}

/// How many silent copies the isolation test holds open: more than the upstream's stream limit.
const HELD: usize = 8;

/// The isolation test upstream's `SETTINGS_MAX_CONCURRENT_STREAMS`.
const STREAMS: u32 = 4;

/// A chat request saying `text`, and its silent copy (the copy point's marker in its metadata).
fn primary_and_silent(text: &str) -> (ChatRequest, ChatRequest) {
    let primary = request(serde_json::json!({
        "model": "gpt-group",
        "messages": [{"role": "user", "content": text}],
    }));
    let meta = CallMeta::for_request("gpt-group", None);
    let silent = primary.to_mirror(&meta, "shadow-group").request;
    (primary, silent)
}

/// The connection (client address) and version of each request, by its first message's text.
fn seen_with(upstream: &Upstream, text: &str) -> Vec<(std::net::SocketAddr, String)> {
    upstream
        .requests()
        .into_iter()
        .filter(|seen| seen.body["messages"][0]["content"] == text)
        .map(|seen| (seen.peer.unwrap(), seen.version))
        .collect()
}

#[tokio::test]
async fn primary_and_silent_calls_never_share_a_connection() {
    for http2 in [Http2::Auto, Http2::Always, Http2::Never] {
        for (name, client) in clients() {
            let upstream = Upstream::serving("tls-h2", tls(H2_AND_HTTP1)).await;
            let openai = OpenAi::new(client);
            let mut params = deployment("openai/gpt-4o-mini", &upstream.base());
            params.http2 = Some(http2);
            let (primary, _) = primary_and_silent("primary");
            let (_, silent) = primary_and_silent("silent");
            // One after the other, so that a shared pool would hand the second call the first's
            // idle connection.
            for request in [&primary, &silent, &primary, &silent] {
                openai.chat(&params, request).await.unwrap();
            }
            let primaries: HashSet<_> = seen_with(&upstream, "primary")
                .into_iter()
                .map(|(peer, _)| peer)
                .collect();
            let silents: HashSet<_> = seen_with(&upstream, "silent")
                .into_iter()
                .map(|(peer, _)| peer)
                .collect();
            // (An HTTP/1.1 connection may not be back in its pool yet when the next call starts, so
            // a lane may use more than one.)
            assert!(
                !primaries.is_empty() && !silents.is_empty(),
                "{name} {http2:?}"
            );
            assert!(primaries.is_disjoint(&silents), "{name} {http2:?}");
        }
    }
}

#[tokio::test]
async fn auto_sends_silent_copies_over_http1_and_primary_calls_over_http2() {
    for (name, client) in clients() {
        let upstream = Upstream::serving("tls-h2", tls(H2_AND_HTTP1)).await;
        let openai = OpenAi::new(client);
        let params = deployment("openai/gpt-4o-mini", &upstream.base());
        let (primary, _) = primary_and_silent("primary");
        let (_, silent) = primary_and_silent("silent");
        openai.chat(&params, &primary).await.unwrap();
        openai.chat(&params, &silent).await.unwrap();
        let version = |text| {
            let seen = seen_with(&upstream, text);
            assert_eq!(seen.len(), 1, "{name}: {seen:?}");
            seen[0].1.clone()
        };
        assert_eq!(version("primary"), "HTTP/2.0", "{name}");
        assert_eq!(version("silent"), "HTTP/1.1", "{name}");
    }
    // `always` still forces HTTP/2 on the silent lane.
    for (name, client) in clients() {
        let upstream = Upstream::serving("tls-h2", tls(H2_AND_HTTP1)).await;
        let mut params = deployment("openai/gpt-4o-mini", &upstream.base());
        params.http2 = Some(Http2::Always);
        let (_, silent) = primary_and_silent("silent");
        OpenAi::new(client).chat(&params, &silent).await.unwrap();
        assert_eq!(upstream.only_request().version, "HTTP/2.0", "{name}");
    }
}

/// The isolation promise at the connection level: silent copies that fill an HTTP/2 connection's
/// streams (held open by the upstream until the end) never hold up a primary call to the same
/// host, since the primary never queues on their connection.
#[tokio::test]
async fn a_primary_call_completes_while_silent_copies_hold_more_streams_than_the_host_allows() {
    for (name, client) in clients() {
        let upstream = Upstream::serving_with_handler(
            Serving::TlsWithStreams(H2_AND_HTTP1.to_vec(), STREAMS),
            |mut call| async move {
                if call.body["messages"][0]["content"] == "silent" {
                    call.released().await;
                }
                json(200, completion("hello"))
            },
        )
        .await;
        let openai = Arc::new(OpenAi::new(client));
        let params = deployment("openai/gpt-4o-mini", &upstream.base());
        let (primary, _) = primary_and_silent("primary");
        let (_, silent_copy) = primary_and_silent("silent");
        // A first call opens the primary's connection and learns the stream limit (a fresh
        // connection's first requests may race the server's settings and be refused).
        openai.chat(&params, &primary).await.unwrap();
        let held: Vec<_> = (0..HELD)
            .map(|_| {
                let (openai, params, silent) =
                    (Arc::clone(&openai), params.clone(), silent_copy.clone());
                tokio::spawn(async move { openai.chat(&params, &silent).await })
            })
            .collect();
        // At least as many silent calls as one HTTP/2 connection carries are held upstream.
        upstream.wait_for_requests(1 + STREAMS as usize).await;
        let answered = tokio::time::timeout(PRIMARY_DEADLINE, openai.chat(&params, &primary)).await;
        let answer = answered
            .unwrap_or_else(|_| panic!("{name}: the primary call waited behind silent copies"));
        assert!(answer.unwrap().text().is_some(), "{name}");
        // Every held copy reached the upstream at once: the silent lane is not capped by the
        // stream limit either.
        upstream
            .wait_until("every silent copy in flight at once", |seen| {
                seen.iter()
                    .filter(|seen| seen.body["messages"][0]["content"] == "silent")
                    .count()
                    == HELD
            })
            .await;
        upstream.release();
        for call in held {
            call.await.unwrap().unwrap();
        }
    }
}
