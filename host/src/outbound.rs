//! Outgoing HTTP (`wasi:http/outgoing-handler`) behind an allowlist, like
//! Spin's `allowed_outbound_hosts`.
//!
//! The list holds `scheme://host:port` origins (built from the `s3_endpoint`
//! variable). A request to anything else fails with `http-request-denied`
//! before any connection is made, the error Spin gives.
//!
//! Self requests (authority `self.alt`, or none), which the repository's
//! `spin.toml` allows with `http://self`, go to the registry's own listener,
//! as Spin sends them to its own address: another instance of the
//! component answers. The listener is in this process, so they are handed
//! to it without a connection ([`SelfRequests`]).
//!
//! Plain `http` requests go through one pooled client shared by every
//! instance ([`PlainHttpPool`]): a request reuses an idle keep-alive
//! connection to its origin instead of opening (and closing) one of its
//! own, which costs more than a small S3 request itself. `https` requests
//! use wasmtime-wasi-http's default sender, a connection each. Requests to
//! the embedded S3 server are answered in process ([`InProcessS3`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::request_counts::RequestCounts;

#[path = "outbound_in_process.rs"]
mod in_process;
#[path = "outbound_self.rs"]
mod self_requests;

pub use in_process::InProcessS3;
pub use self_requests::SelfRequests;

/// One allowed origin. Hosts compare case-insensitively; a missing port is
/// the scheme's default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port][/anything]` (http or https only).
    pub fn parse(url: &str) -> Option<Origin> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let authority = rest.split(['/', '?', '#']).next()?;
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        Origin::from_parts(&scheme, authority)
    }

    fn from_parts(scheme: &str, authority: &str) -> Option<Origin> {
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let (host, port) = split_host_port(authority)?;
        let port = match port {
            Some(p) => p.parse().ok()?,
            None => default_port,
        };
        if host.is_empty() {
            return None;
        }
        Some(Origin {
            scheme: scheme.to_string(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The origin a request URI targets.
    pub fn of_uri(uri: &http::Uri) -> Option<Origin> {
        Origin::from_parts(uri.scheme_str()?, uri.authority()?.as_str())
    }
}

/// Splits `host[:port]`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    Some(match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

/// The origins the component may reach.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts {
    origins: Vec<Origin>,
}

impl AllowedHosts {
    /// Allows exactly the origins of `urls`; unparsable entries allow nothing.
    pub fn from_urls<'a>(urls: impl IntoIterator<Item = &'a str>) -> Self {
        AllowedHosts {
            origins: urls.into_iter().filter_map(Origin::parse).collect(),
        }
    }

    pub fn allows(&self, uri: &http::Uri) -> bool {
        Origin::of_uri(uri).is_some_and(|o| self.origins.contains(&o))
    }
}

/// The wasi:http hooks every instance uses: the pooled client for `http`,
/// the default sender for `https`, gated by the allowlist.
#[derive(Clone, Default)]
pub struct OutboundHttp {
    allowed: Arc<AllowedHosts>,
    plain: Arc<PlainHttpPool>,
    /// Where self requests go: the registry's own listener.
    self_requests: Option<SelfRequests>,
    /// The embedded S3 server, answered in process.
    in_process: Option<InProcessS3>,
    /// The request's counts, in the copy of the hooks one request uses.
    counts: Option<Arc<RequestCounts>>,
}

impl OutboundHttp {
    pub fn new(allowed: AllowedHosts) -> Self {
        OutboundHttp {
            allowed: Arc::new(allowed),
            plain: Arc::default(),
            self_requests: None,
            in_process: None,
            counts: None,
        }
    }

    /// These hooks, counting the requests they send into `counts`.
    pub fn counting_into(mut self, counts: Arc<RequestCounts>) -> Self {
        self.counts = Some(counts);
        self
    }

    /// Answers the requests `s3` serves (the embedded S3 server's) in
    /// process instead of over TCP.
    pub fn with_in_process_s3(mut self, s3: InProcessS3) -> Self {
        self.in_process = Some(s3);
        self
    }

    /// Allows self requests, answered by `registry`.
    pub fn with_self_requests(mut self, registry: SelfRequests) -> Self {
        self.self_requests = Some(registry);
        self
    }
}

/// Whether a request is for the application itself: Spin's `self.alt`
/// authority, or no authority at all.
fn is_self_request(uri: &http::Uri) -> bool {
    uri.authority().is_none_or(|a| a.host() == "self.alt")
}

/// How long a pooled connection may stay idle before it is closed: shorter
/// than the keep-alive of common S3 servers (the embedded one's is 20 s), so
/// a request seldom meets a connection the server is closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Idle connections kept per origin (as many as instances run at once).
const POOL_MAX_IDLE: usize = 64;
/// wasmtime-wasi-http's default for a timeout the guest did not set.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Keep-alive `http` connections shared by every instance, one client per
/// connect timeout the guests ask for (the component asks for one, from its
/// variables).
#[derive(Default)]
pub struct PlainHttpPool {
    clients: std::sync::Mutex<Vec<(Duration, Client<HttpConnector, WasiBody>)>>,
}

impl PlainHttpPool {
    fn client(&self, connect_timeout: Duration) -> Client<HttpConnector, WasiBody> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, client)) = clients.iter().find(|(t, _)| *t == connect_timeout) {
            return client.clone();
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE)
            .build(connector);
        clients.push((connect_timeout, client.clone()));
        client
    }

    /// Sends `request` on a pooled connection with the guest's timeouts:
    /// the connect timeout for a new connection; the first-byte timeout
    /// from then until the response head (connecting included, so with a
    /// new connection the two add up); the between-bytes timeout between
    /// two frames of the response body.
    async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let timeouts = Timeouts::of(options);
        let client = self.client(timeouts.connect);
        let response = tokio::time::timeout(
            timeouts.connect.saturating_add(timeouts.first_byte),
            client.request(request),
        )
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(send_error)?;
        Ok(response.map(|body| {
            let body = body.map_err(body_error).boxed_unsync();
            BetweenBytesTimeout::new(body, timeouts.between_bytes).boxed_unsync()
        }))
    }
}

