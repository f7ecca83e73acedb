//! `genreg pull URL [-o FILE]`: downloads a file and checks its sha256.
//!
//! - The bytes go to `FILE.part` and become `FILE` only once the whole
//!   file's sha256 matched the `X-Checksum-SHA256` the server sent (on the
//!   download answer or on a redirect to S3). A mismatch keeps the bytes as
//!   `FILE.sha256-mismatch` and fails.
//! - A `FILE.part` left by an interrupted pull (or a `FILE` without one,
//!   e.g. from an interrupted `curl -o FILE`) is continued with `Range`;
//!   a server that ignores `Range` gets the file from the start again.
//! - Redirects are followed by hand: the credential goes only to the
//!   registry's own origin, never to the presigned S3 URL.
//! - A transfer cut by a transient failure continues where it stopped,
//!   within the retry bound.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use futures_util::StreamExt as _;
use reqwest::header::{HeaderMap, CONTENT_RANGE, LOCATION, RANGE};
use reqwest::{Client, Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;

use super::progress::Progress;
use super::retry::{from_send_error, Attempt, Backoff};
use super::{error_text, http_client, is_transient, Credential};

/// Redirects followed for one request at most.
const MAX_REDIRECTS: usize = 10;

#[derive(Clone, Debug)]
pub struct PullOptions {
    pub url: String,
    /// Default: the last segment of the URL's path, in the current
    /// directory.
    pub output: Option<PathBuf>,
    pub credential: Credential,
}

/// Downloads and verifies; returns the path of the verified file.
pub async fn pull(options: &PullOptions) -> anyhow::Result<PathBuf> {
    let output = match &options.output {
        Some(output) => output.clone(),
        None => PathBuf::from(file_name_of(&options.url)?),
    };
    let partial_path = with_suffix(&output, ".part");
    if !partial_path.exists() && output.exists() {
        // A file already there may be the start of this one: continue it.
        std::fs::rename(&output, &partial_path)
            .with_context(|| format!("renaming {}", output.display()))?;
    }
    let mut partial = Partial::open(&partial_path).await?;
    let download = Download {
        client: http_client()?,
        options: options.clone(),
        label: format!("pull {}", output.display()),
    };
    let expected = download.run(&mut partial).await?;
    partial.finish(&output, expected.as_deref())?;
    Ok(output)
}

/// The file name at the end of a URL's path (percent-decoded).
fn file_name_of(url: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url).with_context(|| format!("invalid URL {url}"))?;
    let last = parsed
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .unwrap_or_default();
    let name = percent_decode(last);
    let name = name.rsplit(['/', '\\']).next().unwrap_or_default();
    if name.is_empty() || name == "." || name == ".." {
        bail!("{url} names no file: give -o FILE");
    }
    Ok(name.to_string())
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("n={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The file being written, with the sha256 of what it holds so far.
struct Partial {
    path: PathBuf,
    file: tokio::fs::File,
    hasher: Sha256,
    len: u64,
}

impl Partial {
    /// Opens (or creates) the partial file and hashes what it holds.
    async fn open(path: &Path) -> anyhow::Result<Partial> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        let (hasher, len) = hash_existing(path).await?;
        Ok(Partial {
            path: path.to_path_buf(),
            file,
            hasher,
            len,
        })
    }

    /// Drops what the file holds: the server sends the whole file again.
    async fn restart(&mut self) -> anyhow::Result<()> {
        self.file.set_len(0).await?;
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }

    async fn append(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.file
            .write_all(bytes)
            .await
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Checks the sha256 and renames the file to `output`, or keeps the
    /// bytes under a name that says they did not match.
    fn finish(self, output: &Path, expected: Option<&str>) -> anyhow::Result<()> {
        let actual = hex::encode(self.hasher.finalize());
        drop(self.file);
        match expected {
            Some(expected) if !expected.eq_ignore_ascii_case(&actual) => {
                let kept = with_suffix(output, ".sha256-mismatch");
                std::fs::rename(&self.path, &kept)?;
                bail!(
                    "sha256 mismatch: the server announced {expected}, the {} bytes received \
                     hash to {actual}; they are kept in {} (not resumed by the next pull)",
                    self.len,
                    kept.display()
                );
            }
            Some(_) => {}
            None => eprintln!("warning: the server sent no X-Checksum-SHA256: not verified"),
        }
        std::fs::rename(&self.path, output)
            .with_context(|| format!("renaming to {}", output.display()))?;
        eprintln!("{} ({} bytes, sha256 {actual})", output.display(), self.len);
        Ok(())
    }
}

/// The sha256 state and length of an existing file.
async fn hash_existing(path: &Path) -> anyhow::Result<(Sha256, u64)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        let len = std::io::copy(&mut file, &mut hasher)?;
        anyhow::Ok((hasher, len))
    })
    .await?
}

struct Download {
    client: Client,
    options: PullOptions,
    label: String,
}

/// Where the bytes come from after redirects, and the checksum announced
/// on the way.
struct Answer {
    response: Response,
    sha256: Option<String>,
}

impl Download {
    /// Fills the partial file; returns the announced sha256.
    async fn run(&self, partial: &mut Partial) -> anyhow::Result<Option<String>> {
        let mut progress: Option<Progress> = None;
        let mut announced: Option<String> = None;
        let mut backoff = Backoff::new();
        let result = loop {
            let had = partial.len;
            let outcome = match self.request(had).await {
                Ok(answer) => {
                    if answer.sha256.is_some() {
                        announced = answer.sha256;
                    }
                    self.receive(answer.response, partial, &mut progress)
                        .await
                        .unwrap_or_else(Attempt::Fatal)
                }
                Err(attempt) => attempt,
            };
            match outcome {
                Attempt::Done(()) => break Ok(announced),
                Attempt::Fatal(e) => break Err(e.context("GET")),
                Attempt::Transient(why) => {
                    if partial.len > had {
                        // Bytes arrived: the bound is on failures in a row.
                        backoff = Backoff::new();
                    }
                    if let Err(e) = backoff.after_failure("GET", why).await {
                        break Err(e);
                    }
                }
            }
        };
        if let Some(progress) = progress {
            progress.finish();
        }
        result
    }

