//! An in-memory key-value store that keeps bytes as Spin's stores do, and
//! a wrapper that makes it die after a number of writes, for the metadata
//! and crash tests.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use crate::meta::kv::{decode_counter, KeyValue, KvError, Swap};

/// How [`MemoryStore`] reports swaps, to test [`crate::meta::kv::update`] against the stores
/// Spin ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SwapReports {
    /// Spin's SQLite store: a swap from absent writes unconditionally, and
    /// the answer is true.
    #[default]
    Truthful,
    /// Spin 4.0.2's Redis store: swaps from absent are conditional too, and
    /// every swap is reported as failed, written or not.
    AlwaysFailed,
    /// The worst a store could do: written swaps reported as failed and
    /// lost ones as written.
    Inverted,
}

/// An in-memory store for unit tests that keeps bytes exactly as Spin's
/// stores do (counters are 8 bytes little-endian). `conflicts` makes the
/// next N swaps lose as if another writer had come first; `reports` picks
/// how swaps answer; the clock starts at `clock` and `pause` moves it on
/// instead of sleeping, so tests never depend on time. Each call also moves
/// it by `call_millis` (0 unless a test sets it), and `scheduled` holds
/// writes of another caller that land once the clock reaches their time.
/// `refuse_batches` makes it refuse to read several keys in one round trip,
/// as Spin 4.0.2's Redis store does.
pub struct MemoryStore {
    pub values: RefCell<BTreeMap<String, Vec<u8>>>,
    pub conflicts: RefCell<usize>,
    pub reports: Cell<SwapReports>,
    pub clock: Cell<i64>,
    pub call_millis: Cell<i64>,
    pub scheduled: RefCell<Vec<(i64, String, Vec<u8>)>>,
    pub refuse_batches: Cell<bool>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            values: RefCell::default(),
            conflicts: RefCell::default(),
            reports: Cell::default(),
            // 2026-01-01, mid-epoch.
            clock: Cell::new(1_767_225_610_000),
            call_millis: Cell::new(0),
            scheduled: RefCell::default(),
            refuse_batches: Cell::new(false),
        }
    }
}

impl MemoryStore {
    /// Moves the clock on by `millis` and lands the scheduled writes it
    /// reaches.
    fn advance(&self, millis: i64) {
        let now = self.clock.get() + millis;
        self.clock.set(now);
        let mut scheduled = self.scheduled.borrow_mut();
        let mut values = self.values.borrow_mut();
        scheduled.retain(|(at, key, value)| {
            let due = *at <= now;
            if due {
                values.insert(key.clone(), value.clone());
            }
            !due
        });
    }

    /// One store call: it takes `call_millis`.
    fn call(&self) {
        self.advance(self.call_millis.get());
    }
}

impl KeyValue for MemoryStore {
    type Cas = (String, Option<Vec<u8>>);

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.call();
        Ok(self.values.borrow().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.call();
        self.values.borrow_mut().insert(key.into(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.call();
        self.values.borrow_mut().remove(key);
        Ok(())
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.call();
        let mut values = self.values.borrow_mut();
        let current = match values.get(key) {
            Some(bytes) => decode_counter(bytes)
                .ok_or_else(|| KvError::Store(format!("{key} is not a counter")))?,
            None => 0,
        };
        let next = current + delta;
        values.insert(key.into(), next.to_le_bytes().to_vec());
        Ok(next)
    }

    fn get_batch(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        if self.refuse_batches.get() {
            self.call();
            return Err(KvError::Store("get-many refused".into()));
        }
        self.get_many(keys)
    }

    fn read_for_swap(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>), KvError> {
        let current = self.get(key)?;
        Ok(((key.to_string(), current.clone()), current))
    }

    fn swap(&self, (key, expected): Self::Cas, value: &[u8]) -> Result<Swap, KvError> {
        self.call();
        let mut conflicts = self.conflicts.borrow_mut();
        let reports = self.reports.get();
        let written = if *conflicts > 0 {
            *conflicts -= 1;
            false
        } else {
            let mut values = self.values.borrow_mut();
            let conditional = expected.is_some() || reports != SwapReports::Truthful;
            if conditional && values.get(&key) != expected.as_ref() {
                false
            } else {
                values.insert(key, value.to_vec());
                true
            }
        };
        Ok(match (reports, written) {
            (SwapReports::Truthful, true) | (SwapReports::Inverted, false) => Swap::Done,
            _ => Swap::Conflict,
        })
    }

    fn now_millis(&self) -> i64 {
        self.clock.get()
    }

    fn pause(&self, millis: u64) {
        self.advance(millis as i64);
    }
}

/// A store whose process dies after a number of writes: the write that
/// would exceed it fails, and so does every operation after it. Crash tests
/// run an operation once for every N and check what the Nth write left.
pub struct CrashAfter<'a> {
    pub inner: &'a MemoryStore,
    writes_left: Cell<usize>,
    crashed: Cell<bool>,
}

impl<'a> CrashAfter<'a> {
    pub fn new(inner: &'a MemoryStore, writes: usize) -> Self {
        CrashAfter {
            inner,
            writes_left: Cell::new(writes),
            crashed: Cell::new(false),
        }
    }

    /// Whether the process died before the operation finished.
    pub fn crashed(&self) -> bool {
        self.crashed.get()
    }

    fn alive(&self) -> Result<(), KvError> {
        if self.crashed.get() {
            Err(KvError::Store("the process died".into()))
        } else {
            Ok(())
        }
    }

    fn write(&self) -> Result<(), KvError> {
        self.alive()?;
        match self.writes_left.get() {
            0 => {
                self.crashed.set(true);
                self.alive()
            }
            n => {
                self.writes_left.set(n - 1);
                Ok(())
            }
        }
    }
}

impl KeyValue for CrashAfter<'_> {
    type Cas = (String, Option<Vec<u8>>);

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.alive()?;
        self.inner.get(key)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.write()?;
        self.inner.set(key, value)
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.write()?;
        self.inner.delete(key)
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.write()?;
        self.inner.increment(key, delta)
    }

    fn read_for_swap(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>), KvError> {
        self.alive()?;
        self.inner.read_for_swap(key)
    }

    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<Swap, KvError> {
        self.write()?;
        self.inner.swap(cas, value)
    }

    fn now_millis(&self) -> i64 {
        self.inner.now_millis()
    }

    fn pause(&self, millis: u64) {
        self.inner.pause(millis)
    }
}
