//! File contents in S3-compatible object storage: request signing, streaming
//! uploads (single PUT or multipart) and downloads.

pub mod requests;
pub mod store;
pub mod upload;
#[cfg(target_arch = "wasm32")]
pub mod wasi;

pub use requests::Requests;
pub use store::{ObjectStore, StoreError};

/// A fresh object key for a new file: random, so concurrent uploads never
/// collide and a failed upload can never overwrite a recorded one.
pub fn new_object_key(random: [u8; 16]) -> String {
    format!("files/{}", hex::encode(random))
}
