//! How requests reach an upstream: hyper-util's pooled client straight over rustls, or reqwest when
//! the environment names a proxy.
//!
//! The direct client is the hot path: it takes an `http::Uri` (no WHATWG URL parsing, no IDNA) and
//! has none of reqwest's per-request layers (redirects, retries, URL re-parsing), which Mirror does
//! not use. reqwest stays for proxies, whose rules (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`,
//! `NO_PROXY`, proxy credentials, CONNECT tunnels) it already implements.
//!
//! Either way there are two sets of clients, two lanes ([`Lane`]): primary calls and silent copies
//! never share a pool, so a primary never waits behind copies for an HTTP/2 connection's streams.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::future::Either;
use futures::{Stream, TryStreamExt};
use http::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use http::uri::{Scheme, Uri};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyDataStream, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use mirror_core::Http2;
use rustls::pki_types::CertificateDer;

use crate::{BoxError, ProviderError};

/// The longest wait for a TCP (and TLS) connection.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an unused pooled connection is kept.
pub(crate) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How many unused connections are kept per host (per lane and `http2` setting: each client has
/// its own pool). How many are open at once is not capped here: it follows the calls in flight,
/// which the gateway bounds (`max_client_connections` for primary calls; the silent budget and
/// `silent_max_in_flight` for copies).
pub(crate) const POOL_MAX_IDLE_PER_HOST: usize = 256;

/// The environment variables that make reqwest send through a proxy (`NO_PROXY` alone does not).
const PROXY_VARIABLES: [&str; 6] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

type DirectClient = hyper_util::client::legacy::Client<ConnectTimeout, Full<Bytes>>;

/// Which connections a call travels on. Silent copies have their own clients, so a primary call
/// never shares an upstream connection (nor an HTTP/2 connection's stream limit) with one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Client calls: `auto` negotiates HTTP/2 by ALPN over TLS.
    #[default]
    Primary,
    /// Silent copies: `auto` is HTTP/1.1, so that thousands of copies in flight get pooled
    /// connections instead of queueing for the streams of one HTTP/2 connection.
    Silent,
}

impl Lane {
    /// The lane of a call whose request metadata is `metadata`: silent when it carries the
    /// silent-copy marker.
    pub(crate) fn of(metadata: Option<&serde_json::Map<String, serde_json::Value>>) -> Self {
        if mirror_core::is_silent_copy(metadata) {
            Lane::Silent
        } else {
            Lane::Primary
        }
    }
}

/// What a client offers the server: the protocols of one lane and [`Http2`] setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offer {
    /// HTTP/2 or HTTP/1.1 over TLS (ALPN decides); HTTP/1.1 on plain `http://`.
    Negotiated,
    /// HTTP/2 only (prior knowledge on plain `http://`).
    Http2,
    /// HTTP/1.1 only.
    Http1,
}

/// How many clients a transport keeps: [`slot`]'s range.
const SLOTS: usize = 5;

/// A lane and setting of each slot, in slot order.
const SLOT_ROUTES: [(Lane, Http2); SLOTS] = [
    (Lane::Primary, Http2::Auto),
    (Lane::Primary, Http2::Always),
    (Lane::Primary, Http2::Never),
    (Lane::Silent, Http2::Always),
    (Lane::Silent, Http2::Never),
];

/// The client of `lane` and `http2`: one per (lane, offer), so the lanes never share a pool.
fn slot(lane: Lane, http2: Http2) -> (usize, Offer) {
    match (lane, http2) {
        (Lane::Primary, Http2::Auto) => (0, Offer::Negotiated),
        (Lane::Primary, Http2::Always) => (1, Offer::Http2),
        (Lane::Primary, Http2::Never) => (2, Offer::Http1),
        (Lane::Silent, Http2::Always) => (3, Offer::Http2),
        (Lane::Silent, Http2::Auto | Http2::Never) => (4, Offer::Http1),
    }
}

/// Which client sends the requests.
#[derive(Clone)]
pub(crate) enum Transport {
    /// hyper-util's pooled clients over rustls: no proxy support. (In an `Arc`: the clients are a
    /// few hundred bytes each and every adapter holds a clone.)
    Direct(Arc<DirectClients>),
    /// reqwest, which applies the proxy variables of the environment: one client per lane and
    /// [`Http2`] setting, as [`slot`] numbers them.
    Reqwest(Arc<[reqwest::Client; SLOTS]>),
}

