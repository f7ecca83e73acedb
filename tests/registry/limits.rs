//! What `genreg` allows a client to hold, and refusals reaching clients that
//! are still sending: header, idle and body timeouts, the connection and
//! instance caps, the instance memory limit, refusals answered to streaming
//! uploads, and the administrator token's expiry and revocation.
//!
//! Timeouts are configured small and waited for generously: the tests check
//! what happens, never how fast.

use std::io;
use std::time::Duration;

use genreg::genreg_token::{Role, Scope};
use genreg::Limits;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{self, start_configured, TestRegistry};

/// An endpoint that answers 200 to anyone.
const HEALTH: &str = "/-/health";

/// How long a test waits for something that should happen within a second.
const GENEROUS: Duration = Duration::from_secs(30);

/// Limits that never get in the way; each test tightens the one it checks.
fn roomy() -> Limits {
    Limits {
        header_timeout: Duration::from_secs(600),
        idle_timeout: Duration::from_secs(600),
        body_timeout: Duration::from_secs(600),
        ..Limits::default()
    }
}

async fn start_limited(limits: Limits) -> TestRegistry {
    start_configured(&[], |config| config.limits = limits).await
}

fn address(r: &TestRegistry) -> String {
    r.registry.url().trim_start_matches("http://").to_string()
}

async fn connect(r: &TestRegistry) -> TcpStream {
    TcpStream::connect(address(r)).await.unwrap()
}

/// A request head without a body.
fn get_head(r: &TestRegistry, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", address(r))
}

struct RawResponse {
    status: u16,
    head: String,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads one response with a `Content-Length` body (every answer of the
/// registry to the requests sent here has one).
async fn read_response(stream: &mut TcpStream) -> io::Result<RawResponse> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let mut response = RawResponse {
        status: head[9..12].parse().expect("a status code"),
        head,
        body: String::new(),
    };
    let length: usize = response
        .header("content-length")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    while bytes.len() < head_end + length {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    response.body = String::from_utf8_lossy(&bytes[head_end..head_end + length]).into_owned();
    Ok(response)
}

/// Whether the server closes (or resets) the connection within `wait`;
/// whatever it sends before is read and dropped.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let closed = async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(wait, closed).await.is_ok()
}

#[tokio::test]
async fn a_client_that_sends_half_a_header_line_is_disconnected() {
    let r = start_limited(Limits {
        header_timeout: Duration::from_millis(500),
        ..roomy()
    })
    .await;
    let mut stream = connect(&r).await;
    stream
        .write_all(b"GET /api/v4/projects/1 HTTP/1.1\r\nHos")
        .await
        .unwrap();
    assert!(
        closed_within(&mut stream, GENEROUS).await,
        "a connection with an incomplete head stayed open"
    );
}

#[tokio::test]
async fn a_connection_that_stays_silent_is_closed() {
    let r = start_limited(Limits {
        idle_timeout: Duration::from_millis(500),
        ..roomy()
    })
    .await;

    let mut fresh = connect(&r).await;
    assert!(
        closed_within(&mut fresh, GENEROUS).await,
        "a connection that never sent anything stayed open"
    );

    // A keep-alive connection after its response.
    let mut used = connect(&r).await;
    used.write_all(get_head(&r, HEALTH).as_bytes())
        .await
        .unwrap();
    let answer = read_response(&mut used).await.unwrap();
    assert_eq!(answer.status, 200);
    assert!(
        closed_within(&mut used, GENEROUS).await,
        "an idle keep-alive connection stayed open"
    );
}

#[tokio::test]
async fn a_body_that_stops_is_cut_and_nothing_is_recorded() {
    let r = start_limited(Limits {
        body_timeout: Duration::from_millis(500),
        ..roomy()
    })
    .await;
    r.create_project("stall", "p", "private").await;
    let path = "/api/v4/projects/stall%2Fp/packages/generic/pkg/1.0/f.bin";
    let mut stream = connect(&r).await;
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nPRIVATE-TOKEN: {}\r\nContent-Length: 100000\r\n\r\n",
        address(&r),
        r.admin()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[7u8; 1000]).await.unwrap();

