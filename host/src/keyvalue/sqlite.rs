//! The SQLite key-value backend: one `kv(key, value)` table in the data
//! directory, the registry's default store (a rowid table: see
//! [`KV_COLUMNS`]).
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
//! Durability: the database is in WAL mode and a commit appends to the
//! log without waiting for the disk; [`SqliteStore::sync`] makes every
//! commit so far durable with one sync of the log, which the host calls
//! before a request that wrote answers (requests finishing together share
//! it). The same call copies the log into the database file (a
//! checkpoint, which waits on the disk) every [`CHECKPOINT_AFTER_CHANGES`]
//! rows; SQLite's own checkpoints, which would run inside whichever commit
//! fills the log, are left only as a bound on a log of large values.
//!
//! Batches: `get_many` looks its keys up one by one while it holds the
//! connection (as `wasi:keyvalue/batch` says, a batch is not atomic);
//! `set_many` and `delete_many` are one immediate transaction each, so a
//! batch takes the lock and commits once.
//!
//! The inherent methods are synchronous, for offline tools (`genreg gc`,
//! `genreg token revoke`). The [`Backend`] implementation runs a call of at
//! most [`IN_PLACE_KEYS`] keys that finds the connection free in place, on
//! the async worker: a read from SQLite's page cache and a commit appended
//! to the log wait for no sync, and each takes microseconds, less than
//! handing it to another thread and back (a 1 KiB download, which reads
//! once, costs 14% less CPU this way, a publish 7% to 15% less). A call
//! that finds the connection held by another call in place waits up to
//! [`IN_PLACE_WAIT`] for it, spinning on the worker, since that call
//! ends within microseconds. A call that finds it held longer, or held by
//! the pool, larger batches, listings, syncs and checkpoints go to tokio's
//! blocking pool, so a worker never waits for a sync. (A write in place
//! does wait while another process, such as `genreg token revoke`, holds
//! the file's write lock: for the length of that process's own
//! transaction.)

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::backend::{Backend, KeyPage, KeyValues, StoreError};
use crate::group_sync::GroupSync;

/// The one query every read runs, a `get_many` once per key: a lookup in
/// the key index with a cached statement costs less than one
/// `WHERE key IN (...)` query, for which SQLite first builds a temporary
/// index of the keys asked.
const SELECT_VALUE: &str = "SELECT value FROM kv WHERE key = ?1";

/// The `kv` table's columns. It is a rowid table: its key index holds only
/// the keys, and a value is read once, when it is asked for. (A `WITHOUT
/// ROWID` table keeps each value in its key's B-tree cell, so every seek
/// read in full the values too large for their page that it compared its
/// key with: a lookup of a short key read some 300 KiB in a store holding
/// packages of many files.)
const KV_COLUMNS: &str = "(key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL)";

/// The most keys a call may name and still run in place (see above);
/// larger batches, which copy more, go to the blocking pool.
const IN_PLACE_KEYS: usize = 16;

/// How long a call waits on the worker for a connection that a call in
/// place holds, before it goes to the blocking pool. Two workers serving
/// publishes find the connection held by a call in place on the other on
/// 12% to 14% of their calls; that call ends within microseconds, and
/// handing a call to a pool thread and back costs more CPU than waiting.
/// This bound lets 69% (on the disk) to 89% (in memory) of them wait.
const IN_PLACE_WAIT: Duration = Duration::from_micros(50);

/// Rows written between two checkpoints that [`SqliteStore::sync`] makes.
/// A row is one page of the log for a small value and up to about 20 for
/// a package record of 200 files, so the log holds from 4 MiB to the
/// bound of [`AUTO_CHECKPOINT_PAGES`] at a checkpoint (46 MiB measured
/// under publishes into one package), where SQLite's default would
/// checkpoint every 1,000 pages (4 MiB). Each checkpoint syncs the
/// database file, so fewer of them cost less.
const CHECKPOINT_AFTER_CHANGES: u64 = 1_000;

