//! Compiling and linking the component, once per process and file.
//!
//! Compilation is the expensive step (seconds in a debug build), so the
//! `Engine` is process-wide and the pre-instantiated component (`ProxyPre`)
//! is cached by path, size and modification time: many registries in one
//! test binary share one compilation, and a rebuilt file is compiled again.
//!
//! Across processes, the engine keeps compiled code in wasmtime's cache, as
//! `spin up` does ([`CompileCache`]): a restart loads the component instead
//! of compiling it again.
//!
//! Guests are compiled with epoch interruption and the engine's epoch
//! advances every [`EPOCH_TICK`], so a running guest yields at least that
//! often ([`yield_every_tick`]): dropping its future (the request timeout)
//! then stops it even in a loop that never calls the host.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tokio::sync::OnceCell;
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy,
    ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder,
};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::state::State;
use crate::{keyvalue, variables};

type CacheKey = (PathBuf, u64, Option<SystemTime>);
type Cache = Mutex<HashMap<CacheKey, Arc<OnceCell<ProxyPre<State>>>>>;

/// Where compiled components are kept between runs: wasmtime's cache, with
/// the same choices as `spin up --cache`/`--disable-cache`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CompileCache {
    /// wasmtime's default configuration (`$HOME/.config/wasmtime/config.toml`
    /// if present); files under the user's cache directory
    /// (`$XDG_CACHE_HOME/wasmtime`, else `~/.cache/wasmtime`).
    #[default]
    Default,
    /// A wasmtime cache configuration file.
    ConfigFile(PathBuf),
    /// Compile on every start.
    Disabled,
}

static CACHE: OnceLock<Option<wasmtime::Cache>> = OnceLock::new();

/// How the component's compiled code is made known to a profiler such as
/// `perf`, as `wasmtime run --profile`: without it, a profile shows the
/// component's functions as bare addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profiler {
    /// `/tmp/perf-<pid>.map`, which `perf report` reads by itself.
    PerfMap,
    /// `jit-<pid>.dump` in the working directory, for `perf inject --jit`.
    JitDump,
}

static PROFILER: OnceLock<Profiler> = OnceLock::new();

/// Chooses the profiler the component's code is described to; must come
/// before the first component is compiled.
pub fn use_profiler(profiler: Profiler) -> anyhow::Result<()> {
    PROFILER
        .set(profiler)
        .map_err(|_| anyhow::anyhow!("the profiler is chosen once, before compiling"))
}

/// Chooses the compile cache of this process; must come before the first
/// component is compiled. A configuration that cannot be used is an error,
/// except that the default one falls back to no cache with a warning (a
/// registry must start even without a writable home directory).
pub fn use_compile_cache(choice: &CompileCache) -> anyhow::Result<()> {
    let cache = open_cache(choice)?;
    CACHE
        .set(cache)
        .map_err(|_| anyhow::anyhow!("the compile cache is chosen once, before compiling"))
}

fn open_cache(choice: &CompileCache) -> anyhow::Result<Option<wasmtime::Cache>> {
    match choice {
        CompileCache::Disabled => Ok(None),
        CompileCache::ConfigFile(path) => wasmtime::Cache::from_file(Some(path))
            .map(Some)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("wasmtime cache configuration {}", path.display())),
        CompileCache::Default => match wasmtime::Cache::from_file(None) {
            Ok(cache) => Ok(Some(cache)),
            Err(e) => {
                eprintln!("warning: compiled components are not cached: {e}");
                Ok(None)
            }
        },
    }
}

/// How often the engine's epoch advances, and so how long a guest runs at
/// most between two yields.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The process-wide engine; the first call starts the thread that advances
/// its epoch.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let cache = CACHE
            .get_or_init(|| open_cache(&CompileCache::Default).unwrap_or_default())
            .clone();
        let mut config = wasmtime::Config::new();
        config.cache(cache);
        config.epoch_interruption(true);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling()));
        match PROFILER.get() {
            Some(Profiler::PerfMap) => config.profiler(ProfilingStrategy::PerfMap),
            Some(Profiler::JitDump) => config.profiler(ProfilingStrategy::JitDump),
            None => &mut config,
        };
        let engine = Engine::new(&config).unwrap_or_else(|e| {
            // The pool reserves its address space up front; where that is
            // refused (a `ulimit -v`), instances get their memory one by one.
            eprintln!("warning: instances are not pooled: {e}");
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Engine::new(&config).expect("the default wasmtime configuration is valid")
        });
        let ticking = engine.weak();
        std::thread::Builder::new()
            .name("genreg-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticking.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .expect("starting the epoch thread");
        engine
    })
}