    let mut answer = Vec::new();
    let read_all = tokio::time::timeout(GENEROUS, stream.read_to_end(&mut answer)).await;
    assert!(read_all.is_ok(), "a stalled upload stayed open");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "a cut upload answered {answer}"
    );

    let download = r.get(&r.url(path), Some(&r.admin())).await;
    assert_eq!(download.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn connections_over_the_cap_are_answered_503() {
    let r = start_limited(Limits {
        max_connections: 3,
        ..roomy()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&r).await;
        stream
            .write_all(get_head(&r, HEALTH).as_bytes())
            .await
            .unwrap();
        assert_eq!(read_response(&mut stream).await.unwrap().status, 200);
        held.push(stream);
    }

    let mut over = connect(&r).await;
    // The answer may come before the request is written: ignore write errors.
    let _ = over.write_all(get_head(&r, HEALTH).as_bytes()).await;
    let answer = read_response(&mut over).await.unwrap();
    assert_eq!(answer.status, 503);
    assert_eq!(answer.body, r#"{"message":"503 Service Unavailable"}"#);
    assert!(answer.header("retry-after").is_some());
    assert!(closed_within(&mut over, GENEROUS).await);

    // A closed connection frees its place.
    drop(held.pop());
    let served = retry_until(|| async {
        let mut stream = connect(&r).await;
        stream
            .write_all(get_head(&r, HEALTH).as_bytes())
            .await
            .ok()?;
        let answer = read_response(&mut stream).await.ok()?;
        (answer.status == 200).then_some(())
    })
    .await;
    assert!(served, "no connection was served after one closed");
}

/// Calls `attempt` until it gives `Some`, for up to [`GENEROUS`].
async fn retry_until<F, Fut>(mut attempt: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    let deadline = tokio::time::Instant::now() + GENEROUS;
    while tokio::time::Instant::now() < deadline {
        if attempt().await.is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn requests_beyond_the_instance_cap_wait_then_get_503() {
    let r = start_limited(Limits {
        max_instances: 1,
        instance_wait: Duration::from_millis(100),
        ..roomy()
    })
    .await;
    r.create_project("busy", "p", "private").await;
    let path = "/api/v4/projects/busy%2Fp/packages/generic/pkg/1.0/f.bin";

    // An upload that holds the only instance while its body trickles in.
    let mut upload = connect(&r).await;
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nPRIVATE-TOKEN: {}\r\nContent-Length: 2000\r\n\r\n",
        address(&r),
        r.admin()
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    upload.write_all(&[1u8; 1000]).await.unwrap();

    let deadline = tokio::time::Instant::now() + GENEROUS;
    let refused = loop {
        let response = r.get(&r.url(HEALTH), None).await;
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break response;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a request beyond the instance cap was served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.text().await.unwrap(),
        r#"{"message":"503 Service Unavailable"}"#
    );

    // The upload completes, and its instance is free again.
    upload.write_all(&[1u8; 1000]).await.unwrap();
    assert_eq!(read_response(&mut upload).await.unwrap().status, 201);
    let served = retry_until(|| async {
        let response = r.get(&r.url(HEALTH), None).await;
        (response.status() == StatusCode::OK).then_some(())
    })
    .await;
    assert!(served, "the instance was not freed");
}

#[tokio::test]
async fn an_instance_cannot_grow_past_its_memory_limit() {
    // The component's stack alone needs more than 1 MiB of linear memory.
    let r = start_limited(Limits {
        instance_memory: 1024 * 1024,
        ..roomy()
    })
    .await;
    let response = r.get(&r.url(HEALTH), None).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

/// Sends `path` a PUT whose body (`len` bytes) is written in small pieces
/// after the head, without waiting for an answer, then reads the answer.
/// A write or read failure is the broken pipe streaming clients report.
async fn streamed_put(
    r: &TestRegistry,
    path: &str,
    token: Option<&str>,
    len: usize,
    chunked: bool,
) -> io::Result<RawResponse> {
    const PIECE: usize = 16 * 1024;
    let mut stream = connect(r).await;
    let mut head = format!("PUT {path} HTTP/1.1\r\nHost: {}\r\n", address(r));
    if let Some(token) = token {
        head.push_str(&format!("PRIVATE-TOKEN: {token}\r\n"));
    }
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
    } else {
        head.push_str(&format!("Content-Length: {len}\r\n\r\n"));
    }
    stream.write_all(head.as_bytes()).await?;
    let piece = vec![b'x'; PIECE];
    let mut left = len;
    while left > 0 {
        let n = left.min(PIECE);
        if chunked {
            stream.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            stream.write_all(&piece[..n]).await?;
            stream.write_all(b"\r\n").await?;
        } else {
            stream.write_all(&piece[..n]).await?;
        }
        left -= n;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if chunked {
        stream.write_all(b"0\r\n\r\n").await?;
    }
    read_response(&mut stream).await
}

#[tokio::test]
async fn refusals_reach_clients_that_are_still_sending_their_body() {
    let r = start_limited(roomy()).await;
    let project = r.create_project("refuse", "p", "private").await;
    let reader = r.token(common::personal(
        &[Scope::ReadApi],
        "refuse/p",
        Role::Reporter,
    ));
    let outsider = r.token(common::personal(&[Scope::Api], "elsewhere/p", Role::Owner));
    let upload = format!("/api/v4/projects/{project}/packages/generic/pkg/1.0/f.bin");
    let bad_name = format!("/api/v4/projects/{project}/packages/generic/p%20kg/1.0/f.bin");
    let admin = r.admin();
    let cases: [(&str, Option<&str>, u16); 4] = [
        (upload.as_str(), None, 401),
        (upload.as_str(), Some(reader.as_str()), 403),
        (upload.as_str(), Some(outsider.as_str()), 404),
        (bad_name.as_str(), Some(admin.as_str()), 400),
    ];

    for attempt in 0..100 {
        let (path, token, status) = cases[attempt % cases.len()];
        let len = [128 * 1024, 256 * 1024, 1024 * 1024][attempt % 3];
        let chunked = attempt % 2 == 1;
        let answer = streamed_put(&r, path, token, len, chunked)
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt} ({status} expected, {len} bytes): {e}"));
        assert_eq!(answer.status, status, "attempt {attempt}: {}", answer.body);
        let body: serde_json::Value = serde_json::from_str(&answer.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", answer.body));
        assert!(
            body.get("message").or(body.get("error")).is_some(),
            "{body}"
        );
    }
}

#[tokio::test]
async fn the_administrator_token_expires_and_can_be_revoked() {
    let r = start_limited(roomy()).await;
    let admin = r.registry.admin().clone();
    let lifetime = admin.expires_at - common::now_secs();
    assert!(
        (29 * 86_400..=30 * 86_400).contains(&lifetime),
        "the administrator token lives {lifetime} s"
    );

    let projects = r.url("/api/v4/projects");
    assert_eq!(
        r.get(&projects, Some(&admin.token)).await.status(),
        StatusCode::OK
    );
    genreg::revoke_token(r.data.path(), &admin.id).unwrap();
    assert_eq!(
        r.get(&projects, Some(&admin.token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
