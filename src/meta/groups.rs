//! Groups: the implicit namespaces projects live in, which get numeric ids
//! when first seen.
//!
//! A group is created by claiming its path (`group-path/<path>` → id), then
//! writing its record; both through [`update`](super::kv::update), so concurrent creators agree
//! on one id and nothing is ever deleted. An id whose claim lost is simply
//! never used.

use serde::{Deserialize, Serialize};

use super::kv::{KeyValue, Step};
use super::model::Millis;
use super::{encode, keys, next_id, read, update_record, MetaError};

/// An implicit group: a namespace that holds projects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: u64,
    pub full_path: String,
    pub created_at: Millis,
}

impl Group {
    /// The last segment of the path.
    pub fn path(&self) -> &str {
        self.full_path.rsplit('/').next().unwrap_or_default()
    }

    pub fn parent_path(&self) -> Option<&str> {
        self.full_path.rsplit_once('/').map(|(parent, _)| parent)
    }
}

/// A group named by id or by full path, as `:id` in `/groups/:id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRef {
    Id(u64),
    Path(String),
}

impl GroupRef {
    /// Parses an already URL-decoded `:id`.
    pub fn parse(decoded: &str) -> GroupRef {
        match decoded.parse::<u64>() {
            Ok(id) => GroupRef::Id(id),
            Err(_) => GroupRef::Path(decoded.trim_matches('/').to_string()),
        }
    }
}

/// Makes sure every group along `namespace` (`acme`, `acme/platform`)
/// exists, and returns the innermost one.
pub fn ensure_groups<K: KeyValue>(
    kv: &K,
    namespace: &str,
    now: Millis,
) -> Result<Option<Group>, MetaError> {
    let mut path = String::new();
    let mut innermost = None;
    for segment in namespace.split('/').filter(|s| !s.is_empty()) {
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(segment);
        innermost = Some(ensure_group(kv, &path, now)?);
    }
    Ok(innermost)
}

fn ensure_group<K: KeyValue>(kv: &K, full_path: &str, now: Millis) -> Result<Group, MetaError> {
    let path_key = keys::group_path(full_path);
    let id = match read::<K, u64>(kv, &path_key)? {
        Some(id) => id,
        None => {
            let fresh = next_id(kv, "group")?;
            update_record(kv, &path_key, |claim: Option<u64>| {
                Ok::<_, MetaError>(match claim {
                    Some(id) => Step::Keep(id),
                    None => Step::Write(encode(&fresh), fresh),
                })
            })?
        }
    };
    // Also repairs a claim whose record was never written (a crash between
    // the two writes).
    let group_key = keys::group(id);
    let group = Group {
        id,
        full_path: full_path.to_string(),
        created_at: now,
    };
    update_record(kv, &group_key, |stored: Option<Group>| {
        Ok(match stored {
            Some(existing) => Step::Keep(existing),
            None => Step::Write(encode(&group), group.clone()),
        })
    })
}

pub fn group<K: KeyValue>(kv: &K, reference: &GroupRef) -> Result<Option<Group>, MetaError> {
    let id = match reference {
        GroupRef::Id(id) => *id,
        GroupRef::Path(path) => match read::<K, u64>(kv, &keys::group_path(path))? {
            Some(id) => id,
            None => return Ok(None),
        },
    };
    read(kv, &keys::group(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::tests::project_in as new_project;
    use crate::testing::MemoryStore;

    #[test]
    fn groups_along_the_namespace_get_ids_once() {
        let kv = MemoryStore::default();
        new_project(&kv, "acme/platform", "a");
        new_project(&kv, "ACME/platform", "b");
        let acme = group(&kv, &GroupRef::parse("acme")).unwrap().unwrap();
        let platform = group(&kv, &GroupRef::parse("Acme/Platform"))
            .unwrap()
            .unwrap();
        assert_ne!(acme.id, platform.id);
        assert_eq!(platform.full_path, "acme/platform");
        assert_eq!(platform.parent_path(), Some("acme"));
        assert_eq!(platform.path(), "platform");
        assert_eq!(
            group(&kv, &GroupRef::Id(platform.id)).unwrap(),
            Some(platform.clone())
        );
        assert_eq!(
            ensure_groups(&kv, "acme/platform", 5).unwrap(),
            Some(platform)
        );
        assert_eq!(group(&kv, &GroupRef::parse("nope")).unwrap(), None);
    }

    #[test]
    fn a_group_claim_without_its_record_is_repaired() {
        let kv = MemoryStore::default();
        kv.set(&keys::group_path("acme"), b"41").unwrap();
        assert_eq!(group(&kv, &GroupRef::parse("acme")).unwrap(), None);
        let acme = ensure_groups(&kv, "acme", 7).unwrap().unwrap();
        assert_eq!(acme.id, 41);
        assert_eq!(group(&kv, &GroupRef::Id(41)).unwrap(), Some(acme));
    }
}
