//! A namespace's package settings (duplicates): `GET`/`PUT
//! /groups/:id/packages/settings` here, and the same through GraphQL's
//! `updateNamespacePackageSettings` in [`crate::api::graphql`].

use serde_json::{json, Value};

use crate::api::params::Params;
use crate::api::Context;
use crate::auth::policy::{self, Unseen};
use crate::auth::Right;
use crate::error::{ApiError, ApiResult};
use crate::http::{Request, Response};
use crate::meta::groups::Group;
use crate::meta::kv::KeyValue;
use crate::meta::model::NamespaceSettings;
use crate::meta::{self};
use crate::router::GroupId;

/// GitLab's limit on `generic_duplicate_exception_regex`.
pub const MAX_REGEX_LEN: usize = 255;

pub fn entity(settings: &NamespaceSettings) -> Value {
    json!({
        "generic_duplicates_allowed": settings.generic_duplicates_allowed,
        "generic_duplicate_exception_regex": settings.generic_duplicate_exception_regex,
    })
}

/// A change to the settings; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct SettingsChange {
    pub generic_duplicates_allowed: Option<bool>,
    pub generic_duplicate_exception_regex: Option<String>,
}

/// Why a change was refused: the field and GitLab's wording.
pub fn check_regex(regex: &str) -> Result<(), String> {
    if regex.chars().count() > MAX_REGEX_LEN {
        return Err(format!(
            "is too long (maximum is {MAX_REGEX_LEN} characters)"
        ));
    }
    crate::validate::compile_exception_regex(regex)
        .map(|_| ())
        .map_err(|_| "not valid RE2 syntax".to_string())
}

/// Reading the settings needs only to see the group; changing them needs
/// its owner.
pub const READ: Right = Right::See;
pub const CHANGE: Right = Right::Own;

/// The settings of the namespace (the caller's right on the group checked).
pub fn read<K: KeyValue>(ctx: &Context<K>, group: &Group) -> ApiResult<NamespaceSettings> {
    meta::namespace_settings(ctx.kv, &group.full_path).map_err(ApiError::internal)
}

/// Applies a change (the caller's right on the group checked).
pub fn change<K: KeyValue>(
    ctx: &Context<K>,
    group: &Group,
    change: SettingsChange,
) -> ApiResult<NamespaceSettings> {
    if let Some(regex) = &change.generic_duplicate_exception_regex {
        check_regex(regex).map_err(|text| ApiError::FieldInvalid {
            field: "generic_duplicate_exception_regex",
            text,
        })?;
    }
    meta::change_namespace_settings(ctx.kv, &group.full_path, |settings| {
        if let Some(allowed) = change.generic_duplicates_allowed {
            settings.generic_duplicates_allowed = allowed;
        }
        if let Some(regex) = &change.generic_duplicate_exception_regex {
            settings.generic_duplicate_exception_regex = regex.clone();
        }
    })
    .map_err(ApiError::internal)
}

pub fn get<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    group_id: &GroupId,
) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let (group, _) = ctx.group_for(&actor, group_id, READ)?;
    Ok(Response::json(200, &entity(&read(ctx, &group)?)))
}

pub fn put<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    group_id: &GroupId,
    body: &[u8],
) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let group = ctx.find_group(group_id)?;
    policy::may_try(&actor, CHANGE)?;
    let held = ctx.right_on_group(&actor, &group, CHANGE)?;
    // The settings of a namespace are no secret: 403, not 404, for those
    // who cannot see the group.
    policy::decide(&actor, held, CHANGE, Unseen::Forbidden)?;
    let fields = Params::parse(request, body)?;
    let allowed = match fields.text("generic_duplicates_allowed").as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(ApiError::InvalidParams(
                "generic_duplicates_allowed is invalid".into(),
            ))
        }
    };
    let regex = fields.raw_text("generic_duplicate_exception_regex");
    let settings = change(
        ctx,
        &group,
        SettingsChange {
            generic_duplicates_allowed: allowed,
            generic_duplicate_exception_regex: regex,
        },
    )?;
    Ok(Response::json(200, &entity(&settings)))
}

#[cfg(test)]
mod tests {
    use super::check_regex;

    #[test]
    fn exception_regexes_must_be_short_and_valid() {
        assert!(check_regex(".*-SNAPSHOT").is_ok());
        for ordinary in [r"\d+\.\d+\.\d+", r"\w+-SNAPSHOT", r"\s*release"] {
            assert!(check_regex(ordinary).is_ok(), "{ordinary}");
        }
        assert!(check_regex("").is_ok());
        assert_eq!(
            check_regex("(unclosed").unwrap_err(),
            "not valid RE2 syntax"
        );
        assert!(check_regex(&"a".repeat(256))
            .unwrap_err()
            .starts_with("is too long"));
    }
}
