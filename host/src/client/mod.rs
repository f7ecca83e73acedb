//! `genreg push` and `genreg pull`: a client for the generic package URL
//! (`.../projects/:id/packages/generic/:name/:version/(:path/):file_name`)
//! that works against this registry and against GitLab itself.
//!
//! - [`push`]: a plain `PUT` for small files; an upload session (parts
//!   straight to S3, in parallel, resumable) for large ones, falling back to
//!   the plain `PUT` where the server has no sessions.
//! - [`pull`]: a `GET` that follows redirects itself (to keep the
//!   `X-Checksum-SHA256` a redirect answer carries), resumes a partial file
//!   with `Range` and verifies the whole file's sha256.
//! - [`progress`]: a bar on a terminal, plain lines otherwise.

pub mod progress;
pub mod pull;
pub mod push;
mod retry;
mod session;

use std::time::Duration;

use anyhow::Context as _;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{RequestBuilder, Response, StatusCode};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a response (head or body) may send nothing.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// A credential and the header GitLab expects it in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A personal (or project/group) access token: `PRIVATE-TOKEN`.
    Personal(String),
    /// A CI job token: `JOB-TOKEN`.
    Job(String),
    /// No credential (public projects can be downloaded).
    None,
}

impl Credential {
    /// `--token`, else `GITLAB_TOKEN` (personal), else `CI_JOB_TOKEN` (job).
    pub fn choose(flag: Option<String>, env: impl Fn(&str) -> Option<String>) -> Credential {
        let non_empty = |v: Option<String>| v.filter(|t| !t.trim().is_empty());
        if let Some(token) = non_empty(flag).or_else(|| non_empty(env("GITLAB_TOKEN"))) {
            return Credential::Personal(token.trim().to_string());
        }
        match non_empty(env("CI_JOB_TOKEN")) {
            Some(token) => Credential::Job(token.trim().to_string()),
            None => Credential::None,
        }
    }

    /// From the flag and the process environment.
    pub fn from_env(flag: Option<String>) -> Credential {
        Credential::choose(flag, |name| std::env::var(name).ok())
    }

    /// Adds the credential's header to a request to the registry (never to
    /// a presigned S3 URL).
    fn apply(&self, request: RequestBuilder) -> anyhow::Result<RequestBuilder> {
        let (name, token) = match self {
            Credential::Personal(token) => ("private-token", token),
            Credential::Job(token) => ("job-token", token),
            Credential::None => return Ok(request),
        };
        let mut value = HeaderValue::from_str(token).context("the token is not a valid header")?;
        value.set_sensitive(true);
        Ok(request.header(HeaderName::from_static(name), value))
    }
}

/// The HTTP client both commands use: no automatic redirects (a redirect
/// is followed by hand, without the credential), bounded connect and read
/// times, no overall deadline (a multi-GiB body takes what it takes).
fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(concat!("genreg/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}

/// What an error answer says: GitLab's `message` or `error`, else the body.
async fn error_text(response: Response) -> String {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    format!("{status}: {}", message_of(&body))
}

/// The `message` or `error` of a GitLab-shaped JSON body, the S3 `<Code>`
/// and `<Message>` of an XML one, else the body itself, shortened.
fn message_of(body: &str) -> String {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(body) {
        for key in ["message", "error"] {
            match &json[key] {
                serde_json::Value::String(text) => return text.clone(),
                serde_json::Value::Null => {}
                other => return other.to_string(),
            }
        }
    }
    if let Some(code) = xml_element(body, "Code") {
        let message = xml_element(body, "Message").unwrap_or_default();
        return format!("{code} {message}").trim().to_string();
    }
    let body = body.trim();
    match body.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &body[..cut]),
        None => body.to_string(),
    }
}

/// The text of the first `<name>...</name>` in an S3 error document.
fn xml_element<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let start = body.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + body[start..].find(&format!("</{name}>"))?;
    Some(&body[start..end])
}

/// Whether an answer is worth sending the request again for.
fn is_transient(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// Sizes for humans: `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_then_gitlab_token_then_the_job_token() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let both = env(&[("GITLAB_TOKEN", "g"), ("CI_JOB_TOKEN", "j")]);
        assert_eq!(
            Credential::choose(Some("f".into()), both),
            Credential::Personal("f".into())
        );
        assert_eq!(
            Credential::choose(None, both),
            Credential::Personal("g".into())
        );
        let job = env(&[("GITLAB_TOKEN", " "), ("CI_JOB_TOKEN", "j")]);
        assert_eq!(Credential::choose(None, job), Credential::Job("j".into()));
        assert_eq!(Credential::choose(None, env(&[])), Credential::None);
    }

    #[test]
    fn error_messages_come_from_gitlab_json_or_s3_xml() {
        assert_eq!(
            message_of(r#"{"message":"403 Forbidden"}"#),
            "403 Forbidden"
        );
        assert_eq!(
            message_of(r#"{"error":"file_name is invalid"}"#),
            "file_name is invalid"
        );
        let xml = "<?xml version=\"1.0\"?><Error><Code>BadDigest</Code>\
                   <Message>checksum mismatch</Message></Error>";
        assert_eq!(message_of(xml), "BadDigest checksum mismatch");
        assert_eq!(message_of(" plain "), "plain");
    }

    #[test]
    fn sizes_read_like_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(10 << 20), "10.0 MiB");
    }
}
