//! The Redis key-value backend (`genreg up --kv redis://HOST:PORT/DB`).
//!
//! The data layout is the one Spin's Redis store writes, so a `genreg` and a
//! `spin up` can share one database: keys as the component names them (no
//! prefix), values as raw bytes, counters as Redis keeps them after
//! `INCRBY` (decimal text; `genreg_layout::counter::decode` reads both
//! encodings).
//!
//! Connections:
//! - Plain commands (`GET`, `SET`, `DEL`, `EXISTS`, `INCRBY`, `SCAN`, and
//!   for batches `MGET`, `MSET`, `DEL k1 k2 ...`) share one multiplexed
//!   connection that reconnects by itself ([`ConnectionManager`]). A batch
//!   is one command, so one round trip; an empty batch sends nothing (Redis
//!   refuses these commands without keys).
//! - A compare-and-swap needs `WATCH`, and Redis scopes `WATCH` to a
//!   connection, so each swap takes a connection of its own from a small
//!   pool: `WATCH key` + `GET key` in one round trip, then, if the value is
//!   the expected one, `MULTI` / `SET` / `EXEC` in a second. Redis aborts the
//!   `EXEC` (a nil reply) when anything wrote the key after the `WATCH`; that
//!   is reported as a lost swap, never as a write (Spin 4.0.2's store gets
//!   both answers wrong; see README). A connection whose swap failed midway
//!   is closed rather than reused, so no `WATCH` outlives its swap.
//!
//! Timeouts: connecting, each command's answer, and each whole operation are
//! bounded ([`RedisTimeouts`]); a store that stops answering becomes an
//! error for the guest, never a stuck request.
//!
//! `list-keys` walks the whole keyspace with `SCAN` (Redis keeps no order)
//! and keeps the smallest keys after the cursor, so each page costs a pass
//! over every key. The component never lists keys while serving requests;
//! only offline tools would.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, RedisError};

use super::backend::{Backend, KeyPage, KeyValues, StoreError};

/// How long anything that talks to Redis may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedisTimeouts {
    /// Opening a TCP connection (and its handshake).
    pub connect: Duration,
    /// One command's (or one pipeline's) answer.
    pub command: Duration,
    /// One backend call from start to end, reconnecting included.
    pub operation: Duration,
}

impl Default for RedisTimeouts {
    fn default() -> Self {
        RedisTimeouts {
            connect: Duration::from_secs(5),
            command: Duration::from_secs(5),
            operation: Duration::from_secs(15),
        }
    }
}

/// Idle compare-and-swap connections kept for reuse; more are opened when
/// more swaps run at once, and closed after.
const IDLE_SWAP_CONNECTIONS: usize = 16;

/// Keys asked for per `SCAN` step.
const SCAN_BATCH: usize = 1000;

/// The store: a Redis database.
pub struct RedisStore {
    client: Client,
    shared: ConnectionManager,
    idle_swap_connections: Mutex<Vec<MultiplexedConnection>>,
    timeouts: RedisTimeouts,
}

fn store_error(e: RedisError) -> StoreError {
    StoreError(format!("redis: {e}"))
}

impl RedisStore {
    /// Checks a `redis://HOST[:PORT][/DB]` URL without connecting.
    pub fn check_url(url: &str) -> Result<(), StoreError> {
        open_client(url).map(|_| ())
    }

