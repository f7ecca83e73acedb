//! Spin's default key-value store driven alone, as `spin up` drives it,
//! with a publish's store calls and nothing else: how fast, and with what
//! tail, the store itself can serve them where the bench keeps its files.
//!
//! `spin up` keeps the store in one SQLite connection behind one lock
//! (Spin 4.0.2, `key-value-spin`): every call takes the lock, and each
//! write is a transaction of its own, synced before the lock is let go.
//! Here each caller is a thread making, per publish, the calls the load
//! bench's `genreg` log counted for that phase, with the statements Spin
//! runs: reads of one key, compare-and-swaps of the one key all callers
//! change (the index shard a new version enters, the record a publish into
//! one package rewrites), read again and retried when lost, and writes of
//! new keys (an increment as for a creation claim, a set as for a new
//! record, in turn). No component, no HTTP and no S3 take part, so what a
//! publish costs here is what the store alone makes it wait.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{named_params, params, Connection, OptionalExtension as _};

use super::bench_dir::{temp_dir, Journal};

/// The store calls of one publish, without the retries of lost swaps (the
/// model loses its own).
#[derive(Clone, Copy, Debug)]
pub struct StoreCalls {
    /// Reads besides each swap's own.
    pub reads: u32,
    pub swaps: u32,
    pub writes: u32,
}

/// What the store alone served.
pub struct Served {
    pub publishes_per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// The value every caller swaps: a shard or record of about this size.
const SWAPPED_BYTES: usize = 16 << 10;
/// A new key's value: a package record with one file.
const WRITTEN_BYTES: usize = 400;
/// The key every read reads (a token, a project).
const READ_KEY: &str = "read";
/// The key every caller swaps.
const SWAPPED_KEY: &str = "swapped";
/// Spin's read of one key.
const SELECT: &str = "SELECT value FROM spin_key_value WHERE store=$1 AND key=$2";
/// Spin's write of one key, in `set` and in `increment`.
const UPSERT: &str = "INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3) \
                      ON CONFLICT(store, key) DO UPDATE SET value=$3";

/// Runs `callers` threads making `calls` per publish on a new store file
/// (in `journal` mode) for `duration`.
pub fn serve(
    journal: Journal,
    callers: usize,
    calls: StoreCalls,
    duration: Duration,
) -> anyhow::Result<Served> {
    let dir = temp_dir()?;
    let file = dir.path().join("spin-store-alone.db");
    if journal == Journal::Wal {
        genreg::spin_store::use_wal(&file)?;
    }
    let store = Arc::new(Store::open(&file)?);
    store.set(READ_KEY, &[b'r'; 300])?;
    store.set(SWAPPED_KEY, &vec![b's'; SWAPPED_BYTES])?;

    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..callers)
        .map(|_| {
            let (store, stop, next) = (store.clone(), stop.clone(), next.clone());
            std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
                let mut took = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let publish = next.fetch_add(1, Ordering::Relaxed);
                    let at = Instant::now();
                    store.publish(publish, calls)?;
                    took.push(at.elapsed());
                }
                Ok(took)
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut took = Vec::new();
    for thread in threads {
        let joined = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a caller panicked"))?;
        took.extend(joined?);
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(!took.is_empty(), "no publish finished");
    took.sort();
    let at = |p: f64| took[((took.len() - 1) as f64 * p).round() as usize];
    Ok(Served {
        publishes_per_second: took.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    })
}

/// One connection behind one lock, as Spin keeps it.
struct Store {
    connection: Mutex<Connection>,
}

impl Store {
    fn open(file: &std::path::Path) -> anyhow::Result<Store> {
        let connection = Connection::open(file)?;
        connection.execute(
            "CREATE TABLE IF NOT EXISTS spin_key_value (store TEXT NOT NULL, \
             key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (store, key))",
            [],
        )?;
        Ok(Store {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One publish's calls, `publish` naming its new keys and its change:
    /// a read before each swap and write (the component reads what it
    /// changes and confirms what it wrote), the swaps before the writes (a
    /// new package's index entry comes before its record), the reads left
    /// over at the end.
    fn publish(&self, publish: u64, calls: StoreCalls) -> anyhow::Result<()> {
        let changes = calls.swaps + calls.writes;
        let reads_between = calls.reads.min(changes);
        for change in 0..changes {
            if change < reads_between {
                self.get(READ_KEY)?;
            }
            if change < calls.swaps {
                self.change_swapped(publish)?;
                continue;
            }
            let write = change - calls.swaps;
            let key = format!("new/{publish}/{write}");
            if write.is_multiple_of(2) {
                self.increment(&key)?;
            } else {
                self.set(&key, &[b'w'; WRITTEN_BYTES])?;
            }
        }
        for _ in reads_between..calls.reads {
            self.get(READ_KEY)?;
        }
        Ok(())
    }

    fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self
            .lock()
            .prepare_cached(SELECT)?
            .query_row(params!["default", key], |row| row.get(0))
            .optional()?)
    }

    /// Spin's `set`: an upsert, committed on its own.
    fn set(&self, key: &str, value: &[u8]) -> anyhow::Result<()> {
        self.lock()
            .prepare_cached(UPSERT)?
            .execute(params!["default", key, value])?;
        Ok(())
    }

    /// Spin's `increment`: read and upsert in one transaction.
    fn increment(&self, key: &str) -> anyhow::Result<()> {
        let mut connection = self.lock();
        let transaction = connection.transaction()?;
        let current: Option<Vec<u8>> = transaction
            .prepare_cached(SELECT)?
            .query_row(params!["default", key], |row| row.get(0))
            .optional()?;
        let count = current
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map_or(0, i64::from_le_bytes);
        transaction.prepare_cached(UPSERT)?.execute(params![
            "default",
            key,
            (count + 1).to_le_bytes()
        ])?;
        transaction.commit()?;
        Ok(())
    }

    /// A compare-and-swap of the shared key, as Spin runs one (its current
    /// value read, then an update on that value), read again and retried
    /// until it lands.
    fn change_swapped(&self, publish: u64) -> anyhow::Result<()> {
        loop {
            let current = self
                .get(SWAPPED_KEY)?
                .ok_or_else(|| anyhow::anyhow!("the swapped key is gone"))?;
            let mut changed = current.clone();
            let at = (publish as usize * 7) % changed.len();
            changed[at] = changed[at].wrapping_add(1);
            let updated = self
                .lock()
                .prepare_cached(
                    "UPDATE spin_key_value SET value=:new WHERE store='default' \
                     AND key=:key AND value=:old",
                )?
                .execute(named_params! {
                    ":new": changed,
                    ":key": SWAPPED_KEY,
                    ":old": current,
                })?;
            if updated == 1 {
                return Ok(());
            }
        }
    }
}
