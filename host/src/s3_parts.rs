//! UploadPart: the part's body written to a temporary file and hashed once,
//! on one blocking task, then renamed into place when it checks out.
//!
//! A part's ETag is its 128-bit XXH3, in hex, where s3s-fs (like AWS)
//! answers the part's md5. S3 documents an ETag as an opaque tag of the
//! stored bytes, not as a digest its clients may recompute; they send it
//! back in CompleteMultipartUpload, which checks it against the stored part
//! (`s3_complete.rs`). XXH3 is no cryptographic digest and need not be
//! one: the tag tells stored parts apart, while the registry checks the
//! file's own digests. It costs about 0.1 CPU-second per GiB, where the
//! SHA-256 it replaced cost 0.7 (8% of an upload's server CPU). A part
//! sent with `x-amz-checksum-sha256` (upload sessions) or `Content-MD5` is
//! hashed with that digest as well, and checked.

use std::io::Write as _;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use md5::Md5;
use s3s::dto::{ETag, UploadPartInput, UploadPartOutput};
use s3s::{s3_error, S3Request, S3Response, S3Result};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use xxhash_rust::xxh3::Xxh3Default;

use super::assembly::{Assemblies, Shared};
use super::files;
use super::part_etags::part_path;
use super::stored_parts::StoredPart;
use super::uploads;

/// The highest part number S3 accepts.
const MAX_PART_NUMBER: i32 = 10_000;
/// Chunks of the body queued for the writer before the sender waits. A
/// part in flight holds these, the chunk being written, the one being
/// received and the writer's buffer: with the component's chunks of at
/// most 1 MiB (wasmtime's outgoing body budget), under 4.5 MiB.
const CHUNKS_AHEAD: usize = 2;
/// The writer's buffer, so that a client's small chunks reach the file in
/// fewer writes.
const WRITE_BUFFER: usize = 256 << 10;

/// What the writer is handed: the body's chunks, then its end. A queue
/// closed before the end means the body broke off: the part is not kept.
enum Piece {
    Chunk(Bytes),
    End,
}

/// What the part must match, from the request's headers.
struct Expected {
    length: Option<u64>,
    /// From `x-amz-checksum-sha256`.
    sha256: Option<Vec<u8>>,
    /// From `Content-MD5`.
    md5: Option<Vec<u8>>,
}

impl Expected {
    /// Decodes the digests' base64 before any byte is stored: AWS refuses
    /// a `Content-MD5` that is no base64 with InvalidDigest, such an
    /// `x-amz-checksum-sha256` with InvalidRequest.
    fn of(input: &UploadPartInput) -> S3Result<Self> {
        let decode = |value: &Option<String>| {
            value
                .as_ref()
                .map(|v| STANDARD.decode(v.trim()).map_err(|_| ()))
                .transpose()
        };
        let md5 = decode(&input.content_md5)
            .map_err(|()| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))?;
        let sha256 = decode(&input.checksum_sha256).map_err(|()| {
            s3_error!(
                InvalidRequest,
                "Value for x-amz-checksum-sha256 header is invalid."
            )
        })?;
        Ok(Expected {
            length: input.content_length.and_then(|l| u64::try_from(l).ok()),
            sha256,
            md5,
        })
    }
}

/// Stores part `part_number` of an open upload under `root`: written into
/// the upload's assembly when it comes in order (`s3_assembly.rs`), else
/// as a file of its own.
pub async fn upload(
    root: &Path,
    assemblies: &Assemblies,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let access_key = req.credentials.as_ref().map(|c| c.access_key.clone());
    let input = req.input;
    let number = input.part_number;
    if !(1..=MAX_PART_NUMBER).contains(&number) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    uploads::ensure_owner(root, &input.upload_id, access_key.as_deref())?;
    let expected = Expected::of(&input)?;
    let mut body = input.body.ok_or_else(|| s3_error!(IncompleteBody))?;
    let assembly = assemblies.of(root, &input.upload_id);
    let (root, upload_id) = (root.to_path_buf(), input.upload_id);

    let (tx, rx) = mpsc::channel(CHUNKS_AHEAD);
    let writer = tokio::task::spawn_blocking(move || {
        store(rx, &root, &upload_id, number, &assembly, &expected)
    });
    let mut broke_off = None;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => {
                if tx.send(Piece::Chunk(chunk)).await.is_err() {
                    break; // The writer failed; it says why.
                }
            }
            Err(e) => {
                broke_off = Some(e.to_string());
                break;
            }
        }
    }
    if broke_off.is_none() {
        let _ = tx.send(Piece::End).await;
    }
    drop(tx);
    let stored = writer
        .await
        .map_err(|e| s3_error!(InternalError, "storing the part failed: {e}"))?;
    if let Some(e) = broke_off {
        return Err(s3_error!(IncompleteBody, "reading the body: {e}"));
    }
    let etag = stored?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(etag)),
        ..Default::default()
    }))
}

