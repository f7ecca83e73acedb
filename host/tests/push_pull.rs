//! `genreg push` and `genreg pull`, the real binary, against the real
//! registry (component under the genreg library, embedded S3 server) and,
//! for what only a server without upload sessions or with a controlled
//! body can show, against [`PlainServer`]: a small HTTP server that
//! answers the generic package URL as GitLab does (PUT with
//! `X-Checksum-SHA256`, GET with `Range`, 404 to the session POST).

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

// ----- the registry -------------------------------------------------------

struct TestRegistry {
    registry: genreg::Registry,
    client: reqwest::Client,
    project: u64,
    _data: tempfile::TempDir,
}

async fn registry_with(limits: genreg::Limits, variables: &[(&str, &str)]) -> TestRegistry {
    let data = tempfile::tempdir().unwrap();
    let mut config = genreg::Config::new(data.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.limits = limits;
    for (name, value) in variables {
        config.variables.insert(name.to_string(), value.to_string());
    }
    let registry = genreg::Registry::start(config).await.unwrap();
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/api/v4/projects", registry.url()))
        .header("PRIVATE-TOKEN", registry.admin_token())
        .json(&serde_json::json!({"path": "tools", "namespace_path": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let project = response.json::<Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap();
    TestRegistry {
        registry,
        client,
        project,
        _data: data,
    }
}

async fn registry() -> TestRegistry {
    registry_with(genreg::Limits::default(), &[]).await
}

impl TestRegistry {
    fn file_url(&self, rest: &str) -> String {
        format!(
            "{}/api/v4/projects/{}/packages/generic/{rest}",
            self.registry.url(),
            self.project
        )
    }

    fn admin(&self) -> String {
        self.registry.admin_token().to_string()
    }

    async fn download(&self, url: &str) -> Vec<u8> {
        let response = self
            .client
            .get(url)
            .header("PRIVATE-TOKEN", self.admin())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.bytes().await.unwrap().to_vec()
    }

    /// The project's live upload sessions.
    async fn sessions(&self) -> Vec<Value> {
        let url = format!(
            "{}/api/v4/projects/{}/packages/upload_sessions",
            self.registry.url(),
            self.project
        );
        let response = self
            .client
            .get(url)
            .header("PRIVATE-TOKEN", self.admin())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.json::<Vec<Value>>().await.unwrap()
    }

    async fn session(&self, id: &str) -> Value {
        let url = format!(
            "{}/api/v4/projects/{}/packages/upload_sessions/{id}",
            self.registry.url(),
            self.project
        );
        let response = self
            .client
            .get(url)
            .header("PRIVATE-TOKEN", self.admin())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.json().await.unwrap()
    }

    /// The files of the embedded S3 server, recursively.
    fn stored_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let mut dirs = vec![self.registry.s3_root().unwrap()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        files
    }
}

// ----- the binary ---------------------------------------------------------

/// `genreg ARGS` with `env` and none of the caller's tokens or `GENREG_*`.
async fn genreg(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_genreg"));
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if name_text.starts_with("GENREG_")
            || name_text == "GITLAB_TOKEN"
            || name_text == "CI_JOB_TOKEN"
        {
            command.env_remove(&name);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command.output().await.expect("genreg runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The file record `genreg push` printed.
fn record(output: &Output) -> Value {
    assert!(output.status.success(), "push failed: {}", stderr(output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "push printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic bytes that differ from one seed and one offset to the next.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

// ----- plain PUT and pull against the registry ----------------------------

#[tokio::test]
async fn a_small_file_goes_up_in_one_put_and_comes_back_identical() {
    let registry = registry().await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(3 << 20, 1);
    let file = write_file(dir.path(), "tool.tar.gz", &bytes);
    let url = registry.file_url("tool/1.0.0/linux/amd64/tool.tar.gz");
    let admin = registry.admin();
    let pushed = genreg(
        &["push", file.to_str().unwrap(), &url, "--token", &admin],
        &[],
        dir.path(),
    )
    .await;
    let record = record(&pushed);
    assert_eq!(record["file_sha256"], sha256_hex(&bytes));
    assert_eq!(record["size"], bytes.len());
    assert_eq!(record["file_name"], "linux%2Famd64%2Ftool.tar.gz");
    // Not a terminal: plain progress lines.
    let log = stderr(&pushed);
    assert!(
        log.contains("push tool.tar.gz: 3.0 MiB / 3.0 MiB (100%)"),
        "{log}"
    );
    assert!(
        registry.sessions().await.is_empty(),
        "no session for a small file"
    );

    let out = dir.path().join("pulled");
    let pulled = genreg(
        &["pull", &url, "-o", out.to_str().unwrap()],
        &[("GITLAB_TOKEN", &admin)],
        dir.path(),
    )
    .await;
    assert!(pulled.status.success(), "{}", stderr(&pulled));
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    assert!(!dir.path().join("pulled.part").exists());
}

#[tokio::test]
async fn the_token_comes_from_the_flag_gitlab_token_or_ci_job_token() {
    let registry = registry().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "a.bin", &data(1000, 2));
    let url = registry.file_url("tool/1.0.0/a.bin");
    let file = file.to_str().unwrap();

    let anonymous = genreg(&["push", file, &url], &[], dir.path()).await;
    assert!(!anonymous.status.success());
    assert!(stderr(&anonymous).contains("401"), "{}", stderr(&anonymous));

    let job = genreg::genreg_token::Claims {
        id: "job-1".into(),
        kind: genreg::genreg_token::Kind::Job,
        subject: "gitlab-ci-token".into(),
        scopes: vec![],
        grants: vec![genreg::genreg_token::Grant {
            project: registry.project.to_string(),
            role: genreg::genreg_token::Role::Developer,
        }],
        admin: false,
        issued_at: genreg::unix_now(),
        expires_at: None,
    };
    let job = registry.registry.token_secrets().sign(&job);
    let by_job = genreg(&["push", file, &url], &[("CI_JOB_TOKEN", &job)], dir.path()).await;
    assert_eq!(record(&by_job)["size"], 1000);

    let by_gitlab_token = genreg(
        &["push", file, &url],
        &[("GITLAB_TOKEN", &registry.admin()), ("CI_JOB_TOKEN", "x")],
        dir.path(),
    )
    .await;
    assert_eq!(record(&by_gitlab_token)["size"], 1000);
}

#[tokio::test]
async fn a_pull_continues_a_partial_file_and_an_existing_output() {
    let registry = registry().await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(5 << 20, 3);
    let url = registry.file_url("tool/1.0.0/big.bin");
    let response = registry
        .client
        .put(&url)
        .header("PRIVATE-TOKEN", registry.admin())
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);

    // A .part left by an interrupted pull.
    write_file(dir.path(), "big.bin.part", &bytes[..(2 << 20)]);
    let pulled = genreg(
        &["pull", &url, "--token", &registry.admin()],
        &[],
        dir.path(),
    )
    .await;
    assert!(pulled.status.success(), "{}", stderr(&pulled));
    assert_eq!(std::fs::read(dir.path().join("big.bin")).unwrap(), bytes);

    // An output cut short by another client (curl -o): continued too; a
    // complete one is only verified.
    write_file(dir.path(), "big.bin", &bytes[..12345]);
    let pulled = genreg(
        &["pull", &url, "--token", &registry.admin()],
        &[],
        dir.path(),
    )
    .await;
    assert!(pulled.status.success(), "{}", stderr(&pulled));
    assert_eq!(std::fs::read(dir.path().join("big.bin")).unwrap(), bytes);
    let again = genreg(
        &["pull", &url, "--token", &registry.admin()],
        &[],
        dir.path(),
    )
    .await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(std::fs::read(dir.path().join("big.bin")).unwrap(), bytes);
}

#[tokio::test]
async fn a_pull_refuses_bytes_that_do_not_match_the_checksum() {
    let registry = registry().await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(1 << 20, 4);
    let url = registry.file_url("tool/1.0.0/c.bin");
    let response = registry
        .client
        .put(&url)
        .header("PRIVATE-TOKEN", registry.admin())
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    // Rot in the bucket: the registry still announces the recorded sha256.
    let objects: Vec<_> = registry
        .stored_files()
        .into_iter()
        .filter(|path| std::fs::metadata(path).unwrap().len() == bytes.len() as u64)
        .collect();
    assert_eq!(objects.len(), 1, "one object of that size");
    let mut rotten = bytes.clone();
    rotten[1000] ^= 0xff;
    std::fs::write(&objects[0], &rotten).unwrap();

    let pulled = genreg(
        &["pull", &url, "--token", &registry.admin()],
        &[],
        dir.path(),
    )
    .await;
    assert!(!pulled.status.success());
    let log = stderr(&pulled);
    assert!(log.contains("sha256 mismatch"), "{log}");
    assert!(
        log.contains(&sha256_hex(&bytes)),
        "names the expected sha256: {log}"
    );
    assert!(
        !dir.path().join("c.bin").exists(),
        "no file under the real name"
    );
    assert!(!dir.path().join("c.bin.part").exists(), "nothing to resume");
    let kept = std::fs::read(dir.path().join("c.bin.sha256-mismatch")).unwrap();
    assert_eq!(kept, rotten);
}

// ----- a server without upload sessions (as GitLab) ------------------------

/// What [`PlainServer`] saw.
#[derive(Default)]
struct Seen {
    /// `METHOD path` of every request.
    requests: Vec<String>,
    /// `Range` headers of GETs.
    ranges: Vec<Option<String>>,
    /// The credential headers of every request (`name: value`).
    credentials: Vec<String>,
}

/// How [`PlainServer`] behaves.
#[derive(Default)]
struct Behaviour {
    /// Answers 503 to this many PUTs first.
    failing_puts: usize,
    /// Cuts this many GET bodies in the middle first.
    cut_gets: usize,
    /// Announces this sha256 instead of the right one.
    wrong_checksum: Option<String>,
    /// Only `/redirect` announces the checksum (as a redirect to S3: S3
    /// knows nothing of it).
    checksum_only_on_redirect: bool,
    /// The file is served in chunks released one by one through
    /// [`PlainServer::release`] (for watching progress).
    paced: bool,
}

/// See the module documentation. It holds one file at `.../file`;
/// `.../redirect` answers 302 to it with the checksum, as the registry's
/// redirect mode does.
struct PlainServer {
    url: String,
    state: Arc<Mutex<ServerState>>,
    pace: mpsc::UnboundedSender<usize>,
}

struct ServerState {
    file: Vec<u8>,
    seen: Seen,
    behaviour: Behaviour,
    pace: Option<mpsc::UnboundedReceiver<usize>>,
}

impl ServerState {
    fn announced_checksum(&self) -> String {
        self.behaviour
            .wrong_checksum
            .clone()
            .unwrap_or_else(|| sha256_hex(&self.file))
    }
}

impl PlainServer {
    async fn start(file: Vec<u8>, behaviour: Behaviour) -> PlainServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (pace, paced) = mpsc::unbounded_channel();
        let state = Arc::new(Mutex::new(ServerState {
            file,
            seen: Seen::default(),
            behaviour,
            pace: Some(paced),
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(&state, request).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        PlainServer { url, state, pace }
    }

    /// `/file` or `/redirect` under a generic package path.
    fn url(&self, path: &str) -> String {
        format!(
            "{}/api/v4/projects/1/packages/generic/tool/1.0{path}",
            self.url
        )
    }

    fn file(&self) -> Vec<u8> {
        self.state.lock().unwrap().file.clone()
    }

    fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().seen.requests.clone()
    }

    fn ranges(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().seen.ranges.clone()
    }

    fn credentials(&self) -> Vec<String> {
        self.state.lock().unwrap().seen.credentials.clone()
    }

    /// Lets `bytes` more of a paced body go.
    fn release(&self, bytes: usize) {
        self.pace.send(bytes).unwrap();
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn json_answer(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(body.to_string()))
        .unwrap()
}

async fn answer(state: &Mutex<ServerState>, request: Request<Incoming>) -> Response<Body> {
    let method = request.method().clone();
    // Routed by the last segment, so the URLs look like GitLab's.
    let path = request.uri().path().rsplit('/').next().unwrap_or("");
    let path = format!("/{path}");
    {
        let mut state = state.lock().unwrap();
        state.seen.requests.push(format!("{method} {path}"));
        for name in ["private-token", "job-token"] {
            if let Some(value) = request.headers().get(name) {
                let value = value.to_str().unwrap_or("");
                state.seen.credentials.push(format!("{name}: {value}"));
            }
        }
    }
    match (method.as_str(), path.as_str()) {
        ("POST", _) => json_answer(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "404 Not Found"}),
        ),
        ("PUT", "/file") => put(state, request).await,
        ("GET", "/redirect") => {
            let sha = state.lock().unwrap().announced_checksum();
            Response::builder()
                .status(StatusCode::FOUND)
                .header("location", "file")
                .header("x-checksum-sha256", sha)
                .body(full(""))
                .unwrap()
        }
        ("GET", "/file") => get(state, &request),
        _ => json_answer(
            StatusCode::NOT_FOUND,
            serde_json::json!({"message": "404 Not found"}),
        ),
    }
}

/// A publish: refused with 400 when `X-Checksum-SHA256` does not match.
async fn put(state: &Mutex<ServerState>, request: Request<Incoming>) -> Response<Body> {
    let announced = request
        .headers()
        .get("x-checksum-sha256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return json_answer(StatusCode::BAD_REQUEST, serde_json::json!({})),
    };
    let mut state = state.lock().unwrap();
    if state.behaviour.failing_puts > 0 {
        state.behaviour.failing_puts -= 1;
        return json_answer(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"message": "503 Service Unavailable"}),
        );
    }
    let sha = sha256_hex(&body);
    if announced.as_deref() != Some(sha.as_str()) {
        return json_answer(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"message": "400 Bad request - checksum mismatch"}),
        );
    }
    state.file = body.to_vec();
    json_answer(
        StatusCode::OK,
        serde_json::json!({"id": 1, "size": body.len(), "file_sha256": sha, "file_name": "file"}),
    )
}

/// A download with `Range` and `X-Checksum-SHA256`; cut or paced as told.
fn get(state: &Mutex<ServerState>, request: &Request<Incoming>) -> Response<Body> {
    let range = request
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut state = state.lock().unwrap();
    state.seen.ranges.push(range.clone());
    let sha = state.announced_checksum();
    let total = state.file.len();
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse::<usize>().ok())
        .unwrap_or(0);
    if start >= total && range.is_some() {
        return Response::builder()
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header("content-range", format!("bytes */{total}"))
            .body(full(""))
            .unwrap();
    }
    let rest = Bytes::copy_from_slice(&state.file[start..]);
    let mut builder = Response::builder().header("content-length", rest.len());
    if !state.behaviour.checksum_only_on_redirect {
        builder = builder.header("x-checksum-sha256", sha);
    }
    let builder = if range.is_some() {
        builder.status(StatusCode::PARTIAL_CONTENT).header(
            "content-range",
            format!("bytes {start}-{}/{total}", total - 1),
        )
    } else {
        builder.status(StatusCode::OK)
    };
    let body = if state.behaviour.cut_gets > 0 {
        state.behaviour.cut_gets -= 1;
        cut_body(rest)
    } else if state.behaviour.paced {
        paced_body(rest, state.pace.take().expect("one paced download"))
    } else {
        full(rest)
    };
    builder.body(body).unwrap()
}

/// Half the bytes, then an error: the connection is cut mid-body.
fn cut_body(bytes: Bytes) -> Body {
    let half = bytes.slice(..bytes.len() / 2);
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
        Ok(Frame::data(half)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "cut",
        )),
    ];
    StreamBody::new(futures::stream::iter(frames)).boxed()
}

/// The bytes in the amounts the test releases.
fn paced_body(bytes: Bytes, releases: mpsc::UnboundedReceiver<usize>) -> Body {
    let stream =
        futures::stream::unfold((bytes, releases), |(mut rest, mut releases)| async move {
            if rest.is_empty() {
                return None;
            }
            let allowed = releases.recv().await?;
            let chunk = rest.split_to(allowed.min(rest.len()));
            Some((Ok(Frame::data(chunk)), (rest, releases)))
        });
    StreamBody::new(stream).boxed()
}

#[tokio::test]
async fn without_sessions_a_large_file_goes_up_in_one_put() {
    let server = PlainServer::start(Vec::new(), Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(12 << 20, 5);
    let file = write_file(dir.path(), "big.bin", &bytes);
    let pushed = genreg(
        &[
            "push",
            file.to_str().unwrap(),
            &server.url("/file"),
            "--token",
            "glpat-x",
        ],
        &[],
        dir.path(),
    )
    .await;
    let record = record(&pushed);
    assert_eq!(record["file_sha256"], sha256_hex(&bytes));
    assert_eq!(server.requests(), ["POST /file", "PUT /file"]);
    assert_eq!(server.file(), bytes);
    assert!(
        stderr(&pushed).contains("no upload sessions"),
        "{}",
        stderr(&pushed)
    );
    assert!(server
        .credentials()
        .iter()
        .all(|c| c == "private-token: glpat-x"));
}

#[tokio::test]
async fn transient_failures_are_retried_and_a_cut_download_resumes() {
    let behaviour = Behaviour {
        failing_puts: 2,
        cut_gets: 1,
        ..Behaviour::default()
    };
    let server = PlainServer::start(Vec::new(), behaviour).await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(2 << 20, 6);
    let file = write_file(dir.path(), "f.bin", &bytes);
    let pushed = genreg(
        &["push", file.to_str().unwrap(), &server.url("/file")],
        &[("CI_JOB_TOKEN", "job-x")],
        dir.path(),
    )
    .await;
    assert_eq!(record(&pushed)["size"], bytes.len());
    assert_eq!(server.requests(), ["PUT /file", "PUT /file", "PUT /file"]);
    assert!(server.credentials().iter().all(|c| c == "job-token: job-x"));

    let pulled = genreg(
        &["pull", &server.url("/redirect"), "-o", "out"],
        &[],
        dir.path(),
    )
    .await;
    assert!(pulled.status.success(), "{}", stderr(&pulled));
    assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), bytes);
    // The second GET asked only for what the cut one did not bring.
    let half = bytes.len() / 2;
    assert_eq!(
        server.ranges(),
        [None, Some(format!("bytes={half}-"))],
        "{:?}",
        server.requests()
    );
}

