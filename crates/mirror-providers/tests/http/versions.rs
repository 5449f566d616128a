//! Which HTTP version reaches an upstream, per deployment (`http2: auto | always | never`), and that
//! concurrent calls over HTTP/2 share a connection: against an in-process upstream over TLS (the
//! test certificate authority) or plain h2c, which records the version and connection of each request.

use std::collections::HashSet;

use futures::future::join_all;
use futures::StreamExt as _;
use mirror_core::Http2;
use mirror_providers::{HttpClient, OpenAi, Provider};
use mirror_test_support::upstream::{tls::CA_PEM, Serving};

use crate::support::{deployment, hello, request, Upstream};

/// How many calls run at once in the sharing tests.
const CONCURRENT: usize = 48;

const H2_AND_HTTP1: &[&[u8]] = &[b"h2", b"http/1.1"];

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