/// Writes the pieces, hashing them, at the end of the upload's assembly
/// when the part comes in order, else to a temporary file in `root`
/// renamed to the part's path once it checks out against `expected`.
/// Answers the part's ETag; on any failure nothing of it is kept.
fn store(
    mut rx: mpsc::Receiver<Piece>,
    root: &Path,
    upload_id: &str,
    number: i32,
    assembly: &Shared,
    expected: &Expected,
) -> S3Result<String> {
    if let Some(mut in_order) = assembly.write_in_order(number) {
        return match receive(&mut rx, in_order.file(), expected) {
            Ok((etag, length)) => {
                in_order
                    .keep(length)
                    .map_err(|e| s3_error!(e, InternalError))?;
                Ok(etag)
            }
            Err(e) => {
                in_order.discard();
                Err(e)
            }
        };
    }
    let path = part_path(root, upload_id, number);
    files::with_temporary(root, "part", |temporary| {
        let mut file = std::fs::File::create(temporary).map_err(|e| s3_error!(e, InternalError))?;
        let (etag, _) = receive(&mut rx, &mut file, expected)?;
        files::rename_creating_dir(temporary, &path).map_err(|e| s3_error!(e, InternalError))?;
        Ok(etag)
    })
}

/// Writes the pieces to `file` where it stands, hashing them; at the end
/// checks them against `expected`. Answers the part's ETag and length.
fn receive(
    rx: &mut mpsc::Receiver<Piece>,
    file: &mut std::fs::File,
    expected: &Expected,
) -> S3Result<(String, u64)> {
    let mut file = std::io::BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut tag = Xxh3Default::new();
    let mut sha256 = expected.sha256.as_ref().map(|_| Sha256::new());
    let mut md5 = expected.md5.as_ref().map(|_| Md5::default());
    let mut length = 0u64;
    loop {
        match rx.blocking_recv() {
            Some(Piece::Chunk(chunk)) => {
                tag.update(&chunk);
                if let Some(sha256) = sha256.as_mut() {
                    sha256.update(&chunk);
                }
                if let Some(md5) = md5.as_mut() {
                    md5::Digest::update(md5, &chunk);
                }
                length += chunk.len() as u64;
                if expected.length.is_some_and(|l| length > l) {
                    return Err(too_long_or_short());
                }
                file.write_all(&chunk)
                    .map_err(|e| s3_error!(e, InternalError))?;
            }
            Some(Piece::End) => break,
            None => return Err(s3_error!(IncompleteBody, "the body broke off")),
        }
    }
    file.flush().map_err(|e| s3_error!(e, InternalError))?;
    if expected.length.is_some_and(|l| l != length) {
        return Err(too_long_or_short());
    }
    if let (Some(given), Some(md5)) = (&expected.md5, md5) {
        if md5::Digest::finalize(md5)[..] != given[..] {
            return Err(s3_error!(
                BadDigest,
                "The Content-MD5 you specified did not match what was received."
            ));
        }
    }
    if let (Some(given), Some(sha256)) = (&expected.sha256, sha256) {
        if sha256.finalize()[..] != given[..] {
            return Err(s3_error!(
                BadDigest,
                "The x-amz-checksum-sha256 you specified did not match the calculated checksum."
            ));
        }
    }
    Ok((etag_of(&tag), length))
}

fn too_long_or_short() -> s3s::S3Error {
    s3_error!(IncompleteBody, "the body does not match Content-Length")
}

/// A part's ETag from the hash of its bytes.
fn etag_of(tag: &Xxh3Default) -> String {
    format!("{:032x}", tag.digest128())
}

/// The ETag of a stored part, hashed from its bytes; `None` when they
/// cannot be read.
pub fn etag_of_stored(part: &StoredPart) -> Option<String> {
    let mut tag = Xxh3Default::new();
    read_all(part.open().ok()?, |bytes| tag.update(bytes))?;
    Some(etag_of(&tag))
}

/// The ETags earlier versions of this server answered for the part stored
/// at `path`, as bytes: its md5 (s3s-fs's own) and the first 128 bits of
/// its SHA-256. A client may hold one of them for a part stored before an
/// upgrade. `None` when the file cannot be read.
pub fn earlier_etags_of_file(path: &Path) -> Option<[[u8; 16]; 2]> {
    let (mut md5, mut sha256) = (Md5::default(), Sha256::new());
    read_file(path, |bytes| {
        md5::Digest::update(&mut md5, bytes);
        sha256.update(bytes);
    })?;
    let mut head = [0; 16];
    head.copy_from_slice(&sha256.finalize()[..16]);
    Some([md5::Digest::finalize(md5).into(), head])
}

/// Hands the file at `path` to `take` in pieces; `None` when it cannot be
/// read.
fn read_file(path: &Path, take: impl FnMut(&[u8])) -> Option<()> {
    read_all(std::fs::File::open(path).ok()?, take)
}

/// Hands what `source` reads to `take` in pieces; `None` when it fails.
fn read_all(mut source: impl std::io::Read, mut take: impl FnMut(&[u8])) -> Option<()> {
    let mut buffer = vec![0; WRITE_BUFFER];
    loop {
        match source.read(&mut buffer).ok()? {
            0 => return Some(()),
            n => take(&buffer[..n]),
        }
    }
}

#[cfg(test)]
#[path = "s3_parts_tests.rs"]
mod tests;
