//! Serving one HTTP request the way Spin's HTTP trigger does: a fresh store
//! and instance of the pre-instantiated component, the request handed to
//! `wasi:http/incoming-handler` with its original path and query, scheme
//! `http`, the `Host` header as authority and Spin's `spin-*` headers, and
//! the response streamed back as the guest writes it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, EXPECT, HOST, RETRY_AFTER};
use http::uri::{Authority, Scheme as UriScheme, Uri};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use tokio::time::Sleep;
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::limits::{self, Exceeded, ExceededFlag, RequestBodyCap, ResponseBodyCap};
use crate::request_counts::RequestCounts;
use crate::runtime::{self, InstanceMemory};
use crate::state::{Imports, State};

/// The route the component is mounted on, as in the repo's spin.toml.
const ROUTE: &str = "/...";

/// How much of a request body left unread is read (and dropped) before the
/// connection closes, so that a client still sending gets the response
/// instead of a reset (see [`ClientBody`]).
const DRAIN_BYTES: usize = 1024 * 1024;
/// How long such a body is drained at most.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// What a request may use of the host.
#[derive(Clone, Copy, Debug)]
pub struct GuestLimits {
    /// A request body that delivers nothing for this long while the guest
    /// waits for it fails (the guest sees a read error).
    pub body_timeout: Duration,
    /// The most linear memory one instance may grow to, in bytes.
    pub instance_memory: usize,
    /// Instances running at once.
    pub max_instances: usize,
    /// How long a request waits for an instance before it is answered 503.
    pub instance_wait: Duration,
    /// Request bodies over this many bytes are refused (see [`limits`]).
    pub max_request_body: Option<u64>,
    /// Response bodies over this many bytes are not sent.
    pub max_response_body: Option<u64>,
    /// An instance running longer than this is stopped.
    pub request_timeout: Option<Duration>,
}

/// Why a guest gave no response.
enum GuestFailure {
    /// It went over one of the host's limits.
    Exceeded(Exceeded),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for GuestFailure {
    fn from(error: anyhow::Error) -> Self {
        GuestFailure::Failed(error)
    }
}

impl From<wasmtime::Error> for GuestFailure {
    fn from(error: wasmtime::Error) -> Self {
        GuestFailure::Failed(error.into())
    }
}

/// A guest's response and what the host keeps of its instance: the handle
/// that stops it, and whether it was stopped for running too long.
struct GuestResponse {
    response: Response<HyperOutgoingBody>,
    guest: AbortHandle,
    stopped: Arc<AtomicBool>,
}

/// Everything needed to serve a request; cheap to clone per connection.
#[derive(Clone)]
pub struct GuestHandler {
    pre: ProxyPre<State>,
    imports: Imports,
    /// Used as the authority when a request has no `Host` header.
    local_authority: String,
    limits: GuestLimits,
    /// One permit per running instance.
    instances: Arc<Semaphore>,
}

impl GuestHandler {
    pub fn new(
        pre: ProxyPre<State>,
        imports: Imports,
        local_addr: SocketAddr,
        limits: GuestLimits,
    ) -> Self {
        GuestHandler {
            pre,
            imports,
            local_authority: local_addr.to_string(),
            limits,
            // The instance pool is the hard cap: past it, a request waits
            // for a slot (and gets 503 after the wait) rather than failing
            // to instantiate.
            instances: Arc::new(Semaphore::new(
                limits.max_instances.min(runtime::POOLED_INSTANCES as usize),
            )),
        }
    }

    /// Runs the guest on `req` and returns its response (or a 4xx/5xx made
    /// here when the request is unusable or the guest fails before answering).
    /// `req` comes from a client's connection, or from an instance's self
    /// request (see [`crate::outbound`]).
    pub async fn handle<B: RequestBody>(
        &self,
        req: Request<B>,
        client: SocketAddr,
    ) -> Response<LoggedBody> {
        let mut log = RequestLog {
            method: req.method().clone(),
            path: req.uri().path().to_string(),
            start: Instant::now(),
            counts: None,
        };
        let expects_continue = expects_continue(&req);
        let head_request = req.method() == Method::HEAD;
        let request_cap = RequestBodyCap::new(
            self.limits.max_request_body,
            limits::announced_length(req.headers()),
        );
        let over_request_cap = request_cap.exceeded();
        let timeout = self.limits.body_timeout;
        let mut req = req.map(|body| ClientBody::new(body, timeout, expects_continue, request_cap));
        if let Err(message) = prepare(&mut req, client, &self.local_authority) {
            return log.respond(plain(StatusCode::BAD_REQUEST, message), None);
        }
        let Some(instance) = self.instance_slot().await else {
            return log.respond(busy(), None);
        };
        let counts = Arc::new(RequestCounts::default());
        log.counts = Some(counts.clone());
        match self.run_guest(req, instance, counts).await {
            Ok(answer) => self.checked_response(log, answer, &over_request_cap, head_request),
            Err(GuestFailure::Exceeded(exceeded)) => {
                eprintln!(
                    "{} {}: over the host's {}",
                    log.method,
                    log.path,
                    exceeded.name()
                );
                log.respond(exceeded.response(), None)
            }
            Err(GuestFailure::Failed(e)) => {
                eprintln!("{} {}: guest failed: {e:?}", log.method, log.path);
                log.respond(
                    plain(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "500 Internal Server Error\n".into(),
                    ),
                    None,
                )
            }
        }
    }

