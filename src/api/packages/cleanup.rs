//! `GET`/`PUT /projects/:id/packages/cleanup_policy` (ours; GitLab sets it
//! through GraphQL's `updatePackagesCleanupPolicy`, served in `graphql`).

use serde_json::json;

use crate::api::params::{self, Params};
use crate::api::Context;
use crate::auth::Right;
use crate::error::ApiResult;
use crate::http::{Request, Response};
use crate::meta::cleanup::{self, CleanupPolicy, KeepFiles};
use crate::meta::kv::KeyValue;
use crate::router::ProjectId;

pub fn entity(policy: &CleanupPolicy) -> serde_json::Value {
    json!({ "keep_n_duplicated_package_files": policy.keep_n_duplicated_package_files.as_str() })
}

pub fn get<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let (project, _) = ctx.project_for(&actor, project_id, Right::Download)?;
    let policy = cleanup::policy(ctx.kv, project.id)?;
    Ok(Response::json(200, &entity(&policy)))
}

pub fn put<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    body: &[u8],
) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let (project, _) = ctx.project_for(&actor, project_id, Right::Maintain)?;
    const KEEP: &str = "keep_n_duplicated_package_files";
    let value = Params::parse(request, body)?
        .raw_text(KEEP)
        .ok_or_else(|| params::missing(KEEP))?;
    let keep = KeepFiles::parse(&value).ok_or_else(|| params::invalid_value(KEEP))?;
    let policy = CleanupPolicy {
        keep_n_duplicated_package_files: keep,
    };
    cleanup::set_policy(ctx.kv, project.id, policy)?;
    Ok(Response::json(200, &entity(&policy)))
}
