//! `POST /projects/:id/packages/upload_sessions/:session_id/complete`.
//!
//! A session is completed over several requests, each bounded in time and
//! memory whatever the file's size, so a hosted platform's 30 s and 128 MiB
//! hold. The client repeats the POST while it answers 202:
//!
//! 1. uploading: every part must be in S3 at its size; S3 joins them into
//!    the object, and the session turns to verifying (202);
//! 2. verifying: the object is read back, [`VERIFY_STEP`] bytes per
//!    request, through md5, sha1 and sha256 (in a helper instance when one
//!    can be had, see [`crate::blob::sha256_helper`]), whose states are
//!    kept in the session record between requests (202);
//! 3. once all is read, a sha256 other than the announced one turns the session
//!    to failed: the object is deleted, the session forgotten, 400. A match
//!    gets a file id, stored in the session once, and the file is committed
//!    as a publish commits it (201 with its record); the same file id makes
//!    a second commit (a concurrent complete, a retry after a crash) keep
//!    the one record.
//!
//! Each step writes the session with compare-and-swap from the state it
//! read, and writes the same value whoever runs it, so concurrent completes
//! of one session agree and a crash between any two writes is resumed by
//! the next POST.
//!
//! When S3 holds neither the upload nor the object any more (aborted by
//! something else: a lifecycle rule, a tool that knows nothing of
//! sessions), the session can never complete: it is forgotten and the
//! answer is 409, so creating it again starts afresh.

use super::{expected_part_size, load, parts_count, publisher, session_json};
use crate::api::packages::generic::{commit_stored_file, package_file_record};
use crate::api::Context;
use crate::blob::sessions::StoredPart;
use crate::blob::sha256_helper::Hashing;
use crate::blob::store::StoreError;
use crate::blob::upload::UploadError;
use crate::checksum::Checksums;
use crate::error::{ApiError, ApiResult};
use crate::http::{Request, Response};
use crate::meta::kv::KeyValue;
use crate::meta::model::Project;
use crate::meta::upload_sessions::{self as sessions, SessionState, UploadSession};
use crate::meta::{self, NewFile};
use crate::router::ProjectId;
use crate::validate::FileCoordinates;
use genreg_layout::records::FileDigests;

/// How much of the object one request reads back: at S3's usual speed
/// from a cloud function, a few seconds, far from a 30 s limit; read as a
/// stream, so memory stays at one chunk.
#[cfg(not(test))]
pub const VERIFY_STEP: u64 = 256 << 20;
/// Small under unit tests, so a few MiB take several steps.
#[cfg(test)]
pub const VERIFY_STEP: u64 = 4 << 20;

const MISMATCH: &str = "the uploaded file's sha256 does not match the session's";

const VANISHED: &str = "the upload session's parts are gone from object storage \
     (aborted elsewhere); create the session again to start over";

/// What a step of completion left.
enum Progress {
    /// The session as it now stands.
    Session(Box<UploadSession>),
    /// S3 holds neither the upload nor the object.
    Vanished,
}

pub fn complete<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    session_id: &str,
) -> ApiResult<Response> {
    let (_, project) = publisher(ctx, request, project_id)?;
    let session = load(ctx, &project, session_id)?;
    match session.state {
        SessionState::Failed => refuse(ctx, &session),
        SessionState::Uploading => {
            let progress = join_parts(ctx, &session)?;
            answer_progress(ctx, &session, progress)
        }
        SessionState::Verifying => match &session.digests {
            None => {
                let progress = verify_step(ctx, &session)?;
                answer_progress(ctx, &session, progress)
            }
            Some(digests) if digests.sha256 != session.sha256 => {
                let failed = mark_failed(ctx, &session)?;
                refuse(ctx, &failed)
            }
            Some(_) => commit(ctx, &project, &session),
        },
    }
}

/// 202 with the session while it goes on; 409 when its parts vanished
/// (the session is forgotten).
fn answer_progress<K: KeyValue>(
    ctx: &Context<K>,
    session: &UploadSession,
    progress: Progress,
) -> ApiResult<Response> {
    match progress {
        Progress::Session(now) => Ok(Response::json(202, &session_json(&now, &[]))),
        Progress::Vanished => {
            sessions::forget(ctx.kv, session.project_id, &session.id)?;
            Ok(Response::json(
                409,
                &serde_json::json!({ "message": format!("409 Conflict - {VANISHED}") }),
            ))
        }
    }
}

