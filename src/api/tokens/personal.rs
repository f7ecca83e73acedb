//! Personal access tokens that administrators hand out to users:
//! `POST /users/:user_id/personal_access_tokens`, and GitLab's
//! `GET /personal_access_tokens?user_id=`, `GET`/`DELETE
//! /personal_access_tokens/:id` to list, show and revoke them.
//!
//! In GitLab a personal token acts with its user's memberships. Users here
//! have none, so the token carries its own (ours): `projects`, a JSON array
//! of `{"project": <selector>, "access_level": <10..50>}`, where the
//! selector is what `genreg token create --project` takes: a numeric
//! project id, a full path (`acme/tools`), a namespace and `/*` (`acme/*`,
//! nested groups included) or `*`. A token without `projects` reaches no
//! private project.
//!
//! The token is stateless like every token; its record (`meta::tokens`,
//! held by the user) lists it and revokes it. Its `jti` is its numeric id.

use genreg_token::{Grant, Role, Scope, PERSONAL_ACCESS_TOKEN_SCOPES};
use serde_json::{json, Value};

use super::rules;
use crate::api::params::Params;
use crate::api::projects::is_valid_path_segment;
use crate::api::users::{self, require_admin};
use crate::api::{iso8601, Context};
use crate::error::{ApiError, ApiResult};
use crate::http::{Request, Response};
use crate::meta::kv::KeyValue;
use crate::meta::model::Millis;
use crate::meta::tokens::{self, Holder, IssuedKind, NewToken, TokenRecord};
use crate::router::NumericId;

/// At most this many `projects` entries, so the token stays well within
/// [`genreg_token::MAX_TOKEN_LEN`].
pub const MAX_GRANTS: usize = 20;

/// The JSON GitLab answers for a personal access token (never the token
/// itself), plus `projects` (ours).
pub fn render(record: &TokenRecord, now: Millis) -> Value {
    let user_id = match record.holder {
        Holder::User(id) => Some(id),
        _ => None,
    };
    let projects: Vec<Value> = record
        .grants
        .iter()
        .map(|g| json!({ "project": g.project, "access_level": g.role.access_level() }))
        .collect();
    json!({
        "id": record.id,
        "name": record.name,
        "revoked": record.revoked,
        "created_at": iso8601(record.created_at),
        "description": null,
        "scopes": record.scopes,
        "user_id": user_id,
        "last_used_at": null,
        "active": record.is_active(now),
        "expires_at": record.expires_at.map(|at| iso8601(at)[..10].to_string()),
        "projects": projects,
    })
}

/// A grant's project selector: `*`, a numeric project id, a full project
/// path (`acme/tools`), or a namespace followed by `/*` (`acme/*`).
pub fn is_valid_selector(selector: &str) -> bool {
    if selector == "*" || selector.parse::<u64>().is_ok() {
        return true;
    }
    let (path, wildcard) = match selector.strip_suffix("/*") {
        Some(namespace) => (namespace, true),
        None => (selector, false),
    };
    let segments = path.split('/').count();
    (wildcard || segments >= 2) && segments <= 21 && path.split('/').all(is_valid_path_segment)
}

/// `projects`: a JSON array of `{"project", "access_level"}` objects;
/// `access_level` defaults to 30 (developer).
fn parse_grants(fields: &Params) -> ApiResult<Vec<Grant>> {
    let invalid = |why: &str| ApiError::InvalidParams(format!("projects {why}"));
    let Some(value) = fields.json_value("projects") else {
        if fields.has_form_field("projects") {
            return Err(invalid(
                "must be a JSON array of {\"project\", \"access_level\"} objects in a JSON body",
            ));
        }
        return Ok(Vec::new());
    };
    let Value::Array(items) = value else {
        return Err(invalid("must be an array"));
    };
    if items.len() > MAX_GRANTS {
        return Err(invalid(&format!("has more than {MAX_GRANTS} entries")));
    }
    items
        .iter()
        .map(|item| {
            let project = match item.get("project") {
                Some(Value::String(s)) => s.trim().trim_end_matches('/').to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(invalid("entries need a project")),
            };
            if !is_valid_selector(&project) {
                return Err(invalid("is invalid"));
            }
            let role = match item.get("access_level") {
                None | Some(Value::Null) => Role::Developer,
                Some(Value::String(s)) => {
                    Role::from_access_level_text(s).ok_or_else(|| invalid("is invalid"))?
                }
                Some(other) => Role::from_access_level_text(&other.to_string())
                    .ok_or_else(|| invalid("is invalid"))?,
            };
            Ok(Grant { project, role })
        })
        .collect()
}

struct CreatePersonalToken {
    name: String,
    scopes: Vec<(String, Scope)>,
    expires_at: Option<Millis>,
    grants: Vec<Grant>,
}

fn parse_create(fields: &Params) -> ApiResult<CreatePersonalToken> {
    let name = super::name_field(fields)?;
    let scopes = super::scopes_field(fields, PERSONAL_ACCESS_TOKEN_SCOPES)?;
    let expires_at = super::expires_at_field(fields)?;
    Ok(CreatePersonalToken {
        name,
        scopes,
        expires_at,
        grants: parse_grants(fields)?,
    })
}

