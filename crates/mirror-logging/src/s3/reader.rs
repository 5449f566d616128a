//! `S3Reader`: lists and reads back what the S3 sink (or LiteLLM's S3 logger) wrote, with the same
//! parameters, URLs and SigV4 signing as the sink.

use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, Url};
use serde::Deserialize;

use super::client::S3Client;
use super::S3Config;
use crate::{http, SinkError};

/// Keys per ListObjectsV2 page unless [`S3Reader::with_page_size`] says otherwise (S3's maximum).
const DEFAULT_PAGE_SIZE: u32 = 1000;
/// Attempts per request when the failure is retryable (network errors, 408, 429, 5xx).
const ATTEMPTS: u32 = 3;
/// The wait before the first retry; it doubles after each.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait for the next bytes of an answer.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a listing or a read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3ReadError {
    /// The configuration is unusable, or a request could not be signed, did not get through, or
    /// was refused (the same errors as the sink's; 404 for a missing object).
    #[error(transparent)]
    Request(#[from] SinkError),
    /// The answer to a listing is not a ListObjectsV2 result.
    #[error("`{endpoint}` answered a listing that cannot be read: {message}")]
    Listing {
        /// Scheme, host, port and path of the bucket, without credentials or query.
        endpoint: String,
        /// What is wrong with it.
        message: String,
    },
}

impl S3ReadError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            S3ReadError::Request(err) => err.is_retryable(),
            S3ReadError::Listing { .. } => false,
        }
    }

    /// The HTTP status the server refused the request with, if it did (404: no such object).
    pub fn status(&self) -> Option<u16> {
        match self {
            S3ReadError::Request(SinkError::Status { status, .. }) => Some(*status),
            S3ReadError::Request(_) | S3ReadError::Listing { .. } => None,
        }
    }
}

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The object's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, as the server wrote it (ISO 8601).
    pub last_modified: Option<String>,
    /// Its entity tag, quotes included.
    pub etag: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListPage {
    /// The objects of this page, in key order (UTF-8 binary order).
    pub objects: Vec<ObjectInfo>,
    /// The continuation token for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Lists and reads objects in the bucket of an [`S3Config`], signed with SigV4 as the
/// [`S3Sink`](crate::S3Sink) signs its PUTs.
///
/// Listings use ListObjectsV2 and follow continuation tokens; keys come in UTF-8 binary order,
/// which for the sink's layout (`{s3_path/}{YYYY-MM-DD}/[HH/]time-HH-MM-SS-ffffff_{id}.json`) is the
/// order of the calls' start times. Requests that fail with a retryable error (network errors, 408,
/// 429, 5xx) are tried up to 3 times.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use mirror_logging::{S3Config, S3Reader};
/// let reader = S3Reader::new(S3Config::new("mirror-logs").with_env_defaults())?;
/// for object in reader.list("litellm-logs/2025-01-16/").await? {
///     let body = reader.get(&object.key).await?;
///     println!("{} ({} bytes)", object.key, body.len());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct S3Reader {
    client: S3Client,
    page_size: u32,
}

