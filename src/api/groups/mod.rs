//! The implicit groups (namespaces that hold projects): `GET /groups/:id`
//! and `GET /groups/:id/projects`, and their package settings
//! ([`settings`]).
//!
//! A group is visible to whoever may see a project in it (nested groups
//! included) or holds a grant on it (`auth::policy`).

pub mod settings;

use serde_json::{json, Value};

use super::projects::listing::answer_projects;
use super::{iso8601, Context};
use crate::auth::Right;
use crate::error::ApiResult;
use crate::http::{Request, Response};
use crate::meta::groups::{self, Group, GroupRef};
use crate::meta::kv::KeyValue;
use crate::router::GroupId;

/// `GET /groups/:id`, by numeric id or URL-encoded full path.
pub fn get_group<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    group_id: &GroupId,
) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let (group, _) = ctx.group_for(&actor, group_id, Right::See)?;
    let entries = ctx.visible_projects_in(&actor, &group.full_path)?;
    let parent_id = match group.parent_path() {
        Some(parent) => groups::group(ctx.kv, &GroupRef::Path(parent.to_string()))?.map(|g| g.id),
        None => None,
    };
    let public = entries.iter().any(|e| e.public);
    Ok(Response::json(
        200,
        &render_group(&group, parent_id, public, &ctx.config.public_url),
    ))
}

/// `GET /groups/:id/projects`: the same for the projects of one group;
/// `include_subgroups=true` adds those of its subgroups.
pub fn group_projects<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    group_id: &GroupId,
) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let (group, _) = ctx.group_for(&actor, group_id, Right::See)?;
    let nested = request.query_param("include_subgroups") == Some("true");
    answer_projects(ctx, request, &actor, |e| e.is_in(&group.full_path, nested))
}

/// GitLab's group JSON.
pub fn render_group(
    group: &Group,
    parent_id: Option<u64>,
    public: bool,
    public_url: &str,
) -> Value {
    let full_name = group.full_path.split('/').collect::<Vec<_>>().join(" / ");
    json!({
        "id": group.id,
        "web_url": format!("{public_url}/groups/{}", group.full_path),
        "name": group.path(),
        "path": group.path(),
        "description": "",
        "visibility": if public { "public" } else { "private" },
        "full_name": full_name,
        "full_path": group.full_path,
        "parent_id": parent_id,
        "created_at": iso8601(group.created_at),
        "avatar_url": null,
        "packages_enabled": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_render_like_gitlab() {
        let group = Group {
            id: 3,
            full_path: "acme/platform".into(),
            created_at: 0,
        };
        let shown = render_group(&group, Some(1), false, "https://r.example");
        assert_eq!(shown["name"], "platform");
        assert_eq!(shown["full_name"], "acme / platform");
        assert_eq!(shown["full_path"], "acme/platform");
        assert_eq!(shown["parent_id"], 1);
        assert_eq!(shown["visibility"], "private");
        assert_eq!(shown["web_url"], "https://r.example/groups/acme/platform");
    }
}
