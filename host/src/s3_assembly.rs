//! A multipart upload's parts joined while the upload is still under way.
//!
//! Completing an upload joins its parts into the object (`s3_complete.rs`):
//! every byte copied once more and synced while the client waits. Here the
//! parts are joined as they arrive, into the upload's *assembly*
//! (`.upload_id-<id>.assembly`), so that a completion whose first parts are
//! the assembly's appends only the parts it lacks, syncs what is left and
//! renames it into place.
//!
//! - A part that arrives in order (every part numbered before it is in the
//!   assembly, and nothing else is writing to it) is written straight into
//!   the assembly and has no file of its own: its bytes reach the page
//!   cache and the disk once. A marker records where it lies
//!   (`s3_stored_parts.rs`, which also says why a part stored again, as a
//!   file, always wins over it).
//! - A part that arrives out of order is stored as s3s-fs stores it, as a
//!   file, and copied to the assembly's end (in the kernel) as soon as
//!   every part before it is in. Such a copy counts only while the part's
//!   file is still the one copied: the same device, inode, size and change
//!   time.
//!
//! Appended pages are sent to the disk at once, so the sync at completion
//! finds little left to write. What this process knows of an assembly
//! (which parts it holds, in order) lives in memory; an assembly found on
//! the disk at the first part after a restart is appended to no more, and
//! its parts are read through their markers. The assembly goes with its
//! upload: renamed into the object, or removed with the upload's other
//! files when it is completed or aborted (`s3_stored_parts.rs`), and by
//! the last holder of an upload that is gone.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::files;
use super::part_etags::part_path;
use super::stored_parts::{self, StoredPart};

/// Whether `name` is the file of an assembly.
#[cfg(test)]
pub fn is_assembly(name: &str) -> bool {
    name.starts_with(".upload_id-") && name.ends_with(".assembly")
}

/// The assemblies of the uploads under way, by upload id.
#[derive(Default)]
pub struct Assemblies {
    uploads: Mutex<HashMap<String, Arc<Shared>>>,
}

/// One upload's assembly, whether parts were stored that it may not have
/// looked for yet, and whether a part is being written into it.
pub struct Shared {
    assembly: Mutex<Assembly>,
    wanted: AtomicBool,
    writing: AtomicBool,
}

impl Assemblies {
    /// The assembly of `upload_id`, made when it has none. Forgets the
    /// assemblies of uploads that are gone (aborted by another process,
    /// such as `genreg gc`).
    pub fn of(&self, root: &Path, upload_id: &str) -> Arc<Shared> {
        let mut uploads = lock(&self.uploads);
        forget_gone(&mut uploads, root);
        uploads
            .entry(upload_id.to_string())
            .or_insert_with(|| {
                Arc::new(Shared {
                    assembly: Mutex::new(Assembly::new(root, upload_id)),
                    wanted: AtomicBool::new(false),
                    writing: AtomicBool::new(false),
                })
            })
            .clone()
    }

    /// Appends the stored parts of `upload_id` that follow its assembly's
    /// last one (part 1 first), on the blocking pool. Called once a part
    /// is stored.
    pub fn part_stored(&self, root: &Path, upload_id: &str) {
        let shared = self.of(root, upload_id);
        shared.wanted.store(true, Ordering::SeqCst);
        tokio::task::spawn_blocking(move || {
            // One task appends at a time; one that finds it busy leaves the
            // part to it, as it looks again once it lets go.
            while shared.wanted.load(Ordering::SeqCst) {
                let Ok(mut assembly) = shared.assembly.try_lock() else {
                    break;
                };
                shared.wanted.store(false, Ordering::SeqCst);
                assembly.catch_up();
            }
        });
    }

    /// Takes the assembly of `upload_id` out, for its completion or abort:
    /// nothing more is appended to it.
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

