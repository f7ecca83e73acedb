//! The key-value layout: every key the registry stores, and the parsers a
//! tool walking the store needs.
//!
//! Every key starts with the layout version so the layout can change later.
//! Names, versions and paths in keys are already validated (no `/` in names
//! and versions, no `#` anywhere), and project, group and user paths are
//! lowercased, since GitLab resolves them case-insensitively.

/// The layout version every key starts with, `/` included.
pub const VERSION_PREFIX: &str = "v1/";

/// Package records, `v1/pkg/<project id>/<name>/<version>`. Creation claims
/// of those keys sort under it too (see [`is_creation_claim`]).
pub const PACKAGE_PREFIX: &str = "v1/pkg/";

/// Where file contents go in the bucket: `files/<random hex>`. Nothing
/// outside it is the registry's.
pub const OBJECT_PREFIX: &str = "files/";

/// What names a creation claim: `<key>#claim/<epoch>`.
const CLAIM_MARKER: &str = "#claim/";

/// The creation claim of earlier versions, `<key>#created`. No longer
/// written, but stores may still hold some.
const LEGACY_CLAIM_SUFFIX: &str = "#created";

const V: &str = "v1";

/// The object key of a new file, from a random name (hex).
pub fn object_key(random_hex: &str) -> String {
    format!("{OBJECT_PREFIX}{random_hex}")
}

/// Whether an object key is one the registry writes.
pub fn is_object_key(key: &str) -> bool {
    key.starts_with(OBJECT_PREFIX)
}

/// The counter whose first increment in `epoch` grants the right to create
/// `key` during that epoch.
pub fn creation_claim(key: &str, epoch: i64) -> String {
    format!("{key}{CLAIM_MARKER}{epoch}")
}

/// Whether `key` is a creation claim (a counter beside the key it guards,
/// of this version or an earlier one) rather than a record.
pub fn is_creation_claim(key: &str) -> bool {
    key.contains(CLAIM_MARKER) || key.ends_with(LEGACY_CLAIM_SUFFIX)
}

pub fn project(id: u64) -> String {
    format!("{V}/project/{id}")
}

pub fn project_path(full_path: &str) -> String {
    format!("{V}/project-path/{}", full_path.to_lowercase())
}

pub fn package(project_id: u64, name: &str, version: &str) -> String {
    format!("{PACKAGE_PREFIX}{project_id}/{name}/{version}")
}

/// Whether a key under [`PACKAGE_PREFIX`] is a package record, not one of
/// the creation claims beside them.
pub fn is_package_record(key: &str) -> bool {
    key.starts_with(PACKAGE_PREFIX) && !is_creation_claim(key)
}

/// The parts of a package record's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageKey<'a> {
    pub project_id: u64,
    pub name: &'a str,
    pub version: &'a str,
}

/// Parses a key built by [`package`]; `None` for anything else (creation
/// claims included).
pub fn parse_package(key: &str) -> Option<PackageKey<'_>> {
    if !is_package_record(key) {
        return None;
    }
    let mut parts = key[PACKAGE_PREFIX.len()..].split('/');
    let project_id = parts.next()?.parse().ok()?;
    let name = parts.next().filter(|n| !n.is_empty())?;
    let version = parts.next().filter(|v| !v.is_empty())?;
    if parts.next().is_some() {
        return None;
    }
    Some(PackageKey {
        project_id,
        name,
        version,
    })
}

/// A sealed segment of a package's files, named by a digest of its files
/// (their ids and objects).
pub fn package_segment(package_id: u64, digest: &str) -> String {
    format!("{V}/pkg-files/{package_id}/{digest}")
}

/// Where the record of a package id lives; written for packages created
/// before records named their index shard, read for those only.
pub fn package_by_id(package_id: u64) -> String {
    format!("{V}/pkg-id/{package_id}")
}

/// Counter whose ceiling over the shard size is the number of shards of a
/// project's package index (once the number of packages ever created).
pub fn package_ordinal(project_id: u64) -> String {
    format!("{V}/pkg-ordinal/{project_id}")
}

/// One shard of a project's package index: summaries of a fixed number of
/// packages in creation order.
pub fn package_index(project_id: u64, shard: u64) -> String {
    format!("{V}/pkg-index/{project_id}/{shard}")
}

/// Counter of the numeric ids of one kind (`project`, `package`, `file`).
pub fn sequence(kind: &str) -> String {
    format!("{V}/seq/{kind}")
}

pub fn namespace_settings(namespace: &str) -> String {
    format!("{V}/settings/{}", namespace.to_lowercase())
}

/// A project's packages cleanup policy.
pub fn cleanup_policy(project_id: u64) -> String {
    format!("{V}/cleanup-policy/{project_id}")
}

/// A project's package protection rules, all in one value.
pub fn protection_rules(project_id: u64) -> String {
    format!("{V}/protection-rules/{project_id}")
}