impl S3Reader {
    /// A reader for the bucket of `config`. Call [`S3Config::with_env_defaults`] first to read
    /// `AWS_*` variables. Only the bucket, region, endpoint, credentials and addressing style are
    /// used; `s3_path` is not applied: [`S3Reader::list`] takes whole key prefixes.
    ///
    /// # Errors
    ///
    /// [`S3ReadError::Request`] with [`SinkError::Config`] when the bucket or the credentials are
    /// missing, or the endpoint is not an http(s) URL.
    pub fn new(config: S3Config) -> Result<Self, S3ReadError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(|err| SinkError::config(format!("cannot build the HTTP client: {err}")))?;
        Ok(S3Reader {
            client: S3Client::new(&config, http)?,
            page_size: DEFAULT_PAGE_SIZE,
        })
    }

    /// At most `keys` keys per listing request (1 to 1000; default 1000).
    #[must_use]
    pub fn with_page_size(mut self, keys: u32) -> Self {
        self.page_size = keys.clamp(1, DEFAULT_PAGE_SIZE);
        self
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        self.client.bucket()
    }

    /// Every object whose key starts with `prefix` (`""`: the whole bucket), in key order, following
    /// continuation tokens. The list is held in memory; use [`S3Reader::list_page`] to go page by
    /// page.
    ///
    /// # Errors
    ///
    /// As [`S3Reader::list_page`].
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, S3ReadError> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.list_page(prefix, token.as_deref()).await?;
            objects.extend(page.objects);
            match page.next {
                Some(next) => token = Some(next),
                None => return Ok(objects),
            }
        }
    }

    /// One page of the objects whose key starts with `prefix`: the first with `continuation: None`,
    /// then the one after the page whose [`ListPage::next`] is `continuation`.
    ///
    /// # Errors
    ///
    /// [`S3ReadError::Request`] when the request fails or is refused (404 for a missing bucket, 403
    /// for a wrong key or signature), [`S3ReadError::Listing`] when the answer cannot be read, or
    /// says it is truncated without a continuation token.
    pub async fn list_page(
        &self,
        prefix: &str,
        continuation: Option<&str>,
    ) -> Result<ListPage, S3ReadError> {
        let page_size = self.page_size.to_string();
        let mut query = vec![("list-type", "2"), ("max-keys", page_size.as_str())];
        if !prefix.is_empty() {
            query.push(("prefix", prefix));
        }
        if let Some(token) = continuation {
            query.push(("continuation-token", token));
        }
        let url = self.client.bucket_url(&query)?;
        let body = self.request_bytes(&url).await?;
        let endpoint = http::display_endpoint(&url);
        let listing_error = |message: String| S3ReadError::Listing {
            endpoint: endpoint.clone(),
            message,
        };
        let text =
            std::str::from_utf8(&body).map_err(|err| listing_error(format!("not UTF-8: {err}")))?;
        let result: ListBucketResult =
            quick_xml::de::from_str(text).map_err(|err| listing_error(err.to_string()))?;
        let next = match (result.is_truncated, result.next_continuation_token) {
            (Some(true), Some(token)) if !token.is_empty() => Some(token),
            (Some(true), _) => {
                return Err(listing_error(
                    "it is truncated but has no NextContinuationToken".to_owned(),
                ))
            }
            _ => None,
        };
        let objects = result
            .contents
            .into_iter()
            .map(|c| ObjectInfo {
                key: c.key,
                size: c.size.unwrap_or(0),
                last_modified: c.last_modified,
                etag: c.e_tag,
            })
            .collect();
        Ok(ListPage { objects, next })
    }

    /// The whole body of the object `key`.
    ///
    /// # Errors
    ///
    /// [`S3ReadError::Request`] when the request fails or is refused ([`S3ReadError::status`] is
    /// `Some(404)` for a missing object).
    pub async fn get(&self, key: &str) -> Result<Bytes, S3ReadError> {
        let url = self.client.object_url(key)?;
        self.request_bytes(&url).await
    }

    /// The body of the object `key`, chunk by chunk as it arrives, so a large object never has to
    /// fit in memory. Only opening it is retried.
    ///
    /// # Errors
    ///
    /// As [`S3Reader::get`].
    pub async fn get_stream(&self, key: &str) -> Result<ObjectStream, S3ReadError> {
        let url = self.client.object_url(key)?;
        let endpoint = http::display_endpoint(&url);
        let response = self.retrying(&url).await?;
        Ok(ObjectStream { response, endpoint })
    }

    /// A signed GET of `url`, retried, read whole.
    async fn request_bytes(&self, url: &Url) -> Result<Bytes, S3ReadError> {
        let endpoint = http::display_endpoint(url);
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let result = match self.send(url).await {
                Ok(response) => response
                    .bytes()
                    .await
                    .map_err(|err| http::transport(&endpoint, err)),
                Err(err) => Err(err),
            };
            match result {
                Ok(body) => return Ok(body),
                Err(err) if err.is_retryable() && attempt < ATTEMPTS => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// A signed GET of `url` up to the response headers, retried.
    async fn retrying(&self, url: &Url) -> Result<reqwest::Response, S3ReadError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.send(url).await {
                Ok(response) => return Ok(response),
                Err(err) if err.is_retryable() && attempt < ATTEMPTS => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// One signed GET of `url`; a status other than 2xx is an error.
    async fn send(&self, url: &Url) -> Result<reqwest::Response, SinkError> {
        let endpoint = http::display_endpoint(url);
        let signed = self.client.sign("GET", url, &[], b"")?;
        let mut request = self.client.http().request(Method::GET, url.clone());
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|err| http::transport(&endpoint, err))?;
        http::check_status(&endpoint, response).await
    }
}

/// The body of an object, read chunk by chunk ([`S3Reader::get_stream`]).
#[derive(Debug)]
pub struct ObjectStream {
    response: reqwest::Response,
    endpoint: String,
}

impl ObjectStream {
    /// The next chunk of the body; `None` at its end.
    ///
    /// # Errors
    ///
    /// [`S3ReadError::Request`] with [`SinkError::Transport`] when the connection fails or stalls
    /// (60 s without data).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, S3ReadError> {
        self.response
            .chunk()
            .await
            .map_err(|err| http::transport(&self.endpoint, err).into())
    }

    /// The body's length, when the server said it.
    pub fn content_length(&self) -> Option<u64> {
        self.response.content_length()
    }
}