    /// The guest's response, unless the request or the response is over the
    /// host's body limits: a request over its cap gets the host's 413 (the
    /// guest's own 413 passes: it may say more), a response announced over
    /// its cap the host's 502 (its instance is stopped). A response within
    /// is sent, counted against the cap as it streams.
    fn checked_response(
        &self,
        log: RequestLog,
        answer: GuestResponse,
        over_request_cap: &ExceededFlag,
        head_request: bool,
    ) -> Response<LoggedBody> {
        let GuestResponse {
            response,
            guest,
            stopped,
        } = answer;
        let refusal = match over_request_cap.get() {
            Some(exceeded) if response.status() != StatusCode::PAYLOAD_TOO_LARGE => Some(exceeded),
            _ => limits::refuse_response(
                self.limits.max_response_body,
                head_request,
                response.headers(),
            ),
        };
        if let Some(exceeded) = refusal {
            guest.abort();
            eprintln!(
                "{} {}: over the host's {}",
                log.method,
                log.path,
                exceeded.name()
            );
            return log.respond(exceeded.response(), None);
        }
        let cap = ResponseBodyCap::new(self.limits.max_response_body.filter(|_| !head_request));
        log.respond_streaming(response, guest, cap, stopped)
    }

    /// A permit to run an instance, once one is free within the wait.
    async fn instance_slot(&self) -> Option<OwnedSemaphorePermit> {
        let free = self.instances.clone().acquire_owned();
        tokio::time::timeout(self.limits.instance_wait, free)
            .await
            .ok()?
            .ok()
    }

    /// Runs a fresh instance on `req`; it holds `instance` until it returns
    /// (which may be after the response is sent).
    async fn run_guest<B: RequestBody>(
        &self,
        req: Request<ClientBody<B>>,
        instance: OwnedSemaphorePermit,
        counts: Arc<RequestCounts>,
    ) -> Result<GuestResponse, GuestFailure> {
        let memory_limit = self.limits.instance_memory;
        let (memory, out_of_memory) = InstanceMemory::new(memory_limit);
        let state = State::new(self.imports.clone(), memory, counts.clone());
        let mut store = Store::new(runtime::engine(), state);
        store.limiter(State::limiter);
        runtime::yield_every_tick(&mut store);
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let outparam = store.data_mut().http().new_response_outparam(sender)?;

        let pre = self.pre.clone();
        let timeout = self.limits.request_timeout;
        let stopped = Arc::new(AtomicBool::new(false));
        let timed_out = stopped.clone();
        let guest = tokio::spawn(async move {
            let _instance = instance;
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, outparam)
                    .await
            };
            let Some(limit) = timeout else {
                return run.await;
            };
            // Dropping the guest's future stops it (it yields at every epoch
            // tick, see `runtime`); its store and instance go with it.
            match tokio::time::timeout(limit, run).await {
                Ok(result) => result,
                Err(_) => {
                    timed_out.store(true, Ordering::Relaxed);
                    Err(wasmtime::Error::msg(
                        "the request ran longer than the host allows",
                    ))
                }
            }
        });
        let abort = guest.abort_handle();
        let exceeded = |stopped: &AtomicBool| {
            if stopped.load(Ordering::Relaxed) {
                timeout.map(Exceeded::RequestTimeout)
            } else if out_of_memory.load(Ordering::Relaxed) {
                Some(Exceeded::InstanceMemory(memory_limit))
            } else {
                None
            }
        };

