//! Upload sessions (ours): a file of any size sent straight to S3 in parts,
//! past a host's body and time limits.
//!
//! - `POST .../packages/generic/:name/:version/(:path/):file` creates (or
//!   resumes) a session, checked exactly like a publish (`create`);
//! - `GET .../packages/upload_sessions(/:id)` and `DELETE .../:id` list,
//!   show and abort sessions (this file);
//! - `POST .../:id/parts/:n` hands out a presigned URL for one part (this
//!   file);
//! - `POST .../:id/complete` joins the parts, reads the object back and
//!   hashes it in bounded steps, then commits it as a publish does
//!   (`complete`).
//!
//! Every endpoint asks for the right to publish in the project, as a
//! publish does: a session is a publish in slow motion.

mod complete;
mod create;

pub use complete::complete;
pub use create::create;

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::api::params::Params;
use crate::api::{iso8601, Context};
use crate::auth::{policy, Actor, Right};
use crate::blob::sessions::StoredPart;
use crate::error::{ApiError, ApiResult};
use crate::http::{Request, Response};
use crate::meta::kv::KeyValue;
use crate::meta::model::Project;
use crate::meta::upload_sessions::{self as sessions, SessionError, UploadSession};
use crate::router::ProjectId;

/// How long a presigned part URL stays valid.
const PART_LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// GitLab-style 404 for a session that is not there (or expired).
const SESSION_NOT_FOUND: &str = "Upload session Not Found";

impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Meta(e) => e.into(),
            SessionError::Gone => ApiError::NotFound(SESSION_NOT_FOUND),
            SessionError::TooMany => ApiError::BadRequest(error.to_string()),
        }
    }
}

/// Authenticates the caller and loads the project they may publish to.
fn publisher<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
) -> ApiResult<(Actor, Project)> {
    let actor = ctx.authenticate(request)?;
    policy::may_try(&actor, Right::Publish)?;
    let (project, _) = ctx.project_for(&actor, project_id, Right::Publish)?;
    Ok((actor, project))
}

/// The live session `:session_id` names in this project.
fn load<K: KeyValue>(ctx: &Context<K>, project: &Project, id: &str) -> ApiResult<UploadSession> {
    let well_formed = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let session = match well_formed {
        true => sessions::session(ctx.kv, project.id, id, ctx.now_millis())?,
        false => None,
    };
    session.ok_or(ApiError::NotFound(SESSION_NOT_FOUND))
}

/// How many parts a file of `size` bytes has in parts of `part_size`.
fn parts_count(session: &UploadSession) -> u64 {
    session.size.div_ceil(session.part_size)
}

/// The size part `number` (from 1) must have.
fn expected_part_size(session: &UploadSession, number: u64) -> u64 {
    let before = (number - 1) * session.part_size;
    session.part_size.min(session.size - before)
}

/// How far verification has read.
fn verified_bytes(session: &UploadSession) -> u64 {
    if session.digests.is_some() {
        return session.size;
    }
    session.hashed.as_ref().map_or(0, |h| h.size)
}

/// The session as the API shows it; `parts` are those S3 holds.
fn session_json(session: &UploadSession, parts: &[StoredPart]) -> Value {
    json!({
        "id": session.id,
        "project_id": session.project_id,
        "package_name": session.package_name,
        "package_version": session.package_version,
        "file_name": session.file_name,
        "size": session.size,
        "sha256": session.sha256,
        "part_size": session.part_size,
        "parts_count": parts_count(session),
        "parts": parts
            .iter()
            .map(|p| json!({ "part_number": p.number, "size": p.size }))
            .collect::<Vec<_>>(),
        "state": session.state.as_str(),
        "verified_bytes": verified_bytes(session),
        "created_at": iso8601(session.created_at),
        "expires_at": iso8601(session.expires_at),
        "_links": {
            "self": format!(
                "/api/v4/projects/{}/packages/upload_sessions/{}",
                session.project_id, session.id
            ),
        },
    })
}

/// The parts S3 holds for a session still uploading (none otherwise).
fn stored_parts<K: KeyValue>(
    ctx: &Context<K>,
    session: &UploadSession,
) -> ApiResult<Vec<StoredPart>> {
    if session.state != sessions::SessionState::Uploading {
        return Ok(Vec::new());
    }
    Ok(ctx
        .blobs
        .list_parts(&session.object_key, &session.upload_id)?
        .unwrap_or_default())
}

