//! A fault-injecting TCP proxy for the S3 API, put between the component and
//! the S3 server.
//!
//! It serves one HTTP/1.1 request per connection (it asks the upstream to
//! close after answering, and the component opens a connection per request
//! anyway). For each request it draws from a seeded generator whether to
//! inject the mode's fault, and where:
//!
//! - [`Fault::Status`]: answer an S3 error (`500 InternalError`, `503
//!   SlowDown`) after reading the request body, without asking the upstream;
//! - [`Fault::Reset`]: cut the connection with a TCP reset in the middle of
//!   the body: the request body when there is one (the upstream gets a
//!   truncated request), else the response;
//! - [`Fault::Stall`]: stop forwarding at the same kind of point and keep the
//!   connection open, so that only the registry's S3 timeouts end it.
//!
//! Every request draws the same number of values whatever happens to it, so
//! with requests sent one after the other the same requests fail on every
//! run with the same seed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::rng::Rng;

/// Largest request or response head read.
const MAX_HEAD: usize = 64 * 1024;
/// How long a stalled or draining connection is held at most (the registry
/// gives up long before; this only keeps a broken run from hanging).
const HOLD_AT_MOST: Duration = Duration::from_secs(120);

/// What goes wrong with a request the generator picks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// An S3 error answer with this status (500 or 503).
    Status(u16),
    /// A TCP reset in the middle of the body.
    Reset,
    /// No more bytes from the middle of the body on, connection kept open.
    Stall,
}

/// How the proxy treats requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    PassThrough,
    /// `fault` for `percent` of the requests.
    Inject {
        fault: Fault,
        percent: u32,
    },
}

/// A running proxy; it lives as long as the test's runtime.
pub struct FaultProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: OnceLock<SocketAddr>,
    mode: Mutex<Mode>,
    rng: Mutex<Rng>,
    requests: AtomicUsize,
    /// One line per injected fault.
    injected: Mutex<Vec<String>>,
}

/// What to do with one request.
enum Plan {
    Forward,
    Answer(u16),
    /// Cut at `fraction` (of `u64::MAX`) of the body, then reset or stall.
    Cut {
        fault: Fault,
        fraction: u64,
    },
}

impl FaultProxy {
    /// Listens on an ephemeral loopback port; requests fail until
    /// [`Self::set_upstream`] is called.
    pub async fn start(seed: u64) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let address = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream: OnceLock::new(),
            mode: Mutex::new(Mode::PassThrough),
            rng: Mutex::new(Rng::new(seed)),
            requests: AtomicUsize::new(0),
            injected: Mutex::new(Vec::new()),
        });
        let accepting = shared.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, accepting.clone()));
            }
        });
        FaultProxy { address, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Where requests go: the S3 server's `http://host:port`.
    pub fn set_upstream(&self, endpoint: &str) {
        let address = endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("an http://ip:port endpoint");
        self.shared
            .upstream
            .set(address)
            .expect("the upstream is set once");
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Requests seen so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// What was injected, one line per fault.
    pub fn injected(&self) -> Vec<String> {
        self.shared.injected.lock().unwrap().clone()
    }
}

impl Shared {
    /// Draws the plan of one request: always two values.
    fn plan(&self, head: &Head) -> Plan {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mode = *self.mode.lock().unwrap();
        let (hit, fraction) = {
            let mut rng = self.rng.lock().unwrap();
            let percent = match mode {
                Mode::PassThrough => 0,
                Mode::Inject { percent, .. } => percent,
            };
            (rng.chance(percent), rng.next_u64())
        };
        let fault = match mode {
            Mode::Inject { fault, .. } if hit => fault,
            _ => return Plan::Forward,
        };
        self.injected
            .lock()
            .unwrap()
            .push(format!("{fault:?} {}", head.action()));
        match fault {
            Fault::Status(status) => Plan::Answer(status),
            Fault::Reset | Fault::Stall => Plan::Cut { fault, fraction },
        }
    }
}

/// A parsed request or response head.
struct Head {
    /// The head's bytes, up to and including the blank line.
    bytes: Vec<u8>,
    /// `PUT /bucket/key?partNumber=1 HTTP/1.1` (or the status line).
    request_line: String,
    content_length: Option<u64>,
}

impl Head {
    fn parse(bytes: Vec<u8>) -> Head {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let mut lines = text.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_string();
        let content_length = lines
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse().ok());
        Head {
            bytes,
            request_line,
            content_length,
        }
    }

    /// What the request asks S3 for, e.g. `UploadPart 2 files/ab12...`.
    fn action(&self) -> String {
        let mut words = self.request_line.split(' ');
        let method = words.next().unwrap_or_default();
        let target = words.next().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        };
        let key = path.splitn(3, '/').nth(2).unwrap_or(path);
        let action = match (method, param("uploadId"), param("partNumber")) {
            ("POST", None, _) => "CreateMultipartUpload".to_string(),
            ("POST", Some(_), _) => "CompleteMultipartUpload".to_string(),
            ("PUT", Some(_), Some(part)) => format!("UploadPart {part}"),
            ("DELETE", Some(_), _) => "AbortMultipartUpload".to_string(),
            ("PUT", ..) => "PutObject".to_string(),
            ("GET", ..) => "GetObject".to_string(),
            ("DELETE", ..) => "DeleteObject".to_string(),
            (other, ..) => other.to_string(),
        };
        format!("{action} {key}")
    }

    /// The head with `Connection: close` instead of any `Connection` header.
    fn closing(&self) -> Vec<u8> {
        let text = String::from_utf8_lossy(&self.bytes);
        let mut out = String::new();
        for line in text.split("\r\n").filter(|l| !l.is_empty()) {
            let is_connection = line
                .split_once(':')
                .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("connection"));
            if !is_connection {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str("Connection: close\r\n\r\n");
        out.into_bytes()
    }
}

