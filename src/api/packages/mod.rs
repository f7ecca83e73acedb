//! GitLab's Packages API for a project: list, show, list files, download a
//! file by id, delete a package or a file.
//!
//! Listing reads the project's package index (one key per 200 packages),
//! filters, sorts and pages the summaries there, and reads full records only
//! for the page it answers.

use std::cmp::Ordering;

use serde_json::{json, Value};

pub mod cleanup;
pub mod generic;
pub mod host_limits;
pub mod protection;
pub mod upload_sessions;

use crate::api::pagination::Page;
use crate::api::params::{self, Params};
use crate::api::{iso8601, Context};
use crate::auth::{policy, Actor, Right};
use crate::error::{ApiError, ApiResult};
use crate::http::{Request, Response};
use crate::meta::kv::KeyValue;
use crate::meta::model::{Package, PackageFile, PackageSummary, Project, RawFile};
use crate::meta::{self, read_ahead};
use crate::router::{GroupId, NumericId, ProjectId};

/// Package types GitLab knows; only `generic` packages exist here, so the
/// others filter everything out.
const PACKAGE_TYPES: &[&str] = &[
    "conan",
    "maven",
    "npm",
    "pypi",
    "composer",
    "nuget",
    "helm",
    "terraform_module",
    "golang",
    "generic",
    "debian",
    "rubygems",
    "rpm",
    "ml_model",
    "cargo",
];
const STATUSES: &[&str] = &[
    "default",
    "hidden",
    "processing",
    "error",
    "pending_destruction",
    "deprecated",
];

/// Validated listing parameters.
struct ListQuery {
    order_by: &'static str,
    descending: bool,
    package_type: Option<String>,
    package_name: Option<String>,
    package_version: Option<String>,
    status: Option<String>,
}

fn parse_list(request: &Request) -> ApiResult<ListQuery> {
    let mut messages = Vec::new();
    let params = Params::query(request);
    let order_by = params.one_of(
        "order_by",
        &["created_at", "name", "version", "type"],
        "created_at",
        &mut messages,
    );
    let sort = params.one_of("sort", &["asc", "desc"], "asc", &mut messages);
    let mut optional = |name: &str, allowed: Option<&[&str]>| {
        let value = request.query_param(name).map(str::to_string)?;
        if allowed.is_some_and(|a| !a.contains(&value.as_str())) {
            messages.push(params::invalid_value_message(name));
        }
        Some(value)
    };
    let query = ListQuery {
        order_by,
        descending: sort == "desc",
        package_type: optional("package_type", Some(PACKAGE_TYPES)),
        package_name: optional("package_name", None),
        package_version: optional("package_version", None),
        status: optional("status", Some(STATUSES)),
    };
    if messages.is_empty() {
        Ok(query)
    } else {
        Err(ApiError::InvalidParams(messages.join(", ")))
    }
}

impl ListQuery {
    fn keeps(&self, summary: &PackageSummary) -> bool {
        let wanted_status = self.status.as_deref().unwrap_or("default");
        self.package_type.as_deref().is_none_or(|t| t == "generic")
            && summary.status.as_str() == wanted_status
            && self
                .package_name
                .as_deref()
                .is_none_or(|n| summary.name.to_lowercase().contains(&n.to_lowercase()))
            && self
                .package_version
                .as_deref()
                .is_none_or(|v| summary.version == v)
    }

    fn compare(&self, a: &PackageSummary, b: &PackageSummary) -> Ordering {
        let order = match self.order_by {
            "name" => a.name.cmp(&b.name),
            "version" => a.version.cmp(&b.version),
            _ => a.created_at.cmp(&b.created_at),
        }
        .then(a.id.cmp(&b.id));
        if self.descending {
            order.reverse()
        } else {
            order
        }
    }
}

/// The package as the Packages API shows it.
pub fn package_entity<F>(
    package: &Package<F>,
    project: &Project,
    public_url: &str,
    may_delete: bool,
) -> Value {
    let mut links = json!({
        "web_path": format!("/{}/-/packages/{}", project.full_path(), package.id),
    });
    if may_delete {
        links["delete_api_path"] = json!(format!(
            "{public_url}/api/v4/projects/{}/packages/{}",
            project.id, package.id
        ));
    }
    json!({
        "id": package.id,
        "name": package.name,
        "version": package.version,
        "package_type": "generic",
        "status": package.status.as_str(),
        "_links": links,
        "created_at": iso8601(package.created_at),
        "last_downloaded_at": package.last_downloaded_at.map(iso8601),
        "tags": [],
        "pipelines": [],
    })
}

fn file_entity(package: &Package, file: &PackageFile) -> Value {
    json!({
        "id": file.id,
        "package_id": package.id,
        "created_at": iso8601(file.created_at),
        "file_name": file.file_name,
        "size": file.size,
        "file_md5": file.md5,
        "file_sha1": file.sha1,
        "file_sha256": file.sha256,
        "pipelines": [],
    })
}

