//! ListMultipartUploads and AbortMultipartUpload for the embedded S3 server,
//! which s3s-fs 0.14 lacks (listing) or does only in its own root
//! (aborting), while `genreg gc` serves the bucket from a private root.
//!
//! s3s-fs keeps an open multipart upload as files in the root of the
//! data directory's S3 tree, next to the bucket directory:
//! `.upload-<id>.json` (the upload exists; written when it was initiated),
//! `.bucket-<b64 bucket>.object-<b64 key>.upload-<id>.metadata.json` (which
//! object it builds) and `.upload_id-<id>.part-<n>` (its parts), names in
//! URL-safe base64 without padding.

use std::path::Path;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::files;
use super::stored_parts;

/// One open upload of a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
struct OpenUpload {
    key: String,
    upload_id: String,
    initiated: Option<SystemTime>,
}

/// The uploads of `bucket` open under `root`, by key then id.
fn open_uploads(root: &Path, bucket: &str) -> std::io::Result<Vec<OpenUpload>> {
    let prefix = format!(".bucket-{}.object-", URL_SAFE_NO_PAD.encode(bucket));
    let mut uploads = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let name = entry?.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some((encoded_key, upload_id)) = rest
            .strip_suffix(".metadata.json")
            .and_then(|r| r.split_once(".upload-"))
        else {
            continue;
        };
        let Some(key) = URL_SAFE_NO_PAD
            .decode(encoded_key)
            .ok()
            .and_then(|k| String::from_utf8(k).ok())
        else {
            continue;
        };
        // Completed or aborted: the upload's own file is gone.
        let Ok(info) = std::fs::metadata(files::upload_info_path(root, upload_id)) else {
            continue;
        };
        uploads.push(OpenUpload {
            key,
            upload_id: upload_id.to_string(),
            initiated: info.modified().ok(),
        });
    }
    uploads.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
    Ok(uploads)
}

/// Whether `upload` comes after the markers of a listing request.
fn after_markers(upload: &OpenUpload, key_marker: Option<&str>, id_marker: Option<&str>) -> bool {
    match (key_marker, id_marker) {
        (None, _) => true,
        (Some(key), None) => upload.key.as_str() > key,
        (Some(key), Some(id)) => {
            upload.key.as_str() > key || (upload.key == key && upload.upload_id.as_str() > id)
        }
    }
}

