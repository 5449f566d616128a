//! Tests of `http.rs`.

use expect_test::{expect, Expect};

use super::*;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_static(value));
    }
    map
}

#[track_caller]
fn check_retry_after(pairs: &[(&'static str, &'static str)], expected: Option<Duration>) {
    assert_eq!(retry_after(&headers(pairs)), expected, "{pairs:?}");
}

#[test]
fn retry_after_values() {
    let ms = Duration::from_millis;
    check_retry_after(&[], None);
    check_retry_after(&[("retry-after", "2")], Some(ms(2000)));
    check_retry_after(&[("retry-after", " 2 ")], Some(ms(2000)));
    check_retry_after(&[("retry-after", "0.5")], Some(ms(500)));
    check_retry_after(&[("retry-after", "0")], Some(ms(0)));
    check_retry_after(&[("retry-after-ms", "1500")], Some(ms(1500)));
    check_retry_after(
        &[("retry-after-ms", "20"), ("retry-after", "2")],
        Some(ms(20)),
    );
    // Unusable values are ignored, never panicked on.
    check_retry_after(&[("retry-after", "-1")], None);
    check_retry_after(&[("retry-after", "NaN")], None);
    check_retry_after(&[("retry-after", "inf")], None);
    check_retry_after(&[("retry-after", "1e300")], None);
    check_retry_after(&[("retry-after-ms", "1e300")], None);
    check_retry_after(&[("retry-after", "soon")], None);
    // An HTTP date is not read (FIXME: OpenAI and Azure send seconds; proxies may send dates).
    check_retry_after(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")], None);
    // An unusable `retry-after-ms` falls back to `retry-after`.
    check_retry_after(
        &[("retry-after-ms", "x"), ("retry-after", "3")],
        Some(ms(3000)),
    );
}

#[track_caller]
fn check_error(status: u16, body: &str, expect: Expect) {
    let err = error_from_response(status, &headers(&[("retry-after", "1")]), body.as_bytes());
    expect.assert_eq(&format!(
        "{} {:?} retry_after={:?}: {err}",
        err.class(),
        err.status(),
        err.retry_after()
    ));
}

#[test]
fn error_kinds() {
    check_error(
        400,
        r#"{"error":{"message":"Too long","code":"context_length_exceeded"}}"#,
        expect![
            "context_window_exceeded Some(400) retry_after=None: context window exceeded: Too long"
        ],
    );
    check_error(
        400,
        r#"{"error":{"message":"This model's MAXIMUM CONTEXT LENGTH is 8192 tokens","code":null}}"#,
        expect!["context_window_exceeded Some(400) retry_after=None: context window exceeded: This model's MAXIMUM CONTEXT LENGTH is 8192 tokens"],
    );
    check_error(
        400,
        r#"{"error":{"message":"Your request was rejected by the safety system","code":"content_policy_violation"}}"#,
        expect!["content_policy Some(400) retry_after=None: content policy violation: Your request was rejected by the safety system"],
    );
    check_error(
        400,
        r#"{"error":{"message":"Bad","code":400}}"#,
        expect!["bad_request Some(400) retry_after=None: bad request (400): Bad"],
    );
    check_error(
        409,
        r#"{"error":{"message":"Conflict"}}"#,
        expect!["bad_request Some(409) retry_after=None: bad request (409): Conflict"],
    );
    // FIXME: the upstream's own timeout is unknown, so a 408 reads "timed out after 0ms".
    check_error(
        408,
        "",
        expect!["timeout None retry_after=None: timed out after 0ms"],
    );
    check_error(
        429,
        r#"{"error":{"message":"Quota","type":"insufficient_quota","code":null}}"#,
        expect!["quota_exhausted Some(429) retry_after=None: quota exhausted: Quota"],
    );
    check_error(
        429,
        r#"{"error":{"message":"Slow down","code":"rate_limit_exceeded"}}"#,
        expect!["rate_limited Some(429) retry_after=Some(1s): rate limited: Slow down"],
    );
    check_error(
        529,
        "overloaded",
        expect!["upstream Some(529) retry_after=Some(1s): upstream error (529): overloaded"],
    );
    check_error(503, "", expect!["upstream Some(503) retry_after=Some(1s): upstream error (503): HTTP 503 with an empty body"]);
    check_error(
        500,
        r#"{"error":{"message":"","code":"server_error"}}"#,
        expect![[
            r#"upstream Some(500) retry_after=Some(1s): upstream error (500): {"error":{"message":"","code":"server_error"}}"#
        ]],
    );
}

#[test]
fn a_long_body_is_cut_to_an_excerpt() {
    let body = "é".repeat(1000);
    let err = error_from_response(502, &HeaderMap::new(), body.as_bytes());
    let ProviderError::Upstream { message, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!(message.chars().count(), EXCERPT_CHARS);
}

#[test]
fn public_base_drops_credentials_only() {
    assert_eq!(
        public_base("https://user:pw@example.com/v1"),
        "https://example.com/v1"
    );
    assert_eq!(
        public_base("https://user@example.com"),
        "https://example.com"
    );
    assert_eq!(public_base("https://example.com"), "https://example.com");
    assert_eq!(
        public_base("http://127.0.0.1:8000/v1/"),
        "http://127.0.0.1:8000/v1/"
    );
    assert_eq!(public_base("not a url"), "not a url");
}

#[test]
fn a_base_s_query_stays_a_query_after_the_joined_path() {
    let check = |base: &str, query: Option<&str>, expected: &str| {
        assert_eq!(
            join_url(base, "chat/completions", query),
            expected,
            "{base}"
        );
    };
    check("https://h/v1", None, "https://h/v1/chat/completions");
    check("https://h/v1/", None, "https://h/v1/chat/completions");
    check(
        "https://h/v1?code=k",
        None,
        "https://h/v1/chat/completions?code=k",
    );
    check(
        "https://h/v1/?code=k&x=1#frag",
        Some("api-version=1"),
        "https://h/v1/chat/completions?code=k&x=1&api-version=1",
    );
    check(
        "https://h?",
        Some("api-version=1"),
        "https://h/chat/completions?api-version=1",
    );
}

#[test]
fn public_base_redacts_query_values() {
    assert_eq!(
        public_base("https://h/v1?code=secret&flag&empty="),
        "https://h/v1?code=<redacted>&flag&empty="
    );
    assert_eq!(
        public_base("https://u:p@h/v1?code=secret"),
        "https://h/v1?code=<redacted>"
    );
    let secrets = Secrets::default().with_url("https://h/v1?code=query-secret-1&short=abc");
    assert_eq!(
        secrets.scrub("echo query-secret-1 abc"),
        "echo <redacted> abc"
    );
}

#[test]
fn secrets_come_from_sensitive_headers_only() {
    let mut map = HeaderMap::new();
    insert_header(&mut map, "authorization", "Bearer sk-abcdefgh123", true).unwrap();
    insert_header(&mut map, "api-key", "short", true).unwrap();
    insert_header(&mut map, "openai-organization", "org-123456789", false).unwrap();
    let secrets = Secrets::from_headers(&map);

    assert_eq!(
        secrets.scrub("key sk-abcdefgh123, org org-123456789, short"),
        "key <redacted>, org org-123456789, short"
    );
    assert!(matches!(secrets.scrub("nothing"), Cow::Borrowed(_)));
    assert_eq!(
        &*secrets.scrub_bytes(b"\xff sk-abcdefgh123"),
        "\u{fffd} <redacted>".as_bytes()
    );
    let err = secrets.scrub_error(ProviderError::MalformedResponse {
        message: "bad sk-abcdefgh123".to_owned(),
        excerpt: "{\"key\": \"sk-abcdefgh123\"}".to_owned(),
    });
    expect![[r#"malformed upstream response: bad <redacted>; body starts with "{\"key\": \"<redacted>\"}""#]]
    .assert_eq(&err.to_string());
}

/// A chunk and the upstream bytes it carries.
type Relayed = (ChatChunk, Option<Vec<u8>>);

/// Runs the SSE path over `pieces`, as a body would deliver them.
fn chunks_of(pieces: Vec<Vec<u8>>, limits: StreamLimits) -> Vec<Result<Relayed, String>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(
        bytes_to_chunks(
            futures::stream::iter(
                pieces
                    .into_iter()
                    .map(|piece| Ok(bytes::Bytes::from(piece))),
            ),
            limits,
            Secrets::default(),
        )
        .map(|item| {
            item.map(|chunk| {
                let raw = chunk.raw().map(|raw| raw.to_vec());
                (chunk.into_chunk(), raw)
            })
            .map_err(|err| err.to_string())
        })
        .collect(),
    )
}

/// `text` cut at `cuts`.
fn cut(text: &[u8], cuts: &[proptest::sample::Index]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|cut| cut.index(text.len() + 1)).collect();
    at.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for end in at.into_iter().chain([text.len()]) {
        pieces.push(text[start..end].to_vec());
        start = end;
    }
    pieces
}

#[test]
fn an_event_on_several_data_lines_is_parsed_but_not_relayed_as_is() {
    let stream = b"data: {\"id\": \"c\",\ndata: \"choices\": [{\"index\": 0, \"finish_reason\": \"stop\"}]}\n\n\
data: {\"id\":\"d\" , \"choices\":[]}\n\ndata: [DONE]\n\n";
    let items = chunks_of(vec![stream.to_vec()], LOOSE);
    let items: Vec<_> = items
        .into_iter()
        .map(|item| item.map(|(chunk, raw)| (chunk.id, raw.map(String::from_utf8))))
        .collect();
    assert_eq!(
        items,
        [
            // Written after one `data: `, its line break would cut the event.
            Ok(("c".to_owned(), None)),
            Ok((
                "d".to_owned(),
                Some(Ok(r#"{"id":"d" , "choices":[]}"#.to_owned()))
            )),
        ]
    );
}

const LOOSE: StreamLimits = StreamLimits {
    event: 1 << 20,
    stream: 1 << 24,
};

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    #[test]
    fn any_chunking_of_a_stream_gives_the_same_chunks(
        texts in proptest::collection::vec(".{0,16}", 1..6),
        crlf in proptest::prelude::any::<bool>(),
        done in proptest::prelude::any::<bool>(),
        cuts in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..12),
    ) {
        let end = if crlf { "\r\n" } else { "\n" };
        let mut stream = String::new();
        let mut sent = Vec::new();
        for (index, text) in texts.iter().enumerate() {
            let finish = if index + 1 == texts.len() { "\"stop\"" } else { "null" };
            let chunk = serde_json::json!({"id": "c", "choices": [
                {"index": 0, "delta": {"content": text}, "finish_reason": serde_json::from_str::<serde_json::Value>(finish).unwrap()},
            ]});
            // Spacing no serialiser writes: the relayed bytes are the ones sent.
            let chunk = chunk.to_string().replacen(':', " : ", 1);
            stream.push_str(&format!("data: {chunk}{end}{end}"));
            sent.push(Some(chunk.into_bytes()));
        }
        if done {
            stream.push_str(&format!("data: [DONE]{end}{end}"));
        }
        let whole = chunks_of(vec![stream.clone().into_bytes()], LOOSE);
        proptest::prop_assert_eq!(whole.len(), texts.len());
        proptest::prop_assert!(whole.iter().all(Result::is_ok), "{:?}", whole);
        let raws: Vec<_> = whole.iter().flatten().map(|(_, raw)| raw.clone()).collect();
        proptest::prop_assert_eq!(raws, sent);
        let pieces = cut(stream.as_bytes(), &cuts);
        proptest::prop_assert_eq!(chunks_of(pieces, LOOSE), whole);
    }

    #[test]
    fn any_bytes_end_in_at_most_one_error(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        cuts in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..8),
        small in proptest::prelude::any::<bool>(),
    ) {
        let limits = if small { StreamLimits { event: 16, stream: 256 } } else { LOOSE };
        let items = chunks_of(cut(&bytes, &cuts), limits);
        let errors = items.iter().filter(|item| item.is_err()).count();
        proptest::prop_assert!(errors <= 1);
        proptest::prop_assert!(errors == 0 || items.last().is_some_and(Result::is_err));
    }

    #[test]
    fn an_event_over_the_limit_is_always_refused(
        size in 17usize..200,
        cuts in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..8),
    ) {
        let event = format!("data: {}\n\n", "a".repeat(size));
        let items = chunks_of(cut(event.as_bytes(), &cuts), StreamLimits { event: 16, stream: 1024 });
        proptest::prop_assert_eq!(
            items.last().cloned(),
            Some(Err("upstream response too large: the stream event exceeds the limit of 16 bytes".to_owned()))
        );
    }
}
