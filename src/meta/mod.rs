//! Package metadata: projects, packages and their files, kept in a key-value
//! store. Every request touches a handful of keys, whatever the size of the
//! store; every shared value is changed with compare-and-swap.

pub mod cleanup;
pub mod directory;
pub mod keys;
pub mod kv;
pub mod model;
pub mod protection;
pub mod tokens;
pub mod users;

use kv::{update, KeyValue, KvError, Step};
use model::*;

/// Values are kept under this size: hosted key-value stores cap values at
/// 400 KB to 1 MB, and a package record holds all its file records.
pub const MAX_VALUE_BYTES: usize = 256 * 1024;

/// Packages per shard of a project's package index. With names and versions
/// of at most 255 bytes a full shard stays far below [`MAX_VALUE_BYTES`].
pub const INDEX_SHARD_SIZE: u64 = 200;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error(transparent)]
    Store(#[from] KvError),
    #[error("stored record {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("has already been taken")]
    PathTaken,
    #[error("Duplicate package is not allowed")]
    Duplicate,
    #[error("Package has too many files")]
    PackageFull,
}

/// A project named by id or by full path, as `:id` in the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectRef {
    Id(u64),
    Path(String),
}

impl ProjectRef {
    /// Parses an already URL-decoded `:id`.
    pub fn parse(decoded: &str) -> ProjectRef {
        match decoded.parse::<u64>() {
            Ok(id) => ProjectRef::Id(id),
            Err(_) => ProjectRef::Path(decoded.to_string()),
        }
    }
}

