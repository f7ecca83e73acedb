//! `genreg` emulating a hosted Spin platform (`genreg up --hosted`:
//! 10 MiB request and response bodies, 30 s per request, 128 MiB per
//! instance), and the registry living within those limits: a publish over
//! the request cap answers 413 naming the upload-session API, downloads over
//! the response cap fail in proxy mode and are redirected with
//! `download_mode = auto`, a request running too long is stopped and
//! answered 504, an instance out of memory is answered 500.
//!
//! The host's answers are JSON naming the limit (`"limit":
//! "max_request_body"`); the component's own 413 names the session API.
//! Timeouts are configured small and waited for generously: the tests check
//! what happens, never how fast.

use std::io;
use std::time::Duration;

use genreg::{Limits, HOSTED_MAX_BODY};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{self, data, sha256_hex, start_configured, Target, TestRegistry};
use crate::spin::host::SpinRegistry;

const MIB: usize = 1024 * 1024;

/// Starts a registry with `limits` (the hosted preset, maybe adjusted, as
/// `genreg up --hosted [flags]` builds it) and these variables.
async fn start_hosted(limits: Limits, variables: &[(&str, &str)]) -> TestRegistry {
    start_configured(variables, |config| config.limits = limits).await
}

/// The hosted preset with a larger request cap, so that files over the
/// response cap can be published with a plain PUT.
fn hosted_accepting_large_bodies() -> Limits {
    Limits {
        max_request_body: Some(64 * MIB as u64),
        ..Limits::hosted()
    }
}

/// A project `hosted/files` and the URL of `name` in its package `tool/1.0`.
async fn file_url(r: &TestRegistry, name: &str) -> String {
    let id = r.create_project("hosted", "files", "private").await;
    r.generic(&id.to_string(), &format!("tool/1.0/{name}"))
}

struct RawResponse {
    status: u16,
    body: String,
}

impl RawResponse {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message: {}", self.body))
            .to_string()
    }
}

/// How a test body is sent.
#[derive(Clone, Copy)]
enum Sending {
    /// With `Content-Length: len`.
    Announced,
    /// Chunked, without a length.
    Chunked,
}

/// PUTs a body of `len` bytes to `url` in small paced pieces (`pause`
/// between them) while reading the answer at the same time, as a streaming
/// client does; the body is abandoned once the answer is in. The answer
/// must have a `Content-Length` body (every answer here has).
async fn put_while_reading(
    base_url: &str,
    url: &str,
    token: &str,
    len: usize,
    sending: Sending,
    pause: Duration,
) -> io::Result<RawResponse> {
    const PIECE: usize = 16 * 1024;
    let address = base_url.trim_start_matches("http://");
    let path = url.trim_start_matches(base_url);
    let stream = TcpStream::connect(address).await?;
    let (mut reader, mut writer) = stream.into_split();
    let framing = match sending {
        Sending::Announced => format!("Content-Length: {len}"),
        Sending::Chunked => "Transfer-Encoding: chunked".to_string(),
    };
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {address}\r\nPRIVATE-TOKEN: {token}\r\n{framing}\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await?;
    let send_body = tokio::spawn(async move {
        let piece = vec![b'x'; PIECE];
        let mut left = len;
        while left > 0 {
            let n = left.min(PIECE);
            if let Sending::Chunked = sending {
                writer.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            }
            writer.write_all(&piece[..n]).await?;
            if let Sending::Chunked = sending {
                writer.write_all(b"\r\n").await?;
            }
            left -= n;
            tokio::time::sleep(pause).await;
        }
        if let Sending::Chunked = sending {
            writer.write_all(b"0\r\n\r\n").await?;
        }
        // Keep the connection open until the answer is read.
        std::future::pending::<()>().await;
        Ok::<_, io::Error>(())
    });
    let answer = read_response(&mut reader).await;
    send_body.abort();
    answer
}

/// Reads one response with a `Content-Length` body.
async fn read_response(stream: &mut (impl AsyncReadExt + Unpin)) -> io::Result<RawResponse> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..at]).into_owned();
            if head.starts_with("HTTP/1.1 100") {
                bytes.drain(..at + 4);
                continue;
            }
            break at + 4;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while bytes.len() < head_end + length {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    Ok(RawResponse {
        status: head[9..12].parse().expect("a status code"),
        body: String::from_utf8_lossy(&bytes[head_end..head_end + length]).into_owned(),
    })
}

