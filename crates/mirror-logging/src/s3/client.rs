//! What the S3 sink and the S3 reader share: the checked parameters, URLs and SigV4 signing.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use mirror_core::SecretString;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Url;

use super::S3Config;
use crate::{http, SinkError};

/// Characters left as they are in an object key: RFC 3986 unreserved ones and `/`, as Python's
/// `quote(key, safe="/")` leaves them.
const KEY_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Characters left as they are in a query parameter: RFC 3986 unreserved ones only (AWS's
/// `UriEncode`), so the query that is sent is already in the canonical form that is signed.
const QUERY_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A bucket on an S3 endpoint, with the credentials to sign requests to it.
#[derive(Debug)]
pub(crate) struct S3Client {
    http: reqwest::Client,
    /// The endpoint without a trailing slash, e.g. `http://127.0.0.1:9000`.
    endpoint: Url,
    bucket: String,
    region: String,
    access_key_id: String,
    secret_access_key: SecretString,
    session_token: Option<SecretString>,
    virtual_hosted: bool,
}

impl S3Client {
    /// Checks the bucket, credentials and endpoint of `config`; requests go through `http`.
    pub(crate) fn new(config: &S3Config, http: reqwest::Client) -> Result<Self, SinkError> {
        let bucket = config
            .s3_bucket_name
            .clone()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| SinkError::config("s3_bucket_name is required"))?;
        let region = config
            .s3_region_name
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".to_owned());
        let access_key_id = config
            .s3_aws_access_key_id
            .clone()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                SinkError::config("s3_aws_access_key_id (or AWS_ACCESS_KEY_ID) is required")
            })?;
        let secret_access_key = config
            .s3_aws_secret_access_key
            .clone()
            .filter(|k| !k.expose().is_empty())
            .ok_or_else(|| {
                SinkError::config("s3_aws_secret_access_key (or AWS_SECRET_ACCESS_KEY) is required")
            })?;
        let endpoint = match config.s3_endpoint_url.as_deref().filter(|e| !e.is_empty()) {
            Some(raw) => http::parse_url("s3_endpoint_url", raw.trim_end_matches('/'))?,
            None => http::parse_url(
                "the S3 endpoint",
                &format!("https://s3.{region}.amazonaws.com"),
            )?,
        };
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            return Err(SinkError::config(
                "s3_endpoint_url must not hold credentials; use s3_aws_access_key_id and s3_aws_secret_access_key",
            ));
        }
        Ok(S3Client {
            http,
            endpoint,
            bucket,
            region,
            access_key_id,
            secret_access_key,
            session_token: config.s3_aws_session_token.clone(),
            virtual_hosted: config.s3_use_virtual_hosted_style.unwrap_or(false),
        })
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The URL of an object; the key is percent-encoded once, and this exact URL is signed and sent.
    pub(crate) fn object_url(&self, key: &str) -> Result<Url, SinkError> {
        let encoded = utf8_percent_encode(key, KEY_ENCODE_SET).to_string();
        let mut url = self.endpoint.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        if self.virtual_hosted {
            let host = url
                .host_str()
                .ok_or_else(|| SinkError::config("the S3 endpoint has no host"))?;
            let host = format!("{}.{host}", self.bucket);
            url.set_host(Some(&host)).map_err(|err| {
                SinkError::config(format!("invalid virtual-hosted S3 host: {err}"))
            })?;
            url.set_path(&format!("{base_path}/{encoded}"));
        } else {
            let bucket = utf8_percent_encode(&self.bucket, KEY_ENCODE_SET);
            url.set_path(&format!("{base_path}/{bucket}/{encoded}"));
        }
        Ok(url)
    }

    /// The URL of the bucket itself (`{endpoint}/{bucket}`, or `https://{bucket}.{host}/`) with
    /// `query`, each name and value percent-encoded as AWS canonicalises them.
    pub(crate) fn bucket_url(&self, query: &[(&str, &str)]) -> Result<Url, SinkError> {
        let mut url = self.endpoint.clone();
        let base_path = url.path().trim_end_matches('/').to_owned();
        if self.virtual_hosted {
            let host = url
                .host_str()
                .ok_or_else(|| SinkError::config("the S3 endpoint has no host"))?;
            let host = format!("{}.{host}", self.bucket);
            url.set_host(Some(&host)).map_err(|err| {
                SinkError::config(format!("invalid virtual-hosted S3 host: {err}"))
            })?;
            url.set_path(&format!("{base_path}/"));
        } else {
            let bucket = utf8_percent_encode(&self.bucket, KEY_ENCODE_SET);
            url.set_path(&format!("{base_path}/{bucket}"));
        }
        let query: Vec<String> = query
            .iter()
            .map(|(name, value)| {
                format!(
                    "{}={}",
                    utf8_percent_encode(name, QUERY_ENCODE_SET),
                    utf8_percent_encode(value, QUERY_ENCODE_SET)
                )
            })
            .collect();
        url.set_query((!query.is_empty()).then(|| query.join("&")).as_deref());
        Ok(url)
    }

    /// The SigV4 headers for a `method` request with `body` to `url`, signing `headers` too
    /// (`authorization`, `x-amz-date`, `x-amz-content-sha256`, and `x-amz-security-token` with a
    /// session token).
    pub(crate) fn sign(
        &self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>, SinkError> {
        let sign_error =
            |err: Box<dyn std::error::Error + Send + Sync>| SinkError::Sign { source: err };
        let identity: Identity = Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.expose().to_owned(),
            self.session_token.as_ref().map(|t| t.expose().to_owned()),
            None,
            "mirror-s3-sink",
        )
        .into();
        let mut settings = SigningSettings::default();
        // S3 wants the path encoded once and not normalized: sign exactly the URL that is sent.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|err| sign_error(Box::new(err)))?
            .into();
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|err| sign_error(Box::new(err)))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|err| sign_error(Box::new(err)))?
            .into_parts();
        let (headers, _query) = instructions.into_parts();
        Ok(headers
            .into_iter()
            .map(|header| (header.name(), header.value().to_owned()))
            .collect())
    }
}
