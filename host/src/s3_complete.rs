//! CompleteMultipartUpload that joins the parts without reading them.
//!
//! s3s-fs reads every part back through 64 KiB async reads, hashes it with
//! md5 and writes it out again: for a 1 GiB upload that is a second pass
//! over the bytes costing more CPU than storing them did. Here the parts'
//! ETags are the ones UploadPart already answered ([`PartEtags`]), and the
//! parts are appended to the object with `std::io::copy`, which moves file
//! to file inside the kernel (`copy_file_range` on Linux) on the blocking
//! pool. The files are the ones s3s-fs keeps, so everything else (GetObject,
//! ListParts, AbortMultipartUpload, genreg gc) sees what s3s-fs would have
//! left:
//!
//! - the object at `<root>/<bucket>/<key>`, written to a temporary file
//!   s3s-fs removes when it starts, then renamed into place;
//! - the upload's metadata moved to the object's, its ETag
//!   (md5 of the parts' ETags, `-<count>`) in the object's internal info;
//! - the upload's own file removed, then its parts (their files, the
//!   markers of those written into the assembly, the assembly), last.
//!
//! When the parts were joined ahead as they arrived (`s3_assembly.rs`),
//! that copy becomes the object instead, with the parts it lacks appended.
//!
//! Unlike s3s-fs, nothing of the upload is removed before the object is in
//! place, so a failed join leaves the upload whole (to retry or abort), and
//! the request's ETags must match the stored parts, as AWS requires
//! (InvalidPart otherwise). The ETags this server answered before its
//! parts were tagged by XXH3 (their md5, then the head of their SHA-256)
//! still match, so an upload begun before an upgrade completes.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use md5::{Digest as _, Md5};
use s3s::dto::{CompleteMultipartUploadInput, CompleteMultipartUploadOutput, ETag};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::assembly::{lock, Assemblies};
use super::files;
use super::part_etags::{part_path, PartEtags};
use super::parts;
use super::stored_parts::{self, StoredPart};
use super::uploads;

/// S3's smallest part but the last.
const MIN_PART_SIZE: u64 = 5 << 20;

/// Uploads being completed now, so a second CompleteMultipartUpload of the
/// same upload does not race the first for its parts.
#[derive(Default)]
pub struct Completing {
    uploads: Mutex<HashSet<String>>,
}

/// Marks an upload as being completed until dropped.
struct CompletingGuard<'a> {
    set: &'a Completing,
    upload_id: String,
}

impl Completing {
    fn begin(&self, upload_id: &str) -> Option<CompletingGuard<'_>> {
        let mut uploads = lock(&self.uploads);
        uploads
            .insert(upload_id.to_string())
            .then(|| CompletingGuard {
                set: self,
                upload_id: upload_id.to_string(),
            })
    }
}

impl Drop for CompletingGuard<'_> {
    fn drop(&mut self) {
        let mut uploads = lock(&self.set.uploads);
        uploads.remove(&self.upload_id);
    }
}

/// Whether s3s-fs must answer this request itself: conditional writes
/// (`If-Match`, `If-None-Match`) are its to check.
pub fn needs_s3s_fs(input: &CompleteMultipartUploadInput) -> bool {
    input.if_match.is_some() || input.if_none_match.is_some()
}

/// One part to join, checked.
struct CheckedPart {
    number: i32,
    stored: StoredPart,
    /// The part's ETag, as bytes.
    etag: [u8; 16],
}

/// CompleteMultipartUpload over s3s-fs's files under `root`.
pub async fn complete(
    root: &Path,
    etags: &PartEtags,
    completing: &Completing,
    assemblies: &Assemblies,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let input = req.input;
    let upload_id = input.upload_id.as_str();
    uploads::ensure_owner(
        root,
        upload_id,
        req.credentials.as_ref().map(|c| c.access_key.as_str()),
    )?;
    let Some(_guard) = completing.begin(upload_id) else {
        return Err(s3_error!(
            OperationAborted,
            "This multipart upload is being completed by another request."
        ));
    };
    let parts = check_parts(root, etags, &input).await?;
    let object = files::object_path(root, &input.bucket, &input.key)?;
    let e_tag = multipart_etag(&parts);
    let assembly = assemblies.take(root, upload_id);
    let (root_owned, upload) = (root.to_path_buf(), upload_id.to_string());
    let (bucket, key) = (input.bucket.clone(), input.key.clone());
    let joined = {
        let e_tag = e_tag.clone();
        tokio::task::spawn_blocking(move || {
            let numbered: Vec<(i32, &StoredPart)> =
                parts.iter().map(|p| (p.number, &p.stored)).collect();
            let assembled = match &assembly {
                Some(shared) => shared.assembly().complete(&numbered, &object)?,
                None => false,
            };
            if !assembled {
                let stored: Vec<&StoredPart> = parts.iter().map(|p| &p.stored).collect();
                join_parts(&root_owned, &stored, &object)?;
            }
            finish_object(&root_owned, &bucket, &key, &upload, &e_tag)?;
            remove_upload(&root_owned, &upload);
            Ok::<_, std::io::Error>(())
        })
        .await
    };
    match joined {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(s3_error!(e, InternalError)),
        Err(e) => return Err(s3_error!(InternalError, "joining the parts failed: {e}")),
    }
    etags.forget_upload(root, upload_id);
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        e_tag: Some(ETag::Strong(e_tag)),
        ..Default::default()
    }))
}

