//! The project index: every project (for `GET /projects` and a group's
//! projects), with what deciding visibility needs.
//!
//! The project index is sharded like a project's package index: an atomic
//! ordinal picks the shard, and each shard is a list changed by
//! compare-and-swap. Its entries carry what deciding visibility needs (id,
//! full path, public or not), so a listing reads the shards and only the
//! records of the page it answers.
//!
//! **Invariant** (as for packages, see `meta::packages`): the index lists
//! exactly the live projects, with their visibility. Creation, a visibility
//! change and deletion first mark the entry *pending* with their own name,
//! then change the record (and the path claim), then write the entry from
//! the record and take their mark off; the entry stays pending while
//! another change's mark is on it. A listing resolves pending entries from
//! the record and the path claim, and every write of a shard raises its
//! count of writes (a compare-and-swap never takes a shard changed and
//! changed back for one nobody wrote), so neither a crash after any write
//! nor a listing at any moment finds a live project unlisted, a deleted one
//! listed, or a private one listed as public.

use serde::{Deserialize, Serialize};

use super::kv::{KeyValue, Step};
use super::model::{Marked, Millis, Project, Shard, Visibility, DELETION};
use super::{encode, keys, read, update_record, MetaError};

/// The change a project's creation marks its entry with.
const CREATION: &str = "creation";

/// Entries per shard of the project index. Entries hold a full path, so
/// shards stay well under the value size limit for realistic paths.
pub const PROJECT_INDEX_SHARD_SIZE: u64 = 200;

/// What the project index knows of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectEntry {
    pub id: u64,
    #[serde(rename = "p")]
    pub full_path: String,
    #[serde(rename = "pub")]
    pub public: bool,
    /// A change of the project is in flight or was cut short: the record
    /// and the path claim say whether and how it is listed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// The changes in flight that marked the entry pending, by name: it
    /// stays pending until each has written it from the record. An entry
    /// marked by an earlier version has `pending` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}

/// One shard of the project index: its entries and how many times it was
/// written (see [`Shard`]; it holds no file ids).
pub type ProjectShard = Shard<ProjectEntry>;

impl Marked for ProjectEntry {
    fn marks(&mut self) -> (&mut bool, &mut Vec<String>) {
        (&mut self.pending, &mut self.changes)
    }
}

impl ProjectEntry {
    fn of(project: &Project) -> ProjectEntry {
        ProjectEntry {
            id: project.id,
            full_path: project.full_path(),
            public: project.visibility == Visibility::Public,
            pending: false,
            changes: Vec::new(),
        }
    }

    /// A stand-in project with what the entry knows, enough for permission
    /// checks (`auth::policy`).
    pub fn as_project(&self) -> Project {
        let (namespace, path) = self
            .full_path
            .rsplit_once('/')
            .unwrap_or(("", &self.full_path));
        Project {
            id: self.id,
            name: path.to_string(),
            path: path.to_string(),
            namespace: namespace.to_string(),
            visibility: if self.public {
                Visibility::Public
            } else {
                Visibility::Private
            },
            created_at: 0,
            deleted_at: None,
        }
    }

    /// Whether the project lives in `group` (directly, or in a subgroup when
    /// `nested`). Paths compare case-insensitively.
    pub fn is_in(&self, group: &str, nested: bool) -> bool {
        let Some(namespace) = self.full_path.rsplit_once('/').map(|(n, _)| n) else {
            return false;
        };
        match nested {
            true => genreg_token::is_within(namespace, group),
            false => namespace.eq_ignore_ascii_case(group),
        }
    }
}

/// Enters a project that is being created in the index, pending until
/// [`confirm_entry`] (see the module docs).
pub fn reserve_entry<K: KeyValue>(kv: &K, project: &Project) -> Result<(), MetaError> {
    let ordinal = kv.increment(&keys::project_ordinal(), 1)?;
    let shard = (ordinal.max(1) as u64 - 1) / PROJECT_INDEX_SHARD_SIZE;
    kv.set(&keys::project_index_slot(project.id), &encode(&shard))?;
    let mut entry = ProjectEntry::of(project);
    entry.mark(CREATION);
    change_entries(kv, shard, |entries| {
        if entries.iter().any(|e| e.id == entry.id) {
            return false;
        }
        entries.push(entry.clone());
        true
    })
}

