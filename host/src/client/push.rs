//! `genreg push FILE URL`: publishes a file to a generic package URL.
//!
//! 1. Files up to [`PushOptions::session_above`] bytes go up as one `PUT`
//!    with `X-Checksum-SHA256` (the registry refuses a body that does not
//!    match it).
//! 2. Larger files are hashed, then an upload session is created (or, for
//!    the same file, resumed: the registry answers with the parts S3
//!    already holds). The missing parts are sent straight to S3 in
//!    parallel, each through a presigned URL bound to its sha256; the
//!    session is then completed, repeating the call while the registry
//!    answers 202 (it verifies the whole file in bounded steps).
//! 3. A server without sessions (GitLab answers the POST 404 or 405) gets
//!    the plain `PUT` of step 1 whatever the size.
//!
//! Parts are read from the file in small chunks, so memory stays bounded
//! by `parallel` x a chunk, whatever the file size.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use futures_util::{StreamExt as _, TryStreamExt as _};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use super::progress::Progress;
use super::retry::{from_send_error, json_answer, with_retries, Attempt};
use super::session::{Completion, Created, SessionApi, UploadSession};
use super::{http_client, is_transient, message_of, Credential};

/// Parts sent at once by default.
pub const DEFAULT_PARALLEL: usize = 4;
/// How much of a file is read at a time (hashing and sending).
const CHUNK: usize = 256 << 10;
/// Rounds of "complete, then send the parts it says are missing".
const COMPLETE_ROUNDS: usize = 3;

#[derive(Clone, Debug)]
pub struct PushOptions {
    pub file: PathBuf,
    pub url: String,
    pub credential: Credential,
    /// Parts sent at once.
    pub parallel: usize,
    /// Files larger than this use an upload session (`genreg push`: 8 MiB,
    /// under the 10 MiB bodies hosted platforms accept).
    pub session_above: u64,
    pub part_size: u64,
    /// Stop (fail) once this many parts were sent: simulates an
    /// interrupted push, for tests of resuming.
    pub stop_after_parts: Option<usize>,
}

/// Publishes the file; returns the file record the registry answered.
pub async fn push(options: &PushOptions) -> anyhow::Result<Value> {
    let size = std::fs::metadata(&options.file)
        .with_context(|| format!("reading {}", options.file.display()))?
        .len();
    let client = http_client()?;
    let label = format!("push {}", file_label(&options.file));
    if size <= options.session_above {
        let sha256 = hash_file(&options.file, None).await?;
        return plain_put(&client, options, size, &sha256, &label).await;
    }
    let hashing = Progress::start(&format!("sha256 {}", file_label(&options.file)), size, 0);
    let digests = hash_file_and_parts(&options.file, options.part_size, hashing.clone()).await;
    hashing.finish();
    let digests = digests?;
    let sha256 = digests.sha256.clone();
    let api = SessionApi::new(client.clone(), options.credential.clone(), &options.url)?;
    match api.create(size, &sha256, options.part_size).await? {
        Created::Unsupported => {
            eprintln!("the server has no upload sessions: sending the file in one PUT");
            plain_put(&client, options, size, &sha256, &label).await
        }
        Created::Session { session, resumed } => {
            if resumed {
                eprintln!(
                    "resuming upload session {}: {} of {} parts already stored",
                    session.id,
                    session.parts.len(),
                    session.parts_count
                );
            }
            let upload = SessionUpload {
                api,
                client,
                file: options.file.clone(),
                digests,
                parallel: options.parallel.max(1),
                stop_after_parts: options.stop_after_parts,
            };
            upload.run(session, &label).await
        }
    }
}

/// The file name shown in progress output.
fn file_label(file: &Path) -> String {
    file.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string())
}

/// The hex sha256 of a whole file, read in chunks off the async threads.
async fn hash_file(file: &Path, progress: Option<&Progress>) -> anyhow::Result<String> {
    let len = std::fs::metadata(file)?.len();
    let progress = progress.cloned();
    Ok(hash_parts(file, 0, len, len.max(1), progress).await?.sha256)
}

/// The sha256 of the whole file and of each of its parts of `part_size`
/// bytes, in one read.
async fn hash_file_and_parts(
    file: &Path,
    part_size: u64,
    progress: Progress,
) -> anyhow::Result<FileDigests> {
    let len = std::fs::metadata(file)?.len();
    hash_parts(file, 0, len, part_size, Some(progress)).await
}

/// The hex sha256 of `len` bytes of `file` from `offset`.
async fn hash_range(file: &Path, offset: u64, len: u64) -> anyhow::Result<String> {
    Ok(hash_parts(file, offset, len, len.max(1), None)
        .await?
        .sha256)
}

