//! `wasi:keyvalue/store`, `wasi:keyvalue/atomics` and `wasi:keyvalue/batch`
//! (0.2.0-draft2) over a [`Backend`], shaped like `wasmtime-wasi-keyvalue`: a [`WasiKeyValueCtx`]
//! (configuration, shared by all requests), a [`WasiKeyValue`] view borrowed
//! from the store's data, and [`add_to_linker`].
//!
//! Backends, one file each: [`SqliteStore`] (the default, in the data
//! directory) and [`RedisStore`] (`--kv redis://...`, the layout of Spin's
//! Redis store); [`KvConfig`] picks one. A new one implements [`Backend`]
//! and passes `conformance::check` in its tests.
//!
//! Semantics, chosen to match what the component can rely on under Spin:
//! - `open("default")` is the only store; any other label answers
//!   `access-denied`, as Spin does for a label missing from `key_value_stores`.
//! - `list-keys` returns keys in byte order, [`LIST_PAGE_SIZE`] at a time, with
//!   a cursor (the last key returned) when more follow. Spin returns all keys
//!   in one page with no cursor, so a guest that follows cursors works on both.
//! - `increment` treats an absent key as 0 and stores the counter as Spin's
//!   store of the same kind does: an 8-byte little-endian `i64` on SQLite,
//!   decimal text on Redis.
//! - Compare-and-swap behaves exactly like Spin's SQLite store: `current`
//!   reads the value and remembers it; `swap` writes only if the key still
//!   holds that value, and otherwise fails with `cas-failed` carrying a fresh
//!   `cas`. When the remembered value is *absent* (or `current` was never
//!   called) `swap` writes unconditionally, as Spin's does, so a guest cannot
//!   use compare-and-swap to create a key exactly once, here or on Spin.
//! - `batch` (`get-many`, `set-many`, `delete-many`) costs one store round
//!   trip per call. `get-many` answers every key asked for, in the order
//!   asked, `none` for an absent one, as the interface documents; Spin's
//!   SQLite store leaves absent keys out and answers in any order, so the
//!   component must not rely on either.
//! - Sizes: no call bounds what it returns beyond the store itself; what
//!   bounds a `get` (the instance's memory limit, which the answer must fit
//!   in) bounds the sum of a `get-many` the same way.

mod backend;
#[cfg(test)]
mod conformance;
mod redis;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::request_counts::RequestCounts;

pub use backend::{Backend, KeyPage, StoreError};
pub use redis::{RedisStore, RedisTimeouts};
pub use sqlite::SqliteStore;

/// Which store the registry keeps its metadata in (`genreg up --kv`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum KvConfig {
    /// SQLite in the data directory (`--kv sqlite`, the default).
    #[default]
    Sqlite,
    /// A Redis database, `redis://HOST[:PORT][/DB]`, shareable with Spin's
    /// Redis store.
    Redis { url: String },
    /// A store the caller opened (tests put one with injected faults under
    /// the registry).
    Opened(OpenedBackend),
}

/// A backend handed to [`KvConfig::Opened`], compared by identity.
#[derive(Clone)]
pub struct OpenedBackend(pub Arc<dyn Backend>);

impl std::fmt::Debug for OpenedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenedBackend(..)")
    }
}

impl PartialEq for OpenedBackend {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.0), Arc::as_ptr(&other.0))
    }
}

impl Eq for OpenedBackend {}

impl KvConfig {
    /// `sqlite` or a `redis://` URL.
    pub fn parse(text: &str) -> Result<KvConfig, String> {
        if text == "sqlite" {
            return Ok(KvConfig::Sqlite);
        }
        if text.starts_with("redis://") {
            RedisStore::check_url(text).map_err(|e| e.0)?;
            return Ok(KvConfig::Redis {
                url: text.to_string(),
            });
        }
        Err(format!(
            "{text:?} is not a key-value store: use sqlite or redis://HOST[:PORT][/DB]"
        ))
    }

    /// Opens the store; the SQLite file lives in `data_dir`.
    pub async fn open(&self, data_dir: &Path) -> anyhow::Result<Arc<dyn Backend>> {
        use anyhow::Context as _;
        match self {
            KvConfig::Sqlite => {
                let path = crate::data_dir::keyvalue_path(data_dir);
                let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                    .await?
                    .context("opening the key-value database")?;
                Ok(Arc::new(store))
            }
            KvConfig::Redis { url } => {
                let store = RedisStore::connect(url, RedisTimeouts::default())
                    .await
                    .context("opening the Redis key-value store")?;
                Ok(Arc::new(store))
            }
            KvConfig::Opened(OpenedBackend(store)) => Ok(store.clone()),
        }
    }
}

