//! What the fault-and-crash suite is built from: a fault-injecting S3 proxy
//! ([`proxy`]), the `genreg` binary as a process to kill ([`process`]), the
//! invariant checker ([`checker`]), a seeded generator ([`rng`]), and the
//! publishing client below (one attempt, judged; or retried
//! through restarts until it answers 201).

pub mod checker;
pub mod process;
pub mod proxy;
pub mod rng;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::watch;

use checker::{sha256_hex, Acknowledged};

/// How long one request may take before the client calls it a hang.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether the slow variants run (`GENREG_FAULT_SUITE_FULL=1`).
pub fn full_suite() -> bool {
    std::env::var("GENREG_FAULT_SUITE_FULL").is_ok_and(|v| v == "1")
}

/// A client whose every request ends within [`CLIENT_TIMEOUT`].
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .build()
        .expect("an HTTP client")
}

/// Creates `acme/<path>` as the administrator; returns its id.
pub async fn create_project(client: &reqwest::Client, url: &str, token: &str, path: &str) -> u64 {
    let response = client
        .post(format!("{url}/api/v4/projects"))
        .header("PRIVATE-TOKEN", token)
        .json(&serde_json::json!({ "path": path, "namespace_path": "acme" }))
        .send()
        .await
        .expect("project creation answers");
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["id"].as_u64().unwrap()
}

/// One file to publish.
#[derive(Clone, Debug)]
pub struct Upload {
    pub project: u64,
    pub package: String,
    pub version: String,
    pub file_name: String,
    pub body: Vec<u8>,
    /// Sent without `Content-Length` (chunked).
    pub chunked: bool,
    /// `?status=hidden`.
    pub hidden: bool,
}

impl Upload {
    pub fn new(project: u64, package: &str, version: &str, file_name: &str, body: Vec<u8>) -> Self {
        Upload {
            project,
            package: package.into(),
            version: version.into(),
            file_name: file_name.into(),
            body,
            chunked: false,
            hidden: false,
        }
    }

    pub fn path(&self) -> String {
        let status = if self.hidden { "?status=hidden" } else { "" };
        format!(
            "/api/v4/projects/{}/packages/generic/{}/{}/{}{status}",
            self.project, self.package, self.version, self.file_name
        )
    }

    /// What a 201 for it promises.
    pub fn acknowledged(&self) -> Acknowledged {
        Acknowledged {
            project: self.project,
            package: self.package.clone(),
            version: self.version.clone(),
            file_name: self.file_name.clone(),
            sha256: sha256_hex(&self.body),
            size: self.body.len() as u64,
        }
    }

    pub fn describe(&self) -> String {
        let how = if self.chunked { "chunked" } else { "sized" };
        format!(
            "{}/{}/{} ({} bytes, {how})",
            self.package,
            self.version,
            self.file_name,
            self.body.len()
        )
    }

    /// Sends it once.
    pub async fn send(
        &self,
        client: &reqwest::Client,
        url: &str,
        token: &str,
    ) -> reqwest::Result<reqwest::Response> {
        let body = if self.chunked {
            let chunks: Vec<reqwest::Result<Vec<u8>>> = self
                .body
                .chunks(64 * 1024)
                .map(|c| Ok(c.to_vec()))
                .collect();
            reqwest::Body::wrap_stream(futures::stream::iter(chunks))
        } else {
            reqwest::Body::from(self.body.clone())
        };
        client
            .put(format!("{url}{}", self.path()))
            .header("PRIVATE-TOKEN", token)
            .body(body)
            .send()
            .await
    }
}

/// How a publish ended, as the fault scenarios judge it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Created,
    /// A 5xx with a GitLab-shaped JSON error body.
    ServerError(u16),
    /// Anything else: a hang, a cut connection, a 4xx, a body that is not
    /// the JSON error shape.
    Unexpected(String),
}

/// Judges the outcome of one publish.
pub async fn judge(result: reqwest::Result<reqwest::Response>) -> Answer {
    let response = match result {
        Ok(response) => response,
        Err(e) if e.is_timeout() => return Answer::Unexpected(format!("no answer: {e}")),
        Err(e) => return Answer::Unexpected(format!("connection failed: {e}")),
    };
    let status = response.status();
    if status == StatusCode::CREATED {
        return Answer::Created;
    }
    let body = response.text().await.unwrap_or_default();
    let shaped = serde_json::from_str::<Value>(&body).is_ok_and(|json| {
        json.get("message").is_some_and(Value::is_string)
            || json.get("error").is_some_and(Value::is_string)
    });
    if status.is_server_error() && shaped {
        Answer::ServerError(status.as_u16())
    } else {
        Answer::Unexpected(format!("{status}: {body}"))
    }
}

/// Attempts of one publish: enough for a restart and for the 503s of a
/// creation claim left by the killed process (at most 35 s, 1 s apart).
pub const PUBLISH_ATTEMPTS: u32 = 200;

/// Where the registry is now: `None` while it is down.
pub type Current = watch::Receiver<Option<String>>;

/// Per-client counts of what went wrong before a 201.
#[derive(Debug, Default)]
pub struct Retries {
    pub unavailable: usize,
    pub server_errors: usize,
    pub connection_errors: usize,
}

/// Publishes until it answers 201, riding out restarts and 503s; a 4xx,
/// or no 201 after [`PUBLISH_ATTEMPTS`], is an error.
pub async fn publish_until_created(
    client: &reqwest::Client,
    current: &mut Current,
    token: &str,
    upload: &Upload,
    retries: &mut Retries,
) -> Result<(), String> {
    for _ in 0..PUBLISH_ATTEMPTS {
        let url = tokio::time::timeout(CLIENT_TIMEOUT, current.wait_for(Option::is_some))
            .await
            .map_err(|_| "the registry did not come back".to_string())?
            .map_err(|_| "the test ended".to_string())?
            .clone()
            .unwrap();
        match upload.send(client, &url, token).await {
            Ok(response) if response.status() == StatusCode::CREATED => return Ok(()),
            Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                retries.unavailable += 1;
                tokio::time::sleep(checker::retry_after(&response)).await;
            }
            Ok(response) if response.status().is_server_error() => {
                retries.server_errors += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                return Err(format!("{} answered {status}: {body}", upload.describe()));
            }
            Err(_) => {
                retries.connection_errors += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Err(format!(
        "{}: no 201 after {PUBLISH_ATTEMPTS} attempts",
        upload.describe()
    ))
}