/// Whether S3 said the object does not exist.
fn is_no_such_key(error: &StoreError) -> bool {
    matches!(error, StoreError::Failed(message) if message.contains("NoSuchKey"))
}

/// Whether the joined object is there (a one-byte read).
fn object_exists<K: KeyValue>(ctx: &Context<K>, session: &UploadSession) -> ApiResult<bool> {
    match ctx.blobs.open(&session.object_key, Some((0, 0))) {
        Ok(_) => Ok(true),
        Err(e) if is_no_such_key(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Checks that S3 holds every part at its size, joins them, and turns the
/// session to verifying.
fn join_parts<K: KeyValue>(ctx: &Context<K>, session: &UploadSession) -> ApiResult<Progress> {
    // No upload any more: joined already, by a request that stopped
    // before recording it, unless the object is missing too.
    let listed = ctx
        .blobs
        .list_parts(&session.object_key, &session.upload_id)?;
    if listed.is_none() && !object_exists(ctx, session)? {
        return Ok(Progress::Vanished);
    }
    if let Some(parts) = listed {
        check_parts(session, &parts)?;
        let joined = ctx
            .blobs
            .complete_parts(&session.object_key, &session.upload_id, &parts);
        if let Err(e) = joined {
            // Another complete may have joined them meanwhile.
            let gone = matches!(
                ctx.blobs
                    .list_parts(&session.object_key, &session.upload_id),
                Ok(None)
            );
            if !gone {
                return Err(e.into());
            }
        }
    }
    let changed = sessions::change(
        ctx.kv,
        session.project_id,
        &session.id,
        ctx.now_millis(),
        |stored| {
            (stored.state == SessionState::Uploading).then(|| UploadSession {
                state: SessionState::Verifying,
                hashed: Some(Checksums::default().save()),
                ..stored.clone()
            })
        },
    )?;
    Ok(Progress::Session(Box::new(changed)))
}

/// 400 naming the parts that are missing or of the wrong size.
fn check_parts(session: &UploadSession, parts: &[StoredPart]) -> ApiResult<()> {
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    for number in 1..=parts_count(session) {
        match parts.iter().find(|p| u64::from(p.number) == number) {
            None => missing.push(number.to_string()),
            Some(part) if part.size != expected_part_size(session, number) => {
                wrong.push(number.to_string())
            }
            Some(_) => {}
        }
    }
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("missing parts: {}", missing.join(", ")));
    }
    if !wrong.is_empty() {
        problems.push(format!("parts of the wrong size: {}", wrong.join(", ")));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::BadRequest(problems.join("; ")))
    }
}

/// Reads the next [`VERIFY_STEP`] bytes of the object through the saved
/// hash state and records how far it got (the digests at the end).
fn verify_step<K: KeyValue>(ctx: &Context<K>, session: &UploadSession) -> ApiResult<Progress> {
    let saved = session
        .hashed
        .clone()
        .unwrap_or_else(|| Checksums::default().save());
    let mut sums = Hashing::Here(Checksums::resume(&saved).map_err(ApiError::internal)?);
    let from = sums.size();
    let to = (from + VERIFY_STEP).min(session.size);
    let mut object = match ctx.blobs.open(&session.object_key, Some((from, to - 1))) {
        Ok(object) => object,
        Err(e) if is_no_such_key(&e) => return Ok(Progress::Vanished),
        Err(e) => return Err(e.into()),
    };
    if let Some(helper) = ctx.blobs.sha256_helper() {
        sums.hand_off(helper, Some(to - from));
    }
    let helper_failed = |e: String| ApiError::from(UploadError::Helper(e));
    while let Some(chunk) = object
        .source
        .next_chunk()
        .map_err(|e| ApiError::Upstream(format!("reading {}: {e}", session.object_key)))?
    {
        sums.update(&chunk).map_err(helper_failed)?;
    }
    let sums = sums.finish().map_err(helper_failed)?;
    if sums.size() != to {
        return Err(ApiError::Upstream(format!(
            "object {} gave {} bytes up to {to}",
            session.object_key,
            sums.size()
        )));
    }
    let digests = (to == session.size).then(|| {
        let d = sums.clone().finish();
        FileDigests {
            md5: d.md5,
            sha1: d.sha1,
            sha256: d.sha256,
        }
    });
    let hashed = sums.save();
    let changed = sessions::change(
        ctx.kv,
        session.project_id,
        &session.id,
        ctx.now_millis(),
        |stored| {
            // Another request may have taken this step (or more) already.
            let at = stored.hashed.as_ref().map(|h| h.size);
            let still_here = stored.state == SessionState::Verifying
                && at == Some(from)
                && stored.digests.is_none();
            still_here.then(|| UploadSession {
                hashed: Some(hashed.clone()),
                digests: digests.clone(),
                ..stored.clone()
            })
        },
    )?;
    Ok(Progress::Session(Box::new(changed)))
}

