//! The metadata records, as stored (JSON) in the key-value store.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch; rendered as ISO 8601 at the API edge.
pub type Millis = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Private,
    Public,
}

impl Visibility {
    pub fn parse(s: &str) -> Option<Visibility> {
        match s {
            "private" => Some(Visibility::Private),
            "public" => Some(Visibility::Public),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Public => "public",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: u64,
    pub name: String,
    /// The project's own slug, the last segment of its full path.
    pub path: String,
    /// The namespace (group path) it belongs to, e.g. `acme/platform`.
    pub namespace: String,
    pub visibility: Visibility,
    pub created_at: Millis,
    /// Set when the project was deleted (`DELETE /projects/:id`). The record
    /// stays, as keys are never deleted; the project is gone for every
    /// endpoint and its path may be taken by a new project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Millis>,
}

impl Project {
    pub fn full_path(&self) -> String {
        format!("{}/{}", self.namespace, self.path)
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageStatus {
    Default,
    Hidden,
}

impl PackageStatus {
    pub fn parse(s: &str) -> Option<PackageStatus> {
        match s {
            "default" => Some(PackageStatus::Default),
            "hidden" => Some(PackageStatus::Hidden),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PackageStatus::Default => "default",
            PackageStatus::Hidden => "hidden",
        }
    }
}

/// One version of one package in a project, with its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub id: u64,
    pub project_id: u64,
    pub name: String,
    pub version: String,
    pub status: PackageStatus,
    pub created_at: Millis,
    pub updated_at: Millis,
    #[serde(default)]
    pub last_downloaded_at: Option<Millis>,
    /// The newest files, oldest first; the same file name may appear
    /// several times. Older files are sealed into `segments`.
    pub files: Vec<PackageFile>,
    /// Older files, in immutable segments, oldest first (see
    /// `meta::packages`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<SegmentRef>,
    /// Set when the package was deleted. The record stays (keys are never
    /// deleted, see `meta::kv`); publishing the same name and version again
    /// starts a new package with a new id in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Millis>,
}

impl Package {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// The newest file stored under this name among the record's own
    /// files (`meta::newest_file` looks in the segments too).
    pub fn newest_file(&self, stored_name: &str) -> Option<&PackageFile> {
        self.files.iter().rev().find(|f| f.file_name == stored_name)
    }

    /// Whether the record itself holds the file with this id.
    pub fn has_file(&self, file_id: u64) -> bool {
        self.files.iter().any(|f| f.id == file_id)
    }
}

/// A sealed segment of a package's files: the digest that names its key and
/// how many files it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    pub digest: String,
    pub files: u32,
    /// The smallest and largest file id in the segment, so a retry can
    /// tell without reading it that a file is not there.
    pub min_id: u64,
    pub max_id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageFile {
    pub id: u64,
    /// As stored: `path/file_name` URL-encoded as one component.
    pub file_name: String,
    pub size: u64,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
    /// Where the bytes are in the bucket.
    pub object_key: String,
    pub created_at: Millis,
}

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
}

impl PackageSummary {
    /// The entry a live package's record calls for.
    pub fn of(package: &Package) -> PackageSummary {
        PackageSummary {
            id: package.id,
            name: package.name.clone(),
            version: package.version.clone(),
            status: package.status,
            created_at: package.created_at,
            pending: false,
        }
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