/// Instances running at once across every registry of the process, at most.
/// A request beyond fails to instantiate (500); each registry admits
/// `max_instances` (64 by default, never more than this) at a time.
pub const POOLED_INSTANCES: u32 = 1000;

/// How much of an ended instance's linear memory stays in its slot, reset
/// to the memory's initial contents in place, instead of being handed back
/// to the kernel and faulted in again by the slot's next instance. Where the
/// kernel has `PAGEMAP_SCAN` (Linux 6.7+) only the pages the instance
/// touched are reset; elsewhere the lowest this many bytes are. A request
/// touches about a megabyte, so the pool keeps at most this much per
/// instance slot that served one (64 MiB with the default 64 instances).
const MEMORY_KEPT_RESIDENT: usize = 1 << 20;
/// The same for an instance's tables (a few KiB each).
const TABLE_KEPT_RESIDENT: usize = 64 << 10;

/// The pooling allocator's slots, as Spin uses it: each instance takes a
/// pre-reserved slot for its memories, tables, core instances and async
/// stack, and its memory's initial image is mapped copy-on-write, instead
/// of mapping and unmapping fresh memory for every request. Slots are
/// reset when an instance ends, so nothing is shared between requests. A
/// component has a few core instances and tables but one memory per
/// instance, hence the larger counts for those. Resetting a slot keeps its
/// memory resident up to [`MEMORY_KEPT_RESIDENT`].
fn pooling() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOLED_INSTANCES)
        .total_memories(POOLED_INSTANCES)
        .total_stacks(POOLED_INSTANCES)
        .total_core_instances(4 * POOLED_INSTANCES)
        .total_tables(4 * POOLED_INSTANCES)
        .linear_memory_keep_resident(MEMORY_KEPT_RESIDENT)
        .table_keep_resident(TABLE_KEPT_RESIDENT)
        .pagemap_scan(wasmtime::Enabled::Auto);
    pool
}

/// Makes the guest of `store` yield to the async runtime at every epoch
/// tick, so that dropping its future stops it promptly.
pub fn yield_every_tick<T>(store: &mut Store<T>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_async_yield_and_update(1);
}

/// The memory cap of one instance, remembering whether it refused to let a
/// memory grow (so a guest that then fails can be reported as out of
/// memory).
pub struct InstanceMemory {
    limits: StoreLimits,
    refused: Arc<AtomicBool>,
}

impl InstanceMemory {
    /// A cap of `bytes` per linear memory, and the flag it raises when a
    /// growth beyond is refused.
    pub fn new(bytes: usize) -> (Self, Arc<AtomicBool>) {
        let refused = Arc::new(AtomicBool::new(false));
        let memory = InstanceMemory {
            limits: StoreLimitsBuilder::new().memory_size(bytes).build(),
            refused: refused.clone(),
        };
        (memory, refused)
    }
}

impl ResourceLimiter for InstanceMemory {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if !allowed {
            self.refused.store(true, Ordering::Relaxed);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
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

#[cfg(test)]
mod tests {
    /// What `.cargo/config.toml` links the component with: its stack, its
    /// data and room for the heap of a usual request, so its instance does
    /// not grow its memory, and no more: Spin writes a slot's memory, up to
    /// 2 MiB, back to its initial image after every request, and with 2 MiB
    /// its downloads ran 10% to 14% slower (README, *The component's memory
    /// at the start*).
    const INITIAL_MEMORY: u64 = 3 << 19;

    #[tokio::test]
    async fn the_component_starts_with_room_for_a_requests_heap_and_no_more() {
        let pre = super::load(&crate::component_path()).await.unwrap();
        let resources = pre
            .instance_pre()
            .component()
            .resources_required()
            .expect("the component imports no core module");
        let pages = resources.max_initial_memory_size.expect("it has a memory");
        assert_eq!(pages * 65536, INITIAL_MEMORY, "{pages} pages");
    }
}