    /// Sends the GET (with `Range` past what `have` covers) and follows
    /// redirects.
    async fn request(&self, have: u64) -> Result<Answer, Attempt<()>> {
        let origin = origin_of(&self.options.url);
        let mut url = self.options.url.clone();
        let mut sha256 = None;
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self.client.get(&url);
            if have > 0 {
                request = request.header(RANGE, format!("bytes={have}-"));
            }
            if origin_of(&url) == origin {
                request = self
                    .options
                    .credential
                    .apply(request)
                    .map_err(Attempt::Fatal)?;
            }
            let response = request.send().await.map_err(from_send_error)?;
            sha256 = checksum_of(response.headers()).or(sha256);
            if !response.status().is_redirection() {
                return Ok(Answer { response, sha256 });
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| Attempt::Fatal(anyhow::anyhow!("a redirect without Location")))?;
            url = response
                .url()
                .join(location)
                .map_err(|e| Attempt::Fatal(anyhow::anyhow!("redirect to {location}: {e}")))?
                .to_string();
        }
        Err(Attempt::Fatal(anyhow::anyhow!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// Writes the answer's body into the partial file.
    async fn receive(
        &self,
        response: Response,
        partial: &mut Partial,
        progress: &mut Option<Progress>,
    ) -> anyhow::Result<Attempt<()>> {
        let status = response.status();
        let total = match status {
            StatusCode::OK => {
                partial.restart().await?;
                response.content_length()
            }
            StatusCode::PARTIAL_CONTENT => match content_range(response.headers()) {
                Some((start, total)) if start == partial.len => Some(total),
                _ => {
                    // Not the range asked for: start over.
                    partial.restart().await?;
                    return Ok(Attempt::Transient("unexpected Content-Range".into()));
                }
            },
            StatusCode::RANGE_NOT_SATISFIABLE => {
                return self.beyond_the_end(response, partial).await;
            }
            status if is_transient(status) => {
                return Ok(Attempt::Transient(error_text(response).await));
            }
            _ => bail!(error_text(response).await),
        };
        let progress = progress
            .get_or_insert_with(|| Progress::start(&self.label, total.unwrap_or(0), partial.len));
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => {
                    partial.append(&chunk).await?;
                    progress.add(chunk.len() as u64);
                }
                // Cut: the next attempt continues from here.
                Err(e) => return Ok(Attempt::Transient(format!("reading the body: {e:#}"))),
            }
        }
        match total {
            Some(total) if partial.len < total => Ok(Attempt::Transient(format!(
                "the body ended at {} of {total} bytes",
                partial.len
            ))),
            _ => Ok(Attempt::Done(())),
        }
    }

    /// 416: the partial file already reaches the end (it is complete, to be
    /// verified) or goes past it (it is not this file: start over).
    async fn beyond_the_end(
        &self,
        response: Response,
        partial: &mut Partial,
    ) -> anyhow::Result<Attempt<()>> {
        let total = response
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes */"))
            .and_then(|v| v.trim().parse::<u64>().ok());
        if total == Some(partial.len) {
            return Ok(Attempt::Done(()));
        }
        partial.restart().await?;
        Ok(Attempt::Transient(
            "the partial file is longer than the file: downloading it again".into(),
        ))
    }
}

/// `X-Checksum-SHA256` as lowercase hex, when present.
fn checksum_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-checksum-sha256")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `bytes START-END/TOTAL` → (START, TOTAL).
fn content_range(headers: &HeaderMap) -> Option<(u64, u64)> {
    let value = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    let range = value.trim().strip_prefix("bytes ")?;
    let (span, total) = range.split_once('/')?;
    let (start, _) = span.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()?))
}

fn origin_of(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .map(|url| url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_output_is_the_urls_file_name() {
        let url = "http://h/api/v4/projects/1/packages/generic/t/1.0/linux/amd64/tool%2B1.tar.gz";
        assert_eq!(file_name_of(url).unwrap(), "tool+1.tar.gz");
        let encoded = "http://h/api/v4/projects/1/packages/generic/t/1.0/a%2F..%2Ftool";
        assert_eq!(file_name_of(encoded).unwrap(), "tool");
        assert!(file_name_of("http://h/").is_err());
        assert!(file_name_of("http://h/x/..%2F..").is_err());
    }

    #[test]
    fn content_ranges_give_start_and_total() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_RANGE, "bytes 100-199/300".parse().unwrap());
        assert_eq!(content_range(&headers), Some((100, 300)));
        headers.insert(CONTENT_RANGE, "bytes */300".parse().unwrap());
        assert_eq!(content_range(&headers), None);
    }

    #[test]
    fn checksums_are_64_hex_digits() {
        let mut headers = HeaderMap::new();
        assert_eq!(checksum_of(&headers), None);
        headers.insert("x-checksum-sha256", "AB".repeat(32).parse().unwrap());
        assert_eq!(checksum_of(&headers), Some("ab".repeat(32)));
        headers.insert("x-checksum-sha256", "nope".parse().unwrap());
        assert_eq!(checksum_of(&headers), None);
    }
}