/// Marks a project's entry pending with `change`, before that change is
/// made to its record.
fn mark_pending<K: KeyValue>(kv: &K, project_id: u64, change: &str) -> Result<(), MetaError> {
    let Some(shard) = read::<K, u64>(kv, &keys::project_index_slot(project_id))? else {
        return Ok(());
    };
    change_entries(kv, shard, |entries| {
        entries
            .iter_mut()
            .find(|e| e.id == project_id)
            .is_some_and(|entry| entry.mark(change))
    })
}

/// Writes a project's entry from what is stored now and takes `change`'s
/// mark off; the entry stays pending while other changes' marks are on it.
/// Drops the entry when the project is not live.
fn confirm_entry<K: KeyValue>(kv: &K, project_id: u64, change: &str) -> Result<(), MetaError> {
    let Some(shard) = read::<K, u64>(kv, &keys::project_index_slot(project_id))? else {
        return Ok(());
    };
    let index_key = keys::project_index(shard);
    update_record(kv, &index_key, |stored: Option<ProjectShard>| {
        let Some(mut shard) = stored else {
            return Ok(Step::Keep(()));
        };
        // Read inside the step, so a retry copies the newest record.
        let live = live_project(kv, project_id)?;
        let before = shard.clone();
        match live {
            Some(project) => {
                for entry in shard.entries.iter_mut().filter(|e| e.id == project_id) {
                    entry.settle_as(ProjectEntry::of(&project), change);
                }
            }
            None => shard.entries.retain(|e| e.id != project_id),
        }
        Ok(if shard == before {
            Step::Keep(())
        } else {
            Step::Write(shard.encode_next(), ())
        })
    })
}

/// [`confirm_entry`] of a project's creation.
pub fn confirm_creation<K: KeyValue>(kv: &K, project_id: u64) -> Result<(), MetaError> {
    confirm_entry(kv, project_id, CREATION)
}

/// The project with this id if it is live: its record is there, not
/// deleted, and its path is claimed by it.
pub(super) fn live_project<K: KeyValue>(
    kv: &K,
    project_id: u64,
) -> Result<Option<Project>, MetaError> {
    let Some(project) = read::<K, Project>(kv, &keys::project(project_id))? else {
        return Ok(None);
    };
    if project.is_deleted() {
        return Ok(None);
    }
    let claim = read::<K, u64>(kv, &keys::project_path(&project.full_path()))?;
    Ok((claim == Some(project_id)).then_some(project))
}

/// Changes one shard of the project index; `change` answers whether it
/// changed anything.
fn change_entries<K: KeyValue>(
    kv: &K,
    shard: u64,
    change: impl Fn(&mut Vec<ProjectEntry>) -> bool,
) -> Result<(), MetaError> {
    super::change_shard(kv, &keys::project_index(shard), change)
}

/// The entries of a shard of the project index (none when it is absent).
pub fn shard_entries<K: KeyValue>(kv: &K, shard: u64) -> Result<Vec<ProjectEntry>, MetaError> {
    Ok(read::<K, ProjectShard>(kv, &keys::project_index(shard))?
        .map(|s| s.entries)
        .unwrap_or_default())
}

/// Every live project in the index, oldest first. Reads one key per
/// [`PROJECT_INDEX_SHARD_SIZE`] projects, and the record of each pending
/// entry.
pub fn project_entries<K: KeyValue>(kv: &K) -> Result<Vec<ProjectEntry>, MetaError> {
    let mut all = Vec::new();
    for shard in 0.. {
        let Some(stored) = read::<K, ProjectShard>(kv, &keys::project_index(shard))? else {
            break;
        };
        for entry in stored.entries {
            if !entry.pending {
                all.push(entry);
            } else if let Some(project) = live_project(kv, entry.id)? {
                all.push(ProjectEntry::of(&project));
            }
        }
    }
    Ok(all)
}

