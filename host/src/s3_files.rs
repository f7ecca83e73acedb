//! Where s3s-fs keeps an object's files, for the operations the embedded S3
//! server does without it (joining parts, small objects): the same names,
//! so s3s-fs, `genreg gc` and these operations read what the others wrote.
//!
//! - the object: `<root>/<bucket>/<key>`;
//! - its attributes (content type, user metadata, ...):
//!   `<root>/.bucket-<b64 bucket>.object-<b64 key>.metadata.json`, absent
//!   when it has none;
//! - its internal info (ETag, checksums), a JSON object:
//!   `<root>/.bucket-<b64 bucket>.object-<b64 key>.internal.json`;
//! - a multipart upload's own file (the access key that created it):
//!   `<root>/.upload-<id>.json`, its attributes as above with
//!   `.upload-<id>` before `.metadata.json`;
//! - files being written: `<root>/.tmp.<anything>.internal.part`, which
//!   s3s-fs removes when it starts.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use s3s::{s3_error, S3Result};

use crate::group_sync::GroupSync;

/// The object's file, refusing keys that would leave the bucket.
pub fn object_path(root: &Path, bucket: &str, key: &str) -> S3Result<PathBuf> {
    let escapes = |s: &str| {
        Path::new(s)
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    };
    if bucket.is_empty() || key.is_empty() || escapes(bucket) || escapes(key) {
        return Err(s3_error!(InvalidArgument, "invalid bucket or key"));
    }
    Ok(root.join(bucket).join(key))
}

/// An object's attributes (or an upload's, with its id).
pub fn metadata_path(root: &Path, bucket: &str, key: &str, upload_id: Option<&str>) -> PathBuf {
    let upload = upload_id
        .map(|id| format!(".upload-{id}"))
        .unwrap_or_default();
    root.join(format!(
        ".bucket-{}.object-{}{upload}.metadata.json",
        URL_SAFE_NO_PAD.encode(bucket),
        URL_SAFE_NO_PAD.encode(key)
    ))
}

/// A multipart upload's own file.
pub fn upload_info_path(root: &Path, upload_id: &str) -> PathBuf {
    root.join(format!(".upload-{upload_id}.json"))
}

/// An object's internal info.
pub fn internal_info_path(root: &Path, bucket: &str, key: &str) -> PathBuf {
    root.join(format!(
        ".bucket-{}.object-{}.internal.json",
        URL_SAFE_NO_PAD.encode(bucket),
        URL_SAFE_NO_PAD.encode(key)
    ))
}

/// A new temporary file name in `root`, one s3s-fs removes when it starts.
pub fn temporary_path(root: &Path, purpose: &str) -> PathBuf {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).expect("the system's random source works");
    root.join(format!(
        ".tmp.{purpose}-{}.internal.part",
        hex::encode(random)
    ))
}

/// Writes `bytes` to a temporary file in `root` and renames it to `path`,
/// creating `path`'s directory when it is missing: readers see the old
/// file or the new one, never part of one.
pub fn write_replacing(
    root: &Path,
    path: &Path,
    purpose: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    with_temporary(root, purpose, |temporary| {
        std::fs::write(temporary, bytes)?;
        rename_creating_dir(temporary, path).map(drop)
    })
}

/// [`write_replacing`] for an object: its bytes reach the disk before the
/// rename, and the rename before the answer (see [`rename_durably`]).
pub fn write_durably(root: &Path, path: &Path, purpose: &str, bytes: &[u8]) -> std::io::Result<()> {
    with_temporary(root, purpose, |temporary| {
        let mut file = std::fs::File::create_new(temporary)?;
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_data()?;
        rename_durably(temporary, path)
    })
}

/// Runs `write` on a new temporary file name in `root` (see
/// [`temporary_path`]), which it is to rename away; on failure the file is
/// removed.
pub fn with_temporary<T, E>(
    root: &Path,
    purpose: &str,
    write: impl FnOnce(&Path) -> Result<T, E>,
) -> Result<T, E> {
    let temporary = temporary_path(root, purpose);
    let result = write(&temporary);
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Renames `from` to `to`, creating `to`'s directory when the rename finds
/// it missing (objects share few directories, so that is rare). Answers
/// the directory it created, if any.
pub fn rename_creating_dir(from: &Path, to: &Path) -> std::io::Result<Option<PathBuf>> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && from.exists() => {
            let dir = to.parent().map(Path::to_path_buf);
            if let Some(dir) = &dir {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::rename(from, to)?;
            Ok(dir)
        }
        other => other.map(|()| None),
    }
}

/// Renames a file whose bytes were synced into place, so that the object
/// survives a crash of the machine once this returns: the rename is synced
/// too (its directory, and that directory's parent when the rename created
/// it). The registry records a file only after S3 answered its `PUT`, so a
/// record never outlives its object.
pub fn rename_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    let created = rename_creating_dir(from, to)?;
    if let Some(parent) = created.as_deref().and_then(Path::parent) {
        sync_dir(parent)?;
    }
    sync_name(to)
}

/// Makes an object that s3s-fs stored survive a crash of the machine: its
/// bytes and its name (s3s-fs writes and renames without syncing).
pub fn sync_stored(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_data()?;
    sync_name(path)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Makes the name `path` was just renamed to survive a crash of the
/// machine: a sync of its directory. Objects share few directories, so
/// renames into one that finish together share one sync of it (as a group
/// commit does): a caller whose rename an earlier caller's sync covered
/// returns without one.
fn sync_name(path: &Path) -> std::io::Result<()> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let renames = DirRenames::of(dir);
    let mine = renames.done.fetch_add(1, Ordering::SeqCst) + 1;
    renames.synced.cover(
        mine,
        || renames.done.load(Ordering::SeqCst),
        || sync_dir(dir),
    )
}

/// The renames into one directory, counted as each finishes, and the syncs
/// of the directory that cover them.
#[derive(Default)]
struct DirRenames {
    done: AtomicU64,
    synced: GroupSync,
}

impl DirRenames {
    /// The counts of `dir`, shared by the whole process (a sync of a
    /// directory covers every rename into it, whoever made it).
    fn of(dir: &Path) -> Arc<DirRenames> {
        static DIRS: OnceLock<Mutex<HashMap<PathBuf, Arc<DirRenames>>>> = OnceLock::new();
        let mut dirs = DIRS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        dirs.entry(dir.to_path_buf()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_into_a_new_directory_land_and_every_one_is_covered_by_a_sync() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("bucket").join("files");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (root, dir) = (root.path().to_path_buf(), dir.clone());
                std::thread::spawn(move || {
                    let object = dir.join(format!("o{i}"));
                    write_durably(&root, &object, "test", format!("{i}").as_bytes()).unwrap();
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        for i in 0..8 {
            let object = std::fs::read(dir.join(format!("o{i}"))).unwrap();
            assert_eq!(object, format!("{i}").into_bytes());
        }
        let renames = DirRenames::of(&dir);
        assert_eq!(renames.done.load(Ordering::SeqCst), 8);
        assert_eq!(renames.synced.covered(), 8, "the last sync covers all");
        let leftovers = super::super::test_support::names_in(root.path())
            .iter()
            .filter(|name| *name != "bucket")
            .count();
        assert_eq!(leftovers, 0, "no temporary file is left");
    }
}
