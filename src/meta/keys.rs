//! The key-value layout: the only place that knows what a key looks like.
//!
//! Every key starts with the layout version so the layout can change later.
//! Names, versions and paths in keys are already validated (no `/` in names
//! and versions), and project paths are lowercased, since GitLab resolves
//! paths case-insensitively.

const V: &str = "v1";

pub fn project(id: u64) -> String {
    format!("{V}/project/{id}")
}

pub fn project_path(full_path: &str) -> String {
    format!("{V}/project-path/{}", full_path.to_lowercase())
}

pub fn package(project_id: u64, name: &str, version: &str) -> String {
    format!("{V}/pkg/{project_id}/{name}/{version}")
}

/// A sealed segment of a package's files, named by a digest of its file ids.
pub fn package_segment(package_id: u64, digest: &str) -> String {
    format!("{V}/pkg-files/{package_id}/{digest}")
}

pub fn package_by_id(package_id: u64) -> String {
    format!("{V}/pkg-id/{package_id}")
}

/// Counter of packages ever created in a project, used to pick index shards.
pub fn package_ordinal(project_id: u64) -> String {
    format!("{V}/pkg-ordinal/{project_id}")
}

/// One shard of a project's package index: summaries of up to
/// [`super::INDEX_SHARD_SIZE`] packages in creation order.
pub fn package_index(project_id: u64, shard: u64) -> String {
    format!("{V}/pkg-index/{project_id}/{shard}")
}

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

/// One shard of the global project index: up to
/// [`super::directory::PROJECT_INDEX_SHARD_SIZE`] entries in creation order.
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
