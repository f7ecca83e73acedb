//! `genreg gc`: deletes the objects of the bucket that no package record
//! points to.
//!
//! Such objects are normal leftovers: a publish writes its object first and
//! commits the record after (README, "Metadata that survives crashes"), so a crash, a refused commit
//! whose cleanup failed, or a client that went away leaves an object behind.
//!
//! 1. Learn which objects are referenced, in one of two ways:
//!    - through the registry (`--registry URL --token TOKEN`), for any
//!      deployment whatever its key-value store (Spin's SQLite, Redis, a
//!      cloud store): note the time, then page through
//!      `GET /api/v4/admin/referenced_objects` with an administrator token
//!      ([`registry_references`]). The component walks its own indexes
//!      through the host's store; a failed page stops the run.
//!    - from genreg's own database (`--data`): open the key-value database
//!      of the data directory (read-only; refuse if it is missing or not
//!      genreg's), note the time, and read every package record
//!      (`v1/pkg/...`) and the sealed segments it points to, collecting the
//!      `object_key` of their files. Keys and records are the component's
//!      own, from the shared `genreg-layout` crate; a record that does not
//!      decode stops the run, since its objects would otherwise look
//!      unreferenced.
//!
//!    Either way, upload sessions come first (the registry's sessions, or
//!    the `v1/upload-session/...` records): a session not yet collectable
//!    ([`session_collectable`]: live, or expired less than an hour ago)
//!    references its object key and its multipart upload, so a session
//!    being uploaded or verified keeps both. Sessions come before packages
//!    because a completed session is committed to its package before it is
//!    forgotten: whichever the scan meets names the object. Collectable
//!    sessions are removed before anything in S3 (not with `--dry-run`):
//!    from the database, their records then their index entries; through
//!    the registry, which removes them as it walks
//!    (`collect_expired_sessions=true`). Their uploads and objects are then
//!    unreferenced and collected below like any other.
//!
//!    The scan is not a snapshot: a file published while it runs
//!    may be missed. Its object is younger than the noted time, and step 3
//!    never deletes an object younger than `min_age` before that time.
//! 2. List the bucket's objects under `files/` (ListObjectsV2, paginated).
//!    Nothing outside `files/` is ever looked at or deleted.
//! 3. An object no record points to is deleted (DeleteObject), unless it was
//!    modified less than `min_age` before the records were read: an upload
//!    in flight has its object before its record, so young objects are only
//!    reported.
//!
//! 4. Multipart uploads under `files/` that were never completed nor
//!    aborted (a crash mid-upload, or an abort that failed) are listed
//!    (ListMultipartUploads, paginated) and aborted when they were
//!    initiated more than `min_age` before the records were read; younger
//!    ones may still be running and are only reported.
//!
//! S3 requests are SigV4-presigned with `rusty-s3` and sent with
//! [`HttpClient`]. With the embedded S3 server, `gc` starts one of its own on
//! loopback over the data directory's bucket ([`crate::s3::start_view`]), so
//! both cases take the same path.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, ensure, Context as _};
use bytes::Bytes;
use genreg_layout::keys::{self, PACKAGE_PREFIX, UPLOAD_SESSION_PREFIX, VERSION_PREFIX};
use genreg_layout::records::{
    object_keys_anywhere, session_collectable, Millis, Package, Project, Segment, UploadSession,
    UploadSessionEntry,
};
use http::{Method, StatusCode};
use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};
use serde_json::Value;

use crate::http_client::HttpClient;
use crate::keyvalue::{SqliteStore, LIST_PAGE_SIZE};
use crate::{data_dir, S3Config};

/// The objects the registry writes (`files/<hex>`): the only ones gc touches.
pub use genreg_layout::keys::OBJECT_PREFIX as FILES_PREFIX;
/// Default of `--min-age`.
pub const DEFAULT_MIN_AGE: Duration = Duration::from_secs(3600);
/// How long each presigned URL is valid.
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

/// What to collect, and where.
#[derive(Clone, Debug)]
pub struct GcConfig {
    /// The registry's data directory (its key-value database; with the
    /// embedded S3, its bucket and credentials).
    pub data_dir: PathBuf,
    /// The bucket; `Embedded` means the data directory's own (its `listen`
    /// is ignored: gc serves it on an ephemeral loopback port).
    pub s3: S3Config,
    /// Objects modified less than this long before the records were read are
    /// never deleted.
    pub min_age: Duration,
    /// Only report what would be deleted.
    pub dry_run: bool,
    /// Keys asked for per ListObjectsV2 page (S3 answers at most 1000),
    /// and per page of referenced keys when asking the registry.
    pub page_size: usize,
    /// Learn the referenced objects through this registry instead of the
    /// data directory's database.
    pub registry: Option<RegistryAccess>,
}

/// A running registry and an administrator token for it.
#[derive(Clone, Debug)]
pub struct RegistryAccess {
    /// Its base URL (`https://registry.example.com`), without `/api/v4`.
    pub url: String,
    pub token: String,
}

impl GcConfig {
    /// The data directory's embedded S3, [`DEFAULT_MIN_AGE`], deleting.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        GcConfig {
            data_dir: data_dir.into(),
            s3: S3Config::Embedded { listen: None },
            min_age: DEFAULT_MIN_AGE,
            dry_run: false,
            page_size: 1000,
            registry: None,
        }
    }
}

/// What happened to an unreferenced object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Deleted,
    /// `--dry-run`: old enough, would have been deleted.
    WouldDelete,
    /// Modified within the grace period (or with no usable `LastModified`).
    Skipped,
    /// The DeleteObject request failed.
    Failed(String),
}

/// An object under `files/` that no package record points to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    pub key: String,
    pub size: Option<u64>,
    /// As the listing gave it (RFC 3339).
    pub last_modified: Option<String>,
    pub outcome: Outcome,
}

impl fmt::Display for Orphan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.outcome {
            Outcome::Deleted => "deleted",
            Outcome::WouldDelete => "would delete",
            Outcome::Skipped => "skipped (too young)",
            Outcome::Failed(_) => "failed",
        };
        write!(f, "{what} {}", self.key)?;
        let size = self.size.map_or("?".to_string(), |s| s.to_string());
        let modified = self.last_modified.as_deref().unwrap_or("unknown");
        write!(f, " ({size} bytes, modified {modified})")?;
        if let Outcome::Failed(error) = &self.outcome {
            write!(f, ": {error}")?;
        }
        Ok(())
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Report {
    /// Package records read (0 when the registry was asked).
    pub records: usize,
    /// Distinct object keys they point to.
    pub referenced: usize,
    /// Objects under `files/` in the bucket.
    pub objects: usize,
    /// Referenced keys that were not in the listing (a package deleted while
    /// gc ran, or an object lost: the registry answers 5xx for its file).
    pub missing: Vec<String>,
    /// Every object no record points to, in key order.
    pub unreferenced: Vec<Orphan>,
    /// Every multipart upload under `files/` still open, in key order,
    /// but those of upload sessions not yet collectable.
    pub open_uploads: Vec<OpenUpload>,
    /// Upload sessions not yet collectable, whose uploads and objects were
    /// kept.
    pub upload_sessions: usize,
    /// Collectable upload sessions: removed (with `dry_run`, to be).
    pub expired_sessions: usize,
    pub dry_run: bool,
    pub min_age: Duration,
    /// When the record scan started; objects modified after
    /// `scan_started - min_age` were kept.
    pub scan_started: SystemTime,
}

impl Report {
    fn count(&self, pick: impl Fn(&Outcome) -> bool) -> usize {
        self.unreferenced
            .iter()
            .filter(|o| pick(&o.outcome))
            .count()
    }

    pub fn deleted(&self) -> usize {
        self.count(|o| *o == Outcome::Deleted)
    }

