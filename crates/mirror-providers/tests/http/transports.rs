//! The two transports `HttpClient::new` chooses between: the direct client, and reqwest when the
//! environment names a proxy. Both must send the same requests.

use mirror_providers::{HttpClient, OpenAi, Provider};

use crate::support::{clients, completion, deployment, hello, json, Upstream, KEY};

/// The headers a transport adds on its own, for comparing them.
fn transport_headers(recorded: &crate::support::Seen) -> String {
    ["host", "accept", "content-length", "authorization"]
        .iter()
        .map(|name| format!("{name}: {:?}\n", recorded.header(name)))
        .collect()
}

#[tokio::test]
async fn both_transports_send_the_same_request() {
    let upstream = Upstream::with_handler(|_| async { json(200, completion("Hi")) }).await;
    let mut params = deployment("openai/gpt-4o-mini", &format!("{}/v1", upstream.url()));
    params.organization = Some("org-42".to_owned());
    for (_, client) in clients() {
        let response = OpenAi::new(client).chat(&params, &hello()).await.unwrap();
        assert_eq!(response.text().as_deref(), Some("Hi"));
    }
    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].render(), requests[1].render());
    assert_eq!(
        transport_headers(&requests[0]),
        transport_headers(&requests[1])
    );
    assert_eq!(requests[0].header("accept"), Some("*/*"));
}

#[tokio::test]
async fn credentials_in_api_base_become_basic_auth_on_both_transports() {
    let upstream = Upstream::with_handler(|_| async { json(200, completion("Hi")) }).await;
    let base = upstream.url().replace("http://", "http://user:p%40ss@");
    let mut params = deployment("openai/gpt-4o-mini", &format!("{base}/v1"));
    // Without a key, the URL's credentials are the only authorization.
    params.api_key = None;
    for (_, client) in clients() {
        let openai = OpenAi::new(client);
        openai.chat(&params, &hello()).await.unwrap();
    }
    for recorded in upstream.requests() {
        // `user:p@ss`, percent-decoded as reqwest does.
        assert_eq!(recorded.header("authorization"), Some("Basic dXNlcjpwQHNz"));
        assert_eq!(recorded.path, "/v1/chat/completions");
        assert!(!recorded.header("host").unwrap_or_default().contains('@'));
    }
}

#[tokio::test]
async fn the_reqwest_transport_sends_through_a_proxy() {
    // The "proxy" answers itself; what matters is that the request reached it, in absolute form,
    // for a host that does not exist.
    let proxy = Upstream::with_handler(|_| async { json(200, completion("via proxy")) }).await;
    let client = HttpClient::reqwest(Some(proxy.url())).unwrap();
    let params = deployment("openai/gpt-4o-mini", "http://upstream.invalid:9/v1");
    let response = OpenAi::new(client).chat(&params, &hello()).await.unwrap();
    assert_eq!(response.text().as_deref(), Some("via proxy"));
    let recorded = proxy.only_request();
    assert_eq!(recorded.header("host"), Some("upstream.invalid:9"));
    assert_eq!(recorded.path, "/v1/chat/completions");
    assert_eq!(
        recorded.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
}

#[test]
fn debug_shows_the_transport_and_no_proxy_credentials() {
    let client = HttpClient::reqwest(Some("http://user:SECRET-proxy-pw@127.0.0.1:3128")).unwrap();
    assert_eq!(
        format!("{client:?}"),
        r#"HttpClient { transport: "reqwest" }"#
    );
    assert_eq!(
        format!("{:?}", HttpClient::direct().unwrap()),
        r#"HttpClient { transport: "direct" }"#
    );
}
