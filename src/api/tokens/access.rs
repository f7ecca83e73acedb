//! Project and group access tokens, as GitLab's API manages them:
//! `POST`/`GET /projects/:id/access_tokens`, `GET`/`DELETE
//! /projects/:id/access_tokens/:token_id`, and the same under `/groups/:id`.
//!
//! An access token is a personal token of a bot user with a role on the
//! project (by id) or on every project under the group. It is stateless
//! like every token; the record kept here only lets it be listed and
//! revoked. Its `jti` is its numeric id, so revoking by the API's id is one
//! key.

use genreg_token::{Grant, Role, Scope, ACCESS_TOKEN_SCOPES};
use serde_json::{json, Value};

use super::rules::{self, Target};
use super::HeldKind;
use crate::api::params::{self, Params};
use crate::api::{iso8601, Context};
use crate::auth::policy;
use crate::error::{ApiError, ApiResult};
use crate::http::{Request, Response};
use crate::meta::kv::KeyValue;
use crate::meta::model::Millis;
use crate::meta::tokens::{self, IssuedKind, NewToken, TokenRecord};

/// The JSON GitLab answers for an access token (never the token itself).
pub fn render(record: &TokenRecord, now: Millis) -> Value {
    json!({
        "id": record.id,
        "name": record.name,
        "revoked": record.revoked,
        "created_at": iso8601(record.created_at),
        "description": null,
        "scopes": record.scopes,
        "user_id": record.id,
        "last_used_at": null,
        "active": record.is_active(now),
        "expires_at": record.expires_at.map(|at| iso8601(at)[..10].to_string()),
        "access_level": record.access_level,
    })
}

struct CreateAccessToken {
    name: String,
    scopes: Vec<(String, Scope)>,
    role: Role,
    expires_at: Option<Millis>,
}

fn parse_create(fields: &Params) -> ApiResult<CreateAccessToken> {
    let name = super::name_field(fields)?;
    let scopes = super::scopes_field(fields, ACCESS_TOKEN_SCOPES)?;
    let role = match fields.text("access_level") {
        None => Role::Maintainer,
        Some(level) => Role::from_access_level_text(&level)
            .ok_or_else(|| params::invalid_value("access_level"))?,
    };
    let expires_at = super::expires_at_field(fields)?;
    Ok(CreateAccessToken {
        name,
        scopes,
        role,
        expires_at,
    })
}

pub fn create<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    target: Target,
    body: &[u8],
) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let (holder, issuer_right) =
        rules::administered(ctx, &actor, &target, target.right_to_manage_tokens())?;
    let wanted = parse_create(&Params::parse(request, body)?)?;
    if !policy::may_grant(issuer_right, wanted.role) {
        return Err(ApiError::BadRequest(
            "Access level of the token can't be greater the access level of the user who created the token".into(),
        ));
    }
    let now = ctx.now_millis();
    let expires_at = rules::access_token_expiry(
        wanted.expires_at,
        ctx.config.max_token_lifetime_days,
        rules::issuer_expiry(&actor),
        now,
    )?;

    let id = tokens::new_token_id(ctx.kv)?;
    let username = holder.bot_name(id);
    super::issue(
        ctx,
        NewToken {
            id,
            kind: IssuedKind::Access,
            holder: holder.holder(),
            name: wanted.name,
            username,
            scopes: wanted.scopes.into_iter().map(|(name, _)| name).collect(),
            access_level: Some(wanted.role.access_level()),
            created_at: now,
            expires_at,
            grants: Vec::new(),
        },
        vec![Grant {
            project: holder.grant_selector(),
            role: wanted.role,
        }],
        render,
    )
}

/// Access tokens stay listed once revoked, as in GitLab.
pub const HELD: HeldKind = HeldKind {
    kind: IssuedKind::Access,
    render,
    revoking_unlists: false,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: &str) -> Params {
        Params::from_json(body)
    }

    #[test]
    fn creation_fields_follow_gitlab() {
        let wanted = parse_create(&fields(
            r#"{"name":"ci","scopes":["api","read_api"],"access_level":30,"expires_at":"2030-01-31"}"#,
        ))
        .unwrap();
        assert_eq!(wanted.name, "ci");
        assert_eq!(wanted.role, Role::Developer);
        assert_eq!(wanted.scopes.len(), 2);
        assert!(wanted.expires_at.is_some());
        let defaults = parse_create(&fields(r#"{"name":"ci","scopes":["api"]}"#)).unwrap();
        assert_eq!(defaults.role, Role::Maintainer);
        assert_eq!(defaults.expires_at, None);
    }

    #[test]
    fn bad_creation_fields_are_refused() {
        for body in [
            r#"{"scopes":["api"]}"#,
            r#"{"name":"ci"}"#,
            r#"{"name":"ci","scopes":[]}"#,
            r#"{"name":"ci","scopes":["sudo"]}"#,
            r#"{"name":"ci","scopes":["api"],"access_level":35}"#,
            r#"{"name":"ci","scopes":["api"],"expires_at":"someday"}"#,
        ] {
            assert!(parse_create(&fields(body)).is_err(), "{body}");
        }
    }

    #[test]
    fn the_json_never_holds_the_token_and_shows_activity() {
        let record = TokenRecord {
            id: 4,
            kind: IssuedKind::Access,
            holder: tokens::Holder::Project(1),
            name: "ci".into(),
            username: "project_1_bot_4".into(),
            scopes: vec!["api".into()],
            access_level: Some(40),
            created_at: 0,
            expires_at: Some(86_400_000),
            revoked: false,
            index_shard: 0,
            grants: Vec::new(),
        };
        let shown = render(&record, 1);
        assert_eq!(shown["expires_at"], "1970-01-02");
        assert_eq!(shown["active"], true);
        assert_eq!(shown["access_level"], 40);
        assert!(shown.get("token").is_none());
        assert_eq!(render(&record, 86_400_000)["active"], false);
    }
}