    pub fn skipped(&self) -> usize {
        self.count(|o| *o == Outcome::Skipped)
    }

    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }

    /// Open uploads whose abort failed.
    pub fn failed_uploads(&self) -> usize {
        self.count_uploads(|o| matches!(o, Outcome::Failed(_)))
    }

    fn count_uploads(&self, pick: impl Fn(&Outcome) -> bool) -> usize {
        self.open_uploads
            .iter()
            .filter(|u| pick(&u.outcome))
            .count()
    }

    /// `N objects, M unreferenced, K deleted`, then `; U open uploads, A
    /// aborted` when there are any.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{} objects, {} unreferenced, {} deleted",
            self.objects,
            self.unreferenced.len(),
            self.deleted()
        );
        if !self.open_uploads.is_empty() {
            line.push_str(&format!(
                "; {} open uploads, {} aborted",
                self.open_uploads.len(),
                self.count_uploads(|o| *o == Outcome::Deleted)
            ));
        }
        if self.upload_sessions > 0 || self.expired_sessions > 0 {
            let removed = if self.dry_run { "to remove" } else { "removed" };
            line.push_str(&format!(
                "; {} upload sessions kept, {} expired {removed}",
                self.upload_sessions, self.expired_sessions
            ));
        }
        let mut notes = Vec::new();
        if self.dry_run {
            let would = self.count(|o| *o == Outcome::WouldDelete);
            notes.push(format!("dry run: {would} would be deleted"));
            let would_abort = self.count_uploads(|o| *o == Outcome::WouldDelete);
            if would_abort > 0 {
                notes.push(format!("{would_abort} would be aborted"));
            }
        }
        let skipped = self.skipped() + self.count_uploads(|o| *o == Outcome::Skipped);
        if skipped > 0 {
            notes.push(format!(
                "{skipped} younger than {} skipped",
                format_duration(self.min_age)
            ));
        }
        let failed = self.failed() + self.failed_uploads();
        if failed > 0 {
            notes.push(format!("{failed} failed"));
        }
        if !notes.is_empty() {
            line.push_str(&format!(" ({})", notes.join(", ")));
        }
        line
    }
}

/// Runs a collection. Errors only when nothing could be decided (the
/// database, the records or the listing); a failed delete is reported in
/// its [`Orphan`] and the run goes on.
pub async fn run(config: &GcConfig) -> anyhow::Result<Report> {
    let (references, scan_started) = match &config.registry {
        Some(registry) => {
            let scan_started = SystemTime::now();
            let collect = !config.dry_run;
            let references = ask_registry(registry, config.page_size, collect).await?;
            (references, scan_started)
        }
        None => database_references(config).await?,
    };

    let cutoff = scan_started
        .checked_sub(config.min_age)
        .unwrap_or(SystemTime::UNIX_EPOCH);

    let (access, embedded) = match &config.s3 {
        S3Config::Embedded { .. } => {
            let view = crate::s3::start_view(&config.data_dir).await?;
            let access = S3Target {
                endpoint: view.server.endpoint(),
                bucket: crate::s3::BUCKET.to_string(),
                region: crate::s3::REGION.to_string(),
                access_key_id: view.server.credentials.access_key_id.clone(),
                secret_access_key: view.server.credentials.secret_access_key.clone(),
            };
            (access, Some(view))
        }
        S3Config::External {
            endpoint,
            bucket,
            region,
            access_key_id,
            secret_access_key,
        } => (
            S3Target {
                endpoint: endpoint.clone(),
                bucket: bucket.clone(),
                region: region.clone(),
                access_key_id: access_key_id.clone(),
                secret_access_key: secret_access_key.clone(),
            },
            None,
        ),
    };

    let result = async {
        let objects = collect(&access, &references, cutoff, config).await?;
        let uploads = collect_open_uploads(&access, &references, cutoff, config).await?;
        anyhow::Ok((objects, uploads))
    }
    .await;
    if let Some(view) = embedded {
        view.shutdown().await;
    }
    let ((objects, missing, unreferenced), open_uploads) = result?;
    Ok(Report {
        records: references.records,
        referenced: references.keys.len(),
        objects,
        missing,
        unreferenced,
        open_uploads,
        upload_sessions: references.session_uploads.len(),
        expired_sessions: references.expired_sessions(),
        dry_run: config.dry_run,
        min_age: config.min_age,
        scan_started,
    })
}

/// The references of the data directory's database, and when the scan
/// started.
async fn database_references(config: &GcConfig) -> anyhow::Result<(References, SystemTime)> {
    let db_path = data_dir::keyvalue_path(&config.data_dir);
    let store = tokio::task::spawn_blocking(move || SqliteStore::open_existing(&db_path))
        .await?
        .context("cannot read the key-value database, so nothing is deleted")?;
    let store = Arc::new(store);
    let scan_started = SystemTime::now();
    let now = millis(scan_started);
    let references =
        tokio::task::spawn_blocking(move || collect_references_at(&store, now)).await??;
    if !config.dry_run && !references.expired.is_empty() {
        let db_path = data_dir::keyvalue_path(&config.data_dir);
        let expired = references.expired.clone();
        tokio::task::spawn_blocking(move || {
            // The database exists: it was just read.
            let store = SqliteStore::open(&db_path)?;
            remove_expired_sessions(&store, &expired, now)?;
            anyhow::Ok(store.sync()?)
        })
        .await?
        .context("removing expired upload sessions")?;
    }
    Ok((references, scan_started))
}

/// Milliseconds since the Unix epoch, as records keep times.
fn millis(time: SystemTime) -> Millis {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// The path of the registry's listing of referenced object keys (ours).
pub const REFERENCED_OBJECTS_PATH: &str = "/api/v4/admin/referenced_objects";

/// Every object key the registry references (without changing anything):
/// [`ask_registry`]'s keys.
pub async fn registry_references(
    registry: &RegistryAccess,
    page_size: usize,
) -> anyhow::Result<HashSet<String>> {
    Ok(ask_registry(registry, page_size, false).await?.keys)
}

/// What the registry references, asked page by page of `page_size` keys
/// (the registry caps it) from [`REFERENCED_OBJECTS_PATH`], following
/// `next_cursor`; with `collect_expired`, the registry removes the
/// collectable upload sessions it meets. Any answer but a well-formed 200
/// stops the run: nothing may be deleted on a partial list.
pub async fn ask_registry(
    registry: &RegistryAccess,
    page_size: usize,
    collect_expired: bool,
) -> anyhow::Result<References> {
    let base = url::Url::parse(registry.url.trim_end_matches('/'))
        .with_context(|| format!("invalid registry URL {:?}", registry.url))?;
    let mut client = HttpClient::new();
    let mut references = References::default();
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest {
            page_size,
            cursor: cursor.as_deref(),
            collect_expired,
        };
        let url = references_page_url(&base, &registry.token, &page)?;
        let response = client.send(Method::GET, url.as_str(), Bytes::new()).await?;
        ensure!(
            response.status == StatusCode::OK,
            "the registry answered {} to {REFERENCED_OBJECTS_PATH} (an administrator token is needed), so nothing is deleted: {}",
            response.status,
            response.body_excerpt()
        );
        let page = parse_references_page(&response.body)?;
        references.keys.extend(page.object_keys);
        references.session_uploads.extend(page.upload_sessions);
        references.expired_elsewhere += page.expired_upload_sessions;
        match page.next_cursor {
            Some(next) if cursor.as_ref() == Some(&next) => {
                bail!("the registry returned the same cursor twice")
            }
            Some(next) => cursor = Some(next),
            None => return Ok(references),
        }
    }
}

/// What one page asks for.
struct PageRequest<'a> {
    page_size: usize,
    cursor: Option<&'a str>,
    collect_expired: bool,
}

/// One page's URL; the token goes as `private_token`, which the registry
/// reads like the `PRIVATE-TOKEN` header (errors never show the query).
fn references_page_url(
    base: &url::Url,
    token: &str,
    page: &PageRequest,
) -> anyhow::Result<url::Url> {
    let mut url = base.clone();
    let path = format!(
        "{}{REFERENCED_OBJECTS_PATH}",
        url.path().trim_end_matches('/')
    );
    url.set_path(&path);
    {
        let mut query = url.query_pairs_mut();
        query.clear();
        query.append_pair("per_page", &page.page_size.max(1).to_string());
        if let Some(cursor) = page.cursor {
            query.append_pair("cursor", cursor);
        }
        if page.collect_expired {
            query.append_pair("collect_expired_sessions", "true");
        }
        query.append_pair("private_token", token);
    }
    Ok(url)
}

