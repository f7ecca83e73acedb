//! A project's packages cleanup policy: how many files of one name a
//! package keeps. Serverless hosts run no background jobs, so the policy is
//! applied when a file is published.

use serde::{Deserialize, Serialize};

use super::kv::{update, KeyValue, Step};
use super::model::{Package, PackageFile};
use super::{decode, encode, keys, read, MetaError};

/// GitLab's choices for `keep_n_duplicated_package_files`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeepFiles {
    All,
    Newest(u8),
}

impl KeepFiles {
    /// `all`, `1`, `10`, `20`, `30`, `40` or `50`.
    pub fn parse(s: &str) -> Option<KeepFiles> {
        match s {
            "all" => Some(KeepFiles::All),
            "1" | "10" | "20" | "30" | "40" | "50" => s.parse().ok().map(KeepFiles::Newest),
            _ => None,
        }
    }

    pub fn as_str(self) -> String {
        match self {
            KeepFiles::All => "all".into(),
            KeepFiles::Newest(n) => n.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupPolicy {
    pub keep_n_duplicated_package_files: KeepFiles,
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy {
            keep_n_duplicated_package_files: KeepFiles::All,
        }
    }
}

pub fn policy<K: KeyValue>(kv: &K, project_id: u64) -> Result<CleanupPolicy, MetaError> {
    Ok(read(kv, &keys::cleanup_policy(project_id))?.unwrap_or_default())
}

pub fn set_policy<K: KeyValue>(
    kv: &K,
    project_id: u64,
    policy: CleanupPolicy,
) -> Result<(), MetaError> {
    let key = keys::cleanup_policy(project_id);
    update(kv, &key, |_| {
        Step::<_, MetaError>::Write(encode(&policy), ())
    })
}

/// Removes the files named `file_name` beyond the newest `keep` from the
/// package and returns them, so their objects can be deleted.
pub fn prune<K: KeyValue>(
    kv: &K,
    package_key: &str,
    package_id: u64,
    file_name: &str,
    keep: KeepFiles,
) -> Result<Vec<PackageFile>, MetaError> {
    let KeepFiles::Newest(keep) = keep else {
        return Ok(Vec::new());
    };
    update(kv, package_key, |current| {
        let Some(bytes) = current else {
            return Step::Keep(Vec::new());
        };
        let mut package: Package = match decode(package_key, &bytes) {
            Ok(package) => package,
            Err(e) => return Step::Fail(e),
        };
        if package.id != package_id || package.is_deleted() {
            return Step::Keep(Vec::new());
        }
        let same_name = package
            .files
            .iter()
            .filter(|f| f.file_name == file_name)
            .count();
        let mut surplus = same_name.saturating_sub(keep as usize);
        if surplus == 0 {
            return Step::Keep(Vec::new());
        }
        // Files are oldest first: drop the first `surplus` with this name.
        let mut removed = Vec::new();
        package.files.retain(|f| {
            if surplus > 0 && f.file_name == file_name {
                surplus -= 1;
                removed.push(f.clone());
                false
            } else {
                true
            }
        });
        Step::Write(encode(&package), removed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_choices_parse() {
        assert_eq!(KeepFiles::parse("all"), Some(KeepFiles::All));
        assert_eq!(KeepFiles::parse("10"), Some(KeepFiles::Newest(10)));
        assert_eq!(KeepFiles::parse("2"), None);
        assert_eq!(KeepFiles::Newest(1).as_str(), "1");
    }
}
