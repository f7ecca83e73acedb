//! `POST /api/graphql`: the part of GitLab's GraphQL API that package
//! settings are managed through.
//!
//! - `mutation { updateNamespacePackageSettings(input: {namespacePath,
//!   genericDuplicatesAllowed, genericDuplicateExceptionRegex}) {
//!   packageSettings { ... } errors } }`
//! - `mutation { updatePackagesCleanupPolicy(input: {projectPath,
//!   keepNDuplicatedPackageFiles}) { packagesCleanupPolicy { ... } errors } }`
//! - `query { namespace(fullPath) { packageSettings { ... } } }` (also
//!   `group`), and `query { project(fullPath) { packagesCleanupPolicy { ... } } }`
//!
//! As in GraphQL, the answer is 200 with `data` and, when something failed,
//! `errors`. A document that cannot run (broken, too large, nested too
//! deep) answers 200 with `errors` alone, as GitLab does.

use serde_json::{json, Map, Value};

use super::groups::settings::{self, SettingsChange};
use super::Context;
use crate::auth::{policy, Actor, Right};
use crate::error::{ApiError, ApiResult};
use crate::graphql_engine::{self as graphql, Field, OperationKind};
use crate::http::{Request, Response};
use crate::meta::cleanup::{self, CleanupPolicy, KeepFiles};
use crate::meta::groups::{self, GroupRef};
use crate::meta::kv::KeyValue;
use crate::meta::model::NamespaceSettings;
use crate::meta::{self, ProjectRef};

/// GitLab's answer for anything the caller may not see or change.
const NO_ACCESS: &str = "The resource that you are attempting to access does not exist or you don't have permission to perform this action";

/// GitLab's `PackagesCleanupKeepDuplicatedPackageFilesEnum`.
const KEEP_ENUM: &[(&str, KeepFiles)] = &[
    ("ALL_PACKAGE_FILES", KeepFiles::All),
    ("ONE_PACKAGE_FILE", KeepFiles::Newest(1)),
    ("TEN_PACKAGE_FILES", KeepFiles::Newest(10)),
    ("TWENTY_PACKAGE_FILES", KeepFiles::Newest(20)),
    ("THIRTY_PACKAGE_FILES", KeepFiles::Newest(30)),
    ("FORTY_PACKAGE_FILES", KeepFiles::Newest(40)),
    ("FIFTY_PACKAGE_FILES", KeepFiles::Newest(50)),
];

pub fn handle<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    body: &[u8],
) -> ApiResult<Response> {
    let actor = ctx.authenticate(request)?;
    let body: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::BadRequest("the body must be a JSON object with a query".into()))?;
    let Some(query) = body["query"].as_str() else {
        return Ok(Response::json(
            200,
            &json!({"errors": [{"message": "No query string was present"}]}),
        ));
    };
    let variables = body["variables"].as_object().cloned().unwrap_or_default();
    let operation = match graphql::parse(query, max_depth(&actor)) {
        Ok(operation) => operation,
        Err(message) => {
            return Ok(Response::json(
                200,
                &json!({"errors": [{"message": message}]}),
            ))
        }
    };
    let mut data = Map::new();
    let mut errors = Vec::new();
    for field in &operation.selections {
        let arguments: Map<String, Value> = field
            .arguments
            .iter()
            .map(|(name, value)| (name.clone(), value.resolve(&variables)))
            .collect();
        let resolved = match operation.kind {
            OperationKind::Mutation => mutation(ctx, &actor, field, &arguments),
            OperationKind::Query => query_field(ctx, &actor, field, &arguments),
        };
        match resolved {
            Ok(value) => {
                data.insert(
                    field.key().to_string(),
                    graphql::select(&value, &field.selections),
                );
            }
            Err(message) => {
                data.insert(field.key().to_string(), Value::Null);
                errors.push(json!({"message": message, "path": [field.key()]}));
            }
        }
    }
    let mut answer = json!({ "data": data });
    if !errors.is_empty() {
        answer["errors"] = json!(errors);
    }
    Ok(Response::json(200, &answer))
}

/// GitLab lets callers who present a token nest deeper than anonymous ones.
fn max_depth(actor: &Actor) -> usize {
    match actor {
        Actor::Anonymous => graphql::ANONYMOUS_MAX_DEPTH,
        Actor::Token(_) => graphql::AUTHENTICATED_MAX_DEPTH,
    }
}

fn settings_object(settings: &NamespaceSettings) -> Value {
    json!({
        "genericDuplicatesAllowed": settings.generic_duplicates_allowed,
        "genericDuplicateExceptionRegex": settings.generic_duplicate_exception_regex,
    })
}

fn policy_object(policy: &CleanupPolicy) -> Value {
    let name = KEEP_ENUM
        .iter()
        .find(|(_, keep)| *keep == policy.keep_n_duplicated_package_files)
        .map(|(name, _)| *name);
    json!({ "keepNDuplicatedPackageFiles": name, "nextRunAt": null })
}

