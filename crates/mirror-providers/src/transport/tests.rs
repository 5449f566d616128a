//! Unit tests of the transport: proxy variables, client slots per lane and HTTP version, URIs and error causes.

use std::collections::HashMap;
use std::ffi::OsString;

use super::*;

#[track_caller]
fn check_choice(vars: &[(&str, &str)], expected: &Choice) {
    let vars: HashMap<&str, OsString> = vars
        .iter()
        .map(|(name, value)| (*name, OsString::from(value)))
        .collect();
    assert_eq!(
        &Choice::from_env(|name| vars.get(name).cloned()),
        expected,
        "{vars:?}"
    );
}

#[test]
fn a_proxy_variable_selects_reqwest() {
    let reqwest = Choice::Reqwest(Proxies::FromEnv);
    check_choice(&[], &Choice::Direct);
    for name in PROXY_VARIABLES {
        check_choice(&[(name, "http://proxy.internal:3128")], &reqwest);
        // An empty value is no proxy, as for reqwest.
        check_choice(&[(name, "")], &Choice::Direct);
    }
    // `NO_PROXY` alone changes nothing: there is no proxy to bypass.
    check_choice(
        &[("NO_PROXY", "localhost"), ("no_proxy", "*")],
        &Choice::Direct,
    );
    check_choice(
        &[("NO_PROXY", "localhost"), ("HTTPS_PROXY", "http://p:1")],
        &reqwest,
    );
}

#[test]
fn each_lane_and_setting_has_its_client_and_the_lanes_share_none() {
    let settings = [Http2::Auto, Http2::Always, Http2::Never];
    for (index, (lane, http2)) in SLOT_ROUTES.into_iter().enumerate() {
        assert_eq!(slot(lane, http2).0, index, "{lane:?} {http2:?}");
    }
    let slots = |lane| settings.map(|http2| slot(lane, http2).0);
    let silent = slots(Lane::Silent);
    assert!(slots(Lane::Primary)
        .iter()
        .all(|slot| !silent.contains(slot)));
    // The primary lane negotiates under `auto`; the silent lane speaks HTTP/1.1.
    let offers = |lane| settings.map(|http2| slot(lane, http2).1);
    assert_eq!(
        offers(Lane::Primary),
        [Offer::Negotiated, Offer::Http2, Offer::Http1]
    );
    assert_eq!(
        offers(Lane::Silent),
        [Offer::Http1, Offer::Http2, Offer::Http1]
    );
}

#[track_caller]
fn check_uri(url: &str, expected_uri: &str, expected_authorization: Option<&str>) {
    let mut headers = HeaderMap::new();
    let uri = request_uri(url.to_owned(), &mut headers).unwrap();
    assert_eq!(uri.to_string(), expected_uri);
    let authorization = headers.get(AUTHORIZATION);
    assert_eq!(
        authorization.and_then(|value| value.to_str().ok()),
        expected_authorization
    );
    assert!(authorization.is_none_or(HeaderValue::is_sensitive));
}

#[test]
fn request_uris() {
    check_uri(
        "https://api.openai.com/v1/chat/completions",
        "https://api.openai.com/v1/chat/completions",
        None,
    );
    check_uri(
        "http://127.0.0.1:8000/openai/deployments/d/chat/completions?api-version=2024-10-21",
        "http://127.0.0.1:8000/openai/deployments/d/chat/completions?api-version=2024-10-21",
        None,
    );
    // Credentials move to a basic `Authorization` header (percent-decoded first).
    check_uri(
        "http://user:p%40ss@127.0.0.1:8000/v1/chat/completions",
        "http://127.0.0.1:8000/v1/chat/completions",
        Some("Basic dXNlcjpwQHNz"),
    );
    check_uri(
        "http://user@example.com/v1",
        "http://example.com/v1",
        Some("Basic dXNlcjo="),
    );
    // What only a WHATWG parser takes.
    check_uri(
        "https://bücher.example/v1/chat/completions",
        "https://xn--bcher-kva.example/v1/chat/completions",
        None,
    );
}

#[test]
fn the_call_s_own_authorization_wins_over_url_credentials() {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer sk-1"));
    let uri = request_uri("http://u:p@example.com/v1".to_owned(), &mut headers).unwrap();
    assert_eq!(uri.to_string(), "http://example.com/v1");
    assert_eq!(headers[AUTHORIZATION], "Bearer sk-1");
}

#[track_caller]
fn check_bad_uri(url: &str, expected: &str) {
    let err = request_uri(url.to_owned(), &mut HeaderMap::new()).unwrap_err();
    // Each level once, as a reporter that prints the source chain shows it.
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    assert_eq!(chain, expected);
    assert!(matches!(err, ProviderError::Transport { .. }), "{err:?}");
}

#[test]
fn unusable_urls_are_builder_errors_without_the_url() {
    check_bad_uri(
        "not a url/chat/completions",
        "transport error: builder error: relative URL without a base",
    );
    check_bad_uri(
        "ftp://example.com/chat/completions",
        "transport error: builder error: URL scheme is not allowed",
    );
    check_bad_uri(
        "localhost:8000/v1/chat/completions",
        "transport error: builder error: URL scheme is not allowed",
    );
}