/// Pages of log (64 MiB) after which SQLite checkpoints by itself, inside
/// a commit: a bound for a log of many large values between two syncs.
const AUTO_CHECKPOINT_PAGES: u32 = 16_384;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(format!("sqlite: {e}"))
    }
}

/// The store: a `kv(key, value)` table. Clones share the connection.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Whether the connection's holder, if any, is a call in place (see
    /// [`SqliteStore::lock_in_place`]); a hint, set by each holder.
    held_in_place: Arc<AtomicBool>,
    /// The write-ahead log [`SqliteStore::sync`] flushes; none for a store
    /// in memory or opened read-only.
    log: Option<Arc<Log>>,
}

/// A database file's write-ahead log, and how much of it is on the disk:
/// writers are counted by the connection's count of changed rows.
struct Log {
    path: PathBuf,
    synced: GroupSync,
    /// The connection's count of changed rows at the last checkpoint.
    checkpointed: AtomicU64,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // A commit appends to the log without waiting for the disk; a
        // request's answer waits for `sync` instead (see there).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Checkpoints come from `sync`, off the async workers.
        conn.pragma_update(None, "wal_autocheckpoint", AUTO_CHECKPOINT_PAGES)?;
        let mut store = Self::init(conn)?;
        let mut log = path.as_os_str().to_owned();
        log.push("-wal");
        store.log = Some(Arc::new(Log {
            path: PathBuf::from(log),
            synced: GroupSync::default(),
            checkpointed: AtomicU64::new(0),
        }));
        Ok(store)
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

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(&format!("CREATE TABLE IF NOT EXISTS kv {KV_COLUMNS};"))?;
        move_to_rowid_table(&mut conn)?;
        Ok(SqliteStore::over(conn))
    }

    fn over(conn: Connection) -> Self {
        SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            held_in_place: Arc::new(AtomicBool::new(false)),
            log: None,
        }
    }

    /// Makes every write so far survive a crash of the machine. Commits
    /// append to the write-ahead log without waiting for the disk
    /// (`synchronous=NORMAL`: SQLite syncs the log before each checkpoint
    /// and the database after it), and a request that wrote calls this
    /// before its answer goes out. Requests that finish together share one
    /// sync of the log (a group commit): a caller whose writes an earlier
    /// caller's sync already covered returns without one. Every
    /// [`CHECKPOINT_AFTER_CHANGES`] rows, one caller then checkpoints.
    pub fn sync(&self) -> Result<(), StoreError> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        let written = self.conn().total_changes();
        log.synced.cover(
            written,
            || self.conn().total_changes(),
            || {
                std::fs::File::open(&log.path)
                    .and_then(|file| file.sync_data())
                    .map_err(|e| StoreError(format!("syncing {}: {e}", log.path.display())))
            },
        )?;
        self.checkpoint_if_due(log, written);
        Ok(())
    }

    /// Copies the log into the database file if [`CHECKPOINT_AFTER_CHANGES`]
    /// rows were written since the last copy and no other caller is making
    /// it. A passive checkpoint: it copies what it can without waiting for
    /// readers, and SQLite starts the log over once all of it is copied.
    /// The caller's writes are durable already, so a failed checkpoint is
    /// reported and left to the next sync rather than failing the caller.
    fn checkpoint_if_due(&self, log: &Log, written: u64) {
        let last = log.checkpointed.load(Ordering::Acquire);
        let due = written >= last.saturating_add(CHECKPOINT_AFTER_CHANGES);
        if !due
            || log
                .checkpointed
                .compare_exchange(last, written, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        let checkpoint = self
            .conn()
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        if let Err(e) = checkpoint {
            eprintln!("warning: checkpointing {}: {e}", log.path.display());
            let _ = log.checkpointed.compare_exchange(
                written,
                last,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (statements are atomic), so a poisoned lock is still usable.
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        self.held_in_place.store(false, Ordering::Relaxed);
        conn
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(read(&self.conn(), key)?)
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        Ok(write(&self.conn(), key, value)?)
    }

    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        Ok(delete(&self.conn(), key)?)
    }

    pub fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(exists(&self.conn(), key)?)
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
        increment(&mut self.conn(), key, delta)
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
        swap(&mut self.conn(), key, expected, value)
    }

    /// The values at `keys`, one pair per key in the order asked (`None`
    /// when absent).
    pub fn get_many(&self, keys: Vec<String>) -> Result<KeyValues, StoreError> {
        get_many(&self.conn(), &keys)
    }

    /// Writes every pair in one transaction; for a key given twice the last
    /// value wins.
    pub fn set_many(&self, key_values: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        set_many(&mut self.conn(), key_values)
    }

    /// Removes every key in one transaction; absent keys are skipped.
    pub fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        delete_many(&mut self.conn(), keys)
    }

    /// Runs `call` on the connection: in place if no one holds it, else on
    /// the blocking pool, where it waits for the connection (see the
    /// module's doc).
    async fn in_place_or_pool<R: Send + 'static>(
        &self,
        call: impl FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        match self.try_in_place(call) {
            Ok(done) => done,
            Err(call) => on_pool(self, move |db| call(&mut db.conn())).await,
        }
    }

    /// Runs `call` on the connection if [`SqliteStore::lock_in_place`]
    /// gets it; hands `call` back otherwise.
    fn try_in_place<R, F>(&self, call: F) -> Result<Result<R, StoreError>, F>
    where
        F: FnOnce(&mut Connection) -> Result<R, StoreError>,
    {
        match self.lock_in_place(IN_PLACE_WAIT) {
            Some(mut conn) => Ok(call(&mut conn)),
            None => Err(call),
        }
    }

    /// The connection, for a call in place: at once if it is free, else
    /// once a call in place that holds it lets go, spinning for at most
    /// `wait`. `None` if it stays held that long, or if a call on the
    /// blocking pool holds it (which may wait on the disk).
    fn lock_in_place(&self, wait: Duration) -> Option<MutexGuard<'_, Connection>> {
        // The clock is read only once the connection was found held.
        let mut waiting_since = None;
        let conn = loop {
            match self.conn.try_lock() {
                Ok(conn) => break conn,
                Err(TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(TryLockError::WouldBlock)
                    if self.held_in_place.load(Ordering::Relaxed)
                        && waiting_since.get_or_insert_with(Instant::now).elapsed() < wait =>
                {
                    for _ in 0..32 {
                        std::hint::spin_loop();
                    }
                }
                Err(TryLockError::WouldBlock) => return None,
            }
        };
        self.held_in_place.store(true, Ordering::Relaxed);
        Some(conn)
    }

    /// [`SqliteStore::in_place_or_pool`] for a call naming `keys` keys; a
    /// batch of more than [`IN_PLACE_KEYS`] always goes to the pool.
    async fn batch<R: Send + 'static>(
        &self,
        keys: usize,
        call: impl FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        if keys <= IN_PLACE_KEYS {
            self.in_place_or_pool(call).await
        } else {
            on_pool(self, move |db| call(&mut db.conn())).await
        }
    }
}

