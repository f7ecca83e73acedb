//! The component's WASI adapters: the only code that touches WASI types.
//! Everything else works on the plain types of [`crate::http`], the
//! [`crate::meta::kv::KeyValue`] trait and the [`crate::blob::ObjectStore`]
//! trait, so it runs natively in unit tests.
//!
//! - [`component`]: the request in, the per-request context, the answer out.
//! - [`io`]: blocking reads and writes over `wasi:io` streams.
//! - [`keyvalue`]: [`crate::meta::kv::KeyValue`] over `wasi:keyvalue`.
//! - [`object_store`]: [`crate::blob::ObjectStore`] over `wasi:http`
//!   outgoing requests to S3.
//! - [`sha256_helper`]: a large upload's SHA-256 in a second instance,
//!   through a self request, both sides.

pub mod component;
pub mod io;
pub mod keyvalue;
pub mod object_store;
pub mod sha256_helper;
