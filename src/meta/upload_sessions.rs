//! Upload sessions (ours): their records and the project's index of them.
//!
//! A session lives in two places:
//!
//! - its record, `upload-session/<project>/<id>`, under a random id: only
//!   the session's own requests write it (created with a plain write, since
//!   nobody else knows the id; changed afterwards with compare-and-swap,
//!   since two requests of one session may race);
//! - its entry in the project's index, `upload-sessions/<project>`: a
//!   bounded list of live sessions, for listing them and for a client that
//!   resumes (same file, size and sha256) to find its session again.
//!
//! Writes happen in an order that survives a crash between any two: the
//! record is written before its entry and deleted after it, so an entry
//! always had a record; an entry whose record is gone (a crash mid-way) is
//! skipped and dropped by the next change of the index; a record without an
//! entry is a session nobody resumes, which expires and `genreg gc` removes.
//!
//! Every change of a record is a step that gives the same result when run
//! twice on the same value, so a swap whose answer the store misreports is
//! simply confirmed by reading back (see [`super::kv::update`]).

use sha2::{Digest, Sha256};

use super::kv::{KeyValue, KvError, Step};
use super::model::Millis;
use super::{decode, encode, keys, read, update_record, MetaError};
pub use genreg_layout::records::{SessionState, UploadSession, UploadSessionEntry};

/// How long a session lives after its creation.
pub const SESSION_LIFETIME_MS: Millis = 24 * 60 * 60 * 1000;

/// The most live sessions a project holds at once: its index stays near
/// 110 KiB at most, under [`super::MAX_VALUE_BYTES`].
pub const MAX_SESSIONS_PER_PROJECT: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// The session does not exist (any more), or expired.
    #[error("upload session not found")]
    Gone,
    #[error("the project has {MAX_SESSIONS_PER_PROJECT} upload sessions open already")]
    TooMany,
}

impl From<KvError> for SessionError {
    fn from(e: KvError) -> Self {
        SessionError::Meta(e.into())
    }
}

/// What a client resuming a session names: the project, package, version,
/// stored file name, size and sha256, as a digest (32 hex digits).
pub fn identity(session: &UploadSession) -> String {
    let text = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        session.project_id,
        session.package_name,
        session.package_version,
        session.file_name,
        session.size,
        session.sha256
    );
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

fn is_live(session: &UploadSession, now: Millis) -> bool {
    session.expires_at > now
}

/// The live session with this id in this project, if any.
pub fn session<K: KeyValue>(
    kv: &K,
    project_id: u64,
    id: &str,
    now: Millis,
) -> Result<Option<UploadSession>, MetaError> {
    let session: Option<UploadSession> = read(kv, &keys::upload_session(project_id, id))?;
    Ok(session.filter(|s| is_live(s, now)))
}

/// The project's live sessions, oldest first: its index, then their
/// records in one batch.
pub fn sessions<K: KeyValue>(
    kv: &K,
    project_id: u64,
    now: Millis,
) -> Result<Vec<UploadSession>, MetaError> {
    let entries: Vec<UploadSessionEntry> =
        read(kv, &keys::upload_session_index(project_id))?.unwrap_or_default();
    let record_keys: Vec<String> = entries
        .iter()
        .filter(|e| e.expires_at > now)
        .map(|e| keys::upload_session(project_id, &e.id))
        .collect();
    let mut live = Vec::new();
    for (key, value) in record_keys.iter().zip(kv.get_many(&record_keys)?) {
        if let Some(bytes) = value {
            let session: UploadSession = decode(key, &bytes)?;
            if is_live(&session, now) {
                live.push(session);
            }
        }
    }
    Ok(live)
}

/// The live session a client resuming `wanted` (same project, package,
/// version, file, size and sha256) finds.
pub fn resumable<K: KeyValue>(
    kv: &K,
    wanted: &UploadSession,
    now: Millis,
) -> Result<Option<UploadSession>, MetaError> {
    let identity = identity(wanted);
    let entries: Vec<UploadSessionEntry> =
        read(kv, &keys::upload_session_index(wanted.project_id))?.unwrap_or_default();
    for entry in entries
        .iter()
        .filter(|e| e.identity == identity && e.expires_at > now)
    {
        if let Some(session) = session(kv, wanted.project_id, &entry.id, now)? {
            return Ok(Some(session));
        }
    }
    Ok(None)
}

/// What [`create`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// The new session is recorded and indexed.
    New,
    /// Another request created a session for the same file first: this
    /// one's record is gone again, and the caller answers with that one.
    Existing(Box<UploadSession>),
}

