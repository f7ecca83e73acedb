//! PutObject and GetObject of plain objects in one pass on the blocking pool.
//!
//! s3s-fs writes each PutObject as three files (the object, its attributes,
//! its internal info), each created as a temporary file and renamed into
//! place, and reads a GetObject through five separate trips to the blocking
//! pool and 4 KiB reads. For the registry's small files those trips and file
//! creations are most of what the S3 server costs. Here:
//!
//! - a PutObject of at most [`GATHERED_PUT`] bytes with nothing but a body
//!   (no attributes, conditions or checksums asked for: what the registry
//!   sends) is gathered in memory, then stored in one blocking task as one
//!   file, written as a temporary file and renamed into place (the
//!   attributes and internal info of an earlier object under the key are
//!   removed; the ETag, the md5 of at most 64 KiB, is taken from the
//!   bytes when read, as s3s-fs does for an object without internal info);
//! - a GetObject of an object without attributes (whoever stored it) is
//!   answered from one blocking task that opens the file, reads its
//!   internal info and, up to [`READ_AT_ONCE`] bytes, the body; a longer
//!   body streams from the same open file in large blocks. An object
//!   without a stored ETag is answered here only when its whole body is
//!   read at once, which gives it.
//!
//! Everything else goes to s3s-fs. Both keep the files where s3s-fs does
//! (`s3_files.rs`), so each reads what the other wrote.

use std::io::{Seek as _, SeekFrom};
use std::path::Path;

use bytes::{Bytes, BytesMut};
use md5::{Digest as _, Md5};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::files;

/// The largest PutObject gathered in memory before it is written: with the
/// server's 512 connections, and the registry's instances (at most 64 by
/// default, one S3 request each at a time) answered in process, at most
/// 36 MiB held at once. Larger bodies stream to disk through s3s-fs.
pub const GATHERED_PUT: i64 = 64 * 1024;
/// The largest GetObject body read in the same task that opens the file
/// (one block of a streamed one).
const READ_AT_ONCE: u64 = super::READ_BLOCK as u64;

/// Whether a PutObject is one [`put`] stores: a known length of at most
/// [`GATHERED_PUT`] bytes and nothing besides the body that s3s-fs would
/// keep or check.
pub fn is_plain_put(req: &S3Request<PutObjectInput>) -> bool {
    let i = &req.input;
    let attributes = i.metadata.is_some()
        || i.content_encoding.is_some()
        || i.content_type.is_some()
        || i.content_disposition.is_some()
        || i.content_language.is_some()
        || i.cache_control.is_some()
        || i.expires.is_some()
        || i.website_redirect_location.is_some();
    let conditions = i.if_match.is_some() || i.if_none_match.is_some();
    let checksums = i.checksum_algorithm.is_some()
        || i.checksum_crc32.is_some()
        || i.checksum_crc32c.is_some()
        || i.checksum_sha1.is_some()
        || i.checksum_sha256.is_some()
        || i.checksum_crc64nvme.is_some()
        || req.trailing_headers.is_some();
    !attributes
        && !conditions
        && !checksums
        && i.storage_class.is_none()
        && !i.key.ends_with('/')
        && i.body.is_some()
        && i.content_length
            .is_some_and(|l| (0..=GATHERED_PUT).contains(&l))
}

/// Stores a PutObject [`is_plain_put`] accepted.
pub async fn put(
    root: &Path,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let input = req.input;
    let object = files::object_path(root, &input.bucket, &input.key)?;
    let length = input
        .content_length
        .and_then(|l| usize::try_from(l).ok())
        .ok_or_else(|| s3_error!(MissingContentLength))?;
    let Some(body) = input.body else {
        return Err(s3_error!(IncompleteBody));
    };
    let bytes = gather(body, length).await?;
    let md5 = hex::encode(Md5::digest(&bytes));
    if let Some(content_md5) = &input.content_md5 {
        use base64::Engine as _;
        let given = base64::engine::general_purpose::STANDARD
            .decode(content_md5.trim())
            .map_err(|_| s3_error!(InvalidDigest, "Content-MD5 is not base64"))?;
        if hex::encode(given) != md5 {
            return Err(s3_error!(BadDigest, "content_md5 mismatch"));
        }
    }
    let stored = {
        let root = root.to_path_buf();
        let (bucket, key) = (input.bucket.clone(), input.key.clone());
        tokio::task::spawn_blocking(move || store(&root, &bucket, &key, &object, &bytes)).await
    };
    match stored {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(s3_error!(e, InternalError)),
        Err(e) => return Err(s3_error!(InternalError, "storing the object failed: {e}")),
    }
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(ETag::Strong(md5)),
        ..Default::default()
    }))
}

