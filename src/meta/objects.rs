//! The object keys the registry references, page by page: what `genreg gc`
//! must keep (`GET /api/v4/admin/referenced_objects`).
//!
//! The walk follows the indexes, never a scan of the store: the project
//! index (live projects only, so a deleted project's leftover packages are
//! unreferenced), each project's package index (live packages only, pending
//! entries resolved from the record), and each package's sealed segments,
//! then its tail of newest files. Entries of a shard are taken in id order
//! and a position names ids and segment digests, never offsets, so entries
//! removed between two pages never make the walk skip one that stays.
//!
//! What the walk may miss is only what was added after it passed that
//! place: a project or package created, or a file published, after the
//! walk started. Such objects are younger than the walk, and `genreg gc`
//! never deletes an object younger than its grace period, counted from
//! before the first page.

use super::kv::KeyValue;
use super::model::{IndexShard, Package, PackageSummary, Segment};
use super::project_index::{self, PROJECT_INDEX_SHARD_SIZE};
use super::{keys, read, MetaError, INDEX_SHARD_SIZE};

/// Key-value reads a page may make beyond one per object key asked for
/// (index shards, counters, records of packages with few files).
pub const READ_ALLOWANCE: u32 = 32;

/// Where a walk resumes: the first project with an id at or after
/// `project_id` in project shard `project_shard`, and in it the first
/// package with an id at or after `package_id` in package shard
/// `package_shard`; in that package, the parts after the segment
/// `after_segment` (from its first segment when `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    pub project_shard: u64,
    pub project_id: u64,
    pub package_shard: u64,
    pub package_id: u64,
    pub after_segment: Option<String>,
}

impl Position {
    /// The opaque cursor handed to clients.
    pub fn encode(&self) -> String {
        format!(
            "1.{}.{}.{}.{}.{}",
            self.project_shard,
            self.project_id,
            self.package_shard,
            self.package_id,
            self.after_segment.as_deref().unwrap_or("")
        )
    }

    /// Reads a cursor made by [`Position::encode`]; `None` when it is not one.
    pub fn decode(cursor: &str) -> Option<Position> {
        let parts: Vec<&str> = cursor.split('.').collect();
        let [version, project_shard, project_id, package_shard, package_id, segment] =
            parts.as_slice()
        else {
            return None;
        };
        if *version != "1" || !segment.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Position {
            project_shard: project_shard.parse().ok()?,
            project_id: project_id.parse().ok()?,
            package_shard: package_shard.parse().ok()?,
            package_id: package_id.parse().ok()?,
            after_segment: (!segment.is_empty()).then(|| segment.to_string()),
        })
    }
}

/// One page of referenced object keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPage {
    /// In walk order; a key may repeat (on this page or another) when a
    /// package changed between two pages.
    pub object_keys: Vec<String>,
    /// Where the next page starts; `None` when the walk is complete.
    pub next: Option<Position>,
}

/// The referenced object keys from `from` on. The page stops once it holds
/// `per_page` keys or has read `per_page` + [`READ_ALLOWANCE`] keys of the
/// store (whichever comes first, so it may end with fewer keys and a `next`
/// position). A part of a package (a segment or the tail) is taken whole,
/// so a page holds fewer than `per_page` + `TAIL_FILES` keys.
pub fn referenced_objects<K: KeyValue>(
    kv: &K,
    from: &Position,
    per_page: usize,
) -> Result<ObjectPage, MetaError> {
    let mut walk = Walk {
        kv,
        keys: Vec::new(),
        reads: 0,
        per_page,
        read_budget: per_page as u32 + READ_ALLOWANCE,
    };
    let next = walk.projects(from)?;
    Ok(ObjectPage {
        object_keys: walk.keys,
        next,
    })
}

struct Walk<'a, K> {
    kv: &'a K,
    keys: Vec<String>,
    reads: u32,
    per_page: usize,
    read_budget: u32,
}

