//! What the token endpoints share: finding the project or group a token is
//! issued for, checking that the caller may administer it, and keeping
//! every issued token within what its issuer has.
//!
//! Rules (GitLab's, plus one of ours):
//! - project tokens need maintainer on the project, group tokens owner on
//!   the group (`auth::policy` decides who holds that, and answers
//!   401/403/404 otherwise);
//! - a token never carries a role above its issuer's, and (ours) never
//!   outlives the token that issued it;
//! - personal, project and group access tokens live at most
//!   `max_token_lifetime_days` (GitLab's maximum allowable lifetime, a year
//!   by default); deploy tokens, which GitLab lets live for ever, do not.

use genreg_token::Claims;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::api::Context;
use crate::auth::{policy, Actor, Right};
use crate::error::{ApiError, ApiResult};
use crate::meta::groups::Group;
use crate::meta::kv::KeyValue;
use crate::meta::model::{Millis, Project};
use crate::meta::tokens::Holder;
use crate::router::{GroupId, ProjectId};

/// A project or group `:id` as the path names it, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Project(ProjectId),
    Group(GroupId),
}

impl Target {
    /// The right GitLab requires to manage the target's tokens: maintainer
    /// on a project, owner of a group.
    pub fn right_to_manage_tokens(&self) -> Right {
        match self {
            Target::Project(_) => Right::Maintain,
            Target::Group(_) => Right::Own,
        }
    }
}

/// A project or group, found and administered by the caller.
pub enum Administered {
    Project(Project),
    Group(Group),
}

impl Administered {
    pub fn holder(&self) -> Holder {
        match self {
            Administered::Project(p) => Holder::Project(p.id),
            Administered::Group(g) => Holder::Group(g.id),
        }
    }

    /// The grant that reaches it: the project by id (so a project created
    /// later at the same path is not reached), or every project under the
    /// group, nested groups included.
    pub fn grant_selector(&self) -> String {
        match self {
            Administered::Project(p) => p.id.to_string(),
            Administered::Group(g) => format!("{}/*", g.full_path),
        }
    }

    /// The user name of an access token's bot, as GitLab names them.
    pub fn bot_name(&self, token_id: u64) -> String {
        match self {
            Administered::Project(p) => format!("project_{}_bot_{token_id}", p.id),
            Administered::Group(g) => format!("group_{}_bot_{token_id}", g.id),
        }
    }
}

/// Finds `target` for a caller who holds at least `needed` on it (the
/// policy answers otherwise). Returns it with the right held.
pub fn administered<K: KeyValue>(
    ctx: &Context<K>,
    actor: &Actor,
    target: &Target,
    needed: Right,
) -> ApiResult<(Administered, Right)> {
    policy::may_try(actor, needed)?;
    match target {
        Target::Project(project_id) => {
            let (project, held) = ctx.project_for(actor, project_id, needed)?;
            Ok((Administered::Project(project), held))
        }
        Target::Group(group_id) => {
            let (group, held) = ctx.group_for(actor, group_id, needed)?;
            Ok((Administered::Group(group), held))
        }
    }
}

/// Signs new claims (with the first of the configured secrets).
pub fn mint<K: KeyValue>(ctx: &Context<K>, claims: &Claims) -> String {
    ctx.config.token_secrets.sign(claims)
}

/// When the caller's own token expires, in milliseconds.
pub fn issuer_expiry(actor: &Actor) -> Option<Millis> {
    match actor {
        Actor::Token(claims) => claims
            .expires_at
            .map(|secs| i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000)),
        Actor::Anonymous => None,
    }
}

/// The expiry of a new token: the requested one, which must be in the
/// future and no later than the issuer's own; without a request, `default`
/// (if any) brought back to the issuer's expiry.
pub fn expiry_within_issuer(
    requested: Option<Millis>,
    default: Option<Millis>,
    issuer: Option<Millis>,
    now: Millis,
) -> ApiResult<Option<Millis>> {
    let expires = match (requested, issuer) {
        (Some(at), Some(limit)) if at > limit => {
            return Err(ApiError::BadRequest(
                "expires_at can't be later than the expiry of the token that creates it".into(),
            ))
        }
        (Some(at), _) => Some(at),
        (None, Some(limit)) => Some(default.map_or(limit, |d| d.min(limit))),
        (None, None) => default,
    };
    if expires.is_some_and(|at| at <= now) {
        return Err(ApiError::BadRequest(
            "expires_at must be in the future".into(),
        ));
    }
    Ok(expires)
}

/// GitLab's lifetime of an access token created without `expires_at`.
pub const DEFAULT_ACCESS_TOKEN_LIFETIME_DAYS: u64 = 365;

const DAY_MILLIS: Millis = 86_400_000;

fn days(count: u64) -> Millis {
    i64::try_from(count)
        .unwrap_or(i64::MAX)
        .saturating_mul(DAY_MILLIS)
}

