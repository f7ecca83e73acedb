//! The invariants every scenario ends with, checked from the outside:
//!
//! 1. [`check_registry`]: every package of the projects is listed by `GET
//!    /projects/:id/packages` (all pages, default and hidden) once per name
//!    and version, answers `GET /projects/:id/packages/:package_id`, and
//!    every file its `package_files` lists downloads with the recorded size
//!    and sha256; every publish that answered 201 is among the listed files
//!    (and, when nothing could have been recorded without a 201, nothing
//!    else is).
//! 2. [`check_bucket`], after `genreg gc --min-age 0s`: the bucket holds
//!    exactly one object per listed file under `files/` (compared by size
//!    and sha256, so it does not depend on how records name objects) and no
//!    open multipart upload.
//!
//! A 503 (a key being created by a request that died) is retried, a bounded
//! number of times, as clients are told to.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Attempts of a request answered 503 (the longest wait a claim left by a
/// dead request imposes is 35 s; each attempt waits `Retry-After`).
const UNAVAILABLE_ATTEMPTS: u32 = 90;
/// Pages of one listing read at most.
const MAX_PAGES: u32 = 10_000;
const PER_PAGE: u32 = 100;
const SIGNED_FOR: Duration = Duration::from_secs(600);

/// How a registry is reached: base URL and an administrator token.
#[derive(Clone)]
pub struct RegistryAccess {
    pub url: String,
    pub token: String,
    pub client: reqwest::Client,
}

/// A publish that answered 201.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acknowledged {
    pub project: u64,
    pub package: String,
    pub version: String,
    pub file_name: String,
    pub sha256: String,
    pub size: u64,
}

/// Whether files may be listed that no 201 acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unacknowledged {
    /// No: every failed publish must have recorded nothing (no crash: a
    /// record is committed only right before its 201).
    Forbidden,
    /// Yes: a crash between the commit and the answer loses the 201.
    Allowed,
}

/// A file as the Packages API lists it.
#[derive(Clone, Debug)]
pub struct ListedFile {
    pub project: u64,
    pub package: String,
    pub version: String,
    pub file_id: u64,
    pub file_name: String,
    pub size: u64,
    pub sha256: String,
}

impl ListedFile {
    fn identity(&self) -> Acknowledged {
        Acknowledged {
            project: self.project,
            package: self.package.clone(),
            version: self.version.clone(),
            file_name: self.file_name.clone(),
            sha256: self.sha256.clone(),
            size: self.size,
        }
    }
}

/// Everything the registry lists.
#[derive(Debug, Default)]
pub struct Catalog {
    pub packages: usize,
    pub files: Vec<ListedFile>,
}

/// What broke, all of it.
#[derive(Debug, Default)]
pub struct Violations(pub Vec<String>);

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} invariant violation(s):", self.0.len())?;
        for v in self.0.iter().take(50) {
            writeln!(f, "- {v}")?;
        }
        Ok(())
    }
}

impl Violations {
    fn push(&mut self, what: String) {
        self.0.push(what);
    }