/// Records a new session (whose S3 multipart upload exists) and enters it in
/// the project's index, unless a live session for the same file got there
/// first or the project has too many.
pub fn create<K: KeyValue>(
    kv: &K,
    session: &UploadSession,
    now: Millis,
) -> Result<Created, SessionError> {
    let record_key = keys::upload_session(session.project_id, &session.id);
    // Nobody else knows this random id: a plain write creates it.
    kv.set(&record_key, &encode(session))?;
    let identity = identity(session);
    let entered = update_record(
        kv,
        &keys::upload_session_index(session.project_id),
        |entries: Option<Vec<UploadSessionEntry>>| {
            let mut entries = live_entries(kv, session.project_id, entries, now)?;
            if entries.iter().any(|e| e.id == session.id) {
                // A retry after a write that landed unconfirmed.
                return Ok(Step::Keep(None));
            }
            if let Some(theirs) = entries.iter().find(|e| e.identity == identity) {
                return Ok(Step::Keep(Some(theirs.id.clone())));
            }
            if entries.len() >= MAX_SESSIONS_PER_PROJECT {
                return Err(SessionError::TooMany);
            }
            entries.push(UploadSessionEntry {
                id: session.id.clone(),
                identity: identity.clone(),
                expires_at: session.expires_at,
            });
            Ok(Step::Write(encode(&entries), None))
        },
    );
    let theirs = match entered {
        Ok(theirs) => theirs,
        Err(e) => {
            // Not indexed: the record would only wait for its expiry.
            let _ = kv.delete(&record_key);
            return Err(e);
        }
    };
    match theirs {
        None => Ok(Created::New),
        Some(id) => {
            kv.delete(&record_key)?;
            match self::session(kv, session.project_id, &id, now)? {
                Some(existing) => Ok(Created::Existing(Box::new(existing))),
                // Completed or aborted in between: the client may try again.
                None => Err(SessionError::Meta(MetaError::Store(KvError::Busy(
                    keys::upload_session(session.project_id, &id),
                )))),
            }
        }
    }
}

/// The entries of an index whose sessions are live: expired ones, and those
/// whose record is gone (a crash between deleting an entry's record and the
/// entry can leave one), are dropped.
fn live_entries<K: KeyValue>(
    kv: &K,
    project_id: u64,
    entries: Option<Vec<UploadSessionEntry>>,
    now: Millis,
) -> Result<Vec<UploadSessionEntry>, SessionError> {
    let entries: Vec<UploadSessionEntry> = entries
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.expires_at > now)
        .collect();
    let record_keys: Vec<String> = entries
        .iter()
        .map(|e| keys::upload_session(project_id, &e.id))
        .collect();
    let records = kv.get_many(&record_keys)?;
    let mut live = Vec::new();
    for ((entry, key), record) in entries.into_iter().zip(&record_keys).zip(records) {
        if let Some(bytes) = record {
            let session: UploadSession = decode(key, &bytes)?;
            if is_live(&session, now) {
                live.push(entry);
            }
        }
    }
    Ok(live)
}

/// Changes a live session's record: `step` sees the stored record and
/// answers the record to write, or `None` to keep it; the session as it
/// then stands is returned. [`SessionError::Gone`] when there is no live
/// record. `step` must give the same answer when run again on what it
/// wrote (the swap is confirmed by reading back).
pub fn change<K: KeyValue>(
    kv: &K,
    project_id: u64,
    id: &str,
    now: Millis,
    mut step: impl FnMut(&UploadSession) -> Option<UploadSession>,
) -> Result<UploadSession, SessionError> {
    update_record(
        kv,
        &keys::upload_session(project_id, id),
        |stored: Option<UploadSession>| match stored.filter(|s| is_live(s, now)) {
            None => Err(SessionError::Gone),
            Some(session) => Ok(match step(&session) {
                Some(next) => Step::Write(encode(&next), next),
                None => Step::Keep(session),
            }),
        },
    )
}

/// Forgets a session: its index entry first, then its record. A crash in
/// between leaves a record nobody lists, which expires on its own.
pub fn forget<K: KeyValue>(kv: &K, project_id: u64, id: &str) -> Result<(), MetaError> {
    update_record(
        kv,
        &keys::upload_session_index(project_id),
        |entries: Option<Vec<UploadSessionEntry>>| {
            let Some(mut entries) = entries else {
                return Ok::<_, MetaError>(Step::Keep(()));
            };
            let before = entries.len();
            entries.retain(|e| e.id != id);
            Ok(if entries.len() == before {
                Step::Keep(())
            } else {
                Step::Write(encode(&entries), ())
            })
        },
    )?;
    kv.delete(&keys::upload_session(project_id, id))?;
    Ok(())
}
