//! Deploy tokens, as GitLab's API manages them: `POST`/`GET
//! /projects/:id/deploy_tokens`, `GET`/`DELETE
//! /projects/:id/deploy_tokens/:token_id`, and the same under `/groups/:id`.
//!
//! A deploy token reads and/or writes packages of its project (or of every
//! project under its group) and nothing else. Deleting one revokes it and
//! takes it out of the listing, as GitLab deletes it.

use genreg_token::{Grant, Role, Scope, DEPLOY_TOKEN_SCOPES};
use serde_json::{json, Value};

use super::rules::{self, Target};
use super::HeldKind;
use crate::api::params::Params;
use crate::api::{iso8601, Context};
use crate::error::{ApiError, ApiResult};
use crate::http::{Request, Response};
use crate::meta::kv::KeyValue;
use crate::meta::model::Millis;
use crate::meta::tokens::{self, IssuedKind, NewToken, TokenRecord};

/// The JSON GitLab answers for a deploy token (never the token itself).
pub fn render(record: &TokenRecord, now: Millis) -> Value {
    json!({
        "id": record.id,
        "name": record.name,
        "username": record.username,
        "expires_at": record.expires_at.map(iso8601),
        "scopes": record.scopes,
        "revoked": record.revoked,
        "expired": record.is_expired(now),
    })
}

/// GitLab's rule for deploy token user names.
fn is_valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b))
}

struct CreateDeployToken {
    name: String,
    scopes: Vec<(String, Scope)>,
    expires_at: Option<Millis>,
    username: Option<String>,
}

fn parse_create(fields: &Params) -> ApiResult<CreateDeployToken> {
    let name = super::name_field(fields)?;
    let scopes = super::scopes_field(fields, DEPLOY_TOKEN_SCOPES)?;
    let username = fields.text("username");
    if username.as_deref().is_some_and(|u| !is_valid_username(u)) {
        return Err(ApiError::FieldInvalid {
            field: "username",
            text: "can contain only letters, digits, '_', '-', '+', and '.'".into(),
        });
    }
    let expires_at = super::expires_at_field(fields)?;
    Ok(CreateDeployToken {
        name,
        scopes,
        expires_at,
        username,
    })
}

pub fn create<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    target: Target,
    body: &[u8],
) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let (holder, _) = rules::administered(ctx, &actor, &target, target.right_to_manage_tokens())?;
    let wanted = parse_create(&Params::parse(request, body)?)?;
    let now = ctx.now_millis();
    let expires_at =
        rules::expiry_within_issuer(wanted.expires_at, None, rules::issuer_expiry(&actor), now)?;

    let id = tokens::new_token_id(ctx.kv)?;
    let username = wanted
        .username
        .unwrap_or_else(|| format!("gitlab+deploy-token-{id}"));
    // Deploy tokens publish at most, which the maintainers and owners who
    // issue them may do themselves.
    super::issue(
        ctx,
        NewToken {
            id,
            kind: IssuedKind::Deploy,
            holder: holder.holder(),
            name: wanted.name,
            username,
            scopes: wanted.scopes.into_iter().map(|(name, _)| name).collect(),
            access_level: None,
            created_at: now,
            expires_at,
            grants: Vec::new(),
        },
        vec![Grant {
            project: holder.grant_selector(),
            role: Role::Developer,
        }],
        render,
    )
}

/// Deleted deploy tokens are gone from the listing, as in GitLab.
pub const HELD: HeldKind = HeldKind {
    kind: IssuedKind::Deploy,
    render,
    revoking_unlists: true,
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
            r#"{"name":"d","scopes":["read_package_registry","write_package_registry"],"username":"ci+bot","expires_at":"2030-01-31T00:00:00Z"}"#,
        ))
        .unwrap();
        assert_eq!(wanted.scopes.len(), 2);
        assert_eq!(wanted.username.as_deref(), Some("ci+bot"));
        assert!(wanted.expires_at.is_some());
        for body in [
            r#"{"scopes":["read_package_registry"]}"#,
            r#"{"name":"d"}"#,
            r#"{"name":"d","scopes":["api"]}"#,
            r#"{"name":"d","scopes":["read_package_registry"],"username":"a b"}"#,
        ] {
            assert!(parse_create(&fields(body)).is_err(), "{body}");
        }
    }

    #[test]
    fn the_json_never_holds_the_token() {
        let record = TokenRecord {
            id: 9,
            kind: IssuedKind::Deploy,
            holder: tokens::Holder::Group(2),
            name: "d".into(),
            username: "gitlab+deploy-token-9".into(),
            scopes: vec!["read_package_registry".into()],
            access_level: None,
            created_at: 0,
            expires_at: None,
            revoked: false,
            index_shard: 0,
            grants: Vec::new(),
        };
        let shown = render(&record, 5);
        assert_eq!(shown["username"], "gitlab+deploy-token-9");
        assert_eq!(shown["expires_at"], Value::Null);
        assert_eq!(shown["expired"], false);
        assert!(shown.get("token").is_none());
    }
}
