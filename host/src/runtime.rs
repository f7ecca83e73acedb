//! Compiling and linking the component, once per process and file.
//!
//! Compilation is the expensive step (seconds in a debug build), so the
//! `Engine` is process-wide and the pre-instantiated component (`ProxyPre`)
//! is cached by path, size and modification time: many registries in one
//! test binary share one compilation, and a rebuilt file is compiled again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use anyhow::Context as _;
use tokio::sync::OnceCell;
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::state::State;
use crate::{keyvalue, variables};

type CacheKey = (PathBuf, u64, Option<SystemTime>);
type Cache = Mutex<HashMap<CacheKey, Arc<OnceCell<ProxyPre<State>>>>>;

/// The process-wide engine.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let config = wasmtime::Config::new();
        Engine::new(&config).expect("the default wasmtime configuration is valid")
    })
}

/// The component at `path`, compiled and linked against every import the
/// registry world declares.
pub async fn load(path: &Path) -> anyhow::Result<ProxyPre<State>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("reading component {}", path.display()))?;
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let key = (canonical, meta.len(), meta.modified().ok());

    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cell = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default()
        .clone();

    let path = path.to_path_buf();
    let pre = cell
        .get_or_try_init(|| async move {
            tokio::task::spawn_blocking(move || compile(&path))
                .await
                .context("compiling the component panicked")?
        })
        .await?;
    Ok(pre.clone())
}

fn compile(path: &Path) -> anyhow::Result<ProxyPre<State>> {
    let engine = engine();
    let component = Component::from_file(engine, path)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("compiling component {}", path.display()))?;
    let linker = linker(engine)?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(anyhow::Error::from)
        .context("linking the component (does it import only what wit/world.wit declares?)")?;
    ProxyPre::new(pre)
        .map_err(anyhow::Error::from)
        .context("the component does not export wasi:http/incoming-handler@0.2")
}

/// WASI 0.2 (cli, clocks, random, io, filesystem, sockets), wasi:http,
/// wasi:keyvalue and Spin variables.
fn linker(engine: &Engine) -> anyhow::Result<Linker<State>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    keyvalue::add_to_linker(&mut linker, State::keyvalue)?;
    variables::add_to_linker(&mut linker, State::variables)?;
    Ok(linker)
}
