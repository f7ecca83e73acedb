//! Listing and changing projects: `GET /projects` (and, for
//! `api::groups`, the projects of a group) and `PUT /projects/:id`.
//!
//! Listings filter the project index (`meta::project_index`), whose entries
//! know enough to decide visibility, and then read only the records of the
//! page they answer.

use serde_json::Value;

use crate::api::pagination::Page;
use crate::api::params::{self, Params};
use crate::api::Context;
use crate::auth::{policy, Actor, Right};
use crate::error::{ApiError, ApiResult};
use crate::http::{Request, Response};
use crate::meta::kv::KeyValue;
use crate::meta::model::Visibility;
use crate::meta::project_index::{self, ProjectEntry};
use crate::meta::{self, ProjectRef};
use crate::router::ProjectId;

/// `GET /projects`: the projects the caller may see, newest first unless
/// `sort=asc`; `visibility` and `search` (in the full path) filter.
pub fn list_projects<K: KeyValue>(ctx: &Context<K>, request: &Request) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    answer_projects(ctx, request, &actor, |_| true)
}

/// `PUT /projects/:id`: changes `visibility` (maintainers and above).
pub fn update_project<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    body: &[u8],
) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let (project, _) = ctx.project_for(&actor, project_id, Right::Maintain)?;
    let fields = Params::parse(request, body)?;
    let Some(visibility) = fields.text("visibility") else {
        return Err(ApiError::InvalidParams(
            "at least one parameter must be provided".into(),
        ));
    };
    let visibility =
        Visibility::parse(&visibility).ok_or_else(|| params::invalid_value("visibility"))?;
    let change = format!("visibility {}", hex::encode((ctx.random)()));
    let updated = project_index::set_visibility(ctx.kv, project.id, visibility, &change)?
        .ok_or(ApiError::NotFound(crate::api::PROJECT_NOT_FOUND))?;
    Ok(Response::json(
        200,
        &super::render(&updated, &ctx.config.public_url),
    ))
}

/// How a project listing is ordered and filtered, from the query.
struct ListOptions {
    ascending: bool,
    visibility: Option<Option<Visibility>>,
    search: Option<String>,
}

fn parse_list_options(request: &Request) -> ApiResult<ListOptions> {
    match request.query_param("order_by") {
        None | Some("") | Some("id") | Some("created_at") => {}
        Some(_) => return Err(params::invalid_value("order_by")),
    }
    let ascending = match request.query_param("sort") {
        None | Some("") | Some("desc") => false,
        Some("asc") => true,
        Some(_) => return Err(params::invalid_value("sort")),
    };
    let visibility = match request.query_param("visibility") {
        None | Some("") => None,
        // GitLab's third visibility; no project here has it.
        Some("internal") => Some(None),
        Some(v) => Some(Some(
            Visibility::parse(v).ok_or_else(|| params::invalid_value("visibility"))?,
        )),
    };
    let search = request
        .query_param("search")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase);
    Ok(ListOptions {
        ascending,
        visibility,
        search,
    })
}

/// One page of the projects the caller sees among those `belongs` keeps.
pub fn answer_projects<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    actor: &Actor,
    belongs: impl Fn(&ProjectEntry) -> bool,
) -> ApiResult<Response> {
    let options = parse_list_options(request)?;
    let page = Page::from_request(request)?;
    let mut entries: Vec<ProjectEntry> = project_index::project_entries(ctx.kv)?
        .into_iter()
        .filter(|e| belongs(e))
        .filter(|e| match options.visibility {
            None => true,
            Some(None) => false,
            Some(Some(v)) => e.public == (v == Visibility::Public),
        })
        .filter(|e| {
            options
                .search
                .as_ref()
                .is_none_or(|s| e.full_path.to_lowercase().contains(s))
        })
        .filter(|e| policy::on_project(actor, &e.as_project()).is_some())
        .collect();
    // The index is in creation order, which is id order.
    if !options.ascending {
        entries.reverse();
    }
    let mut shown: Vec<Value> = Vec::new();
    for entry in page.slice(&entries) {
        let project = meta::project(ctx.kv, &ProjectRef::Id(entry.id))?;
        // The record decides: an index entry may lag a visibility change.
        if let Some(project) = project.filter(|p| policy::on_project(actor, p).is_some()) {
            shown.push(super::render(&project, &ctx.config.public_url));
        }
    }
    Ok(page.respond(
        &shown,
        entries.len() as u64,
        request,
        &ctx.config.public_url,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn options(query: &str) -> ApiResult<ListOptions> {
        parse_list_options(&Request::new(Method::Get, &format!("/x?{query}"), vec![]))
    }

    #[test]
    fn list_options_follow_gitlab() {
        let o = options("").unwrap();
        assert!(!o.ascending);
        assert_eq!(o.visibility, None);
        let o = options("sort=asc&visibility=public&search=Tools&order_by=id").unwrap();
        assert!(o.ascending);
        assert_eq!(o.visibility, Some(Some(Visibility::Public)));
        assert_eq!(o.search.as_deref(), Some("tools"));
        assert_eq!(
            options("visibility=internal").unwrap().visibility,
            Some(None)
        );
        for bad in ["sort=up", "order_by=stars", "visibility=secret"] {
            assert!(options(bad).is_err(), "{bad}");
        }
    }
}
