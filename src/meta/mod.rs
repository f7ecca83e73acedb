//! Package metadata: projects, packages and their files, kept in a key-value
//! store. Every request touches a handful of keys, whatever the size of the
//! store; every shared value is changed with compare-and-swap.

pub mod cleanup;
pub mod groups;
pub mod keys;
pub mod kv;
pub mod model;
pub mod objects;
pub mod packages;
pub mod project_index;
pub mod projects;
pub mod protection;
mod raw;
pub mod read_ahead;
pub mod tokens;
pub mod upload_sessions;
pub mod users;

use kv::{update_then_read, KeyValue, KvError, Step};
use model::*;
pub use packages::{
    commit_file, commit_file_with_id, delete_file, delete_package, file_by_id,
    index_shards_read_ahead, listed_packages, mark_downloaded, newest_file, newest_file_as_stored,
    package, package_as_stored, package_by_id, package_files, package_location, package_summaries,
    prune_files, records_at, remove_file, remove_package, settled, Commit, NewFile,
    INDEX_SHARD_SIZE,
};
pub use projects::{
    create_project, delete_project, forget_if_project_deleted, project, NewProject, ProjectRef,
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

fn read<K: KeyValue, T: serde::de::DeserializeOwned>(
    kv: &K,
    key: &str,
) -> Result<Option<T>, MetaError> {
    match kv.get(key)? {
        None => Ok(None),
        Some(bytes) => decode(key, &bytes).map(Some),
    }
}

/// The value of a counter (absent counts as 0), read with a plain `get`: an
/// increment by 0 would cost a write transaction on Spin's SQLite store.
fn read_counter<K: KeyValue>(kv: &K, key: &str) -> Result<u64, MetaError> {
    let Some(bytes) = kv.get(key)? else {
        return Ok(0);
    };
    kv::decode_counter(&bytes)
        .map(|n| n.max(0) as u64)
        .ok_or_else(|| MetaError::Corrupt {
            key: key.to_string(),
            reason: "not a counter".to_string(),
        })
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, MetaError> {
    serde_json::from_slice(bytes).map_err(corrupt(key))
}

/// How a record at `key` that does not decode is reported.
fn corrupt(key: &str) -> impl Fn(serde_json::Error) -> MetaError + '_ {
    move |e| MetaError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records always serialize")
}

/// [`update`] of a JSON record: `step` sees the stored value decoded
/// (`None` when absent) and may fail with `?`. A stored value that does not
/// decode stops the update with [`MetaError::Corrupt`].
fn update_record<K, R, T, E>(
    kv: &K,
    key: &str,
    step: impl FnMut(Option<R>) -> Result<Step<T, E>, E>,
) -> Result<T, E>
where
    K: KeyValue,
    R: serde::de::DeserializeOwned,
    E: From<KvError> + From<MetaError>,
{
    update_record_then_read(kv, key, &[], step)
}

/// [`update_record`] with [`kv::update_then_read`]'s reading ahead of the
/// keys the caller reads next.
fn update_record_then_read<K, R, T, E>(
    kv: &K,
    key: &str,
    read_after: &[String],
    mut step: impl FnMut(Option<R>) -> Result<Step<T, E>, E>,
) -> Result<T, E>
where
    K: KeyValue,
    R: serde::de::DeserializeOwned,
    E: From<KvError> + From<MetaError>,
{
    update_then_read(kv, key, read_after, |current| {
        let stored = current.map(|bytes| decode(key, &bytes)).transpose();
        match stored.map_err(E::from).and_then(&mut step) {
            Ok(next) => next,
            Err(e) => Step::Fail(e),
        }
    })
}

/// Changes the JSON list at `key` (absent counts as empty) through
/// [`update`]; `change` answers whether it changed anything.
fn change_list<K: KeyValue, T>(
    kv: &K,
    key: &str,
    change: impl Fn(&mut Vec<T>) -> bool,
) -> Result<(), MetaError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    update_record(kv, key, |items: Option<Vec<T>>| {
        let mut items = items.unwrap_or_default();
        Ok(if change(&mut items) {
            Step::Write(encode(&items), ())
        } else {
            Step::Keep(())
        })
    })
}

/// Changes the entries of the index shard at `key` (absent counts as
/// empty) through [`update`], raising its count of writes when it writes;
/// `change` answers whether it changed anything.
fn change_shard<K: KeyValue, E>(
    kv: &K,
    key: &str,
    change: impl Fn(&mut Vec<E>) -> bool,
) -> Result<(), MetaError>
where
    E: serde::Serialize + serde::de::DeserializeOwned,
{
    update_record(kv, key, |stored: Option<model::Shard<E>>| {
        let mut shard = stored.unwrap_or_default();
        Ok(if change(&mut shard.entries) {
            Step::Write(shard.encode_next(), ())
        } else {
            Step::Keep(())
        })
    })
}

/// A fresh numeric id of the given kind (`project`, `package`, `file`).
pub fn next_id<K: KeyValue>(kv: &K, kind: &str) -> Result<u64, MetaError> {
    raise_sequence(kv, kind, 1)
}

/// Draws `count` ids of the given kind at once and answers the last of
/// them.
fn raise_sequence<K: KeyValue>(kv: &K, kind: &str, count: u64) -> Result<u64, MetaError> {
    let last = kv.increment(&keys::sequence(kind), count as i64)?;
    u64::try_from(last).map_err(|_| MetaError::Corrupt {
        key: keys::sequence(kind),
        reason: format!("counter is {last}"),
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
    update_record(kv, &key, |settings: Option<NamespaceSettings>| {
        let mut settings = settings.unwrap_or_default();
        change(&mut settings);
        Ok(Step::Write(encode(&settings), settings))
    })
}

pub fn is_token_revoked<K: KeyValue>(kv: &K, token_id: &str) -> Result<bool, MetaError> {
    Ok(kv.get(&keys::revoked_token(token_id))?.is_some())
}

#[cfg(test)]
mod tests;
