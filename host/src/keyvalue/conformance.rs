//! What every [`Backend`] must do, as tests any backend runs on itself:
//! `conformance::check(|| MyBackend::fresh()).await` in its test module.
//! Each case gets a fresh, empty store from the factory.

use std::sync::Arc;

use super::backend::Backend;

/// How a backend keeps counters: as Spin's store of its kind does.
#[derive(Clone, Copy, Debug)]
pub enum CounterEncoding {
    /// An `i64`, 8 bytes little-endian (SQLite).
    LittleEndian,
    /// Decimal text (Redis, after `INCRBY`).
    Decimal,
}

impl CounterEncoding {
    fn encode(self, value: i64) -> Vec<u8> {
        match self {
            CounterEncoding::LittleEndian => value.to_le_bytes().to_vec(),
            CounterEncoding::Decimal => value.to_string().into_bytes(),
        }
    }
}

/// Runs every case against stores made by `fresh`, which keep counters as
/// 8 bytes little-endian.
pub async fn check<B: Backend>(fresh: impl Fn() -> B) {
    check_with(fresh, CounterEncoding::LittleEndian).await;
}

/// Runs every case against stores made by `fresh`, which keep counters in
/// `encoding`.
pub async fn check_with<B: Backend>(fresh: impl Fn() -> B, encoding: CounterEncoding) {
    set_get_delete_exists(fresh()).await;
    increment_starts_at_zero_and_uses_spins_encoding(fresh(), encoding).await;
    increment_refuses_a_value_that_is_not_a_counter(fresh()).await;
    increment_is_atomic_under_concurrency(Arc::new(fresh())).await;
    swap_writes_only_over_the_expected_value(fresh()).await;
    swap_from_absent_writes_unconditionally(fresh()).await;
    list_keys_pages_in_byte_order(fresh()).await;
    list_keys_of_an_exact_multiple_ends_without_a_cursor(fresh()).await;
    get_many_answers_every_key_in_the_order_asked(fresh()).await;
    get_many_of_no_keys_is_empty(fresh()).await;
    set_many_then_get_many_reads_the_writes(fresh()).await;
    set_many_of_a_repeated_key_keeps_the_last_value(fresh()).await;
    delete_many_removes_present_keys_and_skips_absent_ones(fresh()).await;
    get_many_reads_counters_as_get_does(fresh(), encoding).await;
}

fn key(k: &str) -> String {
    k.to_string()
}

fn keys(ks: &[&str]) -> Vec<String> {
    ks.iter().map(|k| key(k)).collect()
}

/// `(key, value)` pairs as `get_many` answers them.
fn answer(pairs: &[(&str, Option<&[u8]>)]) -> Vec<(String, Option<Vec<u8>>)> {
    pairs
        .iter()
        .map(|(k, v)| (key(k), v.map(<[u8]>::to_vec)))
        .collect()
}

async fn set_get_delete_exists(store: impl Backend) {
    assert_eq!(store.get(key("a")).await.unwrap(), None);
    assert!(!store.exists(key("a")).await.unwrap());
    store.set(key("a"), b"1".to_vec()).await.unwrap();
    store.set(key("a"), b"2".to_vec()).await.unwrap();
    assert_eq!(store.get(key("a")).await.unwrap(), Some(b"2".to_vec()));
    assert!(store.exists(key("a")).await.unwrap());
    store.set(key("empty"), Vec::new()).await.unwrap();
    assert_eq!(store.get(key("empty")).await.unwrap(), Some(Vec::new()));
    store.delete(key("a")).await.unwrap();
    store.delete(key("a")).await.unwrap();
    assert_eq!(store.get(key("a")).await.unwrap(), None);
    assert!(!store.exists(key("a")).await.unwrap());
}

async fn increment_starts_at_zero_and_uses_spins_encoding(
    store: impl Backend,
    encoding: CounterEncoding,
) {
    assert_eq!(store.increment(key("n"), 1).await.unwrap(), 1);
    assert_eq!(store.increment(key("n"), 2).await.unwrap(), 3);
    assert_eq!(store.increment(key("n"), -10).await.unwrap(), -7);
    let stored = store.get(key("n")).await.unwrap().unwrap();
    assert_eq!(stored, encoding.encode(-7));
    // What the component and gc decode counters with reads it.
    assert_eq!(genreg_layout::counter::decode(&stored), Some(-7));
}

async fn increment_refuses_a_value_that_is_not_a_counter(store: impl Backend) {
    store.set(key("n"), b"hello".to_vec()).await.unwrap();
    assert!(store.increment(key("n"), 1).await.is_err());
    assert_eq!(store.get(key("n")).await.unwrap(), Some(b"hello".to_vec()));
}

async fn increment_is_atomic_under_concurrency<B: Backend>(store: Arc<B>) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    store.increment(key("n"), 1).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.increment(key("n"), 0).await.unwrap(), 400);
}

async fn swap_writes_only_over_the_expected_value(store: impl Backend) {
    store.set(key("k"), b"old".to_vec()).await.unwrap();
    let old = Some(b"old".to_vec());
    assert!(store
        .swap(key("k"), old.clone(), b"new".to_vec())
        .await
        .unwrap());
    assert_eq!(store.get(key("k")).await.unwrap(), Some(b"new".to_vec()));
    // The value moved on: the stale expectation loses and writes nothing.
    assert!(!store
        .swap(key("k"), old.clone(), b"late".to_vec())
        .await
        .unwrap());
    assert_eq!(store.get(key("k")).await.unwrap(), Some(b"new".to_vec()));
    // A deleted key does not hold the expected value either.
    store.delete(key("k")).await.unwrap();
    assert!(!store.swap(key("k"), old, b"w".to_vec()).await.unwrap());
    assert_eq!(store.get(key("k")).await.unwrap(), None);
}

