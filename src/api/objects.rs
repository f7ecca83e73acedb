//! `GET /api/v4/admin/referenced_objects` (ours, not GitLab's): every
//! object key the registry references, page by page, for `genreg gc` on any
//! deployment whatever its key-value store.
//!
//! Administrators only. `cursor` (opaque, from the previous page's
//! `next_cursor`) and `per_page` (1 to [`MAX_PER_PAGE`], default
//! [`MAX_PER_PAGE`]) in; `{"object_keys": [...], "upload_sessions": [...],
//! "expired_upload_sessions": n, "next_cursor": "..." | null}` out. Keyset
//! pagination: a page reads a bounded number of keys of the store, never an
//! offset.
//!
//! The walk takes the upload sessions first, project by project
//! (`meta::upload_sessions`), then the package files (`meta::objects`).
//! Each session not yet collectable gives its object key in `object_keys`
//! (so a client that knows nothing of sessions keeps a joined object being
//! verified) and `{"object_key", "upload_id"}` in `upload_sessions` (so gc
//! keeps its multipart upload open). Sessions first, because a completed
//! session is committed to its package before it is forgotten: whichever
//! the walk meets, the object is named.
//!
//! `expired_upload_sessions` counts the collectable sessions (an hour past
//! their expiry) the page met; with `collect_expired_sessions=true` they are
//! removed on the way (records and index entries), and gc, which no longer
//! sees them, aborts their uploads and deletes their objects. Without it the
//! endpoint only reads.
//!
//! Under concurrent publishes the listing is not a snapshot: a file
//! published after the first page was read may be missing from it. `genreg
//! gc` relies on its grace period for those: it never deletes an object
//! younger than the grace period counted from before the first page.

use serde_json::json;

use super::params::invalid;
use super::users::require_admin;
use super::Context;
use crate::error::ApiResult;
use crate::http::{Request, Response};
use crate::meta::kv::KeyValue;
use crate::meta::objects::{referenced_objects, Position};
use crate::meta::upload_sessions::{referenced_sessions, SessionsPosition};

/// The largest (and default) number of object keys per page.
pub const MAX_PER_PAGE: usize = 1000;

/// Where a page starts: in the walk over sessions, or over packages.
#[derive(Debug, PartialEq, Eq)]
enum Cursor {
    Sessions(SessionsPosition),
    Packages(Position),
}

impl Cursor {
    fn decode(cursor: Option<&str>) -> ApiResult<Cursor> {
        match cursor {
            None | Some("") => Ok(Cursor::Sessions(SessionsPosition::default())),
            Some(text) => SessionsPosition::decode(text)
                .map(Cursor::Sessions)
                .or_else(|| Position::decode(text).map(Cursor::Packages))
                .ok_or_else(|| invalid("cursor")),
        }
    }

    fn encode(&self) -> String {
        match self {
            Cursor::Sessions(at) => at.encode(),
            Cursor::Packages(at) => at.encode(),
        }
    }
}

/// One page of the answer.
#[derive(Debug, Default)]
struct Page {
    object_keys: Vec<String>,
    upload_sessions: Vec<serde_json::Value>,
    expired_upload_sessions: usize,
    next: Option<Cursor>,
}

pub fn list<K: KeyValue>(ctx: &Context<K>, request: &Request) -> ApiResult<Response> {
    require_admin(ctx, request)?;
    let from = Cursor::decode(request.query_param("cursor"))?;
    let per_page = per_page(request.query_param("per_page"))?;
    let collect = collect_expired(request.query_param("collect_expired_sessions"))?;
    let page = walk(ctx, from, per_page, collect)?;
    Ok(Response::json(
        200,
        &json!({
            "object_keys": page.object_keys,
            "upload_sessions": page.upload_sessions,
            "expired_upload_sessions": page.expired_upload_sessions,
            "next_cursor": page.next.map(|c| c.encode()),
        }),
    ))
}

