//! Which endpoint a request is for. Paths are matched on their raw,
//! still-encoded segments, so `group%2Fproject` stays one `:id`; each id is
//! then decoded into the type its handler takes.

use crate::api::tokens::rules::Target;
use crate::api::{self, params, Context};
use crate::error::{ApiError, ApiResult};
use crate::http::{ByteSource, Method, Request, Response};
use crate::meta::groups::GroupRef;
use crate::meta::kv::KeyValue;
use crate::meta::ProjectRef;
use crate::validate;

/// A numeric id from the path (package, file, token, rule, user); `None`
/// when the segment is not a number. Such an id names nothing: its lookup
/// answers 404, after the caller's rights are checked, as GitLab does.
pub type NumericId = Option<u64>;

fn numeric(segment: &str) -> NumericId {
    segment.parse().ok()
}

/// A project `:id` from the path, URL-decoded: a numeric id or a full path;
/// `None` when the segment does not decode (its percent-encoded bytes are
/// not UTF-8). Such an id names nothing: the policy answers as for a project
/// that does not exist (401 to the anonymous, `404 Project Not Found`).
pub type ProjectId = Option<ProjectRef>;

fn project(segment: &str) -> ProjectId {
    validate::decode_segment(segment).map(|decoded| ProjectRef::parse(&decoded))
}

/// A group `:id` from the path, URL-decoded: a numeric id or a full path;
/// `None` when the segment does not decode. Such an id names nothing:
/// `404 Group Not Found`, or what the policy answers first.
pub type GroupId = Option<GroupRef>;

fn group(segment: &str) -> GroupId {
    validate::decode_segment(segment).map(|decoded| GroupRef::parse(&decoded))
}