    /// The assembly, opened at its end for part `number` to be written
    /// into, when that part comes next, has no file and no other part is
    /// being written into the assembly; `None` otherwise (the part is then
    /// stored as a file). Waits for a copy of a part's file to the
    /// assembly, which is short, but not for a part being written, which
    /// lasts as long as its client sends it.
    pub fn write_in_order(&self, number: i32) -> Option<InOrder<'_>> {
        let mut assembly = match self.assembly.try_lock() {
            Ok(assembly) => assembly,
            Err(_) if self.writing.load(Ordering::SeqCst) => return None,
            Err(_) => lock(&self.assembly),
        };
        let next = i32::try_from(assembly.parts.len() + 1).ok()?;
        if assembly.closed || number != next || assembly.part_file(number).exists() {
            return None;
        }
        let start = assembly.end();
        let opened = assembly
            .open()
            .and_then(|file| file.seek(SeekFrom::Start(start)));
        if let Err(e) = opened {
            let upload_id = &assembly.upload_id;
            eprintln!("warning: writing part {number} of upload {upload_id} in place: {e}");
            assembly.closed = true;
            return None;
        }
        self.writing.store(true, Ordering::SeqCst);
        Some(InOrder {
            assembly,
            writing: &self.writing,
            number,
            start,
        })
    }
}

/// Drops the assemblies of uploads whose own file is gone.
fn forget_gone(uploads: &mut HashMap<String, Arc<Shared>>, root: &Path) {
    uploads.retain(|id, _| files::upload_info_path(root, id).exists());
}

/// A part being written at the end of its upload's assembly, which it
/// holds until kept or discarded.
pub struct InOrder<'a> {
    assembly: MutexGuard<'a, Assembly>,
    /// Set while it lasts.
    writing: &'a AtomicBool,
    number: i32,
    start: u64,
}

impl InOrder<'_> {
    /// The assembly, positioned where the part's bytes go.
    pub fn file(&mut self) -> &mut File {
        self.assembly
            .file
            .as_mut()
            .expect("an assembly written in order is open")
    }

    /// Makes the `length` bytes written the part: starts writing them to
    /// the disk and records where they lie. On failure the part is not
    /// stored.
    pub fn keep(mut self, length: u64) -> std::io::Result<()> {
        let end = self.start + length;
        let (start, number) = (self.start, self.number);
        start_writing(self.file(), start, length);
        let assembly = &self.assembly;
        let marked =
            stored_parts::write_marker(&assembly.root, &assembly.upload_id, number, start, end);
        if let Err(e) = marked {
            self.discard();
            return Err(e);
        }
        self.assembly.parts.push(Appended {
            source: Source::Written,
            end,
        });
        Ok(())
    }

    /// Cuts the assembly back to before the part: it is not stored.
    pub fn discard(mut self) {
        let start = self.start;
        let cut = self
            .file()
            .set_len(start)
            .and_then(|()| self.file().seek(SeekFrom::Start(start)).map(drop));
        if let Err(e) = cut {
            eprintln!(
                "warning: cutting part {} of upload {} off its assembly: {e}",
                self.number, self.assembly.upload_id
            );
            self.assembly.closed = true;
        }
    }
}

impl Drop for InOrder<'_> {
    fn drop(&mut self) {
        self.writing.store(false, Ordering::SeqCst);
    }
}

/// The parts of one upload appended so far, in order from part 1.
pub struct Assembly {
    path: PathBuf,
    root: PathBuf,
    upload_id: String,
    /// Created by the first append.
    file: Option<File>,
    parts: Vec<Appended>,
    /// Set once a completion took it, an append failed, or the assembly was
    /// found on the disk: nothing more is appended.
    closed: bool,
    /// Set once renamed into the object: its file is no longer ours.
    renamed: bool,
}

/// One appended part: how it came in and where it ends in the assembly.
struct Appended {
    source: Source,
    end: u64,
}

impl Appended {
    /// Whether `stored`, where the completion finds the part, is still this
    /// part, which starts at `start` in the assembly at `assembly`.
    fn is(&self, stored: &StoredPart, start: u64, assembly: &Path) -> bool {
        match (&self.source, stored) {
            (
                Source::Written,
                StoredPart::Assembled {
                    assembly: a,
                    start: s,
                    end,
                },
            ) => a == assembly && *s == start && *end == self.end,
            (Source::Copied(identity), StoredPart::File(path)) => {
                std::fs::metadata(path).is_ok_and(|m| Identity::of(&m) == *identity)
            }
            _ => false,
        }
    }
}

