//! Streaming a request body into object storage while checksumming it.
//!
//! - A body known to fit in one part goes up as one PUT, streamed.
//! - A larger body goes up as a multipart upload. With a known length every
//!   part's size is known in advance, so parts are streamed too; a chunked
//!   body of unknown length is buffered one part at a time (S3 needs each
//!   part's length up front). Memory stays at most one part either way.
//! - Any failure aborts the multipart upload (or deletes the single object),
//!   so a failed publish leaves nothing behind.

use super::store::{ObjectStore, StoreError};
use super::Requests;
use crate::checksum::{Checksums, Digests};
use crate::http::ByteSource;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the file is larger than the maximum file size")]
    TooLarge,
    #[error("the client stopped sending: {0}")]
    ClientGone(String),
    #[error("the body does not match Content-Length")]
    LengthMismatch,
    #[error("the body does not match X-Checksum-SHA256")]
    ChecksumMismatch,
    #[error("object storage: {0}")]
    Storage(#[from] StoreError),
}

/// Where and how to upload.
pub struct Upload<'a> {
    pub store: &'a dyn ObjectStore,
    pub requests: &'a Requests,
    pub key: &'a str,
    pub part_size: u64,
    pub max_size: Option<u64>,
    /// Lowercase hex; when set, a body with another SHA-256 is not kept.
    pub expected_sha256: Option<&'a str>,
}