/// ListMultipartUploads (prefix, markers and max-uploads; no delimiter).
pub fn list(
    root: &Path,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    if !root.join(&input.bucket).is_dir() {
        return Err(s3_error!(NoSuchBucket));
    }
    let max = input.max_uploads.unwrap_or(1000).clamp(1, 1000) as usize;
    let prefix = input.prefix.clone().unwrap_or_default();
    let all = open_uploads(root, &input.bucket).map_err(|e| s3_error!(e, InternalError))?;
    let mut matching = all.into_iter().filter(|u| {
        u.key.starts_with(&prefix)
            && after_markers(
                u,
                input.key_marker.as_deref(),
                input.upload_id_marker.as_deref(),
            )
    });
    let page: Vec<OpenUpload> = matching.by_ref().take(max).collect();
    let truncated = matching.next().is_some();
    let last = page.last().filter(|_| truncated);
    let output = ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        next_key_marker: last.map(|u| u.key.clone()),
        next_upload_id_marker: last.map(|u| u.upload_id.clone()),
        uploads: Some(
            page.into_iter()
                .map(|u| MultipartUpload {
                    key: Some(u.key),
                    upload_id: Some(u.upload_id),
                    initiated: u.initiated.map(Timestamp::from),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

/// NoSuchUpload unless `id` names an open upload, as AWS answers a
/// ListParts of an upload completed or aborted (s3s-fs lists no parts).
pub fn ensure_open(root: &Path, id: &str) -> S3Result<()> {
    if well_formed(id) && files::upload_info_path(root, id).is_file() {
        Ok(())
    } else {
        Err(s3_error!(NoSuchUpload))
    }
}

/// NoSuchUpload unless the upload is open; AccessDenied when another access
/// key created it (s3s-fs's rule).
pub fn ensure_owner(root: &Path, id: &str, access_key: Option<&str>) -> S3Result<()> {
    if !well_formed(id) {
        return Err(s3_error!(NoSuchUpload));
    }
    let content = match std::fs::read(files::upload_info_path(root, id)) {
        Ok(content) => content,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(s3_error!(NoSuchUpload)),
        Err(e) => return Err(s3_error!(e, InternalError)),
    };
    let owner: Option<String> =
        serde_json::from_slice(&content).map_err(|e| s3_error!(e, InternalError))?;
    if owner.as_deref() == access_key {
        Ok(())
    } else {
        Err(s3_error!(AccessDenied))
    }
}

/// Upload ids are s3s-fs's UUIDs: never a path.
fn well_formed(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// AbortMultipartUpload: removes the upload's parts (with the markers and
/// assembly of those written in order, `s3_stored_parts.rs`), its metadata
/// and the upload itself (last, so a failure leaves it listed and retried
/// later).
pub fn abort(
    root: &Path,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = req.input;
    let id = input.upload_id.as_str();
    // Upload ids are s3s-fs's UUIDs: never a path.
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(s3_error!(NoSuchUpload));
    }
    let info = files::upload_info_path(root, id);
    if !info.is_file() {
        return Err(s3_error!(NoSuchUpload));
    }
    let metadata = files::metadata_path(root, &input.bucket, &input.key, Some(id));
    let remove = |path: &Path| match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(s3_error!(e, InternalError)),
        _ => Ok(()),
    };
    stored_parts::remove_upload_files(root, id).map_err(|e| s3_error!(e, InternalError))?;
    remove(&metadata)?;
    remove(&info)?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, name: &str) {
        std::fs::write(root.join(name), b"x").unwrap();
    }

    fn upload(root: &Path, key: &str, id: &str) {
        touch(root, &format!(".upload-{id}.json"));
        let b = URL_SAFE_NO_PAD.encode("genreg");
        let k = URL_SAFE_NO_PAD.encode(key);
        touch(
            root,
            &format!(".bucket-{b}.object-{k}.upload-{id}.metadata.json"),
        );
        touch(root, &format!(".upload_id-{id}.part-1"));
    }

    #[test]
    fn only_open_uploads_have_parts_to_list() {
        let root = tempfile::tempdir().unwrap();
        upload(root.path(), "files/a", "ab-12");
        assert!(ensure_open(root.path(), "ab-12").is_ok());
        assert!(ensure_open(root.path(), "cd-34").is_err());
        assert!(ensure_open(root.path(), "").is_err());
        touch(root.path(), ".upload-..json");
        assert!(ensure_open(root.path(), ".").is_err());
    }

    #[test]
    fn open_uploads_are_found_by_their_files() {
        let root = tempfile::tempdir().unwrap();
        upload(root.path(), "files/b", "22");
        upload(root.path(), "files/a", "11");
        // Completed: its upload file is gone.
        upload(root.path(), "files/c", "33");
        std::fs::remove_file(root.path().join(".upload-33.json")).unwrap();
        let found = open_uploads(root.path(), "genreg").unwrap();
        let keys: Vec<_> = found
            .iter()
            .map(|u| (u.key.as_str(), u.upload_id.as_str()))
            .collect();
        assert_eq!(keys, [("files/a", "11"), ("files/b", "22")]);
        assert!(found[0].initiated.is_some());
        assert!(open_uploads(root.path(), "other").unwrap().is_empty());
    }

    #[test]
    fn markers_continue_after_the_last_listed_upload() {
        let u = |key: &str, id: &str| OpenUpload {
            key: key.into(),
            upload_id: id.into(),
            initiated: None,
        };
        assert!(after_markers(&u("b", "1"), None, None));
        assert!(after_markers(&u("b", "1"), Some("a"), None));
        assert!(!after_markers(&u("b", "1"), Some("b"), None));
        assert!(after_markers(&u("b", "2"), Some("b"), Some("1")));
        assert!(!after_markers(&u("b", "1"), Some("b"), Some("1")));
    }
}
