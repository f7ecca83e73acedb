//! `PUT`, `GET` and `HEAD` on
//! `/projects/:id/packages/generic/:package_name/:package_version/(:path/):file_name`.
//!
//! Publishing streams the body to a fresh object and records the file only
//! once storage has every byte, so an acknowledged file always downloads and
//! a failed upload leaves no record.

use std::time::Duration;

use crate::api::iso8601;
use crate::api::params;
use crate::api::Context;
use crate::auth::{policy, Right};
use crate::blob;
use crate::checksum;
use crate::error::{ApiError, ApiResult};
use crate::http::{Body, ByteSource, Method, Request, Response};
use crate::meta::kv::KeyValue;
use crate::meta::model::{Package, PackageFile, PackageStatus, Project, RawFile};
use crate::meta::read_ahead;
use crate::meta::{self, Commit, MetaError, NewFile, ProjectRef};
use crate::range::{self, RangeRequest};
use crate::router::ProjectId;
use crate::validate::{self, FileCoordinates};
use serde_json::{json, Value};

use super::host_limits;

/// How long a redirect to object storage stays valid.
const REDIRECT_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// Query parameters of a publish, validated.
pub(super) struct PublishOptions {
    pub status: Option<PackageStatus>,
    pub select_package_file: bool,
}

/// Validates the path and the query together, so every problem is reported
/// at once, joined as GitLab does.
pub(super) fn parse_publish(
    request: &Request,
    segments: &[&str],
) -> ApiResult<(FileCoordinates, PublishOptions)> {
    let mut messages = Vec::new();
    let coordinates = validate::file_coordinates(segments)
        .map_err(|invalid| messages.push(validate::join_messages(&invalid)))
        .ok();
    let status = match request.query_param("status") {
        None => None,
        Some(s) => {
            let status = PackageStatus::parse(s);
            if status.is_none() {
                messages.push(params::invalid_value_message("status"));
            }
            status
        }
    };
    let select_package_file = match request.query_param("select") {
        None => false,
        Some("package_file") => true,
        Some(_) => {
            messages.push(params::invalid_value_message("select"));
            false
        }
    };
    match coordinates {
        Some(coordinates) if messages.is_empty() => Ok((
            coordinates,
            PublishOptions {
                status,
                select_package_file,
            },
        )),
        _ => Err(ApiError::InvalidParams(messages.join(", "))),
    }
}

pub fn publish<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    segments: &[&str],
    body: &mut dyn ByteSource,
) -> ApiResult<Response> {
    let actor = ctx.authenticate_reading_ahead(request, project_id, |id| {
        vec![
            read_ahead::protection_rules(id),
            read_ahead::package_counter(id),
        ]
    })?;
    policy::may_try(&actor, Right::Publish)?;
    let (coordinates, options) = parse_publish(request, segments)?;
    let expected_sha256 = match request.header("x-checksum-sha256") {
        None => None,
        Some(value) => Some(
            checksum::parse_sha256_header(value)
                .ok_or_else(|| ApiError::InvalidParams("X-Checksum-SHA256 is invalid".into()))?,
        ),
    };
    let content_length = match request.header("content-length") {
        None => None,
        Some(value) => Some(
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| ApiError::BadRequest("Content-Length is invalid".into()))?,
        ),
    };
    let (project, _) = ctx.project_for(&actor, project_id, Right::Publish)?;
    super::protection::check_push(ctx, &actor, &project, &coordinates.package_name)?;
    // Read ahead with the project when it is named by its number; a new
    // package starts from it (see `Commit::index_shards`).
    let index_shards = meta::index_shards_read_ahead(ctx.kv, project.id);
    host_limits::check_announced_length(&ctx.config, content_length, &request.path)?;
    let body = &mut host_limits::CappedBody::new(&ctx.config, body, &request.path);

    let object_key = blob::new_object_key((ctx.random)());
    let digests = ctx
        .blobs
        .upload(
            &object_key,
            body,
            content_length,
            expected_sha256.as_deref(),
        )
        .map_err(|e| body.explain(e))?;

    let file = NewFile {
        file_name: coordinates.stored_file_name.clone(),
        size: digests.size,
        md5: digests.md5,
        sha1: digests.sha1,
        sha256: digests.sha256,
        object_key,
    };
    let (package, file) = commit_stored_file(
        ctx,
        &project,
        &coordinates,
        options.status,
        file,
        None,
        index_shards,
    )?;

    if options.select_package_file {
        Ok(Response::json(
            200,
            &package_file_record(&project, &package, &file),
        ))
    } else {
        Ok(Response::json(
            201,
            &serde_json::json!({ "message": "201 Created" }),
        ))
    }
}