/// Hashes of a file: the whole and its parts.
#[derive(Clone, Debug)]
struct FileDigests {
    sha256: String,
    part_size: u64,
    /// Hex sha256 of part 1, 2, ...
    parts: Vec<String>,
}

/// Reads `len` bytes of `file` from `offset` once, hashing them whole and
/// in parts of `part_size`.
async fn hash_parts(
    file: &Path,
    offset: u64,
    len: u64,
    part_size: u64,
    progress: Option<Progress>,
) -> anyhow::Result<FileDigests> {
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut reader =
            std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
        reader.seek(SeekFrom::Start(offset))?;
        let mut reader = reader.take(len);
        let (mut whole, mut part) = (Sha256::new(), Sha256::new());
        let mut parts = Vec::new();
        let mut in_part = 0u64;
        let mut buffer = vec![0u8; CHUNK];
        loop {
            // Never read across a part boundary.
            let want = (part_size - in_part).min(CHUNK as u64) as usize;
            let read = reader.read(&mut buffer[..want])?;
            if read == 0 {
                break;
            }
            whole.update(&buffer[..read]);
            part.update(&buffer[..read]);
            in_part += read as u64;
            if in_part == part_size {
                parts.push(hex::encode(std::mem::take(&mut part).finalize()));
                in_part = 0;
            }
            if let Some(progress) = &progress {
                progress.add(read as u64);
            }
        }
        if in_part > 0 {
            parts.push(hex::encode(part.finalize()));
        }
        anyhow::Ok(FileDigests {
            sha256: hex::encode(whole.finalize()),
            part_size,
            parts,
        })
    })
    .await?
}

/// A body streaming `len` bytes of `file` from `offset`, counting what it
/// sent into `sent` and the progress.
async fn file_body(
    file: &Path,
    offset: u64,
    len: u64,
    progress: Progress,
    sent: Arc<AtomicU64>,
) -> std::io::Result<reqwest::Body> {
    let mut reader = tokio::fs::File::open(file).await?;
    reader.seek(SeekFrom::Start(offset)).await?;
    let chunks = tokio_util::io::ReaderStream::with_capacity(reader.take(len), CHUNK);
    let counted = chunks.inspect_ok(move |chunk| {
        sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        progress.add(chunk.len() as u64);
    });
    Ok(reqwest::Body::wrap_stream(counted))
}

/// The generic package URL with `select=package_file`, so the answer is
/// the file record (GitLab's and ours).
fn url_selecting_the_record(url: &str) -> anyhow::Result<String> {
    let mut parsed = url::Url::parse(url).with_context(|| format!("invalid URL {url}"))?;
    if !parsed.query_pairs().any(|(name, _)| name == "select") {
        parsed
            .query_pairs_mut()
            .append_pair("select", "package_file");
    }
    Ok(parsed.to_string())
}

/// One `PUT` of the whole file, sent again on transient failures.
async fn plain_put(
    client: &Client,
    options: &PushOptions,
    size: u64,
    sha256: &str,
    label: &str,
) -> anyhow::Result<Value> {
    let url = url_selecting_the_record(&options.url)?;
    let progress = Progress::start(label, size, 0);
    let result = with_retries("PUT", |_| async {
        let sent = Arc::new(AtomicU64::new(0));
        let body = match file_body(&options.file, 0, size, progress.clone(), sent.clone()).await {
            Ok(body) => body,
            Err(e) => return Attempt::Fatal(e.into()),
        };
        let request = client
            .put(&url)
            .header(reqwest::header::CONTENT_LENGTH, size)
            .header("X-Checksum-SHA256", sha256)
            .body(body);
        let request = match options.credential.apply(request) {
            Ok(request) => request,
            Err(e) => return Attempt::Fatal(e),
        };
        let outcome = match request.send().await {
            Ok(response) => published(response).await,
            Err(e) => from_send_error(e),
        };
        if !matches!(outcome, Attempt::Done(_)) {
            progress.take_back(sent.load(Ordering::Relaxed));
        }
        outcome
    })
    .await;
    progress.finish();
    result
}

/// The record a publish answered (200 with `select=package_file`; a bare
/// 201 `{"message":"201 Created"}` from servers that ignore `select`).
async fn published(response: reqwest::Response) -> Attempt<Value> {
    json_answer(response).await
}

/// The parts of one session being sent.
struct SessionUpload {
    api: SessionApi,
    client: Client,
    file: PathBuf,
    /// Part hashes made while hashing the file, for the part size asked for.
    digests: FileDigests,
    parallel: usize,
    stop_after_parts: Option<usize>,
}