/// An endpoint and the ids its path names, decoded. The segments of a
/// generic file path stay raw: `packages::generic` validates them.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Projects,
    Project(ProjectId),
    // Tokens, projects and groups: `groups/:id`, `groups/:id/projects`,
    // `(projects|groups)/:id/(access|deploy)_tokens(/:token_id)`,
    // `projects/:id/job_tokens`.
    Group(GroupId),
    GroupProjects(GroupId),
    AccessTokens(Target),
    AccessToken(Target, NumericId),
    DeployTokens(Target),
    DeployToken(Target, NumericId),
    JobTokens(ProjectId),
    /// `projects/:id/packages/generic/` and the segments after it.
    GenericFile(ProjectId, Vec<&'a str>),
    /// `projects/:id/packages`
    Packages(ProjectId),
    /// `groups/:id/packages`
    GroupPackages(GroupId),
    /// `groups/:id/packages/settings`
    GroupPackageSettings(GroupId),
    /// `POST /api/graphql`
    GraphQl,
    /// `projects/:id/packages/cleanup_policy`
    CleanupPolicy(ProjectId),
    /// `projects/:id/packages/protection/rules`
    ProtectionRules(ProjectId),
    /// `projects/:id/packages/protection/rules/:rule_id`
    ProtectionRule(ProjectId, NumericId),
    /// `projects/:id/packages/upload_sessions` (ours)
    UploadSessions(ProjectId),
    /// `projects/:id/packages/upload_sessions/:session_id`
    UploadSession(ProjectId, &'a str),
    /// `projects/:id/packages/upload_sessions/:session_id/parts/:part_number`
    UploadSessionPart(ProjectId, &'a str, &'a str),
    /// `projects/:id/packages/upload_sessions/:session_id/complete`
    UploadSessionComplete(ProjectId, &'a str),
    /// `projects/:id/packages/:package_id`
    Package(ProjectId, NumericId),
    /// `projects/:id/packages/:package_id/package_files`
    PackageFiles(ProjectId, NumericId),
    /// `projects/:id/packages/:package_id/package_files/:file_id`
    PackageFile(ProjectId, NumericId, NumericId),
    /// `projects/:id/packages/:package_id/package_files/:file_id/download`
    PackageFileDownload(ProjectId, NumericId, NumericId),
    /// `users`, `users/:id`, `users/:id/personal_access_tokens`,
    /// `personal_access_tokens(/:token_id)`.
    Users,
    User(NumericId),
    /// `user`: the caller.
    CurrentUser,
    UserPersonalAccessTokens(NumericId),
    PersonalAccessTokens,
    PersonalAccessToken(NumericId),
    /// `admin/referenced_objects` (ours): the object keys `genreg gc` keeps.
    ReferencedObjects,
    Health,
}

pub fn route(path: &str) -> Option<Route<'_>> {
    if path == "/-/health" {
        return Some(Route::Health);
    }
    if path == "/api/graphql" {
        return Some(Route::GraphQl);
    }
    let rest = path.strip_prefix("/api/v4/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        ["projects"] => Some(Route::Projects),
        ["projects", id] => Some(Route::Project(project(id))),
        ["groups", id] => Some(Route::Group(group(id))),
        ["groups", id, "projects"] => Some(Route::GroupProjects(group(id))),
        ["projects", id, "access_tokens"] => {
            Some(Route::AccessTokens(Target::Project(project(id))))
        }
        ["groups", id, "access_tokens"] => Some(Route::AccessTokens(Target::Group(group(id)))),
        ["projects", id, "access_tokens", token] => Some(Route::AccessToken(
            Target::Project(project(id)),
            numeric(token),
        )),
        ["groups", id, "access_tokens", token] => {
            Some(Route::AccessToken(Target::Group(group(id)), numeric(token)))
        }
        ["projects", id, "deploy_tokens"] => {
            Some(Route::DeployTokens(Target::Project(project(id))))
        }
        ["groups", id, "deploy_tokens"] => Some(Route::DeployTokens(Target::Group(group(id)))),
        ["projects", id, "deploy_tokens", token] => Some(Route::DeployToken(
            Target::Project(project(id)),
            numeric(token),
        )),
        ["groups", id, "deploy_tokens", token] => {
            Some(Route::DeployToken(Target::Group(group(id)), numeric(token)))
        }
        ["projects", id, "job_tokens"] => Some(Route::JobTokens(project(id))),
        ["admin", "referenced_objects"] => Some(Route::ReferencedObjects),
        ["users"] => Some(Route::Users),
        ["users", id] => Some(Route::User(numeric(id))),
        ["user"] => Some(Route::CurrentUser),
        ["users", id, "personal_access_tokens"] => {
            Some(Route::UserPersonalAccessTokens(numeric(id)))
        }
        ["personal_access_tokens"] => Some(Route::PersonalAccessTokens),
        ["personal_access_tokens", token] => Some(Route::PersonalAccessToken(numeric(token))),
        ["projects", id, "packages", "generic", file @ ..] if !file.is_empty() => {
            Some(Route::GenericFile(project(id), file.to_vec()))
        }
        ["projects", id, "packages"] => Some(Route::Packages(project(id))),
        ["projects", id, "packages", "protection", "rules"] => {
            Some(Route::ProtectionRules(project(id)))
        }
        ["projects", id, "packages", "cleanup_policy"] => Some(Route::CleanupPolicy(project(id))),
        ["groups", id, "packages"] => Some(Route::GroupPackages(group(id))),
        ["groups", id, "packages", "settings"] => Some(Route::GroupPackageSettings(group(id))),
        ["projects", id, "packages", "protection", "rules", rule] => {
            Some(Route::ProtectionRule(project(id), numeric(rule)))
        }
        // Before `packages/:package_id`, which would take `upload_sessions`.
        ["projects", id, "packages", "upload_sessions"] => Some(Route::UploadSessions(project(id))),
        ["projects", id, "packages", "upload_sessions", session] => {
            Some(Route::UploadSession(project(id), session))
        }
        ["projects", id, "packages", "upload_sessions", session, "parts", part] => {
            Some(Route::UploadSessionPart(project(id), session, part))
        }
        ["projects", id, "packages", "upload_sessions", session, "complete"] => {
            Some(Route::UploadSessionComplete(project(id), session))
        }
        ["projects", id, "packages", package] => {
            Some(Route::Package(project(id), numeric(package)))
        }
        ["projects", id, "packages", package, "package_files"] => {
            Some(Route::PackageFiles(project(id), numeric(package)))
        }
        ["projects", id, "packages", package, "package_files", file] => Some(Route::PackageFile(
            project(id),
            numeric(package),
            numeric(file),
        )),
        ["projects", id, "packages", package, "package_files", file, "download"] => Some(
            Route::PackageFileDownload(project(id), numeric(package), numeric(file)),
        ),
        _ => None,
    }
}

/// Answers one request. Every error becomes GitLab's JSON error answer.
pub fn handle<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    body: &mut dyn ByteSource,
) -> Response {
    dispatch(ctx, request, body).unwrap_or_else(ApiError::into_response)
}