async fn swap_from_absent_writes_unconditionally(store: impl Backend) {
    assert!(store.swap(key("k"), None, b"first".to_vec()).await.unwrap());
    assert!(store
        .swap(key("k"), None, b"second".to_vec())
        .await
        .unwrap());
    assert_eq!(store.get(key("k")).await.unwrap(), Some(b"second".to_vec()));
}

async fn list_keys_pages_in_byte_order(store: impl Backend) {
    let empty = store.list_keys(None, 10).await.unwrap();
    assert!(empty.keys.is_empty() && empty.cursor.is_none());
    for i in (0..25).rev() {
        store.set(format!("k{i:02}"), Vec::new()).await.unwrap();
    }
    let (mut seen, mut cursor, mut pages) = (Vec::new(), None, 0);
    loop {
        let page = store.list_keys(cursor, 10).await.unwrap();
        pages += 1;
        seen.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<_> = (0..25).map(|i| format!("k{i:02}")).collect();
    assert_eq!(seen, expected);
}

async fn list_keys_of_an_exact_multiple_ends_without_a_cursor(store: impl Backend) {
    for i in 0..10 {
        store.set(format!("k{i}"), Vec::new()).await.unwrap();
    }
    let page = store.list_keys(None, 10).await.unwrap();
    assert_eq!(page.keys.len(), 10);
    assert_eq!(page.cursor, None);
}

async fn get_many_answers_every_key_in_the_order_asked(store: impl Backend) {
    store.set(key("a"), b"1".to_vec()).await.unwrap();
    store.set(key("b"), vec![0, 255, 7]).await.unwrap();
    store.set(key("empty"), Vec::new()).await.unwrap();
    let got = store
        .get_many(keys(&["b", "absent", "a", "empty", "b"]))
        .await
        .unwrap();
    assert_eq!(
        got,
        answer(&[
            ("b", Some(&[0, 255, 7])),
            ("absent", None),
            ("a", Some(b"1")),
            ("empty", Some(b"")),
            // A key asked twice is answered twice.
            ("b", Some(&[0, 255, 7])),
        ])
    );
    // Only absent keys: each answered `None`.
    let got = store.get_many(keys(&["x", "y"])).await.unwrap();
    assert_eq!(got, answer(&[("x", None), ("y", None)]));
}

async fn get_many_of_no_keys_is_empty(store: impl Backend) {
    assert!(store.get_many(Vec::new()).await.unwrap().is_empty());
    store.set(key("a"), b"1".to_vec()).await.unwrap();
    assert!(store.get_many(Vec::new()).await.unwrap().is_empty());
    // Empty writes and deletes change nothing and are not errors.
    store.set_many(Vec::new()).await.unwrap();
    store.delete_many(Vec::new()).await.unwrap();
    assert_eq!(store.get(key("a")).await.unwrap(), Some(b"1".to_vec()));
}

async fn set_many_then_get_many_reads_the_writes(store: impl Backend) {
    store.set(key("old"), b"before".to_vec()).await.unwrap();
    store
        .set_many(vec![
            (key("old"), b"after".to_vec()),
            (key("new"), vec![1, 2, 3]),
            (key("blank"), Vec::new()),
        ])
        .await
        .unwrap();
    let got = store
        .get_many(keys(&["new", "old", "blank"]))
        .await
        .unwrap();
    assert_eq!(
        got,
        answer(&[
            ("new", Some(&[1, 2, 3])),
            ("old", Some(b"after")),
            ("blank", Some(b"")),
        ])
    );
    // The single-key reads see the same writes.
    assert_eq!(store.get(key("new")).await.unwrap(), Some(vec![1, 2, 3]));
}

async fn set_many_of_a_repeated_key_keeps_the_last_value(store: impl Backend) {
    store
        .set_many(vec![
            (key("k"), b"first".to_vec()),
            (key("k"), b"last".to_vec()),
        ])
        .await
        .unwrap();
    assert_eq!(store.get(key("k")).await.unwrap(), Some(b"last".to_vec()));
}

async fn delete_many_removes_present_keys_and_skips_absent_ones(store: impl Backend) {
    store
        .set_many(vec![
            (key("a"), b"1".to_vec()),
            (key("b"), b"2".to_vec()),
            (key("c"), b"3".to_vec()),
        ])
        .await
        .unwrap();
    store
        .delete_many(keys(&["a", "absent", "c", "a"]))
        .await
        .unwrap();
    let got = store.get_many(keys(&["a", "b", "c"])).await.unwrap();
    assert_eq!(got, answer(&[("a", None), ("b", Some(b"2")), ("c", None)]));
    assert_eq!(store.list_keys(None, 10).await.unwrap().keys, keys(&["b"]));
}

async fn get_many_reads_counters_as_get_does(store: impl Backend, encoding: CounterEncoding) {
    store.increment(key("n"), 41).await.unwrap();
    store.increment(key("n"), 1).await.unwrap();
    store.increment(key("m"), -5).await.unwrap();
    let single = store.get(key("n")).await.unwrap();
    let got = store.get_many(keys(&["m", "n"])).await.unwrap();
    assert_eq!(got[1], (key("n"), single));
    assert_eq!(
        got,
        vec![
            (key("m"), Some(encoding.encode(-5))),
            (key("n"), Some(encoding.encode(42))),
        ]
    );
}