pub fn revoked_token(token_id: &str) -> String {
    format!("{V}/revoked-token/{token_id}")
}

// Tokens, projects and groups: the project directory, implicit
// groups and the records of tokens issued through the API.

/// Counter of projects ever indexed, used to pick shards of the project index.
pub fn project_ordinal() -> String {
    format!("{V}/project-ordinal")
}

/// One shard of the global project index: a fixed number of entries in
/// creation order.
pub fn project_index(shard: u64) -> String {
    format!("{V}/project-index/{shard}")
}

/// The shard of the project index that holds this project's entry.
pub fn project_index_slot(project_id: u64) -> String {
    format!("{V}/project-slot/{project_id}")
}

pub fn group(id: u64) -> String {
    format!("{V}/group/{id}")
}

pub fn group_path(full_path: &str) -> String {
    format!("{V}/group-path/{}", full_path.to_lowercase())
}

/// The record of a token issued through the API, by its numeric id.
pub fn token(id: u64) -> String {
    format!("{V}/token/{id}")
}

/// Counter of tokens of one kind ever issued for a holder (`project/7`,
/// `group/3`), used to pick index shards.
pub fn token_ordinal(kind: &str, holder: &str) -> String {
    format!("{V}/token-ordinal/{kind}/{holder}")
}

/// One shard of a holder's index of token ids of one kind.
pub fn token_index(kind: &str, holder: &str, shard: u64) -> String {
    format!("{V}/token-index/{kind}/{holder}/{shard}")
}

// Users, for the personal access tokens administrators hand out.

pub fn user(id: u64) -> String {
    format!("{V}/user/{id}")
}

/// A username's claim: the id of the user who holds it. GitLab resolves
/// usernames case-insensitively.
pub fn username(username: &str) -> String {
    format!("{V}/user-name/{}", username.to_lowercase())
}

// Upload sessions (ours): a file sent to S3 in parts, then verified and
// committed.

/// Upload session records, `v1/upload-session/<project id>/<session id>`.
pub const UPLOAD_SESSION_PREFIX: &str = "v1/upload-session/";

/// The record of one upload session.
pub fn upload_session(project_id: u64, session_id: &str) -> String {
    format!("{UPLOAD_SESSION_PREFIX}{project_id}/{session_id}")
}

/// A project's index of its upload sessions: one value, a bounded list.
pub fn upload_session_index(project_id: u64) -> String {
    format!("{V}/upload-sessions/{project_id}")
}

/// Whether `key` is an upload session record (not a creation claim).
pub fn is_upload_session(key: &str) -> bool {
    key.starts_with(UPLOAD_SESSION_PREFIX) && !is_creation_claim(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_carries_the_layout_version() {
        for key in [
            project(1),
            package(1, "p", "1.0"),
            package_segment(7, "ab"),
            sequence("file"),
            token(3),
            username("Root"),
            upload_session(1, "ab"),
            upload_session_index(1),
        ] {
            assert!(key.starts_with(VERSION_PREFIX), "{key}");
        }
        assert_eq!(VERSION_PREFIX, format!("{V}/"));
    }

    #[test]
    fn package_keys_parse_back() {
        let key = package(12, "tool", "1.0+build");
        assert!(key.starts_with(PACKAGE_PREFIX));
        assert_eq!(
            parse_package(&key),
            Some(PackageKey {
                project_id: 12,
                name: "tool",
                version: "1.0+build",
            })
        );
        assert!(is_package_record(&key));
    }

    #[test]
    fn claims_and_neighbours_are_no_package_records() {
        let key = package(1, "p", "1.0");
        for claim in [creation_claim(&key, 59_000_000), format!("{key}#created")] {
            assert!(is_creation_claim(&claim), "{claim}");
            assert!(!is_package_record(&claim), "{claim}");
            assert_eq!(parse_package(&claim), None, "{claim}");
        }
        assert!(!is_creation_claim(&key));
        for other in [
            package_by_id(1),
            package_index(1, 0),
            package_segment(1, "ab"),
            "v1/pkg0".to_string(),
            "v1/pkg/x/p/1.0".to_string(),
            "v1/pkg/1/p".to_string(),
            "v1/pkg/1/p/1.0/extra".to_string(),
        ] {
            assert_eq!(parse_package(&other), None, "{other}");
        }
    }

    #[test]
    fn object_keys_sit_under_their_prefix() {
        let key = object_key("00ff");
        assert_eq!(key, "files/00ff");
        assert!(is_object_key(&key));
        assert!(!is_object_key("other/00ff"));
    }

    #[test]
    fn paths_in_keys_are_case_insensitive() {
        assert_eq!(project_path("Acme/Tool"), project_path("acme/tool"));
        assert_eq!(group_path("Acme"), group_path("acme"));
        assert_eq!(namespace_settings("Acme"), namespace_settings("acme"));
        assert_eq!(username("Root"), username("root"));
    }
}