/// The timeouts a guest set for a request, wasmtime-wasi-http's default
/// for each it left unset.
struct Timeouts {
    connect: Duration,
    first_byte: Duration,
    between_bytes: Duration,
}

impl Timeouts {
    fn of(options: Option<RequestOptions>) -> Timeouts {
        let options = options.unwrap_or_default();
        let or_default = |timeout: Option<Duration>| timeout.unwrap_or(DEFAULT_TIMEOUT);
        Timeouts {
            connect: or_default(options.connect_timeout),
            first_byte: or_default(options.first_byte_timeout),
            between_bytes: or_default(options.between_bytes_timeout),
        }
    }
}

/// The wasi:http error for a failed send on the pooled client.
fn send_error(error: hyper_util::client::legacy::Error) -> Error {
    if error.is_connect() {
        let kind = causes(&error)
            .find_map(|e| e.downcast_ref::<std::io::Error>())
            .map_or(std::io::ErrorKind::Other, std::io::Error::kind);
        return Error::Connect(std::io::Error::new(kind, error.to_string()));
    }
    let hyper_error = causes(&error).find_map(|e| e.downcast_ref::<hyper::Error>());
    match hyper_error {
        Some(e) if e.is_incomplete_message() => Error::HttpResponseIncomplete,
        Some(e) if e.is_timeout() => Error::HttpResponseTimeout,
        _ => Error::HttpProtocolError,
    }
}

/// The errors under `error`, nearest first.
fn causes(
    error: &hyper_util::client::legacy::Error,
) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    use std::error::Error as _;
    fn next<'a>(
        e: &&'a (dyn std::error::Error + 'static),
    ) -> Option<&'a (dyn std::error::Error + 'static)> {
        let e: &'a (dyn std::error::Error + 'static) = *e;
        e.source()
    }
    std::iter::successors(error.source(), next)
}

/// The wasi:http error for a failed read of a response body.
fn body_error(error: hyper::Error) -> Error {
    if error.is_timeout() {
        Error::HttpResponseTimeout
    } else {
        Error::from(error)
    }
}

/// A response body that fails when no frame arrives for its timeout.
struct BetweenBytesTimeout {
    inner: WasiBody,
    timeout: Duration,
    stall: Pin<Box<tokio::time::Sleep>>,
}

