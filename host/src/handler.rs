//! Serving one HTTP request the way Spin's HTTP trigger does: a fresh store
//! and instance of the pre-instantiated component, the request handed to
//! `wasi:http/incoming-handler` with its original path and query, scheme
//! `http`, the `Host` header as authority and Spin's `spin-*` headers, and
//! the response streamed back as the guest writes it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST};
use http::uri::{Authority, Scheme as UriScheme, Uri};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::task::AbortHandle;
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

use crate::runtime;
use crate::state::{Imports, State};

/// The route the component is mounted on, as in the repo's spin.toml.
const ROUTE: &str = "/...";

/// Everything needed to serve a request; cheap to clone per connection.
#[derive(Clone)]
pub struct GuestHandler {
    pre: ProxyPre<State>,
    imports: Imports,
    /// Used as the authority when a request has no `Host` header.
    local_authority: String,
}

impl GuestHandler {
    pub fn new(pre: ProxyPre<State>, imports: Imports, local_addr: SocketAddr) -> Self {
        GuestHandler {
            pre,
            imports,
            local_authority: local_addr.to_string(),
        }
    }

    /// Runs the guest on `req` and returns its response (or a 4xx/5xx made
    /// here when the request is unusable or the guest fails before answering).
    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<LoggedBody> {
        let log = RequestLog {
            method: req.method().clone(),
            path: req.uri().path().to_string(),
            start: Instant::now(),
        };
        if let Err(message) = prepare(&mut req, client, &self.local_authority) {
            return log.respond(plain(StatusCode::BAD_REQUEST, message), None);
        }
        match self.run_guest(req).await {
            Ok((response, guest)) => log.respond(response, Some(guest)),
            Err(e) => {
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

    async fn run_guest(
        &self,
        req: Request<Incoming>,
    ) -> anyhow::Result<(Response<HyperOutgoingBody>, AbortHandle)> {
        let mut store = Store::new(runtime::engine(), State::new(self.imports.clone()));
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let outparam = store.data_mut().http().new_response_outparam(sender)?;

        let pre = self.pre.clone();
        let guest = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, outparam)
                .await
        });
        let abort = guest.abort_handle();

        match receiver.await {
            Ok(Ok(response)) => {
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
                Ok((response, abort))
            }
            Ok(Err(code)) => anyhow::bail!("guest answered with error code {code:?}"),
            Err(_) => match guest.await {
                Ok(Ok(())) => anyhow::bail!("guest returned without setting a response"),
                Ok(Err(e)) => {
                    Err(anyhow::Error::from(e).context("guest trapped before responding"))
                }
                Err(e) => Err(anyhow::Error::from(e).context("guest task failed")),
            },
        }
    }
}

/// Makes the URI absolute (`http://<Host><path?query>`) and adds the headers
/// Spin gives a component on the catch-all route `/...`. Spin headers the
/// client sent are replaced, so they cannot be spoofed.
fn prepare(req: &mut Request<Incoming>, client: SocketAddr, local: &str) -> Result<(), String> {
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
struct RequestLog {
    method: Method,
    path: String,
    start: Instant,
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
            log: Some((self, status)),
        })
    }
}

/// The response body: the guest's stream, plus a log line when it is done and
/// the guest's cancellation when the client goes away (as Spin does).
pub struct LoggedBody {
    inner: HyperOutgoingBody,
    guest: Option<AbortHandle>,
    log: Option<(RequestLog, StatusCode)>,
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(guest) = self.guest.take() {
            guest.abort();
        }
        if let Some((log, status)) = self.log.take() {
            let ms = log.start.elapsed().as_secs_f64() * 1000.0;
            eprintln!("{} {} {} {ms:.1}ms", log.method, log.path, status.as_u16());
        }
    }
}
