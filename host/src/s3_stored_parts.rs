//! Where a multipart upload's part is stored: in its own file, as s3s-fs
//! keeps it, or as a range of the upload's assembly.
//!
//! A part that arrives in order (every part numbered before it is in the
//! assembly already) is written straight into the assembly
//! (`s3_assembly.rs`), so its bytes reach the page cache and the disk once
//! instead of twice. It then has no file of its own; a marker file,
//! `.upload_id-<id>.assembled-<n>`, holds where in the assembly
//! (`.upload_id-<id>.assembly`) it lies, as `<start> <end>`.
//!
//! The rule that makes this safe: **a part's own file, when there is one,
//! is the part.** A marker counts only while no file of that number
//! exists, so a part stored again (always as a file: the assembly only
//! grows at its end) replaces the assembled one, whatever the order in
//! which a crash left the files. A marker is written only after its bytes
//! are in the assembly, and the assembly only grows, so a marker never
//! points at bytes that are not its part's. Both names start with the
//! upload's part prefix, so an abort (`s3_uploads.rs`) and a completion
//! remove them with the parts; s3s-fs's own ListParts skips them (they are
//! not `.part-<n>`), and the listing adds the assembled parts back
//! (`add_assembled`).
//!
//! What a crash between two steps leaves:
//! - between a part's bytes and its marker: bytes past the last marked
//!   part, which no marker names (the part was not acknowledged);
//! - in a completion, after the assembly was renamed into the object and
//!   before the upload's files went: markers that name bytes of an
//!   assembly that is gone, so their parts count as not stored, and the
//!   upload is aborted later (`genreg gc`), as the registry never recorded
//!   the object.

use std::fs::File;
use std::io::{Read, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use s3s::dto::{ListPartsOutput, Part, Timestamp};

use super::files;
use super::part_etags::part_path;

/// The upload's assembly: its parts joined in order (`s3_assembly.rs`).
pub fn assembly_path(root: &Path, upload_id: &str) -> PathBuf {
    root.join(format!(".upload_id-{upload_id}.assembly"))
}

/// Where the marker of part `number`, written into the assembly, lives.
pub fn marker_path(root: &Path, upload_id: &str, number: i32) -> PathBuf {
    root.join(format!(".upload_id-{upload_id}.assembled-{number}"))
}

/// The marker that stands for the part file `part` when it has none.
pub fn marker_of_part_path(part: &Path) -> Option<PathBuf> {
    let name = part.file_name()?.to_str()?;
    let (upload, number) = name.rsplit_once(".part-")?;
    Some(part.with_file_name(format!("{upload}.assembled-{number}")))
}

/// Part `number` of `upload_id` as stored under `root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredPart {
    /// Its own file.
    File(PathBuf),
    /// Bytes `start..end` of the upload's assembly.
    Assembled {
        assembly: PathBuf,
        start: u64,
        end: u64,
    },
}

/// Where part `number` of `upload_id` is: its file if it has one, else the
/// range its marker names, if the assembly holds it. `None` when the part
/// was not stored.
pub fn stored_part(root: &Path, upload_id: &str, number: i32) -> Option<StoredPart> {
    let file = part_path(root, upload_id, number);
    if std::fs::metadata(&file).is_ok_and(|m| m.is_file()) {
        return Some(StoredPart::File(file));
    }
    let (start, end) = read_marker(&marker_path(root, upload_id, number))?;
    let assembly = assembly_path(root, upload_id);
    let held = std::fs::metadata(&assembly).ok()?.len();
    (end <= held).then_some(StoredPart::Assembled {
        assembly,
        start,
        end,
    })
}

impl StoredPart {
    /// The part's size in bytes; `None` when its file is gone.
    pub fn len(&self) -> Option<u64> {
        match self {
            StoredPart::File(path) => std::fs::metadata(path).ok().map(|m| m.len()),
            StoredPart::Assembled { start, end, .. } => Some(end - start),
        }
    }

    /// The part's bytes, to read from the start.
    pub fn open(&self) -> std::io::Result<std::io::Take<File>> {
        match self {
            StoredPart::File(path) => {
                let file = File::open(path)?;
                let len = file.metadata()?.len();
                Ok(file.take(len))
            }
            StoredPart::Assembled {
                assembly,
                start,
                end,
            } => {
                let mut file = File::open(assembly)?;
                file.seek(SeekFrom::Start(*start))?;
                Ok(file.take(end - start))
            }
        }
    }
}

/// Records that part `number` is bytes `start..end` of the assembly; the
/// bytes must be written already.
pub fn write_marker(
    root: &Path,
    upload_id: &str,
    number: i32,
    start: u64,
    end: u64,
) -> std::io::Result<()> {
    files::write_replacing(
        root,
        &marker_path(root, upload_id, number),
        "marker",
        format!("{start} {end}").as_bytes(),
    )
}

fn read_marker(path: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (start, end) = text.trim().split_once(' ')?;
    let (start, end) = (start.parse().ok()?, end.parse().ok()?);
    (start <= end).then_some((start, end))
}

