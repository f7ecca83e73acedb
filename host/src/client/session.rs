//! The registry's upload-session API (README, "Upload sessions"): create or
//! resume a session, ask for a part's presigned URL, complete.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::retry::{from_send_error, json_answer, with_retries, Attempt};
use super::{error_text, is_transient, Credential};

/// A session as the registry describes it.
#[derive(Clone, Debug, Deserialize)]
pub struct UploadSession {
    pub id: String,
    pub project_id: u64,
    pub size: u64,
    pub part_size: u64,
    pub parts_count: u64,
    /// The parts S3 already holds.
    #[serde(default)]
    pub parts: Vec<StoredPart>,
    #[serde(default)]
    pub verified_bytes: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct StoredPart {
    pub part_number: u64,
    pub size: u64,
}

/// Where and how to send one part.
#[derive(Clone, Debug, Deserialize)]
pub struct PartUrl {
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// What creating a session answered.
pub enum Created {
    /// 201 (new) or 200 (an existing session for the same file: resuming).
    Session {
        session: UploadSession,
        resumed: bool,
    },
    /// 404 or 405: the server has no sessions (GitLab); send a plain PUT.
    Unsupported,
}

/// What one `complete` call answered.
pub enum Completion {
    /// 201: the file record.
    Recorded(Value),
    /// 202: still verifying; call again.
    Verifying(UploadSession),
    /// 400 naming parts S3 does not have.
    MissingParts(String),
}

/// The session API of the registry a generic package URL points to.
pub struct SessionApi {
    client: Client,
    credential: Credential,
    /// The generic package URL (the POST goes there).
    file_url: String,
    /// `https://host[/prefix]/api/v4`.
    api_base: String,
}

impl SessionApi {
    pub fn new(client: Client, credential: Credential, file_url: &str) -> anyhow::Result<Self> {
        Ok(SessionApi {
            client,
            credential,
            file_url: file_url.to_string(),
            api_base: api_base(file_url)?,
        })
    }

    /// Creates the session for a file of `size` bytes and this sha256, or
    /// gets the live one for the same file back with its stored parts.
    pub async fn create(&self, size: u64, sha256: &str, part_size: u64) -> anyhow::Result<Created> {
        let body = json!({ "size": size, "sha256": sha256, "part_size": part_size });
        with_retries("creating the upload session", |_| async {
            let request = self
                .credential
                .apply(self.client.post(&self.file_url).json(&body));
            let response = match request {
                Ok(request) => request.send().await,
                Err(e) => return Attempt::Fatal(e),
            };
            let response = match response {
                Ok(response) => response,
                Err(e) => return from_send_error(e),
            };
            match response.status() {
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
                    Attempt::Done(Created::Unsupported)
                }
                status @ (StatusCode::OK | StatusCode::CREATED) => {
                    match response.json::<UploadSession>().await {
                        Ok(session) => Attempt::Done(Created::Session {
                            session,
                            resumed: status == StatusCode::OK,
                        }),
                        Err(e) => Attempt::Transient(format!("reading the session: {e}")),
                    }
                }
                status if is_transient(status) => Attempt::Transient(error_text(response).await),
                _ => Attempt::Fatal(anyhow::anyhow!(error_text(response).await)),
            }
        })
        .await
    }

    /// The session as it is now (its stored parts).
    pub async fn get(&self, session: &UploadSession) -> anyhow::Result<UploadSession> {
        let url = self.session_url(session, "");
        self.send_json(
            reqwest::Method::GET,
            &url,
            None,
            "reading the upload session",
        )
        .await
    }

    /// A presigned URL for part `number` (`size` bytes, this sha256 in hex).
    pub async fn part_url(
        &self,
        session: &UploadSession,
        number: u64,
        size: u64,
        sha256: &str,
    ) -> anyhow::Result<PartUrl> {
        let url = self.session_url(session, &format!("/parts/{number}"));
        let body = json!({ "sha256": sha256, "size": size });
        let what = format!("asking for the URL of part {number}");
        self.send_json(reqwest::Method::POST, &url, Some(&body), &what)
            .await
    }

