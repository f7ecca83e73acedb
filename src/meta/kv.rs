//! The small key-value interface the metadata code is written against.
//!
//! It is the shape of `wasi:keyvalue` store + atomics: plain reads and writes,
//! atomic counters, and compare-and-swap where a swap fails if the value
//! changed since it was read. The component plugs in the WASI store; unit
//! tests plug in [`MemoryStore`].
//!
//! One trap shapes [`update`]: Spin's SQLite store cannot swap "from absent"
//! (it then writes unconditionally), so compare-and-swap alone cannot create
//! a key exactly once. Keys are therefore created by whoever first raises the
//! key's creation counter to 1 (counters are atomic on every store), changed
//! afterwards only by compare-and-swap from a present value, and never
//! deleted (records that go away are marked, not removed).

use std::cell::RefCell;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key-value store: {0}")]
pub struct KvError(pub String);

/// What a compare-and-swap did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    Done,
    /// Someone changed the value since it was read; read again and retry.
    Conflict,
}

pub trait KeyValue {
    /// A value read for a later [`KeyValue::swap`].
    type Cas;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError>;
    fn delete(&self, key: &str) -> Result<(), KvError>;
    /// Atomically adds `delta` to the counter at `key` (absent counts as 0)
    /// and returns the new value.
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError>;
    /// Reads `key` and remembers what was read.
    fn read_for_swap(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>), KvError>;
    /// Writes `value` only if `key` still holds what `cas` read. When `cas`
    /// read nothing, stores may write unconditionally (Spin's SQLite does).
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<Swap, KvError>;
}

/// How many times a compare-and-swap loop retries before giving up. Every
/// conflict means another writer succeeded, so this is only reached if the
/// store itself misbehaves.
pub const MAX_SWAP_ATTEMPTS: usize = 10_000;

/// Outcome of one step of an [`update`] loop.
pub enum Step<T, E> {
    /// Write this value and return `T` once the swap succeeds.
    Write(Vec<u8>, T),
    /// Leave the value alone and return `T`.
    Keep(T),
    /// Stop with this error.
    Fail(E),
}

/// The counter whose first increment grants the right to create `key`.
pub fn creation_claim(key: &str) -> String {
    format!("{key}#created")
}

/// Read-modify-write of one key: `step` sees the current value and decides;
/// on conflict it runs again on the newer value.
///
/// An existing value is replaced by compare-and-swap. An absent one is
/// created only by the caller that wins the key's creation claim; the others
/// read again until the winner's value is there and then change that.
pub fn update<K: KeyValue, T, E: From<KvError>>(
    kv: &K,
    key: &str,
    mut step: impl FnMut(Option<Vec<u8>>) -> Step<T, E>,
) -> Result<T, E> {
    let mut won_claim: Option<bool> = None;
    for _ in 0..MAX_SWAP_ATTEMPTS {
        let (cas, current) = kv.read_for_swap(key)?;
        let exists = current.is_some();
        match step(current) {
            Step::Keep(result) => return Ok(result),
            Step::Fail(error) => return Err(error),
            Step::Write(value, result) if exists => match kv.swap(cas, &value)? {
                Swap::Done => return Ok(result),
                Swap::Conflict => continue,
            },
            Step::Write(value, result) => {
                let won = match won_claim {
                    Some(won) => won,
                    None => *won_claim.insert(kv.increment(&creation_claim(key), 1)? == 1),
                };
                if won {
                    kv.set(key, &value)?;
                    return Ok(result);
                }
                // Another caller is creating it right now: read again.
            }
        }
    }
    Err(KvError(format!("too many conflicting writes to {key}")).into())
}

/// An in-memory store for unit tests, with Spin's compare-and-swap
/// semantics (a swap from absent writes unconditionally). `conflicts` makes
/// the next N swaps fail as if another writer had come first.
#[derive(Default)]
pub struct MemoryStore {
    pub values: RefCell<BTreeMap<String, Vec<u8>>>,
    pub conflicts: RefCell<usize>,
}

impl KeyValue for MemoryStore {
    type Cas = (String, Option<Vec<u8>>);

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.values.borrow().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.values.borrow_mut().insert(key.into(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.values.borrow_mut().remove(key);
        Ok(())
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        let mut values = self.values.borrow_mut();
        let current = match values.get(key) {
            Some(bytes) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| KvError(format!("{key} is not a counter")))?,
            None => 0,
        };
        let next = current + delta;
        values.insert(key.into(), next.to_string().into_bytes());
        Ok(next)
    }

    fn read_for_swap(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>), KvError> {
        let current = self.get(key)?;
        Ok(((key.to_string(), current.clone()), current))
    }

    fn swap(&self, (key, expected): Self::Cas, value: &[u8]) -> Result<Swap, KvError> {
        let mut conflicts = self.conflicts.borrow_mut();
        if *conflicts > 0 {
            *conflicts -= 1;
            return Ok(Swap::Conflict);
        }
        let mut values = self.values.borrow_mut();
        if expected.is_some() && values.get(&key) != expected.as_ref() {
            return Ok(Swap::Conflict);
        }
        values.insert(key, value.to_vec());
        Ok(Swap::Done)
    }
}