impl BetweenBytesTimeout {
    fn new(inner: WasiBody, timeout: Duration) -> Self {
        BetweenBytesTimeout {
            inner,
            timeout,
            stall: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl Body for BetweenBytesTimeout {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let deadline = tokio::time::Instant::now() + self.timeout;
                self.stall.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match self.stall.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
            end_or_error => end_or_error,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What drives a response's connection beside it.
type ConnectionWork = Box<dyn Future<Output = Result<(), Error>> + Send>;

type SendResult = wasmtime_wasi_http::Result<(http::Response<WasiBody>, ConnectionWork)>;

/// The connection work of a response nothing else needs to drive.
fn nothing_to_drive() -> ConnectionWork {
    Box::new(async { Ok(()) })
}

/// An answer made in this process (by the embedded S3 server, or by the
/// registry to a self request), under the guest's timeouts as one over a
/// connection would be: its head within the first-byte timeout, then a
/// body that fails when no frame comes for the between-bytes timeout.
/// Nothing runs beside it: its body is written by whoever answers.
async fn within_timeouts(
    answer: impl Future<Output = Result<http::Response<WasiBody>, Error>>,
    timeouts: Timeouts,
) -> SendResult {
    let response = tokio::time::timeout(timeouts.first_byte, answer)
        .await
        .map_err(|_| Error::ConnectionReadTimeout)??;
    let response =
        response.map(|body| BetweenBytesTimeout::new(body, timeouts.between_bytes).boxed_unsync());
    Ok((response, nothing_to_drive()))
}

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _body_result: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let self_request = is_self_request(request.uri());
        let allowed = if self_request {
            self.self_requests.is_some()
        } else {
            self.allowed.allows(request.uri())
        };
        if !allowed {
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        if let Some(counts) = &self.counts {
            counts.sent(self_request);
        }
        let timeouts = Timeouts::of(options);
        if let Some(registry) = self.self_requests.clone().filter(|_| self_request) {
            return Box::new(
                async move { within_timeouts(registry.send(request), timeouts).await },
            );
        }
        if let Some(s3) = self
            .in_process
            .clone()
            .filter(|s3| s3.serves(request.uri()))
        {
            return Box::new(async move { within_timeouts(s3.send(request), timeouts).await });
        }
        if request.uri().scheme() == Some(&http::uri::Scheme::HTTP) {
            let plain = self.plain.clone();
            return Box::new(async move {
                let response = plain.send(request, options).await?;
                // The client drives its connections itself.
                Ok((response, nothing_to_drive()))
            });
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(http_body_util::BodyExt::boxed_unsync),
                Box::new(io) as ConnectionWork,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn allowed(endpoint: &str) -> AllowedHosts {
        AllowedHosts::from_urls([endpoint])
    }

    fn uri(s: &str) -> http::Uri {
        s.parse().unwrap()
    }

    #[test]
    fn the_endpoint_itself_is_allowed() {
        let a = allowed("http://127.0.0.1:9000");
        assert!(a.allows(&uri("http://127.0.0.1:9000/genreg/key?uploads")));
    }

    #[test]
    fn another_port_host_or_scheme_is_denied() {
        let a = allowed("http://127.0.0.1:9000");
        assert!(!a.allows(&uri("http://127.0.0.1:9001/")));
        assert!(!a.allows(&uri("http://localhost:9000/")));
        assert!(!a.allows(&uri("https://127.0.0.1:9000/")));
        assert!(!a.allows(&uri("http://example.com/")));
    }

    #[test]
    fn default_ports_and_case_are_normalised() {
        let a = allowed("https://S3.Example.com/bucket-prefix");
        assert!(a.allows(&uri("https://s3.example.com:443/x")));
        assert!(a.allows(&uri("https://s3.example.com/x")));
        assert!(!a.allows(&uri("http://s3.example.com/x")));
    }

    #[test]
    fn ipv6_endpoints_work() {
        let a = allowed("http://[::1]:9000");
        assert!(a.allows(&uri("http://[::1]:9000/x")));
        assert!(!a.allows(&uri("http://[::1]:9001/x")));
    }

    #[test]
    fn a_bad_endpoint_allows_nothing() {
        let a = allowed("not a url");
        assert!(!a.allows(&uri("http://127.0.0.1:9000/")));
        assert!(!AllowedHosts::default().allows(&uri("http://127.0.0.1/")));
    }

    #[test]
    fn a_uri_without_authority_is_denied() {
        assert!(!allowed("http://127.0.0.1:9000").allows(&uri("/relative")));
    }

    /// A local HTTP/1.1 server: answers `GET` with `answer` (its count of
    /// connections so far), keeps connections alive, and reports each
    /// accepted connection.
    async fn counting_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let number = counted.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 1024];
                    loop {
                        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => seen.extend_from_slice(&buf[..n]),
                            }
                        }
                        seen.clear();
                        let body = number.to_string();
                        let head =
                            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                        let answer = [head.as_bytes(), body.as_bytes()].concat();
                        if stream.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, connections)
    }

    /// Sends `GET url` through the hooks and reads the whole answer.
    async fn get(hooks: &mut OutboundHttp, url: &str) -> Result<String, Error> {
        let body = http_body_util::Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = http::Request::get(url).body(body).unwrap();
        let sent = hooks.send_request(request, None, Box::new(async { Ok(()) }));
        let (response, _io) = Box::into_pin(sent).await?;
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn plain_http_requests_reuse_one_connection() {
        let (url, connections) = counting_server().await;
        let mut hooks = OutboundHttp::new(allowed(&url));
        for _ in 0..3 {
            assert_eq!(
                get(&mut hooks.clone(), &format!("{url}/x")).await.unwrap(),
                "1"
            );
        }
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Other hooks (another registry) have their own connections.
        let mut other = OutboundHttp::new(allowed(&url));
        assert_eq!(get(&mut other, &format!("{url}/x")).await.unwrap(), "2");
        assert_eq!(get(&mut hooks, &format!("{url}/x")).await.unwrap(), "1");
    }

    #[tokio::test]
    async fn self_requests_never_connect_to_the_listener() {
        let (url, connections) = counting_server().await;
        let own: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
        let registry = SelfRequests::new(own);
        let mut hooks =
            OutboundHttp::new(allowed("http://127.0.0.1:9")).with_self_requests(registry);
        // Handed to the registry's handler, which is not there yet: no
        // connection is made instead.
        let unanswered = get(&mut hooks, "http://self.alt/x").await;
        assert!(
            matches!(unanswered, Err(Error::ConnectionRefused)),
            "{unanswered:?}"
        );
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0);
        // Without them, denied like any host not allowed.
        let mut without = OutboundHttp::new(allowed(&url));
        let denied = get(&mut without, "http://self.alt/x").await;
        assert!(
            matches!(denied, Err(Error::HttpRequestDenied)),
            "{denied:?}"
        );
        let relative = http::Uri::from_static("/x");
        assert!(is_self_request(&relative));
        assert!(!is_self_request(&uri("http://self.example/x")));
    }

    #[tokio::test]
    async fn requests_sent_are_counted_as_s3_or_self_and_denied_ones_not() {
        let (url, _) = counting_server().await;
        let own: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
        let counts = Arc::new(RequestCounts::default());
        let mut hooks = OutboundHttp::new(allowed(&url))
            .with_self_requests(SelfRequests::new(own))
            .counting_into(counts.clone());
        get(&mut hooks, &format!("{url}/object")).await.unwrap();
        // Sent, though no registry answers it here.
        let _ = get(&mut hooks, "http://self.alt/-/sha256").await;
        let denied = get(&mut hooks, "http://127.0.0.1:9/x").await;
        assert!(matches!(denied, Err(Error::HttpRequestDenied)));
        assert!(counts.to_string().ends_with("s3=1 self=1"), "{counts}");
    }

    #[tokio::test]
    async fn a_denied_origin_is_never_contacted() {
        let (url, connections) = counting_server().await;
        let mut hooks = OutboundHttp::new(allowed("http://127.0.0.1:9"));
        let denied = get(&mut hooks, &format!("{url}/x")).await;
        assert!(
            matches!(denied, Err(Error::HttpRequestDenied)),
            "{denied:?}"
        );
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_body_that_stalls_fails_after_the_between_bytes_timeout() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await.unwrap();
            // Promises 10 bytes, sends 2, then nothing.
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let mut hooks = OutboundHttp::new(allowed(&url));
        let options = RequestOptions {
            between_bytes_timeout: Some(Duration::from_millis(100)),
            ..RequestOptions::default()
        };
        let body = http_body_util::Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = http::Request::get(&url).body(body).unwrap();
        let sent = hooks.send_request(request, Some(options), Box::new(async { Ok(()) }));
        let (response, _io) = Box::into_pin(sent).await.unwrap();
        let read = response.into_body().collect().await;
        assert!(
            matches!(read, Err(Error::ConnectionReadTimeout)),
            "{read:?}"
        );
        server.abort();
    }
}
