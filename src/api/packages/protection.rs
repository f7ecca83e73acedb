//! `/projects/:id/packages/protection/rules`: GitLab's package protection
//! rules, and the checks that enforce them on publish and delete.

use serde_json::{json, Value};

use crate::api::params::{self, Params};
use crate::api::Context;
use crate::auth::{policy, Actor, Right};
use crate::error::{ApiError, ApiResult};
use crate::http::{Request, Response};
use crate::meta::kv::KeyValue;
use crate::meta::model::Project;
use crate::meta::protection::{self, MinimumAccess, ProtectionRule, RuleError};
use crate::router::{NumericId, ProjectId};

const PUSH_PROTECTED: &str = "Package protected.";
const DELETE_PROTECTED: &str = "Package is deletion protected.";

/// Refuses a publish that a matching rule protects against this caller.
pub fn check_push<K: KeyValue>(
    ctx: &Context<K>,
    actor: &Actor,
    project: &Project,
    name: &str,
) -> ApiResult<()> {
    check(
        ctx,
        actor,
        project,
        |rules| protection::demands(rules, name).0,
        PUSH_PROTECTED,
    )
}

/// Refuses a deletion that a matching rule protects against this caller.
pub fn check_delete<K: KeyValue>(
    ctx: &Context<K>,
    actor: &Actor,
    project: &Project,
    name: &str,
) -> ApiResult<()> {
    check(
        ctx,
        actor,
        project,
        |rules| protection::demands(rules, name).1,
        DELETE_PROTECTED,
    )
}

fn check<K: KeyValue>(
    ctx: &Context<K>,
    actor: &Actor,
    project: &Project,
    demand: impl Fn(&[ProtectionRule]) -> Option<MinimumAccess>,
    refusal: &'static str,
) -> ApiResult<()> {
    let rules = protection::rules(ctx.kv, project.id)?;
    match demand(&rules) {
        Some(minimum) if !policy::passes_protection(actor, project, minimum) => {
            Err(ApiError::ForbiddenBecause(refusal))
        }
        _ => Ok(()),
    }
}

fn entity(rule: &ProtectionRule) -> Value {
    json!({
        "id": rule.id,
        "project_id": rule.project_id,
        "package_name_pattern": rule.package_name_pattern,
        "package_type": rule.package_type,
        "minimum_access_level_for_push": rule.minimum_access_level_for_push.map(MinimumAccess::as_str),
        "minimum_access_level_for_delete": rule.minimum_access_level_for_delete.map(MinimumAccess::as_str),
    })
}

/// Managing rules needs a maintainer.
fn managed_project<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
) -> ApiResult<Project> {
    let actor = ctx.authenticate(request)?;
    let (project, _) = ctx.project_for(&actor, project_id, Right::Maintain)?;
    Ok(project)
}

/// The fields of a create or update; `None` where not given, and
/// `Some(None)` for a level explicitly set to null (or empty).
#[derive(Debug, Default)]
struct RuleFields {
    package_name_pattern: Option<String>,
    package_type: Option<String>,
    minimum_access_level_for_push: Option<Option<String>>,
    minimum_access_level_for_delete: Option<Option<String>>,
}

fn parse_fields(request: &Request, body: &[u8]) -> ApiResult<RuleFields> {
    let params = Params::parse(request, body)?;
    Ok(RuleFields {
        package_name_pattern: params.raw_text("package_name_pattern"),
        package_type: params.raw_text("package_type"),
        minimum_access_level_for_push: params.nullable_text("minimum_access_level_for_push"),
        minimum_access_level_for_delete: params.nullable_text("minimum_access_level_for_delete"),
    })
}

