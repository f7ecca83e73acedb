//! Where the benches keep their files (data directories, Spin's state, the
//! embedded S3 server's objects), and what a write costs there.
//!
//! `GENREG_BENCH_DIR=<dir>` puts them under `<dir>`, e.g. `/dev/shm` to
//! take the disk's flushes out of a run; otherwise they go to the system's
//! temporary directory.

use std::time::{Duration, Instant};

/// The variable that moves the benches' files.
pub const BENCH_DIR: &str = "GENREG_BENCH_DIR";

/// A new temporary directory under [`BENCH_DIR`], or the system's.
pub fn temp_dir() -> std::io::Result<tempfile::TempDir> {
    match std::env::var_os(BENCH_DIR) {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
}

/// How Spin's store file journals its writes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(dead_code)] // each bench uses the modes it reports
pub enum Journal {
    /// SQLite's default, as Spin creates the file.
    Rollback,
    /// After `genreg spin-store`.
    Wal,
}

/// What one write costs Spin's default store where the benches keep their
/// files: Spin's SQLite store runs every write as a transaction of its own
/// (synchronous FULL, SQLite's default), one at a time on one connection.
/// Half of the writes add a key and half replace one of 50, as publishes
/// do (a record and its claim are new keys, an index shard is replaced);
/// a store that only replaces keys seldom waits for the disk. Returns the
/// mean (most commits return at once and some wait for the disk, so the
/// mean is what a stream of writes costs), the median and the 99th
/// percentile.
pub fn sqlite_write_cost(journal: Journal) -> anyhow::Result<(Duration, Duration, Duration)> {
    const WRITES: usize = 600;
    let dir = temp_dir()?;
    let file = dir.path().join("floor.db");
    if journal == Journal::Wal {
        genreg::spin_store::use_wal(&file)?;
    }
    let db = rusqlite::Connection::open(&file)?;
    db.execute(
        "CREATE TABLE kv (store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, \
         PRIMARY KEY (store, key))",
        [],
    )?;
    let value = vec![b'x'; 1024];
    let mut each = Vec::with_capacity(WRITES);
    let started = Instant::now();
    for i in 0..WRITES {
        let key = if i % 2 == 0 {
            format!("new/{i}")
        } else {
            format!("replaced/{}", i % 50)
        };
        let one = Instant::now();
        db.execute(
            "INSERT INTO kv VALUES ('default', ?1, ?2) \
             ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
            rusqlite::params![key, value],
        )?;
        each.push(one.elapsed());
    }
    let mean = started.elapsed() / WRITES as u32;
    each.sort();
    let at = |p: f64| each[((each.len() - 1) as f64 * p).round() as usize];
    Ok((mean, at(0.5), at(0.99)))
}

/// What one durable 1 KiB object costs where the benches keep their files,
/// written the way `genreg`'s S3 server stores a small PutObject: a new
/// temporary file written and its data synced, renamed into a directory
/// the objects share, and that directory synced; one at a time. Returns the
/// mean time and the mean CPU time of the writing thread (the kernel's
/// work in its system calls included): what a durable publish costs
/// there before any of the registry's own work.
#[allow(dead_code)] // the load bench reports it
pub fn durable_object_cost() -> anyhow::Result<(Duration, Duration)> {
    use std::io::Write as _;
    /// The CPU time the calling thread has used, in user and kernel mode.
    fn thread_cpu_time() -> Duration {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid timespec for the call to fill in.
        let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
        assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
    }

    const OBJECTS: u32 = 400;
    let dir = temp_dir()?;
    let (temporary, objects) = (dir.path().join("tmp"), dir.path().join("files"));
    std::fs::create_dir(&temporary)?;
    std::fs::create_dir(&objects)?;
    let body = vec![b'x'; 1024];
    let cpu_started = thread_cpu_time();
    let started = Instant::now();
    for i in 0..OBJECTS {
        let written = temporary.join(format!("put-{i}"));
        let mut file = std::fs::File::create_new(&written)?;
        file.write_all(&body)?;
        file.sync_data()?;
        std::fs::rename(&written, objects.join(format!("{i:032x}")))?;
        std::fs::File::open(&objects)?.sync_all()?;
    }
    let elapsed = started.elapsed();
    let cpu = thread_cpu_time() - cpu_started;
    Ok((elapsed / OBJECTS, cpu / OBJECTS))
}
