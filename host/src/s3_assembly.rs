//! A multipart upload's parts joined while the upload is still under way.
//!
//! Completing an upload joins its parts into the object (`s3_complete.rs`):
//! every byte is copied once more and synced while the client waits. On
//! this machine that was 0.75 s of a 1 GiB upload's 4.9 s, and 10 s of a
//! 4 GiB upload's 26 s, where the copy's dirty pages met the kernel's limit
//! and the join went at the disk's speed. Here each stored part is appended
//! to the upload's *assembly*, a temporary file, as soon as every part
//! numbered before it is in, and the appended pages are sent to the disk at
//! once. A completion whose first parts are the assembly's appends only the
//! parts it lacks, syncs what is left and renames it into place.
//!
//! The assembly is only a copy made ahead: the parts stay where s3s-fs
//! keeps them (ListParts, AbortMultipartUpload and a completion that cannot
//! use the assembly read them there). An appended part counts only while
//! its file is still the one appended: the same device, inode, size and
//! change time, so a part stored again (a new file renamed over it) or
//! changed in place is read from its file. The assembly is removed when
//! its upload is completed or aborted, and, as a temporary file, when the
//! server starts; until then an upload takes the space of its parts twice.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::files;
use super::part_etags::part_path;

/// What an assembly's temporary file is named for.
const PURPOSE: &str = "assembly";

/// Whether `name` is the file of an assembly.
#[cfg(test)]
pub fn is_assembly(name: &str) -> bool {
    files::is_temporary_for(name, PURPOSE)
}

/// The assemblies of the uploads under way, by upload id.
#[derive(Default)]
pub struct Assemblies {
    uploads: Mutex<HashMap<String, Arc<Shared>>>,
}

/// One upload's assembly, and whether parts were stored that it may not
/// have looked for yet.
pub struct Shared {
    assembly: Mutex<Assembly>,
    wanted: AtomicBool,
}

impl Assemblies {
    /// Appends the stored parts of `upload_id` that follow its assembly's
    /// last one (part 1 first), on the blocking pool. Called once a part
    /// is stored. Forgets the assemblies of uploads that are gone (aborted
    /// by another process, such as `genreg gc`).
    pub fn part_stored(&self, root: &Path, upload_id: &str) {
        let shared = {
            let mut uploads = lock(&self.uploads);
            forget_gone(&mut uploads, root);
            uploads
                .entry(upload_id.to_string())
                .or_insert_with(|| {
                    Arc::new(Shared {
                        assembly: Mutex::new(Assembly::new(root)),
                        wanted: AtomicBool::new(false),
                    })
                })
                .clone()
        };
        shared.wanted.store(true, Ordering::SeqCst);
        let (root, upload_id) = (root.to_path_buf(), upload_id.to_string());
        tokio::task::spawn_blocking(move || {
            // One task appends at a time; one that finds it busy leaves the
            // part to it, as it looks again once it lets go.
            while shared.wanted.load(Ordering::SeqCst) {
                let Ok(mut assembly) = shared.assembly.try_lock() else {
                    break;
                };
                shared.wanted.store(false, Ordering::SeqCst);
                assembly.catch_up(&root, &upload_id);
            }
        });
    }

    /// Takes the assembly of `upload_id` out, for its completion; dropping
    /// it (an abort, or a completion s3s-fs does) removes its file once no
    /// append holds it.
    pub fn take(&self, root: &Path, upload_id: &str) -> Option<Arc<Shared>> {
        let mut uploads = lock(&self.uploads);
        forget_gone(&mut uploads, root);
        uploads.remove(upload_id)
    }

    /// How many uploads have an assembly.
    #[cfg(test)]
    pub fn count(&self) -> usize {
        lock(&self.uploads).len()
    }

    /// How many parts the assembly of `upload_id` holds, and its file.
    #[cfg(test)]
    pub fn appended(&self, upload_id: &str) -> (usize, PathBuf) {
        let shared = lock(&self.uploads)[upload_id].clone();
        let assembly = shared.assembly();
        (assembly.parts.len(), assembly.path.clone())
    }
}

impl Shared {
    /// The assembly, once no append holds it.
    pub fn assembly(&self) -> MutexGuard<'_, Assembly> {
        lock(&self.assembly)
    }
}

/// Drops the assemblies of uploads whose own file is gone.
fn forget_gone(uploads: &mut HashMap<String, Arc<Shared>>, root: &Path) {
    uploads.retain(|id, _| files::upload_info_path(root, id).exists());
}

/// The parts of one upload appended so far, in order from part 1.
pub struct Assembly {
    path: PathBuf,
    /// Created by the first append.
    file: Option<File>,
    parts: Vec<Appended>,
    /// Set once a completion took it (or an append failed): nothing more is
    /// appended.
    closed: bool,
    /// Set once renamed into the object: its file is no longer ours.
    renamed: bool,
}