/// Applies the given fields to `rule`, validating each.
fn apply(fields: RuleFields, rule: &mut ProtectionRule) -> ApiResult<()> {
    let mut invalid = Vec::new();
    if let Some(pattern) = fields.package_name_pattern {
        if pattern.is_empty() || pattern.len() > 255 {
            invalid.push("package_name_pattern is invalid".to_string());
        }
        rule.package_name_pattern = pattern;
    }
    if let Some(package_type) = fields.package_type {
        if !["generic", "npm", "pypi", "maven", "conan", "helm", "nuget"]
            .contains(&package_type.as_str())
        {
            invalid.push(params::invalid_value_message("package_type"));
        }
        rule.package_type = package_type;
    }
    let level = |value: Option<String>, allowed: &[MinimumAccess]| {
        value
            .map(|v| {
                MinimumAccess::parse(&v)
                    .filter(|m| allowed.contains(m))
                    .ok_or(())
            })
            .transpose()
    };
    use MinimumAccess::*;
    if let Some(push) = fields.minimum_access_level_for_push {
        match level(push, &[Maintainer, Owner, Admin]) {
            Ok(push) => rule.minimum_access_level_for_push = push,
            Err(()) => invalid.push(params::invalid_value_message(
                "minimum_access_level_for_push",
            )),
        }
    }
    if let Some(delete) = fields.minimum_access_level_for_delete {
        match level(delete, &[Owner, Admin]) {
            Ok(delete) => rule.minimum_access_level_for_delete = delete,
            Err(()) => invalid.push(params::invalid_value_message(
                "minimum_access_level_for_delete",
            )),
        }
    }
    if !invalid.is_empty() {
        return Err(ApiError::InvalidParams(invalid.join(", ")));
    }
    if rule.minimum_access_level_for_push.is_none()
        && rule.minimum_access_level_for_delete.is_none()
    {
        return Err(ApiError::InvalidParams(
            "minimum_access_level_for_push, minimum_access_level_for_delete are missing, at least one parameter must be provided".into(),
        ));
    }
    Ok(())
}

fn rule_error(e: RuleError) -> ApiError {
    match e {
        RuleError::Taken => {
            ApiError::BadRequest("Package name pattern has already been taken".into())
        }
        RuleError::TooMany => ApiError::BadRequest(format!(
            "a project has at most {} protection rules",
            protection::MAX_RULES
        )),
        RuleError::NotFound => ApiError::not_found(),
        RuleError::Meta(e) => ApiError::internal(e),
    }
}

pub fn list<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
) -> ApiResult<Response> {
    let project = managed_project(ctx, request, project_id)?;
    let rules = protection::rules(ctx.kv, project.id)?;
    Ok(Response::json(
        200,
        &rules.iter().map(entity).collect::<Vec<_>>(),
    ))
}

pub fn create<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    body: &[u8],
) -> ApiResult<Response> {
    let project = managed_project(ctx, request, project_id)?;
    let fields = parse_fields(request, body)?;
    let mut missing = Vec::new();
    if fields.package_name_pattern.is_none() {
        missing.push(params::missing_message("package_name_pattern"));
    }
    if fields.package_type.is_none() {
        missing.push(params::missing_message("package_type"));
    }
    if !missing.is_empty() {
        return Err(ApiError::InvalidParams(missing.join(", ")));
    }
    let mut rule = ProtectionRule {
        id: 0,
        project_id: project.id,
        package_name_pattern: String::new(),
        package_type: String::new(),
        minimum_access_level_for_push: None,
        minimum_access_level_for_delete: None,
    };
    apply(fields, &mut rule)?;
    let saved = protection::save(ctx.kv, rule).map_err(rule_error)?;
    Ok(Response::json(201, &entity(&saved)))
}

fn find_rule<K: KeyValue>(
    ctx: &Context<K>,
    project: &Project,
    rule_id: NumericId,
) -> ApiResult<ProtectionRule> {
    protection::rules(ctx.kv, project.id)?
        .into_iter()
        .find(|r| Some(r.id) == rule_id)
        .ok_or_else(ApiError::not_found)
}

pub fn update<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    rule_id: NumericId,
    body: &[u8],
) -> ApiResult<Response> {
    let project = managed_project(ctx, request, project_id)?;
    let mut rule = find_rule(ctx, &project, rule_id)?;
    apply(parse_fields(request, body)?, &mut rule)?;
    let saved = protection::save(ctx.kv, rule).map_err(rule_error)?;
    Ok(Response::json(200, &entity(&saved)))
}

pub fn delete<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    project_id: &ProjectId,
    rule_id: NumericId,
) -> ApiResult<Response> {
    let project = managed_project(ctx, request, project_id)?;
    let rule = find_rule(ctx, &project, rule_id)?;
    protection::remove(ctx.kv, project.id, rule.id).map_err(rule_error)?;
    Ok(Response::new(204))
}