/// Deleting packages needs a maintainer.
const DELETE: Right = Right::Maintain;

fn may_delete(actor: &Actor, project: &Project) -> bool {
    policy::on_project(actor, project) >= Some(DELETE)
}

pub fn list<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
) -> ApiResult<Response> {
    let actor = ctx.authenticate_reading_ahead(request, project_id, |id| {
        vec![read_ahead::package_counter(id)]
    })?;
    let query = parse_list(request)?;
    let page = Page::from_request(request)?;
    let (project, _) = ctx.project_for(&actor, project_id, Right::Download)?;
    let mut listed = Vec::new();
    add_listed(ctx, &query, &project, &mut listed)?;
    answer_page(ctx, request, &actor, page, &query, listed, false)
}

/// Adds the packages of `project` that the query keeps, and the unsure
/// entries, which [`answer_page`] settles from their records.
fn add_listed<K: KeyValue>(
    ctx: &Context<K>,
    query: &ListQuery,
    project: &Project,
    listed: &mut Vec<(PackageSummary, Project)>,
) -> ApiResult<()> {
    let entries = meta::listed_packages(ctx.kv, project.id)?;
    listed.extend(
        entries
            .into_iter()
            .filter(|s| s.is_unsure() || query.keeps(s))
            .map(|s| (s, project.clone())),
    );
    Ok(())
}

/// Package records read ahead together while a page is answered: a default
/// page (20) in one round trip, and at most this many records (each under
/// `meta::MAX_VALUE_BYTES`) held at once, besides those of unsure entries.
const RECORDS_READ_AHEAD: usize = 20;

/// Sorts what a listing kept and answers one page of it, reading only the
/// records of that page and of the unsure entries (see `meta::packages`),
/// the latter with the page's first records, guessing that they are live
/// as they say: one round trip for a default page unless the guess was
/// wrong. Group listings name each package's project.
fn answer_page<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    actor: &Actor,
    page: Page,
    query: &ListQuery,
    listed: Vec<(PackageSummary, Project)>,
    name_projects: bool,
) -> ApiResult<Response> {
    let mut records = PageRecords::new(ctx.kv);
    let guess = shown(query, listed.iter().cloned());
    let first_records = page.slice(&guess).iter().take(RECORDS_READ_AHEAD);
    let unsure = listed.iter().filter(|(s, _)| s.is_unsure());
    records.fetch(unsure.chain(first_records).map(|(s, p)| record_key(s, p)))?;
    let settled = listed.into_iter().filter_map(|(summary, project)| {
        if !summary.is_unsure() {
            return Some((summary, project));
        }
        let record = records.get(&record_key(&summary, &project));
        meta::settled(&summary, record).map(|s| (s, project))
    });
    let listed = shown(query, settled);

    let mut entities = Vec::new();
    for batch in page.slice(&listed).chunks(RECORDS_READ_AHEAD) {
        records.fetch(batch.iter().map(|(s, p)| record_key(s, p)))?;
        for (summary, project) in batch {
            let package = records.take(&record_key(summary, project));
            let Some(package) = package.filter(|p| p.id == summary.id && !p.is_deleted()) else {
                continue;
            };
            let deletable = may_delete(actor, project);
            let mut entity = package_entity(&package, project, &ctx.config.public_url, deletable);
            if name_projects {
                entity["project_id"] = json!(project.id);
                entity["project_path"] = json!(project.full_path());
            }
            entities.push(entity);
        }
    }
    Ok(page.respond(
        &entities,
        listed.len() as u64,
        request,
        &ctx.config.public_url,
    ))
}

/// The entries the query keeps, in its order.
fn shown(
    query: &ListQuery,
    entries: impl Iterator<Item = (PackageSummary, Project)>,
) -> Vec<(PackageSummary, Project)> {
    let mut kept: Vec<_> = entries.filter(|(s, _)| query.keeps(s)).collect();
    kept.sort_by(|(a, _), (b, _)| query.compare(a, b));
    kept
}

/// The key of the record a listed entry names.
fn record_key(summary: &PackageSummary, project: &Project) -> String {
    read_ahead::package(project.id, &summary.name, &summary.version)
}

/// The package records a page has read, by key, their files left as
/// stored (a page shows none of them).
struct PageRecords<'a, K> {
    kv: &'a K,
    read: std::collections::HashMap<String, Option<Package<RawFile>>>,
}

impl<'a, K: KeyValue> PageRecords<'a, K> {
    fn new(kv: &'a K) -> Self {
        PageRecords {
            kv,
            read: Default::default(),
        }
    }