/// How many keys one `list-keys` call returns at most.
pub const LIST_PAGE_SIZE: usize = 1000;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/deps/keyvalue-2024-10-17",
        inline: "
            package genreg:host-keyvalue;
            world keyvalue {
                import wasi:keyvalue/store@0.2.0-draft2;
                import wasi:keyvalue/atomics@0.2.0-draft2;
                import wasi:keyvalue/batch@0.2.0-draft2;
            }
        ",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
            "wasi:keyvalue/atomics.cas": super::Cas,
        },
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

/// The only store label the component may open.
pub const STORE_LABEL: &str = "default";

/// An open `bucket`: there is one store, so it carries nothing.
pub struct Bucket;

/// A `cas` handle: the key and the value it had when the handle was made.
pub struct Cas {
    key: String,
    snapshot: Option<Vec<u8>>,
}

/// Configuration shared by every instance: the backend.
#[derive(Clone)]
pub struct WasiKeyValueCtx {
    backend: Arc<dyn Backend>,
}

impl WasiKeyValueCtx {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        WasiKeyValueCtx { backend }
    }

    fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Makes the writes so far survive a crash of the machine (see
    /// [`Backend::sync`]); a request that wrote waits for it before its
    /// answer goes out.
    pub async fn sync(&self) -> Result<(), StoreError> {
        self.backend.sync().await
    }
}

/// A backend's answer as the guest sees it.
fn to_guest<R>(result: Result<R, StoreError>) -> Result<R, store::Error> {
    result.map_err(|e| store::Error::Other(e.0))
}

/// What the bindings see: the configuration, the instance's resource
/// table, and the request's counts (a request that wrote waits for the
/// store to sync).
pub struct WasiKeyValue<'a> {
    pub ctx: &'a WasiKeyValueCtx,
    pub table: &'a mut ResourceTable,
    pub counts: &'a RequestCounts,
}

/// Adds `wasi:keyvalue/store`, `wasi:keyvalue/atomics` and
/// `wasi:keyvalue/batch` to `linker`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> WasiKeyValue<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<_, HasKeyValue>(linker, view)?;
    atomics::add_to_linker::<_, HasKeyValue>(linker, view)?;
    batch::add_to_linker::<_, HasKeyValue>(linker, view)?;
    Ok(())
}

struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = WasiKeyValue<'a>;
}

impl WasiKeyValue<'_> {
    /// The backend, for a read (one round trip).
    fn backend_to_read(&self) -> &dyn Backend {
        self.counts.read();
        self.ctx.backend()
    }

    /// The backend, for a write: the request's answer then waits for the
    /// store to sync.
    fn backend_to_write(&self) -> &dyn Backend {
        self.counts.wrote();
        self.ctx.backend()
    }

    fn check_bucket<T: 'static>(&self, bucket: &Resource<T>) -> wasmtime::Result<()> {
        // Buckets carry no state; this only checks that the handle is live.
        let _ = self
            .table
            .get(&Resource::<Bucket>::new_borrow(bucket.rep()))?;
        Ok(())
    }

    /// Makes a `cas` handle for `key`; nothing is read until `current`.
    async fn new_cas(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, store::Error>> {
        Ok(Ok(self.table.push(Cas {
            key,
            snapshot: None,
        })?))
    }
}

impl store::Host for WasiKeyValue<'_> {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<Bucket>, store::Error>> {
        if identifier != STORE_LABEL {
            return Ok(Err(store::Error::AccessDenied));
        }
        Ok(Ok(self.table.push(Bucket)?))
    }
}