impl SessionUpload {
    /// Sends what is missing, completes, and returns the file record.
    async fn run(&self, mut session: UploadSession, label: &str) -> anyhow::Result<Value> {
        let progress = Progress::start(label, session.size, stored_bytes(&session));
        let result = self.send_and_complete(&mut session, &progress).await;
        progress.finish();
        result
    }

    async fn send_and_complete(
        &self,
        session: &mut UploadSession,
        progress: &Progress,
    ) -> anyhow::Result<Value> {
        for _ in 0..COMPLETE_ROUNDS {
            self.send_missing_parts(session, progress).await?;
            match self.complete(session).await? {
                Some(record) => return Ok(record),
                // Some parts are not in S3 after all: ask which are.
                None => *session = self.api.get(session).await?,
            }
        }
        bail!(
            "upload session {}: parts still missing after {COMPLETE_ROUNDS} rounds",
            session.id
        )
    }

    /// Sends every part the session does not hold, `parallel` at a time.
    async fn send_missing_parts(
        &self,
        session: &UploadSession,
        progress: &Progress,
    ) -> anyhow::Result<()> {
        let sent_parts = AtomicUsize::new(0);
        let mut sends = futures_util::stream::iter(missing_parts(session))
            .map(|number| self.send_part(session, number, progress))
            .buffer_unordered(self.parallel);
        while let Some(result) = sends.next().await {
            result?;
            let sent = sent_parts.fetch_add(1, Ordering::Relaxed) + 1;
            if self.stop_after_parts == Some(sent) {
                bail!("stopped after {sent} parts (--stop-after-parts); run the same push again to resume");
            }
        }
        Ok(())
    }

    /// Hashes part `number`, asks for its URL and sends it, again with a
    /// fresh URL when S3 refuses it (BadDigest, an expired URL) or fails.
    async fn send_part(
        &self,
        session: &UploadSession,
        number: u64,
        progress: &Progress,
    ) -> anyhow::Result<()> {
        let (offset, len) = part_range(session, number);
        let sha256 = self.part_sha256(session, number, offset, len).await?;
        let what = format!("part {number}");
        with_retries(&what, |_| async {
            let target = match self.api.part_url(session, number, len, &sha256).await {
                Ok(target) => target,
                Err(e) => return Attempt::Fatal(e),
            };
            let sent = Arc::new(AtomicU64::new(0));
            let body =
                match file_body(&self.file, offset, len, progress.clone(), sent.clone()).await {
                    Ok(body) => body,
                    Err(e) => return Attempt::Fatal(e.into()),
                };
            let mut request = self.client.put(&target.url);
            for (name, value) in &target.headers {
                request = request.header(name.as_str(), value.as_str());
            }
            if !target.headers.contains_key("content-length") {
                request = request.header(reqwest::header::CONTENT_LENGTH, len);
            }
            let outcome = match request.body(body).send().await {
                Ok(response) => part_stored(response).await,
                Err(e) => from_send_error(e),
            };
            if !matches!(outcome, Attempt::Done(())) {
                progress.take_back(sent.load(Ordering::Relaxed));
            }
            outcome
        })
        .await
    }

    /// The part's hash from the first read of the file, or read again when
    /// the session has another part size (a session resumed from an
    /// earlier push with another `--part-size`).
    async fn part_sha256(
        &self,
        session: &UploadSession,
        number: u64,
        offset: u64,
        len: u64,
    ) -> anyhow::Result<String> {
        let known = usize::try_from(number - 1)
            .ok()
            .and_then(|index| self.digests.parts.get(index))
            .filter(|_| self.digests.part_size == session.part_size);
        match known {
            Some(sha256) => Ok(sha256.clone()),
            None => hash_range(&self.file, offset, len).await,
        }
    }

    /// Completes the session: the file record, or `None` when parts are
    /// missing. Shows the registry's verification as it goes.
    async fn complete(&self, session: &UploadSession) -> anyhow::Result<Option<Value>> {
        let mut verifying: Option<(Progress, u64)> = None;
        let outcome = loop {
            match self.api.complete(session).await {
                Ok(Completion::Verifying(state)) => {
                    let (progress, shown) = verifying.get_or_insert_with(|| {
                        (Progress::start("verify (registry)", session.size, 0), 0)
                    });
                    progress.add(state.verified_bytes.saturating_sub(*shown));
                    *shown = state.verified_bytes.max(*shown);
                }
                Ok(Completion::Recorded(record)) => break Ok(Some(record)),
                Ok(Completion::MissingParts(text)) => {
                    eprintln!("completing: {text}");
                    break Ok(None);
                }
                Err(e) => break Err(e),
            }
        };
        if let Some((progress, _)) = verifying {
            progress.finish();
        }
        outcome
    }
}

