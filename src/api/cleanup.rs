//! `GET`/`PUT /projects/:id/packages/cleanup_policy` (ours; GitLab sets it
//! through GraphQL's `updatePackagesCleanupPolicy`, served in `graphql`).

use serde_json::json;

use super::Context;
use crate::auth::Right;
use crate::error::{ApiError, ApiResult};
use crate::http::{Request, Response};
use crate::meta::cleanup::{self, CleanupPolicy, KeepFiles};
use crate::meta::kv::KeyValue;

pub fn entity(policy: &CleanupPolicy) -> serde_json::Value {
    json!({ "keep_n_duplicated_package_files": policy.keep_n_duplicated_package_files.as_str() })
}

pub fn get<K: KeyValue>(ctx: &Context<K>, request: &Request, raw_id: &str) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let (project, _) = ctx.project_for(&actor, raw_id, Right::Download)?;
    let policy = cleanup::policy(ctx.kv, project.id)?;
    Ok(Response::json(200, &entity(&policy)))
}

pub fn put<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    raw_id: &str,
    body: &[u8],
) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let (project, _) = ctx.project_for(&actor, raw_id, Right::Maintain)?;
    let value = field(request, body, "keep_n_duplicated_package_files")?.ok_or_else(|| {
        ApiError::InvalidParams("keep_n_duplicated_package_files is missing".into())
    })?;
    let keep = KeepFiles::parse(&value).ok_or_else(|| {
        ApiError::InvalidParams(
            "keep_n_duplicated_package_files does not have a valid value".into(),
        )
    })?;
    let policy = CleanupPolicy {
        keep_n_duplicated_package_files: keep,
    };
    cleanup::set_policy(ctx.kv, project.id, policy)?;
    Ok(Response::json(200, &entity(&policy)))
}

/// One field from a JSON body (string or number), a form body or the query.
fn field(request: &Request, body: &[u8], name: &str) -> ApiResult<Option<String>> {
    let is_json = request
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json"));
    if is_json {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("the JSON body is invalid: {e}")))?;
        return Ok(match &value[name] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    }
    Ok(form_urlencoded::parse(body)
        .into_owned()
        .chain(request.query.iter().cloned())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v))
}
