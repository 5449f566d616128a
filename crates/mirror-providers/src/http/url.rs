//! Upstream URLs: an `api_base` joined with a path and query, and the base as it may be shown (without credentials).

use std::borrow::Cow;

/// `base` (an `api_base`, which may hold a query such as `?code=...`) joined with `path`, with
/// `query` added to the base's own: `https://h/v1?code=k` and `chat/completions` give
/// `https://h/v1/chat/completions?code=k`. A fragment is dropped: it is never sent.
pub(crate) fn join_url(base: &str, path: &str, query: Option<&str>) -> String {
    let base = base.split_once('#').map_or(base, |(base, _)| base);
    let (base_path, base_query) = match base.split_once('?') {
        Some((base_path, base_query)) => (base_path, Some(base_query).filter(|q| !q.is_empty())),
        None => (base, None),
    };
    let mut url = format!("{}/{path}", base_path.trim_end_matches('/'));
    let queries = [base_query, query];
    let mut separator = '?';
    for part in queries.into_iter().flatten() {
        url.push(separator);
        url.push_str(part);
        separator = '&';
    }
    url
}

/// The values of `url`'s query parameters.
pub(super) fn query_values(url: &str) -> impl Iterator<Item = &str> {
    let url = url.split_once('#').map_or(url, |(url, _)| url);
    url.split_once('?')
        .map_or("", |(_, query)| query)
        .split('&')
        .filter_map(|pair| pair.split_once('=').map(|(_, value)| value))
        .filter(|value| !value.is_empty())
}

/// A base URL as it may appear in records, logs and `mirror check`: without the `user:password@`
/// some configurations put in it, and with the values of its query redacted (`?code=<redacted>`:
/// some gateways take their key there). Other URLs are returned unchanged.
pub fn public_base(base: &str) -> String {
    // Most bases have neither; parsing would only cost time (this runs for the record of every
    // call).
    let base = if base.contains('@') {
        Cow::Owned(without_credentials(base))
    } else {
        Cow::Borrowed(base)
    };
    match base.split_once('?') {
        None => base.into_owned(),
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((query, fragment)) => (query, Some(fragment)),
                None => (query, None),
            };
            let redacted: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, value)) if !value.is_empty() => format!("{key}=<redacted>"),
                    _ => pair.to_owned(),
                })
                .collect();
            let mut public = format!("{path}?{}", redacted.join("&"));
            if let Some(fragment) = fragment {
                public.push('#');
                public.push_str(fragment);
            }
            public
        }
    }
}

fn without_credentials(base: &str) -> String {
    match reqwest::Url::parse(base) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            // Setting them cannot fail on a URL that had them.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            let public = url.to_string();
            if base.ends_with('/') || base.contains('?') {
                public
            } else {
                public.trim_end_matches('/').to_owned()
            }
        }
        _ => base.to_owned(),
    }
}
