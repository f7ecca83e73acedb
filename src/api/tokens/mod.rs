//! Tokens issued through the API. What every kind shares lives here: the
//! one [`issue`] path (sign, record, answer), the fields of a new token,
//! a page of a holder's token index, one record by its id, and the
//! list/get/revoke endpoints of project and group tokens. Each kind has its
//! file (`access`, `deploy`, `job`, `personal`); `rules` holds where a
//! token may be issued and how long it lives.

pub mod access;
pub mod deploy;
pub mod job;
pub mod personal;
pub mod rules;

use genreg_token::{Claims, Grant, Kind, Scope};
use serde_json::Value;

use crate::api::pagination::Page;
use crate::api::params::{self, Params};
use crate::api::Context;
use crate::error::{ApiError, ApiResult};
use crate::http::{Request, Response};
use crate::meta::kv::KeyValue;
use crate::meta::model::Millis;
use crate::meta::tokens::{self, Holder, IssuedKind, NewToken, TokenRecord};
use crate::router::NumericId;
use rules::Target;

/// How the records of one kind of token are shown.
pub type Render = fn(&TokenRecord, Millis) -> Value;

/// The `name` of a new token: required, at most 255 bytes.
pub fn name_field(fields: &Params) -> ApiResult<String> {
    let name = fields.required("name")?;
    if name.len() > 255 {
        return Err(ApiError::InvalidParams("name is too long".into()));
    }
    Ok(name)
}

/// The `expires_at` of a new token, if given (a date or a time).
pub fn expires_at_field(fields: &Params) -> ApiResult<Option<Millis>> {
    fields
        .text("expires_at")
        .map(|t| rules::parse_expires_at(&t))
        .transpose()
}

/// The `scopes` of a new token: at least one, each among `allowed` (one of
/// the token crate's scope tables).
pub fn scopes_field(fields: &Params, allowed: &[Scope]) -> ApiResult<Vec<(String, Scope)>> {
    fields
        .list("scopes")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| params::missing("scopes"))?
        .into_iter()
        .map(|given| {
            Scope::parse_among(&given, allowed)
                .map(|scope| (scope.name().to_string(), scope))
                .ok_or_else(|| params::invalid_value("scopes"))
        })
        .collect()
}

/// Issues a recorded token (access, deploy, personal): signs the claims
/// `new` describes (with `grants`, the projects the token reaches), records
/// `new` so the token can be listed and revoked, and answers 201 with the
/// record as `render` shows it and, this once, the token itself.
pub fn issue<K: KeyValue>(
    ctx: &Context<K>,
    new: NewToken,
    grants: Vec<Grant>,
    render: Render,
) -> ApiResult<Response> {
    let claims = Claims {
        id: tokens::claims_id(new.id),
        // Access tokens are personal tokens of a bot user.
        kind: match new.kind {
            IssuedKind::Access | IssuedKind::Personal => Kind::Personal,
            IssuedKind::Deploy => Kind::Deploy,
        },
        subject: new.username.clone(),
        scopes: new.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
        grants,
        admin: false,
        issued_at: rules::to_secs(new.created_at),
        expires_at: new.expires_at.map(rules::to_secs),
    };
    let token = rules::mint(ctx, &claims);
    // Only grants make a token long: a personal token's `projects`.
    if token.len() > genreg_token::MAX_TOKEN_LEN {
        return Err(ApiError::InvalidParams("projects is too long".into()));
    }
    let now = new.created_at;
    let record = tokens::record_token(ctx.kv, new)?;
    let mut answer = render(&record, now);
    answer["token"] = Value::String(token);
    Ok(Response::json(201, &answer))
}

/// A kind of token that projects and groups hold (access and deploy
/// tokens): how it is shown, and what revoking it does to the listing.
pub struct HeldKind {
    pub kind: IssuedKind,
    pub render: Render,
    /// Deploy tokens leave the listing (and are no longer found) once
    /// revoked; access tokens stay, `revoked: true`, as in GitLab.
    pub revoking_unlists: bool,
}

/// `GET /(projects|groups)/:id/<kind>_tokens`
pub fn list<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    target: Target,
    held: &HeldKind,
) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let (holder, _) = rules::administered(ctx, &actor, &target, target.right_to_manage_tokens())?;
    page(ctx, request, held.kind, holder.holder(), held.render)
}

/// `GET /(projects|groups)/:id/<kind>_tokens/:token_id`
pub fn get<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    target: Target,
    held: &HeldKind,
    token_id: NumericId,
) -> ApiResult<Response> {
    let record = find_held(ctx, request, target, held, token_id)?;
    Ok(Response::json(
        200,
        &(held.render)(&record, ctx.now_millis()),
    ))
}

/// `DELETE /(projects|groups)/:id/<kind>_tokens/:token_id`: from the next
/// request on the token answers 401.
pub fn revoke<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    target: Target,
    held: &HeldKind,
    token_id: NumericId,
) -> ApiResult<Response> {
    let record = find_held(ctx, request, target, held, token_id)?;
    tokens::revoke_token(ctx.kv, &record, held.revoking_unlists)?;
    Ok(Response::new(204))
}

/// The token `:token_id`, for a caller who manages the tokens of the project
/// or group it belongs to.
fn find_held<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    target: Target,
    held: &HeldKind,
    token_id: NumericId,
) -> ApiResult<TokenRecord> {
    let actor = ctx.authenticate(request)?;
    let (holder, _) = rules::administered(ctx, &actor, &target, target.right_to_manage_tokens())?;
    find(ctx, token_id, held.kind, |r| {
        r.holder == holder.holder() && !(held.revoking_unlists && r.revoked)
    })
}

/// One page of the tokens of `kind` issued to `holder`, oldest first.
pub fn page<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    kind: IssuedKind,
    holder: Holder,
    render: Render,
) -> ApiResult<Response> {
    let page = Page::from_request(request)?;
    let ids = tokens::token_ids(ctx.kv, kind, holder)?;
    let now = ctx.now_millis();
    let mut shown = Vec::new();
    for id in page.slice(&ids) {
        if let Some(record) = tokens::token(ctx.kv, *id)? {
            shown.push(render(&record, now));
        }
    }
    Ok(page.respond(&shown, ids.len() as u64, request, &ctx.config.public_url))
}

/// The record `:token_id` names, if it is of `kind` and `belongs` to the
/// holder asked through; 404 otherwise.
pub fn find<K: KeyValue>(
    ctx: &Context<K>,
    token_id: NumericId,
    kind: IssuedKind,
    belongs: impl Fn(&TokenRecord) -> bool,
) -> ApiResult<TokenRecord> {
    token_id
        .map(|id| tokens::token(ctx.kv, id))
        .transpose()?
        .flatten()
        .filter(|r| r.kind == kind && belongs(r))
        .ok_or_else(ApiError::not_found)
}
