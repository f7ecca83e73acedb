//! Users, as far as a package registry needs them: `POST /users`
//! (administrators), `GET /users/:id` and `GET /user` (the caller).
//!
//! A user here is only what administrators hand personal access tokens out
//! to (`personal_access_tokens`): an id, a username and a name. It has no
//! password, email or membership; what a user's token may do is in the
//! token's own grants.

use genreg_token::Claims;
use serde_json::{json, Value};

use super::params::Params;
use super::projects::is_valid_path_segment;
use super::{iso8601, Context};
use crate::auth::{policy, Actor, Right};
use crate::error::{ApiError, ApiResult};
use crate::http::{Request, Response};
use crate::meta::kv::KeyValue;
use crate::meta::tokens::{self, Holder, IssuedKind};
use crate::meta::users::{self, User};
use crate::router::NumericId;

/// GitLab's user JSON (the fields a registry has).
pub fn render(user: &User, public_url: &str) -> Value {
    json!({
        "id": user.id,
        "username": user.username,
        "name": user.name,
        "state": "active",
        "locked": false,
        "avatar_url": null,
        "web_url": format!("{public_url}/{}", user.username),
        "created_at": iso8601(user.created_at),
        "bio": "",
        "public_email": null,
        "bot": false,
        "is_admin": false,
    })
}

/// Administrators only: 401 without a token, 403 with anyone else's.
pub fn require_admin<K: KeyValue>(ctx: &Context<K>, request: &Request) -> ApiResult<Actor> {
    let actor = ctx.authenticate(request)?;
    policy::require_on_instance(&actor, Right::Administer)?;
    Ok(actor)
}

/// The user `:id` names (numeric ids only, as in GitLab).
pub fn find<K: KeyValue>(ctx: &Context<K>, id: NumericId) -> ApiResult<User> {
    let found = match id {
        Some(id) => users::user(ctx.kv, id)?,
        None => None,
    };
    found.ok_or(ApiError::NotFound("User Not Found"))
}

struct CreateUser {
    username: String,
    name: String,
}

fn parse_create(fields: &Params) -> ApiResult<CreateUser> {
    let username = fields.required("username")?;
    // GitLab's namespace rule, which project paths follow too.
    if !is_valid_path_segment(&username) {
        return Err(ApiError::FieldInvalid {
            field: "username",
            text: "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-', end in '.git' or end in '.atom'".into(),
        });
    }
    let name = fields.text("name").unwrap_or_else(|| username.clone());
    if name.len() > 255 {
        return Err(ApiError::FieldInvalid {
            field: "name",
            text: "is too long (maximum is 255 characters)".into(),
        });
    }
    Ok(CreateUser { username, name })
}

/// `POST /users`: `username` (required) and `name` (default: the
/// username). Other GitLab fields (`email`, `password`, ...) are ignored.
pub fn create<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    body: &[u8],
) -> ApiResult<Response> {
    require_admin(ctx, request)?;
    let wanted = parse_create(&Params::parse(request, body)?)?;
    let created = users::create_user(ctx.kv, &wanted.username, &wanted.name, ctx.now_millis())?;
    match created {
        Some(user) => Ok(Response::json(201, &render(&user, &ctx.config.public_url))),
        // GitLab answers a taken username with 409.
        None => Ok(Response::json(
            409,
            &json!({ "message": "Username has already been taken" }),
        )),
    }
}

/// `GET /users/:id`, for administrators and personal tokens (deploy and job
/// tokens have no business with users).
pub fn get<K: KeyValue>(ctx: &Context<K>, request: &Request, id: NumericId) -> ApiResult<Response> {
    policy::require_on_instance(&ctx.authenticate(request)?, Right::Download)?;
    let user = find(ctx, id)?;
    Ok(Response::json(200, &render(&user, &ctx.config.public_url)))
}

