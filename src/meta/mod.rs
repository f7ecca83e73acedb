//! Package metadata: projects, packages and their files, kept in a key-value
//! store. Every request touches a handful of keys, whatever the size of the
//! store; every shared value is changed with compare-and-swap.

pub mod cleanup;
pub mod directory;
pub mod keys;
pub mod kv;
pub mod model;
pub mod packages;
pub mod protection;
pub mod tokens;
pub mod users;

use kv::{update, KeyValue, KvError, Step};
use model::*;
pub use packages::{
    commit_file, delete_file, delete_package, mark_downloaded, newest_file, package, package_by_id,
    package_files, package_location, package_summaries, prune_files, Commit, NewFile,
    INDEX_SHARD_SIZE,
};

/// Values are kept under this size: hosted key-value stores cap values at
/// 400 KB to 1 MB, and a package record holds all its file records.
pub const MAX_VALUE_BYTES: usize = 256 * 1024;

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

impl MetaError {
    /// Whether the request may simply be tried again in a moment.
    pub fn is_busy(&self) -> bool {
        matches!(self, MetaError::Store(KvError::Busy(_)))
    }
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

/// Creates a project and claims its full path. The record and a pending
/// index entry are written before the path is claimed, so a path never
/// points at a missing project and a crash never leaves a live project
/// unlisted (see `meta::directory`); a record whose claim lost is deleted
/// again.
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
    directory::ensure_groups(kv, &project.namespace, now)?;
    kv.set(&keys::project(project.id), &encode(&project))?;
    directory::reserve_entry(kv, &project)?;
    let claimed = update(kv, &path_key, |current| match current {
        // A retry after a write that landed but was not confirmed.
        Some(claim) if claim == encode(&project.id) => Step::Keep(true),
        None => Step::<_, MetaError>::Write(encode(&project.id), true),
        Some(claim) => match path_claim_is_free(kv, &path_key, &claim) {
            Ok(true) => Step::Write(encode(&project.id), true),
            Ok(false) => Step::Keep(false),
            Err(e) => Step::Fail(e),
        },
    });
    match claimed {
        Ok(true) => {
            directory::confirm_entry(kv, project.id)?;
            Ok(project)
        }
        Ok(false) => {
            kv.delete(&keys::project(project.id))?;
            directory::confirm_entry(kv, project.id)?;
            Err(MetaError::PathTaken)
        }
        Err(e) => Err(e),
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

#[cfg(test)]
mod tests;
