//! File contents in S3-compatible object storage. Handlers see one facade,
//! [`Blobs`]: upload a body, open an object (or a range of it), delete one,
//! link to one. Only this module knows URLs and signing.
//!
//! - [`signer`]: SigV4-presigned URLs, pure (the time is an input).
//! - [`upload`]: streaming a body into a single PUT or a multipart upload.
//! - [`parts`]: how large multipart parts are, so every object fits S3's limits.
//! - [`sha256_helper`]: a second instance that takes over a large upload's
//!   SHA-256.
//! - [`store`]: the few S3 calls as a trait; the component implements it
//!   over `wasi:http` (`crate::wasi::object_store`), the unit tests over
//!   memory (`crate::testing::MemoryS3`).

mod blobs;
pub mod parts;
pub mod sessions;
pub mod sha256_helper;
pub mod signer;
pub mod store;
pub mod upload;

pub use blobs::Blobs;
pub use signer::{content_disposition, SettingsError, Signer};
pub use store::{ObjectBody, ObjectStore, StoreError};

/// A fresh object key for a new file: random, so concurrent uploads never
/// collide and a failed upload can never overwrite a recorded one.
pub fn new_object_key(random: [u8; 16]) -> String {
    genreg_layout::keys::object_key(&hex::encode(random))
}