impl store::HostBucket for WasiKeyValue<'_> {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        self.check_bucket(&bucket)?;
        Ok(to_guest(self.backend_to_read().get(key).await))
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        self.check_bucket(&bucket)?;
        Ok(to_guest(self.backend_to_write().set(key, value).await))
    }

    async fn delete(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        self.check_bucket(&bucket)?;
        Ok(to_guest(self.backend_to_write().delete(key).await))
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        self.check_bucket(&bucket)?;
        Ok(to_guest(self.backend_to_read().exists(key).await))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        self.check_bucket(&bucket)?;
        let page = self
            .backend_to_read()
            .list_keys(cursor, LIST_PAGE_SIZE)
            .await;
        Ok(to_guest(page).map(|p| store::KeyResponse {
            keys: p.keys,
            cursor: p.cursor,
        }))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for WasiKeyValue<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<atomics::Bucket>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, store::Error>> {
        self.check_bucket(&bucket)?;
        Ok(to_guest(
            self.backend_to_write().increment(key, delta).await,
        ))
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let Cas { key, snapshot } = self.table.delete(cas)?;
        let swapped = self.ctx.backend().swap(key.clone(), snapshot, value).await;
        self.counts.swapped(!matches!(swapped, Ok(true)));
        match to_guest(swapped) {
            Ok(true) => Ok(Ok(())),
            Ok(false) => match self.new_cas(key).await? {
                Ok(fresh) => Ok(Err(atomics::CasError::CasFailed(fresh))),
                Err(e) => Ok(Err(atomics::CasError::StoreError(e))),
            },
            Err(e) => Ok(Err(atomics::CasError::StoreError(e))),
        }
    }
}