    /// Connects to the database at `url` (`redis://HOST[:PORT][/DB]`,
    /// `redis://:PASSWORD@HOST...` for a password); fails when it does not
    /// answer within the connect timeout.
    pub async fn connect(url: &str, timeouts: RedisTimeouts) -> Result<Self, StoreError> {
        let client = open_client(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeouts.connect))
            .set_response_timeout(Some(timeouts.command))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let shared = within(
            timeouts.operation,
            client.get_connection_manager_with_config(config),
        )
        .await?
        .map_err(|e| StoreError(format!("connecting to Redis at {url}: {e}")))?;
        Ok(RedisStore {
            client,
            shared,
            idle_swap_connections: Mutex::new(Vec::new()),
            timeouts,
        })
    }

    /// Runs `call` with a clone of the shared connection, within the
    /// operation timeout.
    async fn on_shared<R, F>(
        &self,
        call: impl FnOnce(ConnectionManager) -> F,
    ) -> Result<R, StoreError>
    where
        F: Future<Output = Result<R, RedisError>>,
    {
        within(self.timeouts.operation, call(self.shared.clone()))
            .await?
            .map_err(store_error)
    }

    /// An idle swap connection, or a new one.
    async fn take_swap_connection(&self) -> Result<MultiplexedConnection, StoreError> {
        let idle = self.idle_connections().pop();
        if let Some(connection) = idle {
            return Ok(connection);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeouts.connect))
            .set_response_timeout(Some(self.timeouts.command));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(store_error)
    }

    /// Keeps a connection with no `WATCH` pending for the next swap.
    fn return_swap_connection(&self, connection: MultiplexedConnection) {
        let mut idle = self.idle_connections();
        if idle.len() < IDLE_SWAP_CONNECTIONS {
            idle.push(connection);
        }
    }

    fn idle_connections(&self) -> std::sync::MutexGuard<'_, Vec<MultiplexedConnection>> {
        // The list is only pushed to and popped from: a poisoned lock still
        // holds usable connections.
        self.idle_swap_connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// `WATCH`, compare, then `MULTI`/`SET`/`EXEC` on `connection`. On
    /// success (whatever the answer) the connection has no `WATCH` left.
    async fn watched_swap(
        connection: &mut MultiplexedConnection,
        key: &str,
        expected: &[u8],
        value: &[u8],
    ) -> Result<bool, RedisError> {
        let (current,): (Option<Vec<u8>>,) = redis::pipe()
            .cmd("WATCH")
            .arg(key)
            .ignore()
            .get(key)
            .query_async(connection)
            .await?;
        if current.as_deref() != Some(expected) {
            redis::cmd("UNWATCH").exec_async(connection).await?;
            return Ok(false);
        }
        // `EXEC` answers nil when a write to the key after `WATCH` aborted
        // the transaction: read as `None`, a lost swap.
        let written: Option<Vec<redis::Value>> = redis::pipe()
            .atomic()
            .set(key, value)
            .query_async(connection)
            .await?;
        Ok(written.is_some())
    }
}

fn open_client(url: &str) -> Result<Client, StoreError> {
    let parsed =
        url::Url::parse(url).map_err(|e| StoreError(format!("{url:?} is not a Redis URL: {e}")))?;
    if parsed.scheme() != "redis" {
        return Err(StoreError(format!(
            "{url:?} is not a Redis URL: expected redis://HOST[:PORT][/DB]"
        )));
    }
    Client::open(url).map_err(|e| StoreError(format!("{url:?} is not a Redis URL: {e}")))
}

/// `future`, or an error once `limit` has passed.
async fn within<R>(limit: Duration, future: impl Future<Output = R>) -> Result<R, StoreError> {
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| StoreError(format!("redis: no answer within {limit:?}")))
}

#[async_trait]
impl Backend for RedisStore {
    async fn get(&self, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        self.on_shared(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), StoreError> {
        self.on_shared(|mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .exec_async(&mut c)
                .await
        })
        .await
    }

    async fn delete(&self, key: String) -> Result<(), StoreError> {
        self.on_shared(|mut c| async move { redis::cmd("DEL").arg(key).exec_async(&mut c).await })
            .await
    }

    async fn exists(&self, key: String) -> Result<bool, StoreError> {
        self.on_shared(
            |mut c| async move { redis::cmd("EXISTS").arg(key).query_async(&mut c).await },
        )
        .await
    }

