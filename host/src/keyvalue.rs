//! `wasi:keyvalue/store` and `wasi:keyvalue/atomics` (0.2.0-draft2) over
//! [`SqliteStore`], shaped like `wasmtime-wasi-keyvalue`: a [`WasiKeyValueCtx`]
//! (configuration, shared by all requests), a [`WasiKeyValue`] view borrowed
//! from the store's data, and [`add_to_linker`].
//!
//! Semantics, chosen to match what the component can rely on under Spin:
//! - `open("default")` is the only store; any other label answers
//!   `access-denied`, as Spin does for a label missing from `key_value_stores`.
//! - `list-keys` returns keys in byte order, [`LIST_PAGE_SIZE`] at a time, with
//!   a cursor (the last key returned) when more follow. Spin returns all keys
//!   in one page with no cursor, so a guest that follows cursors works on both.
//! - `increment` treats an absent key as 0 and stores an 8-byte little-endian
//!   `i64`, like Spin's SQLite store.
//! - Compare-and-swap behaves exactly like Spin's SQLite store: `current`
//!   reads the value and remembers it; `swap` writes only if the key still
//!   holds that value, and otherwise fails with `cas-failed` carrying a fresh
//!   `cas`. When the remembered value is *absent* (or `current` was never
//!   called) `swap` writes unconditionally, as Spin's does, so a guest cannot
//!   use compare-and-swap to create a key exactly once, here or on Spin.

mod sqlite;

use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

pub use sqlite::{KeyPage, SqliteStore, StoreError, LIST_PAGE_SIZE};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/deps/keyvalue-2024-10-17",
        inline: "
            package genreg:host-keyvalue;
            world keyvalue {
                import wasi:keyvalue/store@0.2.0-draft2;
                import wasi:keyvalue/atomics@0.2.0-draft2;
            }
        ",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
            "wasi:keyvalue/atomics.cas": super::Cas,
        },
    });
}

use bindings::wasi::keyvalue::{atomics, store};

/// The only store label the component may open.
pub const STORE_LABEL: &str = "default";

/// An open `bucket`: there is one store, so it carries nothing.
pub struct Bucket;

/// A `cas` handle: the key and the value it had when the handle was made.
pub struct Cas {
    key: String,
    snapshot: Option<Vec<u8>>,
}

/// Configuration shared by every instance: the database.
#[derive(Clone)]
pub struct WasiKeyValueCtx {
    store: Arc<SqliteStore>,
}

impl WasiKeyValueCtx {
    pub fn new(store: Arc<SqliteStore>) -> Self {
        WasiKeyValueCtx { store }
    }

    /// Runs a database call on the blocking pool, so a slow disk never stalls
    /// the async workers.
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteStore) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, store::Error> {
        let db = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&db)).await {
            Ok(result) => result.map_err(|e| store::Error::Other(e.0)),
            Err(e) => Err(store::Error::Other(format!("key-value task failed: {e}"))),
        }
    }
}

/// What the bindings see: the configuration and the instance's resource table.
pub struct WasiKeyValue<'a> {
    pub ctx: &'a WasiKeyValueCtx,
    pub table: &'a mut ResourceTable,
}

/// Adds `wasi:keyvalue/store` and `wasi:keyvalue/atomics` to `linker`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> WasiKeyValue<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<_, HasKeyValue>(linker, view)?;
    atomics::add_to_linker::<_, HasKeyValue>(linker, view)?;
    Ok(())
}

struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = WasiKeyValue<'a>;
}

impl WasiKeyValue<'_> {
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
        Ok(self.ctx.run(move |db| db.get(&key)).await)
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        self.check_bucket(&bucket)?;
        Ok(self.ctx.run(move |db| db.set(&key, &value)).await)
    }

    async fn delete(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        self.check_bucket(&bucket)?;
        Ok(self.ctx.run(move |db| db.delete(&key)).await)
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        self.check_bucket(&bucket)?;
        Ok(self.ctx.run(move |db| db.exists(&key)).await)
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        self.check_bucket(&bucket)?;
        let page = self
            .ctx
            .run(move |db| db.list_keys(cursor.as_deref(), LIST_PAGE_SIZE))
            .await;
        Ok(page.map(|p| store::KeyResponse {
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
        Ok(self.ctx.run(move |db| db.increment(&key, delta)).await)
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let Cas { key, snapshot } = self.table.delete(cas)?;
        let lookup = key.clone();
        let swapped = self
            .ctx
            .run(move |db| db.swap(&lookup, snapshot.as_deref(), &value))
            .await;
        match swapped {
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
        let lookup = self.table.get(&cas)?.key.clone();
        let value = match self.ctx.run(move |db| db.get(&lookup)).await {
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
