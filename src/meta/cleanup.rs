//! A project's packages cleanup policy: how many files of one name a
//! package keeps. Serverless hosts run no background jobs, so the policy is
//! applied when a file is published.

use serde::{Deserialize, Serialize};

use super::kv::{update, KeyValue, Step};
use super::{encode, keys, read, MetaError};

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

    /// How many files of one name to keep, `None` for all.
    pub fn limit(self) -> Option<usize> {
        match self {
            KeepFiles::All => None,
            KeepFiles::Newest(n) => Some(n as usize),
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