impl atomics::HostCas for WasiKeyValue<'_> {
    async fn new(
        &mut self,
        bucket: Resource<atomics::Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, store::Error>> {
        self.check_bucket(&bucket)?;
        self.new_cas(key).await
    }

    async fn current(
        &mut self,
        cas: Resource<Cas>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let key = self.table.get(&cas)?.key.clone();
        let value = match to_guest(self.backend_to_read().get(key).await) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        self.table.get_mut(&cas)?.snapshot = value.clone();
        Ok(Ok(value))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for WasiKeyValue<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<batch::Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, store::Error>> {
        self.check_bucket(&bucket)?;
        Ok(to_guest(self.backend_to_read().get_many(keys).await))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<batch::Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        self.check_bucket(&bucket)?;
        Ok(to_guest(self.backend_to_write().set_many(key_values).await))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<batch::Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        self.check_bucket(&bucket)?;
        Ok(to_guest(self.backend_to_write().delete_many(keys).await))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atomics::{Host as _, HostCas as _};
    use batch::Host as _;
    use store::{Host as _, HostBucket as _};

    /// A guest's view over a fresh SQLite store, and an open bucket.
    fn guest() -> (WasiKeyValueCtx, ResourceTable) {
        let ctx = WasiKeyValueCtx::new(Arc::new(SqliteStore::open_in_memory().unwrap()));
        (ctx, ResourceTable::new())
    }

    fn borrow<T: 'static>(resource: &Resource<T>) -> Resource<T> {
        Resource::new_borrow(resource.rep())
    }

    #[tokio::test]
    async fn only_the_default_label_opens() {
        let (ctx, mut table) = guest();
        let counts = RequestCounts::default();
        let mut kv = WasiKeyValue {
            ctx: &ctx,
            table: &mut table,
            counts: &counts,
        };
        let denied = kv.open("other".into()).await.unwrap();
        assert!(matches!(denied, Err(store::Error::AccessDenied)));
        assert!(kv.open(STORE_LABEL.into()).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn calls_reach_the_backend() {
        let (ctx, mut table) = guest();
        let counts = RequestCounts::default();
        let mut kv = WasiKeyValue {
            ctx: &ctx,
            table: &mut table,
            counts: &counts,
        };
        let bucket = kv.open(STORE_LABEL.into()).await.unwrap().unwrap();
        kv.set(borrow(&bucket), "a".into(), b"1".to_vec())
            .await
            .unwrap()
            .unwrap();
        let got = kv.get(borrow(&bucket), "a".into()).await.unwrap().unwrap();
        assert_eq!(got, Some(b"1".to_vec()));
        let n = kv.increment(borrow(&bucket), "n".into(), 5).await.unwrap();
        assert_eq!(n.unwrap(), 5);
        let keys = kv.list_keys(borrow(&bucket), None).await.unwrap().unwrap();
        assert_eq!(keys.keys, vec!["a".to_string(), "n".to_string()]);
        assert_eq!(keys.cursor, None);
        kv.delete(borrow(&bucket), "a".into())
            .await
            .unwrap()
            .unwrap();
        let exists = kv.exists(borrow(&bucket), "a".into()).await.unwrap();
        assert!(!exists.unwrap());
        // A value that is not a counter is the backend's error, passed on.
        kv.set(borrow(&bucket), "text".into(), b"x".to_vec())
            .await
            .unwrap()
            .unwrap();
        let refused = kv
            .increment(borrow(&bucket), "text".into(), 1)
            .await
            .unwrap();
        assert!(matches!(refused, Err(store::Error::Other(_))));
    }

    #[tokio::test]
    async fn a_swap_after_a_concurrent_write_fails_with_a_fresh_cas() {
        let (ctx, mut table) = guest();
        let counts = RequestCounts::default();
        let mut kv = WasiKeyValue {
            ctx: &ctx,
            table: &mut table,
            counts: &counts,
        };
        let bucket = kv.open(STORE_LABEL.into()).await.unwrap().unwrap();
        kv.set(borrow(&bucket), "k".into(), b"v1".to_vec())
            .await
            .unwrap()
            .unwrap();

        let cas = kv.new(borrow(&bucket), "k".into()).await.unwrap().unwrap();
        let seen = kv.current(borrow(&cas)).await.unwrap().unwrap();
        assert_eq!(seen, Some(b"v1".to_vec()));
        // Another request writes in between.
        kv.set(borrow(&bucket), "k".into(), b"v2".to_vec())
            .await
            .unwrap()
            .unwrap();
        let fresh = match kv.swap(cas, b"mine".to_vec()).await.unwrap() {
            Err(atomics::CasError::CasFailed(fresh)) => fresh,
            other => panic!("expected cas-failed, got {:?}", other.is_ok()),
        };
        let stored = kv.get(borrow(&bucket), "k".into()).await.unwrap().unwrap();
        assert_eq!(stored, Some(b"v2".to_vec()));

        // The fresh handle reads again and wins.
        let seen = kv.current(borrow(&fresh)).await.unwrap().unwrap();
        assert_eq!(seen, Some(b"v2".to_vec()));
        kv.swap(fresh, b"mine".to_vec()).await.unwrap().unwrap();
        let stored = kv.get(borrow(&bucket), "k".into()).await.unwrap().unwrap();
        assert_eq!(stored, Some(b"mine".to_vec()));
        // Two attempts, one lost; each `current` and `get` a read.
        assert_eq!(
            counts.to_string(),
            "reads=4 writes=2 swaps=2 lost=1 s3=0 self=0"
        );
    }

    #[tokio::test]
    async fn batch_calls_reach_the_backend() {
        let (ctx, mut table) = guest();
        let counts = RequestCounts::default();
        let mut kv = WasiKeyValue {
            ctx: &ctx,
            table: &mut table,
            counts: &counts,
        };
        let bucket = kv.open(STORE_LABEL.into()).await.unwrap().unwrap();
        let nothing = ["a".to_string()].to_vec();
        kv.get_many(borrow(&bucket), nothing)
            .await
            .unwrap()
            .unwrap();
        assert!(!counts.changed_store(), "a read is no write");
        let pairs = vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())];
        kv.set_many(borrow(&bucket), pairs).await.unwrap().unwrap();
        assert!(counts.changed_store(), "the answer waits for a sync");
        kv.increment(borrow(&bucket), "n".into(), 3)
            .await
            .unwrap()
            .unwrap();
        let keys = ["b", "missing", "a", "n"].map(String::from).to_vec();
        let got = kv.get_many(borrow(&bucket), keys).await.unwrap().unwrap();
        assert_eq!(
            got,
            vec![
                ("b".into(), Some(b"2".to_vec())),
                ("missing".into(), None),
                ("a".into(), Some(b"1".to_vec())),
                ("n".into(), Some(3i64.to_le_bytes().to_vec())),
            ]
        );
        let gone = ["a", "missing"].map(String::from).to_vec();
        kv.delete_many(borrow(&bucket), gone)
            .await
            .unwrap()
            .unwrap();
        let keys = kv.list_keys(borrow(&bucket), None).await.unwrap().unwrap();
        assert_eq!(keys.keys, vec!["b".to_string(), "n".to_string()]);
        // Each call one round trip, however many keys it names.
        assert_eq!(
            counts.to_string(),
            "reads=3 writes=3 swaps=0 lost=0 s3=0 self=0"
        );
    }

    #[tokio::test]
    async fn a_batch_on_a_dropped_bucket_traps() {
        let (ctx, mut table) = guest();
        let counts = RequestCounts::default();
        let mut kv = WasiKeyValue {
            ctx: &ctx,
            table: &mut table,
            counts: &counts,
        };
        let bucket = kv.open(STORE_LABEL.into()).await.unwrap().unwrap();
        let stale = borrow(&bucket);
        store::HostBucket::drop(&mut kv, bucket).await.unwrap();
        assert!(kv.get_many(stale, vec!["a".into()]).await.is_err());
    }
}
