//! The metadata records, as stored (JSON) in the key-value store. The ones
//! `genreg gc` reads too (projects, packages, segments, files) live in the
//! shared `genreg-layout` crate and are re-exported here.

use serde::{Deserialize, Serialize};

pub use genreg_layout::records::{
    IdBlock, Millis, Package, PackageFile, PackageStatus, Project, RawFile, Segment, SegmentRef,
    Visibility,
};

/// Package settings of one namespace (GitLab's namespace package settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceSettings {
    pub generic_duplicates_allowed: bool,
    pub generic_duplicate_exception_regex: String,
}

impl Default for NamespaceSettings {
    fn default() -> Self {
        NamespaceSettings {
            generic_duplicates_allowed: true,
            generic_duplicate_exception_regex: String::new(),
        }
    }
}

impl NamespaceSettings {
    /// Whether a file whose name is already in the package may be added.
    ///
    /// The exception regex, anchored, is tested against the package name and
    /// the version; a match turns the default around.
    pub fn duplicates_allowed_for(&self, name: &str, version: &str) -> bool {
        let pattern = &self.generic_duplicate_exception_regex;
        let excepted = !pattern.is_empty()
            && crate::validate::compile_exception_regex(pattern)
                .map(|re| re.is_match(name) || re.is_match(version))
                .unwrap_or(false);
        self.generic_duplicates_allowed != excepted
    }
}

/// Where a package lives, by its numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageLocation {
    pub project_id: u64,
    pub name: String,
    pub version: String,
    /// The shard of the project's package index that lists it.
    pub index_shard: u64,
}

/// A package as the project's package index lists it: enough to filter,
/// sort and page without reading every package record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageSummary {
    pub id: u64,
    pub name: String,
    pub version: String,
    pub status: PackageStatus,
    pub created_at: Millis,
    /// Set while a change of the package is in flight (or was cut short):
    /// the record, not this entry, says whether and how it is listed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// The changes in flight that marked the entry pending, each by its own
    /// name (a publish's file id, or a deletion): the entry stays pending
    /// until every one of them has written it from the record, so a change
    /// that finishes does not clear the mark of one still under way. An
    /// entry marked by an earlier version has `pending` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// Set, to the time it was entered, while the package may still be
    /// being created: the entry is written before the record, and the
    /// record says whether the package came to be. Cleared by a later write
    /// of the same shard once the record exists (see `meta::packages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creating: Option<Millis>,
}

/// One shard of an index (a project's packages, or the projects): its
/// entries, the file ids its next new packages take their first blocks
/// from (package index only, see `meta::packages`), and how many times it
/// was written. Stored as a bare list of entries while it holds neither
/// ids nor a count, as every shard was before blocks, else as an object.
/// Both forms are read and written in place: a listing decodes every shard
/// of its project, and a new package writes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard<E> {
    pub entries: Vec<E>,
    pub file_ids: Option<IdBlock>,
    /// Raised by every write ([`Shard::encode_next`]), so that a
    /// compare-and-swap never takes a shard changed and changed back (its
    /// entries can come back to the same bytes, while the records they
    /// were written from did not) for one nobody wrote.
    pub writes: u64,
}

/// A shard of a project's package index.
pub type IndexShard = Shard<PackageSummary>;

impl<E> Default for Shard<E> {
    fn default() -> Self {
        Shard {
            entries: Vec::new(),
            file_ids: None,
            writes: 0,
        }
    }
}

impl<E: Serialize> Shard<E> {
    /// The shard's next stored form: its write count raised by one.
    pub fn encode_next(&mut self) -> Vec<u8> {
        self.writes += 1;
        super::encode(&*self)
    }
}

/// The object form of a [`Shard`].
#[derive(Serialize, Deserialize)]
struct ShardObject<E> {
    entries: E,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file_ids: Option<IdBlock>,
    #[serde(default, skip_serializing_if = "is_zero")]
    writes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl<E: Serialize> Serialize for Shard<E> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.file_ids.is_none() && self.writes == 0 {
            return self.entries.serialize(serializer);
        }
        ShardObject {
            entries: &self.entries,
            file_ids: self.file_ids,
            writes: self.writes,
        }
        .serialize(serializer)
    }
}

