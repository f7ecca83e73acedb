//! Test support: the stores in memory and a registry built on them.
//!
//! - [`MemoryStore`], [`SwapReports`], [`CrashAfter`]: the key-value store
//!   as Spin's stores behave (byte for byte, with their swap reports) and
//!   one that dies after N writes.
//! - [`MemoryS3`]: an S3 bucket, multipart uploads included.
//! - [`MemoryHelper`]: a SHA-256 helper instance.
//! - [`TestRegistry`]: the router over both, with a fixed clock and
//!   deterministic randomness; [`Credential`] and the token helpers mint
//!   every kind of token with the test secret.
//! - [`Counting`], [`Counts`]: the key-value operations and S3 requests of
//!   each request ([`Reply::counts`]), pinned in `api/round_trips.rs`.
//!
//! The native API tests in [`api`] drive the registry through it: GitLab's
//! rules (status codes, permissions, validation) in milliseconds, without
//! the component, a host or HTTP.

mod counting;
mod kv;
mod registry;
mod s3;
mod sha256_helper;
mod tokens;

mod api;

pub use counting::{Counting, Counts};
pub use kv::{CrashAfter, MemoryStore, SwapReports};
pub use registry::{Reply, Snapshot, TestRegistry, NOW};
pub use s3::MemoryS3;
pub use sha256_helper::MemoryHelper;
pub use tokens::{
    administrator, deploy, expired, job, personal, Credential, TokenSpec, TEST_SECRET,
};
