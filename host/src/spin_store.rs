//! Spin's default key-value store in WAL mode (`genreg spin-store`).
//!
//! `spin up` keeps its `default` store in SQLite, in `sqlite_key_value.db`
//! under its state directory (`.spin` unless `--state-dir` says otherwise),
//! opens it with SQLite's defaults and runs every write as a transaction of
//! its own, one at a time. In SQLite's default rollback-journal mode each
//! of those creates a journal file, syncs it, syncs the database and
//! deletes the journal; in WAL mode it appends to the log and syncs that
//! once. Both are durable (Spin leaves `synchronous` at FULL). SQLite keeps
//! the mode in the database file, so Spin's connection writes in WAL mode
//! once the file is set to it, without any change to Spin.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context as _};
use rusqlite::Connection;

/// The file of Spin's default store in its state directory.
pub const SPIN_STORE_FILE: &str = "sqlite_key_value.db";

/// Spin's state directory when `spin up` is not given `--state-dir`.
pub const DEFAULT_STATE_DIR: &str = ".spin";

/// How long the change waits for another connection (a running `spin up`)
/// to finish a transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The store file in a Spin state directory.
pub fn store_file(state_dir: &Path) -> PathBuf {
    state_dir.join(SPIN_STORE_FILE)
}

/// Sets the SQLite database at `file` to WAL mode, creating it (and its
/// directory) when absent; what it holds is kept. Answers the journal mode
/// it had before (`wal` when it already was).
pub fn use_wal(file: &Path) -> anyhow::Result<String> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let db = Connection::open(file).with_context(|| format!("opening {}", file.display()))?;
    db.busy_timeout(BUSY_TIMEOUT)?;
    let read_mode = |db: &Connection, pragma: &str| -> anyhow::Result<String> {
        db.query_row(pragma, [], |row| row.get::<_, String>(0))
            .with_context(|| format!("{}: setting its journal mode", file.display()))
    };
    let before = read_mode(&db, "PRAGMA journal_mode")?;
    let now = read_mode(&db, "PRAGMA journal_mode=WAL")?;
    ensure!(
        now.eq_ignore_ascii_case("wal"),
        "{}: SQLite kept journal mode {now}",
        file.display()
    );
    Ok(before.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_mode(file: &Path) -> String {
        Connection::open(file)
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn a_new_store_file_is_created_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let file = store_file(&dir.path().join("state"));
        assert_eq!(use_wal(&file).unwrap(), "delete");
        assert_eq!(journal_mode(&file), "wal");
    }

    #[test]
    fn an_existing_store_keeps_its_keys_and_a_second_run_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = store_file(dir.path());
        let db = Connection::open(&file).unwrap();
        db.execute_batch(
            "CREATE TABLE spin_key_value (store TEXT NOT NULL, key TEXT NOT NULL, \
             value BLOB NOT NULL, PRIMARY KEY (store, key));
             INSERT INTO spin_key_value VALUES ('default', 'v1/project/1', x'7b7d');",
        )
        .unwrap();
        drop(db);

        assert_eq!(use_wal(&file).unwrap(), "delete");
        assert_eq!(use_wal(&file).unwrap(), "wal");
        let db = Connection::open(&file).unwrap();
        let value: Vec<u8> = db
            .query_row(
                "SELECT value FROM spin_key_value WHERE key = 'v1/project/1'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(value, b"{}");
        assert_eq!(journal_mode(&file), "wal");
    }

    #[test]
    fn a_file_that_is_not_sqlite_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(SPIN_STORE_FILE);
        let text = "not a database, but long enough to have a header of sorts\n".repeat(100);
        std::fs::write(&file, &text).unwrap();
        let error = format!("{:#}", use_wal(&file).unwrap_err());
        assert!(error.contains("file is not a database"), "{error}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }
}
