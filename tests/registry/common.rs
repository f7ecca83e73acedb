//! A registry per test: the real component under `genreg`, with its embedded
//! S3 server and its own data directory, driven over HTTP.

use std::path::{Path, PathBuf};

use genreg::genreg_token::{Claims, Grant, Kind, Role, Scope, Secrets};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub struct TestRegistry {
    pub registry: genreg::Registry,
    pub client: reqwest::Client,
    pub data: tempfile::TempDir,
}

pub async fn start() -> TestRegistry {
    start_with(&[]).await
}

/// Starts a registry with these variables set (e.g. `max_file_size`).
pub async fn start_with(variables: &[(&str, &str)]) -> TestRegistry {
    let data = tempfile::tempdir().expect("temporary directory");
    start_in(data, variables).await
}

pub async fn start_in(data: tempfile::TempDir, variables: &[(&str, &str)]) -> TestRegistry {
    start_configured_in(data, variables, |_| {}).await
}

/// Starts a registry in a fresh data directory with these variables, after
/// `configure` has set what else the test needs (limits, stores).
pub async fn start_configured(
    variables: &[(&str, &str)],
    configure: impl FnOnce(&mut genreg::Config),
) -> TestRegistry {
    let data = tempfile::tempdir().expect("temporary directory");
    start_configured_in(data, variables, configure).await
}