/// One page of the registry's answer.
#[derive(Debug, PartialEq, Eq)]
pub struct ReferencesPage {
    pub object_keys: Vec<String>,
    /// The uploads of upload sessions (absent from older registries).
    pub upload_sessions: Vec<SessionUpload>,
    /// Collectable upload sessions the page met.
    pub expired_upload_sessions: usize,
    pub next_cursor: Option<String>,
}

/// Reads `{"object_keys": [...], "upload_sessions": [{"object_key": ...,
/// "upload_id": ...}], "expired_upload_sessions": n, "next_cursor": "..." |
/// null}`; the session fields may be absent (older registries).
pub fn parse_references_page(body: &[u8]) -> anyhow::Result<ReferencesPage> {
    let excerpt = || String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    let json: Value = serde_json::from_slice(body)
        .with_context(|| format!("the registry's answer is not JSON: {}", excerpt()))?;
    let object_keys = json["object_keys"]
        .as_array()
        .and_then(|keys| {
            keys.iter()
                .map(|k| k.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
        })
        .with_context(|| format!("no list of object keys in {}", excerpt()))?;
    let next_cursor = match &json["next_cursor"] {
        Value::Null => None,
        Value::String(cursor) => Some(cursor.clone()),
        other => bail!("invalid next_cursor {other}"),
    };
    let upload_sessions = match &json["upload_sessions"] {
        Value::Null => Vec::new(),
        sessions => serde_json::from_value(sessions.clone())
            .with_context(|| format!("invalid upload_sessions in {}", excerpt()))?,
    };
    let expired_upload_sessions = match &json["expired_upload_sessions"] {
        Value::Null => 0,
        count => count
            .as_u64()
            .with_context(|| format!("invalid expired_upload_sessions {count}"))?
            as usize,
    };
    Ok(ReferencesPage {
        object_keys,
        upload_sessions,
        expired_upload_sessions,
        next_cursor,
    })
}

struct S3Target {
    endpoint: String,
    bucket: String,
    region: String,
    access_key_id: String,
    secret_access_key: String,
}

/// Lists `files/`, then deletes (or not) what is unreferenced. Returns the
/// number of objects, the missing references and the unreferenced objects.
async fn collect(
    target: &S3Target,
    references: &References,
    cutoff: SystemTime,
    config: &GcConfig,
) -> anyhow::Result<(usize, Vec<String>, Vec<Orphan>)> {
    let referenced = &references.keys;
    // A session still uploading has no object yet: not missing.
    let session_objects: HashSet<&str> = references
        .session_uploads
        .iter()
        .map(|u| u.object_key.as_str())
        .collect();
    let endpoint = url::Url::parse(&target.endpoint)
        .with_context(|| format!("invalid S3 endpoint {:?}", target.endpoint))?;
    let bucket = Bucket::new(
        endpoint,
        UrlStyle::Path,
        target.bucket.clone(),
        target.region.clone(),
    )
    .context("invalid S3 endpoint or bucket")?;
    let credentials = Credentials::new(&target.access_key_id, &target.secret_access_key);
    let mut client = HttpClient::new();

    let listed = list_files(&mut client, &bucket, &credentials, config.page_size).await?;
    let listed_keys: HashSet<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    let mut missing: Vec<String> = referenced
        .iter()
        .filter(|k| k.starts_with(FILES_PREFIX) && !listed_keys.contains(k.as_str()))
        .filter(|k| !session_objects.contains(k.as_str()))
        .cloned()
        .collect();
    missing.sort();

    let mut unreferenced = Vec::new();
    for object in &listed {
        if referenced.contains(&object.key) {
            continue;
        }
        let outcome = if !old_enough(object.last_modified.as_deref(), cutoff) {
            Outcome::Skipped
        } else if config.dry_run {
            Outcome::WouldDelete
        } else {
            match delete(&mut client, &bucket, &credentials, &object.key).await {
                Ok(()) => Outcome::Deleted,
                Err(e) => Outcome::Failed(format!("{e:#}")),
            }
        };
        unreferenced.push(Orphan {
            key: object.key.clone(),
            size: object.size,
            last_modified: object.last_modified.clone(),
            outcome,
        });
    }
    Ok((listed.len(), missing, unreferenced))
}

/// Every object under `files/`, following continuation tokens.
async fn list_files(
    client: &mut HttpClient,
    bucket: &Bucket,
    credentials: &Credentials,
    page_size: usize,
) -> anyhow::Result<Vec<ListedObject>> {
    let mut objects = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut action = bucket.list_objects_v2(Some(credentials));
        action.with_prefix(FILES_PREFIX);
        action.with_max_keys(page_size.max(1));
        if let Some(token) = &token {
            action.with_continuation_token(token.clone());
        }
        let url = action.sign(SIGNED_FOR);
        let response = client.send(Method::GET, url.as_str(), Bytes::new()).await?;
        ensure!(
            response.status == StatusCode::OK,
            "listing the bucket answered {}: {}",
            response.status,
            response.body_excerpt()
        );
        let text = std::str::from_utf8(&response.body).context("listing is not UTF-8")?;
        let page = parse_listing(text)?;
        objects.extend(page.objects);
        match page.next {
            // A server repeating a token would loop forever.
            Some(next) if token.as_ref() == Some(&next) => {
                bail!("the S3 server returned the same continuation token twice")
            }
            Some(next) => token = Some(next),
            None => break,
        }
    }
    Ok(objects)
}

async fn delete(
    client: &mut HttpClient,
    bucket: &Bucket,
    credentials: &Credentials,
    key: &str,
) -> anyhow::Result<()> {
    // Checked again right before the request: gc never deletes elsewhere.
    ensure!(
        key.starts_with(FILES_PREFIX),
        "{key} is outside {FILES_PREFIX}"
    );
    let url = bucket
        .delete_object(Some(credentials), key)
        .sign(SIGNED_FOR);
    let response = client
        .send(Method::DELETE, url.as_str(), Bytes::new())
        .await?;
    // 404: already gone (S3 itself answers 204 either way).
    if response.status.is_success() || response.status == StatusCode::NOT_FOUND {
        Ok(())
    } else {
        bail!("answered {}: {}", response.status, response.body_excerpt())
    }
}

/// A multipart upload under `files/` that was neither completed nor
/// aborted, and what happened to it (`Deleted`: aborted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenUpload {
    pub key: String,
    pub upload_id: String,
    /// As the listing gave it (RFC 3339).
    pub initiated: Option<String>,
    pub outcome: Outcome,
}

impl fmt::Display for OpenUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.outcome {
            Outcome::Deleted => "aborted",
            Outcome::WouldDelete => "would abort",
            Outcome::Skipped => "skipped (too young)",
            Outcome::Failed(_) => "failed to abort",
        };
        let initiated = self.initiated.as_deref().unwrap_or("unknown");
        write!(
            f,
            "{what} upload {} of {} (initiated {initiated})",
            self.upload_id, self.key
        )?;
        if let Outcome::Failed(error) = &self.outcome {
            write!(f, ": {error}")?;
        }
        Ok(())
    }
}

/// Lists the open multipart uploads under `files/` and aborts (or not) the
/// ones initiated before `cutoff`, but those of upload sessions, which are
/// left alone.
async fn collect_open_uploads(
    target: &S3Target,
    references: &References,
    cutoff: SystemTime,
    config: &GcConfig,
) -> anyhow::Result<Vec<OpenUpload>> {
    let endpoint = url::Url::parse(&target.endpoint)
        .with_context(|| format!("invalid S3 endpoint {:?}", target.endpoint))?;
    let bucket = Bucket::new(
        endpoint,
        UrlStyle::Path,
        target.bucket.clone(),
        target.region.clone(),
    )
    .context("invalid S3 endpoint or bucket")?;
    let credentials = Credentials::new(&target.access_key_id, &target.secret_access_key);
    let mut client = HttpClient::new();

    let listed = list_open_uploads(&mut client, &bucket, &credentials, config.page_size).await?;
    let mut uploads = Vec::new();
    for upload in listed {
        let session = SessionUpload {
            object_key: upload.key.clone(),
            upload_id: upload.upload_id.clone(),
        };
        if references.session_uploads.contains(&session) {
            continue;
        }
        let outcome = if !old_enough(upload.initiated.as_deref(), cutoff) {
            Outcome::Skipped
        } else if config.dry_run {
            Outcome::WouldDelete
        } else {
            match abort_upload(&mut client, &bucket, &credentials, &upload).await {
                Ok(()) => Outcome::Deleted,
                Err(e) => Outcome::Failed(format!("{e:#}")),
            }
        };
        uploads.push(OpenUpload {
            key: upload.key,
            upload_id: upload.upload_id,
            initiated: upload.initiated,
            outcome,
        });
    }
    Ok(uploads)
}

