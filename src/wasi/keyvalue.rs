//! [`KeyValue`] over `wasi:keyvalue` (store, atomics and batch), as Spin
//! provides it.

use std::cell::Cell;
use std::collections::HashMap;

use spin_sdk::wit::wasi::keyvalue::atomics::{self, Cas, CasError};
use spin_sdk::wit::wasi::keyvalue::batch;
use spin_sdk::wit::wasi::keyvalue::store::{self, Bucket, Error};

use crate::meta::kv::{KeyValue, KvError, Swap};

/// The `default` store, which spin.toml grants the component, for one
/// request.
pub struct WasiKv {
    bucket: Bucket,
    /// Whether the store refused a `get-many` in this request: it is not
    /// asked again, each key is read on its own.
    batch_refused: Cell<bool>,
}

fn kv_error(e: Error) -> KvError {
    KvError::Store(match e {
        Error::NoSuchStore => "no such store".into(),
        Error::AccessDenied => "access denied".into(),
        Error::Other(s) => s,
    })
}

impl WasiKv {
    pub fn open_default() -> Result<WasiKv, KvError> {
        Ok(WasiKv {
            bucket: store::open("default").map_err(kv_error)?,
            batch_refused: Cell::new(false),
        })
    }
}

impl KeyValue for WasiKv {
    type Cas = Cas;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.bucket.get(key).map_err(kv_error)
    }

    /// One `get-many`, or each key on its own where the store refuses it
    /// (and a real store failure shows there).
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        if keys.len() > 1 {
            if let Ok(values) = self.get_batch(keys) {
                return Ok(values);
            }
        }
        keys.iter().map(|key| self.get(key)).collect()
    }

    /// One `get-many`. Spin's SQLite store answers only the keys present,
    /// in any order, so the answer is matched by key. Spin 4.0.2's Redis
    /// store sends `KEYS` with the keys instead of `MGET`, which Redis
    /// refuses for more than one key: after one refusal the store is not
    /// asked again in this request.
    fn get_batch(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        if self.batch_refused.get() {
            return Err(KvError::Store(
                "the store refused get-many earlier in this request".into(),
            ));
        }
        let found = batch::get_many(&self.bucket, keys).map_err(|e| {
            self.batch_refused.set(true);
            kv_error(e)
        })?;
        let found: HashMap<String, Option<Vec<u8>>> = found.into_iter().collect();
        Ok(keys
            .iter()
            .map(|key| found.get(key).cloned().flatten())
            .collect())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.bucket.set(key, value).map_err(kv_error)
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.bucket.delete(key).map_err(kv_error)
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        atomics::increment(&self.bucket, key, delta).map_err(kv_error)
    }

    fn read_for_swap(&self, key: &str) -> Result<(Cas, Option<Vec<u8>>), KvError> {
        let cas = Cas::new(&self.bucket, key).map_err(kv_error)?;
        let current = cas.current().map_err(kv_error)?;
        Ok((cas, current))
    }

    fn swap(&self, cas: Cas, value: &[u8]) -> Result<Swap, KvError> {
        match atomics::swap(cas, value) {
            Ok(()) => Ok(Swap::Done),
            Err(CasError::CasFailed(_)) => Ok(Swap::Conflict),
            Err(CasError::StoreError(e)) => Err(kv_error(e)),
        }
    }

    fn now_millis(&self) -> i64 {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
    }

    fn pause(&self, millis: u64) {
        std::thread::sleep(std::time::Duration::from_millis(millis));
    }
}
