//! The narrow trait a key-value backend implements, as Spin's
//! `factor-key-value` `Store` does: the `wasi:keyvalue` host in
//! [`super`] turns every guest call into one of these, so a new backend
//! (Redis, say) is one file implementing [`Backend`], checked by the shared
//! tests in `keyvalue/conformance.rs`.
//!
//! Keys and values arrive owned, so a backend can move them to a blocking
//! thread or onto a connection without copying.
//!
//! The batch methods (`get_many`, `set_many`, `delete_many`) serve
//! `wasi:keyvalue/batch`: each is one round trip to the store (one query or
//! transaction, one Redis command), which is their whole point.

use std::fmt;

use async_trait::async_trait;

/// A failure of the backend itself (I/O, a lost connection, corruption, a
/// value that is not a counter). Surfaces to the guest as
/// `error::other(message)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// One page of keys and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    pub keys: Vec<String>,
    /// Pass back to get the next page; `None` when this was the last.
    pub cursor: Option<String>,
}

/// A `get_many` answer: every key asked for, in the order asked, with its
/// value or `None` when absent.
pub type KeyValues = Vec<(String, Option<Vec<u8>>)>;

/// What the component's `wasi:keyvalue` calls need of a store. Values are
/// opaque bytes; one store serves every request at once, so every method
/// must be safe to call concurrently.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The value at `key`, or `None` when absent.
    async fn get(&self, key: String) -> Result<Option<Vec<u8>>, StoreError>;

    /// Writes `value` at `key`, replacing any value.
    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), StoreError>;

    /// Removes `key`; removing an absent key is not an error.
    async fn delete(&self, key: String) -> Result<(), StoreError>;

    async fn exists(&self, key: String) -> Result<bool, StoreError>;

    /// At most `limit` keys after `cursor` (the last key of the previous
    /// page), in byte order, with a cursor when more follow.
    async fn list_keys(&self, cursor: Option<String>, limit: usize) -> Result<KeyPage, StoreError>;

    /// Atomically adds `delta` to the counter at `key` (absent counts as 0)
    /// and returns the new value. Counters are stored as Spin's store of the
    /// same kind keeps them: SQLite an `i64`, 8 bytes little-endian; Redis
    /// decimal text.
    async fn increment(&self, key: String, delta: i64) -> Result<i64, StoreError>;

    /// Atomically writes `value` at `key` if the key still holds `expected`,
    /// and says whether it did. With `expected` = `None` the write is
    /// unconditional, as in Spin's SQLite store (so compare-and-swap cannot
    /// create a key exactly once; the component does not rely on it).
    async fn swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool, StoreError>;

    /// The values at `keys`, in one round trip (a backend may split a list
    /// longer than its store takes at once): one pair per key asked for,
    /// in the order asked (a key asked twice is answered twice), `None` for
    /// an absent key. That is what `wasi:keyvalue/batch` documents; Spin's
    /// SQLite store answers only the keys present, in any order, and the
    /// component copes with both.
    async fn get_many(&self, keys: Vec<String>) -> Result<KeyValues, StoreError>;

    /// Writes every pair, in one round trip; for a key given twice the
    /// last value wins. `wasi:keyvalue/batch` promises no atomicity; both
    /// backends here happen to write all or nothing (one SQLite
    /// transaction, one Redis `MSET`).
    async fn set_many(&self, key_values: Vec<(String, Vec<u8>)>) -> Result<(), StoreError>;

    /// Removes every key, in one round trip; absent keys are skipped.
    async fn delete_many(&self, keys: Vec<String>) -> Result<(), StoreError>;

    /// Makes every write so far survive a crash of the machine. A request
    /// that wrote waits for it before its answer goes out; stores whose
    /// writes are durable when they return have nothing to do.
    async fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