/// Whether S3 took a part: 2xx yes; BadDigest, an expired or refused
/// signature and 5xx are worth a new URL; anything else is final.
async fn part_stored(response: reqwest::Response) -> Attempt<()> {
    let status = response.status();
    if status.is_success() {
        return Attempt::Done(());
    }
    let body = response.text().await.unwrap_or_default();
    let text = format!("S3 answered {status}: {}", message_of(&body));
    let retry = is_transient(status)
        || status == StatusCode::FORBIDDEN
        || body.contains("<Code>BadDigest</Code>")
        || body.contains("<Code>RequestTimeout</Code>");
    if retry {
        Attempt::Transient(text)
    } else {
        Attempt::Fatal(anyhow::anyhow!(text))
    }
}

/// Bytes of the parts the session already holds.
fn stored_bytes(session: &UploadSession) -> u64 {
    session
        .parts
        .iter()
        .filter(|part| part.size == part_range(session, part.part_number).1)
        .map(|part| part.size)
        .sum()
}

/// Part numbers the session does not hold (or holds with a wrong size).
fn missing_parts(session: &UploadSession) -> Vec<u64> {
    (1..=session.parts_count)
        .filter(|&number| {
            let want = part_range(session, number).1;
            !session
                .parts
                .iter()
                .any(|part| part.part_number == number && part.size == want)
        })
        .collect()
}

/// Offset and length of part `number` (from 1): every part but the last
/// is `part_size` bytes.
fn part_range(session: &UploadSession, number: u64) -> (u64, u64) {
    let offset = (number - 1).saturating_mul(session.part_size);
    let len = session.part_size.min(session.size.saturating_sub(offset));
    (offset, len)
}

#[cfg(test)]
mod tests {
    use super::super::session::StoredPart;
    use super::*;

    fn session(size: u64, part_size: u64, stored: &[(u64, u64)]) -> UploadSession {
        UploadSession {
            id: "s".into(),
            project_id: 1,
            size,
            part_size,
            parts_count: size.div_ceil(part_size),
            parts: stored
                .iter()
                .map(|&(part_number, size)| StoredPart { part_number, size })
                .collect(),
            verified_bytes: 0,
        }
    }

    #[test]
    fn parts_cover_the_file_and_the_last_one_is_the_rest() {
        let s = session(25, 10, &[]);
        assert_eq!(s.parts_count, 3);
        assert_eq!(part_range(&s, 1), (0, 10));
        assert_eq!(part_range(&s, 3), (20, 5));
    }

    #[test]
    fn only_parts_s3_lacks_are_sent_again() {
        let s = session(25, 10, &[(1, 10), (3, 5)]);
        assert_eq!(missing_parts(&s), vec![2]);
        assert_eq!(stored_bytes(&s), 15);
        // A stored part of the wrong size is sent again.
        let s = session(25, 10, &[(2, 7)]);
        assert_eq!(missing_parts(&s), vec![1, 2, 3]);
        assert_eq!(stored_bytes(&s), 0);
    }

    #[test]
    fn the_put_asks_for_the_file_record_once() {
        let url = "http://h/api/v4/projects/1/packages/generic/t/1/f?status=hidden";
        assert_eq!(
            url_selecting_the_record(url).unwrap(),
            format!("{url}&select=package_file")
        );
        let already = "http://h/api/v4/projects/1/packages/generic/t/1/f?select=package_file";
        assert_eq!(url_selecting_the_record(already).unwrap(), already);
        let encoded = "http://h/api/v4/projects/g%2Fp/packages/generic/t/1/a%2Fb";
        assert!(url_selecting_the_record(encoded)
            .unwrap()
            .starts_with(encoded));
    }

    #[tokio::test]
    async fn ranges_hash_like_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let expected = hex::encode(Sha256::digest(b"3456"));
        assert_eq!(hash_range(&path, 3, 4).await.unwrap(), expected);
    }

    #[tokio::test]
    async fn one_read_hashes_the_file_and_each_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..(CHUNK * 2 + 100)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let part_size = CHUNK as u64 + 7;
        let progress = Progress::start("test", bytes.len() as u64, 0);
        let digests = hash_file_and_parts(&path, part_size, progress)
            .await
            .unwrap();
        assert_eq!(digests.sha256, hex::encode(Sha256::digest(&bytes)));
        let expected: Vec<String> = bytes
            .chunks(part_size as usize)
            .map(|part| hex::encode(Sha256::digest(part)))
            .collect();
        assert_eq!(digests.parts, expected);
        assert_eq!(hash_file(&path, None).await.unwrap(), digests.sha256);
    }
}
