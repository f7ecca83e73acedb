//! The SQLite key-value backend: one `kv(key, value)` table in the data
//! directory, the registry's default store.
//!
//! Values are opaque bytes. Counters use the encoding Spin's own SQLite store
//! uses (an `i64`, 8 bytes little-endian), so data written by `increment`
//! reads back the same on both hosts.
//!
//! Concurrency: requests run in parallel, each on its own instance, and all
//! of them share one connection behind a mutex. Every statement is short, so
//! the lock is held for microseconds; the read-modify-write operations
//! (`increment`, `swap`) run inside an immediate transaction, so they stay
//! atomic even against another process that opens the same file.
//!
//! The inherent methods are synchronous, for offline tools (`genreg gc`,
//! `genreg token revoke`); the [`Backend`] implementation runs the same
//! calls on tokio's blocking pool, so a slow disk never stalls the async
//! workers.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::backend::{Backend, KeyPage, StoreError};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(format!("sqlite: {e}"))
    }
}

/// The store: a `kv(key, value)` table. Clones share the connection.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Self::init(conn)
    }

    /// Opens an existing database read-only, for offline tools (`genreg gc`):
    /// never creates the file or its table, so a wrong path is an error
    /// rather than an empty store.
    pub fn open_existing(path: &Path) -> Result<Self, StoreError> {
        use rusqlite::OpenFlags;
        if !path.is_file() {
            return Err(StoreError(format!(
                "no key-value database at {}",
                path.display()
            )));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let has_table = conn
            .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kv'")?
            .exists([])?;
        if !has_table {
            return Err(StoreError(format!(
                "{} is not a genreg key-value database (it has no kv table)",
                path.display()
            )));
        }
        Ok(SqliteStore::over(conn))
    }

    /// A throwaway database, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv (
                 key   TEXT PRIMARY KEY NOT NULL,
                 value BLOB NOT NULL
             ) WITHOUT ROWID;",
        )?;
        Ok(SqliteStore::over(conn))
    }

    fn over(conn: Connection) -> Self {
        SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        }
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (statements are atomic), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(read(&self.conn(), key)?)
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        write(&self.conn(), key, value)?;
        Ok(())
    }

    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("DELETE FROM kv WHERE key = ?1")?
            .execute([key])?;
        Ok(())
    }

    pub fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT 1 FROM kv WHERE key = ?1")?
            .exists([key])?)
    }

    /// Keys in byte order, at most `limit` of them, starting after `cursor`.
    pub fn list_keys(&self, cursor: Option<&str>, limit: usize) -> Result<KeyPage, StoreError> {
        let conn = self.conn();
        // One extra row tells whether another page follows.
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let mut keys = match cursor {
            None => conn
                .prepare_cached("SELECT key FROM kv ORDER BY key LIMIT ?1")?
                .query_map([fetch], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?,
            Some(after) => conn
                .prepare_cached("SELECT key FROM kv WHERE key > ?1 ORDER BY key LIMIT ?2")?
                .query_map(rusqlite::params![after, fetch], |row| {
                    row.get::<_, String>(0)
                })?
                .collect::<Result<Vec<_>, _>>()?,
        };
        let cursor = if keys.len() > limit {
            keys.truncate(limit);
            keys.last().cloned()
        } else {
            None
        };
        Ok(KeyPage { keys, cursor })
    }

    /// Adds `delta` to the counter at `key` (absent counts as 0) and returns
    /// the new value.
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = match read(&tx, key)? {
            None => 0,
            Some(bytes) => decode_counter(&bytes)?,
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(|| StoreError(format!("counter {key:?} would overflow")))?;
        write(&tx, key, &next.to_le_bytes())?;
        tx.commit()?;
        Ok(next)
    }

    /// Writes `value` only if the key still holds `expected`; with `None` it
    /// writes unconditionally, as Spin's SQLite store does. Returns whether
    /// the write happened.
    pub fn swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if expected.is_some() && read(&tx, key)?.as_deref() != expected {
            return Ok(false);
        }
        write(&tx, key, value)?;
        tx.commit()?;
        Ok(true)
    }
}

/// Runs a database call of a clone of `store` on the blocking pool.
async fn blocking<R: Send + 'static>(
    store: &SqliteStore,
    call: impl FnOnce(&SqliteStore) -> Result<R, StoreError> + Send + 'static,
) -> Result<R, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .unwrap_or_else(|e| Err(StoreError(format!("key-value task failed: {e}"))))
}

#[async_trait]
impl Backend for SqliteStore {
    async fn get(&self, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        blocking(self, move |db| db.get(&key)).await
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), StoreError> {
        blocking(self, move |db| db.set(&key, &value)).await
    }

    async fn delete(&self, key: String) -> Result<(), StoreError> {
        blocking(self, move |db| db.delete(&key)).await
    }

    async fn exists(&self, key: String) -> Result<bool, StoreError> {
        blocking(self, move |db| db.exists(&key)).await
    }

    async fn list_keys(&self, cursor: Option<String>, limit: usize) -> Result<KeyPage, StoreError> {
        blocking(self, move |db| db.list_keys(cursor.as_deref(), limit)).await
    }

    async fn increment(&self, key: String, delta: i64) -> Result<i64, StoreError> {
        blocking(self, move |db| db.increment(&key, delta)).await
    }

    async fn swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool, StoreError> {
        blocking(self, move |db| db.swap(&key, expected.as_deref(), &value)).await
    }
}

fn read(conn: &Connection, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT value FROM kv WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()
}

fn write(conn: &Connection, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO kv (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(rusqlite::params![key, value])?;
    Ok(())
}

fn decode_counter(bytes: &[u8]) -> Result<i64, StoreError> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError("value is not a counter (8-byte little-endian i64)".into()))?;
    Ok(i64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> SqliteStore {
        SqliteStore::open_in_memory().unwrap()
    }

    #[test]
    fn increment_is_atomic_across_threads() {
        let s = store();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                // Clones share one connection.
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        s.increment("n", 1).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.increment("n", 0).unwrap(), 800);
    }

    #[test]
    fn open_existing_never_creates_a_database() {
        let dir = std::env::temp_dir().join(format!(
            "genreg-test-open-existing-{}",
            crate::data_dir::random_hex(6)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kv.sqlite3");
        assert!(SqliteStore::open_existing(&path).is_err());
        assert!(!path.exists());

        // A SQLite file of something else is refused too.
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE other (x)")
            .unwrap();
        let refused = SqliteStore::open_existing(&path).err().unwrap();
        assert!(refused.0.contains("no kv table"), "{refused}");

        // Garbage is not a database.
        let garbage = dir.join("garbage");
        std::fs::write(&garbage, vec![7u8; 4096]).unwrap();
        assert!(SqliteStore::open_existing(&garbage).is_err());

        std::fs::remove_file(&path).unwrap();
        let store = SqliteStore::open(&path).unwrap();
        store.set("k", b"v").unwrap();
        drop(store);
        let reopened = SqliteStore::open_existing(&path).unwrap();
        assert_eq!(reopened.get("k").unwrap().as_deref(), Some(&b"v"[..]));
        assert!(reopened.set("k", b"w").is_err(), "read-only");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_backend_conformance_tests() {
        crate::keyvalue::conformance::check(store).await;
    }
}
