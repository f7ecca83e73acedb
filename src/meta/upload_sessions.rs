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
//!
//! `genreg gc` keeps the S3 upload and object of every session until an
//! hour past its expiry ([`session_collectable`]); index entries stay that
//! long too, so the registry's walk for gc ([`referenced_sessions`]) still
//! sees them. Past it, the walk collects a session when asked: its record
//! first, then its entry, the reverse of [`forget`], because a collectable
//! entry is dropped by its expiry alone whatever its record, so a crash in
//! between leaves nothing the next walk does not remove.

use sha2::{Digest, Sha256};

use super::kv::{KeyValue, KvError, Step};
use super::model::Millis;
use super::objects::READ_ALLOWANCE;
use super::project_index::{self, PROJECT_INDEX_SHARD_SIZE};
use super::{decode, encode, keys, read, read_counter, update_record, MetaError};
pub use genreg_layout::records::{
    session_collectable, SessionState, UploadSession, UploadSessionEntry,
};

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
            let mut entries = kept_entries(kv, session.project_id, entries, now)?;
            if entries.iter().any(|e| e.id == session.id) {
                // A retry after a write that landed unconfirmed.
                return Ok(Step::Keep(None));
            }
            let live_twin = entries
                .iter()
                .find(|e| e.identity == identity && e.expires_at > now);
            if let Some(theirs) = live_twin {
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

/// The entries of an index to keep: those of sessions not yet collectable
/// (live ones, and expired ones within their grace, which `genreg gc` still
/// counts as referenced), with the expiry their record says. Collectable
/// sessions are collected on the way (record first, as the walk for gc
/// does), and entries whose record is gone (a crash between deleting an
/// entry's record and the entry can leave one) are dropped.
fn kept_entries<K: KeyValue>(
    kv: &K,
    project_id: u64,
    entries: Option<Vec<UploadSessionEntry>>,
    now: Millis,
) -> Result<Vec<UploadSessionEntry>, SessionError> {
    let (collectable, entries): (Vec<_>, Vec<_>) = entries
        .unwrap_or_default()
        .into_iter()
        .partition(|e| session_collectable(e.expires_at, now));
    for entry in &collectable {
        kv.delete(&keys::upload_session(project_id, &entry.id))?;
    }
    let record_keys: Vec<String> = entries
        .iter()
        .map(|e| keys::upload_session(project_id, &e.id))
        .collect();
    let records = kv.get_many(&record_keys)?;
    let mut kept = Vec::new();
    for ((entry, key), record) in entries.into_iter().zip(&record_keys).zip(records) {
        let Some(bytes) = record else { continue };
        let session: UploadSession = decode(key, &bytes)?;
        if session_collectable(session.expires_at, now) {
            kv.delete(key)?;
        } else {
            kept.push(UploadSessionEntry {
                expires_at: session.expires_at,
                ..entry
            });
        }
    }
    Ok(kept)
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

/// What `genreg gc` must keep of a session: its object (joined or to be)
/// and its S3 multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUpload {
    pub object_key: String,
    pub upload_id: String,
}

/// Where a walk over the projects' sessions resumes: the first project
/// with an id at or after `project_id` in project index shard
/// `project_shard`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionsPosition {
    pub project_shard: u64,
    pub project_id: u64,
}

impl SessionsPosition {
    const TAG: &'static str = "s1.";

    /// The opaque cursor handed to clients.
    pub fn encode(&self) -> String {
        format!("{}{}.{}", Self::TAG, self.project_shard, self.project_id)
    }

    /// Reads a cursor made by [`SessionsPosition::encode`]; `None` when it
    /// is not one.
    pub fn decode(cursor: &str) -> Option<SessionsPosition> {
        let (shard, id) = cursor.strip_prefix(Self::TAG)?.split_once('.')?;
        Some(SessionsPosition {
            project_shard: shard.parse().ok()?,
            project_id: id.parse().ok()?,
        })
    }
}