    async fn list_keys(&self, cursor: Option<String>, limit: usize) -> Result<KeyPage, StoreError> {
        // The smallest `limit + 1` keys after the cursor; the extra one says
        // whether another page follows.
        let keep = limit.saturating_add(1);
        let mut smallest = BTreeSet::new();
        let mut scan_cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .on_shared(|mut c| async move {
                    redis::cmd("SCAN")
                        .arg(scan_cursor)
                        .arg("COUNT")
                        .arg(SCAN_BATCH)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            let after_cursor = keys
                .into_iter()
                .filter(|k| cursor.as_ref().is_none_or(|after| k > after));
            for key in after_cursor {
                smallest.insert(key);
                if smallest.len() > keep {
                    smallest.pop_last();
                }
            }
            if next == 0 {
                break;
            }
            scan_cursor = next;
        }
        let mut keys: Vec<String> = smallest.into_iter().collect();
        let cursor = if keys.len() > limit {
            keys.truncate(limit);
            keys.last().cloned()
        } else {
            None
        };
        Ok(KeyPage { keys, cursor })
    }

    async fn increment(&self, key: String, delta: i64) -> Result<i64, StoreError> {
        self.on_shared(|mut c| async move {
            redis::cmd("INCRBY")
                .arg(key)
                .arg(delta)
                .query_async(&mut c)
                .await
        })
        .await
    }

    async fn swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let Some(expected) = expected else {
            // Unconditional, as the trait (and Spin's SQLite store) define it.
            self.set(key, value).await?;
            return Ok(true);
        };
        within(self.timeouts.operation, async {
            let mut connection = self.take_swap_connection().await?;
            // On an error the connection is dropped (closed), so a `WATCH`
            // left on it cannot touch a later swap.
            let swapped = Self::watched_swap(&mut connection, &key, &expected, &value)
                .await
                .map_err(store_error)?;
            self.return_swap_connection(connection);
            Ok(swapped)
        })
        .await?
    }

    async fn get_many(&self, keys: Vec<String>) -> Result<KeyValues, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // `MGET` answers one value (or nil) per key, in the order asked.
        let mut mget = redis::cmd("MGET");
        mget.arg(&keys);
        let values: Vec<Option<Vec<u8>>> = self
            .on_shared(|mut c| async move { mget.query_async(&mut c).await })
            .await?;
        if values.len() != keys.len() {
            return Err(StoreError(format!(
                "redis: MGET of {} keys answered {} values",
                keys.len(),
                values.len()
            )));
        }
        Ok(keys.into_iter().zip(values).collect())
    }

    async fn set_many(&self, key_values: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
        if key_values.is_empty() {
            return Ok(());
        }
        self.on_shared(|mut c| async move {
            redis::cmd("MSET").arg(key_values).exec_async(&mut c).await
        })
        .await
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.on_shared(|mut c| async move { redis::cmd("DEL").arg(keys).exec_async(&mut c).await })
            .await
    }
}

