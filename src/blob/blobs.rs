//! [`Blobs`]: object storage as the handlers see it.

use std::time::Duration;

use jiff::Timestamp;
use url::Url;

use super::sha256_helper::Sha256Helper;
use super::signer::{SettingsError, Signer};
use super::store::{ObjectBody, ObjectStore, StoreError};
use super::upload::{Upload, UploadError};
use crate::checksum::Digests;
use crate::config::Config;
use crate::http::ByteSource;

/// How often a cleanup request (aborting a multipart upload) is sent before
/// it is left to `genreg gc`.
const CLEANUP_ATTEMPTS: u32 = 4;
/// The pause before the first retry; it doubles before each next one.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// The bucket of one request: every URL is signed with the clock's time at
/// the moment its request is sent.
pub struct Blobs<'a> {
    pub(super) store: &'a dyn ObjectStore,
    pub(super) signer: Signer,
    clock: &'a dyn Fn() -> Timestamp,
    part_size: u64,
    max_file_size: Option<u64>,
    sha256_helper: Option<&'a dyn Sha256Helper>,
}

impl<'a> Blobs<'a> {
    pub fn new(
        config: &Config,
        store: &'a dyn ObjectStore,
        clock: &'a dyn Fn() -> Timestamp,
    ) -> Result<Blobs<'a>, SettingsError> {
        Ok(Blobs {
            store,
            signer: Signer::new(&config.s3)?,
            clock,
            part_size: config.part_size,
            max_file_size: config.max_file_size,
            sha256_helper: None,
        })
    }

    /// Lets large uploads (and reads of large objects for their checksums)
    /// hand their SHA-256 to `helper`.
    pub fn with_sha256_helper(mut self, helper: &'a dyn Sha256Helper) -> Self {
        self.sha256_helper = Some(helper);
        self
    }

    pub fn sha256_helper(&self) -> Option<&'a dyn Sha256Helper> {
        self.sha256_helper
    }

    /// The time to sign a request with: now.
    pub(super) fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Streams `body` to a new object at `key` while checksumming it. On
    /// success the object holds exactly the bytes whose digests are
    /// returned; on error nothing is left (or what is left is collectable:
    /// see [`Self::cleanup`]).
    pub fn upload(
        &self,
        key: &str,
        body: &mut dyn ByteSource,
        content_length: Option<u64>,
        expected_sha256: Option<&str>,
    ) -> Result<Digests, UploadError> {
        Upload {
            blobs: self,
            key,
            part_size: self.part_size,
            max_size: self.max_file_size,
            expected_sha256,
            sha256_helper: self.sha256_helper,
        }
        .run(body, content_length)
    }

    /// Reads the object at `key`, or the inclusive byte range `start..=end`.
    pub fn open(&self, key: &str, range: Option<(u64, u64)>) -> Result<ObjectBody, StoreError> {
        let url = self.signer.get_object(key, &self.now());
        self.store.get(&url, range)
    }

    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store
            .delete(&self.signer.delete_object(key, &self.now()))
    }

    /// A URL a client can download the object from for `expires_in`, served
    /// as an attachment named `file_name`.
    pub fn download_link(&self, key: &str, file_name: &str, expires_in: Duration) -> Url {
        self.signer
            .download_link(key, file_name, expires_in, &self.now())
    }

    /// Sends a cleanup request (signed afresh by `request` each time) until
    /// it succeeds, retrying failures a few times with growing pauses. A
    /// timeout is not retried: S3 is not answering, and waiting for it again
    /// would hold the client for several timeouts. What is still left is
    /// logged for `genreg gc` to collect.
    pub(super) fn cleanup(&self, what: &str, request: impl Fn(&Timestamp) -> Url) {
        let mut pause = FIRST_RETRY_PAUSE;
        for attempt in 1..=CLEANUP_ATTEMPTS {
            match self.store.delete(&request(&self.now())) {
                Ok(()) => return,
                Err(StoreError::Failed(e)) if attempt < CLEANUP_ATTEMPTS => {
                    eprintln!("warning: {what} failed (attempt {attempt}), retrying: {e}");
                    self.store.pause(pause);
                    pause *= 2;
                }
                Err(e) => {
                    eprintln!("warning: {what} failed, left for genreg gc: {e}");
                    return;
                }
            }
        }
    }
}