/// Every open upload under `files/`, following the key and upload-id
/// markers.
async fn list_open_uploads(
    client: &mut HttpClient,
    bucket: &Bucket,
    credentials: &Credentials,
    page_size: usize,
) -> anyhow::Result<Vec<ListedUpload>> {
    let mut uploads = Vec::new();
    let mut marker: Option<(String, String)> = None;
    loop {
        let url = list_uploads_url(bucket, credentials, page_size, marker.as_ref());
        let response = client.send(Method::GET, url.as_str(), Bytes::new()).await?;
        ensure!(
            response.status == StatusCode::OK,
            "listing the multipart uploads answered {}: {}",
            response.status,
            response.body_excerpt()
        );
        let text = std::str::from_utf8(&response.body).context("listing is not UTF-8")?;
        let page = parse_uploads_listing(text)?;
        uploads.extend(page.uploads);
        match page.next {
            // A server repeating its markers would loop forever.
            Some(next) if marker.as_ref() == Some(&next) => {
                bail!("the S3 server returned the same upload markers twice")
            }
            Some(next) => marker = Some(next),
            None => break,
        }
    }
    Ok(uploads)
}

/// A presigned ListMultipartUploads (`GET /<bucket>/?uploads`), which
/// rusty-s3 does not build itself.
fn list_uploads_url(
    bucket: &Bucket,
    credentials: &Credentials,
    page_size: usize,
    marker: Option<&(String, String)>,
) -> url::Url {
    let max = page_size.clamp(1, 1000).to_string();
    // Sorted by name, as the signature needs.
    let mut query: Vec<(&str, &str)> = Vec::new();
    if let Some((key, _)) = marker {
        query.push(("key-marker", key));
    }
    query.push(("max-uploads", &max));
    query.push(("prefix", FILES_PREFIX));
    if let Some((_, upload_id)) = marker {
        query.push(("upload-id-marker", upload_id));
    }
    query.push(("uploads", ""));
    rusty_s3::signing::sign(
        &jiff::Timestamp::now(),
        rusty_s3::Method::Get,
        bucket.base_url().clone(),
        credentials.key(),
        credentials.secret(),
        credentials.token(),
        bucket.region(),
        SIGNED_FOR.as_secs(),
        query.into_iter(),
        std::iter::empty(),
    )
}

async fn abort_upload(
    client: &mut HttpClient,
    bucket: &Bucket,
    credentials: &Credentials,
    upload: &ListedUpload,
) -> anyhow::Result<()> {
    ensure!(
        upload.key.starts_with(FILES_PREFIX),
        "{} is outside {FILES_PREFIX}",
        upload.key
    );
    let url = bucket
        .abort_multipart_upload(Some(credentials), &upload.key, &upload.upload_id)
        .sign(SIGNED_FOR);
    let response = client
        .send(Method::DELETE, url.as_str(), Bytes::new())
        .await?;
    // 404 (NoSuchUpload): completed or aborted since it was listed.
    if response.status.is_success() || response.status == StatusCode::NOT_FOUND {
        Ok(())
    } else {
        bail!("answered {}: {}", response.status, response.body_excerpt())
    }
}

/// One upload of a ListMultipartUploads answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<String>,
}

/// One ListMultipartUploads page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadsPage {
    /// Only uploads under [`FILES_PREFIX`] (whatever the server sent).
    pub uploads: Vec<ListedUpload>,
    /// The key and upload-id markers of the next page, when more follow.
    pub next: Option<(String, String)>,
}

/// Parses a ListMultipartUploads answer (`<ListMultipartUploadsResult>`).
pub fn parse_uploads_listing(xml: &str) -> anyhow::Result<UploadsPage> {
    ensure!(
        xml.contains("<ListMultipartUploadsResult"),
        "invalid ListMultipartUploads answer: {}",
        xml.chars().take(200).collect::<String>()
    );
    let mut uploads = Vec::new();
    for block in xml_elements(xml, "Upload") {
        let key = xml_text(block, "Key").context("an upload without Key")?;
        let upload_id = xml_text(block, "UploadId").context("an upload without UploadId")?;
        if key.starts_with(FILES_PREFIX) {
            uploads.push(ListedUpload {
                key,
                upload_id,
                initiated: xml_text(block, "Initiated"),
            });
        }
    }
    let truncated = xml_text(xml, "IsTruncated").is_some_and(|t| t == "true");
    let next = if truncated {
        let key = xml_text(xml, "NextKeyMarker").context("truncated without NextKeyMarker")?;
        let id = xml_text(xml, "NextUploadIdMarker").unwrap_or_default();
        Some((key, id))
    } else {
        None
    };
    Ok(UploadsPage { uploads, next })
}

/// The contents of every `<name>...</name>` element, in order.
fn xml_elements<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else {
            break;
        };
        found.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    found
}

/// The text of the first `<name>` element, entities decoded.
fn xml_text(xml: &str, name: &str) -> Option<String> {
    let text = xml_elements(xml, name).into_iter().next()?;
    Some(
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// The object keys the package records and upload sessions point to.
#[derive(Debug, Default)]
pub struct References {
    /// Package records read.
    pub records: usize,
    pub keys: HashSet<String>,
    /// The multipart uploads of the upload sessions not yet collectable
    /// (their object keys are in `keys` too).
    pub session_uploads: HashSet<SessionUpload>,
    /// Collectable sessions found in the database, to remove.
    pub expired: ExpiredSessions,
    /// Collectable sessions the registry met (and removed, when asked).
    pub expired_elsewhere: usize,
}

impl References {
    /// Collectable upload sessions found, wherever.
    pub fn expired_sessions(&self) -> usize {
        self.expired.sessions + self.expired_elsewhere
    }
}

/// What an upload session keeps in S3: its object (joined, or to be) and
/// its multipart upload.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
pub struct SessionUpload {
    pub object_key: String,
    pub upload_id: String,
}

/// The keys of the collectable upload sessions of the database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpiredSessions {
    /// Distinct sessions: by record, or by index entry when the record is
    /// gone already.
    pub sessions: usize,
    /// Their records (`v1/upload-session/<project>/<id>`).
    pub records: Vec<String>,
    /// The project indexes that still list some of them.
    pub indexes: Vec<String>,
}

impl ExpiredSessions {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.indexes.is_empty()
    }
}

/// Where the projects' upload session indexes are kept
/// (`keys::upload_session_index`).
const SESSION_INDEX_PREFIX: &str = "v1/upload-sessions/";

/// Reads every key under [`PACKAGE_PREFIX`] with the store's own paging and
/// collects the object keys of the package records and of the segments
/// they point to (the creation claims beside the records are skipped; any
/// other key there must be a package record). Refuses a store that holds no
/// key of the layout at all: that is not a registry's database, and
/// collecting against it would delete every object.
pub fn collect_references(store: &SqliteStore) -> anyhow::Result<References> {
    collect_references_at(store, millis(SystemTime::now()))
}