#[cfg(test)]
#[path = "../../tests/support/redis_server.rs"]
mod redis_server;

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    use super::redis_server::RedisServer;
    use super::*;
    use crate::keyvalue::conformance::{self, CounterEncoding};

    /// Redis databases a server has (`databases 16` by default); each
    /// conformance case takes the next one, emptied.
    const DATABASES: i64 = 16;

    async fn connect(server: &RedisServer, db: i64) -> RedisStore {
        let store = RedisStore::connect(&server.url(db), RedisTimeouts::default())
            .await
            .unwrap();
        store
            .on_shared(|mut c| async move { redis::cmd("FLUSHDB").exec_async(&mut c).await })
            .await
            .unwrap();
        store
    }

    /// A fresh, empty store on the next database, for the synchronous
    /// factory the conformance cases take.
    fn fresh(server: &RedisServer, next_db: &AtomicI64) -> RedisStore {
        let db = next_db.fetch_add(1, Ordering::SeqCst) % DATABASES;
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(connect(server, db))
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_backend_conformance_tests() {
        let Some(server) = RedisServer::start_or_skip("redis conformance") else {
            return;
        };
        let next_db = AtomicI64::new(0);
        conformance::check_with(|| fresh(&server, &next_db), CounterEncoding::Decimal).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_values_and_counters_are_stored_as_spins_redis_store_does() {
        let Some(server) = RedisServer::start_or_skip("redis layout") else {
            return;
        };
        let store = connect(&server, 0).await;
        store
            .set("v1/project/1".into(), vec![0, 159, 146, 150])
            .await
            .unwrap();
        store.increment("v1/seq/file".into(), 42).await.unwrap();
        // Read back over a plain connection: no prefix, raw bytes, decimal
        // counters.
        let raw: (Vec<String>, Vec<u8>, String) = store
            .on_shared(|mut c| async move {
                let keys = redis::cmd("KEYS").arg("*").query_async(&mut c).await?;
                let value = redis::cmd("GET")
                    .arg("v1/project/1")
                    .query_async(&mut c)
                    .await?;
                let counter = redis::cmd("GET")
                    .arg("v1/seq/file")
                    .query_async(&mut c)
                    .await?;
                Ok((keys, value, counter))
            })
            .await
            .unwrap();
        let mut keys = raw.0;
        keys.sort();
        assert_eq!(keys, ["v1/project/1", "v1/seq/file"]);
        assert_eq!(raw.1, [0, 159, 146, 150]);
        assert_eq!(raw.2, "42");
        // A counter another host wrote as text counts on.
        store
            .set("v1/seq/package".into(), b"41".to_vec())
            .await
            .unwrap();
        let next = store.increment("v1/seq/package".into(), 1).await.unwrap();
        assert_eq!(next, 42);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_swaps_report_exactly_the_writes_that_happened() {
        let Some(server) = RedisServer::start_or_skip("redis swap races") else {
            return;
        };
        let store = Arc::new(connect(&server, 0).await);
        store.set("k".into(), b"start".to_vec()).await.unwrap();
        // Every task swaps from the same value: exactly one may win, and
        // the stored value is the winner's.
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mine = format!("writer-{i}").into_bytes();
                    let won = store
                        .swap("k".into(), Some(b"start".to_vec()), mine.clone())
                        .await
                        .unwrap();
                    (won, mine)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (won, mine) = task.await.unwrap();
            if won {
                winners.push(mine);
            }
        }
        assert_eq!(winners.len(), 1, "exactly one swap wins");
        let stored = store.get("k".into()).await.unwrap();
        assert_eq!(stored.as_ref(), Some(&winners[0]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_between_watch_and_exec_aborts_the_swap() {
        let Some(server) = RedisServer::start_or_skip("redis aborted exec") else {
            return;
        };
        let store = connect(&server, 0).await;
        store.set("k".into(), b"old".to_vec()).await.unwrap();
        let mut connection = store.take_swap_connection().await.unwrap();
        // WATCH and read, as a swap does, then another client writes.
        let _: (Option<Vec<u8>>,) = redis::pipe()
            .cmd("WATCH")
            .arg("k")
            .ignore()
            .get("k")
            .query_async(&mut connection)
            .await
            .unwrap();
        store.set("k".into(), b"theirs".to_vec()).await.unwrap();
        let written: Option<Vec<redis::Value>> = redis::pipe()
            .atomic()
            .set("k", b"mine".as_slice())
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(written, None, "EXEC was aborted");
        assert_eq!(
            store.get("k".into()).await.unwrap(),
            Some(b"theirs".to_vec())
        );
        // The connection is clean again: a swap on it goes through.
        let swapped = RedisStore::watched_swap(&mut connection, "k", b"theirs", b"mine")
            .await
            .unwrap();
        assert!(swapped);
        assert_eq!(store.get("k".into()).await.unwrap(), Some(b"mine".to_vec()));
    }

    #[test]
    fn only_redis_urls_are_accepted() {
        assert!(RedisStore::check_url("redis://127.0.0.1:6379/0").is_ok());
        assert!(RedisStore::check_url("redis://localhost").is_ok());
        for bad in [
            "sqlite",
            "http://127.0.0.1:6379",
            "redis//x",
            "",
            "rediss://h",
        ] {
            assert!(RedisStore::check_url(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_error_not_a_hang() {
        // A port nothing listens on: the connection is refused.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let refused = RedisStore::connect(
            &format!("redis://127.0.0.1:{port}/0"),
            RedisTimeouts::default(),
        )
        .await;
        assert!(refused.is_err());
    }
}
