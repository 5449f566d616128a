//! What the HTTP sinks share: a client, error mapping that keeps credentials out of messages.

use std::time::Duration;

use reqwest::{Response, Url};

use crate::SinkError;

/// The most of a response body an error message quotes.
const BODY_QUOTE_CHARS: usize = 512;

/// An HTTP client with a whole-request timeout.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, SinkError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|err| SinkError::config(format!("cannot build the HTTP client: {err}")))
}

/// Parses a base URL given in configuration.
pub(crate) fn parse_url(what: &str, raw: &str) -> Result<Url, SinkError> {
    let url = Url::parse(raw).map_err(|err| {
        // The raw value may hold credentials; name the setting, not the value.
        SinkError::config(format!("{what} is not a valid URL: {err}"))
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(SinkError::config(format!(
            "{what} must be an http or https URL"
        )));
    }
    Ok(url)
}

/// The URL as errors and logs may show it: no user, password, query or fragment.
pub(crate) fn display_endpoint(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// Maps a transport error, without the URL reqwest would print.
pub(crate) fn transport(endpoint: &str, err: reqwest::Error) -> SinkError {
    SinkError::Transport {
        endpoint: endpoint.to_owned(),
        source: Box::new(err.without_url()),
    }
}

/// Passes a success through; turns any other status into [`SinkError::Status`] with the start of
/// the body.
pub(crate) async fn check_status(
    endpoint: &str,
    response: Response,
) -> Result<Response, SinkError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(SinkError::Status {
        endpoint: endpoint.to_owned(),
        status: status.as_u16(),
        body: quote(&body),
    })
}

/// The start of a body, on one line.
pub(crate) fn quote(body: &str) -> String {
    let mut quoted: String = body
        .chars()
        .take(BODY_QUOTE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.chars().nth(BODY_QUOTE_CHARS).is_some() {
        quoted.push('…');
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_lose_credentials() {
        let url = Url::parse("https://user:pass@langfuse.example:8443/api?token=abc#x").unwrap();
        assert_eq!(display_endpoint(&url), "https://langfuse.example:8443/api");
        let err = parse_url("LANGFUSE_HOST", "ftp://secret@host").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
