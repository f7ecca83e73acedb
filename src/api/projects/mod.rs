//! `POST /projects` (administrators), `GET /projects/:id` and
//! `DELETE /projects/:id` (administrators).

use serde_json::{json, Value};

pub mod listing;

use crate::api::iso8601;
use crate::api::params::{self, Params};
use crate::api::Context;
use crate::auth::{policy, Right};
use crate::error::{ApiError, ApiResult};
use crate::http::{Request, Response};
use crate::meta::kv::KeyValue;
use crate::meta::model::{Project, Visibility};
use crate::meta::{self, MetaError, NewProject};
use crate::router::ProjectId;

/// GitLab's project JSON.
pub fn render(project: &Project, public_url: &str) -> Value {
    let full_path = project.full_path();
    json!({
        "id": project.id,
        "name": project.name,
        "path": project.path,
        "path_with_namespace": full_path,
        "name_with_namespace": format!("{} / {}", project.namespace.replace('/', " / "), project.name),
        "visibility": project.visibility.as_str(),
        "created_at": iso8601(project.created_at),
        "web_url": format!("{public_url}/{full_path}"),
        "namespace": {
            "name": project.namespace.rsplit('/').next().unwrap_or_default(),
            "path": project.namespace.rsplit('/').next().unwrap_or_default(),
            "full_path": project.namespace,
            "kind": "group",
        },
        "packages_enabled": true,
    })
}

/// A path segment of a project or group: letters, digits, `_`, `-`, `.`,
/// starting with a letter, digit or `_`, and not ending in `.git`/`.atom`.
pub fn is_valid_path_segment(segment: &str) -> bool {
    let mut bytes = segment.bytes();
    segment.len() <= 255
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        && !segment.ends_with(".git")
        && !segment.ends_with(".atom")
}

fn invalid(field: &'static str, text: &str) -> ApiError {
    ApiError::FieldInvalid {
        field,
        text: text.into(),
    }
}

pub fn create<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    body: &[u8],
) -> ApiResult<Response> {
    policy::require_on_instance(&ctx.authenticate(request)?, Right::Administer)?;
    let params = Params::parse(request, body)?;
    let path = params.required("path")?;
    if !is_valid_path_segment(&path) {
        return Err(invalid(
            "path",
            "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-', end in '.git' or end in '.atom'",
        ));
    }
    let namespace = params
        .text("namespace_path")
        .map(|n| n.trim_matches('/').to_string())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| params::missing("namespace_path"))?;
    if namespace.split('/').count() > 20 || !namespace.split('/').all(is_valid_path_segment) {
        return Err(invalid("namespace", "is invalid"));
    }
    let visibility = match params.text("visibility") {
        None => Visibility::Private,
        Some(v) => Visibility::parse(&v).ok_or_else(|| params::invalid_value("visibility"))?,
    };
    let name = params.text("name").unwrap_or_else(|| path.clone());
    if name.len() > 255 {
        return Err(invalid("name", "is too long (maximum is 255 characters)"));
    }
    let new = NewProject {
        name,
        path,
        namespace,
        visibility,
    };
    match meta::create_project(ctx.kv, new, ctx.now_millis()) {
        Ok(project) => Ok(Response::json(
            201,
            &render(&project, &ctx.config.public_url),
        )),
        Err(MetaError::PathTaken) => Err(invalid("path", "has already been taken")),
        Err(e) => Err(ApiError::internal(e)),
    }
}

pub fn get<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let (project, _) = ctx.project_for(&actor, project_id, Right::See)?;
    Ok(Response::json(
        200,
        &render(&project, &ctx.config.public_url),
    ))
}

/// `DELETE /projects/:id` (administrators): the project is gone at once
/// for every endpoint, listings and groups included, and its path may be
/// taken again; its packages and their files are deleted. The records stay
/// (keys are never deleted), marked. GitLab answers 202.
pub fn delete<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let (project, _) = ctx.project_for(&actor, project_id, Right::Administer)?;
    let (_, files) = meta::delete_project(ctx.kv, project.id, ctx.now_millis())?
        .ok_or(ApiError::NotFound(crate::api::PROJECT_NOT_FOUND))?;
    ctx.discard_objects(&files);
    Ok(Response::json(202, &json!({ "message": "202 Accepted" })))
}

#[cfg(test)]
mod tests {
    use super::is_valid_path_segment;

    #[test]
    fn path_segments_follow_gitlab_rules() {
        for ok in ["tools", "my-tool.v2", "_x", "A1"] {
            assert!(is_valid_path_segment(ok), "{ok}");
        }
        for bad in ["", "-x", ".x", "a/b", "x.git", "x.atom", "caf\u{e9}", "a b"] {
            assert!(!is_valid_path_segment(bad), "{bad}");
        }
    }
}