/// The request's parts, ascending, each stored, large enough and with the
/// ETag UploadPart answered for it.
async fn check_parts(
    root: &Path,
    etags: &PartEtags,
    input: &CompleteMultipartUploadInput,
) -> S3Result<Vec<CheckedPart>> {
    let listed = input
        .multipart_upload
        .as_ref()
        .and_then(|m| m.parts.as_ref())
        .filter(|parts| !parts.is_empty())
        .ok_or_else(|| s3_error!(InvalidPart, "You must specify at least one part"))?;
    let mut checked = Vec::with_capacity(listed.len());
    let mut previous = 0;
    for (index, part) in listed.iter().enumerate() {
        let number = part
            .part_number
            .ok_or_else(|| s3_error!(InvalidRequest, "missing part number"))?;
        if number <= previous {
            return Err(s3_error!(InvalidPartOrder));
        }
        previous = number;
        let path = part_path(root, &input.upload_id, number);
        let (stored_part, size) = stored_parts::stored_part(root, &input.upload_id, number)
            .and_then(|stored| {
                let size = stored.len()?;
                Some((stored, size))
            })
            .ok_or_else(|| s3_error!(InvalidPart, "part {number} was not uploaded"))?;
        if index + 1 < listed.len() && size < MIN_PART_SIZE {
            return Err(s3_error!(EntityTooSmall));
        }
        let stored = etags
            .etag_of(root, &input.upload_id, number)
            .await
            .and_then(|etag| etag_bytes(&etag))
            .ok_or_else(|| s3_error!(InvalidPart, "part {number} cannot be read"))?;
        let given = part.e_tag.as_ref().and_then(|e| match e {
            ETag::Strong(v) | ETag::Weak(v) => etag_bytes(v),
        });
        let etag = match given {
            Some(given) if given == stored => given,
            // Hashing the part again is kept for parts that may need it.
            Some(given)
                if etags.stored_before_start(&path) && answered_earlier(&path, given).await =>
            {
                given
            }
            _ => {
                return Err(s3_error!(
                    InvalidPart,
                    "the ETag of part {number} does not match the stored part"
                ))
            }
        };
        checked.push(CheckedPart {
            number,
            stored: stored_part,
            etag,
        });
    }
    Ok(checked)
}

/// Whether `given` is the ETag an earlier version of this server answered
/// for the part at `path`, so that an upload begun before an upgrade still
/// completes. Hashes the part again on the blocking pool: asked only for a
/// part stored before this server started whose ETag does not match.
async fn answered_earlier(path: &Path, given: [u8; 16]) -> bool {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || parts::earlier_etags_of_file(&path))
        .await
        .ok()
        .flatten()
        .is_some_and(|earlier| earlier.contains(&given))
}

/// The 16 bytes a part's ETag spells in hex (`s3_parts.rs`).
fn etag_bytes(etag: &str) -> Option<[u8; 16]> {
    let mut bytes = [0u8; 16];
    hex::decode_to_slice(etag.trim_matches('"'), &mut bytes).ok()?;
    Some(bytes)
}

/// A multipart object's ETag in S3's form: the md5 of the parts' ETags
/// (AWS's are the parts' md5s), a dash and the number of parts.
fn multipart_etag(parts: &[CheckedPart]) -> String {
    let mut hasher = Md5::new();
    for part in parts {
        hasher.update(part.etag);
    }
    format!("{}-{}", hex::encode(hasher.finalize()), parts.len())
}

/// Appends the parts into a temporary file and renames it to `object`.
fn join_parts(root: &Path, parts: &[&StoredPart], object: &Path) -> std::io::Result<()> {
    files::with_temporary(root, "join", |temporary| {
        let mut joined = std::fs::File::create_new(temporary)?;
        for part in parts {
            std::io::copy(&mut part.open()?, &mut joined)?;
        }
        joined.sync_data()?;
        files::rename_durably(temporary, object)
    })
}

/// Gives the object the upload's metadata and its ETag, as s3s-fs does.
fn finish_object(
    root: &Path,
    bucket: &str,
    key: &str,
    upload_id: &str,
    e_tag: &str,
) -> std::io::Result<()> {
    let upload_metadata = files::metadata_path(root, bucket, key, Some(upload_id));
    match std::fs::rename(
        &upload_metadata,
        files::metadata_path(root, bucket, key, None),
    ) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let info_path = files::internal_info_path(root, bucket, key);
    let mut info: serde_json::Map<String, serde_json::Value> = match std::fs::read(&info_path) {
        Ok(content) => serde_json::from_slice(&content).unwrap_or_default(),
        Err(_) => Default::default(),
    };
    info.insert("e_tag".into(), serde_json::Value::String(e_tag.into()));
    files::write_replacing(root, &info_path, "info", &serde_json::to_vec(&info)?)
}

/// Removes the upload's own file, then its parts, their markers and its
/// assembly: the upload is done.
fn remove_upload(root: &Path, upload_id: &str) {
    if let Err(e) = std::fs::remove_file(files::upload_info_path(root, upload_id)) {
        eprintln!("warning: completed upload {upload_id}: {e}");
    }
    if let Err(e) = stored_parts::remove_upload_files(root, upload_id) {
        eprintln!("warning: removing the parts of completed upload {upload_id}: {e}");
    }
}

#[cfg(test)]
#[path = "s3_complete_tests.rs"]
mod tests;