impl Upload<'_> {
    /// Streams `body` to the object. On success the object holds exactly the
    /// bytes whose digests are returned; on error nothing is left.
    pub fn run(
        &self,
        body: &mut dyn ByteSource,
        content_length: Option<u64>,
    ) -> Result<Digests, UploadError> {
        if let (Some(len), Some(max)) = (content_length, self.max_size) {
            if len > max {
                return Err(UploadError::TooLarge);
            }
        }
        let mut reader = BodyReader::new(body, self.max_size);
        reader.declared_total = content_length;
        match content_length {
            Some(len) if len <= self.part_size => self.put_single(&mut reader, Part::Streamed(len)),
            Some(len) => self.put_multipart(&mut reader, Part::Streamed(len.min(self.part_size))),
            None => {
                let first = reader.fill(self.part_size)?;
                if reader.at_end()? {
                    self.put_single(&mut reader, Part::Buffered(first))
                } else {
                    self.put_multipart(&mut reader, Part::Buffered(first))
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
        let url = self.requests.put_object(self.key);
        if let Err(e) = send_part(self.store, &url, reader, part) {
            // A PUT that did not complete stores nothing, but be sure.
            self.discard_object();
            return Err(e);
        }
        if !reader.at_end()? {
            self.discard_object();
            return Err(UploadError::LengthMismatch);
        }
        let digests = reader.finish();
        if !self.checksum_ok(&digests) {
            self.discard_object();
            return Err(UploadError::ChecksumMismatch);
        }
        Ok(digests)
    }

    fn put_multipart(&self, reader: &mut BodyReader, first: Part) -> Result<Digests, UploadError> {
        let upload_id = self
            .store
            .create_multipart(&self.requests.create_multipart_upload(self.key))?;
        match self.send_parts(reader, first, &upload_id) {
            Ok((digests, etags)) => {
                let (url, xml) = self
                    .requests
                    .complete_multipart_upload(self.key, &upload_id, &etags);
                match self.store.complete_multipart(&url, xml) {
                    Ok(()) => Ok(digests),
                    Err(e) => {
                        self.abort(&upload_id);
                        Err(e.into())
                    }
                }
            }
            Err(e) => {
                self.abort(&upload_id);
                Err(e)
            }
        }
    }

    /// Sends every part; returns the digests and the parts' ETags, or an
    /// error after which the caller aborts.
    fn send_parts(
        &self,
        reader: &mut BodyReader,
        first: Part,
        upload_id: &str,
    ) -> Result<(Digests, Vec<String>), UploadError> {
        let streamed = matches!(first, Part::Streamed(_));
        let total = reader.declared_total.unwrap_or(0);
        let mut etags = Vec::new();
        let mut part = Some(first);
        while let Some(current) = part.take() {
            let number = u16::try_from(etags.len() + 1)
                .map_err(|_| StoreError("more than 65535 parts".into()))?;
            let url = self.requests.upload_part(self.key, number, upload_id);
            etags.push(send_part(self.store, &url, reader, current)?);
            part = if streamed {
                let sent = reader.sums.size();
                let remaining = total.saturating_sub(sent);
                (remaining > 0).then(|| Part::Streamed(remaining.min(self.part_size)))
            } else {
                let next = reader.fill(self.part_size)?;
                (!next.is_empty()).then_some(Part::Buffered(next))
            };
        }
        if !reader.at_end()? {
            return Err(UploadError::LengthMismatch);
        }
        let digests = reader.finish();
        if !self.checksum_ok(&digests) {
            return Err(UploadError::ChecksumMismatch);
        }
        Ok((digests, etags))
    }

    fn abort(&self, upload_id: &str) {
        let url = self.requests.abort_multipart_upload(self.key, upload_id);
        if let Err(e) = self.store.delete(&url) {
            eprintln!("warning: could not abort multipart upload {upload_id}: {e}");
        }
    }

    fn discard_object(&self) {
        if let Err(e) = self.store.delete(&self.requests.delete_object(self.key)) {
            eprintln!("warning: could not delete {}: {e}", self.key);
        }
    }
}

/// One S3 request body: bytes already read, or the next `n` bytes of the
/// client's body, copied through as they arrive.
enum Part {
    Buffered(Vec<u8>),
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
            upload.write(&bytes)?;
            Ok(upload.finish()?)
        }
        Part::Streamed(len) => {
            let mut upload = store.start_put(url, len)?;
            let mut left = len;
            while left > 0 {
                match reader.next(left)? {
                    Some(chunk) => {
                        left -= chunk.len() as u64;
                        upload.write(&chunk)?;
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
/// checksumming and enforcing the maximum file size as bytes pass.
struct BodyReader<'a> {
    source: &'a mut dyn ByteSource,
    /// Read from the source but not handed out yet.
    pending: Vec<u8>,
    ended: bool,
    sums: Checksums,
    max_size: Option<u64>,
    /// The Content-Length, when the client sent one.
    declared_total: Option<u64>,
}

impl<'a> BodyReader<'a> {
    fn new(source: &'a mut dyn ByteSource, max_size: Option<u64>) -> Self {
        BodyReader {
            source,
            pending: Vec::new(),
            ended: false,
            sums: Checksums::default(),
            max_size,
            declared_total: None,
        }
    }

    /// Refills `pending` if it is empty; false at the end of the body.
    fn refill(&mut self) -> Result<bool, UploadError> {
        while self.pending.is_empty() && !self.ended {
            match self.source.next_chunk().map_err(UploadError::ClientGone)? {
                Some(chunk) => self.pending = chunk,
                None => self.ended = true,
            }
        }
        Ok(!self.pending.is_empty())
    }

    /// Up to `max` bytes, or `None` at the end.
    fn next(&mut self, max: u64) -> Result<Option<Vec<u8>>, UploadError> {
        if !self.refill()? {
            return Ok(None);
        }
        let take = self
            .pending
            .len()
            .min(usize::try_from(max).unwrap_or(usize::MAX));
        let chunk = if take == self.pending.len() {
            std::mem::take(&mut self.pending)
        } else {
            let rest = self.pending.split_off(take);
            std::mem::replace(&mut self.pending, rest)
        };
        self.sums.update(&chunk);
        if self.max_size.is_some_and(|max| self.sums.size() > max) {
            return Err(UploadError::TooLarge);
        }
        Ok(Some(chunk))
    }

    /// Reads until `size` bytes are buffered or the body ends.
    fn fill(&mut self, size: u64) -> Result<Vec<u8>, UploadError> {
        let mut buffer = Vec::new();
        while (buffer.len() as u64) < size {
            match self.next(size - buffer.len() as u64)? {
                Some(chunk) if buffer.is_empty() => buffer = chunk,
                Some(chunk) => buffer.extend_from_slice(&chunk),
                None => break,
            }
        }
        Ok(buffer)
    }

    fn at_end(&mut self) -> Result<bool, UploadError> {
        Ok(!self.refill()?)
    }

    fn finish(&mut self) -> Digests {
        std::mem::take(&mut self.sums).finish()
    }
}

#[cfg(test)]
#[path = "upload_tests.rs"]
mod tests;