/// `GET /projects/:id/packages/upload_sessions`
pub fn list<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
) -> ApiResult<Response> {
    let (_, project) = publisher(ctx, request, project_id)?;
    let live = sessions::sessions(ctx.kv, project.id, ctx.now_millis())?;
    let listed: Vec<Value> = live.iter().map(|s| session_json(s, &[])).collect();
    Ok(Response::json(200, &Value::Array(listed)))
}

/// `GET /projects/:id/packages/upload_sessions/:session_id`
pub fn show<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    session_id: &str,
) -> ApiResult<Response> {
    let (_, project) = publisher(ctx, request, project_id)?;
    let session = load(ctx, &project, session_id)?;
    let parts = stored_parts(ctx, &session)?;
    Ok(Response::json(200, &session_json(&session, &parts)))
}

/// `DELETE /projects/:id/packages/upload_sessions/:session_id`: aborts the
/// S3 upload (and removes a joined object), then forgets the session.
pub fn abort<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    session_id: &str,
) -> ApiResult<Response> {
    let (_, project) = publisher(ctx, request, project_id)?;
    let session = load(ctx, &project, session_id)?;
    if session.file_id.is_some() {
        // Being committed: the object may already be a file's.
        return Err(ApiError::BadRequest(
            "the upload session is being committed".into(),
        ));
    }
    sessions::forget(ctx.kv, project.id, &session.id)?;
    ctx.blobs
        .abort_multipart(&session.object_key, &session.upload_id);
    if session.state != sessions::SessionState::Uploading {
        let _ = ctx.blobs.delete(&session.object_key);
    }
    Ok(Response::new(204))
}

/// `POST /projects/:id/packages/upload_sessions/:session_id/parts/:n`
/// with `{"sha256": ..., "size": ...}`: a presigned URL for that part.
pub fn part_link<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    session_id: &str,
    part_number: &str,
    body: &[u8],
) -> ApiResult<Response> {
    let (_, project) = publisher(ctx, request, project_id)?;
    let session = load(ctx, &project, session_id)?;
    let params = Params::parse(request, body)?;
    let number = part_number
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=parts_count(&session)).contains(n))
        .ok_or_else(|| ApiError::InvalidParams("part_number is invalid".into()))?;
    let sha256 = params
        .text("sha256")
        .as_deref()
        .and_then(sha256_base64)
        .ok_or_else(|| ApiError::InvalidParams("sha256 is invalid".into()))?;
    let size = params
        .required("size")?
        .parse::<u64>()
        .map_err(|_| ApiError::InvalidParams("size is invalid".into()))?;
    let expected = expected_part_size(&session, number);
    if size != expected {
        return Err(ApiError::BadRequest(format!(
            "part {number} must be {expected} bytes, not {size}"
        )));
    }
    if session.state != sessions::SessionState::Uploading {
        return Err(ApiError::BadRequest(
            "the upload session is complete: no more parts".into(),
        ));
    }
    let link = ctx.blobs.part_link(
        &session.object_key,
        &session.upload_id,
        number as u16,
        size,
        &sha256,
        PART_LINK_LIFETIME,
    );
    let headers: serde_json::Map<String, Value> = link
        .headers
        .iter()
        .map(|(name, value)| (name.to_string(), Value::String(value.clone())))
        .collect();
    let expires_at = ctx.now_millis() + PART_LINK_LIFETIME.as_millis() as i64;
    Ok(Response::json(
        200,
        &json!({
            "part_number": number,
            "method": "PUT",
            "url": link.url.to_string(),
            "headers": headers,
            "expires_at": iso8601(expires_at),
        }),
    ))
}

/// A part's sha256, given as 64 hex digits or as base64 of its 32 bytes,
/// in base64 (as `x-amz-checksum-sha256` carries it).
fn sha256_base64(text: &str) -> Option<String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let text = text.trim();
    let bytes = if text.len() == 64 {
        hex::decode(text).ok()?
    } else {
        engine.decode(text).ok()?
    };
    (bytes.len() == 32).then(|| engine.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_checksums_are_taken_as_hex_or_base64() {
        let hex = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
        let b64 = sha256_base64(hex).unwrap();
        assert_eq!(b64, "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=");
        assert_eq!(sha256_base64(&b64).as_deref(), Some(b64.as_str()));
        assert_eq!(sha256_base64("abc"), None);
        assert_eq!(sha256_base64(&"z".repeat(64)), None);
    }
}
