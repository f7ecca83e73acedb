//! `POST /projects/:id/job_tokens` (ours, not GitLab): a short-lived CI job
//! token for CI systems other than GitLab's, from a maintainer.
//!
//! The token publishes and downloads in its one project, through `JOB-TOKEN`
//! or Basic `gitlab-ci-token:<token>`. It is not recorded: it cannot be
//! listed or revoked one by one, which its short life (default an hour, at
//! most a day) makes up for.

use genreg_token::{Claims, Grant, Kind, Role};
use serde_json::json;

use super::rules::{self, Target};
use crate::api::params::{self, Params};
use crate::api::{iso8601, Context};
use crate::auth::Right;
use crate::error::ApiResult;
use crate::http::{Request, Response};
use crate::meta::kv::KeyValue;
use crate::router::ProjectId;

pub const DEFAULT_EXPIRES_IN_SECS: u64 = 3600;
pub const MAX_EXPIRES_IN_SECS: u64 = 86_400;

/// `expires_in`: whole seconds from 1 to a day.
fn parse_expires_in(fields: &Params) -> ApiResult<u64> {
    match fields.text("expires_in") {
        None => Ok(DEFAULT_EXPIRES_IN_SECS),
        Some(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=MAX_EXPIRES_IN_SECS).contains(s))
            .ok_or_else(|| params::invalid_value("expires_in")),
    }
}

pub fn create<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: ProjectId,
    body: &[u8],
) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let target = Target::Project(project_id);
    let (project, _) = rules::administered(ctx, &actor, &target, Right::Maintain)?;
    let expires_in = parse_expires_in(&Params::parse(request, body)?)?;
    let now = ctx.now_millis();
    let requested = now.saturating_add(i64::try_from(expires_in * 1000).unwrap_or(i64::MAX));
    let expires_at =
        rules::expiry_within_issuer(None, Some(requested), rules::issuer_expiry(&actor), now)?
            .unwrap_or(requested);
    let claims = Claims {
        id: format!("job-{}", hex::encode((ctx.random)())),
        kind: Kind::Job,
        subject: format!("job@{}", project.grant_selector()),
        scopes: Vec::new(),
        grants: vec![Grant {
            project: project.grant_selector(),
            role: Role::Developer,
        }],
        admin: false,
        issued_at: rules::to_secs(now),
        expires_at: Some(rules::to_secs(expires_at)),
    };
    let token = rules::mint(ctx, &claims);
    Ok(Response::json(
        201,
        &json!({ "token": token, "expires_at": iso8601(expires_at) }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn expires_in(query: &str) -> ApiResult<u64> {
        let request = Request::new(Method::Post, &format!("/x?{query}"), vec![]);
        parse_expires_in(&Params::parse(&request, b"").unwrap())
    }

    #[test]
    fn expires_in_defaults_to_an_hour_and_stays_within_a_day() {
        assert_eq!(expires_in("").unwrap(), 3600);
        assert_eq!(expires_in("expires_in=60").unwrap(), 60);
        assert_eq!(expires_in("expires_in=86400").unwrap(), 86_400);
        for bad in ["0", "86401", "-5", "1h", "1.5"] {
            assert!(expires_in(&format!("expires_in={bad}")).is_err(), "{bad}");
        }
    }
}