/// The component's 413 for a body over the host's cap: it names the cap
/// and the upload-session API on the same URL.
fn assert_names_upload_sessions(answer: &RawResponse, url: &str) {
    assert_eq!(answer.status, 413, "{}", answer.body);
    let message = answer.message();
    let path = url.split_once("/api/v4").map(|(_, p)| p).unwrap();
    assert!(
        message.starts_with("413 Request Entity Too Large - "),
        "{message}"
    );
    assert!(
        message.contains(&format!("at most {HOSTED_MAX_BODY} bytes")),
        "{message}"
    );
    assert!(
        message.contains(&format!("POST /api/v4{path}")),
        "{message}"
    );
    assert!(message.contains("upload session"), "{message}");
}

/// The host's own answer for a limit: GitLab-shaped JSON naming it.
fn assert_host_answer(answer: &RawResponse, status: u16, limit: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["limit"], limit, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(&status.to_string())),
        "{body}"
    );
}

async fn assert_nothing_recorded(r: &TestRegistry, url: &str) {
    let missing = r.get(url, Some(&r.admin())).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(r.objects().is_empty(), "{:?}", r.objects());
    assert!(r.unfinished_uploads().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mib_put_answers_413_naming_the_session_api() {
    let r = start_hosted(Limits::hosted(), &[]).await;
    let url = file_url(&r, "big.bin").await;
    let base = r.registry.url();
    for sending in [Sending::Announced, Sending::Chunked] {
        let answer = put_while_reading(
            &base,
            &url,
            &r.admin(),
            20 * MIB,
            sending,
            Duration::from_millis(1),
        )
        .await
        .expect("the answer arrives while the body is still being sent");
        assert_names_upload_sessions(&answer, &url);
    }
    assert_nothing_recorded(&r, &url).await;

    // Exactly the cap is a plain publish.
    let at_cap = data(HOSTED_MAX_BODY as usize, 3);
    let published = r.put(&url, Some(&r.admin()), at_cap.clone()).await;
    assert_eq!(published.status(), StatusCode::CREATED);
    let fetched = r.get(&url, Some(&r.admin())).await;
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), at_cap.as_slice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_refuses_bodies_over_its_cap_when_the_component_was_not_told() {
    // `max_request_body` emptied: the component does not know the cap, so
    // the host's own refusal is what the client gets.
    let r = start_hosted(Limits::hosted(), &[("max_request_body", "")]).await;
    let url = file_url(&r, "big.bin").await;
    let base = r.registry.url();
    for sending in [Sending::Announced, Sending::Chunked] {
        let answer = put_while_reading(
            &base,
            &url,
            &r.admin(),
            12 * MIB,
            sending,
            Duration::from_millis(1),
        )
        .await
        .expect("the answer arrives while the body is still being sent");
        assert_host_answer(&answer, 413, "max_request_body");
    }
    assert_nothing_recorded(&r, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxied_download_over_the_response_cap_is_refused_but_a_range_within_passes() {
    let r = start_hosted(hosted_accepting_large_bodies(), &[]).await;
    let url = file_url(&r, "large.bin").await;
    let bytes = data(HOSTED_MAX_BODY as usize + 1, 5);
    let published = r.put(&url, Some(&r.admin()), bytes.clone()).await;
    assert_eq!(published.status(), StatusCode::CREATED);

    let refused = r.get(&url, Some(&r.admin())).await;
    let answer = RawResponse {
        status: refused.status().as_u16(),
        body: refused.text().await.unwrap(),
    };
    assert_host_answer(&answer, 502, "max_response_body");

    let head = r
        .request(reqwest::Method::HEAD, &url, Some(&r.admin()))
        .await;
    assert_eq!(head.status(), StatusCode::OK, "a HEAD answer has no body");

    let part = r
        .client
        .get(&url)
        .header("PRIVATE-TOKEN", r.admin())
        .header("Range", "bytes=0-1048575")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &bytes[..MIB]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_downloads_redirect_files_over_the_response_cap_with_name_type_and_checksum() {
    let r = start_hosted(
        hosted_accepting_large_bodies(),
        &[("download_mode", "auto")],
    )
    .await;
    let large_url = file_url(&r, "large.bin").await;
    let small_url = large_url.replace("large.bin", "small.bin");
    let large = data(HOSTED_MAX_BODY as usize + 1, 6);
    let small = data(1000, 7);
    for (url, bytes) in [(&large_url, &large), (&small_url, &small)] {
        let published = r.put(url, Some(&r.admin()), bytes.clone()).await;
        assert_eq!(published.status(), StatusCode::CREATED);
    }

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let proxied = client
        .get(&small_url)
        .header("PRIVATE-TOKEN", r.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), StatusCode::OK);
    assert_eq!(proxied.bytes().await.unwrap().as_ref(), small.as_slice());

    let redirect = client
        .get(&large_url)
        .header("PRIVATE-TOKEN", r.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), StatusCode::FOUND);
    let header = |name: &str| {
        redirect
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let sha256 = sha256_hex(&large);
    assert_eq!(header("x-checksum-sha256"), Some(sha256.clone()));
    assert_eq!(header("etag"), Some(format!("\"{sha256}\"")));
    let location = header("location").expect("a Location");

    // Object storage serves the bytes under the file's name and type.
    let fetched = client.get(&location).send().await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK);
    let fetched_header = |name: &str| {
        fetched
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        fetched_header("content-type").as_deref(),
        Some("application/octet-stream")
    );
    let disposition = fetched_header("content-disposition").unwrap_or_default();
    assert!(
        disposition.contains("filename=\"large.bin\""),
        "{disposition}"
    );
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), large.as_slice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_running_past_the_timeout_is_stopped_and_answered_504() {
    // A client that keeps sending, slowly but well within the body timeout,
    // holds its instance until the request timeout stops it.
    let r = start_hosted(
        Limits {
            request_timeout: Some(Duration::from_secs(2)),
            ..Limits::hosted()
        },
        &[],
    )
    .await;
    let url = file_url(&r, "slow.bin").await;
    let answer = put_while_reading(
        &r.registry.url(),
        &url,
        &r.admin(),
        HOSTED_MAX_BODY as usize,
        Sending::Chunked,
        Duration::from_millis(50),
    )
    .await
    .expect("the answer arrives while the body is still being sent");
    assert_host_answer(&answer, 504, "request_timeout");
    assert_nothing_recorded(&r, &url).await;

    // The next request gets a fresh instance.
    let health = r.get(&r.url("/-/health"), None).await;
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_out_of_memory_is_answered_500_naming_the_limit() {
    // The component's stack alone needs more than 1 MiB of linear memory.
    let r = start_hosted(
        Limits {
            instance_memory: MIB,
            ..Limits::hosted()
        },
        &[],
    )
    .await;
    let response = r.get(&r.url("/-/health"), None).await;
    let answer = RawResponse {
        status: response.status().as_u16(),
        body: response.text().await.unwrap(),
    };
    assert_host_answer(&answer, 500, "instance_memory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_buffer_over_the_instance_memory_is_refused_not_crashed() {
    // A chunked upload buffers one S3 part; with 200 MiB parts that buffer
    // cannot exist in a 128 MiB instance: the component answers 413 instead
    // of failing, and the same upload passes with more memory.
    let big_parts = [("s3_part_size", "209715200")];
    let url_and_answer = |limits: Limits| async move {
        let r = start_hosted(limits, &big_parts).await;
        let url = file_url(&r, "chunked.bin").await;
        let answer = put_while_reading(
            &r.registry.url(),
            &url,
            &r.admin(),
            1000,
            Sending::Chunked,
            Duration::ZERO,
        )
        .await
        .expect("an answer");
        (r, answer)
    };

    let (_r, answer) = url_and_answer(Limits::hosted()).await;
    assert_eq!(answer.status, 413, "{}", answer.body);

    let roomy = Limits {
        instance_memory: 512 * MIB,
        ..Limits::hosted()
    };
    let (_r, answer) = url_and_answer(roomy).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
}

/// Under real `spin up`, the variable alone makes the component refuse a
/// PUT over the cap with the same 413 (Spin itself sets no body limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_spin_max_request_body_refuses_a_large_put_naming_the_session_api() {
    let cap = HOSTED_MAX_BODY.to_string();
    let Some(r) = SpinRegistry::start(&[("max_request_body", cap.as_str())]).await else {
        return;
    };
    let response = r
        .as_admin(reqwest::Method::POST, &r.at("/api/v4/projects"))
        .json(&serde_json::json!({"path": "files", "namespace_path": "hosted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = common::json(response).await["id"].as_u64().unwrap();
    let url = r.generic_url(&id.to_string(), "tool/1.0/big.bin");
    for sending in [Sending::Announced, Sending::Chunked] {
        let answer = put_while_reading(
            &r.base_url(),
            &url,
            &r.admin_token(),
            20 * MIB,
            sending,
            Duration::from_millis(1),
        )
        .await
        .expect("the answer arrives while the body is still being sent");
        assert_names_upload_sessions(&answer, &url);
    }
    let missing = r.as_admin(reqwest::Method::GET, &url).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