impl<'de, E: Deserialize<'de>> Deserialize<'de> for Shard<E> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        use serde::de::{MapAccess, SeqAccess, Visitor};
        use std::marker::PhantomData;

        struct Either<E>(PhantomData<E>);
        impl<'de, E: Deserialize<'de>> Visitor<'de> for Either<E> {
            type Value = Shard<E>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of index entries, or an object with entries")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Shard<E>, A::Error> {
                Ok(Shard {
                    entries: Vec::deserialize(SeqAccessDeserializer::new(seq))?,
                    file_ids: None,
                    writes: 0,
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Shard<E>, A::Error> {
                let stored: ShardObject<Vec<E>> =
                    ShardObject::deserialize(MapAccessDeserializer::new(map))?;
                Ok(Shard {
                    entries: stored.entries,
                    file_ids: stored.file_ids,
                    writes: stored.writes,
                })
            }
        }
        deserializer.deserialize_any(Either(PhantomData))
    }
}

/// An index entry (a package's or a project's) that changes mark pending,
/// each by its own name, before they change the record it is written from
/// (see `meta::packages`): it stays pending until every change that marked
/// it has written it from the record.
pub trait Marked: Sized {
    /// The entry's pending flag and the names of the changes that set it.
    fn marks(&mut self) -> (&mut bool, &mut Vec<String>);

    /// Marks the entry pending with `change`; false when it already was.
    fn mark(&mut self, change: &str) -> bool {
        let (pending, changes) = self.marks();
        if changes.iter().any(|c| c == change) {
            return false;
        }
        changes.push(change.to_string());
        *pending = true;
        true
    }

    /// Becomes `fresh`, the entry written from the record as it is now,
    /// with `change`'s mark taken off and the others' kept.
    fn settle_as(&mut self, mut fresh: Self, change: &str) {
        let mut others = std::mem::take(self.marks().1);
        others.retain(|c| c != change);
        let (pending, changes) = fresh.marks();
        *pending = !others.is_empty();
        *changes = others;
        *self = fresh;
    }
}

/// The change a deletion marks an entry with: deletions of one package or
/// project are the same change, and the first to land is all of them.
pub const DELETION: &str = "deletion";

impl Marked for PackageSummary {
    fn marks(&mut self) -> (&mut bool, &mut Vec<String>) {
        (&mut self.pending, &mut self.changes)
    }
}

impl PackageSummary {
    /// The entry a live package's record calls for.
    pub fn of<F>(package: &Package<F>) -> PackageSummary {
        PackageSummary {
            id: package.id,
            name: package.name.clone(),
            version: package.version.clone(),
            status: package.status,
            created_at: package.created_at,
            pending: false,
            changes: Vec::new(),
            creating: None,
        }
    }

    /// Whether the record, not this entry, says if the package is live.
    pub fn is_unsure(&self) -> bool {
        self.pending || self.creating.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(allowed: bool, regex: &str) -> NamespaceSettings {
        NamespaceSettings {
            generic_duplicates_allowed: allowed,
            generic_duplicate_exception_regex: regex.into(),
        }
    }

    #[test]
    fn duplicate_exception_regex_works_both_ways() {
        assert!(settings(true, "").duplicates_allowed_for("tool", "1.0"));
        assert!(!settings(false, "").duplicates_allowed_for("tool", "1.0"));
        assert!(!settings(true, "tool").duplicates_allowed_for("tool", "1.0"));
        assert!(settings(false, ".*-SNAPSHOT").duplicates_allowed_for("tool", "1.0-SNAPSHOT"));
        // Anchored: a partial match is no match.
        assert!(!settings(false, "SNAPSHOT").duplicates_allowed_for("tool", "1.0-SNAPSHOT"));
    }
}