        match receiver.await {
            Ok(Ok(response)) => {
                // An answer acknowledges what the request wrote: it goes
                // out once the store has it on the disk.
                if counts.changed_store() {
                    if let Err(e) = self.imports.keyvalue.sync().await {
                        abort.abort();
                        return Err(anyhow::anyhow!("the key-value store did not sync: {e}").into());
                    }
                }
                // The guest may keep running (streaming the body); report a
                // failure after the headers went out, as Spin does.
                tokio::spawn(async move {
                    match guest.await {
                        Ok(Ok(())) => {}
                        Err(e) if e.is_cancelled() => {}
                        Ok(Err(e)) => eprintln!("guest failed after responding: {e:?}"),
                        Err(e) => eprintln!("guest panicked after responding: {e}"),
                    }
                });
                Ok(GuestResponse {
                    response,
                    guest: abort,
                    stopped,
                })
            }
            Ok(Err(code)) => Err(anyhow::anyhow!("guest answered with error code {code:?}").into()),
            Err(_) => match guest.await {
                Ok(Ok(())) => {
                    Err(anyhow::anyhow!("guest returned without setting a response").into())
                }
                Ok(Err(e)) => match exceeded(&stopped) {
                    Some(limit) => Err(GuestFailure::Exceeded(limit)),
                    None => Err(anyhow::Error::from(e)
                        .context("guest trapped before responding")
                        .into()),
                },
                Err(e) => Err(anyhow::Error::from(e).context("guest task failed").into()),
            },
        }
    }
}

/// Makes the URI absolute (`http://<Host><path?query>`) and adds the headers
/// Spin gives a component on the catch-all route `/...`. Spin headers the
/// client sent are replaced, so they cannot be spoofed.
fn prepare<B>(req: &mut Request<B>, client: SocketAddr, local: &str) -> Result<(), String> {
    let host = match req.headers().get(HOST) {
        Some(h) => h
            .to_str()
            .map_err(|_| "invalid Host header\n".to_string())?
            .to_string(),
        None => local.to_string(),
    };
    let authority: Authority = host
        .parse()
        .map_err(|_| "invalid Host header\n".to_string())?;
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let path = req.uri().path().to_string();
    let uri = Uri::builder()
        .scheme(UriScheme::HTTP)
        .authority(authority)
        .path_and_query(path_and_query.as_str())
        .build()
        .map_err(|_| "invalid request target\n".to_string())?;
    *req.uri_mut() = uri;

    let full_url = format!("http://{host}{path_and_query}");
    let headers = [
        ("spin-full-url", full_url.as_str()),
        ("spin-path-info", path.as_str()),
        ("spin-matched-route", ROUTE),
        ("spin-base-path", "/"),
        ("spin-raw-component-route", ROUTE),
        ("spin-component-route", ""),
        ("spin-client-addr", &client.to_string()),
    ];
    for (name, value) in headers {
        let value =
            HeaderValue::from_str(value).map_err(|_| "invalid request target\n".to_string())?;
        req.headers_mut()
            .insert(HeaderName::from_static(name), value);
    }
    Ok(())
}

/// Whether the client waits for `100 Continue` before sending its body.
fn expects_continue<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
}

/// The answer when no instance is free within the wait.
fn busy() -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from_static(
        br#"{"message":"503 Service Unavailable"}"#,
    ))
    .map_err(|never| match never {})
    .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn plain(status: StatusCode, message: String) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(message))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// What the access log line says about a request. The path is logged without
/// its query string (it may carry `private_token`); no header is ever logged.
/// A request the guest ran ends the line with its store and S3 counts.
struct RequestLog {
    method: Method,
    path: String,
    start: Instant,
    counts: Option<Arc<RequestCounts>>,
}