/// Moves a store whose `kv` table is `WITHOUT ROWID` (as stores were made
/// before) into a rowid table, in one transaction: a crash leaves the old
/// table whole, and the next start moves it again.
fn move_to_rowid_table(conn: &mut Connection) -> Result<(), StoreError> {
    let without_rowid = |conn: &Connection| -> rusqlite::Result<bool> {
        let sql: String = conn.query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'kv'",
            [],
            |row| row.get(0),
        )?;
        Ok(sql.to_ascii_uppercase().contains("WITHOUT ROWID"))
    };
    if !without_rowid(conn)? {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another process may have moved it while this one waited.
    if without_rowid(&tx)? {
        tx.execute_batch(&format!(
            "CREATE TABLE kv_rowid {KV_COLUMNS};
             INSERT INTO kv_rowid (key, value) SELECT key, value FROM kv;
             DROP TABLE kv;
             ALTER TABLE kv_rowid RENAME TO kv;"
        ))?;
    }
    tx.commit()?;
    Ok(())
}

/// [`SqliteStore::get_many`] on a connection already locked.
fn get_many(conn: &Connection, keys: &[String]) -> Result<KeyValues, StoreError> {
    let mut select = conn.prepare_cached(SELECT_VALUE)?;
    keys.iter()
        .map(|key| {
            let value = select.query_row([key], |row| row.get(0)).optional()?;
            Ok((key.clone(), value))
        })
        .collect()
}