#[tokio::test]
async fn a_pull_through_a_redirect_checks_the_checksum_the_redirect_announced() {
    let bytes = data(1 << 20, 7);
    let behaviour = Behaviour {
        wrong_checksum: Some("0".repeat(64)),
        checksum_only_on_redirect: true,
        ..Behaviour::default()
    };
    let server = PlainServer::start(bytes.clone(), behaviour).await;
    let dir = tempfile::tempdir().unwrap();
    // Only the redirect announced a checksum, and it does not match.
    let pulled = genreg(
        &["pull", &server.url("/redirect"), "-o", "x"],
        &[],
        dir.path(),
    )
    .await;
    assert!(!pulled.status.success());
    assert!(stderr(&pulled).contains("sha256 mismatch"));
    assert_eq!(
        std::fs::read(dir.path().join("x.sha256-mismatch")).unwrap(),
        bytes
    );
    assert_eq!(server.requests(), ["GET /redirect", "GET /file"]);
}

// ----- upload sessions ------------------------------------------------------

/// `--part-size 5MiB` makes small files many parts.
const PART: usize = 5 << 20;

#[tokio::test]
async fn a_large_file_goes_up_through_a_session_on_a_hosted_platform() {
    // Under the hosted 10 MiB body cap a plain PUT of this file is refused:
    // only a session can publish it.
    let registry = registry_with(genreg::Limits::hosted(), &[("download_mode", "auto")]).await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(4 * PART + 1234, 8);
    let file = write_file(dir.path(), "big.bin", &bytes);
    let url = registry.file_url("tool/2.0.0/big.bin");
    let admin = registry.admin();
    let pushed = genreg(
        &[
            "push",
            file.to_str().unwrap(),
            &url,
            "--token",
            &admin,
            "--part-size",
            "5MiB",
            "--parallel",
            "3",
        ],
        &[],
        dir.path(),
    )
    .await;
    let record = record(&pushed);
    assert_eq!(record["file_sha256"], sha256_hex(&bytes));
    assert_eq!(record["size"], bytes.len());
    assert!(registry.sessions().await.is_empty(), "the session is gone");
    assert_eq!(registry.download(&url).await, bytes);
}