    fn into_result<T>(self, value: T) -> Result<T, Violations> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

/// Invariant 1 (see the module documentation).
pub async fn check_registry(
    registry: &RegistryAccess,
    projects: &[u64],
    acknowledged: &[Acknowledged],
    unacknowledged: Unacknowledged,
) -> Result<Catalog, Violations> {
    let mut violations = Violations::default();
    let mut catalog = Catalog::default();
    for &project in projects {
        let packages = list_packages(registry, project, &mut violations).await;
        catalog.packages += packages.len();
        for package in packages {
            check_package(registry, project, &package, &mut catalog, &mut violations).await;
        }
    }
    check_acknowledged(&catalog, acknowledged, unacknowledged, &mut violations);
    violations.into_result(catalog)
}

/// Every package of `project`, default and hidden; also flags a name and
/// version listed twice.
async fn list_packages(
    registry: &RegistryAccess,
    project: u64,
    violations: &mut Violations,
) -> Vec<Value> {
    let mut packages = Vec::new();
    for status in [None, Some("hidden")] {
        let mut path = format!("/api/v4/projects/{project}/packages?order_by=created_at");
        if let Some(status) = status {
            path.push_str(&format!("&status={status}"));
        }
        match all_pages(registry, &path).await {
            Ok(listed) => packages.extend(listed),
            Err(e) => violations.push(format!("listing {path}: {e}")),
        }
    }
    let mut seen = BTreeMap::new();
    for package in &packages {
        let key = (package["name"].to_string(), package["version"].to_string());
        if let Some(first) = seen.insert(key.clone(), package["id"].clone()) {
            violations.push(format!(
                "project {project}: package {}/{} listed twice (ids {first} and {})",
                key.0, key.1, package["id"]
            ));
        }
    }
    packages
}

/// The package answers, and each of its files downloads as recorded.
async fn check_package(
    registry: &RegistryAccess,
    project: u64,
    package: &Value,
    catalog: &mut Catalog,
    violations: &mut Violations,
) {
    let (Some(id), Some(name), Some(version)) = (
        package["id"].as_u64(),
        package["name"].as_str(),
        package["version"].as_str(),
    ) else {
        violations.push(format!("project {project}: malformed package {package}"));
        return;
    };
    let base = format!("/api/v4/projects/{project}/packages/{id}");
    match get(registry, &base).await {
        Ok(response) if response.status() == StatusCode::OK => {}
        Ok(response) => violations.push(format!(
            "listed package {name}/{version} (id {id}) answers {} on GET {base}",
            response.status()
        )),
        Err(e) => violations.push(format!("GET {base}: {e}")),
    }
    let files = match all_pages(registry, &format!("{base}/package_files?order_by=id")).await {
        Ok(files) => files,
        Err(e) => {
            violations.push(format!("package {name}/{version} files: {e}"));
            return;
        }
    };
    if files.is_empty() {
        violations.push(format!("listed package {name}/{version} has no files"));
    }
    let mut ids = std::collections::BTreeSet::new();
    for file in &files {
        if !ids.insert(file["id"].as_u64()) {
            violations.push(format!(
                "package {name}/{version}: file {} listed twice",
                file["id"]
            ));
        }
    }
    for file in files {
        let listed = ListedFile {
            project,
            package: name.to_string(),
            version: version.to_string(),
            file_id: file["id"].as_u64().unwrap_or(0),
            file_name: file["file_name"].as_str().unwrap_or_default().to_string(),
            size: file["size"].as_u64().unwrap_or(u64::MAX),
            sha256: file["file_sha256"].as_str().unwrap_or_default().to_string(),
        };
        if let Err(problem) = check_download(registry, &base, &listed).await {
            violations.push(format!(
                "{name}/{version}/{} (file {}): {problem}",
                listed.file_name, listed.file_id
            ));
        }
        catalog.files.push(listed);
    }
}

async fn check_download(
    registry: &RegistryAccess,
    package_path: &str,
    file: &ListedFile,
) -> Result<(), String> {
    let path = format!("{package_path}/package_files/{}/download", file.file_id);
    let response = get(registry, &path).await?;
    if response.status() != StatusCode::OK {
        return Err(format!("download answers {}", response.status()));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("download cut: {e}"))?;
    let sha256 = sha256_hex(&body);
    if body.len() as u64 != file.size || sha256 != file.sha256 {
        return Err(format!(
            "downloads {} bytes with sha256 {sha256}, recorded {} bytes with {}",
            body.len(),
            file.size,
            file.sha256
        ));
    }
    Ok(())
}

/// Every 201 is listed (as many times as it was answered); with
/// [`Unacknowledged::Forbidden`], nothing else is.
fn check_acknowledged(
    catalog: &Catalog,
    acknowledged: &[Acknowledged],
    unacknowledged: Unacknowledged,
    violations: &mut Violations,
) {
    let mut listed: BTreeMap<Acknowledged, usize> = BTreeMap::new();
    for file in &catalog.files {
        *listed.entry(file.identity()).or_default() += 1;
    }
    let mut answered: BTreeMap<&Acknowledged, usize> = BTreeMap::new();
    for ack in acknowledged {
        *answered.entry(ack).or_default() += 1;
    }
    for (ack, count) in &answered {
        let found = listed.get(*ack).copied().unwrap_or(0);
        if found < *count {
            violations.push(format!(
                "answered 201 {count} time(s) but listed {found}: {ack:?}"
            ));
        }
    }
    if unacknowledged == Unacknowledged::Forbidden {
        for (file, count) in &listed {
            let answered = answered.get(file).copied().unwrap_or(0);
            if *count > answered {
                violations.push(format!(
                    "listed {count} time(s) but answered 201 {answered}: {file:?}"
                ));
            }
        }
    }
}

/// GET with `PRIVATE-TOKEN`, retrying 503s.
async fn get(registry: &RegistryAccess, path: &str) -> Result<reqwest::Response, String> {
    for _ in 0..UNAVAILABLE_ATTEMPTS {
        let response = registry
            .client
            .get(format!("{}{path}", registry.url))
            .header("PRIVATE-TOKEN", &registry.token)
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        if response.status() != StatusCode::SERVICE_UNAVAILABLE {
            return Ok(response);
        }
        tokio::time::sleep(retry_after(&response)).await;
    }
    Err(format!("GET {path} still answers 503"))
}

/// The `Retry-After` of a 503 (seconds), 1 s when absent.
pub fn retry_after(response: &reqwest::Response) -> Duration {
    let seconds = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1u64);
    Duration::from_secs(seconds.clamp(1, 5))
}