    /// One `complete` call.
    pub async fn complete(&self, session: &UploadSession) -> anyhow::Result<Completion> {
        let url = self.session_url(session, "/complete");
        with_retries("completing the upload session", |_| async {
            let response = match self.send(reqwest::Method::POST, &url, None).await {
                Ok(response) => response,
                Err(attempt) => return attempt,
            };
            match response.status() {
                StatusCode::CREATED | StatusCode::OK => match response.json::<Value>().await {
                    Ok(record) => Attempt::Done(Completion::Recorded(record)),
                    Err(e) => Attempt::Transient(format!("reading the file record: {e}")),
                },
                StatusCode::ACCEPTED => match response.json::<UploadSession>().await {
                    Ok(session) => Attempt::Done(Completion::Verifying(session)),
                    Err(e) => Attempt::Transient(format!("reading the session: {e}")),
                },
                StatusCode::BAD_REQUEST => {
                    let text = error_text(response).await;
                    if text.to_ascii_lowercase().contains("missing") {
                        Attempt::Done(Completion::MissingParts(text))
                    } else {
                        Attempt::Fatal(anyhow::anyhow!(text))
                    }
                }
                status if is_transient(status) => Attempt::Transient(error_text(response).await),
                _ => Attempt::Fatal(anyhow::anyhow!(error_text(response).await)),
            }
        })
        .await
    }

    /// Sends a request to the registry and reads a JSON answer, retrying
    /// transient failures.
    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
        what: &str,
    ) -> anyhow::Result<T> {
        with_retries(what, |_| async {
            let response = match self.send(method.clone(), url, body).await {
                Ok(response) => response,
                Err(attempt) => return attempt,
            };
            json_answer(response).await
        })
        .await
    }

    /// One request with the credential; a failure to send is an attempt's
    /// outcome.
    async fn send<T>(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, Attempt<T>> {
        let mut request = self.client.request(method, url);
        request = match body {
            Some(body) => request.json(body),
            None => request.header(reqwest::header::CONTENT_LENGTH, 0),
        };
        let request = self.credential.apply(request).map_err(Attempt::Fatal)?;
        request.send().await.map_err(from_send_error)
    }

    fn session_url(&self, session: &UploadSession, rest: &str) -> String {
        format!(
            "{}/projects/{}/packages/upload_sessions/{}{rest}",
            self.api_base, session.project_id, session.id
        )
    }
}

/// `https://host[/prefix]/api/v4` of a generic package URL.
fn api_base(file_url: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(file_url).with_context(|| format!("invalid URL {file_url}"))?;
    let path = url.path();
    let Some(at) = path.find("/api/v4/") else {
        bail!("{file_url} is not a generic package URL (.../api/v4/projects/:id/packages/generic/...)");
    };
    let origin = url.origin().ascii_serialization();
    Ok(format!("{origin}{}", &path[..at + "/api/v4".len()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_base_keeps_a_path_prefix() {
        let url = "https://h.example/gitlab/api/v4/projects/7/packages/generic/t/1/f?status=hidden";
        assert_eq!(api_base(url).unwrap(), "https://h.example/gitlab/api/v4");
        let url = "http://127.0.0.1:3000/api/v4/projects/a%2Fb/packages/generic/t/1/f";
        assert_eq!(api_base(url).unwrap(), "http://127.0.0.1:3000/api/v4");
        assert!(api_base("http://h/files/f").is_err());
    }

    #[test]
    fn sessions_read_the_documented_shape() {
        let session: UploadSession = serde_json::from_value(json!({
            "id": "3f9c", "project_id": 7, "package_name": "tool",
            "package_version": "1.0.0", "file_name": "tool.tar.gz",
            "size": 40, "sha256": "ab", "part_size": 16, "parts_count": 3,
            "parts": [{"part_number": 1, "size": 16}], "state": "uploading",
            "verified_bytes": 0, "_links": {"self": "/api/v4/projects/7/packages/upload_sessions/3f9c"}
        }))
        .unwrap();
        assert_eq!((session.parts_count, session.parts[0].part_number), (3, 1));
    }
}