#[tokio::test]
async fn an_interrupted_push_resumes_with_the_parts_s3_has() {
    let registry = registry().await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(6 * PART + 99, 9);
    let file = write_file(dir.path(), "big.bin", &bytes);
    let url = registry.file_url("tool/3.0.0/big.bin");
    let admin = registry.admin();
    let file = file.to_str().unwrap();
    let args = [
        "push",
        file,
        &url,
        "--token",
        &admin,
        "--part-size",
        "5MiB",
        "--parallel",
        "2",
    ];

    let interrupted = genreg(
        &[&args[..], &["--stop-after-parts", "3"]].concat(),
        &[],
        dir.path(),
    )
    .await;
    assert!(!interrupted.status.success());
    let sessions = registry.sessions().await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let id = sessions[0]["id"].as_str().unwrap();
    let stored = registry.session(id).await["parts"]
        .as_array()
        .unwrap()
        .len();
    assert!((3..7).contains(&stored), "{stored} parts stored");

    let resumed = genreg(&args, &[], dir.path()).await;
    let log = stderr(&resumed);
    let record = record(&resumed);
    // A part in flight at the interruption may have landed since.
    let resumed_with = log
        .split(&format!("resuming upload session {id}: "))
        .nth(1)
        .and_then(|rest| rest.split(" of 7 parts").next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no resumption reported: {log}"));
    assert!(
        (stored..7).contains(&resumed_with),
        "{resumed_with} {stored}"
    );
    assert_eq!(record["file_sha256"], sha256_hex(&bytes));
    assert_eq!(registry.download(&url).await, bytes);
}

/// The end-to-end check: under `genreg up --hosted` limits, a
/// 2 GiB file pushed in parallel, interrupted, resumed, then pulled back
/// (`download_mode = auto`: redirected to S3, being over the response cap)
/// identical. The files live in a temporary
/// directory and go as soon as their sha256 is known.
#[tokio::test]
async fn two_gib_pushed_interrupted_resumed_and_pulled_back_identical_on_a_hosted_platform() {
    const SIZE: u64 = 2 << 30;
    let registry = registry_with(genreg::Limits::hosted(), &[("download_mode", "auto")]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("huge.bin");
    let expected = write_big_file(&file, SIZE);
    let url = registry.file_url("huge/1.0.0/huge.bin");
    let admin = registry.admin();
    let path = file.to_str().unwrap();
    let args = ["push", path, &url, "--token", &admin, "--parallel", "4"];

    let interrupted = genreg(
        &[&args[..], &["--stop-after-parts", "40"]].concat(),
        &[],
        dir.path(),
    )
    .await;
    assert!(!interrupted.status.success());
    let resumed = genreg(&args, &[], dir.path()).await;
    let log = stderr(&resumed);
    let record = record(&resumed);
    assert!(log.contains("resuming upload session"), "{log}");
    assert_eq!(record["file_sha256"], expected);
    assert_eq!(record["size"], SIZE);
    std::fs::remove_file(&file).unwrap();

    let out = dir.path().join("pulled.bin");
    let pulled = genreg(
        &["pull", &url, "-o", out.to_str().unwrap(), "--token", &admin],
        &[],
        dir.path(),
    )
    .await;
    assert!(pulled.status.success(), "{}", stderr(&pulled));
    let pulled_sha = hash_file(&out);
    std::fs::remove_file(&out).unwrap();
    assert_eq!(pulled_sha, expected);
}

/// Writes `size` bytes (each MiB different) and returns their sha256.
fn write_big_file(path: &Path, size: u64) -> String {
    use std::io::Write as _;
    let block = data(1 << 20, 10);
    let mut out = std::io::BufWriter::with_capacity(4 << 20, std::fs::File::create(path).unwrap());
    let mut hasher = Sha256::new();
    let mut chunk = block.clone();
    for index in 0..size.div_ceil(1 << 20) {
        chunk[..8].copy_from_slice(&index.to_le_bytes());
        let len = (size - index * (1 << 20)).min(1 << 20) as usize;
        out.write_all(&chunk[..len]).unwrap();
        hasher.update(&chunk[..len]);
    }
    out.flush().unwrap();
    hex::encode(hasher.finalize())
}

fn hash_file(path: &Path) -> String {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path).unwrap(), &mut hasher).unwrap();
    hex::encode(hasher.finalize())
}