/// [`collect_references`] with upload sessions judged at `now`: first the
/// sessions ([`collect_session_references`]), then the package records.
pub fn collect_references_at(store: &SqliteStore, now: Millis) -> anyhow::Result<References> {
    let any = store.list_keys(Some(VERSION_PREFIX), 1)?;
    ensure!(
        any.keys
            .first()
            .is_some_and(|k| k.starts_with(VERSION_PREFIX)),
        "the key-value database holds no registry data (no {VERSION_PREFIX} key)"
    );
    let mut references = References::default();
    collect_session_references(store, now, &mut references)?;
    let mut deleted_projects: HashMap<u64, bool> = HashMap::new();
    // `list_keys` returns keys after the cursor: the prefix itself is never
    // a key, and every package key sorts after it.
    let mut cursor = PACKAGE_PREFIX.to_string();
    loop {
        let page = store.list_keys(Some(&cursor), LIST_PAGE_SIZE)?;
        let mut past_prefix = false;
        for key in &page.keys {
            if !key.starts_with(PACKAGE_PREFIX) {
                past_prefix = true;
                break;
            }
            if !keys::is_package_record(key) {
                continue;
            }
            // Deleted between the listing and the read: nothing to keep.
            let Some(value) = store.get(key)? else {
                continue;
            };
            let record = record_references(&value).with_context(|| format!("record {key}"))?;
            references.records += 1;
            // A crash while a project was being deleted leaves some of its
            // packages behind: nothing can reach them any more.
            if in_deleted_project(store, key, &mut deleted_projects)? {
                continue;
            }
            references.keys.extend(record.object_keys);
            for segment in record.segments {
                let value = store
                    .get(&segment)?
                    .with_context(|| format!("record {key} points to a missing {segment}"))?;
                let keys =
                    segment_object_keys(&value).with_context(|| format!("segment {segment}"))?;
                references.keys.extend(keys);
            }
        }
        match page.cursor {
            Some(next) if !past_prefix => cursor = next,
            _ => break,
        }
    }
    Ok(references)
}

/// Every key under `prefix`, in order, with the store's own paging.
fn keys_under(store: &SqliteStore, prefix: &str) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    // `list_keys` returns keys after the cursor; the prefix itself is none.
    let mut cursor = prefix.to_string();
    loop {
        let page = store.list_keys(Some(&cursor), LIST_PAGE_SIZE)?;
        let before = found.len();
        found.extend(
            page.keys
                .iter()
                .take_while(|k| k.starts_with(prefix))
                .cloned(),
        );
        let past_prefix = found.len() - before < page.keys.len();
        match page.cursor {
            Some(next) if !past_prefix => cursor = next,
            _ => return Ok(found),
        }
    }
}

/// Reads every upload session record: one not yet collectable at `now`
/// references its object and upload; collectable ones, and index entries
/// of collectable sessions (whose record may be gone already), are noted
/// for removal. A record that does not decode stops the run, since its
/// objects would otherwise look unreferenced.
pub fn collect_session_references(
    store: &SqliteStore,
    now: Millis,
    references: &mut References,
) -> anyhow::Result<()> {
    let mut expired: HashSet<String> = HashSet::new();
    for key in keys_under(store, UPLOAD_SESSION_PREFIX)? {
        if !keys::is_upload_session(&key) {
            continue;
        }
        let Some(value) = store.get(&key)? else {
            continue;
        };
        let session: UploadSession = serde_json::from_slice(&value)
            .with_context(|| format!("upload session record {key}"))?;
        if session_collectable(session.expires_at, now) {
            references.expired.records.push(key.clone());
            expired.insert(key);
        } else {
            references.keys.insert(session.object_key.clone());
            references.session_uploads.insert(SessionUpload {
                object_key: session.object_key,
                upload_id: session.upload_id,
            });
        }
    }
    for key in keys_under(store, SESSION_INDEX_PREFIX)? {
        if keys::is_creation_claim(&key) {
            continue;
        }
        let project_id: u64 = key[SESSION_INDEX_PREFIX.len()..]
            .parse()
            .with_context(|| format!("upload session index {key}"))?;
        let Some(value) = store.get(&key)? else {
            continue;
        };
        let entries: Vec<UploadSessionEntry> = serde_json::from_slice(&value)
            .with_context(|| format!("upload session index {key}"))?;
        let collectable: Vec<_> = entries
            .iter()
            .filter(|e| session_collectable(e.expires_at, now))
            .collect();
        if !collectable.is_empty() {
            expired.extend(
                collectable
                    .iter()
                    .map(|e| keys::upload_session(project_id, &e.id)),
            );
            references.expired.indexes.push(key);
        }
    }
    references.expired.sessions = expired.len();
    Ok(())
}

/// Removes collectable upload sessions: their records, then their entries
/// in the project indexes (dropped by compare-and-swap, since the registry
/// may change an index meanwhile). A crash in between leaves entries that
/// their expiry alone lets the next run (or the registry) drop.
pub fn remove_expired_sessions(
    store: &SqliteStore,
    expired: &ExpiredSessions,
    now: Millis,
) -> anyhow::Result<()> {
    store.delete_many(&expired.records)?;
    for index in &expired.indexes {
        drop_collectable_entries(store, index, now)?;
    }
    Ok(())
}

/// Drops the collectable entries of one project's session index.
fn drop_collectable_entries(store: &SqliteStore, key: &str, now: Millis) -> anyhow::Result<()> {
    for _ in 0..100 {
        let Some(current) = store.get(key)? else {
            return Ok(());
        };
        let mut entries: Vec<UploadSessionEntry> = serde_json::from_slice(&current)
            .with_context(|| format!("upload session index {key}"))?;
        let before = entries.len();
        entries.retain(|e| !session_collectable(e.expires_at, now));
        if entries.len() == before {
            return Ok(());
        }
        let next = serde_json::to_vec(&entries)?;
        if store.swap(key, Some(&current), &next)? {
            return Ok(());
        }
    }
    bail!("{key} kept changing while expired upload sessions were removed")
}

/// Whether the package record at `key` belongs to a project marked
/// deleted. A project whose record is missing counts as live, so its
/// objects are kept.
fn in_deleted_project(
    store: &SqliteStore,
    key: &str,
    known: &mut HashMap<u64, bool>,
) -> anyhow::Result<bool> {
    let Some(project_id) = keys::parse_package(key).map(|k| k.project_id) else {
        return Ok(false);
    };
    if let Some(deleted) = known.get(&project_id) {
        return Ok(*deleted);
    }
    let deleted = match store.get(&keys::project(project_id))? {
        Some(value) => serde_json::from_slice::<Project>(&value)
            .with_context(|| format!("project record {project_id}"))?
            .is_deleted(),
        None => false,
    };
    known.insert(project_id, deleted);
    Ok(deleted)
}

/// What one package record points to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RecordReferences {
    /// The object keys of its own files, plus any other `object_key`
    /// anywhere in the record (so a newer component that keeps keys in a
    /// field this version does not know errs on the side of keeping
    /// objects).
    pub object_keys: Vec<String>,
    /// The keys of the sealed segments that hold its older files.
    pub segments: Vec<String>,
}

/// Reads a package record as the component stores it ([`Package`]).
/// Errors when the value is not one.
pub fn record_references(value: &[u8]) -> anyhow::Result<RecordReferences> {
    let json: Value = serde_json::from_slice(value).context("not JSON")?;
    let package: Package = serde_json::from_slice(value).context("not a package record")?;
    Ok(RecordReferences {
        object_keys: object_keys_anywhere(&json),
        segments: package
            .segments
            .iter()
            .map(|segment| package.segment_key(segment))
            .collect(),
    })
}

/// The object keys of a sealed segment ([`Segment`]), plus any other
/// `object_key` in it. Errors when the value is not one.
pub fn segment_object_keys(value: &[u8]) -> anyhow::Result<Vec<String>> {
    let json: Value = serde_json::from_slice(value).context("not JSON")?;
    serde_json::from_slice::<Segment>(value).context("not a segment")?;
    Ok(object_keys_anywhere(&json))
}

/// Whether an object last modified at `last_modified` (RFC 3339, as S3
/// lists it) may be deleted: strictly before `cutoff`. An absent or
/// unreadable time never is.
pub fn old_enough(last_modified: Option<&str>, cutoff: SystemTime) -> bool {
    let Some(text) = last_modified else {
        return false;
    };
    match text.trim().parse::<jiff::Timestamp>() {
        Ok(time) => SystemTime::from(time) < cutoff,
        Err(_) => false,
    }
}

/// One object of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: Option<u64>,
    pub last_modified: Option<String>,
}

/// One ListObjectsV2 page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListingPage {
    /// Only keys under [`FILES_PREFIX`] (whatever the server sent).
    pub objects: Vec<ListedObject>,
    /// The continuation token when more follow.
    pub next: Option<String>,
}

