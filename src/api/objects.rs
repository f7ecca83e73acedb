//! `GET /api/v4/admin/referenced_objects` (ours, not GitLab's): every
//! object key the registry references, page by page, for `genreg gc` on any
//! deployment whatever its key-value store.
//!
//! Administrators only. `cursor` (opaque, from the previous page's
//! `next_cursor`) and `per_page` (1 to [`MAX_PER_PAGE`], default
//! [`MAX_PER_PAGE`]) in; `{"object_keys": [...], "next_cursor": "..." | null}`
//! out. Keyset pagination: a page reads a bounded number of keys of the
//! store (`meta::objects`), never an offset.
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

/// The largest (and default) number of object keys per page.
pub const MAX_PER_PAGE: usize = 1000;

pub fn list<K: KeyValue>(ctx: &Context<K>, request: &Request) -> ApiResult<Response> {
    require_admin(ctx, request)?;
    let from = match request.query_param("cursor") {
        None | Some("") => Position::default(),
        Some(cursor) => Position::decode(cursor).ok_or_else(|| invalid("cursor"))?,
    };
    let per_page = per_page(request.query_param("per_page"))?;
    let page = referenced_objects(ctx.kv, &from, per_page)?;
    Ok(Response::json(
        200,
        &json!({
            "object_keys": page.object_keys,
            "next_cursor": page.next.map(|p| p.encode()),
        }),
    ))
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