/// One page of the walk over the projects' sessions.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SessionsPage {
    /// The uploads of the sessions not yet collectable, project by project.
    pub uploads: Vec<SessionUpload>,
    /// Collectable sessions met (and collected, when asked).
    pub collectable: usize,
    /// Where the next page starts; `None` when the walk is complete.
    pub next: Option<SessionsPosition>,
}

/// The uploads of every session not yet collectable, project by project
/// (live projects, through the project index) from `from` on; with
/// `collect`, the collectable sessions met are removed on the way. The page
/// stops once it holds `per_page` uploads or has read `per_page` +
/// [`READ_ALLOWANCE`] keys; a project's sessions are taken whole, so a page
/// holds fewer than `per_page` + [`MAX_SESSIONS_PER_PROJECT`] uploads.
pub fn referenced_sessions<K: KeyValue>(
    kv: &K,
    from: &SessionsPosition,
    per_page: usize,
    now: Millis,
    collect: bool,
) -> Result<SessionsPage, MetaError> {
    let budget = per_page as u32 + READ_ALLOWANCE;
    let mut reads = 1;
    let mut page = SessionsPage::default();
    let created = read_counter(kv, &keys::project_ordinal())?;
    for shard in from.project_shard..created.div_ceil(PROJECT_INDEX_SHARD_SIZE) {
        let first_id = if shard == from.project_shard {
            from.project_id
        } else {
            0
        };
        for project_id in live_projects(kv, shard, first_id, &mut reads)? {
            if page.uploads.len() >= per_page || reads >= budget {
                page.next = Some(SessionsPosition {
                    project_shard: shard,
                    project_id,
                });
                return Ok(page);
            }
            reads += project_sessions(kv, project_id, now, collect, &mut page)?;
        }
    }
    Ok(page)
}