/// The body, which must be exactly `length` bytes.
async fn gather(mut body: StreamingBlob, length: usize) -> S3Result<Bytes> {
    use futures_util::StreamExt as _;
    let mut gathered = BytesMut::with_capacity(length);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| s3_error!(IncompleteBody, "reading the body: {e}"))?;
        if gathered.len() + chunk.len() > length {
            return Err(s3_error!(
                IncompleteBody,
                "the body is longer than Content-Length"
            ));
        }
        gathered.extend_from_slice(&chunk);
    }
    if gathered.len() != length {
        return Err(s3_error!(
            IncompleteBody,
            "the body is shorter than Content-Length"
        ));
    }
    Ok(gathered.freeze())
}

/// Drops the attributes and internal info of an earlier object under the
/// key, then writes the object. Its ETag is the md5 of so few bytes that
/// readers take it from the object itself (s3s-fs does the same for an
/// object without internal info), which saves a file per object. A crash
/// in between leaves the earlier object without attributes, its ETag then
/// taken from its bytes: never one object's ETag on another.
fn store(root: &Path, bucket: &str, key: &str, object: &Path, bytes: &[u8]) -> std::io::Result<()> {
    for earlier in [
        files::metadata_path(root, bucket, key, None),
        files::internal_info_path(root, bucket, key),
    ] {
        match std::fs::remove_file(earlier) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    files::write_durably(root, object, "put", bytes)
}

/// Answers a GetObject, or `None` when only s3s-fs answers it as it
/// should: the object has attributes, is not there at all, or has no
/// stored ETag and is not read whole here (a range, or more than
/// [`READ_AT_ONCE`] bytes).
pub async fn get(
    root: &Path,
    input: &GetObjectInput,
) -> S3Result<Option<S3Response<GetObjectOutput>>> {
    let object = files::object_path(root, &input.bucket, &input.key)?;
    let info = files::internal_info_path(root, &input.bucket, &input.key);
    let attributes = files::metadata_path(root, &input.bucket, &input.key, None);
    let range = input.range;
    let found = tokio::task::spawn_blocking(move || read(&object, &info, &attributes, range))
        .await
        .map_err(|e| s3_error!(InternalError, "reading the object failed: {e}"))??;
    Ok(found.map(|output| S3Response::new(*output)))
}

/// Opens the object and reads what its answer needs, in one blocking task
/// (`None`: see [`get`]).
fn read(
    object: &Path,
    info: &Path,
    attributes: &Path,
    range: Option<Range>,
) -> S3Result<Option<Box<GetObjectOutput>>> {
    let Ok(mut file) = std::fs::File::open(object) else {
        return Ok(None);
    };
    // s3s-fs writes `{}` for an object without attributes.
    match std::fs::read(attributes) {
        Ok(bytes) if bytes.trim_ascii() != b"{}" => return Ok(None),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    let info = match std::fs::read(info) {
        Ok(bytes) => match serde_json::from_slice::<serde_json::Map<_, _>>(&bytes) {
            Ok(info) => info,
            Err(_) => return Ok(None),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(_) => return Ok(None),
    };
    let metadata = file.metadata().map_err(|e| s3_error!(e, InternalError))?;
    let file_len = metadata.len();
    let (start, length, content_range) = match range {
        None => (0, file_len, None),
        Some(range) => {
            let r = range.check(file_len)?;
            let content_range = format!("bytes {}-{}/{file_len}", r.start, r.end - 1);
            (r.start, r.end - r.start, Some(content_range))
        }
    };
    let whole = length == file_len;
    let stored_e_tag = info
        .get("e_tag")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    // Without a stored ETag, only a whole body read here gives it.
    if stored_e_tag.is_none() && !(whole && length <= READ_AT_ONCE) {
        return Ok(None);
    }
    let (body, e_tag) = if length <= READ_AT_ONCE {
        let bytes = file
            .seek(SeekFrom::Start(start))
            .and_then(|_| super::read_block(&mut file, length))
            .map_err(|e| s3_error!(e, InternalError))?;
        let e_tag = stored_e_tag.unwrap_or_else(|| hex::encode(Md5::digest(&bytes)));
        (StreamingBlob::from(s3s::Body::from(bytes)), e_tag)
    } else {
        let body = StreamingBlob::wrap(super::FileBlocks::spawn(file, start, length));
        (body, stored_e_tag.expect("checked above"))
    };
    // S3 leaves the checksums out of an answer with part of the object.
    let checksum = |name: &str| {
        whole
            .then(|| info.get(name).and_then(|v| v.as_str()).map(str::to_owned))
            .flatten()
    };
    Ok(Some(Box::new(GetObjectOutput {
        body: Some(body),
        content_length: Some(length as i64),
        content_range,
        last_modified: metadata.modified().ok().map(Timestamp::from),
        e_tag: Some(ETag::Strong(e_tag)),
        checksum_crc32: checksum("checksum_crc32"),
        checksum_crc32c: checksum("checksum_crc32c"),
        checksum_sha1: checksum("checksum_sha1"),
        checksum_sha256: checksum("checksum_sha256"),
        checksum_crc64nvme: checksum("checksum_crc64nvme"),
        ..Default::default()
    })))
}

#[cfg(test)]
#[path = "s3_plain_tests.rs"]
mod tests;