/// Turns a session whose object did not match to failed, so that a crash
/// before its cleanup still refuses it next time.
fn mark_failed<K: KeyValue>(ctx: &Context<K>, session: &UploadSession) -> ApiResult<UploadSession> {
    Ok(sessions::change(
        ctx.kv,
        session.project_id,
        &session.id,
        ctx.now_millis(),
        |stored| {
            (stored.state != SessionState::Failed).then(|| UploadSession {
                state: SessionState::Failed,
                ..stored.clone()
            })
        },
    )?)
}

/// A failed session: its object goes, then the session; 400.
fn refuse<K: KeyValue>(ctx: &Context<K>, session: &UploadSession) -> ApiResult<Response> {
    ctx.blobs.delete(&session.object_key)?;
    meta::upload_sessions::forget(ctx.kv, session.project_id, &session.id)?;
    Err(ApiError::BadRequest(MISMATCH.into()))
}

/// Commits the verified file as a publish does, under a file id stored in
/// the session first, then forgets the session.
fn commit<K: KeyValue>(
    ctx: &Context<K>,
    project: &Project,
    session: &UploadSession,
) -> ApiResult<Response> {
    let file_id = file_id_of(ctx, session)?;
    let digests = session
        .digests
        .clone()
        .expect("verified sessions have digests");
    let coordinates = FileCoordinates {
        package_name: session.package_name.clone(),
        package_version: session.package_version.clone(),
        stored_file_name: session.file_name.clone(),
        file_name: session.file_name.clone(),
    };
    let file = NewFile {
        file_name: session.file_name.clone(),
        size: session.size,
        md5: digests.md5,
        sha1: digests.sha1,
        sha256: digests.sha256,
        object_key: session.object_key.clone(),
    };
    let committed = commit_stored_file(
        ctx,
        project,
        &coordinates,
        session.status,
        file,
        Some(file_id),
        None,
    );
    match committed {
        Ok((package, file)) => {
            sessions::forget(ctx.kv, session.project_id, &session.id)?;
            Ok(Response::json(
                201,
                &package_file_record(project, &package, &file),
            ))
        }
        // Refused for good (a duplicate, the project deleted): the object
        // is gone, and so is the session.
        Err(refused @ (ApiError::BadRequest(_) | ApiError::NotFound(_))) => {
            sessions::forget(ctx.kv, session.project_id, &session.id)?;
            Err(refused)
        }
        Err(other) => Err(other),
    }
}

/// The file id the session's file gets: allocated once, kept in the
/// session, so every commit of it uses the same.
fn file_id_of<K: KeyValue>(ctx: &Context<K>, session: &UploadSession) -> ApiResult<u64> {
    if let Some(id) = session.file_id {
        return Ok(id);
    }
    let fresh = meta::next_id(ctx.kv, "file")?;
    let stored = sessions::change(
        ctx.kv,
        session.project_id,
        &session.id,
        ctx.now_millis(),
        |stored| {
            stored.file_id.is_none().then(|| UploadSession {
                file_id: Some(fresh),
                ..stored.clone()
            })
        },
    )?;
    Ok(stored.file_id.expect("the file id was just stored"))
}