enum Source {
    /// Written straight into the assembly; it has a marker.
    Written,
    /// Copied from the part's file, which was this one.
    Copied(Identity),
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
    fn new(root: &Path, upload_id: &str) -> Self {
        let path = stored_parts::assembly_path(root, upload_id);
        Assembly {
            // Left by an earlier run: what it holds is known only from its
            // markers.
            closed: path.exists(),
            path,
            root: root.to_path_buf(),
            upload_id: upload_id.to_string(),
            file: None,
            parts: Vec::new(),
            renamed: false,
        }
    }

    /// The assembly's file, created by the first call.
    fn open(&mut self) -> std::io::Result<&mut File> {
        let file = match self.file.take() {
            Some(file) => file,
            None => File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&self.path)?,
        };
        Ok(self.file.insert(file))
    }

    /// Where part `number` of this upload has its file, if it has one.
    fn part_file(&self, number: i32) -> PathBuf {
        part_path(&self.root, &self.upload_id, number)
    }

    /// Appends every stored part file that follows the last appended part.
    fn catch_up(&mut self) {
        while !self.closed {
            let number = self.parts.len() + 1;
            let Ok(number) = i32::try_from(number) else {
                break;
            };
            let Ok(mut part) = File::open(self.part_file(number)) else {
                break;
            };
            if let Err(e) = self.append(&mut part) {
                let upload_id = &self.upload_id;
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
        let file = self.open()?;
        file.seek(SeekFrom::Start(start))?;
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
            source: Source::Copied(identity),
            end: start + copied,
        });
        Ok(())
    }

    fn end(&self) -> u64 {
        self.parts.last().map_or(0, |part| part.end)
    }

    /// How many of `parts` (the completion's, in order, as part number and
    /// where it is stored) are this assembly's first ones, as appended.
    fn kept(&self, parts: &[(i32, &StoredPart)]) -> usize {
        let mut start = 0;
        parts
            .iter()
            .zip(&self.parts)
            .enumerate()
            .take_while(|(index, ((number, stored), appended))| {
                let holds = usize::try_from(*number).ok() == Some(index + 1)
                    && appended.is(stored, start, &self.path);
                start = appended.end;
                holds
            })
            .count()
    }

    /// Makes `object` the join of `parts` (the completion's, in order, as
    /// part number and where it is stored) from this assembly: its parts
    /// that are the completion's first ones are kept, the rest appended
    /// from their files, the whole synced and renamed to `object`.
    /// `Ok(false)` when the completion's first part is not the assembly's,
    /// or a part past those kept lives only in the assembly (one the
    /// completion reads, or one cutting the assembly back would lose should
    /// the completion fail): the caller joins the parts itself. Closes the
    /// assembly either way.
    pub fn complete(
        &mut self,
        parts: &[(i32, &StoredPart)],
        object: &Path,
    ) -> std::io::Result<bool> {
        self.closed = true;
        let kept = self.kept(parts);
        let rest = &parts[kept..];
        let only_here = |stored: &StoredPart| !matches!(stored, StoredPart::File(_));
        if kept == 0
            || rest.iter().any(|(_, stored)| only_here(stored))
            || self.parts[kept..]
                .iter()
                .any(|appended| matches!(appended.source, Source::Written))
        {
            return Ok(false);
        }
        let end = self.parts[kept - 1].end;
        let file = self.open()?;
        file.set_len(end)?;
        file.seek(SeekFrom::Start(end))?;
        for (_, stored) in rest {
            std::io::copy(&mut stored.open()?, file)?;
        }
        file.sync_data()?;
        files::rename_durably(&self.path, object)?;
        self.renamed = true;
        Ok(true)
    }
}

impl Drop for Assembly {
    /// An assembly outlives this process's knowledge of it (a restart), but
    /// not its upload: the last holder of an upload completed or aborted
    /// (here or by another process) removes what a part written meanwhile
    /// left.
    fn drop(&mut self) {
        let upload_info = files::upload_info_path(&self.root, &self.upload_id);
        if !self.renamed && !upload_info.exists() {
            let _ = stored_parts::remove_upload_files(&self.root, &self.upload_id);
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
