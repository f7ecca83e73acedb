//! A minimal HTTP/1.1 client for the admin commands (`genreg gc`): presigned
//! S3 requests with small bodies, one after the other.
//!
//! It keeps one keep-alive connection and opens a new one when the origin
//! changes or the server closed it. `https` goes through rustls with the
//! webpki roots, the TLS stack wasmtime-wasi-http already brings into the
//! build. Response bodies are read whole (up to [`MAX_BODY`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Largest response body read (a ListObjectsV2 page is well under 1 MiB).
pub const MAX_BODY: usize = 64 << 20;
/// How long one request may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A response, its body read whole.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Response {
    /// The body as text (lossy), shortened for error messages.
    pub fn body_excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        match text.char_indices().nth(500) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None => text.to_string(),
        }
    }
}

/// Where a connection goes: scheme, host and port.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    tls: bool,
    host: String,
    port: u16,
}

impl Target {
    fn of(uri: &Uri) -> anyhow::Result<Target> {
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => bail!("{uri}: only http and https URLs are supported"),
        };
        let host = uri.host().with_context(|| format!("{uri}: no host"))?;
        // `Uri::host` keeps the brackets of an IPv6 literal.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Target {
            tls,
            host: host.to_string(),
            port,
        })
    }
}

/// See the module documentation.
pub struct HttpClient {
    tls: Arc<rustls::ClientConfig>,
    conn: Option<(Target, SendRequest<Full<Bytes>>)>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    pub fn new() -> Self {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        HttpClient {
            tls: Arc::new(tls),
            conn: None,
        }
    }

    /// Sends one request to `url` and reads the whole response. A request
    /// that fails on a reused connection (the server may have closed it) is
    /// sent once more on a fresh one, so use it for idempotent requests.
    pub async fn send(
        &mut self,
        method: Method,
        url: &str,
        body: Bytes,
    ) -> anyhow::Result<Response> {
        let uri: Uri = url.parse().with_context(|| format!("invalid URL {url}"))?;
        let target = Target::of(&uri)?;
        let attempt = async {
            if let Some((open, mut sender)) = self.conn.take() {
                if open == target && sender.ready().await.is_ok() {
                    if let Ok(response) = exchange(&mut sender, &method, &uri, &body).await {
                        self.conn = Some((open, sender));
                        return Ok(response);
                    }
                }
            }
            let mut sender = self.connect(&target).await?;
            let response = exchange(&mut sender, &method, &uri, &body).await?;
            self.conn = Some((target.clone(), sender));
            anyhow::Ok(response)
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, attempt).await {
            Ok(result) => result.with_context(|| format!("{method} {}", redacted(&uri))),
            Err(_) => {
                self.conn = None;
                bail!(
                    "{method} {}: no answer within {REQUEST_TIMEOUT:?}",
                    redacted(&uri)
                )
            }
        }
    }

    async fn connect(&self, target: &Target) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .with_context(|| format!("connecting to {}:{}", target.host, target.port))?;
        let _ = stream.set_nodelay(true);
        if !target.tls {
            return handshake(stream).await;
        }
        let name = server_name(&target.host)?;
        let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, stream)
            .await
            .with_context(|| format!("TLS handshake with {}", target.host))?;
        handshake(stream).await
    }
}

/// HTTP/1.1 over `io`; the connection is driven on its own task.
async fn handshake<T>(io: T) -> anyhow::Result<SendRequest<Full<Bytes>>>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &Method,
    uri: &Uri,
    body: &Bytes,
) -> anyhow::Result<Response> {
    let authority = uri.authority().context("no authority")?.as_str();
    let request = Request::builder()
        .method(method.clone())
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(Full::new(body.clone()))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the response body: {e}"))?
        .to_bytes();
    Ok(Response { status, body })
}

fn server_name(host: &str) -> anyhow::Result<rustls::pki_types::ServerName<'static>> {
    use rustls::pki_types::ServerName;
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(ServerName::from(ip));
    }
    ServerName::try_from(host.to_string())
        .with_context(|| format!("invalid TLS server name {host}"))
}

/// The URL without its query: presigned URLs carry signatures there.
fn redacted(uri: &Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or(""),
        uri.authority().map_or("", |a| a.as_str()),
        uri.path()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_default_their_port_and_drop_ipv6_brackets() {
        let t = Target::of(&"https://s3.example.com/b/k?x=1".parse().unwrap()).unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port),
            (true, "s3.example.com", 443)
        );
        let t = Target::of(&"http://[::1]:9000/b".parse().unwrap()).unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (false, "::1", 9000));
        assert!(Target::of(&"ftp://h/".parse().unwrap()).is_err());
    }

    #[test]
    fn errors_never_show_the_signature() {
        let uri: Uri = "http://h:1/b/k?X-Amz-Signature=secret".parse().unwrap();
        assert_eq!(redacted(&uri), "http://h:1/b/k");
    }

    #[test]
    fn server_names_accept_hosts_and_ips() {
        assert!(server_name("s3.example.com").is_ok());
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("::1").is_ok());
    }

    /// A local server answers two requests on one connection, then the
    /// client reconnects after the server closes it.
    #[tokio::test]
    async fn reuses_and_reopens_connections() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut connections = 0;
            // First connection: two keep-alive answers, then close.
            // Second connection: one answer.
            for answers in [2, 1] {
                let (mut stream, _) = listener.accept().await.unwrap();
                connections += 1;
                for n in 0..answers {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        let read = stream.read(&mut buf).await.unwrap();
                        assert!(read > 0);
                        seen.extend_from_slice(&buf[..read]);
                    }
                    let close = n + 1 == answers;
                    let body = format!("{connections}");
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{}\r\n",
                        body.len(),
                        if close { "Connection: close\r\n" } else { "" }
                    );
                    stream.write_all(head.as_bytes()).await.unwrap();
                    stream.write_all(body.as_bytes()).await.unwrap();
                }
            }
        });
        let mut client = HttpClient::new();
        let url = format!("http://{addr}/x");
        let mut bodies = Vec::new();
        for _ in 0..3 {
            let r = client.send(Method::GET, &url, Bytes::new()).await.unwrap();
            assert_eq!(r.status, StatusCode::OK);
            bodies.push(String::from_utf8(r.body.to_vec()).unwrap());
        }
        assert_eq!(bodies, ["1", "1", "2"]);
        server.await.unwrap();
    }
}