/// The part of a ListObjectsV2 answer that is read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListBucketResult {
    #[serde(default)]
    is_truncated: Option<bool>,
    #[serde(default)]
    next_continuation_token: Option<String>,
    #[serde(default)]
    contents: Vec<Contents>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Contents {
    key: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    last_modified: Option<String>,
    #[serde(default, rename = "ETag")]
    e_tag: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_parse_with_escapes_and_continuation() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>logs</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>p/a &amp; b.json</Key><LastModified>2025-01-16T11:28:54.000Z</LastModified>
    <ETag>&quot;abc&quot;</ETag><Size>12</Size><StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>p/c.jsonl</Key><Size>3</Size></Contents>
  <NextContinuationToken>1/a+b=</NextContinuationToken>
</ListBucketResult>"#;
        let result: ListBucketResult = quick_xml::de::from_str(xml).unwrap();
        assert_eq!(result.is_truncated, Some(true));
        assert_eq!(result.next_continuation_token.as_deref(), Some("1/a+b="));
        assert_eq!(result.contents.len(), 2);
        assert_eq!(result.contents[0].key, "p/a & b.json");
        assert_eq!(result.contents[0].size, Some(12));
        assert_eq!(result.contents[0].e_tag.as_deref(), Some("\"abc\""));
        assert_eq!(result.contents[1].key, "p/c.jsonl");

        let empty: ListBucketResult = quick_xml::de::from_str(
            "<ListBucketResult><Name>logs</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>",
        )
        .unwrap();
        assert!(empty.contents.is_empty());
        assert_eq!(empty.is_truncated, Some(false));
    }

    #[test]
    fn bucket_urls_encode_the_query_canonically() {
        let mut config = S3Config::new("logs");
        config.s3_endpoint_url = Some("http://127.0.0.1:9000/".into());
        config.s3_aws_access_key_id = Some("AKID".into());
        config.s3_aws_secret_access_key = Some(mirror_core::SecretString::new("secret"));
        let reader = S3Reader::new(config.clone()).unwrap();
        let url = reader
            .client
            .bucket_url(&[
                ("list-type", "2"),
                ("prefix", "a b/c+d"),
                ("continuation-token", "x/y="),
            ])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9000/logs?list-type=2&prefix=a%20b%2Fc%2Bd&continuation-token=x%2Fy%3D"
        );
        config.s3_use_virtual_hosted_style = Some(true);
        config.s3_endpoint_url = Some("https://minio.example:9000".into());
        let reader = S3Reader::new(config).unwrap();
        assert_eq!(
            reader
                .client
                .bucket_url(&[("list-type", "2")])
                .unwrap()
                .as_str(),
            "https://logs.minio.example:9000/?list-type=2"
        );
    }
}