/// Runs a database call of a clone of `store` on the blocking pool.
async fn on_pool<R: Send + 'static>(
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
        self.in_place_or_pool(move |conn| Ok(read(conn, &key)?))
            .await
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), StoreError> {
        self.in_place_or_pool(move |conn| Ok(write(conn, &key, &value)?))
            .await
    }

    async fn delete(&self, key: String) -> Result<(), StoreError> {
        self.in_place_or_pool(move |conn| Ok(delete(conn, &key)?))
            .await
    }

    async fn exists(&self, key: String) -> Result<bool, StoreError> {
        self.in_place_or_pool(move |conn| Ok(exists(conn, &key)?))
            .await
    }

    async fn list_keys(&self, cursor: Option<String>, limit: usize) -> Result<KeyPage, StoreError> {
        on_pool(self, move |db| db.list_keys(cursor.as_deref(), limit)).await
    }

    async fn increment(&self, key: String, delta: i64) -> Result<i64, StoreError> {
        self.in_place_or_pool(move |conn| increment(conn, &key, delta))
            .await
    }

    async fn swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool, StoreError> {
        self.in_place_or_pool(move |conn| swap(conn, &key, expected.as_deref(), &value))
            .await
    }

    async fn get_many(&self, keys: Vec<String>) -> Result<KeyValues, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.batch(keys.len(), move |conn| get_many(conn, &keys))
            .await
    }

    async fn set_many(&self, key_values: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
        if key_values.is_empty() {
            return Ok(());
        }
        self.batch(key_values.len(), move |conn| set_many(conn, &key_values))
            .await
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.batch(keys.len(), move |conn| delete_many(conn, &keys))
            .await
    }

    async fn sync(&self) -> Result<(), StoreError> {
        on_pool(self, |db| db.sync()).await
    }
}