impl<K: KeyValue> Walk<'_, K> {
    /// Whether the page is done: enough keys, or enough reads.
    fn full(&self) -> bool {
        self.keys.len() >= self.per_page || self.reads >= self.read_budget
    }

    fn counter(&mut self, key: &str) -> Result<u64, MetaError> {
        self.reads += 1;
        super::read_counter(self.kv, key)
    }

    fn read<T: serde::de::DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, MetaError> {
        self.reads += 1;
        read(self.kv, key)
    }

    /// Walks the projects from `from`; returns where the next page starts.
    fn projects(&mut self, from: &Position) -> Result<Option<Position>, MetaError> {
        let created = self.counter(&keys::project_ordinal())?;
        for shard in from.project_shard..created.div_ceil(PROJECT_INDEX_SHARD_SIZE) {
            let first_id = if shard == from.project_shard {
                from.project_id
            } else {
                0
            };
            for project_id in self.live_projects(shard, first_id)? {
                let resume =
                    (shard == from.project_shard && project_id == from.project_id).then_some(from);
                let start = Position {
                    project_shard: shard,
                    project_id,
                    package_shard: resume.map_or(0, |p| p.package_shard),
                    package_id: resume.map_or(0, |p| p.package_id),
                    after_segment: resume.and_then(|p| p.after_segment.clone()),
                };
                if let Some(next) = self.packages(start)? {
                    return Ok(Some(next));
                }
            }
        }
        Ok(None)
    }

    /// The ids of the live projects of a project index shard, from
    /// `first_id` on, in id order.
    fn live_projects(&mut self, shard: u64, first_id: u64) -> Result<Vec<u64>, MetaError> {
        let entries = self
            .read::<project_index::ProjectShard>(&keys::project_index(shard))?
            .map(|s| s.entries)
            .unwrap_or_default();
        let mut ids = Vec::new();
        for entry in entries.into_iter().filter(|e| e.id >= first_id) {
            if entry.pending {
                self.reads += 2;
                if project_index::live_project(self.kv, entry.id)?.is_none() {
                    continue;
                }
            }
            ids.push(entry.id);
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// Walks the packages of the project `at` names, from `at` on.
    fn packages(&mut self, at: Position) -> Result<Option<Position>, MetaError> {
        if self.full() {
            return Ok(Some(at));
        }
        let created = self.counter(&keys::package_ordinal(at.project_id))?;
        for shard in at.package_shard..created.div_ceil(INDEX_SHARD_SIZE) {
            if self.full() {
                return Ok(Some(Position {
                    package_shard: shard,
                    package_id: 0,
                    after_segment: None,
                    ..at
                }));
            }
            let mut entries: Vec<PackageSummary> = self
                .read::<IndexShard>(&keys::package_index(at.project_id, shard))?
                .map(|s| s.entries)
                .unwrap_or_default();
            entries.sort_unstable_by_key(|e| e.id);
            let first_id = if shard == at.package_shard {
                at.package_id
            } else {
                0
            };
            for entry in entries.iter().filter(|e| e.id >= first_id) {
                let resumes = shard == at.package_shard && entry.id == at.package_id;
                let here = Position {
                    package_shard: shard,
                    package_id: entry.id,
                    after_segment: if resumes {
                        at.after_segment.clone()
                    } else {
                        None
                    },
                    ..at.clone()
                };
                if let Some(next) = self.package(at.project_id, entry, here)? {
                    return Ok(Some(next));
                }
            }
        }
        Ok(None)
    }

    /// Takes the parts of one package from `at` on: its segments, then its
    /// tail. A segment named by `at` that is no longer in the record (files
    /// were removed since) restarts the package from its first segment:
    /// keys may repeat, none is skipped.
    fn package(
        &mut self,
        project_id: u64,
        entry: &PackageSummary,
        at: Position,
    ) -> Result<Option<Position>, MetaError> {
        if self.full() {
            return Ok(Some(at));
        }
        let record_key = keys::package(project_id, &entry.name, &entry.version);
        let Some(package) = self
            .read::<Package>(&record_key)?
            .filter(|p| p.id == entry.id && !p.is_deleted())
        else {
            return Ok(None);
        };
        let first = match &at.after_segment {
            None => 0,
            Some(digest) => package
                .segments
                .iter()
                .position(|s| &s.digest == digest)
                .map_or(0, |i| i + 1),
        };
        let mut after = first
            .checked_sub(1)
            .map(|i| package.segments[i].digest.clone());
        for segment in &package.segments[first..] {
            if self.full() {
                return Ok(Some(Position {
                    after_segment: after,
                    ..at
                }));
            }
            let key = package.segment_key(segment);
            let Some(stored) = self.read::<Segment>(&key)? else {
                return Err(MetaError::Corrupt {
                    key,
                    reason: "the package points to a missing segment".into(),
                });
            };
            self.keys
                .extend(stored.files.into_iter().map(|f| f.object_key));
            after = Some(segment.digest.clone());
        }
        if self.full() && !package.files.is_empty() {
            return Ok(Some(Position {
                after_segment: after,
                ..at
            }));
        }
        self.keys
            .extend(package.files.iter().map(|f| f.object_key.clone()));
        Ok(None)
    }
}
