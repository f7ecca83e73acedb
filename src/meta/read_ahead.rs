//! Reading ahead: the keys a request will read first, fetched together in
//! one store round trip.
//!
//! On Spin every key-value call is a round trip (a SQLite query on one
//! locked connection, or a Redis command over the network). A request
//! usually knows, before it reads anything, several keys it will need: the
//! caller's token revocation, the project, the package. [`ReadAhead`] wraps
//! the store for one request; `read_ahead(keys)` reads them with one
//! `get_many` and keeps the values, and each kept value answers the *first*
//! `get` of its key. A value read ahead is as fresh as if the request had
//! read it at that moment, which is what it would have done anyway; a
//! second `get` of the key, and every read after a write by this request
//! (to any key), goes to the store: code after a write expects to read what
//! is stored after it (a publish re-reads its project after committing, to
//! see a delete that raced with it).

use std::cell::RefCell;
use std::collections::HashMap;

use super::kv::{KeyValue, KvError, Swap};
use super::projects::ProjectRef;
use super::{decode, keys, MetaError};

/// The key [`super::is_token_revoked`] reads.
pub fn token_revocation(token_id: &str) -> String {
    keys::revoked_token(token_id)
}

/// The key [`super::project`] reads first: the project, or the claim of its
/// path.
pub fn project(reference: &ProjectRef) -> String {
    match reference {
        ProjectRef::Id(id) => keys::project(*id),
        ProjectRef::Path(path) => keys::project_path(path),
    }
}

/// The id of the project `reference` names: a project's path names the
/// id its claim holds (`None` when nothing claims it). The claim is read
/// with [`KeyValue::look_ahead`], so [`super::project`] finds it without a
/// second round trip; an id costs no read.
pub fn project_id<K: KeyValue>(kv: &K, reference: &ProjectRef) -> Result<Option<u64>, MetaError> {
    match reference {
        ProjectRef::Id(id) => Ok(Some(*id)),
        ProjectRef::Path(path) => {
            let key = keys::project_path(path);
            match kv.look_ahead(&key)? {
                None => Ok(None),
                Some(bytes) => decode(&key, &bytes).map(Some),
            }
        }
    }
}

/// The key [`super::package`] reads.
pub fn package(project_id: u64, name: &str, version: &str) -> String {
    keys::package(project_id, name, version)
}

/// The keys [`super::package_by_id`] reads first: the location an older
/// package has, and the count of index shards the others are found in.
pub fn package_by_id(project_id: u64, package_id: Option<u64>) -> Vec<String> {
    let mut keys: Vec<String> = package_id.map(keys::package_by_id).into_iter().collect();
    keys.push(keys::package_ordinal(project_id));
    keys
}

/// The key [`super::package_summaries`] reads first.
pub fn package_counter(project_id: u64) -> String {
    keys::package_ordinal(project_id)
}

/// The key [`super::protection::rules`] reads.
pub fn protection_rules(project_id: u64) -> String {
    keys::protection_rules(project_id)
}

/// The key [`super::cleanup::policy`] reads.
pub fn cleanup_policy(project_id: u64) -> String {
    keys::cleanup_policy(project_id)
}

/// One request's view of the store, with the values read ahead.
pub struct ReadAhead<'a, K> {
    inner: &'a K,
    /// Values read ahead and not asked for yet.
    kept: RefCell<HashMap<String, Option<Vec<u8>>>>,
}

impl<'a, K: KeyValue> ReadAhead<'a, K> {
    pub fn new(inner: &'a K) -> Self {
        ReadAhead {
            inner,
            kept: RefCell::new(HashMap::new()),
        }
    }

    /// Forgets what was read ahead for `key`: this request is about to
    /// swap it.
    fn forget(&self, key: &str) {
        self.kept.borrow_mut().remove(key);
    }

    /// Forgets everything read ahead: this request has written, and what
    /// it reads next must come after that write.
    fn forget_all(&self) {
        self.kept.borrow_mut().clear();
    }
}

