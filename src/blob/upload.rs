//! Streaming a request body into object storage while checksumming it.
//!
//! - A body known to fit in one part goes up as one PUT, streamed.
//! - A larger body goes up as a multipart upload. With a known length every
//!   part's size is known in advance, so parts are streamed too; a chunked
//!   body of unknown length is read into one part buffer at a time (S3 needs
//!   each part's length up front), allocated once at the part's exact size
//!   and reused. Part sizes grow so that every body fits S3's 10,000 parts
//!   ([`super::parts`]).
//! - Every request is signed when it is sent, so an upload may take as long
//!   as it takes.
//! - Any failure aborts the multipart upload (retried a few times) or
//!   deletes the single object, so a failed publish leaves nothing behind;
//!   what a crash or a dead S3 still leaves, `genreg gc` collects.
//! - A body that proves large hands its SHA-256 to a helper instance when
//!   one can be had ([`super::sha256_helper`]).

use super::blobs::Blobs;
use super::parts::{self, MAX_OBJECT_SIZE, MAX_PARTS};
use super::sha256_helper::{Hashing, Sha256Helper};
use super::store::{ObjectStore, StoreError};
use crate::checksum::{Checksums, Digests};
use crate::http::ByteSource;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the file is larger than the maximum file size")]
    TooLarge,
    /// The client's body broke off; the detail is for the log only.
    #[error("the client stopped sending: {0}")]
    ClientGone(String),
    #[error("the body does not match Content-Length")]
    LengthMismatch,
    #[error("the body does not match X-Checksum-SHA256")]
    ChecksumMismatch,
    #[error("object storage: {0}")]
    Storage(#[from] StoreError),
    /// The helper instance hashing the body's SHA-256 failed.
    #[error("the SHA-256 helper instance failed: {0}")]
    Helper(String),
}

/// Where and how to upload.
pub(super) struct Upload<'a> {
    pub blobs: &'a Blobs<'a>,
    pub key: &'a str,
    /// The configured part size: the smallest parts are.
    pub part_size: u64,
    pub max_size: Option<u64>,
    /// Lowercase hex; when set, a body with another SHA-256 is not kept.
    pub expected_sha256: Option<&'a str>,
    pub sha256_helper: Option<&'a dyn Sha256Helper>,
}

/// How a multipart upload's parts are cut.
enum Parts {
    /// A body of known length, streamed in parts of this size.
    Streamed { size: u64, total: u64 },
    /// A chunked body, read into this buffer one part at a time; it holds
    /// the first part already.
    Buffered(Vec<u8>),
}