fn read<K: KeyValue, T: serde::de::DeserializeOwned>(
    kv: &K,
    key: &str,
) -> Result<Option<T>, MetaError> {
    match kv.get(key)? {
        None => Ok(None),
        Some(bytes) => decode(key, &bytes).map(Some),
    }
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, MetaError> {
    serde_json::from_slice(bytes).map_err(|e| MetaError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records always serialize")
}

/// A fresh numeric id of the given kind (`project`, `package`, `file`).
pub fn next_id<K: KeyValue>(kv: &K, kind: &str) -> Result<u64, MetaError> {
    let id = kv.increment(&keys::sequence(kind), 1)?;
    u64::try_from(id).map_err(|_| MetaError::Corrupt {
        key: keys::sequence(kind),
        reason: format!("counter is {id}"),
    })
}

pub fn project<K: KeyValue>(kv: &K, reference: &ProjectRef) -> Result<Option<Project>, MetaError> {
    let id = match reference {
        ProjectRef::Id(id) => *id,
        ProjectRef::Path(path) => match kv.get(&keys::project_path(path))? {
            None => return Ok(None),
            Some(bytes) => decode(&keys::project_path(path), &bytes)?,
        },
    };
    let project: Option<Project> = read(kv, &keys::project(id))?;
    Ok(project.filter(|p| !p.is_deleted()))
}

/// What creating a project needs; the id and time are filled in here.
pub struct NewProject {
    pub name: String,
    pub path: String,
    pub namespace: String,
    pub visibility: Visibility,
}

/// Creates a project and claims its full path. The record is written before
/// the path is claimed, so a path never points at a missing project; a
/// record whose claim lost is deleted again.
///
/// The claim of a deleted project's path is free: it is taken over by
/// compare-and-swap from the old id to the new one. Ids never repeat, so a
/// claim cannot change and come back to the value read (a true swap on every
/// store, since the key exists); of several creators racing for a freed
/// path, one swaps and the others read the new, live claim.
pub fn create_project<K: KeyValue>(
    kv: &K,
    new: NewProject,
    now: Millis,
) -> Result<Project, MetaError> {
    let project = Project {
        id: next_id(kv, "project")?,
        name: new.name,
        path: new.path,
        namespace: new.namespace,
        visibility: new.visibility,
        created_at: now,
        deleted_at: None,
    };
    let path_key = keys::project_path(&project.full_path());
    if let Some(claim) = kv.get(&path_key)? {
        if !path_claim_is_free(kv, &path_key, &claim)? {
            return Err(MetaError::PathTaken);
        }
    }
    kv.set(&keys::project(project.id), &encode(&project))?;
    let claimed = update(kv, &path_key, |current| match current {
        None => Step::<_, MetaError>::Write(encode(&project.id), true),
        Some(claim) => match path_claim_is_free(kv, &path_key, &claim) {
            Ok(true) => Step::Write(encode(&project.id), true),
            Ok(false) => Step::Keep(false),
            Err(e) => Step::Fail(e),
        },
    });
    match claimed {
        Ok(true) => {
            directory::record_new_project(kv, &project, now)?;
            Ok(project)
        }
        Ok(false) => {
            kv.delete(&keys::project(project.id))?;
            Err(MetaError::PathTaken)
        }
        Err(e) => {
            let _ = kv.delete(&keys::project(project.id));
            Err(e)
        }
    }
}

/// Whether a path claim (`project-path/<path>` → id) may be taken: the
/// project it names was deleted (or its record is gone, which a lookup by
/// path also takes for no project).
fn path_claim_is_free<K: KeyValue>(kv: &K, key: &str, claim: &[u8]) -> Result<bool, MetaError> {
    let id: u64 = decode(key, claim)?;
    let holder: Option<Project> = read(kv, &keys::project(id))?;
    Ok(holder.is_none_or(|p| p.is_deleted()))
}

/// The live package with this name and version, if any.
pub fn package<K: KeyValue>(
    kv: &K,
    project_id: u64,
    name: &str,
    version: &str,
) -> Result<Option<Package>, MetaError> {
    let package: Option<Package> = read(kv, &keys::package(project_id, name, version))?;
    Ok(package.filter(|p| !p.is_deleted()))
}

/// The live package with this id in this project, if any.
pub fn package_by_id<K: KeyValue>(
    kv: &K,
    project_id: u64,
    package_id: u64,
) -> Result<Option<Package>, MetaError> {
    let Some(location) = location_in(kv, project_id, package_id)? else {
        return Ok(None);
    };
    let package = package(kv, project_id, &location.name, &location.version)?;
    // The same name and version may have been deleted and published again.
    Ok(package.filter(|p| p.id == package_id))
}

/// Every live package of a project, as its index lists them, oldest first.
/// Reads one key per [`INDEX_SHARD_SIZE`] packages ever created.
pub fn package_summaries<K: KeyValue>(
    kv: &K,
    project_id: u64,
) -> Result<Vec<PackageSummary>, MetaError> {
    let created = kv.increment(&keys::package_ordinal(project_id), 0)?.max(0) as u64;
    let mut all = Vec::new();
    for shard in 0..created.div_ceil(INDEX_SHARD_SIZE) {
        let entries: Option<Vec<PackageSummary>> =
            read(kv, &keys::package_index(project_id, shard))?;
        all.extend(entries.unwrap_or_default());
    }
    Ok(all)
}

/// Marks a package deleted and takes it out of its project's index. Returns
/// its files, whose objects the caller deletes.
pub fn delete_package<K: KeyValue>(
    kv: &K,
    project_id: u64,
    package_id: u64,
    now: Millis,
) -> Result<Option<Vec<PackageFile>>, MetaError> {
    let Some(location) = location_in(kv, project_id, package_id)? else {
        return Ok(None);
    };
    let key = keys::package(project_id, &location.name, &location.version);
    let removed = update(kv, &key, |current| {
        let Some(bytes) = current else {
            return Step::Keep(None);
        };
        let mut package: Package = match decode(&key, &bytes) {
            Ok(package) => package,
            Err(e) => return Step::Fail(e),
        };
        if package.id != package_id || package.is_deleted() {
            return Step::Keep(None);
        }
        let files = std::mem::take(&mut package.files);
        package.deleted_at = Some(now);
        package.updated_at = now;
        Step::Write(encode(&package), Some(files))
    })?;
    if removed.is_some() {
        change_index(kv, &location, |entries| {
            entries.retain(|e| e.id != package_id)
        })?;
    }
    Ok(removed)
}

/// Removes one file record from a package. Returns it, so the caller can
/// delete its object.
pub fn delete_file<K: KeyValue>(
    kv: &K,
    project_id: u64,
    package_id: u64,
    file_id: u64,
    now: Millis,
) -> Result<Option<PackageFile>, MetaError> {
    let Some(location) = location_in(kv, project_id, package_id)? else {
        return Ok(None);
    };
    let key = keys::package(project_id, &location.name, &location.version);
    update(kv, &key, |current| {
        let Some(bytes) = current else {
            return Step::Keep(None);
        };
        let mut package: Package = match decode(&key, &bytes) {
            Ok(package) => package,
            Err(e) => return Step::Fail(e),
        };
        if package.id != package_id || package.is_deleted() {
            return Step::Keep(None);
        }
        let Some(position) = package.files.iter().position(|f| f.id == file_id) else {
            return Step::Keep(None);
        };
        let file = package.files.remove(position);
        package.updated_at = now;
        Step::Write(encode(&package), Some(file))
    })
}

pub fn namespace_settings<K: KeyValue>(
    kv: &K,
    namespace: &str,
) -> Result<NamespaceSettings, MetaError> {
    Ok(read(kv, &keys::namespace_settings(namespace))?.unwrap_or_default())
}

/// Changes a namespace's package settings and returns the result.
pub fn change_namespace_settings<K: KeyValue>(
    kv: &K,
    namespace: &str,
    change: impl Fn(&mut NamespaceSettings),
) -> Result<NamespaceSettings, MetaError> {
    let key = keys::namespace_settings(namespace);
    update(kv, &key, |current| {
        let mut settings: NamespaceSettings = match current.map(|b| decode(&key, &b)) {
            Some(Ok(settings)) => settings,
            Some(Err(e)) => return Step::Fail(e),
            None => NamespaceSettings::default(),
        };
        change(&mut settings);
        Step::Write(encode(&settings), settings)
    })
}

pub fn is_token_revoked<K: KeyValue>(kv: &K, token_id: &str) -> Result<bool, MetaError> {
    Ok(kv.get(&keys::revoked_token(token_id))?.is_some())
}

/// A file whose bytes are safely in object storage, ready to be recorded.
pub struct NewFile {
    pub file_name: String,
    pub size: u64,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
    pub object_key: String,
}

/// Where a file should go and under which rules.
pub struct Commit<'a> {
    pub project: &'a Project,
    pub name: &'a str,
    pub version: &'a str,
    pub status: Option<PackageStatus>,
    pub settings: &'a NamespaceSettings,
    pub now: Millis,
}

/// Records a file in its package, creating the package if needed.
///
/// Runs as a compare-and-swap loop on the package record, so concurrent
/// publishes into the same (possibly new) package all land, and the duplicate
/// rule is checked against what is really stored at the moment of the write.
pub fn commit_file<K: KeyValue>(
    kv: &K,
    commit: &Commit,
    file: NewFile,
) -> Result<(Package, PackageFile), MetaError> {
    let key = keys::package(commit.project.id, commit.name, commit.version);
    let file = PackageFile {
        id: next_id(kv, "file")?,
        file_name: file.file_name,
        size: file.size,
        md5: file.md5,
        sha1: file.sha1,
        sha256: file.sha256,
        object_key: file.object_key,
        created_at: commit.now,
    };
    let duplicates_allowed = commit
        .settings
        .duplicates_allowed_for(commit.name, commit.version);
    // Allocated once, on the first attempt that finds no package.
    let mut new_package_id: Option<u64> = None;
    let mut created = false;
    let mut status_changed = false;

    let package = update(kv, &key, |current| {
        let existing = match current.map(|bytes| decode::<Package>(&key, &bytes)) {
            Some(Ok(package)) => Some(package).filter(|p| !p.is_deleted()),
            Some(Err(e)) => return Step::Fail(e),
            None => None,
        };
        let mut package = match existing {
            Some(package) => package,
            None => {
                let id = match new_package_id {
                    Some(id) => id,
                    None => match next_id(kv, "package") {
                        Ok(id) => *new_package_id.insert(id),
                        Err(e) => return Step::Fail(e),
                    },
                };
                Package {
                    id,
                    project_id: commit.project.id,
                    name: commit.name.to_string(),
                    version: commit.version.to_string(),
                    status: PackageStatus::Default,
                    created_at: commit.now,
                    updated_at: commit.now,
                    last_downloaded_at: None,
                    files: Vec::new(),
                    deleted_at: None,
                }
            }
        };
        if !duplicates_allowed && package.newest_file(&file.file_name).is_some() {
            return Step::Fail(MetaError::Duplicate);
        }
        created = package.files.is_empty() && Some(package.id) == new_package_id;
        package.files.push(file.clone());
        package.updated_at = commit.now;
        status_changed = commit.status.is_some_and(|s| s != package.status);
        if let Some(status) = commit.status {
            package.status = status;
        }
        let bytes = encode(&package);
        if bytes.len() > MAX_VALUE_BYTES {
            return Step::Fail(MetaError::PackageFull);
        }
        Step::Write(bytes, package)
    })?;

    if created {
        record_new_package(kv, &package)?;
    } else if status_changed {
        if let Some(location) = package_location(kv, package.id)? {
            change_index(kv, &location, |entries| {
                for entry in entries.iter_mut().filter(|e| e.id == package.id) {
                    entry.status = package.status;
                }
            })?;
        }
    }
    Ok((package, file))
}

/// Where the package with this id lives, if it is in this project.
fn location_in<K: KeyValue>(
    kv: &K,
    project_id: u64,
    package_id: u64,
) -> Result<Option<PackageLocation>, MetaError> {
    Ok(package_location(kv, package_id)?.filter(|l| l.project_id == project_id))
}

/// Where the package with this id lives, if it exists.
pub fn package_location<K: KeyValue>(
    kv: &K,
    package_id: u64,
) -> Result<Option<PackageLocation>, MetaError> {
    read(kv, &keys::package_by_id(package_id))
}

/// Changes the index shard that lists the package at `location`.
fn change_index<K: KeyValue>(
    kv: &K,
    location: &PackageLocation,
    change: impl Fn(&mut Vec<PackageSummary>),
) -> Result<(), MetaError> {
    let index_key = keys::package_index(location.project_id, location.index_shard);
    update(kv, &index_key, |current| {
        let Some(bytes) = current else {
            return Step::Keep(());
        };
        let mut entries: Vec<PackageSummary> = match decode(&index_key, &bytes) {
            Ok(entries) => entries,
            Err(e) => return Step::Fail(e),
        };
        change(&mut entries);
        Step::Write(encode(&entries), ())
    })
}

/// Makes a newly created package findable by id and listable in its project.
fn record_new_package<K: KeyValue>(kv: &K, package: &Package) -> Result<(), MetaError> {
    let ordinal = kv.increment(&keys::package_ordinal(package.project_id), 1)?;
    let shard = (ordinal.max(1) as u64 - 1) / INDEX_SHARD_SIZE;
    let location = PackageLocation {
        project_id: package.project_id,
        name: package.name.clone(),
        version: package.version.clone(),
        index_shard: shard,
    };
    kv.set(&keys::package_by_id(package.id), &encode(&location))?;
    let summary = PackageSummary {
        id: package.id,
        name: package.name.clone(),
        version: package.version.clone(),
        status: package.status,
        created_at: package.created_at,
    };
    let index_key = keys::package_index(package.project_id, shard);
    update(kv, &index_key, |current| {
        let mut entries: Vec<PackageSummary> = match current {
            Some(bytes) => match decode(&index_key, &bytes) {
                Ok(entries) => entries,
                Err(e) => return Step::Fail(e),
            },
            None => Vec::new(),
        };
        entries.push(summary.clone());
        Step::Write(encode(&entries), ())
    })
}

/// Sets `last_downloaded_at`, at most once a minute per package. Best effort:
/// a lost race means someone else just wrote a fresh time.
pub fn mark_downloaded<K: KeyValue>(
    kv: &K,
    project_id: u64,
    name: &str,
    version: &str,
    now: Millis,
) -> Result<(), MetaError> {
    let key = keys::package(project_id, name, version);
    let (cas, current) = kv.read_for_swap(&key)?;
    let Some(bytes) = current else {
        return Ok(());
    };
    let mut package: Package = decode(&key, &bytes)?;
    if package
        .last_downloaded_at
        .is_some_and(|last| now - last < 60_000)
    {
        return Ok(());
    }
    package.last_downloaded_at = Some(now);
    kv.swap(cas, &encode(&package))?;
    Ok(())
}

#[cfg(test)]
mod tests;
