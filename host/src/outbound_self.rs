//! Self requests answered in this process.
//!
//! Spin sends a self request (authority `self.alt`, or none) to its own
//! listener, where another instance of the application takes it. The
//! registry's listener is in this process, so the request is handed to its
//! handler as the listener hands it a request, with the `Host` a loopback
//! connection would have had and the listener's own address as the
//! client's: the same headers, limits and log line, without writing and
//! parsing HTTP/1 twice and copying the body through the kernel both ways.
//! The timeouts the guest set apply as over a connection (`outbound.rs`).
//! The component's large uploads send the rest of their body this way to
//! a helper instance (`src/blob/sha256_helper.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock, Weak};

use http_body_util::BodyExt as _;
use wasmtime_wasi_http::{Error, WasiBody};

use crate::handler::GuestHandler;

/// The registry's own listener, whose handler answers self requests once
/// the registry has made it.
#[derive(Clone)]
pub struct SelfRequests {
    /// The listener's address, as a client reaches it.
    address: SocketAddr,
    /// Held weakly: the handler's own outbound hooks hold this, and a
    /// registry that stops must let both go.
    handler: Arc<OnceLock<Weak<GuestHandler>>>,
}

impl SelfRequests {
    /// Self requests to the registry listening on `listener` (an
    /// unspecified address is reached over loopback).
    pub fn new(listener: SocketAddr) -> SelfRequests {
        let ip = match listener.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SelfRequests {
            address: SocketAddr::new(ip, listener.port()),
            handler: Arc::default(),
        }
    }

    /// Answers self requests with `handler` from now on.
    pub fn connect(&self, handler: &Arc<GuestHandler>) {
        let _ = self.handler.set(Arc::downgrade(handler));
    }

    /// Runs a fresh instance on `request` and returns its answer, the body
    /// streamed as the instance writes it.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let handler = self
            .handler
            .get()
            .and_then(Weak::upgrade)
            .ok_or(Error::ConnectionRefused)?;
        let request = as_received(request, self.address)?;
        let response = handler.handle(request, self.address).await;
        Ok(response.map(|body| body.boxed_unsync()))
    }
}

/// `request` as the listener would receive it over a connection to
/// `address`: an origin-form URI, and the `Host` a client sets for it.
fn as_received<B>(
    mut request: http::Request<B>,
    address: SocketAddr,
) -> Result<http::Request<B>, Error> {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
    let host = http::HeaderValue::from_str(&address.to_string())
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    request.headers_mut().insert(http::header::HOST, host);
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_request_arrives_as_one_over_loopback() {
        let request = http::Request::post("http://self.alt/-/sha256?x=1")
            .header(http::header::HOST, "self.alt")
            .body(())
            .unwrap();
        let own: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let received = as_received(request, own).unwrap();
        assert_eq!(received.uri(), "/-/sha256?x=1");
        assert_eq!(received.headers()[http::header::HOST], "127.0.0.1:3000");
        let relative = http::Request::get("/").body(()).unwrap();
        assert_eq!(as_received(relative, own).unwrap().uri(), "/");
    }

    #[test]
    fn an_unspecified_listener_is_reached_over_loopback() {
        let any = SelfRequests::new("0.0.0.0:3000".parse().unwrap());
        assert_eq!(any.address, "127.0.0.1:3000".parse().unwrap());
        let any6 = SelfRequests::new("[::]:3000".parse().unwrap());
        assert_eq!(any6.address, "[::1]:3000".parse().unwrap());
        let own = SelfRequests::new("127.0.0.2:3000".parse().unwrap());
        assert_eq!(own.address, "127.0.0.2:3000".parse().unwrap());
    }
}