/// `POST /users/:user_id/personal_access_tokens` (administrators).
pub fn create<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    user_id: NumericId,
    body: &[u8],
) -> ApiResult<Response> {
    let actor = require_admin(ctx, request)?;
    let user = users::find(ctx, user_id)?;
    let wanted = parse_create(&Params::parse(request, body)?)?;
    let now = ctx.now_millis();
    let expires_at = rules::access_token_expiry(
        wanted.expires_at,
        ctx.config.max_token_lifetime_days,
        rules::issuer_expiry(&actor),
        now,
    )?;

    let id = tokens::new_token_id(ctx.kv)?;
    super::issue(
        ctx,
        NewToken {
            id,
            kind: IssuedKind::Personal,
            holder: Holder::User(user.id),
            name: wanted.name,
            username: user.username,
            scopes: wanted.scopes.into_iter().map(|(name, _)| name).collect(),
            access_level: None,
            created_at: now,
            expires_at,
            grants: wanted.grants.clone(),
        },
        wanted.grants,
        render,
    )
}

/// `GET /personal_access_tokens?user_id=` (administrators): one user's
/// tokens, revoked ones included. (GitLab lists every user's without
/// `user_id`; here `user_id` is required, so a listing reads one user's
/// index and not the whole store.)
pub fn list<K: KeyValue>(ctx: &Context<K>, request: &Request) -> ApiResult<Response> {
    require_admin(ctx, request)?;
    let user_id = Params::query(request).required("user_id")?;
    let user = users::find(ctx, user_id.trim().parse().ok())?;
    super::page(
        ctx,
        request,
        IssuedKind::Personal,
        Holder::User(user.id),
        render,
    )
}

/// `GET /personal_access_tokens/:id` (administrators).
pub fn get<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    token_id: NumericId,
) -> ApiResult<Response> {
    require_admin(ctx, request)?;
    let record = find(ctx, token_id)?;
    Ok(Response::json(200, &render(&record, ctx.now_millis())))
}

/// `DELETE /personal_access_tokens/:id` (administrators): revokes the
/// token from the next request on; it stays listed, `revoked: true`.
pub fn revoke<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    token_id: NumericId,
) -> ApiResult<Response> {
    require_admin(ctx, request)?;
    let record = find(ctx, token_id)?;
    tokens::revoke_token(ctx.kv, &record, false)?;
    Ok(Response::new(204))
}

/// The personal access token record with this id.
fn find<K: KeyValue>(ctx: &Context<K>, token_id: NumericId) -> ApiResult<TokenRecord> {
    super::find(ctx, token_id, IssuedKind::Personal, |_| true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn fields(body: &str) -> Params {
        Params::from_json(body)
    }

    #[test]
    fn selectors_are_ids_paths_namespaces_or_everything() {
        for ok in ["*", "7", "acme/tools", "acme/*", "acme/platform/*", "a/b/c"] {
            assert!(is_valid_selector(ok), "{ok}");
        }
        for bad in [
            "",
            "tools",
            "/*",
            "acme/",
            "acme/../x",
            "acme/*/x",
            "a b/c",
            "**",
        ] {
            assert!(!is_valid_selector(bad), "{bad}");
        }
    }

    #[test]
    fn creation_fields_carry_scopes_and_grants() {
        let wanted = parse_create(&fields(
            r#"{"name":"laptop","scopes":["api"],"expires_at":"2030-01-31",
                "projects":[{"project":"acme/*","access_level":30},{"project":7,"access_level":"40"},{"project":"x/y"}]}"#,
        ))
        .unwrap();
        assert_eq!(wanted.name, "laptop");
        assert_eq!(wanted.scopes, vec![("api".to_string(), Scope::Api)]);
        assert!(wanted.expires_at.is_some());
        assert_eq!(
            wanted.grants,
            vec![
                Grant {
                    project: "acme/*".into(),
                    role: Role::Developer
                },
                Grant {
                    project: "7".into(),
                    role: Role::Maintainer
                },
                Grant {
                    project: "x/y".into(),
                    role: Role::Developer
                },
            ]
        );
        let bare = parse_create(&fields(r#"{"name":"n","scopes":"read_api"}"#)).unwrap();
        assert!(bare.grants.is_empty());
    }

    #[test]
    fn bad_creation_fields_are_refused() {
        for body in [
            r#"{"scopes":["api"]}"#,
            r#"{"name":"n"}"#,
            r#"{"name":"n","scopes":["write_package_registry"]}"#,
            r#"{"name":"n","scopes":["api"],"projects":"acme/*"}"#,
            r#"{"name":"n","scopes":["api"],"projects":[{"access_level":30}]}"#,
            r#"{"name":"n","scopes":["api"],"projects":[{"project":"acme/../x"}]}"#,
            r#"{"name":"n","scopes":["api"],"projects":[{"project":"acme/*","access_level":35}]}"#,
        ] {
            assert!(parse_create(&fields(body)).is_err(), "{body}");
        }
        let form = Request::new(Method::Post, "/x", vec![]);
        let form = Params::parse(
            &form,
            b"name=n&scopes[]=api&projects[][project]=acme/*&projects[][access_level]=30",
        )
        .unwrap();
        assert!(parse_create(&form).is_err());
    }

    #[test]
    fn the_json_is_gitlabs_with_the_grants() {
        let record = TokenRecord {
            id: 5,
            kind: IssuedKind::Personal,
            holder: Holder::User(2),
            name: "laptop".into(),
            username: "alice".into(),
            scopes: vec!["api".into()],
            access_level: None,
            created_at: 0,
            expires_at: Some(86_400_000),
            revoked: false,
            index_shard: 0,
            grants: vec![Grant {
                project: "acme/*".into(),
                role: Role::Developer,
            }],
        };
        let shown = render(&record, 1);
        assert_eq!(shown["user_id"], 2);
        assert_eq!(shown["expires_at"], "1970-01-02");
        assert_eq!(shown["active"], true);
        assert_eq!(
            shown["projects"],
            json!([{"project": "acme/*", "access_level": 30}])
        );
        assert!(shown.get("token").is_none());
    }
}