/// Records a file whose bytes object storage holds (a publish's body or a
/// completed upload session) exactly as a publish does: the duplicate rule
/// checked at the commit, the object deleted when the commit is refused, a
/// project deleted meanwhile answered 404, and the cleanup policy applied.
/// `file_id` is a file id allocated beforehand, so that committing it twice
/// records the file once; `None` allocates one. `index_shards` is the count
/// of the project's index shards if the request read it ahead.
pub fn commit_stored_file<K: KeyValue>(
    ctx: &Context<K>,
    project: &Project,
    coordinates: &FileCoordinates,
    status: Option<PackageStatus>,
    file: NewFile,
    file_id: Option<u64>,
    index_shards: Option<u64>,
) -> ApiResult<(Package<RawFile>, PackageFile)> {
    let object_key = file.object_key.clone();
    // A project deleted while the body streamed in may have gone over its
    // packages before this one was there: its record is read again after
    // the commit, with the cleanup policy, in the round trip that confirms
    // the commit.
    let read_after = [
        read_ahead::project(&ProjectRef::Id(project.id)),
        read_ahead::cleanup_policy(project.id),
    ];
    let commit = Commit {
        project,
        name: &coordinates.package_name,
        version: &coordinates.package_version,
        status,
        now: ctx.now_millis(),
        read_after: &read_after,
        index_shards,
    };
    let committed = match file_id {
        Some(id) => meta::commit_file_with_id(ctx.kv, &commit, file, id),
        None => meta::commit_file(ctx.kv, &commit, file),
    };
    let (package, file) = match committed {
        Ok(committed) => committed,
        Err(refused @ (MetaError::Duplicate | MetaError::PackageFull)) => {
            // Nothing points at the object: remove it.
            let _ = ctx.blobs.delete(&object_key);
            return Err(ApiError::BadRequest(refused.to_string()));
        }
        Err(busy) if busy.is_busy() => {
            // The file was not recorded: its package is still being created.
            let _ = ctx.blobs.delete(&object_key);
            return Err(busy.into());
        }
        // The write may or may not have landed: keep the object, since a
        // record must never point at a missing one (gc collects it if not).
        Err(e) => return Err(e.into()),
    };
    // Read ahead already when the commit swapped an existing record; a new
    // package's record is created, not swapped, so read them here.
    ctx.kv.read_ahead(&read_after);
    if let Some(files) =
        meta::forget_if_project_deleted(ctx.kv, project.id, package.id, ctx.now_millis())?
    {
        ctx.discard_objects(&files);
        return Err(ApiError::NotFound(crate::api::PROJECT_NOT_FOUND));
    }

    apply_cleanup_policy(ctx, project, &package, &file);
    Ok((package, file))
}

/// GitLab's package file record, as `select=package_file` answers it.
pub fn package_file_record<F>(
    project: &Project,
    package: &Package<F>,
    file: &PackageFile,
) -> Value {
    let url = format!(
        "/api/v4/projects/{}/packages/generic/{}/{}/{}",
        project.id, package.name, package.version, file.file_name
    );
    json!({
        "id": file.id,
        "package_id": package.id,
        "created_at": iso8601(file.created_at),
        "updated_at": iso8601(file.created_at),
        "size": file.size,
        "file_store": 2,
        "file_md5": file.md5,
        "file_sha1": file.sha1,
        "file_name": file.file_name,
        "file": { "url": url },
        "file_sha256": file.sha256,
        "verification_retry_at": null,
        "verified_at": null,
        "verification_failure": null,
        "verification_retry_count": 0,
        "verification_checksum": null,
        "verification_state": 0,
        "verification_started_at": null,
        "status": "default",
        "file_final_path": null,
        "project_id": project.id,
        "new_file_path": null,
    })
}

/// Drops files of the same name beyond what the project's cleanup policy
/// keeps. The publish has succeeded whatever happens here.
fn apply_cleanup_policy<K: KeyValue>(
    ctx: &Context<K>,
    project: &Project,
    package: &Package<RawFile>,
    file: &PackageFile,
) {
    let pruned = meta::cleanup::policy(ctx.kv, project.id).and_then(|policy| {
        match policy.keep_n_duplicated_package_files.limit() {
            None => Ok(Vec::new()),
            Some(keep) => {
                meta::prune_files(ctx.kv, package, &file.file_name, keep, ctx.now_millis())
            }
        }
    });
    match pruned {
        Ok(files) => ctx.discard_objects(&files),
        Err(e) => eprintln!("warning: cleanup policy not applied: {e}"),
    }
}