impl Upload<'_> {
    fn store(&self) -> &dyn ObjectStore {
        self.blobs.store
    }

    /// The largest body accepted: the configured maximum, and never more
    /// than S3 stores in one object.
    fn limit(&self) -> u64 {
        self.max_size
            .unwrap_or(MAX_OBJECT_SIZE)
            .min(MAX_OBJECT_SIZE)
    }

    /// Streams `body` to the object. On success the object holds exactly the
    /// bytes whose digests are returned; on error nothing is left.
    pub fn run(
        &self,
        body: &mut dyn ByteSource,
        content_length: Option<u64>,
    ) -> Result<Digests, UploadError> {
        if content_length.is_some_and(|len| len > self.limit()) {
            return Err(UploadError::TooLarge);
        }
        let mut reader = BodyReader::new(body, self.limit());
        reader.sha256_helper = self.sha256_helper;
        reader.content_length = content_length;
        match content_length {
            Some(len) if len <= self.part_size => self.put_single(&mut reader, Part::Streamed(len)),
            Some(len) => {
                let size = parts::for_length(self.part_size, len);
                self.put_multipart(&mut reader, Parts::Streamed { size, total: len })
            }
            None => {
                let mut buffer = Vec::new();
                reader.fill(&mut buffer, parts::for_chunked_part(self.part_size, 1))?;
                if reader.at_end()? {
                    self.put_single(&mut reader, Part::Buffered(&buffer))
                } else {
                    self.put_multipart(&mut reader, Parts::Buffered(buffer))
                }
            }
        }
        .and_then(|digests| self.check_length(digests, content_length))
    }

    fn check_length(
        &self,
        digests: Digests,
        expected: Option<u64>,
    ) -> Result<Digests, UploadError> {
        match expected {
            Some(expected) if expected != digests.size => {
                self.discard_object();
                Err(UploadError::LengthMismatch)
            }
            _ => Ok(digests),
        }
    }

    fn checksum_ok(&self, digests: &Digests) -> bool {
        self.expected_sha256
            .is_none_or(|expected| expected == digests.sha256)
    }

    fn put_single(&self, reader: &mut BodyReader, part: Part) -> Result<Digests, UploadError> {
        let url = self.blobs.signer.put_object(self.key, &self.blobs.now());
        if let Err(e) = send_part(self.store(), &url, reader, part) {
            // A PUT that did not complete stores nothing, but be sure.
            self.discard_object();
            return Err(e);
        }
        if !reader.at_end()? {
            self.discard_object();
            return Err(UploadError::LengthMismatch);
        }
        let digests = reader.finish().inspect_err(|_| self.discard_object())?;
        if !self.checksum_ok(&digests) {
            self.discard_object();
            return Err(UploadError::ChecksumMismatch);
        }
        Ok(digests)
    }

    fn put_multipart(&self, reader: &mut BodyReader, parts: Parts) -> Result<Digests, UploadError> {
        let create = self
            .blobs
            .signer
            .create_multipart_upload(self.key, &self.blobs.now());
        let upload_id = self.store().create_multipart(&create)?;
        let result = self
            .send_parts(reader, parts, &upload_id)
            .and_then(|(digests, etags)| {
                let (url, xml) = self.blobs.signer.complete_multipart_upload(
                    self.key,
                    &upload_id,
                    &etags,
                    &self.blobs.now(),
                );
                self.store().complete_multipart(&url, xml)?;
                Ok(digests)
            });
        if result.is_err() {
            self.abort(&upload_id);
        }
        result
    }

    /// Sends every part; returns the digests and the parts' ETags, or an
    /// error after which the caller aborts.
    fn send_parts(
        &self,
        reader: &mut BodyReader,
        mut parts: Parts,
        upload_id: &str,
    ) -> Result<(Digests, Vec<String>), UploadError> {
        let mut etags = Vec::new();
        loop {
            let number = etags.len() as u64 + 1;
            let part = match &mut parts {
                Parts::Streamed { size, total } => {
                    let remaining = total.saturating_sub(reader.size());
                    if remaining == 0 {
                        break;
                    }
                    Part::Streamed(remaining.min(*size))
                }
                Parts::Buffered(buffer) => {
                    if number > 1 {
                        let size = parts::for_chunked_part(self.part_size, number);
                        reader.fill(buffer, size)?;
                    }
                    if buffer.is_empty() {
                        break;
                    }
                    Part::Buffered(buffer)
                }
            };
            // Known lengths are cut to fit; a chunked body this long does
            // not fit in one object.
            let number = u16::try_from(number)
                .ok()
                .filter(|n| u64::from(*n) <= MAX_PARTS)
                .ok_or(UploadError::TooLarge)?;
            let url = self
                .blobs
                .signer
                .upload_part(self.key, number, upload_id, &self.blobs.now());
            etags.push(send_part(self.store(), &url, reader, part)?);
        }
        if !reader.at_end()? {
            return Err(UploadError::LengthMismatch);
        }
        let digests = reader.finish()?;
        if !self.checksum_ok(&digests) {
            return Err(UploadError::ChecksumMismatch);
        }
        Ok((digests, etags))
    }

    fn abort(&self, upload_id: &str) {
        let what = format!("aborting multipart upload {upload_id} of {}", self.key);
        self.blobs.cleanup(&what, |at| {
            self.blobs
                .signer
                .abort_multipart_upload(self.key, upload_id, at)
        });
    }

    fn discard_object(&self) {
        if let Err(e) = self.blobs.delete(self.key) {
            eprintln!("warning: could not delete {}: {e}", self.key);
        }
    }
}

/// One S3 request body: bytes already read, or the next `n` bytes of the
/// client's body, copied through as they arrive.
enum Part<'a> {
    Buffered(&'a [u8]),
    Streamed(u64),
}

/// Sends one PUT (object or part) and returns its ETag.
fn send_part(
    store: &dyn ObjectStore,
    url: &url::Url,
    reader: &mut BodyReader,
    part: Part,
) -> Result<String, UploadError> {
    match part {
        Part::Buffered(bytes) => {
            let mut upload = store.start_put(url, bytes.len() as u64)?;
            upload.write(bytes)?;
            Ok(upload.finish()?)
        }
        Part::Streamed(len) => {
            let mut upload = store.start_put(url, len)?;
            let mut left = len;
            while left > 0 {
                match reader.next(left)? {
                    Some(chunk) => {
                        left -= chunk.len() as u64;
                        upload.write(chunk)?;
                    }
                    None => {
                        upload.cancel();
                        return Err(UploadError::ClientGone(
                            "the body ended before Content-Length".into(),
                        ));
                    }
                }
            }
            Ok(upload.finish()?)
        }
    }
}

