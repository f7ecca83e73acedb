//! What listing and finding issued tokens (access, deploy, personal) have in
//! common: a page of a holder's token index, and one record by its id.

use serde_json::Value;

use super::pagination::Page;
use super::Context;
use crate::error::{ApiError, ApiResult};
use crate::http::{Request, Response};
use crate::meta::kv::KeyValue;
use crate::meta::model::Millis;
use crate::meta::tokens::{self, Holder, IssuedKind, TokenRecord};

/// How the records of one kind of token are shown.
pub type Render = fn(&TokenRecord, Millis) -> Value;

/// One page of the tokens of `kind` issued to `holder`, oldest first.
pub fn page<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    kind: IssuedKind,
    holder: Holder,
    render: Render,
) -> ApiResult<Response> {
    let page = Page::from_request(request)?;
    let ids = tokens::token_ids(ctx.kv, kind, holder).map_err(ApiError::internal)?;
    let now = ctx.now_millis();
    let mut shown = Vec::new();
    for id in page.slice(&ids) {
        if let Some(record) = tokens::token(ctx.kv, *id).map_err(ApiError::internal)? {
            shown.push(render(&record, now));
        }
    }
    Ok(page.add_headers(
        Response::json(200, &shown),
        ids.len() as u64,
        request,
        &ctx.config.public_url,
    ))
}

/// The record `:token_id` names, if it is of `kind` and `belongs` to the
/// holder asked through; 404 otherwise.
pub fn find<K: KeyValue>(
    ctx: &Context<K>,
    raw_token_id: &str,
    kind: IssuedKind,
    belongs: impl Fn(&TokenRecord) -> bool,
) -> ApiResult<TokenRecord> {
    raw_token_id
        .parse::<u64>()
        .ok()
        .map(|id| tokens::token(ctx.kv, id))
        .transpose()
        .map_err(ApiError::internal)?
        .flatten()
        .filter(|r| r.kind == kind && belongs(r))
        .ok_or_else(ApiError::not_found)
}