/// `GET` and `HEAD`.
pub fn download<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    segments: &[&str],
) -> ApiResult<Response> {
    let actor = ctx.authenticate_reading_ahead(request, project_id, |id| {
        validate::file_coordinates(segments)
            .map(|c| vec![read_ahead::package(id, &c.package_name, &c.package_version)])
            .unwrap_or_default()
    })?;
    let coordinates = validate::file_coordinates(segments)
        .map_err(|invalid| ApiError::InvalidParams(validate::join_messages(&invalid)))?;
    let (project, _) = ctx.project_for(&actor, project_id, Right::Download)?;
    let package = meta::package_as_stored(
        ctx.kv,
        project.id,
        &coordinates.package_name,
        &coordinates.package_version,
    )?
    .ok_or_else(ApiError::not_found)?;
    let file = meta::newest_file_as_stored(ctx.kv, &package, &coordinates.stored_file_name)?
        .ok_or_else(ApiError::not_found)?;
    serve_file(ctx, request, &package, &file)
}

/// Answers a `GET` or `HEAD` for one file: headers from its record, the
/// bytes streamed from object storage (or a redirect there).
pub fn serve_file<K: KeyValue, F>(
    ctx: &Context<K>,
    request: &Request,
    package: &Package<F>,
    file: &PackageFile,
) -> ApiResult<Response> {
    let file_name = display_name(&file.file_name);
    let etag = format!("\"{}\"", file.sha256);
    let disposition = blob::content_disposition(&file_name);
    let common = |response: Response| {
        response
            .header("etag", etag.clone())
            .header("x-checksum-sha256", file.sha256.clone())
            .header("accept-ranges", "bytes")
            .header("cache-control", "private")
    };
    if if_none_match(request.header("if-none-match"), &etag) {
        return Ok(common(Response::new(304)));
    }
    let is_get = request.method == Method::Get;
    if is_get {
        if let Err(e) = meta::mark_downloaded(ctx.kv, package, ctx.now_millis()) {
            eprintln!("warning: last_downloaded_at not updated: {e}");
        }
    }

    if host_limits::redirects(&ctx.config, file.size) {
        let link = ctx
            .blobs
            .download_link(&file.object_key, &file_name, REDIRECT_LIFETIME);
        return Ok(common(Response::new(302)).header("location", link.to_string()));
    }

    let (status, range) = match range::parse(request.header("range"), file.size) {
        RangeRequest::Whole => (200, None),
        RangeRequest::Part { start, end } => (206, Some((start, end))),
        RangeRequest::Unsatisfiable => {
            return Err(ApiError::RangeNotSatisfiable { size: file.size })
        }
    };
    let length = range.map_or(file.size, |(start, end)| end - start + 1);
    let mut response = common(Response::new(status))
        .header("content-type", "application/octet-stream")
        .header("content-disposition", disposition)
        .header("content-length", length.to_string());
    if let Some((start, end)) = range {
        response = response.header(
            "content-range",
            format!("bytes {start}-{end}/{}", file.size),
        );
    }
    if !is_get || length == 0 {
        return Ok(response);
    }
    let object = ctx.blobs.open(&file.object_key, range)?;
    if object.length != length {
        return Err(ApiError::Upstream(format!(
            "object {} has {} bytes, expected {length}",
            file.object_key, object.length
        )));
    }
    response.body = Body::Stream(object.source);
    Ok(response)
}

/// The name a file is downloaded as: the last segment of its stored
/// `path/file_name`.
fn display_name(stored: &str) -> String {
    let decoded = validate::decode_segment(stored).unwrap_or_else(|| stored.to_string());
    decoded.rsplit('/').next().unwrap_or_default().to_string()
}

/// Whether `If-None-Match` names this entity tag (weak comparison) or `*`.
fn if_none_match(header: Option<&str>, etag: &str) -> bool {
    header.is_some_and(|value| {
        value
            .split(',')
            .map(str::trim)
            .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_download_under_the_last_segment_of_their_stored_name() {
        assert_eq!(display_name("linux%2Famd64%2Ftool.tar.gz"), "tool.tar.gz");
        assert_eq!(display_name("tool.tar.gz"), "tool.tar.gz");
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let etag = "\"abc\"";
        assert!(if_none_match(Some("\"abc\""), etag));
        assert!(if_none_match(Some("\"x\", W/\"abc\""), etag));
        assert!(if_none_match(Some("*"), etag));
        assert!(!if_none_match(Some("\"abd\""), etag));
        assert!(!if_none_match(None, etag));
    }

    #[test]
    fn all_invalid_params_are_reported_together() {
        let request = Request::new(Method::Put, "/x?status=gone&select=all", vec![]);
        let Err(ApiError::InvalidParams(message)) =
            parse_publish(&request, &["bad name", "1.0", "a"])
        else {
            panic!("expected invalid params")
        };
        assert_eq!(
            message,
            "package_name is invalid, status does not have a valid value, select does not have a valid value"
        );
    }
}
