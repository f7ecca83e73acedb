//! Round trips per request: a key-value store wrapper that counts every
//! operation the router makes, and the S3 requests [`MemoryS3`] recorded.
//!
//! On Spin every key-value operation is a round trip to the store (SQLite
//! with its locking, or Redis over the network), so these counts, not the
//! in-memory time, are what a request costs there.

use std::cell::Cell;
use std::fmt;

use super::s3::MemoryS3;
use crate::meta::kv::{KeyValue, KvError, Swap};

/// What one request cost: key-value operations by kind, and S3 requests
/// by kind. Compared whole, so any change in round trips shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Plain reads.
    pub get: u32,
    /// Reads of several keys in one round trip.
    pub get_many: u32,
    /// Reads that start a compare-and-swap.
    pub read_for_swap: u32,
    pub set: u32,
    pub delete: u32,
    pub increment: u32,
    /// Compare-and-swap attempts, won or lost.
    pub swap: u32,
    /// Single PUTs and multipart parts.
    pub s3_put: u32,
    pub s3_create_multipart: u32,
    pub s3_complete_multipart: u32,
    pub s3_get: u32,
    /// Object DELETEs and multipart aborts.
    pub s3_delete: u32,
}

impl Counts {
    /// Nothing at all; the base of `Counts { get: 2, ..Counts::NONE }`.
    pub const NONE: Counts = Counts {
        get: 0,
        get_many: 0,
        read_for_swap: 0,
        set: 0,
        delete: 0,
        increment: 0,
        swap: 0,
        s3_put: 0,
        s3_create_multipart: 0,
        s3_complete_multipart: 0,
        s3_get: 0,
        s3_delete: 0,
    };

    /// Key-value read round trips: plain, several keys at once, and for a
    /// swap.
    pub fn reads(&self) -> u32 {
        self.get + self.get_many + self.read_for_swap
    }

    /// Key-value writes other than compare-and-swap.
    pub fn writes(&self) -> u32 {
        self.set + self.delete + self.increment
    }

    /// Compare-and-swap attempts.
    pub fn cas_attempts(&self) -> u32 {
        self.swap
    }

    /// Every S3 request.
    pub fn s3_requests(&self) -> u32 {
        self.s3_put
            + self.s3_create_multipart
            + self.s3_complete_multipart
            + self.s3_get
            + self.s3_delete
    }

    /// Adds the S3 requests `s3` recorded from the `first`-th on.
    pub fn add_s3_requests_since(&mut self, s3: &MemoryS3, first: usize) {
        for (method, _) in s3.requests.borrow().iter().skip(first) {
            let counter = match *method {
                "PUT" => &mut self.s3_put,
                "CREATE" => &mut self.s3_create_multipart,
                "COMPLETE" => &mut self.s3_complete_multipart,
                "GET" => &mut self.s3_get,
                "DELETE" => &mut self.s3_delete,
                other => panic!("an S3 request the counts do not know: {other}"),
            };
            *counter += 1;
        }
    }
}

impl fmt::Display for Counts {
    /// Only what is not zero: `get 2, swap 1, s3 GET 1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let named = [
            ("get", self.get),
            ("get_many", self.get_many),
            ("read_for_swap", self.read_for_swap),
            ("set", self.set),
            ("delete", self.delete),
            ("increment", self.increment),
            ("swap", self.swap),
            ("s3 PUT", self.s3_put),
            ("s3 create multipart", self.s3_create_multipart),
            ("s3 complete multipart", self.s3_complete_multipart),
            ("s3 GET", self.s3_get),
            ("s3 DELETE", self.s3_delete),
        ];
        let parts: Vec<String> = named
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        if parts.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// A key-value store that counts what passes through it to `inner`.
/// Nothing else changes: every call goes to `inner` as it came.
pub struct Counting<'a, K> {
    inner: &'a K,
    counts: Cell<Counts>,
}

impl<'a, K: KeyValue> Counting<'a, K> {
    pub fn new(inner: &'a K) -> Self {
        Counting {
            inner,
            counts: Cell::new(Counts::NONE),
        }
    }

    /// The key-value operations counted so far (S3 fields are zero).
    pub fn counts(&self) -> Counts {
        self.counts.get()
    }

    fn count(&self, field: impl FnOnce(&mut Counts) -> &mut u32) {
        let mut counts = self.counts.get();
        *field(&mut counts) += 1;
        self.counts.set(counts);
    }
}

impl<K: KeyValue> KeyValue for Counting<'_, K> {
    type Cas = K::Cas;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.count(|c| &mut c.get);
        self.inner.get(key)
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.count(|c| &mut c.get_many);
        self.inner.get_many(keys)
    }

    fn get_batch(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.count(|c| &mut c.get_many);
        self.inner.get_batch(keys)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.count(|c| &mut c.set);
        self.inner.set(key, value)
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.count(|c| &mut c.delete);
        self.inner.delete(key)
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.count(|c| &mut c.increment);
        self.inner.increment(key, delta)
    }

    fn read_for_swap(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>), KvError> {
        self.count(|c| &mut c.read_for_swap);
        self.inner.read_for_swap(key)
    }

    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<Swap, KvError> {
        self.count(|c| &mut c.swap);
        self.inner.swap(cas, value)
    }

    fn now_millis(&self) -> i64 {
        self.inner.now_millis()
    }

    fn pause(&self, millis: u64) {
        self.inner.pause(millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemoryStore;

    #[test]
    fn every_operation_is_counted_under_its_own_kind() {
        let store = MemoryStore::default();
        let kv = Counting::new(&store);
        kv.set("a", b"1").unwrap();
        kv.get("a").unwrap();
        kv.get("b").unwrap();
        kv.get_many(&["a".to_string(), "b".to_string()]).unwrap();
        let (cas, _) = kv.read_for_swap("a").unwrap();
        kv.swap(cas, b"2").unwrap();
        kv.increment("n", 1).unwrap();
        kv.delete("a").unwrap();
        kv.now_millis();
        kv.pause(1);
        let expected = Counts {
            get: 2,
            get_many: 1,
            read_for_swap: 1,
            set: 1,
            delete: 1,
            increment: 1,
            swap: 1,
            ..Counts::NONE
        };
        assert_eq!(kv.counts(), expected);
        assert_eq!((expected.reads(), expected.writes()), (4, 3));
        assert_eq!(store.get("n").unwrap(), Some(1i64.to_le_bytes().to_vec()));
    }
}
