//! The S3 side of upload sessions: a multipart upload whose parts the
//! client sends straight to S3 through presigned URLs, each bound to its
//! part number, length and sha256 (signed headers, so S3 refuses a part
//! whose bytes do not match), then listed, completed or aborted by the
//! registry.

use std::time::Duration;

use rusty_s3::actions::ListParts;
use rusty_s3::S3Action;
use url::Url;

use super::blobs::Blobs;
use super::store::StoreError;

/// How many parts one ListParts page asks for (S3's most).
const LIST_PAGE: u16 = 1000;

/// A part S3 holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    pub number: u16,
    pub size: u64,
    pub etag: String,
}

/// A presigned UploadPart request: the client sends the part's bytes to
/// `url` with exactly `headers`.
#[derive(Debug, Clone)]
pub struct PartLink {
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
}

impl Blobs<'_> {
    /// Starts a multipart upload for the object at `key`; returns its id.
    pub fn start_multipart(&self, key: &str) -> Result<String, StoreError> {
        let url = self.signer.create_multipart_upload(key, &self.now());
        self.store.create_multipart(&url)
    }

    /// A URL the client PUTs part `number` to for `expires_in`: its
    /// `content-length` and `x-amz-checksum-sha256` (base64) are signed.
    pub fn part_link(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        length: u64,
        sha256_base64: &str,
        expires_in: Duration,
    ) -> PartLink {
        let headers = vec![
            ("content-length", length.to_string()),
            ("x-amz-checksum-sha256", sha256_base64.to_string()),
        ];
        let mut action =
            self.signer
                .bucket
                .upload_part(Some(&self.signer.credentials), key, number, upload_id);
        for (name, value) in &headers {
            action.headers_mut().insert(*name, value.clone());
        }
        PartLink {
            url: action.sign_with_time(expires_in, &self.now()),
            headers,
        }
    }

    /// The parts S3 holds, ascending; `None` when the upload is gone
    /// (completed or aborted).
    pub fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<Vec<StoredPart>>, StoreError> {
        let mut parts = Vec::new();
        let mut marker = None;
        loop {
            let mut action = ListParts::new(
                &self.signer.bucket,
                Some(&self.signer.credentials),
                key,
                upload_id,
            );
            action.set_max_parts(LIST_PAGE);
            if let Some(marker) = marker {
                action.set_part_number_marker(marker);
            }
            let url = action.sign_with_time(Duration::from_secs(15 * 60), &self.now());
            let xml = match self.read_text(&url) {
                Ok(xml) => xml,
                Err(e) if is_no_such_upload(&e) => return Ok(None),
                Err(e) => return Err(e),
            };
            let page = ListParts::parse_response(&xml)
                .map_err(|e| StoreError::Failed(format!("ListParts answer: {e}")))?;
            parts.extend(page.parts.into_iter().map(|p| StoredPart {
                number: p.number,
                size: p.size,
                etag: p.etag,
            }));
            match page.next_part_number_marker {
                Some(next) => marker = Some(next),
                None => break,
            }
        }
        parts.sort_by_key(|p| p.number);
        Ok(Some(parts))
    }

    /// Joins `parts` (every part, ascending) into the object.
    pub fn complete_parts(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<(), StoreError> {
        let etags: Vec<String> = parts.iter().map(|p| p.etag.clone()).collect();
        let (url, xml) = self
            .signer
            .complete_multipart_upload(key, upload_id, &etags, &self.now());
        self.store.complete_multipart(&url, xml)
    }

    /// Aborts the multipart upload (retried a few times; what is left,
    /// `genreg gc` collects).
    pub fn abort_multipart(&self, key: &str, upload_id: &str) {
        self.cleanup("aborting an upload session", |at| {
            self.signer.abort_multipart_upload(key, upload_id, at)
        });
    }

    /// A small answer (XML) read whole.
    fn read_text(&self, url: &Url) -> Result<String, StoreError> {
        let mut body = self.store.get(url, None)?;
        let mut bytes = Vec::new();
        while let Some(chunk) = body
            .source
            .next_chunk()
            .map_err(|e| StoreError::Failed(format!("reading an S3 answer: {e}")))?
        {
            bytes.extend_from_slice(&chunk);
        }
        String::from_utf8(bytes).map_err(|_| StoreError::Failed("S3 answer is not UTF-8".into()))
    }
}

/// Whether S3 said the multipart upload does not exist (any more).
pub fn is_no_such_upload(error: &StoreError) -> bool {
    matches!(error, StoreError::Failed(message) if message.contains("NoSuchUpload"))
}