    /// Reads those of `keys` not read yet, in one round trip.
    fn fetch(&mut self, keys: impl Iterator<Item = String>) -> ApiResult<()> {
        let mut missing: Vec<String> = keys.filter(|k| !self.read.contains_key(k)).collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let records = meta::records_at(self.kv, &missing)?;
        self.read.extend(missing.into_iter().zip(records));
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&Package<RawFile>> {
        self.read.get(key).and_then(Option::as_ref)
    }

    /// The record at `key`, forgotten here so a long page holds few.
    fn take(&mut self, key: &str) -> Option<Package<RawFile>> {
        self.read.remove(key).flatten()
    }
}

/// `GET /groups/:id/packages`: the same over every project under the group
/// that the caller may read (subgroups too, unless `exclude_subgroups`);
/// each entry adds `project_id` and `project_path`.
pub fn list_group<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    group_id: &GroupId,
) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let query = parse_list(request)?;
    let page = Page::from_request(request)?;
    let nested = match request.query_param("exclude_subgroups") {
        None | Some("false") => true,
        Some("true") => false,
        Some(_) => {
            return Err(ApiError::InvalidParams(
                "exclude_subgroups is invalid".into(),
            ))
        }
    };
    let (group, _) = ctx.group_for(&actor, group_id, Right::See)?;
    let entries = ctx.visible_projects_in(&actor, &group.full_path)?;
    let mut listed = Vec::new();
    for entry in entries.iter().filter(|e| e.is_in(&group.full_path, nested)) {
        let project = entry.as_project();
        if policy::on_project(&actor, &project) >= Some(Right::Download) {
            add_listed(ctx, &query, &project, &mut listed)?;
        }
    }
    answer_page(ctx, request, &actor, page, &query, listed, true)
}

/// The live package `:package_id` of the project.
fn find_package<K: KeyValue>(
    ctx: &Context<K>,
    project: &Project,
    package_id: NumericId,
) -> ApiResult<Package> {
    let package_id = package_id.ok_or_else(ApiError::not_found)?;
    meta::package_by_id(ctx.kv, project.id, package_id)?.ok_or_else(ApiError::not_found)
}

pub fn show<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    package_id: NumericId,
) -> ApiResult<Response> {
    let actor = ctx.authenticate_reading_ahead(request, project_id, |id| {
        vec![read_ahead::package_counter(id)]
    })?;
    let (project, _) = ctx.project_for(&actor, project_id, Right::Download)?;
    // The index names the package and its other versions: one read of it.
    let summaries = meta::package_summaries(ctx.kv, project.id)?;
    let shown = summaries
        .iter()
        .find(|s| Some(s.id) == package_id)
        .ok_or_else(ApiError::not_found)?;
    let package = meta::package(ctx.kv, project.id, &shown.name, &shown.version)?
        .filter(|p| p.id == shown.id)
        .ok_or_else(ApiError::not_found)?;
    let mut entity = package_entity(
        &package,
        &project,
        &ctx.config.public_url,
        may_delete(&actor, &project),
    );
    let versions: Vec<Value> = summaries
        .iter()
        .filter(|s| s.name == package.name && s.id != package.id)
        .map(|s| {
            json!({
                "id": s.id,
                "version": s.version,
                "created_at": iso8601(s.created_at),
                "tags": [],
                "pipelines": [],
            })
        })
        .collect();
    entity["versions"] = json!(versions);
    Ok(Response::json(200, &entity))
}

pub fn list_files<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    package_id: NumericId,
) -> ApiResult<Response> {
    let actor = ctx.authenticate_reading_ahead(request, project_id, |id| {
        read_ahead::package_by_id(id, package_id)
    })?;
    let mut messages = Vec::new();
    let params = Params::query(request);
    let order_by = params.one_of(
        "order_by",
        &["id", "created_at", "file_name"],
        "id",
        &mut messages,
    );
    let sort = params.one_of("sort", &["asc", "desc"], "asc", &mut messages);
    if !messages.is_empty() {
        return Err(ApiError::InvalidParams(messages.join(", ")));
    }
    let page = Page::from_request(request)?;
    let (project, _) = ctx.project_for(&actor, project_id, Right::Download)?;
    let package = find_package(ctx, &project, package_id)?;
    let stored = meta::package_files(ctx.kv, &package)?;
    let mut files: Vec<&PackageFile> = stored.iter().collect();
    files.sort_by(|a, b| {
        let order = match order_by {
            "file_name" => a.file_name.cmp(&b.file_name),
            "created_at" => a.created_at.cmp(&b.created_at),
            _ => Ordering::Equal,
        }
        .then(a.id.cmp(&b.id));
        if sort == "desc" {
            order.reverse()
        } else {
            order
        }
    });
    let entities: Vec<Value> = page
        .slice(&files)
        .iter()
        .map(|f| file_entity(&package, f))
        .collect();
    Ok(page.respond(
        &entities,
        files.len() as u64,
        request,
        &ctx.config.public_url,
    ))
}