/// The direct client of each lane and [`Http2`] setting (as [`slot`] numbers them), over one TLS
/// configuration, each built on first use.
pub(crate) struct DirectClients {
    tls: rustls::ClientConfig,
    clients: [OnceLock<DirectClient>; SLOTS],
}

impl DirectClients {
    fn new(tls: rustls::ClientConfig) -> Self {
        DirectClients {
            tls,
            clients: Default::default(),
        }
    }

    fn get(&self, lane: Lane, http2: Http2) -> &DirectClient {
        let (slot, offer) = slot(lane, http2);
        self.clients[slot].get_or_init(|| direct_client(&self.tls, offer))
    }

    /// Runs `f` with the client of `lane` and `http2`: the calling thread's own after
    /// [`pools_per_thread`], else the shared one.
    fn with<R>(
        self: &Arc<Self>,
        lane: Lane,
        http2: Http2,
        f: impl FnOnce(&DirectClient) -> R,
    ) -> R {
        if !PER_THREAD.get() {
            return f(self.get(lane, http2));
        }
        THREAD_CLIENTS.with_borrow_mut(|tables| {
            let index = match tables
                .iter()
                .position(|table| std::ptr::eq(table.owner.as_ptr(), Arc::as_ptr(self)))
            {
                Some(index) => index,
                None => {
                    // A reload built new clients: the tables of dropped ones (and their pools) go.
                    tables.retain(|table| table.owner.strong_count() > 0);
                    tables.push(ThreadClients {
                        owner: Arc::downgrade(self),
                        clients: Default::default(),
                    });
                    tables.len() - 1
                }
            };
            let (slot, offer) = slot(lane, http2);
            let client =
                tables[index].clients[slot].get_or_insert_with(|| direct_client(&self.tls, offer));
            f(client)
        })
    }
}

thread_local! {
    /// Set by [`pools_per_thread`]: this thread makes its own direct clients.
    static PER_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// This thread's direct clients, one table per [`DirectClients`] in use.
    static THREAD_CLIENTS: std::cell::RefCell<Vec<ThreadClients>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One thread's clients of one [`DirectClients`] (the Weak keeps the address from being reused).
struct ThreadClients {
    owner: std::sync::Weak<DirectClients>,
    clients: [Option<DirectClient>; SLOTS],
}

/// Gives the calling thread its own upstream connection pools from now on: every direct client
/// used on it is made for it, so the connections it opens are driven by its own runtime and their
/// answers never wake another thread. For the per-core layout, whose worker threads each run a
/// current-thread runtime (`mirror serve --runtime per-core`): there a shared pool would hand a
/// thread connections whose tasks live on another thread's runtime. The lanes stay apart as
/// before; reqwest's clients (behind a proxy) stay shared.
pub fn pools_per_thread() {
    PER_THREAD.set(true);
}

/// Which transport to build; [`Choice::from_env`] is what `HttpClient::new` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Choice {
    Direct,
    Reqwest(Proxies),
}

/// The proxies of a reqwest client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Proxies {
    /// The environment's, as reqwest reads them.
    FromEnv,
    /// None: tests of the reqwest plumbing must not depend on the environment.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    Off,
    /// Every request through this proxy.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    All(String),
}

