//! Users: the minimal record (id, username, name) that administrators hand
//! personal access tokens out to.
//!
//! A user is what a personal access token is issued for; it holds no
//! permissions itself (each token carries its own grants) and is never
//! deleted. A username is taken like a project path: the record is written
//! under a fresh id, then the username is claimed (`user-name/<username>` →
//! id) through [`update`], and a record whose claim lost is deleted again,
//! so a username never points at a missing user and two creators of the
//! same username get one user.

use serde::{Deserialize, Serialize};

use super::kv::{update, KeyValue, Step};
use super::model::Millis;
use super::{encode, keys, next_id, read, MetaError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub username: String,
    pub name: String,
    pub created_at: Millis,
}

/// Creates a user. `None` when the username is taken (compared
/// case-insensitively).
pub fn create_user<K: KeyValue>(
    kv: &K,
    username: &str,
    name: &str,
    now: Millis,
) -> Result<Option<User>, MetaError> {
    let claim_key = keys::username(username);
    if kv.get(&claim_key)?.is_some() {
        return Ok(None);
    }
    let user = User {
        id: next_id(kv, "user")?,
        username: username.to_string(),
        name: name.to_string(),
        created_at: now,
    };
    kv.set(&keys::user(user.id), &encode(&user))?;
    let claimed = update(kv, &claim_key, |current| match current {
        Some(_) => Step::Keep(false),
        None => Step::<_, MetaError>::Write(encode(&user.id), true),
    });
    match claimed {
        Ok(true) => Ok(Some(user)),
        Ok(false) => {
            kv.delete(&keys::user(user.id))?;
            Ok(None)
        }
        Err(e) => {
            let _ = kv.delete(&keys::user(user.id));
            Err(e)
        }
    }
}

pub fn user<K: KeyValue>(kv: &K, id: u64) -> Result<Option<User>, MetaError> {
    read(kv, &keys::user(id))
}

#[cfg(test)]
mod tests {
    use super::super::kv::{creation_claim, KeyValue, CLAIM_EPOCH_MS};
    use super::*;
    use crate::testing::MemoryStore;

    #[test]
    fn usernames_are_taken_once_whatever_their_case() {
        let kv = MemoryStore::default();
        let alice = create_user(&kv, "Alice", "Alice A.", 1_000)
            .unwrap()
            .unwrap();
        assert_eq!(alice.username, "Alice");
        assert_eq!(user(&kv, alice.id).unwrap(), Some(alice.clone()));
        assert_eq!(create_user(&kv, "alice", "x", 2_000).unwrap(), None);
        let bob = create_user(&kv, "bob", "bob", 3_000).unwrap().unwrap();
        assert_ne!(bob.id, alice.id);
        assert_eq!(user(&kv, 999).unwrap(), None);
    }

    #[test]
    fn a_failed_claim_leaves_no_user_behind() {
        let kv = MemoryStore::default();
        // Someone holds the right to create the claim but never writes it:
        // our claim gives up, and the record written before it goes again.
        let epoch = kv.now_millis() / CLAIM_EPOCH_MS;
        kv.increment(&creation_claim(&keys::username("carol"), epoch), 1)
            .unwrap();
        let err = create_user(&kv, "carol", "c", 1).unwrap_err();
        assert!(err.is_busy(), "{err}");
        assert_eq!(user(&kv, 1).unwrap(), None);
        assert_eq!(kv.get(&keys::username("carol")).unwrap(), None);
        // Once the claim's epoch is over, the username can be taken.
        kv.pause(CLAIM_EPOCH_MS as u64);
        assert!(create_user(&kv, "carol", "c", 2).unwrap().is_some());
    }
}
