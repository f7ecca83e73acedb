//! Integration tests: the built component under `genreg` (wasmtime), with the
//! embedded S3 server, over real HTTP. One test binary, so the component is
//! compiled once for all of them.

mod auth;
mod bad_input;
mod common;
mod component;
mod concurrency;
mod crash_safety;
mod current_user;
mod faults;
mod groups;
mod limits;
mod packages;
mod projects;
mod publish;
mod python_gitlab;
mod settings;
mod spin;
mod tokens;
mod users;