impl<K: KeyValue> KeyValue for ReadAhead<'_, K> {
    type Cas = K::Cas;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        // Bound before matching, so the map is not borrowed during the read.
        let kept = self.kept.borrow_mut().remove(key);
        match kept {
            Some(value) => Ok(value),
            None => self.inner.get(key),
        }
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.inner.get_many(keys)
    }

    fn get_batch(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.inner.get_batch(keys)
    }

    /// Keys already kept are not read again. Where the store cannot read
    /// them in one round trip nothing is kept, so each key is read on its
    /// own only if the request needs it (and its failure reported there).
    fn read_ahead(&self, keys: &[String]) {
        let mut wanted: Vec<String> = Vec::new();
        {
            let kept = self.kept.borrow();
            for key in keys {
                if !kept.contains_key(key) && !wanted.contains(key) {
                    wanted.push(key.clone());
                }
            }
        }
        // One key gains nothing from a batch: its first `get` reads it.
        if wanted.len() < 2 {
            return;
        }
        if let Ok(values) = self.inner.get_batch(&wanted) {
            self.kept
                .borrow_mut()
                .extend(wanted.into_iter().zip(values));
        }
    }

    fn take_read_ahead(&self, key: &str) -> Option<Option<Vec<u8>>> {
        self.kept.borrow_mut().remove(key)
    }

    fn look_ahead(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        if let Some(value) = self.kept.borrow().get(key) {
            return Ok(value.clone());
        }
        let value = self.inner.get(key)?;
        self.kept
            .borrow_mut()
            .insert(key.to_string(), value.clone());
        Ok(value)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.forget_all();
        self.inner.set(key, value)
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.forget_all();
        self.inner.delete(key)
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.forget_all();
        self.inner.increment(key, delta)
    }

    fn read_for_swap(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>), KvError> {
        // A swap must compare with what the store holds now.
        self.forget(key);
        self.inner.read_for_swap(key)
    }

    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<Swap, KvError> {
        self.forget_all();
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
    use crate::testing::{Counting, MemoryStore};

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn keys_read_ahead_cost_one_round_trip_and_answer_their_first_get() {
        let store = MemoryStore::default();
        store.set("a", b"1").unwrap();
        store.set("b", b"2").unwrap();
        let counting = Counting::new(&store);
        let kv = ReadAhead::new(&counting);
        kv.read_ahead(&keys(&["a", "b", "absent"]));
        assert_eq!(kv.get("a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(kv.get("b").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(kv.get("absent").unwrap(), None);
        let counts = counting.counts();
        assert_eq!((counts.get_many, counts.get), (1, 0));
    }

    #[test]
    fn a_second_get_reads_the_store_again() {
        let store = MemoryStore::default();
        store.set("a", b"old").unwrap();
        let counting = Counting::new(&store);
        let kv = ReadAhead::new(&counting);
        kv.read_ahead(&keys(&["a", "b"]));
        assert_eq!(kv.get("a").unwrap().as_deref(), Some(&b"old"[..]));
        store.set("a", b"new").unwrap();
        assert_eq!(kv.get("a").unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(counting.counts().get, 1);
    }

    #[test]
    fn a_write_by_the_request_forgets_what_was_read_ahead() {
        let store = MemoryStore::default();
        store.set("a", b"old").unwrap();
        store.set("c", &0i64.to_le_bytes()).unwrap();
        let kv = ReadAhead::new(&store);
        kv.read_ahead(&keys(&["a", "b", "c", "d"]));
        kv.set("a", b"new").unwrap();
        kv.delete("b").unwrap();
        kv.increment("c", 5).unwrap();
        store.set("d", b"changed").unwrap();
        let (_, current) = kv.read_for_swap("d").unwrap();
        assert_eq!(kv.get("a").unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(kv.get("b").unwrap(), None);
        assert_eq!(kv.get("c").unwrap(), Some(5i64.to_le_bytes().to_vec()));
        assert_eq!(current.as_deref(), Some(&b"changed"[..]));
        assert_eq!(kv.get("d").unwrap().as_deref(), Some(&b"changed"[..]));
    }

    #[test]
    fn a_write_to_any_key_forgets_everything_read_ahead_before_it() {
        let store = MemoryStore::default();
        store.set("project", b"live").unwrap();
        store.set("record", b"old").unwrap();
        let counting = Counting::new(&store);
        let kv = ReadAhead::new(&counting);
        kv.read_ahead(&keys(&["project", "other"]));
        let (cas, _) = kv.read_for_swap("record").unwrap();
        kv.swap(cas, b"new").unwrap();
        // Changed by someone else after the read ahead, before our write.
        store.set("project", b"deleted").unwrap();
        assert_eq!(kv.get("project").unwrap().as_deref(), Some(&b"deleted"[..]));
        assert_eq!(counting.counts().get, 1);
    }

    #[test]
    fn a_kept_value_is_taken_once_and_nothing_is_read_for_one_not_kept() {
        let store = MemoryStore::default();
        store.set("a", b"1").unwrap();
        let counting = Counting::new(&store);
        let kv = ReadAhead::new(&counting);
        kv.read_ahead(&keys(&["a", "absent"]));
        assert_eq!(kv.take_read_ahead("a"), Some(Some(b"1".to_vec())));
        assert_eq!(kv.take_read_ahead("absent"), Some(None));
        assert_eq!(kv.take_read_ahead("a"), None);
        assert_eq!(kv.take_read_ahead("never"), None);
        let counts = counting.counts();
        assert_eq!((counts.get_many, counts.get), (1, 0));
    }

    #[test]
    fn a_key_looked_at_early_answers_its_first_get_without_another_read() {
        let store = MemoryStore::default();
        store.set("kept", b"1").unwrap();
        store.set("alone", b"2").unwrap();
        let counting = Counting::new(&store);
        let kv = ReadAhead::new(&counting);
        kv.read_ahead(&keys(&["kept", "other"]));
        // Looked at among what was read ahead, and read on its own.
        assert_eq!(kv.look_ahead("kept").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(kv.look_ahead("alone").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(kv.look_ahead("alone").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(kv.get("kept").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(kv.get("alone").unwrap().as_deref(), Some(&b"2"[..]));
        let counts = counting.counts();
        assert_eq!((counts.get_many, counts.get), (1, 1));
        // Its first get used it up, as a value read ahead.
        store.set("alone", b"3").unwrap();
        assert_eq!(kv.get("alone").unwrap().as_deref(), Some(&b"3"[..]));
    }

    #[test]
    fn a_project_path_gives_its_id_and_the_project_reads_no_more_for_it() {
        let store = MemoryStore::default();
        let project = ProjectRef::Path("acme/tools".into());
        store.set(&keys::project_path("acme/tools"), b"7").unwrap();
        let counting = Counting::new(&store);
        let kv = ReadAhead::new(&counting);
        assert_eq!(project_id(&kv, &ProjectRef::Id(9)).unwrap(), Some(9));
        assert_eq!(counting.counts().get, 0);
        assert_eq!(project_id(&kv, &project).unwrap(), Some(7));
        assert_eq!(
            kv.get(&keys::project_path("acme/tools"))
                .unwrap()
                .as_deref(),
            Some(&b"7"[..])
        );
        assert_eq!(counting.counts().get, 1);
        let unclaimed = ProjectRef::Path("acme/none".into());
        assert_eq!(project_id(&kv, &unclaimed).unwrap(), None);
    }

    #[test]
    fn where_the_store_cannot_batch_nothing_is_read_ahead() {
        let store = MemoryStore::default();
        store.set("a", b"1").unwrap();
        store.refuse_batches.set(true);
        let counting = Counting::new(&store);
        let kv = ReadAhead::new(&counting);
        kv.read_ahead(&keys(&["a", "b"]));
        // Nothing kept, and nothing read key by key: a key is read only
        // when the request asks for it.
        assert_eq!(kv.take_read_ahead("b"), None);
        assert_eq!(counting.counts().get, 0);
        assert_eq!(kv.get("a").unwrap().as_deref(), Some(&b"1"[..]));
        let counts = counting.counts();
        assert_eq!((counts.get_many, counts.get), (1, 1));
    }

    #[test]
    fn a_single_key_or_keys_already_kept_are_not_read_ahead() {
        let store = MemoryStore::default();
        let counting = Counting::new(&store);
        let kv = ReadAhead::new(&counting);
        kv.read_ahead(&keys(&["a"]));
        kv.read_ahead(&keys(&["b", "b"]));
        assert_eq!(counting.counts().get_many, 0);
        kv.read_ahead(&keys(&["a", "b"]));
        kv.read_ahead(&keys(&["a", "b"]));
        assert_eq!(counting.counts().get_many, 1);
    }
}