/// One page from `from`: sessions, then, when they end within the page,
/// packages with what is left of it.
fn walk<K: KeyValue>(
    ctx: &Context<K>,
    from: Cursor,
    per_page: usize,
    collect: bool,
) -> ApiResult<Page> {
    let mut page = Page::default();
    let from = match from {
        Cursor::Packages(at) => at,
        Cursor::Sessions(at) => {
            let sessions = referenced_sessions(ctx.kv, &at, per_page, ctx.now_millis(), collect)?;
            page.expired_upload_sessions = sessions.collectable;
            for upload in sessions.uploads {
                page.object_keys.push(upload.object_key.clone());
                page.upload_sessions.push(json!({
                    "object_key": upload.object_key,
                    "upload_id": upload.upload_id,
                }));
            }
            if let Some(next) = sessions.next {
                page.next = Some(Cursor::Sessions(next));
                return Ok(page);
            }
            if page.object_keys.len() >= per_page {
                page.next = Some(Cursor::Packages(Position::default()));
                return Ok(page);
            }
            Position::default()
        }
    };
    let left = per_page - page.object_keys.len();
    let packages = referenced_objects(ctx.kv, &from, left)?;
    page.object_keys.extend(packages.object_keys);
    page.next = packages.next.map(Cursor::Packages);
    Ok(page)
}

/// `collect_expired_sessions`: `true` or `false` (the default).
fn collect_expired(value: Option<&str>) -> ApiResult<bool> {
    match value.map(str::trim) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(invalid("collect_expired_sessions")),
    }
}

/// `per_page`: a whole number, brought into 1..=[`MAX_PER_PAGE`].
fn per_page(value: Option<&str>) -> ApiResult<usize> {
    match value.map(str::trim) {
        None | Some("") => Ok(MAX_PER_PAGE),
        Some(text) => {
            let n: i64 = text.parse().map_err(|_| invalid("per_page"))?;
            Ok(n.clamp(1, MAX_PER_PAGE as i64) as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::objects::Position;

    #[test]
    fn per_page_is_brought_into_range() {
        assert_eq!(per_page(None).unwrap(), MAX_PER_PAGE);
        assert_eq!(per_page(Some("0")).unwrap(), 1);
        assert_eq!(per_page(Some("7")).unwrap(), 7);
        assert_eq!(per_page(Some("5000")).unwrap(), MAX_PER_PAGE);
        assert!(per_page(Some("x")).is_err());
    }

    #[test]
    fn collecting_expired_sessions_is_asked_for_explicitly() {
        assert!(!collect_expired(None).unwrap());
        assert!(!collect_expired(Some("false")).unwrap());
        assert!(collect_expired(Some("true")).unwrap());
        assert!(collect_expired(Some("yes")).is_err());
    }

    #[test]
    fn a_walk_starts_with_sessions_and_old_cursors_still_name_packages() {
        let start = Cursor::Sessions(SessionsPosition::default());
        assert_eq!(Cursor::decode(None).unwrap(), start);
        assert_eq!(Cursor::decode(Some("")).unwrap(), start);
        let sessions = Cursor::Sessions(SessionsPosition {
            project_shard: 0,
            project_id: 3,
        });
        assert_eq!(Cursor::decode(Some(&sessions.encode())).unwrap(), sessions);
        let packages = Cursor::Packages(Position {
            project_id: 3,
            ..Position::default()
        });
        assert_eq!(packages.encode(), "1.0.3.0.0.");
        assert_eq!(Cursor::decode(Some("1.0.3.0.0.")).unwrap(), packages);
        assert!(Cursor::decode(Some("s1.x")).is_err());
    }

    #[test]
    fn cursors_round_trip_and_others_are_refused() {
        let at = Position {
            project_shard: 1,
            project_id: 42,
            package_shard: 3,
            package_id: 9001,
            after_segment: Some("0a1b".into()),
        };
        assert_eq!(Position::decode(&at.encode()), Some(at));
        let start = Position::default();
        assert_eq!(Position::decode(&start.encode()), Some(start));
        for bad in [
            "",
            "x",
            "2.0.0.0.0.",
            "1.0.0.0.0",
            "1.a.0.0.0.",
            "1.0.0.0.0.zz",
        ] {
            assert_eq!(Position::decode(bad), None, "{bad}");
        }
    }
}