/// [`start_configured`] in the data directory `data`.
pub async fn start_configured_in(
    data: tempfile::TempDir,
    variables: &[(&str, &str)],
    configure: impl FnOnce(&mut genreg::Config),
) -> TestRegistry {
    let mut config = genreg::Config::new(data.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    for (name, value) in variables {
        config.variables.insert(name.to_string(), value.to_string());
    }
    configure(&mut config);
    let registry = genreg::Registry::start(config)
        .await
        .expect("registry starts");
    TestRegistry {
        registry,
        client: reqwest::Client::new(),
        data,
    }
}

/// What a token should say; everything else is filled in.
pub struct TokenSpec {
    pub kind: Kind,
    pub scopes: Vec<Scope>,
    pub grants: Vec<(&'static str, Role)>,
    pub admin: bool,
    pub expires_at: Option<u64>,
}

/// The claims a test token carries: subject `tester`, a fresh id, issued now.
fn claims_of(spec: TokenSpec) -> Claims {
    Claims {
        id: format!("test-{}", rand_id()),
        kind: spec.kind,
        subject: "tester".into(),
        scopes: spec.scopes,
        grants: spec
            .grants
            .into_iter()
            .map(|(project, role)| Grant {
                project: project.into(),
                role,
            })
            .collect(),
        admin: spec.admin,
        issued_at: now_secs(),
        expires_at: spec.expires_at,
    }
}

pub fn personal(scopes: &[Scope], project: &'static str, role: Role) -> TokenSpec {
    TokenSpec {
        kind: Kind::Personal,
        scopes: scopes.to_vec(),
        grants: vec![(project, role)],
        admin: false,
        expires_at: None,
    }
}

pub fn deploy(scopes: &[Scope], project: &'static str) -> TokenSpec {
    TokenSpec {
        kind: Kind::Deploy,
        scopes: scopes.to_vec(),
        grants: vec![(project, Role::Developer)],
        admin: false,
        expires_at: None,
    }
}

pub fn job(project: &'static str) -> TokenSpec {
    TokenSpec {
        kind: Kind::Job,
        scopes: vec![],
        grants: vec![(project, Role::Developer)],
        admin: false,
        expires_at: None,
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic, incompressible-looking test data.
pub fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

impl TestRegistry {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.registry.url(), path)
    }

    pub fn admin(&self) -> String {
        self.registry.admin_token().to_string()
    }

    /// A token signed by this registry's secrets.
    pub fn token(&self, spec: TokenSpec) -> String {
        self.registry.token_secrets().sign(&claims_of(spec))
    }

    /// A token signed with `secret` (a forgery unless it is the registry's).
    pub fn token_with_secret(&self, spec: TokenSpec, secret: &str) -> String {
        let secrets = Secrets::parse(secret).expect("a test secret is not blank");
        secrets.sign(&claims_of(spec))
    }

    /// Creates `namespace/path` as the administrator and returns its id.
    pub async fn create_project(&self, namespace: &str, path: &str, visibility: &str) -> u64 {
        let response = self
            .client
            .post(self.url("/api/v4/projects"))
            .header("PRIVATE-TOKEN", self.admin())
            .json(&serde_json::json!({
                "path": path,
                "namespace_path": namespace,
                "visibility": visibility,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["id"].as_u64().unwrap()
    }

    pub fn generic(&self, project: &str, rest: &str) -> String {
        self.url(&format!(
            "/api/v4/projects/{project}/packages/generic/{rest}"
        ))
    }

    pub async fn put(&self, url: &str, token: Option<&str>, body: Vec<u8>) -> reqwest::Response {
        let mut request = self.client.put(url).body(body);
        if let Some(token) = token {
            request = request.header("PRIVATE-TOKEN", token);
        }
        request.send().await.unwrap()
    }

    pub async fn get(&self, url: &str, token: Option<&str>) -> reqwest::Response {
        self.request(Method::GET, url, token).await
    }

    pub async fn request(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, url);
        if let Some(token) = token {
            request = request.header("PRIVATE-TOKEN", token);
        }
        request.send().await.unwrap()
    }

    /// The objects in the bucket of the embedded S3 server.
    pub fn objects(&self) -> Vec<PathBuf> {
        let root = self.registry.s3_root().expect("embedded S3");
        let mut files = Vec::new();
        walk(&root.join(&self.registry.s3().bucket), &mut files);
        files
    }

    /// What the embedded S3 server keeps of multipart uploads that were
    /// neither completed nor aborted: `.upload-<id>.json` and the
    /// `.upload_id-<id>.*` files of their parts (part files, markers of the
    /// parts written into the assembly, the assembly).
    pub fn unfinished_uploads(&self) -> Vec<PathBuf> {
        let root = self.registry.s3_root().expect("embedded S3");
        let mut files = Vec::new();
        walk(&root, &mut files);
        files.retain(|f| {
            let name = f.file_name().unwrap().to_string_lossy();
            name.starts_with(".upload") || name.contains(".upload-")
        });
        files
    }
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, files);
        } else {
            files.push(path);
        }
    }
}

fn rand_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A raw HTTP/1.1 exchange, for paths an URL library would normalise
/// (`%2E%2E`): returns the status and the body.
pub async fn raw(
    r: &impl Target,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = r.base_url().trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A `YYYY-MM-DD` this many days from now (for `expires_at`).
pub fn date_in(days: u64) -> String {
    let at = jiff::Timestamp::from_second((now_secs() + days * 86_400) as i64).unwrap();
    at.strftime("%Y-%m-%d").to_string()
}

/// `POST`s a JSON body, with a `PRIVATE-TOKEN` when given.
pub async fn post(
    r: &TestRegistry,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut request = r.client.post(r.url(path)).json(&body);
    if let Some(token) = token {
        request = request.header("PRIVATE-TOKEN", token);
    }
    request.send().await.unwrap()
}

/// The JSON body of a response.
pub async fn json(response: reqwest::Response) -> Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// A running registry a test can drive over HTTP, whatever hosts the
/// component: `genreg` ([`TestRegistry`]) or `spin up` (`spin::SpinRegistry`),
/// so one test body runs on both.
pub trait Target: Send + Sync {
    /// The base URL, e.g. `http://127.0.0.1:43121`.
    fn base_url(&self) -> String;
    fn http(&self) -> &reqwest::Client;
    /// The secrets the component verifies tokens with.
    fn secrets(&self) -> &Secrets;
    /// An administrator token.
    fn admin_token(&self) -> String;

    /// What the host process printed so far (the component's stderr among
    /// it), when the host runs as a process of its own.
    fn host_output(&self) -> Option<String> {
        None
    }

    fn at(&self, path: &str) -> String {
        format!("{}{}", self.base_url(), path)
    }

    fn generic_url(&self, project: &str, rest: &str) -> String {
        self.at(&format!(
            "/api/v4/projects/{project}/packages/generic/{rest}"
        ))
    }

    /// A token signed with the registry's secrets.
    fn mint(&self, spec: TokenSpec) -> String {
        self.secrets().sign(&claims_of(spec))
    }

    /// A request with the administrator token.
    fn as_admin(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        self.http()
            .request(method, url)
            .header("PRIVATE-TOKEN", self.admin_token())
    }
}

impl Target for TestRegistry {
    fn base_url(&self) -> String {
        self.registry.url()
    }

    fn http(&self) -> &reqwest::Client {
        &self.client
    }

    fn secrets(&self) -> &Secrets {
        self.registry.token_secrets()
    }

    fn admin_token(&self) -> String {
        self.admin()
    }
}

/// Times a request answered 503 with `Retry-After` is sent again before
/// [`send_retrying_busy`] gives up.
const BUSY_RETRIES: usize = 5;

/// Sends the request `request` builds, again after a second while it
/// answers 503 with `Retry-After` (a key another request is creating, README
/// "Metadata that survives crashes"), as `curl --retry` does; returns the
/// first other answer's status and body.
pub async fn send_retrying_busy(
    request: impl Fn() -> reqwest::RequestBuilder,
) -> (StatusCode, String) {
    for _ in 0..BUSY_RETRIES {
        let response = request().send().await.unwrap();
        let busy = response.status() == StatusCode::SERVICE_UNAVAILABLE
            && response.headers().contains_key("retry-after");
        if !busy {
            return (response.status(), response.text().await.unwrap());
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("503 with Retry-After on all {BUSY_RETRIES} attempts"),
    )
}

/// Starts a registry under `genreg` with its metadata in the Redis database
/// at `url` (`--kv redis://...`) and everything else its own.
pub async fn start_on_redis(url: &str, variables: &[(&str, &str)]) -> TestRegistry {
    start_configured(variables, |config| {
        config.kv = genreg::KvConfig::Redis {
            url: url.to_string(),
        };
    })
    .await
}