impl Choice {
    /// reqwest when any proxy variable is set (and not empty), else the direct client. `var` reads
    /// one variable, so tests can decide without touching the process environment.
    pub(crate) fn from_env(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Self {
        let proxied = PROXY_VARIABLES
            .iter()
            .any(|name| var(name).is_some_and(|value| !value.is_empty()));
        if proxied {
            Choice::Reqwest(Proxies::FromEnv)
        } else {
            Choice::Direct
        }
    }
}

impl Transport {
    /// The transport of `choice`, trusting the webpki roots and `extra_roots` (tests add their
    /// own certificate authority).
    pub(crate) fn build(
        choice: Choice,
        extra_roots: &[CertificateDer<'static>],
    ) -> Result<Self, ProviderError> {
        match choice {
            Choice::Direct => tls_config(extra_roots)
                .map(|tls| Transport::Direct(Arc::new(DirectClients::new(tls)))),
            Choice::Reqwest(proxies) => {
                let build =
                    |(lane, http2)| reqwest_client(&proxies, slot(lane, http2).1, extra_roots);
                let [a, b, c, d, e] = SLOT_ROUTES.map(build);
                Ok(Transport::Reqwest(Arc::new([a?, b?, c?, d?, e?])))
            }
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Transport::Direct(_) => "direct",
            Transport::Reqwest(_) => "reqwest",
        }
    }

    /// Posts `body` with `headers` (which must include the content type) and returns the response
    /// once its headers arrived.
    ///
    /// A redirect is an error: neither client follows one (following would resend the key to
    /// wherever the upstream points), and relaying it would hand the client an upstream URL.
    pub(crate) async fn post(
        &self,
        (lane, http2): (Lane, Http2),
        url: String,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<Response, ProviderError> {
        self.request((lane, http2), Method::POST, url, headers, body)
            .await
    }

    /// Sends a request of any method (the Responses API's GET and DELETE by id); an empty `body`
    /// is sent as none. A redirect is an error, never followed.
    pub(crate) async fn request(
        &self,
        route: (Lane, Http2),
        method: Method,
        url: String,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<Response, ProviderError> {
        let response = self.send(route, method, url, headers, body).await?;
        if response.status.is_redirection() {
            return Err(redirected(response.status));
        }
        Ok(response)
    }

    async fn send(
        &self,
        (lane, http2): (Lane, Http2),
        method: Method,
        url: String,
        mut headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<Response, ProviderError> {
        match self {
            Transport::Direct(clients) => {
                let uri = request_uri(url, &mut headers)?;
                // What reqwest sends by default; some servers and proxies expect an `Accept`.
                headers
                    .entry(ACCEPT)
                    .or_insert(HeaderValue::from_static("*/*"));
                let mut request = Request::new(Full::new(Bytes::from(body)));
                *request.method_mut() = method;
                *request.uri_mut() = uri;
                *request.headers_mut() = headers;
                let response = clients
                    .with(lane, http2, |client| client.request(request))
                    .await
                    .map_err(|err| transport_error(Stage::Send, Box::new(err)))?;
                let (parts, body) = response.into_parts();
                Ok(Response {
                    status: parts.status,
                    headers: parts.headers,
                    body: Body::Direct(body),
                })
            }
            Transport::Reqwest(clients) => {
                let mut response = clients[slot(lane, http2).0]
                    .request(method, url)
                    .headers(headers)
                    .body(body)
                    .send()
                    .await
                    .map_err(|err| transport_error(Stage::Send, Box::new(err)))?;
                Ok(Response {
                    status: response.status(),
                    headers: std::mem::take(response.headers_mut()),
                    // Read through reqwest's own methods, which word body errors as before.
                    body: Body::Reqwest(response),
                })
            }
        }
    }
}

/// A response whose headers arrived; the body follows.
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    body: Body,
}

enum Body {
    Direct(Incoming),
    Reqwest(reqwest::Response),
}

impl Response {
    /// The whole body, if it is at most `limit` bytes. Reading stops at the limit (or before
    /// reading anything, when `Content-Length` says the body is larger), so an oversized answer is
    /// never held whole.
    pub(crate) async fn bytes_limited(self, limit: u64) -> Result<Bytes, ProviderError> {
        let too_large = || ProviderError::ResponseTooLarge {
            what: "body",
            limit,
        };
        let announced = content_length(&self.headers);
        if announced.is_some_and(|length| length > limit) {
            return Err(too_large());
        }
        let capacity = usize::try_from(announced.unwrap_or(0).min(limit)).unwrap_or(0);
        let mut body = Vec::with_capacity(capacity);
        let mut stream = std::pin::pin!(self.into_stream());
        while let Some(piece) = stream.try_next().await? {
            if (body.len() + piece.len()) as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&piece);
        }
        Ok(Bytes::from(body))
    }

    /// At most the first `max` bytes of the body, for an error message; the rest is not read.
    pub(crate) async fn prefix(self, max: usize) -> Result<Bytes, ProviderError> {
        let mut body = Vec::new();
        let mut stream = std::pin::pin!(self.into_stream());
        while let Some(piece) = stream.try_next().await? {
            let room = max - body.len();
            body.extend_from_slice(&piece[..piece.len().min(room)]);
            if body.len() == max {
                break;
            }
        }
        Ok(Bytes::from(body))
    }

    /// The body's data as it arrives.
    pub(crate) fn into_stream(self) -> impl Stream<Item = Result<Bytes, ProviderError>> + Send {
        let body_error = |err| transport_error(Stage::Body, err);
        match self.body {
            Body::Direct(body) => Either::Left(
                BodyDataStream::new(body).map_err(move |err| body_error(Box::new(err))),
            ),
            Body::Reqwest(response) => Either::Right(
                response
                    .bytes_stream()
                    .map_err(move |err| body_error(Box::new(err))),
            ),
        }
    }
}

fn redirected(status: StatusCode) -> ProviderError {
    ProviderError::Upstream {
        status: status.as_u16(),
        // The `Location` is left out: it may carry a token, and the fix is in the configuration.
        message: "the upstream answered with a redirect, which is not followed; set `api_base` to the URL it redirects to".to_owned(),
        retry_after: None,
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The TLS configuration every direct client shares: the webpki roots (no OpenSSL, no system
/// store) and `extra_roots`, without ALPN (each client sets its own).
fn tls_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<rustls::ClientConfig, ProviderError> {
    let cannot_build = |err: rustls::Error| ProviderError::Transport {
        message: "cannot build the HTTP client".to_owned(),
        source: Some(Box::new(err)),
    };
    // Like reqwest: a process-wide provider if the application installed one, else ring.
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for root in extra_roots {
        roots.add(root.clone()).map_err(cannot_build)?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(cannot_build)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn direct_client(tls: &rustls::ClientConfig, offer: Offer) -> DirectClient {
    let mut http = HttpConnector::new();
    // The TLS layer above handles `https`.
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    // reqwest's defaults, so that dead connections are noticed the same way.
    http.set_keepalive(Some(Duration::from_secs(15)));
    http.set_keepalive_interval(Some(Duration::from_secs(15)));
    http.set_keepalive_retries(Some(3));
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    http.set_tcp_user_timeout(Some(Duration::from_secs(30)));
    let tls = HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http();
    // The ALPN offer: what a TLS server may pick (none for HTTP/1.1 only, which a server reads as
    // HTTP/1.1).
    let https = match offer {
        Offer::Negotiated => tls.enable_all_versions().wrap_connector(http),
        Offer::Http2 => tls.enable_http2().wrap_connector(http),
        Offer::Http1 => tls.enable_http1().wrap_connector(http),
    };
    let connector = ConnectTimeout { inner: https };
    let mut builder = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        // Over plain `http://` this is prior knowledge; over TLS, the only protocol offered.
        .http2_only(offer == Offer::Http2);
    builder.build(connector)
}

fn reqwest_client(
    proxies: &Proxies,
    offer: Offer,
    extra_roots: &[CertificateDer<'static>],
) -> Result<reqwest::Client, ProviderError> {
    let cannot_build = |err: reqwest::Error| ProviderError::Transport {
        message: "cannot build the HTTP client".to_owned(),
        source: Some(Box::new(err.without_url())),
    };
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        // As the direct client: a redirect is answered as an error, never followed.
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true);
    builder = match offer {
        Offer::Negotiated => builder,
        Offer::Http2 => builder.http2_prior_knowledge(),
        Offer::Http1 => builder.http1_only(),
    };
    for root in extra_roots {
        let root = reqwest::Certificate::from_der(root).map_err(cannot_build)?;
        builder = builder.add_root_certificate(root);
    }
    match proxies {
        Proxies::FromEnv => {}
        Proxies::Off => builder = builder.no_proxy(),
        Proxies::All(proxy) => {
            builder = builder
                .no_proxy()
                .proxy(reqwest::Proxy::all(proxy).map_err(cannot_build)?);
        }
    }
    builder.build().map_err(cannot_build)
}

/// `url` as a request URI. Credentials in it (`user:password@`) become a basic `Authorization`
/// header unless the call sets its own, as reqwest does; they are never sent in the URI (HTTP/2
/// would put them in `:authority`).
fn request_uri(url: String, headers: &mut HeaderMap) -> Result<Uri, ProviderError> {
    // The usual case: a plain absolute URL, parsed without copying it.
    if let Ok(uri) = Uri::try_from(url.as_str()) {
        if let Some(authority) = uri.authority() {
            if !authority.as_str().contains('@') {
                check_scheme(&uri)?;
                return Ok(uri);
            }
        }
    }
    // Credentials, or what only a WHATWG parser accepts (e.g. an internationalized host name).
    let mut parsed = reqwest::Url::parse(&url).map_err(|err| builder_error(Box::new(err)))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad_scheme());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(|text| text.into_owned())
        };
        let username = decode(parsed.username());
        let password = parsed.password().map(decode).and_then(Result::ok);
        // Cannot fail on a URL that has credentials.
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        // Like reqwest, credentials that are not UTF-8 once decoded are dropped.
        if let (Ok(username), false) = (username, headers.contains_key(AUTHORIZATION)) {
            let credentials = format!("{username}:{}", password.unwrap_or_default());
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            if let Ok(mut value) = HeaderValue::try_from(format!("Basic {encoded}")) {
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
        }
    }
    let uri = Uri::try_from(parsed.as_str()).map_err(|err| builder_error(Box::new(err)))?;
    check_scheme(&uri)?;
    Ok(uri)
}

fn check_scheme(uri: &Uri) -> Result<(), ProviderError> {
    match uri.scheme() {
        Some(scheme) if *scheme == Scheme::HTTP || *scheme == Scheme::HTTPS => Ok(()),
        _ => Err(bad_scheme()),
    }
}

fn bad_scheme() -> ProviderError {
    builder_error("URL scheme is not allowed".into())
}

fn builder_error(source: BoxError) -> ProviderError {
    transport_error(Stage::Build, source)
}

/// Where an exchange failed, worded as reqwest words it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stage {
    Build,
    Send,
    Body,
}

/// A failure of the direct client, with its cause as the source.
#[derive(Debug)]
struct HttpError {
    stage: Stage,
    source: BoxError,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.stage {
            Stage::Build => "builder error",
            Stage::Send => "error sending request",
            Stage::Body => "error decoding response body",
        })
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// Maps a failure of either client: the message says what failed at this level ("error sending
/// request"), the source holds the causes (connection refused, reset, TLS failures), so that a
/// reporter that prints the source chain reads each cause once. Never a URL; a timed-out connection
/// is [`ProviderError::Timeout`].
pub(crate) fn transport_error(stage: Stage, err: BoxError) -> ProviderError {
    let err: BoxError = match err.downcast::<reqwest::Error>() {
        Ok(err) => Box::new(err.without_url()),
        Err(err) => Box::new(HttpError { stage, source: err }),
    };
    if is_timeout(&*err) {
        // The clients' only own timeout is the connect timeout; the others are ours.
        return ProviderError::Timeout {
            after: CONNECT_TIMEOUT,
        };
    }
    let message = err.to_string();
    let source = err
        .source()
        .is_some()
        .then(|| Box::new(Causes(err)) as BoxError);
    ProviderError::Transport { message, source }
}

/// The causes of an error without the error itself: its `Display` is its source's, and its source
/// is its source's source. (A reqwest error cannot give its source away by value.)
struct Causes(BoxError);

impl Causes {
    fn first(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl std::fmt::Debug for Causes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.first() {
            Some(cause) => std::fmt::Debug::fmt(cause, f),
            None => f.write_str("no cause"),
        }
    }
}

impl std::fmt::Display for Causes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.first() {
            Some(cause) => std::fmt::Display::fmt(cause, f),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Causes {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.first()?.source()
    }
}

/// reqwest's `is_timeout`, for both clients.
fn is_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(err) = source {
        if let Some(err) = err.downcast_ref::<reqwest::Error>() {
            if err.is_timeout() {
                return true;
            }
        }
        if err
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout)
        {
            return true;
        }
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|err| err.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// Bounds TCP connect and TLS handshake together by [`CONNECT_TIMEOUT`], as reqwest's
/// `connect_timeout` does (the TCP connector's own timeout does not cover the handshake).
#[derive(Clone)]
pub(crate) struct ConnectTimeout {
    inner: HttpsConnector<HttpConnector>,
}

type Connecting<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl tower_service::Service<Uri> for ConnectTimeout {
    type Response = <HttpsConnector<HttpConnector> as tower_service::Service<Uri>>::Response;
    type Error = BoxError;
    type Future = Connecting<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
                Ok(connected) => connected,
                Err(_) => Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connection timed out",
                )) as BoxError),
            }
        })
    }
}

#[cfg(test)]
mod tests;
