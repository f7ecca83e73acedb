//! The few S3 calls the registry makes, as a trait: the component implements
//! it over `wasi:http` ([`super::wasi::WasiStore`]); unit tests over memory.

use url::Url;

use crate::http::ByteSource;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

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
}

/// A PUT whose body is being written.
pub trait PutRequest {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError>;
    /// Ends the body and waits for the answer; returns the ETag.
    fn finish(self: Box<Self>) -> Result<String, StoreError>;
    /// Gives up: the body is left incomplete, so S3 stores nothing.
    fn cancel(self: Box<Self>);
}
