//! The few S3 calls the registry makes, as a trait: the component implements
//! it over `wasi:http` (`crate::wasi::object_store`); unit tests over memory.

use std::time::Duration;

use url::Url;

use crate::http::ByteSource;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// S3 did not answer, or stopped answering, within the configured
    /// timeouts.
    #[error("timed out: {0}")]
    TimedOut(String),
    /// S3 refused the request, or the connection failed.
    #[error("{0}")]
    Failed(String),
}

/// An object (or a range of it) being read.
pub struct ObjectBody {
    /// Bytes that will come out of `source`.
    pub length: u64,
    pub source: Box<dyn ByteSource>,
}

pub trait ObjectStore {
    /// Starts a PUT of exactly `length` bytes (an object or a part).
    fn start_put(&self, url: &Url, length: u64) -> Result<Box<dyn PutRequest + '_>, StoreError>;
    /// Starts a multipart upload and returns its upload id.
    fn create_multipart(&self, url: &Url) -> Result<String, StoreError>;
    fn complete_multipart(&self, url: &Url, xml: String) -> Result<(), StoreError>;
    /// DELETE: removes an object or aborts a multipart upload. Deleting what
    /// is not there succeeds.
    fn delete(&self, url: &Url) -> Result<(), StoreError>;
    /// GET, optionally of the inclusive byte range `start..=end`.
    fn get(&self, url: &Url, range: Option<(u64, u64)>) -> Result<ObjectBody, StoreError>;
    /// Waits before a request is retried.
    fn pause(&self, duration: Duration);
}

/// A PUT whose body is being written.
pub trait PutRequest {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError>;
    /// Ends the body and waits for the answer; returns the ETag.
    fn finish(self: Box<Self>) -> Result<String, StoreError>;
    /// Gives up: the body is left incomplete, so S3 stores nothing.
    fn cancel(self: Box<Self>);
}