fn dispatch<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    body: &mut dyn ByteSource,
) -> ApiResult<Response> {
    let Some(route) = route(&request.path) else {
        // Not the API: a page or an asset of the web interface, if anything.
        if let Some(page) = crate::web::answer(request, &ctx.config.s3.endpoint) {
            return Ok(page);
        }
        return Ok(Response::json(
            404,
            &serde_json::json!({ "error": "404 Not Found" }),
        ));
    };
    match (&request.method, route) {
        (Method::Get, Route::Health) => Ok(Response::new(200).with_body(b"OK".to_vec())),
        (Method::Post, Route::Projects) => {
            let body = small_body(body)?;
            api::projects::create(ctx, request, &body)
        }
        (Method::Get, Route::Project(id)) => api::projects::get(ctx, request, &id),
        (Method::Delete, Route::Project(id)) => api::projects::delete(ctx, request, &id),
        // Tokens, projects and groups.
        (Method::Get, Route::Projects) => api::projects::listing::list_projects(ctx, request),
        (Method::Put, Route::Project(id)) => {
            let body = small_body(body)?;
            api::projects::listing::update_project(ctx, request, &id, &body)
        }
        (Method::Get, Route::Group(id)) => api::groups::get_group(ctx, request, &id),
        (Method::Get, Route::GroupProjects(id)) => api::groups::group_projects(ctx, request, &id),
        (Method::Post, Route::AccessTokens(target)) => {
            let body = small_body(body)?;
            api::tokens::access::create(ctx, request, target, &body)
        }
        (Method::Get, Route::AccessTokens(target)) => {
            api::tokens::list(ctx, request, target, &api::tokens::access::HELD)
        }
        (Method::Get, Route::AccessToken(target, token)) => {
            api::tokens::get(ctx, request, target, &api::tokens::access::HELD, token)
        }
        (Method::Delete, Route::AccessToken(target, token)) => {
            api::tokens::revoke(ctx, request, target, &api::tokens::access::HELD, token)
        }
        (Method::Post, Route::DeployTokens(target)) => {
            let body = small_body(body)?;
            api::tokens::deploy::create(ctx, request, target, &body)
        }
        (Method::Get, Route::DeployTokens(target)) => {
            api::tokens::list(ctx, request, target, &api::tokens::deploy::HELD)
        }
        (Method::Get, Route::DeployToken(target, token)) => {
            api::tokens::get(ctx, request, target, &api::tokens::deploy::HELD, token)
        }
        (Method::Delete, Route::DeployToken(target, token)) => {
            api::tokens::revoke(ctx, request, target, &api::tokens::deploy::HELD, token)
        }
        (Method::Post, Route::JobTokens(id)) => {
            let body = small_body(body)?;
            api::tokens::job::create(ctx, request, id, &body)
        }
        (Method::Post, Route::Users) => {
            let body = small_body(body)?;
            api::users::create(ctx, request, &body)
        }
        (Method::Get, Route::User(id)) => api::users::get(ctx, request, id),
        (Method::Get, Route::CurrentUser) => api::users::current(ctx, request),
        (Method::Get, Route::ReferencedObjects) => api::objects::list(ctx, request),
        (Method::Post, Route::UserPersonalAccessTokens(id)) => {
            let body = small_body(body)?;
            api::tokens::personal::create(ctx, request, id, &body)
        }
        (Method::Get, Route::PersonalAccessTokens) => api::tokens::personal::list(ctx, request),
        (Method::Get, Route::PersonalAccessToken(token)) => {
            api::tokens::personal::get(ctx, request, token)
        }
        (Method::Delete, Route::PersonalAccessToken(token)) => {
            api::tokens::personal::revoke(ctx, request, token)
        }
        (Method::Put, Route::GenericFile(id, segments)) => {
            api::packages::generic::publish(ctx, request, &id, &segments, body)
        }
        (Method::Post, Route::GenericFile(id, segments)) => {
            let body = small_body(body)?;
            api::packages::upload_sessions::create(ctx, request, &id, &segments, &body)
        }
        (Method::Get, Route::UploadSessions(id)) => {
            api::packages::upload_sessions::list(ctx, request, &id)
        }
        (Method::Get, Route::UploadSession(id, session)) => {
            api::packages::upload_sessions::show(ctx, request, &id, session)
        }
        (Method::Delete, Route::UploadSession(id, session)) => {
            api::packages::upload_sessions::abort(ctx, request, &id, session)
        }
        (Method::Post, Route::UploadSessionPart(id, session, part)) => {
            let body = small_body(body)?;
            api::packages::upload_sessions::part_link(ctx, request, &id, session, part, &body)
        }
        (Method::Post, Route::UploadSessionComplete(id, session)) => {
            api::packages::upload_sessions::complete(ctx, request, &id, session)
        }
        (Method::Get | Method::Head, Route::GenericFile(id, segments)) => {
            api::packages::generic::download(ctx, request, &id, &segments)
        }
        (Method::Get, Route::Packages(id)) => api::packages::list(ctx, request, &id),
        (Method::Get, Route::GroupPackages(id)) => api::packages::list_group(ctx, request, &id),
        (Method::Get, Route::GroupPackageSettings(id)) => {
            api::groups::settings::get(ctx, request, &id)
        }
        (Method::Put, Route::GroupPackageSettings(id)) => {
            let body = small_body(body)?;
            api::groups::settings::put(ctx, request, &id, &body)
        }
        (Method::Post, Route::GraphQl) => {
            let body = small_body(body)?;
            api::graphql::handle(ctx, request, &body)
        }
        (Method::Get, Route::CleanupPolicy(id)) => api::packages::cleanup::get(ctx, request, &id),
        (Method::Put, Route::CleanupPolicy(id)) => {
            let body = small_body(body)?;
            api::packages::cleanup::put(ctx, request, &id, &body)
        }
        (Method::Get, Route::ProtectionRules(id)) => {
            api::packages::protection::list(ctx, request, &id)
        }
        (Method::Post, Route::ProtectionRules(id)) => {
            let body = small_body(body)?;
            api::packages::protection::create(ctx, request, &id, &body)
        }
        (Method::Patch, Route::ProtectionRule(id, rule)) => {
            let body = small_body(body)?;
            api::packages::protection::update(ctx, request, &id, rule, &body)
        }
        (Method::Delete, Route::ProtectionRule(id, rule)) => {
            api::packages::protection::delete(ctx, request, &id, rule)
        }
        (Method::Get, Route::Package(id, package)) => {
            api::packages::show(ctx, request, &id, package)
        }
        (Method::Delete, Route::Package(id, package)) => {
            api::packages::delete(ctx, request, &id, package)
        }
        (Method::Get, Route::PackageFiles(id, package)) => {
            api::packages::list_files(ctx, request, &id, package)
        }
        (Method::Delete, Route::PackageFile(id, package, file)) => {
            api::packages::delete_file(ctx, request, &id, package, file)
        }
        (Method::Get | Method::Head, Route::PackageFileDownload(id, package, file)) => {
            api::packages::download_file(ctx, request, &id, package, file)
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// The body of a JSON or form endpoint, at most [`params::MAX_BODY`]
/// bytes (413 beyond). Only generic file uploads stream their body.
fn small_body(body: &mut dyn ByteSource) -> ApiResult<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next_chunk().map_err(ApiError::body_cut_off)? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > params::MAX_BODY {
            return Err(ApiError::PayloadTooLarge);
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(full_path: &str) -> ProjectId {
        Some(ProjectRef::Path(full_path.to_string()))
    }

    #[test]
    fn routes_keep_encoded_ids_whole() {
        assert_eq!(route("/api/v4/projects"), Some(Route::Projects));
        assert_eq!(
            route("/api/v4/projects/acme%2Ftools"),
            Some(Route::Project(path("acme/tools")))
        );
        assert_eq!(
            route("/api/v4/projects/7/packages/generic/t/1.0/linux/t.tgz"),
            Some(Route::GenericFile(
                Some(ProjectRef::Id(7)),
                vec!["t", "1.0", "linux", "t.tgz"]
            ))
        );
        assert_eq!(
            route("/api/v4/projects/7/packages/generic/"),
            Some(Route::GenericFile(Some(ProjectRef::Id(7)), vec![""]))
        );
        // Without a file it is a package id, which `generic` is not: 404 later.
        assert_eq!(
            route("/api/v4/projects/7/packages/generic"),
            Some(Route::Package(Some(ProjectRef::Id(7)), None))
        );
        assert_eq!(route("/api/v3/projects"), None);
        assert_eq!(
            route("/api/v4/groups/acme%2Fplatform/access_tokens/12"),
            Some(Route::AccessToken(
                Target::Group(Some(GroupRef::Path("acme/platform".into()))),
                Some(12)
            ))
        );
        assert_eq!(
            route("/api/v4/projects/7/deploy_tokens"),
            Some(Route::DeployTokens(Target::Project(Some(ProjectRef::Id(
                7
            )))))
        );
        assert_eq!(
            route("/api/v4/groups/3/projects"),
            Some(Route::GroupProjects(Some(GroupRef::Id(3))))
        );
        assert_eq!(
            route("/api/v4/users/2/personal_access_tokens"),
            Some(Route::UserPersonalAccessTokens(Some(2)))
        );
        assert_eq!(route("/api/v4/user"), Some(Route::CurrentUser));
        assert_eq!(
            route("/api/v4/personal_access_tokens/9"),
            Some(Route::PersonalAccessToken(Some(9)))
        );
    }

    #[test]
    fn project_and_group_ids_are_decoded_or_name_nothing() {
        // The generic file segments stay raw; the project id is decoded.
        assert_eq!(
            route("/api/v4/projects/acme%2Ftools/packages/generic/t%2Fx/1.0/a.txt"),
            Some(Route::GenericFile(
                path("acme/tools"),
                vec!["t%2Fx", "1.0", "a.txt"]
            ))
        );
        // A `%` without two hex digits after it stays as it is; an encoding
        // of bytes that are not UTF-8 decodes to nothing, which the handler
        // answers as it does a project that does not exist.
        assert_eq!(
            route("/api/v4/projects/acme%2"),
            Some(Route::Project(path("acme%2")))
        );
        assert_eq!(
            route("/api/v4/projects/%FF/packages"),
            Some(Route::Packages(None))
        );
        assert_eq!(
            route("/api/v4/projects/%C3%28/job_tokens"),
            Some(Route::JobTokens(None))
        );
        assert_eq!(
            route("/api/v4/groups/%FE/packages/settings"),
            Some(Route::GroupPackageSettings(None))
        );
        // A group path loses its surrounding slashes, a project path keeps them.
        assert_eq!(
            route("/api/v4/groups/%2Facme%2F/packages"),
            Some(Route::GroupPackages(Some(GroupRef::Path("acme".into()))))
        );
        assert_eq!(
            route("/api/v4/projects/%2Facme"),
            Some(Route::Project(path("/acme")))
        );
        // An all-digit path is an id, as GitLab reads it.
        assert_eq!(
            route("/api/v4/groups/%34%32"),
            Some(Route::Group(Some(GroupRef::Id(42))))
        );
    }
}