/// Every entry of a paginated listing.
async fn all_pages(registry: &RegistryAccess, path: &str) -> Result<Vec<Value>, String> {
    let mut entries = Vec::new();
    let mut page = 1;
    while page <= MAX_PAGES {
        let paged = format!("{path}&per_page={PER_PAGE}&page={page}");
        let response = get(registry, &paged).await?;
        if response.status() != StatusCode::OK {
            return Err(format!("GET {paged} answers {}", response.status()));
        }
        let next = response
            .headers()
            .get("x-next-page")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok());
        let body: Value = response.json().await.map_err(|e| format!("{paged}: {e}"))?;
        let items = body
            .as_array()
            .ok_or_else(|| format!("{paged}: not a list: {body}"))?;
        entries.extend(items.iter().cloned());
        match next {
            Some(next) if next > page => page = next,
            _ => return Ok(entries),
        }
    }
    Err(format!("{path}: more than {MAX_PAGES} pages"))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Invariant 2 (see the module documentation): run it after `genreg gc
/// --min-age 0s`, with nothing in flight.
pub async fn check_bucket(s3: &genreg::S3Access, catalog: &Catalog) -> Result<(), Violations> {
    let mut violations = Violations::default();
    let bucket = BucketView::new(s3);
    match bucket.open_uploads().await {
        Ok(uploads) => {
            for upload in uploads {
                violations.push(format!(
                    "open multipart upload {} of {} left after gc",
                    upload.upload_id, upload.key
                ));
            }
        }
        Err(e) => violations.push(format!("listing multipart uploads: {e}")),
    }

    let mut expected: BTreeMap<(u64, String), usize> = BTreeMap::new();
    for file in &catalog.files {
        *expected
            .entry((file.size, file.sha256.clone()))
            .or_default() += 1;
    }
    match bucket.objects().await {
        Ok(objects) => {
            for (key, content) in objects {
                match expected.get_mut(&content) {
                    Some(count) if *count > 0 => *count -= 1,
                    _ => violations.push(format!(
                        "object {key} ({} bytes, sha256 {}) is no listed file's",
                        content.0, content.1
                    )),
                }
            }
        }
        Err(e) => violations.push(format!("listing objects: {e}")),
    }
    for ((size, sha256), missing) in expected {
        if missing > 0 {
            violations.push(format!(
                "{missing} listed file(s) of {size} bytes, sha256 {sha256}, have no object"
            ));
        }
    }
    violations.into_result(())
}

/// The open multipart uploads under `files/` of the bucket.
pub async fn open_uploads(s3: &genreg::S3Access) -> Result<Vec<genreg::gc::ListedUpload>, String> {
    BucketView::new(s3).open_uploads().await
}

/// The bucket, read directly (not through the registry).
struct BucketView {
    client: reqwest::Client,
    bucket: Bucket,
    credentials: Credentials,
}

impl BucketView {
    fn new(s3: &genreg::S3Access) -> Self {
        let bucket = Bucket::new(
            s3.endpoint.parse().expect("an S3 endpoint URL"),
            UrlStyle::Path,
            s3.bucket.clone(),
            s3.region.clone(),
        )
        .expect("a valid bucket");
        BucketView {
            client: reqwest::Client::new(),
            bucket,
            credentials: Credentials::new(&s3.access_key_id, &s3.secret_access_key),
        }
    }

    /// Every object under `files/` with its size and sha256 (read whole).
    async fn objects(&self) -> Result<Vec<(String, (u64, String))>, String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            action.with_prefix(genreg::gc::FILES_PREFIX);
            if let Some(token) = &token {
                action.with_continuation_token(token.clone());
            }
            let text = self.fetch_text(action.sign(SIGNED_FOR)).await?;
            let page = genreg::gc::parse_listing(&text).map_err(|e| e.to_string())?;
            keys.extend(page.objects.into_iter().map(|o| o.key));
            token = page.next;
            if token.is_none() {
                break;
            }
        }
        let mut contents = Vec::new();
        for key in keys {
            let url = self
                .bucket
                .get_object(Some(&self.credentials), &key)
                .sign(SIGNED_FOR);
            let response = self
                .client
                .get(url)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("GET {key} answered {}", response.status()));
            }
            let body = response.bytes().await.map_err(|e| e.to_string())?;
            contents.push((key, (body.len() as u64, sha256_hex(&body))));
        }
        Ok(contents)
    }

    /// ListMultipartUploads under `files/` (the suite never has more than
    /// one page of them).
    async fn open_uploads(&self) -> Result<Vec<genreg::gc::ListedUpload>, String> {
        let query = [
            ("max-uploads", "1000"),
            ("prefix", genreg::gc::FILES_PREFIX),
            ("uploads", ""),
        ];
        let url = rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            rusty_s3::Method::Get,
            self.bucket.base_url().clone(),
            self.credentials.key(),
            self.credentials.secret(),
            self.credentials.token(),
            self.bucket.region(),
            SIGNED_FOR.as_secs(),
            query.into_iter(),
            std::iter::empty(),
        );
        let text = self.fetch_text(url).await?;
        let page = genreg::gc::parse_uploads_listing(&text).map_err(|e| e.to_string())?;
        if page.next.is_some() {
            return Err("more than 1000 open uploads".into());
        }
        Ok(page.uploads)
    }

    async fn fetch_text(&self, url: url::Url) -> Result<String, String> {
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(format!("answered {status}: {text}"))
        }
    }
}