/// One appended part: the file it was copied from and where it ends in the
/// assembly.
struct Appended {
    identity: Identity,
    end: u64,
}

/// What tells a part's file apart from another stored under the same name,
/// or from itself after a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Identity {
    /// Device and inode (none where the system has no inodes).
    file: (u64, u64),
    size: u64,
    /// When its inode last changed (where there are none, its contents),
    /// in seconds and nanoseconds.
    changed: (i64, i64),
}

impl Identity {
    #[cfg(unix)]
    fn of(metadata: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Identity {
            file: (metadata.dev(), metadata.ino()),
            size: metadata.len(),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }

    #[cfg(not(unix))]
    fn of(metadata: &std::fs::Metadata) -> Self {
        let modified = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .unwrap_or_default();
        Identity {
            file: (0, 0),
            size: metadata.len(),
            changed: (
                modified.as_secs() as i64,
                i64::from(modified.subsec_nanos()),
            ),
        }
    }
}

impl Assembly {
    fn new(root: &Path) -> Self {
        Assembly {
            path: files::temporary_path(root, PURPOSE),
            file: None,
            parts: Vec::new(),
            closed: false,
            renamed: false,
        }
    }

    /// Appends every stored part that follows the last appended one.
    fn catch_up(&mut self, root: &Path, upload_id: &str) {
        while !self.closed {
            let number = self.parts.len() + 1;
            let Ok(number) = i32::try_from(number) else {
                break;
            };
            let Ok(mut part) = File::open(part_path(root, upload_id, number)) else {
                break;
            };
            if let Err(e) = self.append(&mut part) {
                eprintln!("warning: joining part {number} of upload {upload_id} ahead: {e}");
                self.closed = true;
                break;
            }
        }
    }

    /// Copies `part` to the end (in the kernel: `copy_file_range`) and
    /// starts writing it to the disk. A part that changes while it is
    /// copied is cut off again, and the assembly closed.
    fn append(&mut self, part: &mut File) -> std::io::Result<()> {
        let start = self.end();
        let identity = Identity::of(&part.metadata()?);
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(File::create_new(&self.path)?),
        };
        let copied = std::io::copy(part, file)?;
        if copied != identity.size || Identity::of(&part.metadata()?) != identity {
            file.set_len(start)?;
            file.seek(SeekFrom::Start(start))?;
            return Err(std::io::Error::other(
                "the part changed while it was copied",
            ));
        }
        start_writing(file, start, copied);
        self.parts.push(Appended {
            identity,
            end: start + copied,
        });
        Ok(())
    }

    fn end(&self) -> u64 {
        self.parts.last().map_or(0, |part| part.end)
    }

    /// Makes `object` the join of `parts` (the completion's, in order, as
    /// part number and file) from this assembly: its parts that are the
    /// completion's first ones are kept, the rest appended, the whole synced
    /// and renamed to `object`. `Ok(false)` when the completion's first
    /// part is not the assembly's: the caller joins the parts itself.
    /// Closes the assembly either way.
    pub fn complete(&mut self, parts: &[(i32, &Path)], object: &Path) -> std::io::Result<bool> {
        self.closed = true;
        let kept = parts
            .iter()
            .zip(&self.parts)
            .enumerate()
            .take_while(|(index, ((number, path), appended))| {
                usize::try_from(*number).ok() == Some(index + 1)
                    && std::fs::metadata(path).is_ok_and(|m| Identity::of(&m) == appended.identity)
            })
            .count();
        let Some(file) = self.file.as_mut().filter(|_| kept > 0) else {
            return Ok(false);
        };
        let end = self.parts[kept - 1].end;
        file.set_len(end)?;
        file.seek(SeekFrom::Start(end))?;
        for (_, path) in &parts[kept..] {
            std::io::copy(&mut File::open(path)?, file)?;
        }
        file.sync_data()?;
        files::rename_durably(&self.path, object)?;
        self.renamed = true;
        Ok(true)
    }
}

impl Drop for Assembly {
    fn drop(&mut self) {
        if self.file.is_some() && !self.renamed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Starts writing `length` bytes of `file` from `offset` to the disk
/// without waiting, so the sync at completion finds little left to write.
#[cfg(target_os = "linux")]
fn start_writing(file: &File, offset: u64, length: u64) {
    use std::os::fd::AsRawFd as _;
    let (Ok(offset), Ok(length)) = (i64::try_from(offset), i64::try_from(length)) else {
        return;
    };
    // SAFETY: the descriptor is open for as long as `file` is borrowed;
    // the call only schedules writeback.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset,
            length,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writing(_file: &File, _offset: u64, _length: u64) {}

/// A lock that a panic while it was held does not make unusable.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(all(test, unix))]
#[path = "s3_assembly_tests.rs"]
mod tests;
