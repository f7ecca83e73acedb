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

pub fn revoked_token(token_id: &str) -> String {
    format!("{V}/revoked-token/{token_id}")
}