/// Changes a project's visibility: the entry is marked, the record
/// changed, and the entry written from it.
///
/// `change` names this change among those in flight on the project at
/// once (see the module docs): unique to the request.
pub fn set_visibility<K: KeyValue>(
    kv: &K,
    project_id: u64,
    visibility: Visibility,
    change: &str,
) -> Result<Option<Project>, MetaError> {
    let key = keys::project(project_id);
    let mut marked = false;
    match read::<K, Project>(kv, &key)? {
        Some(project) if !project.is_deleted() && project.visibility != visibility => {
            mark_pending(kv, project_id, change)?;
            marked = true;
        }
        _ => {}
    }
    let updated = update_record(
        kv,
        &key,
        |stored: Option<Project>| -> Result<_, MetaError> {
            let Some(mut project) = stored.filter(|p| !p.is_deleted()) else {
                return Ok(Step::Keep(None));
            };
            if project.visibility == visibility {
                return Ok(Step::Keep(Some(project)));
            }
            project.visibility = visibility;
            Ok(Step::Write(encode(&project), Some(project)))
        },
    )?;
    if marked {
        confirm_entry(kv, project_id, change)?;
    }
    Ok(updated)
}

/// Deletes a project: marks its entry, marks its record deleted (from then
/// on no lookup finds it, and its path is free for a new project, see
/// `meta::create_project`), and drops the entry. Returns the project as it
/// was, or `None` when there is no live project with this id. Its packages
/// are the caller's to delete.
pub fn delete_project<K: KeyValue>(
    kv: &K,
    project_id: u64,
    now: Millis,
) -> Result<Option<Project>, MetaError> {
    mark_pending(kv, project_id, DELETION)?;
    let key = keys::project(project_id);
    let deleted = update_record(
        kv,
        &key,
        |stored: Option<Project>| -> Result<_, MetaError> {
            let Some(mut project) = stored.filter(|p| !p.is_deleted()) else {
                return Ok(Step::Keep(None));
            };
            let live = project.clone();
            project.deleted_at = Some(now);
            Ok(Step::Write(encode(&project), Some(live)))
        },
    )?;
    confirm_entry(kv, project_id, DELETION)?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::tests::project_in as new_project;
    use crate::meta::{create_project, NewProject};
    use crate::testing::MemoryStore;

    #[test]
    fn new_projects_are_indexed_in_creation_order() {
        let kv = MemoryStore::default();
        let a = new_project(&kv, "acme", "a");
        let b = new_project(&kv, "acme/platform", "b");
        let entries = project_entries(&kv).unwrap();
        assert_eq!(
            entries.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![a.id, b.id]
        );
        assert_eq!(entries[1].full_path, "acme/platform/b");
        assert!(!entries[1].public);
        assert_eq!(entries[1].as_project().full_path(), "acme/platform/b");
    }

    #[test]
    fn the_index_is_sharded() {
        let kv = MemoryStore::default();
        for i in 0..PROJECT_INDEX_SHARD_SIZE + 3 {
            new_project(&kv, "acme", &format!("p{i}"));
        }
        assert!(kv.get(&keys::project_index(1)).unwrap().is_some());
        assert_eq!(
            project_entries(&kv).unwrap().len() as u64,
            PROJECT_INDEX_SHARD_SIZE + 3
        );
    }

    #[test]
    fn visibility_changes_reach_the_record_and_the_index() {
        let kv = MemoryStore::default();
        let a = new_project(&kv, "acme", "a");
        let changed = set_visibility(&kv, a.id, Visibility::Public, "test")
            .unwrap()
            .unwrap();
        assert_eq!(changed.visibility, Visibility::Public);
        assert!(project_entries(&kv).unwrap()[0].public);
        assert_eq!(
            set_visibility(&kv, 999, Visibility::Public, "test").unwrap(),
            None
        );
    }

    #[test]
    fn entries_know_their_groups() {
        let entry = ProjectEntry {
            id: 1,
            full_path: "acme/platform/tools".into(),
            public: false,
            pending: false,
            changes: Vec::new(),
        };
        assert!(entry.is_in("acme/platform", false));
        assert!(entry.is_in("ACME/platform", false));
        assert!(!entry.is_in("acme", false));
        assert!(entry.is_in("acme", true));
        assert!(!entry.is_in("acm", true));
        assert!(!entry.is_in("acme/platform/tools", true));
    }

    #[test]
    fn a_shard_stored_as_a_bare_list_is_read_and_written_back_counted() {
        let kv = MemoryStore::default();
        let a = new_project(&kv, "acme", "a");
        // As versions before counted writes stored it, with an entry they
        // marked pending and whose change was cut short.
        let mut entry = project_entries(&kv).unwrap().remove(0);
        entry.pending = true;
        kv.set(&keys::project_index(0), &encode(&vec![entry]))
            .unwrap();
        assert_eq!(project_entries(&kv).unwrap().len(), 1);
        set_visibility(&kv, a.id, Visibility::Public, "test").unwrap();
        let stored = kv.get(&keys::project_index(0)).unwrap().unwrap();
        assert!(
            stored.starts_with(b"{"),
            "{}",
            String::from_utf8_lossy(&stored)
        );
        let shard: ProjectShard = serde_json::from_slice(&stored).unwrap();
        assert!(shard.writes > 0);
        // The next change settles the entry that version marked.
        assert_eq!(
            shard.entries,
            vec![ProjectEntry {
                public: true,
                ..ProjectEntry::of(&a)
            }]
        );
    }

    #[test]
    fn a_deleted_project_is_gone_and_its_path_free_again() {
        use super::super::{project, MetaError, ProjectRef};
        let kv = MemoryStore::default();
        let old = new_project(&kv, "acme", "tools");
        let other = new_project(&kv, "acme", "other");
        let deleted = delete_project(&kv, old.id, 2_000).unwrap();
        assert_eq!(deleted, Some(old.clone()));
        assert_eq!(project(&kv, &ProjectRef::Id(old.id)).unwrap(), None);
        assert_eq!(
            project(&kv, &ProjectRef::Path("acme/tools".into())).unwrap(),
            None
        );
        assert_eq!(
            project_entries(&kv)
                .unwrap()
                .iter()
                .map(|e| e.id)
                .collect::<Vec<_>>(),
            vec![other.id]
        );
        // The record stays, marked.
        let record: Project = read(&kv, &keys::project(old.id)).unwrap().unwrap();
        assert_eq!(record.deleted_at, Some(2_000));
        assert_eq!(delete_project(&kv, old.id, 3_000).unwrap(), None);
        assert_eq!(
            set_visibility(&kv, old.id, Visibility::Public, "test").unwrap(),
            None
        );

        let again = new_project(&kv, "ACME", "Tools");
        assert_ne!(again.id, old.id);
        assert_eq!(
            project(&kv, &ProjectRef::Path("acme/tools".into()))
                .unwrap()
                .map(|p| p.id),
            Some(again.id)
        );
        let taken = create_project(
            &kv,
            NewProject {
                name: "tools".into(),
                path: "tools".into(),
                namespace: "acme".into(),
                visibility: Visibility::Private,
            },
            4_000,
        );
        assert!(matches!(taken, Err(MetaError::PathTaken)));
    }

    #[test]
    fn a_freed_path_is_taken_over_by_compare_and_swap() {
        let kv = MemoryStore::default();
        let old = new_project(&kv, "acme", "tools");
        delete_project(&kv, old.id, 2_000).unwrap();
        // Another creator swaps first: ours reads again and retries.
        *kv.conflicts.borrow_mut() = 1;
        let again = new_project(&kv, "acme", "tools");
        assert_eq!(
            kv.get(&keys::project_path("acme/tools")).unwrap(),
            Some(again.id.to_string().into_bytes())
        );
        // A claim whose record is gone names no project: it is free too.
        kv.set(&keys::project_path("acme/lost"), b"999").unwrap();
        let found = new_project(&kv, "acme", "lost");
        assert_eq!(
            kv.get(&keys::project_path("acme/lost")).unwrap(),
            Some(found.id.to_string().into_bytes())
        );
    }
}
