//! Integration tests: the built component under `genreg` (wasmtime), with the
//! embedded S3 server, over real HTTP. One test binary, so the component is
//! compiled once for all of them.

mod auth;
mod bad_input;
#[path = "../browser/mod.rs"]
mod browser;
mod common;
mod component;
mod concurrency;
mod crash_safety;
mod current_user;
mod faults;
mod gc_on_spin;
mod groups;
mod hosted;
mod limits;
mod multi_instance;
mod packages;
mod projects;
mod publish;
mod python_gitlab;
#[path = "../../host/tests/support/redis_server.rs"]
mod redis_server;
mod settings;
mod spin;
mod tokens;
mod upload_sessions;
mod users;
