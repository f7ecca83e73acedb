//! The web interface in headless Chromium (Debian's `chromium` and
//! `chromium-driver`), against a real registry: real clicks and typing,
//! checked against the API. One browser session per test file; screenshots
//! of the main pages go to `target/browser-screenshots/`.
//!
//! These modules live in the `registry` test binary (not a test target of
//! their own) so the suite links wasmtime and compiles the component once.

mod anonymous;
mod harness;
mod large_upload;
mod maintainer;
mod reporter;
mod support;