/// The parts of `upload_id` that live only in the assembly (a marker and
/// no file), with the time each was stored.
fn assembled_parts(root: &Path, upload_id: &str) -> Vec<(i32, StoredPart, SystemTime)> {
    let prefix = format!(".upload_id-{upload_id}.assembled-");
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut parts = Vec::new();
    for entry in entries.map_while(Result::ok) {
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Some(part @ StoredPart::Assembled { .. }) = stored_part(root, upload_id, number) else {
            continue; // Its file is the part.
        };
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        parts.push((number, part, modified));
    }
    parts
}

/// Adds to s3s-fs's ListParts answer (which lists the parts' files) the
/// parts that live only in the assembly, with their size and the time
/// they were stored.
pub fn add_assembled(root: &Path, upload_id: &str, output: &mut ListPartsOutput) {
    let listed = output.parts.get_or_insert_with(Vec::new);
    for (number, part, modified) in assembled_parts(root, upload_id) {
        listed.push(Part {
            part_number: Some(number),
            size: part.len().and_then(|len| i64::try_from(len).ok()),
            last_modified: Some(Timestamp::from(modified)),
            ..Default::default()
        });
    }
}

/// Gives every part of `upload_id` that lives only in the assembly a file
/// of its own (copied out, then renamed into place), for a reader that
/// knows only parts' files: s3s-fs's CompleteMultipartUpload.
pub fn give_assembled_parts_files(root: &Path, upload_id: &str) -> std::io::Result<()> {
    for (number, part, _) in assembled_parts(root, upload_id) {
        let path = part_path(root, upload_id, number);
        files::with_temporary(root, "part", |temporary| {
            let mut copy = File::create_new(temporary)?;
            std::io::copy(&mut part.open()?, &mut copy)?;
            files::rename_creating_dir(temporary, &path).map(drop)
        })?;
    }
    Ok(())
}

/// Removes every file of `upload_id`'s parts under `root`: parts, markers
/// and the assembly. Answers the first failure but for files already gone.
pub fn remove_upload_files(root: &Path, upload_id: &str) -> std::io::Result<()> {
    let prefix = format!(".upload_id-{upload_id}.");
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix))
        {
            match std::fs::remove_file(entry.path()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_its_file_when_it_has_one_else_its_range_of_the_assembly() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(stored_part(root, "u", 1), None);

        std::fs::write(assembly_path(root, "u"), b"firstsecond").unwrap();
        write_marker(root, "u", 1, 0, 5).unwrap();
        write_marker(root, "u", 2, 5, 11).unwrap();
        let read = |number| {
            let mut bytes = Vec::new();
            let part = stored_part(root, "u", number).unwrap();
            part.open().unwrap().read_to_end(&mut bytes).unwrap();
            assert_eq!(part.len(), Some(bytes.len() as u64));
            bytes
        };
        assert_eq!(read(1), b"first");
        assert_eq!(read(2), b"second");

        // Stored again: the file is the part.
        std::fs::write(part_path(root, "u", 2), b"again").unwrap();
        assert_eq!(read(2), b"again");
        assert_eq!(
            stored_part(root, "u", 2),
            Some(StoredPart::File(part_path(root, "u", 2)))
        );

        // A marker past the assembly's end names no part.
        write_marker(root, "u", 3, 11, 20).unwrap();
        assert_eq!(stored_part(root, "u", 3), None);
        std::fs::write(marker_path(root, "u", 4), b"garbage").unwrap();
        assert_eq!(stored_part(root, "u", 4), None);

        // The assembly gone (renamed into its object): its parts with it.
        std::fs::remove_file(assembly_path(root, "u")).unwrap();
        assert_eq!(stored_part(root, "u", 1), None);
        assert!(stored_part(root, "u", 2).is_some(), "a file is its part");
    }

    #[test]
    fn assembled_parts_are_listed_and_given_files_and_all_go_with_the_upload() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(assembly_path(root, "u"), b"firstsecond").unwrap();
        write_marker(root, "u", 1, 0, 5).unwrap();
        write_marker(root, "u", 2, 5, 11).unwrap();
        std::fs::write(part_path(root, "u", 2), b"again").unwrap();
        std::fs::write(part_path(root, "other", 1), b"theirs").unwrap();

        let mut listed = ListPartsOutput::default();
        add_assembled(root, "u", &mut listed);
        let parts = listed.parts.unwrap();
        let listed: Vec<_> = parts.iter().map(|p| (p.part_number, p.size)).collect();
        // Part 2 has its file, which s3s-fs lists.
        assert_eq!(listed, [(Some(1), Some(5))]);

        give_assembled_parts_files(root, "u").unwrap();
        assert_eq!(std::fs::read(part_path(root, "u", 1)).unwrap(), b"first");
        assert_eq!(std::fs::read(part_path(root, "u", 2)).unwrap(), b"again");

        remove_upload_files(root, "u").unwrap();
        let left: Vec<_> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, [".upload_id-other.part-1"]);
    }

    #[test]
    fn a_part_file_names_its_marker() {
        let root = Path::new("/data");
        assert_eq!(
            marker_of_part_path(&part_path(root, "u-1", 12)),
            Some(marker_path(root, "u-1", 12))
        );
        assert_eq!(marker_of_part_path(Path::new("/data/object")), None);
    }
}
