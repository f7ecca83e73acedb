//! A GitLab-compatible generic package registry as a Spin HTTP component.
//!
//! Every request gets a fresh instance: [`wasi::component::serve`] reads the
//! request, [`router`] picks the endpoint in [`api`], which authenticates
//! ([`auth`]), validates ([`validate`]), keeps metadata in the key-value store
//! ([`meta`]) and file bytes in S3 ([`blob`]). Paths outside the API get the
//! web interface ([`web`]).

pub mod api;
pub mod auth;
pub mod blob;
pub mod checksum;
pub mod config;
pub mod error;
pub mod graphql_engine;
pub mod http;
pub mod meta;
pub mod range;
pub mod router;
pub mod validate;
pub mod web;

#[cfg(test)]
pub mod testing;

#[cfg(target_arch = "wasm32")]
mod wasi;

#[cfg(target_arch = "wasm32")]
#[spin_sdk::http_component]
fn handle(request: spin_sdk::http::IncomingRequest, out: spin_sdk::http::ResponseOutparam) {
    wasi::component::serve(request, out)
}