/// The ids of the live projects of a project index shard, from `first_id`
/// on, in id order (pending entries resolved from their records).
fn live_projects<K: KeyValue>(
    kv: &K,
    shard: u64,
    first_id: u64,
    reads: &mut u32,
) -> Result<Vec<u64>, MetaError> {
    *reads += 1;
    let entries = project_index::shard_entries(kv, shard)?;
    let mut ids = Vec::new();
    for entry in entries.into_iter().filter(|e| e.id >= first_id) {
        if entry.pending {
            *reads += 2;
            if project_index::live_project(kv, entry.id)?.is_none() {
                continue;
            }
        }
        ids.push(entry.id);
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Adds one project's sessions to `page` (and collects the collectable
/// ones when asked); returns the keys read.
fn project_sessions<K: KeyValue>(
    kv: &K,
    project_id: u64,
    now: Millis,
    collect: bool,
    page: &mut SessionsPage,
) -> Result<u32, MetaError> {
    let entries: Vec<UploadSessionEntry> =
        read(kv, &keys::upload_session_index(project_id))?.unwrap_or_default();
    let (collectable, kept): (Vec<_>, Vec<_>) = entries
        .into_iter()
        .partition(|e| session_collectable(e.expires_at, now));
    let record_keys: Vec<String> = kept
        .iter()
        .map(|e| keys::upload_session(project_id, &e.id))
        .collect();
    let records = match record_keys.is_empty() {
        true => Vec::new(),
        false => kv.get_many(&record_keys)?,
    };
    for (key, record) in record_keys.iter().zip(records) {
        let Some(bytes) = record else { continue };
        let session: UploadSession = decode(key, &bytes)?;
        if !session_collectable(session.expires_at, now) {
            page.uploads.push(SessionUpload {
                object_key: session.object_key,
                upload_id: session.upload_id,
            });
        }
    }
    page.collectable += collectable.len();
    if collect && !collectable.is_empty() {
        collect_sessions(kv, project_id, &collectable, now)?;
    }
    Ok(1 + record_keys.len() as u32)
}

/// Removes collectable sessions: their records, then their entries (see
/// the module docs for why in this order). Their S3 upload and object are
/// left to `genreg gc`, which no longer sees them referenced.
fn collect_sessions<K: KeyValue>(
    kv: &K,
    project_id: u64,
    collectable: &[UploadSessionEntry],
    now: Millis,
) -> Result<(), MetaError> {
    for entry in collectable {
        kv.delete(&keys::upload_session(project_id, &entry.id))?;
    }
    update_record(
        kv,
        &keys::upload_session_index(project_id),
        |entries: Option<Vec<UploadSessionEntry>>| {
            let Some(mut entries) = entries else {
                return Ok::<_, MetaError>(Step::Keep(()));
            };
            let before = entries.len();
            entries.retain(|e| !session_collectable(e.expires_at, now));
            Ok(if entries.len() == before {
                Step::Keep(())
            } else {
                Step::Write(encode(&entries), ())
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::tests::project_in;
    use crate::testing::MemoryStore;
    use genreg_layout::records::SESSION_COLLECTION_GRACE_MS;

    const HOUR: Millis = 60 * 60 * 1000;

    fn session(project_id: u64, id: &str, created_at: Millis) -> UploadSession {
        UploadSession {
            id: id.into(),
            project_id,
            package_name: "tool".into(),
            package_version: "1.0".into(),
            file_name: format!("{id}.bin"),
            status: None,
            size: 10,
            sha256: "00".repeat(32),
            part_size: 5 << 20,
            object_key: format!("files/{id}"),
            upload_id: format!("upload-{id}"),
            created_at,
            expires_at: created_at + SESSION_LIFETIME_MS,
            state: SessionState::Uploading,
            hashed: None,
            file_id: None,
            digests: None,
        }
    }

    fn upload(id: &str) -> SessionUpload {
        SessionUpload {
            object_key: format!("files/{id}"),
            upload_id: format!("upload-{id}"),
        }
    }

    fn index_ids(kv: &MemoryStore, project_id: u64) -> Vec<String> {
        let entries: Vec<UploadSessionEntry> = read(kv, &keys::upload_session_index(project_id))
            .unwrap()
            .unwrap_or_default();
        entries.into_iter().map(|e| e.id).collect()
    }

    /// Every upload of a walk of `per_page` uploads a page, and how many
    /// pages it took.
    fn walk(kv: &MemoryStore, per_page: usize, now: Millis) -> (Vec<SessionUpload>, usize) {
        let mut at = SessionsPosition::default();
        let mut uploads = Vec::new();
        for pages in 1.. {
            let page = referenced_sessions(kv, &at, per_page, now, false).unwrap();
            uploads.extend(page.uploads);
            match page.next {
                Some(next) => at = next,
                None => return (uploads, pages),
            }
        }
        unreachable!()
    }

    #[test]
    fn sessions_stay_referenced_until_an_hour_past_their_expiry() {
        let kv = MemoryStore::default();
        let project = project_in(&kv, "acme", "tools");
        let now = 100 * 24 * HOUR;
        let live = session(project.id, "live", now - HOUR);
        let in_grace = session(project.id, "grace", now - SESSION_LIFETIME_MS - HOUR / 2);
        let stale = session(project.id, "stale", now - SESSION_LIFETIME_MS - 2 * HOUR);
        // Entered while all were live.
        for s in [&stale, &in_grace, &live] {
            assert_eq!(create(&kv, s, stale.created_at).unwrap(), Created::New);
        }

        // Read only: the collectable session is counted, nothing changes.
        let start = SessionsPosition::default();
        let page = referenced_sessions(&kv, &start, 100, now, false).unwrap();
        assert_eq!(page.uploads, [upload("grace"), upload("live")]);
        assert_eq!((page.collectable, page.next), (1, None));
        assert_eq!(index_ids(&kv, project.id), ["stale", "grace", "live"]);

        // Collecting: the stale session's record and entry go.
        let page = referenced_sessions(&kv, &start, 100, now, true).unwrap();
        assert_eq!(page.uploads, [upload("grace"), upload("live")]);
        assert_eq!(page.collectable, 1);
        assert_eq!(index_ids(&kv, project.id), ["grace", "live"]);
        let stale_key = keys::upload_session(project.id, "stale");
        assert_eq!(kv.get(&stale_key).unwrap(), None);
        let page = referenced_sessions(&kv, &start, 100, now, true).unwrap();
        assert_eq!(page.collectable, 0);

        // The expired one within its grace is listed by no API call.
        let listed: Vec<String> = sessions(&kv, project.id, now)
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(listed, ["live"]);
        let later = in_grace.expires_at + SESSION_COLLECTION_GRACE_MS;
        let page = referenced_sessions(&kv, &start, 100, later, true).unwrap();
        assert_eq!((page.uploads, page.collectable), (vec![upload("live")], 1));
        assert_eq!(index_ids(&kv, project.id), ["live"]);
    }

    #[test]
    fn an_entry_whose_record_is_gone_is_collected_by_its_expiry() {
        let kv = MemoryStore::default();
        let project = project_in(&kv, "acme", "tools");
        let now = 100 * 24 * HOUR;
        let stale = session(project.id, "stale", now - SESSION_LIFETIME_MS - 2 * HOUR);
        create(&kv, &stale, stale.created_at).unwrap();
        // A crash after the record was deleted, before the entry was.
        kv.delete(&keys::upload_session(project.id, "stale"))
            .unwrap();
        let start = SessionsPosition::default();
        let page = referenced_sessions(&kv, &start, 100, now, true).unwrap();
        assert_eq!((page.uploads.len(), page.collectable), (0, 1));
        assert!(index_ids(&kv, project.id).is_empty());
    }

    #[test]
    fn a_client_does_not_resume_an_expired_session_kept_for_its_grace() {
        let kv = MemoryStore::default();
        let project = project_in(&kv, "acme", "tools");
        let now = 100 * 24 * HOUR;
        let old = session(project.id, "old", now - SESSION_LIFETIME_MS - HOUR / 2);
        create(&kv, &old, old.created_at).unwrap();
        let again = UploadSession {
            id: "new".into(),
            object_key: "files/new".into(),
            upload_id: "upload-new".into(),
            created_at: now,
            expires_at: now + SESSION_LIFETIME_MS,
            ..old.clone()
        };
        assert_eq!(resumable(&kv, &again, now).unwrap(), None);
        assert_eq!(create(&kv, &again, now).unwrap(), Created::New);
        assert_eq!(index_ids(&kv, project.id), ["old", "new"]);
    }

    #[test]
    fn the_walk_pages_across_projects() {
        let kv = MemoryStore::default();
        let now = 100 * 24 * HOUR;
        let mut expected = Vec::new();
        for (n, path) in ["a", "b", "c"].into_iter().enumerate() {
            let project = project_in(&kv, "acme", path);
            for i in 0..=n {
                let id = format!("{path}{i}");
                create(&kv, &session(project.id, &id, now), now).unwrap();
                expected.push(upload(&id));
            }
        }
        let (all, pages) = walk(&kv, 1, now);
        assert_eq!(all, expected);
        assert_eq!(pages, 3);
        let (all, pages) = walk(&kv, 1000, now);
        assert_eq!((all.len(), pages), (6, 1));
    }

    #[test]
    fn session_cursors_round_trip_and_others_are_refused() {
        let at = SessionsPosition {
            project_shard: 2,
            project_id: 417,
        };
        assert_eq!(at.encode(), "s1.2.417");
        assert_eq!(SessionsPosition::decode(&at.encode()), Some(at));
        for bad in ["", "s1.", "s1.2", "s1.2.x", "1.0.0.0.0.", "s2.1.1"] {
            assert_eq!(SessionsPosition::decode(bad), None, "{bad}");
        }
    }
}