/// The expiry of a new personal, project or group access token. A requested
/// expiry must fall on or before the last day the maximum lifetime allows
/// (`max_days` after today, UTC; GitLab compares dates too); without one the
/// token gets GitLab's default, a year, or the maximum if that is shorter.
/// Then the issuer's own expiry applies ([`expiry_within_issuer`]).
pub fn access_token_expiry(
    requested: Option<Millis>,
    max_days: Option<u64>,
    issuer: Option<Millis>,
    now: Millis,
) -> ApiResult<Option<Millis>> {
    if let (Some(at), Some(max_days)) = (requested, max_days) {
        let today = now.div_euclid(DAY_MILLIS).saturating_mul(DAY_MILLIS);
        let first_refused_day = today.saturating_add(days(max_days.saturating_add(1)));
        if at >= first_refused_day {
            return Err(ApiError::BadRequest(format!(
                "Expires at must be before {}",
                date_of(first_refused_day)
            )));
        }
    }
    let lifetime = max_days.map_or(DEFAULT_ACCESS_TOKEN_LIFETIME_DAYS, |max| {
        max.min(DEFAULT_ACCESS_TOKEN_LIFETIME_DAYS)
    });
    let default = now.saturating_add(days(lifetime));
    expiry_within_issuer(requested, Some(default), issuer, now)
}

/// `YYYY-MM-DD` (UTC) of a time in milliseconds.
fn date_of(millis: Millis) -> String {
    Timestamp::from_millisecond(millis)
        .map(|at| at.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| "9999-12-31".into())
}

/// Parses an `expires_at`: a date (`2030-01-31`, midnight UTC) or a time
/// (`2030-01-31T12:00:00Z`).
pub fn parse_expires_at(text: &str) -> ApiResult<Millis> {
    let invalid = || ApiError::InvalidParams("expires_at is invalid".into());
    let text = text.trim();
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at.as_millisecond());
    }
    let date: Date = text.parse().map_err(|_| invalid())?;
    let at = date.to_zoned(TimeZone::UTC).map_err(|_| invalid())?;
    Ok(at.timestamp().as_millisecond())
}

/// Milliseconds to the Unix seconds of token claims.
pub fn to_secs(millis: Millis) -> u64 {
    u64::try_from(millis.div_euclid(1000)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Millis = 86_400_000;

    #[test]
    fn expires_at_takes_dates_and_times() {
        assert_eq!(parse_expires_at("1970-01-02").unwrap(), DAY);
        assert_eq!(
            parse_expires_at("1970-01-02T00:00:01Z").unwrap(),
            DAY + 1000
        );
        assert_eq!(
            parse_expires_at("1970-01-02T00:00:01.500Z").unwrap(),
            DAY + 1500
        );
        assert!(parse_expires_at("tomorrow").is_err());
        assert!(parse_expires_at("2030-13-01").is_err());
    }

    #[test]
    fn access_tokens_live_at_most_the_maximum_lifetime() {
        // 2030-01-31T12:00:00Z
        let now = parse_expires_at("2030-01-31T12:00:00Z").unwrap();
        let at = |text: &str| Some(parse_expires_at(text).unwrap());
        // The last allowed day is today + 365, whatever the hour.
        assert_eq!(
            access_token_expiry(at("2031-01-31"), Some(365), None, now).unwrap(),
            at("2031-01-31")
        );
        assert_eq!(
            access_token_expiry(at("2031-01-31T23:59:59Z"), Some(365), None, now).unwrap(),
            at("2031-01-31T23:59:59Z")
        );
        let refused = access_token_expiry(at("2031-02-01"), Some(365), None, now).unwrap_err();
        assert_eq!(
            refused.body()["message"],
            "400 Bad request - Expires at must be before 2031-02-01"
        );
        assert!(access_token_expiry(at("2199-12-31"), Some(365), None, now).is_err());
        // No limit configured: any future date.
        assert_eq!(
            access_token_expiry(at("2199-12-31"), None, None, now).unwrap(),
            at("2199-12-31")
        );
        // Without a request: a year, or the maximum when shorter.
        assert_eq!(
            access_token_expiry(None, Some(365), None, now).unwrap(),
            Some(now + 365 * DAY)
        );
        assert_eq!(
            access_token_expiry(None, Some(30), None, now).unwrap(),
            Some(now + 30 * DAY)
        );
        assert_eq!(
            access_token_expiry(None, None, None, now).unwrap(),
            Some(now + 365 * DAY)
        );
        // The issuer's expiry still applies within the limit.
        assert_eq!(
            access_token_expiry(None, Some(365), Some(now + DAY), now).unwrap(),
            Some(now + DAY)
        );
        assert!(access_token_expiry(at("2030-03-01"), Some(365), Some(now + DAY), now).is_err());
    }

    #[test]
    fn a_token_never_outlives_its_issuer() {
        let now = 10 * DAY;
        // No issuer limit: the request or the default.
        assert_eq!(
            expiry_within_issuer(Some(20 * DAY), None, None, now).unwrap(),
            Some(20 * DAY)
        );
        assert_eq!(
            expiry_within_issuer(None, Some(30 * DAY), None, now).unwrap(),
            Some(30 * DAY)
        );
        assert_eq!(expiry_within_issuer(None, None, None, now).unwrap(), None);
        // An issuer that expires sooner caps the default and refuses later requests.
        let issuer = Some(15 * DAY);
        assert_eq!(
            expiry_within_issuer(None, Some(30 * DAY), issuer, now).unwrap(),
            Some(15 * DAY)
        );
        assert_eq!(
            expiry_within_issuer(None, None, issuer, now).unwrap(),
            Some(15 * DAY)
        );
        assert!(expiry_within_issuer(Some(16 * DAY), None, issuer, now).is_err());
        assert_eq!(
            expiry_within_issuer(Some(12 * DAY), None, issuer, now).unwrap(),
            Some(12 * DAY)
        );
        // The past is refused.
        assert!(expiry_within_issuer(Some(now), None, None, now).is_err());
    }
}