fn read(conn: &Connection, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached(SELECT_VALUE)?
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

fn delete(conn: &Connection, key: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM kv WHERE key = ?1")?
        .execute([key])?;
    Ok(())
}

fn exists(conn: &Connection, key: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM kv WHERE key = ?1")?
        .exists([key])
}

/// [`SqliteStore::increment`] on a connection already locked.
fn increment(conn: &mut Connection, key: &str, delta: i64) -> Result<i64, StoreError> {
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

/// [`SqliteStore::swap`] on a connection already locked.
fn swap(
    conn: &mut Connection,
    key: &str,
    expected: Option<&[u8]>,
    value: &[u8],
) -> Result<bool, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if expected.is_some() && read(&tx, key)?.as_deref() != expected {
        return Ok(false);
    }
    write(&tx, key, value)?;
    tx.commit()?;
    Ok(true)
}

/// [`SqliteStore::set_many`] on a connection already locked.
fn set_many(conn: &mut Connection, key_values: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (key, value) in key_values {
        write(&tx, key, value)?;
    }
    tx.commit()?;
    Ok(())
}

/// [`SqliteStore::delete_many`] on a connection already locked.
fn delete_many(conn: &mut Connection, keys: &[String]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for key in keys {
        delete(&tx, key)?;
    }
    tx.commit()?;
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
    use std::sync::mpsc;

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

    fn table_sql(path: &Path) -> String {
        Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'kv'",
                [],
                |row| row.get(0),
            )
            .unwrap()
    }

    #[test]
    fn a_store_made_without_rowid_moves_to_a_rowid_table_with_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.sqlite3");
        let large = vec![9u8; 100_000];
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE kv (
                     key   TEXT PRIMARY KEY NOT NULL,
                     value BLOB NOT NULL
                 ) WITHOUT ROWID;",
            )
            .unwrap();
            let mut insert = old.prepare("INSERT INTO kv VALUES (?1, ?2)").unwrap();
            insert
                .execute(rusqlite::params!["a", b"one".to_vec()])
                .unwrap();
            insert
                .execute(rusqlite::params!["b", large.clone()])
                .unwrap();
            insert
                .execute(rusqlite::params!["n", 41i64.to_le_bytes().to_vec()])
                .unwrap();
        }
        assert!(table_sql(&path).contains("WITHOUT ROWID"));

        let store = SqliteStore::open(&path).unwrap();
        assert!(
            !table_sql(&path).contains("WITHOUT ROWID"),
            "{}",
            table_sql(&path)
        );
        assert_eq!(store.get("a").unwrap().as_deref(), Some(&b"one"[..]));
        assert!(store.get("b").unwrap() == Some(large.clone()));
        assert_eq!(store.increment("n", 1).unwrap(), 42);
        store.set("c", b"three").unwrap();
        drop(store);

        // Opening it again changes nothing.
        let store = SqliteStore::open(&path).unwrap();
        let page = store.list_keys(None, 10).unwrap();
        assert_eq!(page.keys, ["a", "b", "c", "n"]);
        assert!(store.get("b").unwrap() == Some(large));
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

    #[test]
    fn a_sync_covers_every_write_before_it_and_clones_share_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("kv.sqlite3")).unwrap();
        let synced = |s: &SqliteStore| s.log.as_ref().unwrap().synced.covered();
        s.set("a", b"1").unwrap();
        s.swap("a", Some(b"1"), b"2").unwrap();
        assert!(synced(&s) < s.conn().total_changes());
        s.sync().unwrap();
        assert_eq!(synced(&s), s.conn().total_changes());
        // A clone (another request) finds its write covered, or syncs it.
        let clone = s.clone();
        clone.increment("n", 1).unwrap();
        clone.sync().unwrap();
        assert_eq!(synced(&s), s.conn().total_changes());
        drop((s, clone));
        let reopened = SqliteStore::open(&dir.path().join("kv.sqlite3")).unwrap();
        assert_eq!(reopened.get("a").unwrap(), Some(b"2".to_vec()));
        // A store in memory has no log to sync.
        store().sync().unwrap();
    }

    #[test]
    fn get_many_answers_a_list_longer_than_sqlites_parameter_limit() {
        // More keys than even new SQLite builds bind in one statement
        // (32,766), each looked up on its own.
        let count = 40_000;
        let s = store();
        let present: Vec<(String, Vec<u8>)> = (0..count)
            .step_by(3)
            .map(|i| (format!("k{i}"), i.to_string().into_bytes()))
            .collect();
        s.set_many(&present).unwrap();
        // Asked backwards, so the answer's order cannot come from the table's.
        let asked: Vec<String> = (0..count).rev().map(|i| format!("k{i}")).collect();
        let got = s.get_many(asked.clone()).unwrap();
        assert_eq!(got.len(), count);
        for ((key, value), (i, asked_key)) in got.iter().zip((0..count).rev().zip(&asked)) {
            assert_eq!(key, asked_key);
            let expected = (i % 3 == 0).then(|| i.to_string().into_bytes());
            assert_eq!(value, &expected, "{key}");
        }
    }

    #[test]
    fn set_many_is_one_transaction() {
        let s = store();
        // A trigger refuses one key, so the batch fails midway.
        s.conn()
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON kv WHEN NEW.key = 'refused'
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        let batch = vec![
            ("first".to_string(), b"1".to_vec()),
            ("refused".to_string(), b"2".to_vec()),
        ];
        assert!(s.set_many(&batch).is_err());
        assert_eq!(s.get("first").unwrap(), None, "rolled back");
        // The connection is usable again after the failed batch.
        s.set_many(&batch[..1]).unwrap();
        assert_eq!(s.get("first").unwrap(), Some(b"1".to_vec()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_that_finds_the_connection_busy_waits_for_it_on_the_pool_not_a_worker() {
        let s = store();
        s.set("k", b"v").unwrap();
        let held = s.conn();
        // More waiting calls than workers, given time to start: reads and
        // writes, each of which runs in place when the connection is free.
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let store = s.clone();
                tokio::spawn(async move {
                    let key = format!("w{i}");
                    match i % 4 {
                        0 => Backend::get(&store, "k".into()).await,
                        1 => Backend::get_many(&store, vec!["k".into()])
                            .await
                            .map(|mut found| found.remove(0).1),
                        2 => Backend::set(&store, key, b"v".to_vec())
                            .await
                            .map(|()| Some(b"v".to_vec())),
                        _ => Backend::swap(&store, key, None, b"v".to_vec())
                            .await
                            .map(|written| written.then(|| b"v".to_vec())),
                    }
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(100));
        // The workers are still free for other tasks (waited for on this
        // thread, which is not one of them).
        let (sent, ran) = std::sync::mpsc::channel();
        tokio::spawn(async move { sent.send(42).unwrap() });
        let ran = ran.recv_timeout(std::time::Duration::from_secs(5));
        assert_eq!(ran, Ok(42), "no worker was free to run another task");
        assert!(calls.iter().all(|call| !call.is_finished()));
        drop(held);
        for call in calls {
            assert_eq!(call.await.unwrap().unwrap(), Some(b"v".to_vec()));
        }
        assert_eq!(s.get("w2").unwrap(), Some(b"v".to_vec()));
        assert_eq!(s.get("w3").unwrap(), Some(b"v".to_vec()));
    }

    /// Holds the connection on another thread as a call in place does,
    /// until the sender is dropped or sent to.
    fn hold_in_place(s: &SqliteStore) -> (std::thread::JoinHandle<()>, mpsc::Sender<()>) {
        let (held, is_held) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let store = s.clone();
        let holder = std::thread::spawn(move || {
            let _conn = store.lock_in_place(Duration::ZERO).unwrap();
            held.send(()).unwrap();
            let _ = released.recv();
        });
        is_held.recv().unwrap();
        (holder, release)
    }

    #[test]
    fn a_call_in_place_waits_briefly_for_another_in_place_and_never_for_the_pool() {
        let s = store();

        // Held in place, let go within the wait: the call gets it.
        let (holder, release) = hold_in_place(&s);
        let letting_go = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(release);
        });
        assert!(s.lock_in_place(Duration::from_secs(10)).is_some());
        holder.join().unwrap();
        letting_go.join().unwrap();

        // Held in place for longer than the wait: the call gives up.
        let (holder, release) = hold_in_place(&s);
        assert!(s.lock_in_place(Duration::from_millis(5)).is_none());
        drop(release);
        holder.join().unwrap();

        // Held by a call on the pool: the call does not wait at all (it
        // would wait the whole 10 s, since the holder lets go only after).
        let held = s.conn();
        let start = Instant::now();
        assert!(s.lock_in_place(Duration::from_secs(10)).is_none());
        assert!(start.elapsed() < Duration::from_secs(10));
        drop(held);
        assert!(s.lock_in_place(Duration::ZERO).is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn syncs_copy_the_log_into_the_database_every_so_many_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.sqlite3");
        let s = SqliteStore::open(&path).unwrap();
        let database_bytes = || std::fs::metadata(&path).unwrap().len();
        let value = vec![7u8; 4096];
        let rows = CHECKPOINT_AFTER_CHANGES - 10;
        for i in 0..rows {
            Backend::set(&s, format!("k{i}"), value.clone())
                .await
                .unwrap();
        }
        Backend::sync(&s).await.unwrap();
        // Still in the log only: neither the commits nor that sync copied.
        let before = database_bytes();
        assert!(before < 64 << 10, "{before} bytes");
        for i in rows..rows + 10 {
            Backend::set(&s, format!("k{i}"), value.clone())
                .await
                .unwrap();
        }
        Backend::sync(&s).await.unwrap();
        let after = database_bytes();
        let copied = CHECKPOINT_AFTER_CHANGES * value.len() as u64;
        assert!(after >= copied, "{after} bytes after the checkpoint");
        drop(s);
        let reopened = SqliteStore::open_existing(&path).unwrap();
        assert_eq!(reopened.get("k0").unwrap(), Some(value));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_backend_conformance_tests() {
        crate::keyvalue::conformance::check(store).await;
    }
}