/// Reads up to the end of a head; returns it and the bytes read past it.
async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> Option<(Head, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            return Some((Head::parse(buffer), rest));
        }
        if buffer.len() > MAX_HEAD {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    let Some((head, early)) = read_head(&mut client).await else {
        return;
    };
    let plan = shared.plan(&head);
    let Some(upstream) = shared.upstream.get().copied() else {
        return;
    };
    match plan {
        Plan::Forward => forward(client, upstream, &head, &early).await,
        Plan::Answer(status) => answer_error(client, &head, early.len(), status).await,
        Plan::Cut { fault, fraction } => {
            cut(client, upstream, &head, &early, fault, fraction).await
        }
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, head: &Head, early: &[u8]) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    if server.write_all(&head.closing()).await.is_err() || server.write_all(early).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// Reads the request body, then answers an S3 error document.
async fn answer_error(mut client: TcpStream, head: &Head, early: usize, status: u16) {
    let left = head
        .content_length
        .unwrap_or(0)
        .saturating_sub(early as u64);
    let drained = tokio::time::timeout(
        HOLD_AT_MOST,
        tokio::io::copy(&mut (&mut client).take(left), &mut tokio::io::sink()),
    )
    .await;
    if !matches!(drained, Ok(Ok(n)) if n == left) {
        return;
    }
    let (reason, code, message) = match status {
        503 => (
            "Service Unavailable",
            "SlowDown",
            "Please reduce your request rate.",
        ),
        _ => (
            "Internal Server Error",
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(answer.as_bytes()).await;
    let _ = client.shutdown().await;
}

/// Forwards up to a point in the middle of a body, then resets or stalls:
/// in the request body when it has one, else in the response.
async fn cut(
    mut client: TcpStream,
    upstream: SocketAddr,
    head: &Head,
    early: &[u8],
    fault: Fault,
    fraction: u64,
) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let request_body = head.content_length.unwrap_or(0);
    if request_body > 0 {
        let keep = point_in(request_body, fraction);
        let sent = server.write_all(&head.closing()).await.is_ok()
            && copy_exactly(early, &mut client, &mut server, keep).await;
        if sent {
            give_up(client, fault).await;
        }
        return;
    }
    if server.write_all(&head.closing()).await.is_err() || server.write_all(early).await.is_err() {
        return;
    }
    let Some((response, body_start)) = read_head(&mut server).await else {
        return;
    };
    // Mid-body when there is a body, else mid-head.
    let (prefix, keep) = match response.content_length {
        Some(len) if len > 0 => (response.bytes.len(), point_in(len, fraction)),
        _ => (0, point_in(response.bytes.len() as u64, fraction)),
    };
    let mut sent = response.bytes;
    sent.extend_from_slice(&body_start);
    let sent = copy_exactly(&sent, &mut server, &mut client, prefix as u64 + keep).await;
    drop(server);
    if sent {
        give_up(client, fault).await;
    }
}

/// `0..len`, at `fraction` of the way.
fn point_in(len: u64, fraction: u64) -> u64 {
    ((u128::from(len) * u128::from(fraction)) >> 64) as u64
}

/// Writes the first `count` bytes of `already` followed by `from`'s stream
/// to `to`. False when either side failed first.
async fn copy_exactly(
    already: &[u8],
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    count: u64,
) -> bool {
    let first = already.len().min(count as usize);
    if to.write_all(&already[..first]).await.is_err() {
        return false;
    }
    let left = count - first as u64;
    matches!(tokio::io::copy(&mut from.take(left), to).await, Ok(n) if n == left)
        && to.flush().await.is_ok()
}

/// Ends the client's connection the way `fault` says.
async fn give_up(mut client: TcpStream, fault: Fault) {
    match fault {
        Fault::Reset => {
            let _ = client.set_zero_linger();
            drop(client);
        }
        _ => {
            // Take whatever still comes and never answer, until the client
            // goes away.
            let _ = tokio::time::timeout(
                HOLD_AT_MOST,
                tokio::io::copy(&mut client, &mut tokio::io::sink()),
            )
            .await;
        }
    }
}