/// `GET /user`: the caller, as python-gitlab's `gl.auth()` asks for it.
///
/// A personal access token issued to a user answers that user. Tokens not
/// tied to a user record answer a stand-in: an access token its bot user
/// (`id` the token's id, as its `user_id` says; `username`
/// `project_<id>_bot_<token id>`; `bot: true`), a token minted with
/// `genreg token create` (the administrator's among them) its subject, with
/// `id` 0, which no user has. Anonymous callers get 401; so do deploy and
/// job tokens, which GitLab does not accept on this endpoint; personal
/// tokens without `api` or `read_api` get 403, as in GitLab.
pub fn current<K: KeyValue>(ctx: &Context<K>, request: &Request) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let claims = policy::current_user(&actor)?;
    let public_url = &ctx.config.public_url;
    let mut shown = match issued_record_user(ctx, claims)? {
        Some(shown) => shown,
        None => {
            let mut shown = render(
                &User {
                    id: 0,
                    username: claims.subject.clone(),
                    name: claims.subject.clone(),
                    created_at: i64::try_from(claims.issued_at)
                        .unwrap_or(0)
                        .saturating_mul(1000),
                },
                public_url,
            );
            shown["is_admin"] = Value::Bool(claims.admin);
            shown
        }
    };
    // What GitLab adds for the caller's own record.
    let own = json!({
        "email": null,
        "commit_email": null,
        "confirmed_at": shown["created_at"],
        "last_sign_in_at": null,
        "current_sign_in_at": null,
        "last_activity_on": null,
        "identities": [],
        "projects_limit": 0,
        "can_create_group": false,
        "can_create_project": claims.admin,
        "two_factor_enabled": false,
        "external": false,
        "private_profile": false,
    });
    if let (Value::Object(shown), Value::Object(own)) = (&mut shown, own) {
        shown.extend(own);
    }
    Ok(Response::json(200, &shown))
}

/// The user a token issued through the API stands for: the user of a
/// personal access token, the bot user of an access token. `None` for
/// tokens without a record (whose `jti` is no record id of theirs).
fn issued_record_user<K: KeyValue>(ctx: &Context<K>, claims: &Claims) -> ApiResult<Option<Value>> {
    let Ok(id) = claims.id.parse::<u64>() else {
        return Ok(None);
    };
    let Some(record) = tokens::token(ctx.kv, id)? else {
        return Ok(None);
    };
    if record.username != claims.subject {
        return Ok(None);
    }
    let public_url = &ctx.config.public_url;
    match (record.kind, record.holder) {
        (IssuedKind::Personal, Holder::User(user_id)) => {
            Ok(users::user(ctx.kv, user_id)?.map(|user| render(&user, public_url)))
        }
        (IssuedKind::Access, _) => {
            let bot = User {
                id: record.id,
                username: record.username.clone(),
                name: record.name.clone(),
                created_at: record.created_at,
            };
            let mut shown = render(&bot, public_url);
            shown["bot"] = Value::Bool(true);
            Ok(Some(shown))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: &str) -> Params {
        Params::from_json(body)
    }

    #[test]
    fn users_need_a_valid_username() {
        let wanted = parse_create(&fields(r#"{"username":"alice","email":"a@x"}"#)).unwrap();
        assert_eq!(wanted.name, "alice");
        let wanted = parse_create(&fields(r#"{"username":"bob.b","name":"Bob B"}"#)).unwrap();
        assert_eq!(
            (wanted.username.as_str(), wanted.name.as_str()),
            ("bob.b", "Bob B")
        );
        for body in [
            r#"{}"#,
            r#"{"username":""}"#,
            r#"{"username":"-x"}"#,
            r#"{"username":"a/b"}"#,
            r#"{"username":"x.git"}"#,
        ] {
            assert!(parse_create(&fields(body)).is_err(), "{body}");
        }
    }

    #[test]
    fn users_render_like_gitlab() {
        let user = User {
            id: 3,
            username: "alice".into(),
            name: "Alice".into(),
            created_at: 0,
        };
        let shown = render(&user, "https://r.example");
        assert_eq!(shown["web_url"], "https://r.example/alice");
        assert_eq!(shown["state"], "active");
        assert_eq!(shown["created_at"], "1970-01-01T00:00:00.000Z");
    }
}