fn input(arguments: &Map<String, Value>) -> Result<&Map<String, Value>, String> {
    arguments["input"]
        .as_object()
        .ok_or_else(|| "the mutation needs an input object".to_string())
}

fn text<'a>(object: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    object
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{name} is missing"))
}

fn mutation<K: KeyValue>(
    ctx: &Context<K>,
    actor: &Actor,
    field: &Field,
    arguments: &Map<String, Value>,
) -> Result<Value, String> {
    match field.name.as_str() {
        "updateNamespacePackageSettings" => {
            let input = input(arguments)?;
            let path = text(input, "namespacePath")?;
            let group = groups::group(ctx.kv, &GroupRef::Path(path.to_string()))
                .map_err(|e| e.to_string())?
                .ok_or(NO_ACCESS)?;
            let change = SettingsChange {
                generic_duplicates_allowed: input
                    .get("genericDuplicatesAllowed")
                    .and_then(Value::as_bool),
                generic_duplicate_exception_regex: input
                    .get("genericDuplicateExceptionRegex")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            };
            let held = ctx
                .right_on_group(actor, &group, settings::CHANGE)
                .map_err(|e| e.to_string())?;
            if held < Some(settings::CHANGE) {
                return Err(NO_ACCESS.into());
            }
            match settings::change(ctx, &group, change) {
                Ok(settings) => Ok(json!({
                    "packageSettings": settings_object(&settings),
                    "errors": [],
                    "clientMutationId": input.get("clientMutationId"),
                })),
                Err(ApiError::FieldInvalid { text, .. }) => Ok(json!({
                    "packageSettings": null,
                    "errors": [format!("Generic duplicate exception regex {text}")],
                    "clientMutationId": input.get("clientMutationId"),
                })),
                Err(ApiError::Internal(e)) => Err(e),
                Err(_) => Err(NO_ACCESS.into()),
            }
        }
        "updatePackagesCleanupPolicy" => {
            let input = input(arguments)?;
            let path = text(input, "projectPath")?;
            let project = meta::project(ctx.kv, &ProjectRef::Path(path.to_string()))
                .map_err(|e| e.to_string())?
                .filter(|p| policy::on_project(actor, p) >= Some(Right::Maintain))
                .ok_or(NO_ACCESS)?;
            let mut policy = cleanup::policy(ctx.kv, project.id).map_err(|e| e.to_string())?;
            if let Some(keep) = input.get("keepNDuplicatedPackageFiles") {
                let keep = keep.as_str().unwrap_or_default();
                policy.keep_n_duplicated_package_files = KEEP_ENUM
                    .iter()
                    .find(|(name, _)| *name == keep)
                    .map(|(_, keep)| *keep)
                    .ok_or_else(|| {
                        format!("keepNDuplicatedPackageFiles has an invalid value ({keep})")
                    })?;
            }
            cleanup::set_policy(ctx.kv, project.id, policy).map_err(|e| e.to_string())?;
            Ok(json!({
                "packagesCleanupPolicy": policy_object(&policy),
                "errors": [],
                "clientMutationId": input.get("clientMutationId"),
            }))
        }
        other => Err(format!("Field '{other}' doesn't exist on type 'Mutation'")),
    }
}

fn query_field<K: KeyValue>(
    ctx: &Context<K>,
    actor: &Actor,
    field: &Field,
    arguments: &Map<String, Value>,
) -> Result<Value, String> {
    let full_path = arguments
        .get("fullPath")
        .and_then(Value::as_str)
        .ok_or("fullPath is missing")?;
    match field.name.as_str() {
        "namespace" | "group" => {
            let Some(group) = groups::group(ctx.kv, &GroupRef::Path(full_path.to_string()))
                .map_err(|e| e.to_string())?
            else {
                return Ok(Value::Null);
            };
            let held = ctx
                .right_on_group(actor, &group, settings::READ)
                .map_err(|e| e.to_string())?;
            if held < Some(settings::READ) {
                return Ok(Value::Null);
            }
            match settings::read(ctx, &group) {
                Ok(settings) => Ok(json!({
                    "id": format!("gid://gitlab/Group/{}", group.id),
                    "fullPath": group.full_path,
                    "packageSettings": settings_object(&settings),
                })),
                Err(ApiError::Internal(e)) => Err(e),
                Err(_) => Ok(Value::Null),
            }
        }
        "project" => {
            let project = meta::project(ctx.kv, &ProjectRef::Path(full_path.to_string()))
                .map_err(|e| e.to_string())?
                .filter(|p| policy::on_project(actor, p).is_some());
            let Some(project) = project else {
                return Ok(Value::Null);
            };
            let policy = cleanup::policy(ctx.kv, project.id).map_err(|e| e.to_string())?;
            Ok(json!({
                "id": format!("gid://gitlab/Project/{}", project.id),
                "fullPath": project.full_path(),
                "packagesCleanupPolicy": policy_object(&policy),
            }))
        }
        other => Err(format!("Field '{other}' doesn't exist on type 'Query'")),
    }
}