pub fn download_file<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    package_id: NumericId,
    file_id: NumericId,
) -> ApiResult<Response> {
    let actor = ctx.authenticate_reading_ahead(request, project_id, |id| {
        read_ahead::package_by_id(id, package_id)
    })?;
    let (project, _) = ctx.project_for(&actor, project_id, Right::Download)?;
    let package = find_package(ctx, &project, package_id)?;
    let file = file_id
        .map(|id| meta::file_by_id(ctx.kv, &package, id))
        .transpose()?
        .flatten()
        .ok_or(ApiError::NotFound("Not found"))?;
    generic::serve_file(ctx, request, &package, &file)
}

/// The package `:package_id` a caller may delete from, or deletes: the
/// caller holds the delete right on the project and no protection rule
/// keeps the package. Everything it checks is read in one round trip before
/// the delete's first write.
fn package_to_delete<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    package_id: NumericId,
) -> ApiResult<Package> {
    let actor = ctx.authenticate_reading_ahead(request, project_id, |id| {
        let mut keys = read_ahead::package_by_id(id, package_id);
        keys.push(read_ahead::protection_rules(id));
        keys
    })?;
    let (project, _) = ctx.project_for(&actor, project_id, DELETE)?;
    let package = find_package(ctx, &project, package_id)?;
    protection::check_delete(ctx, &actor, &project, &package.name)?;
    Ok(package)
}

pub fn delete<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    package_id: NumericId,
) -> ApiResult<Response> {
    let package = package_to_delete(ctx, request, project_id, package_id)?;
    let files = meta::remove_package(ctx.kv, &package, ctx.now_millis())?
        .ok_or(ApiError::NotFound("Not found"))?;
    ctx.discard_objects(&files);
    Ok(Response::new(204))
}

pub fn delete_file<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    package_id: NumericId,
    file_id: NumericId,
) -> ApiResult<Response> {
    let package = package_to_delete(ctx, request, project_id, package_id)?;
    let file = meta::remove_file(
        ctx.kv,
        &package,
        file_id.ok_or_else(ApiError::not_found)?,
        ctx.now_millis(),
    )?
    .ok_or(ApiError::NotFound("Not found"))?;
    ctx.discard_objects(std::slice::from_ref(&file));
    Ok(Response::new(204))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;
    use crate::meta::model::PackageStatus;

    fn summary(id: u64, name: &str, version: &str, status: PackageStatus) -> PackageSummary {
        PackageSummary {
            id,
            name: name.into(),
            version: version.into(),
            status,
            created_at: id as i64,
            pending: false,
            changes: Vec::new(),
            creating: None,
        }
    }

    fn listed(query: &str, all: &[PackageSummary]) -> ApiResult<Vec<u64>> {
        let q = parse_list(&Request::new(Method::Get, &format!("/x?{query}"), vec![]))?;
        let mut kept: Vec<PackageSummary> = all.iter().filter(|s| q.keeps(s)).cloned().collect();
        kept.sort_by(|a, b| q.compare(a, b));
        Ok(kept.iter().map(|s| s.id).collect())
    }

    #[test]
    fn filters_and_orders_follow_the_packages_api() {
        let all = [
            summary(1, "Tool", "1.10", PackageStatus::Default),
            summary(2, "other", "2.0", PackageStatus::Default),
            summary(3, "tool-cli", "1.2", PackageStatus::Hidden),
            summary(4, "toolbox", "1.2", PackageStatus::Default),
        ];
        assert_eq!(listed("", &all).unwrap(), [1, 2, 4]);
        assert_eq!(listed("status=hidden", &all).unwrap(), [3]);
        assert_eq!(listed("package_name=TOOL", &all).unwrap(), [1, 4]);
        assert_eq!(listed("package_version=1.2", &all).unwrap(), [4]);
        assert_eq!(listed("order_by=name", &all).unwrap(), [1, 2, 4]);
        assert_eq!(
            listed("order_by=version&sort=desc", &all).unwrap(),
            [2, 4, 1]
        );
        assert_eq!(listed("sort=desc", &all).unwrap(), [4, 2, 1]);
        assert_eq!(listed("package_type=generic", &all).unwrap(), [1, 2, 4]);
        assert!(listed("package_type=npm", &all).unwrap().is_empty());
    }

    #[test]
    fn invalid_listing_parameters_are_reported_together() {
        let Err(ApiError::InvalidParams(message)) =
            listed("order_by=size&sort=up&package_type=zip", &[])
        else {
            panic!("expected invalid params")
        };
        assert_eq!(
            message,
            "order_by does not have a valid value, sort does not have a valid value, package_type does not have a valid value"
        );
    }
}
