//! A small HTTP/1.1 server loop shared by the registry and the embedded S3
//! server: accept, serve each connection on its own task, and on shutdown stop
//! accepting, then wait for the requests in flight to finish.
//!
//! Every connection is bounded ([`ConnectionLimits`]): its request head must
//! arrive within the header timeout, a connection with no request in progress
//! that stays silent for the idle timeout is closed, and beyond the
//! connection cap a new connection is answered 503 and closed.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Sleep;

/// How long shutdown waits for requests in flight before dropping them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections over the cap being answered 503 at once; beyond, they are
/// closed without an answer.
const MAX_REFUSING: usize = 64;

/// How long a connection over the cap gets to take its 503 (writing it, then
/// reading what the client sends so that closing does not reset the answer).
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// How much of a refused connection's request is read before closing.
const REFUSAL_READ: usize = 64 * 1024;

/// What one server allows its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time for a request head to arrive in full, counted from the moment
    /// the connection is ready for a request (opened, or its previous
    /// response sent).
    pub header_timeout: Duration,
    /// A connection with no request in progress that sends nothing for this
    /// long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(20),
            max_connections: 512,
        }
    }
}

/// A running server; [`ServerHandle::shutdown`] stops it.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for open requests to complete.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Serves `listener` with the default limits, building one service per
/// connection with `make`, which receives the peer's address.
pub fn spawn<M, S, B>(listener: TcpListener, make: M) -> io::Result<ServerHandle>
where
    M: Fn(SocketAddr) -> S + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    spawn_with(listener, ConnectionLimits::default(), make)
}

/// Serves `listener` within `limits`.
pub fn spawn_with<M, S, B>(
    listener: TcpListener,
    limits: ConnectionLimits,
    make: M,
) -> io::Result<ServerHandle>
where
    M: Fn(SocketAddr) -> S + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let task = tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        eprintln!("accept failed on {addr}: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stopped.changed() => break,
            };
            let Ok(slot) = connections.clone().try_acquire_owned() else {
                if let Ok(refusal) = refusing.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse_busy(stream).await;
                        drop(refusal);
                    });
                }
                continue;
            };
            let _ = stream.set_nodelay(true);
            let activity = Arc::new(Activity::default());
            let io = IdleTimeoutIo::new(stream, activity.clone(), limits.idle_timeout);
            let service = TrackRequests {
                inner: make(peer),
                activity,
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(io), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                // Client resets, timeouts and half-read bodies end up here;
                // nothing to do.
                let _ = conn.await;
                drop(slot);
            });
        }
        drop(listener);
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    });
    Ok(ServerHandle { addr, stop, task })
}

/// The answer to a connection over the cap.
fn busy_response() -> Vec<u8> {
    let body = r#"{"message":"503 Service Unavailable"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\n\
         content-type: application/json\r\n\
         retry-after: 1\r\n\
         connection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers 503 at once, then reads (and drops) a little of what the client
/// sends before closing, so that the close does not reset the answer away.
async fn refuse_busy(mut stream: TcpStream) {
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        stream.write_all(&busy_response()).await?;
        stream.shutdown().await?;
        let mut buf = [0u8; 8192];
        let mut read = 0;
        while read < REFUSAL_READ {
            match stream.read(&mut buf).await? {
                0 => break,
                n => read += n,
            }
        }
        Ok::<_, io::Error>(())
    })
    .await;
}

/// The requests of one connection that are in progress: from the call of
/// the service until the response body is done or dropped.
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
}

impl Activity {
    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }
}

/// Holds a request "in progress" while it lives.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection's socket, failing a read with `TimedOut` when no request
/// is in progress and the client sent nothing for the idle timeout. While a
/// request is in progress, reads wait as long as the request does (its body
/// has its own limit in the handler).
struct IdleTimeoutIo {
    stream: TcpStream,
    activity: Arc<Activity>,
    timeout: Duration,
    idle: Option<Pin<Box<Sleep>>>,
}

impl IdleTimeoutIo {
    fn new(stream: TcpStream, activity: Arc<Activity>, timeout: Duration) -> Self {
        IdleTimeoutIo {
            stream,
            activity,
            timeout,
            idle: None,
        }
    }

    /// Ready with an error once the connection has been idle too long.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.activity.busy() {
            self.idle = None;
            return Poll::Pending;
        }
        let timeout = self.timeout;
        let idle = self
            .idle
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        idle.as_mut()
            .poll(cx)
            .map(|()| io::Error::new(io::ErrorKind::TimedOut, "idle connection timed out"))
    }
}

impl AsyncRead for IdleTimeoutIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.idle = None;
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

impl AsyncWrite for IdleTimeoutIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The connection's service, marking each request in progress until its
/// response body is done.
struct TrackRequests<S> {
    inner: S,
    activity: Arc<Activity>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<Incoming>> for TrackRequests<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::new(self.activity.clone());
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|inner| TrackedBody {
                inner: Box::pin(inner),
                _in_flight: in_flight,
            }))
        })
    }
}

/// A response body that keeps its request in progress while it lives.
struct TrackedBody<B> {
    inner: Pin<Box<B>>,
    _in_flight: InFlight,
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.inner.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
