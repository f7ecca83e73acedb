//! `POST /projects/:id/packages/generic/:name/:version/(:path/):file_name`
//! with `{"size", "sha256", "part_size"?}`: creates an upload session, or
//! answers the live one for the same file, size and sha256 (resuming).

use super::{publisher, session_json, stored_parts};
use crate::api::packages::generic::parse_publish;
use crate::api::params::Params;
use crate::api::Context;
use crate::blob;
use crate::blob::parts::{MAX_OBJECT_SIZE, MAX_PARTS, MAX_PART_SIZE};
use crate::checksum;
use crate::config::{DEFAULT_PART_SIZE, MIN_PART_SIZE};
use crate::error::{ApiError, ApiResult};
use crate::http::{Request, Response};
use crate::meta::kv::KeyValue;
use crate::meta::model::Project;
use crate::meta::upload_sessions::{self as sessions, Created, SessionState, UploadSession};
use crate::meta::{self};
use crate::router::ProjectId;
use crate::validate::FileCoordinates;

/// What the client asks for, validated.
struct Wanted {
    size: u64,
    sha256: String,
    part_size: u64,
}

pub fn create<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    segments: &[&str],
    body: &[u8],
) -> ApiResult<Response> {
    // Who asks, and what: checked before anything is created, as a publish.
    let (actor, project) = publisher(ctx, request, project_id)?;
    let (coordinates, options) = parse_publish(request, segments)?;
    let wanted = parse_wanted(request, body)?;
    if ctx
        .config
        .max_file_size
        .is_some_and(|max| wanted.size > max)
    {
        return Err(ApiError::PayloadTooLarge);
    }
    crate::api::packages::protection::check_push(ctx, &actor, &project, &coordinates.package_name)?;
    refuse_duplicate(ctx, &project, &coordinates)?;

    let now = ctx.now_millis();
    let mut session = UploadSession {
        id: hex::encode((ctx.random)()),
        project_id: project.id,
        package_name: coordinates.package_name.clone(),
        package_version: coordinates.package_version.clone(),
        file_name: coordinates.stored_file_name.clone(),
        status: options.status,
        size: wanted.size,
        sha256: wanted.sha256,
        part_size: wanted.part_size,
        object_key: blob::new_object_key((ctx.random)()),
        upload_id: String::new(),
        created_at: now,
        expires_at: now + sessions::SESSION_LIFETIME_MS,
        state: SessionState::Uploading,
        hashed: None,
        file_id: None,
        digests: None,
    };
    // Resuming: the same file, size and sha256 already has a session.
    if let Some(existing) = sessions::resumable(ctx.kv, &session, now)? {
        return answer(ctx, 200, &existing);
    }
    session.upload_id = ctx.blobs.start_multipart(&session.object_key)?;
    match sessions::create(ctx.kv, &session, now) {
        Ok(Created::New) => answer(ctx, 201, &session),
        Ok(Created::Existing(existing)) => {
            ctx.blobs
                .abort_multipart(&session.object_key, &session.upload_id);
            answer(ctx, 200, &existing)
        }
        Err(e) => {
            ctx.blobs
                .abort_multipart(&session.object_key, &session.upload_id);
            Err(e.into())
        }
    }
}

fn answer<K: KeyValue>(
    ctx: &Context<K>,
    status: u16,
    session: &UploadSession,
) -> ApiResult<Response> {
    let parts = if status == 201 {
        Vec::new()
    } else {
        stored_parts(ctx, session)?
    };
    Ok(Response::json(status, &session_json(session, &parts)))
}

/// Reads `size`, `sha256` and `part_size` from the JSON body, reporting
/// every invalid one at once.
fn parse_wanted(request: &Request, body: &[u8]) -> ApiResult<Wanted> {
    let params = Params::parse(request, body)?;
    let mut problems = Vec::new();
    let number = |name: &str, problems: &mut Vec<String>| -> Option<u64> {
        match params.text(name) {
            None => None,
            Some(text) => {
                let n = text.parse::<u64>().ok();
                if n.is_none() {
                    problems.push(format!("{name} is invalid"));
                }
                n
            }
        }
    };
    let size = number("size", &mut problems);
    let part_size = number("part_size", &mut problems).unwrap_or(DEFAULT_PART_SIZE);
    let sha256 = params
        .text("sha256")
        .map(|s| checksum::parse_sha256_header(&s));
    if params.text("size").is_none() {
        problems.push("size is missing".into());
    }
    match &sha256 {
        None => problems.push("sha256 is missing".into()),
        Some(None) => problems.push("sha256 is invalid".into()),
        Some(Some(_)) => {}
    }
    if let Some(size) = size {
        if size == 0 || size > MAX_OBJECT_SIZE {
            problems.push("size is invalid".into());
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size)
            || size.div_ceil(part_size) > MAX_PARTS
        {
            problems.push("part_size is invalid".into());
        }
    }
    match (size, sha256) {
        (Some(size), Some(Some(sha256))) if problems.is_empty() => Ok(Wanted {
            size,
            sha256,
            part_size,
        }),
        _ => {
            problems.dedup();
            Err(ApiError::InvalidParams(problems.join(", ")))
        }
    }
}

/// A session for a file the namespace settings would refuse as a duplicate
/// is refused now (and again at the commit).
fn refuse_duplicate<K: KeyValue>(
    ctx: &Context<K>,
    project: &Project,
    coordinates: &FileCoordinates,
) -> ApiResult<()> {
    let settings = meta::namespace_settings(ctx.kv, &project.namespace)?;
    if settings.duplicates_allowed_for(&coordinates.package_name, &coordinates.package_version) {
        return Ok(());
    }
    let Some(package) = meta::package(
        ctx.kv,
        project.id,
        &coordinates.package_name,
        &coordinates.package_version,
    )?
    else {
        return Ok(());
    };
    if meta::newest_file(ctx.kv, &package, &coordinates.stored_file_name)?.is_some() {
        return Err(ApiError::BadRequest(meta::MetaError::Duplicate.to_string()));
    }
    Ok(())
}