/// Reads the client's body in pieces of a requested maximum size, counting,
/// checksumming and enforcing the maximum file size as bytes pass. It holds
/// at most one chunk of the source beyond what it has handed out.
struct BodyReader<'a> {
    source: &'a mut dyn ByteSource,
    /// The source's last chunk; `pending[offset..]` is not handed out yet.
    pending: Vec<u8>,
    offset: usize,
    ended: bool,
    sums: Hashing<'a>,
    max_size: u64,
    /// Offered the SHA-256 once the body proves large; cleared once asked.
    sha256_helper: Option<&'a dyn Sha256Helper>,
    /// The body's announced length, if any.
    content_length: Option<u64>,
}

impl<'a> BodyReader<'a> {
    fn new(source: &'a mut dyn ByteSource, max_size: u64) -> Self {
        BodyReader {
            source,
            pending: Vec::new(),
            offset: 0,
            ended: false,
            sums: Hashing::Here(Checksums::default()),
            max_size,
            sha256_helper: None,
            content_length: None,
        }
    }

    /// Bytes handed out so far.
    fn size(&self) -> u64 {
        self.sums.size()
    }

    /// Hands the SHA-256 to the helper once [`Sha256Helper::hand_off_after`]
    /// bytes are hashed here, unless a known length says that as much again
    /// is not left. Asked once per body; without a helper, hashing goes on
    /// here.
    fn hand_off_when_due(&mut self) {
        let Some(helper) = self.sha256_helper else {
            return;
        };
        let hashed = self.size();
        if hashed < helper.hand_off_after() {
            return;
        }
        self.sha256_helper = None;
        let left = self
            .content_length
            .map(|length| length.saturating_sub(hashed));
        self.sums.hand_off(helper, left);
    }

    /// Takes the next chunk from the source if everything pending is handed
    /// out; false at the end of the body.
    fn refill(&mut self) -> Result<bool, UploadError> {
        while self.offset == self.pending.len() && !self.ended {
            match self.source.next_chunk().map_err(UploadError::ClientGone)? {
                Some(chunk) => {
                    self.pending = chunk;
                    self.offset = 0;
                }
                None => self.ended = true,
            }
        }
        Ok(self.offset < self.pending.len())
    }

    /// Up to `max` bytes, or `None` at the end.
    fn next(&mut self, max: u64) -> Result<Option<&[u8]>, UploadError> {
        if !self.refill()? {
            return Ok(None);
        }
        let available = self.pending.len() - self.offset;
        let take = available.min(usize::try_from(max).unwrap_or(usize::MAX));
        let range = self.offset..self.offset + take;
        self.offset += take;
        self.hand_off_when_due();
        self.sums
            .update(&self.pending[range.clone()])
            .map_err(UploadError::Helper)?;
        if self.size() > self.max_size {
            return Err(UploadError::TooLarge);
        }
        Ok(Some(&self.pending[range]))
    }

    /// Replaces the contents of `buffer` with the next `size` bytes (fewer
    /// at the end of the body). The buffer grows, to exactly `size`, only
    /// when parts grow: it never holds more than one part.
    fn fill(&mut self, buffer: &mut Vec<u8>, size: u64) -> Result<(), UploadError> {
        let size_bytes = usize::try_from(size).map_err(|_| UploadError::TooLarge)?;
        buffer.clear();
        if buffer.capacity() < size_bytes {
            // Release the smaller buffer first, so the two never coexist.
            *buffer = Vec::new();
            buffer
                .try_reserve_exact(size_bytes)
                .map_err(|_| UploadError::TooLarge)?;
        }
        while buffer.len() < size_bytes {
            match self.next((size_bytes - buffer.len()) as u64)? {
                Some(chunk) => buffer.extend_from_slice(chunk),
                None => break,
            }
        }
        Ok(())
    }

    fn at_end(&mut self) -> Result<bool, UploadError> {
        Ok(!self.refill()?)
    }

    /// The digests of the body; waits for the helper's SHA-256 if it took
    /// over.
    fn finish(&mut self) -> Result<Digests, UploadError> {
        let sums = self.sums.finish().map_err(UploadError::Helper)?;
        Ok(sums.finish())
    }
}

#[cfg(test)]
#[path = "upload_tests.rs"]
mod tests;