// ----- the progress bar in a real terminal ---------------------------------

/// A tmux server of this test's own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn command(&self) -> std::process::Command {
        let mut command = std::process::Command::new("tmux");
        command.args(["-L", &self.socket]);
        command
    }

    fn capture(&self) -> String {
        let output = self
            .command()
            .args(["capture-pane", "-p", "-t", "pull"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Captures the pane until `wanted` is on it (a bound only so that a
    /// broken bar fails instead of hanging).
    async fn wait_for(&self, wanted: &str) -> String {
        let mut screen = String::new();
        for _ in 0..600 {
            screen = self.capture();
            if screen.contains(wanted) {
                return screen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{wanted:?} never showed; the pane:\n{screen}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
    }
}

#[tokio::test]
async fn the_progress_bar_advances_in_a_terminal() {
    if std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: tmux is not installed (apt-get install tmux; .ci/run does it)");
        return;
    }
    let bytes = data(8 << 20, 11);
    let behaviour = Behaviour {
        paced: true,
        ..Behaviour::default()
    };
    let server = PlainServer::start(bytes.clone(), behaviour).await;
    let dir = tempfile::tempdir().unwrap();
    let tmux = Tmux {
        socket: format!("genreg-push-pull-{}", std::process::id()),
    };
    let command = format!(
        "'{}' pull '{}' -o '{}'; sleep 600",
        env!("CARGO_BIN_EXE_genreg"),
        server.url("/file"),
        dir.path().join("out").display()
    );
    let started = tmux
        .command()
        .args([
            "new-session",
            "-d",
            "-s",
            "pull",
            "-x",
            "120",
            "-y",
            "30",
            &command,
        ])
        .status()
        .unwrap();
    assert!(started.success());

    server.release(1 << 20);
    let first = tmux.wait_for("1.00 MiB/8.00 MiB").await;
    assert!(first.contains("pull "), "{first}");
    assert!(first.contains("ETA"), "{first}");
    assert!(first.contains("[=="), "a bar: {first}");
    server.release(3 << 20);
    let second = tmux.wait_for("4.00 MiB/8.00 MiB").await;
    assert_ne!(first, second);
    server.release(4 << 20);
    tmux.wait_for("sha256").await;
    assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), bytes);
}