/// Parses a ListObjectsV2 answer with rusty-s3 (which URL-decodes the keys
/// it asked to be encoded), keeping only the keys under [`FILES_PREFIX`].
pub fn parse_listing(xml: &str) -> anyhow::Result<ListingPage> {
    let parsed = ListObjectsV2::parse_response(xml)
        .map_err(|e| anyhow::anyhow!("invalid ListObjectsV2 answer: {e}"))?;
    let objects = parsed
        .contents
        .into_iter()
        .filter(|c| c.key.starts_with(FILES_PREFIX))
        .map(|c| ListedObject {
            key: c.key,
            size: c.size,
            last_modified: c.last_modified,
        })
        .collect();
    Ok(ListingPage {
        objects,
        next: parsed.next_continuation_token,
    })
}

/// `1h`, `90m`, `45s`: the largest unit that divides the duration.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs > 0 && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    use genreg_layout::counter;
    use genreg_layout::records::{PackageFile, PackageStatus, SegmentRef, Visibility};

    fn file(id: u64, object_key: &str) -> PackageFile {
        PackageFile {
            id,
            file_name: format!("f{id}"),
            size: 1,
            md5: String::new(),
            sha1: String::new(),
            sha256: String::new(),
            object_key: object_key.into(),
            created_at: 0,
        }
    }

    /// A package record as the component writes it, with one file per key.
    fn package(id: u64, object_keys: &[&str]) -> Package {
        Package {
            id,
            project_id: 1,
            name: "p".into(),
            version: "1.0".into(),
            status: PackageStatus::Default,
            created_at: 0,
            updated_at: 0,
            last_downloaded_at: None,
            files: (0..)
                .zip(object_keys)
                .map(|(i, key)| file(i, key))
                .collect(),
            segments: Vec::new(),
            deleted_at: None,
            index_shard: None,
            file_ids: None,
        }
    }

    fn record(object_keys: &[&str]) -> Vec<u8> {
        serde_json::to_vec(&package(1, object_keys)).unwrap()
    }

    fn project(id: u64, deleted_at: Option<i64>) -> Vec<u8> {
        serde_json::to_vec(&Project {
            id,
            name: "t".into(),
            path: format!("t{id}"),
            namespace: "acme".into(),
            visibility: Visibility::Private,
            created_at: 0,
            deleted_at,
        })
        .unwrap()
    }

    #[test]
    fn references_follow_segments_and_skip_claims_and_deleted_projects() {
        let store = SqliteStore::open_in_memory().unwrap();
        let mut live = package(7, &["files/tail"]);
        live.segments.push(SegmentRef {
            digest: "abc".into(),
            files: 1,
            min_id: 1,
            max_id: 1,
        });
        let live_key = keys::package(1, "tool", "1.0");
        store
            .set(&live_key, &serde_json::to_vec(&live).unwrap())
            .unwrap();
        let sealed = Segment {
            files: vec![file(1, "files/sealed")],
        };
        store
            .set(
                &keys::package_segment(7, "abc"),
                &serde_json::to_vec(&sealed).unwrap(),
            )
            .unwrap();
        // Creation claims of this version and the legacy one.
        let claim = keys::creation_claim(&keys::package(1, "tool", "2.0"), 59_000_000);
        store.increment(&claim, 1).unwrap();
        store.increment("v1/pkg/1/tool/3.0#created", 1).unwrap();
        store.set(&keys::project(1), &project(1, None)).unwrap();
        // A package left behind in a deleted project references nothing.
        store
            .set(&keys::package(2, "gone", "1.0"), &record(&["files/orphan"]))
            .unwrap();
        store.set(&keys::project(2), &project(2, Some(5))).unwrap();

        let references = collect_references(&store).unwrap();
        let mut keys: Vec<&str> = references.keys.iter().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["files/sealed", "files/tail"]);
        assert_eq!(references.records, 2);
    }

    #[test]
    fn reference_pages_parse_and_bad_ones_are_errors() {
        let page = parse_references_page(
            br#"{"object_keys": ["files/a", "files/b"], "next_cursor": "1.0.3.0.0."}"#,
        )
        .unwrap();
        assert_eq!(page.object_keys, ["files/a", "files/b"]);
        assert_eq!(page.next_cursor.as_deref(), Some("1.0.3.0.0."));
        let last = parse_references_page(br#"{"object_keys": [], "next_cursor": null}"#).unwrap();
        assert_eq!(last.next_cursor, None);
        assert!(last.upload_sessions.is_empty());
        let sessions = parse_references_page(
            br#"{"object_keys": ["files/s"], "next_cursor": null, "expired_upload_sessions": 2,
                 "upload_sessions": [{"object_key": "files/s", "upload_id": "u1"}]}"#,
        )
        .unwrap();
        assert_eq!(
            sessions.upload_sessions,
            [SessionUpload {
                object_key: "files/s".into(),
                upload_id: "u1".into()
            }]
        );
        assert_eq!(sessions.expired_upload_sessions, 2);
        assert!(parse_references_page(
            br#"{"object_keys": [], "next_cursor": null, "upload_sessions": [{"object_key": 1}]}"#
        )
        .is_err());
        assert!(parse_references_page(b"<html>").is_err());
        assert!(parse_references_page(br#"{"next_cursor": null}"#).is_err());
        assert!(parse_references_page(br#"{"object_keys": [1], "next_cursor": null}"#).is_err());
        assert!(parse_references_page(br#"{"object_keys": [], "next_cursor": 5}"#).is_err());
    }

    #[test]
    fn reference_page_urls_carry_the_cursor_and_token_encoded() {
        let base = url::Url::parse("https://r.example/prefix/").unwrap();
        let page = PageRequest {
            page_size: 500,
            cursor: Some("1.0.2.0.0.ab"),
            collect_expired: false,
        };
        let url = references_page_url(&base, "glpat-a+b", &page).unwrap();
        assert_eq!(url.path(), "/prefix/api/v4/admin/referenced_objects");
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            query,
            [
                ("per_page".to_string(), "500".to_string()),
                ("cursor".to_string(), "1.0.2.0.0.ab".to_string()),
                ("private_token".to_string(), "glpat-a+b".to_string()),
            ]
        );
        let plain = url::Url::parse("http://127.0.0.1:3000").unwrap();
        let page = PageRequest {
            page_size: 0,
            cursor: None,
            collect_expired: false,
        };
        let url = references_page_url(&plain, "t", &page).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:3000/api/v4/admin/referenced_objects?per_page=1&private_token=t"
        );
        let collecting = PageRequest {
            collect_expired: true,
            ..page
        };
        let url = references_page_url(&plain, "t", &collecting).unwrap();
        assert_eq!(
            url.query(),
            Some("per_page=1&collect_expired_sessions=true&private_token=t")
        );
    }

    #[test]
    fn record_keys_come_from_files() {
        let references = record_references(&record(&["files/a", "files/b"])).unwrap();
        assert_eq!(references.object_keys, ["files/a", "files/b"]);
        assert!(references.segments.is_empty());
    }

    #[test]
    fn deleted_packages_point_to_nothing() {
        let mut deleted = package(1, &[]);
        deleted.deleted_at = Some(5);
        let references = record_references(&serde_json::to_vec(&deleted).unwrap()).unwrap();
        assert_eq!(references, RecordReferences::default());
    }

    #[test]
    fn object_keys_elsewhere_in_a_record_are_kept_too() {
        let mut value: Value = serde_json::from_slice(&record(&["files/a"])).unwrap();
        value["pending"] = serde_json::json!([{ "object_key": "files/upload" }]);
        let mut keys = record_references(value.to_string().as_bytes())
            .unwrap()
            .object_keys;
        keys.sort();
        assert_eq!(keys, ["files/a", "files/upload"]);
    }

    #[test]
    fn undecodable_records_are_errors() {
        assert!(record_references(b"not json").is_err());
        assert!(record_references(b"[]").is_err());
        assert!(record_references(br#"{"id": 1}"#).is_err());
        assert!(record_references(br#"{"files": [{"file_name": "a"}]}"#).is_err());
        assert!(record_references(br#"{"files": [{"object_key": 7}]}"#).is_err());
        let mut no_key: Value = serde_json::from_slice(&record(&["files/a"])).unwrap();
        no_key["files"][0]
            .as_object_mut()
            .unwrap()
            .remove("object_key");
        assert!(record_references(no_key.to_string().as_bytes()).is_err());
        assert!(segment_object_keys(br#"{"files": [{"object_key": "files/a"}]}"#).is_err());
    }

    const HOUR: Millis = 3_600_000;
    const DAY: Millis = 24 * HOUR;

    fn session(project_id: u64, id: &str, expires_at: Millis) -> UploadSession {
        UploadSession {
            id: id.into(),
            project_id,
            package_name: "p".into(),
            package_version: "1.0".into(),
            file_name: format!("{id}.bin"),
            status: None,
            size: 1,
            sha256: "00".repeat(32),
            part_size: 5 << 20,
            object_key: format!("files/{id}"),
            upload_id: format!("upload-{id}"),
            created_at: expires_at - DAY,
            expires_at,
            state: genreg_layout::records::SessionState::Uploading,
            hashed: None,
            file_id: None,
            digests: None,
        }
    }

    fn entry(s: &UploadSession) -> UploadSessionEntry {
        UploadSessionEntry {
            id: s.id.clone(),
            identity: s.id.clone(),
            expires_at: s.expires_at,
        }
    }

    /// Stores sessions as the registry does: records, and the project's
    /// index listing them.
    fn store_sessions(store: &SqliteStore, project_id: u64, sessions: &[&UploadSession]) {
        for s in sessions {
            store
                .set(
                    &keys::upload_session(project_id, &s.id),
                    &serde_json::to_vec(s).unwrap(),
                )
                .unwrap();
        }
        let entries: Vec<_> = sessions.iter().map(|s| entry(s)).collect();
        store
            .set(
                &keys::upload_session_index(project_id),
                &serde_json::to_vec(&entries).unwrap(),
            )
            .unwrap();
    }

    fn index_ids(store: &SqliteStore, project_id: u64) -> Vec<String> {
        let value = store
            .get(&keys::upload_session_index(project_id))
            .unwrap()
            .unwrap();
        let entries: Vec<UploadSessionEntry> = serde_json::from_slice(&value).unwrap();
        entries.into_iter().map(|e| e.id).collect()
    }

    #[test]
    fn session_indexes_are_under_their_prefix() {
        assert_eq!(
            keys::upload_session_index(42),
            format!("{SESSION_INDEX_PREFIX}42")
        );
        assert!(!keys::upload_session(4, "a").starts_with(SESSION_INDEX_PREFIX));
    }

    #[test]
    fn sessions_reference_their_upload_until_an_hour_past_expiry() {
        let store = SqliteStore::open_in_memory().unwrap();
        store.set(&keys::project(1), &project(1, None)).unwrap();
        store
            .set(&keys::package(1, "p", "1.0"), &record(&["files/a"]))
            .unwrap();
        let now = 100 * DAY;
        let live = session(1, "live", now + HOUR);
        let grace = session(1, "grace", now - HOUR / 2);
        let stale = session(1, "stale", now - 2 * HOUR);
        store_sessions(&store, 1, &[&live, &grace, &stale]);
        // An entry whose record a crash already removed.
        let gone = session(2, "gone", now - 3 * HOUR);
        store_sessions(&store, 2, &[&gone]);
        store.delete(&keys::upload_session(2, "gone")).unwrap();
        // Creation claims beside the records and indexes are no sessions.
        for key in [keys::upload_session(1, "x"), keys::upload_session_index(1)] {
            store.increment(&keys::creation_claim(&key, 7), 1).unwrap();
        }

        let references = collect_references_at(&store, now).unwrap();
        let mut kept: Vec<_> = references.keys.iter().cloned().collect();
        kept.sort();
        assert_eq!(kept, ["files/a", "files/grace", "files/live"]);
        let mut uploads: Vec<_> = references
            .session_uploads
            .iter()
            .map(|u| u.upload_id.as_str())
            .collect();
        uploads.sort();
        assert_eq!(uploads, ["upload-grace", "upload-live"]);
        assert_eq!(
            references.expired,
            ExpiredSessions {
                sessions: 2,
                records: vec![keys::upload_session(1, "stale")],
                indexes: vec![keys::upload_session_index(1), keys::upload_session_index(2)],
            }
        );

        remove_expired_sessions(&store, &references.expired, now).unwrap();
        assert_eq!(store.get(&keys::upload_session(1, "stale")).unwrap(), None);
        assert_eq!(index_ids(&store, 1), ["live", "grace"]);
        assert!(index_ids(&store, 2).is_empty());
        let again = collect_references_at(&store, now).unwrap();
        assert!(again.expired.is_empty(), "{:?}", again.expired);
        assert_eq!(again.session_uploads.len(), 2);
    }

    #[test]
    fn a_bad_session_record_stops_the_scan() {
        let store = SqliteStore::open_in_memory().unwrap();
        store.set(&keys::project(1), &project(1, None)).unwrap();
        store
            .set(&keys::upload_session(1, "abc"), b"{\"id\": 1}")
            .unwrap();
        let error = collect_references(&store).unwrap_err();
        assert!(
            format!("{error:#}").contains("v1/upload-session/1/abc"),
            "{error:#}"
        );
    }

    #[test]
    fn references_come_from_package_keys_only() {
        let store = SqliteStore::open_in_memory().unwrap();
        store.set(&keys::project(1), &project(1, None)).unwrap();
        store
            .set(
                &keys::package(1, "p", "1.0"),
                &record(&["files/a", "files/b"]),
            )
            .unwrap();
        store
            .set(&keys::package(1, "p", "2.0"), &record(&["files/c"]))
            .unwrap();
        store
            .set(&keys::package(2, "q", "1.0"), &record(&[]))
            .unwrap();
        store
            .set("v1/pkg/2/q/1.0#created", &counter::encode(1))
            .unwrap();
        // Neighbours of the prefix, which are not package records.
        store
            .set(&keys::package_by_id(1), br#"{"object_key": "files/x"}"#)
            .unwrap();
        store.set(&keys::package_index(1, 0), b"[]").unwrap();
        store.set("v1/pkg0", b"junk").unwrap();
        store.set("v1/pkh/1", b"junk").unwrap();
        let references = collect_references(&store).unwrap();
        assert_eq!(references.records, 3);
        let mut keys: Vec<_> = references.keys.into_iter().collect();
        keys.sort();
        assert_eq!(keys, ["files/a", "files/b", "files/c"]);
    }

    #[test]
    fn references_span_pages() {
        let store = SqliteStore::open_in_memory().unwrap();
        let count = LIST_PAGE_SIZE * 2 + 5;
        for i in 0..count {
            let key = format!("files/{i}");
            store
                .set(&keys::package(1, "p", &format!("{i:05}")), &record(&[&key]))
                .unwrap();
        }
        store.set(&keys::sequence("package"), b"1").unwrap();
        let references = collect_references(&store).unwrap();
        assert_eq!(references.records, count);
        assert_eq!(references.keys.len(), count);
    }

    #[test]
    fn a_bad_record_stops_the_scan() {
        let store = SqliteStore::open_in_memory().unwrap();
        store
            .set(&keys::package(1, "p", "1.0"), &record(&["files/a"]))
            .unwrap();
        store.set(&keys::package(1, "p", "2.0"), b"{oops").unwrap();
        let error = collect_references(&store).unwrap_err();
        assert!(format!("{error:#}").contains("v1/pkg/1/p/2.0"), "{error:#}");
    }

    #[test]
    fn a_bad_segment_or_project_stops_the_scan() {
        let store = SqliteStore::open_in_memory().unwrap();
        let mut sealed = package(7, &[]);
        sealed.segments.push(SegmentRef {
            digest: "abc".into(),
            files: 1,
            min_id: 1,
            max_id: 1,
        });
        store
            .set(
                &keys::package(1, "p", "1.0"),
                &serde_json::to_vec(&sealed).unwrap(),
            )
            .unwrap();
        let error = collect_references(&store).unwrap_err();
        assert!(
            format!("{error:#}").contains("missing v1/pkg-files/7/abc"),
            "{error:#}"
        );
        store.set(&keys::package_segment(7, "abc"), b"[]").unwrap();
        assert!(collect_references(&store).is_err());
        store
            .set(&keys::package_segment(7, "abc"), br#"{"files":[]}"#)
            .unwrap();
        assert!(collect_references(&store).is_ok());
        store.set(&keys::project(1), b"{}").unwrap();
        let error = collect_references(&store).unwrap_err();
        assert!(
            format!("{error:#}").contains("project record 1"),
            "{error:#}"
        );
    }

    #[test]
    fn a_store_without_registry_data_is_refused() {
        let store = SqliteStore::open_in_memory().unwrap();
        assert!(collect_references(&store).is_err());
        store.set("other", b"x").unwrap();
        assert!(collect_references(&store).is_err());
        store.set(&keys::project(1), &project(1, None)).unwrap();
        let references = collect_references(&store).unwrap();
        assert_eq!((references.records, references.keys.len()), (0, 0));
    }

    #[test]
    fn the_store_keeps_counters_as_the_layout_encodes_them() {
        let store = SqliteStore::open_in_memory().unwrap();
        let claim = keys::creation_claim(&keys::package(1, "p", "1.0"), 1);
        store.increment(&claim, 1).unwrap();
        assert_eq!(store.increment(&claim, 2).unwrap(), 3);
        let stored = store.get(&claim).unwrap().unwrap();
        assert_eq!(stored, counter::encode(3));
        assert_eq!(counter::decode(&stored), Some(3));
        // A counter written as the layout encodes it counts on.
        store.set("v1/seq/file", &counter::encode(41)).unwrap();
        assert_eq!(store.increment("v1/seq/file", 1).unwrap(), 42);
    }

    #[test]
    fn only_objects_older_than_the_cutoff_are_old_enough() {
        let cutoff = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        // 2023-11-14T22:13:20Z is the cutoff itself.
        assert!(old_enough(Some("2023-11-14T22:13:19.999Z"), cutoff));
        assert!(old_enough(Some("2020-01-01T00:00:00Z"), cutoff));
        assert!(!old_enough(Some("2023-11-14T22:13:20.000Z"), cutoff));
        assert!(!old_enough(Some("2023-11-14T22:13:21Z"), cutoff));
        assert!(old_enough(Some("2023-11-14T23:13:19+01:00"), cutoff));
        assert!(!old_enough(None, cutoff));
        assert!(!old_enough(Some("yesterday"), cutoff));
        assert!(!old_enough(Some(""), cutoff));
    }

    #[test]
    fn listings_parse_with_tokens_and_keep_only_files() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>genreg</Name>
  <Prefix>files%2F</Prefix>
  <KeyCount>3</KeyCount>
  <MaxKeys>3</MaxKeys>
  <EncodingType>url</EncodingType>
  <IsTruncated>true</IsTruncated>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <Contents>
    <Key>files%2F00ff</Key>
    <LastModified>2024-05-01T10:00:00.000Z</LastModified>
    <ETag>&quot;abc&quot;</ETag>
    <Size>12</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>files%2Fwith+space</Key>
    <LastModified>2024-05-01T11:00:00.000Z</LastModified>
    <Size>0</Size>
  </Contents>
  <Contents>
    <Key>other%2Fthing</Key>
    <LastModified>2024-05-01T11:00:00.000Z</LastModified>
    <Size>3</Size>
  </Contents>
</ListBucketResult>"#;
        let page = parse_listing(xml).unwrap();
        assert_eq!(
            page.objects,
            [
                ListedObject {
                    key: "files/00ff".into(),
                    size: Some(12),
                    last_modified: Some("2024-05-01T10:00:00.000Z".into()),
                },
                ListedObject {
                    key: "files/with space".into(),
                    size: Some(0),
                    last_modified: Some("2024-05-01T11:00:00.000Z".into()),
                },
            ]
        );
        assert_eq!(
            page.next.as_deref(),
            Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        );
    }

    #[test]
    fn the_last_listing_page_has_no_token() {
        let xml = r#"<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>genreg</Name><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>
  <IsTruncated>false</IsTruncated>
</ListBucketResult>"#;
        let page = parse_listing(xml).unwrap();
        assert!(page.objects.is_empty());
        assert_eq!(page.next, None);
        assert!(parse_listing("<Error><Code>AccessDenied</Code></Error>").is_err());
    }

    #[test]
    fn upload_listings_parse_with_markers_and_keep_only_files() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>genreg</Bucket><Prefix>files/</Prefix>
  <NextKeyMarker>files/b&amp;c</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>
  <MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>files/a</Key><UploadId>u1</UploadId><Initiated>2024-05-01T10:00:00.000Z</Initiated></Upload>
  <Upload><Key>files/b&amp;c</Key><UploadId>u2</UploadId></Upload>
  <Upload><Key>other/x</Key><UploadId>u3</UploadId></Upload>
</ListMultipartUploadsResult>"#;
        let page = parse_uploads_listing(xml).unwrap();
        assert_eq!(
            page.uploads,
            [
                ListedUpload {
                    key: "files/a".into(),
                    upload_id: "u1".into(),
                    initiated: Some("2024-05-01T10:00:00.000Z".into()),
                },
                ListedUpload {
                    key: "files/b&c".into(),
                    upload_id: "u2".into(),
                    initiated: None,
                },
            ]
        );
        assert_eq!(page.next, Some(("files/b&c".into(), "u2".into())));
        let last = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>";
        assert_eq!(parse_uploads_listing(last).unwrap().next, None);
        assert!(parse_uploads_listing("<Error><Code>NotImplemented</Code></Error>").is_err());
    }

    #[test]
    fn list_upload_urls_are_presigned_for_the_files_prefix() {
        let bucket = Bucket::new(
            "http://127.0.0.1:9000".parse().unwrap(),
            UrlStyle::Path,
            "genreg".to_string(),
            "us-east-1".to_string(),
        )
        .unwrap();
        let credentials = Credentials::new("AKID", "secret");
        let marker = ("files/a".to_string(), "u1".to_string());
        let url = list_uploads_url(&bucket, &credentials, 2, Some(&marker));
        assert_eq!(url.path(), "/genreg/");
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("uploads"), Some(""));
        assert_eq!(get("prefix"), Some("files/"));
        assert_eq!(get("max-uploads"), Some("2"));
        assert_eq!(get("key-marker"), Some("files/a"));
        assert_eq!(get("upload-id-marker"), Some("u1"));
        assert!(get("X-Amz-Signature").is_some());
    }

    #[test]
    fn summaries_and_lines() {
        let orphan = |key: &str, outcome| Orphan {
            key: key.into(),
            size: Some(3),
            last_modified: Some("2024-05-01T10:00:00Z".into()),
            outcome,
        };
        let report = Report {
            records: 2,
            referenced: 2,
            objects: 5,
            missing: vec![],
            unreferenced: vec![
                orphan("files/a", Outcome::Deleted),
                orphan("files/b", Outcome::Skipped),
                orphan("files/c", Outcome::Failed("boom".into())),
            ],
            open_uploads: vec![],
            upload_sessions: 0,
            expired_sessions: 0,
            dry_run: false,
            min_age: DEFAULT_MIN_AGE,
            scan_started: SystemTime::now(),
        };
        assert_eq!(
            report.summary(),
            "5 objects, 3 unreferenced, 1 deleted (1 younger than 1h skipped, 1 failed)"
        );
        assert_eq!(
            report.unreferenced[0].to_string(),
            "deleted files/a (3 bytes, modified 2024-05-01T10:00:00Z)"
        );
        assert_eq!(
            report.unreferenced[2].to_string(),
            "failed files/c (3 bytes, modified 2024-05-01T10:00:00Z): boom"
        );
        let with_sessions = Report {
            unreferenced: vec![],
            upload_sessions: 2,
            expired_sessions: 1,
            ..report
        };
        assert_eq!(
            with_sessions.summary(),
            "5 objects, 0 unreferenced, 0 deleted; 2 upload sessions kept, 1 expired removed"
        );
        let dry = Report {
            dry_run: true,
            ..with_sessions
        };
        assert!(
            dry.summary()
                .contains("2 upload sessions kept, 1 expired to remove"),
            "{}",
            dry.summary()
        );
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(5400)), "90m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_secs(2 * 86_400)), "2d");
    }
}