impl RequestLog {
    fn respond(
        self,
        response: Response<HyperOutgoingBody>,
        guest: Option<AbortHandle>,
    ) -> Response<LoggedBody> {
        let status = response.status();
        response.map(|inner| LoggedBody {
            inner,
            guest,
            finished: AtomicBool::new(false),
            log: Some((self, status)),
            cap: ResponseBodyCap::default(),
            stopped: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The guest's response, its body counted against `cap`; `stopped`
    /// says the guest was stopped for running too long.
    fn respond_streaming(
        self,
        response: Response<HyperOutgoingBody>,
        guest: AbortHandle,
        cap: ResponseBodyCap,
        stopped: Arc<AtomicBool>,
    ) -> Response<LoggedBody> {
        let mut response = self.respond(response, Some(guest));
        let body = response.body_mut();
        body.cap = cap;
        body.stopped = stopped;
        response
    }
}

/// The response body: the guest's stream, plus a log line when it is done and
/// the guest's cancellation when the client goes away before its end (as
/// Spin does). A guest whose response is complete may run on: it may be
/// draining the rest of the request body. A body that goes over the host's
/// response cap, or whose guest was stopped for running too long, fails:
/// the connection is cut, so the client cannot take it for complete.
pub struct LoggedBody {
    inner: HyperOutgoingBody,
    guest: Option<AbortHandle>,
    finished: AtomicBool,
    log: Option<(RequestLog, StatusCode)>,
    cap: ResponseBodyCap,
    stopped: Arc<AtomicBool>,
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(frame) => frame,
        };
        match frame {
            None if self.stopped.load(Ordering::Relaxed) => {
                Poll::Ready(Some(Err(wasmtime_wasi_http::Error::ConnectionTerminated)))
            }
            None => {
                self.finished.store(true, Ordering::Relaxed);
                Poll::Ready(None)
            }
            Some(Ok(frame)) => match self.cap.admit(&frame) {
                Ok(()) => Poll::Ready(Some(Ok(frame))),
                Err(over) => {
                    eprintln!("response over the host's max_response_body: connection cut");
                    Poll::Ready(Some(Err(over)))
                }
            },
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.finished.store(true, Ordering::Relaxed);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(guest) = self.guest.take() {
            if !self.finished.load(Ordering::Relaxed) {
                guest.abort();
            }
        }
        if let Some((log, status)) = self.log.take() {
            let ms = log.start.elapsed().as_secs_f64() * 1000.0;
            let counts = log.counts.map(|c| format!(" {c}")).unwrap_or_default();
            eprintln!(
                "{} {} {} {ms:.1}ms{counts}",
                log.method,
                log.path,
                status.as_u16()
            );
        }
    }
}

/// A request body the guest can be given: a client connection's, or a
/// self request's.
pub trait RequestBody:
    Body<Data = Bytes, Error: Into<wasmtime_wasi_http::Error>> + Send + Unpin + 'static
{
}

impl<B> RequestBody for B where
    B: Body<Data = Bytes, Error: Into<wasmtime_wasi_http::Error>> + Send + Unpin + 'static
{
}

/// The client's request body as the guest sees it.
///
/// - A read that gets no byte for the body timeout fails, so a client that
///   stops sending mid-body does not hold its instance for ever.
/// - Dropped before its end (the guest refused the request without reading
///   it all), the rest is read and discarded, up to [`DRAIN_BYTES`] or
///   [`DRAIN_TIME`], before hyper closes the connection. Closing a socket
///   with unread data resets it, and a client still sending its body (a
///   streaming `fetch`) may then lose the response. A client that waits for
///   `100 Continue` and was not told to send is not drained.
pub struct ClientBody<B: RequestBody = Incoming> {
    inner: Option<B>,
    /// What the host lets through (see [`limits`]).
    cap: RequestBodyCap,
    timeout: Duration,
    stall: Option<Pin<Box<Sleep>>>,
    expects_continue: bool,
    /// The guest asked for body bytes at least once.
    polled: bool,
    /// The body ended or failed: nothing is left to drain.
    done: bool,
}

impl<B: RequestBody> ClientBody<B> {
    fn new(inner: B, timeout: Duration, expects_continue: bool, cap: RequestBodyCap) -> Self {
        ClientBody {
            inner: Some(inner),
            cap,
            timeout,
            stall: None,
            expects_continue,
            polled: false,
            done: false,
        }
    }

    /// Ready once the body has delivered nothing for the timeout.
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let timeout = self.timeout;
        self.stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)))
            .as_mut()
            .poll(cx)
    }

    fn needs_draining(&self, body: &B) -> bool {
        !self.done && !body.is_end_stream() && (self.polled || !self.expects_continue)
    }
}

impl<B: RequestBody> Body for ClientBody<B> {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Some(refusal) = this.cap.refusal() {
            return Poll::Ready(Some(Err(refusal)));
        }
        this.polled = true;
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.stall = None;
                if !matches!(frame, Some(Ok(_))) {
                    this.done = true;
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into).and_then(|f| this.cap.admit(f))))
            }
            Poll::Pending => match this.poll_stalled(cx) {
                Poll::Ready(()) => {
                    this.done = true;
                    this.inner = None;
                    Poll::Ready(Some(Err(wasmtime_wasi_http::Error::ConnectionReadTimeout)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map(|b| b.size_hint())
            .unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl<B: RequestBody> Drop for ClientBody<B> {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if !self.needs_draining(&body) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body));
        }
    }
}

/// Reads and drops up to [`DRAIN_BYTES`] of `body` within [`DRAIN_TIME`].
async fn drain<B: RequestBody>(mut body: B) {
    let discard = async {
        let mut left = DRAIN_BYTES;
        while left > 0 {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        left = left.saturating_sub(data.len());
                    }
                }
                Some(Err(_)) | None => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, discard).await;
}
