//! The one authorization policy: what a caller holds on a project, a group
//! or the instance, as one ranked [`Right`], and how a missing right is
//! answered (GitLab's 401/403/404 rules). No other module compares roles,
//! scopes or token kinds.
//!
//! The rules, from the credentials alone:
//! - administrators hold every right everywhere;
//! - personal tokens with scope `api` act with the role their grants give
//!   (guest and reporter download, developer publishes, maintainer
//!   maintains, owner owns); with other reading scopes they download; with
//!   none they only see what their grants name;
//! - deploy tokens publish with `write_package_registry`, download with
//!   `read_package_registry`, and otherwise only see their projects;
//! - job tokens publish in the project they are bound to;
//! - anyone downloads from a public project.
//!
//! A caller who holds no right does not see the thing at all: it answers
//! 404 (or what [`Unseen`] says), or 401 to an anonymous caller when
//! signing in could help. A caller who sees it but holds too little gets
//! 403. Endpoints that only make sense signed in (publishing, managing
//! tokens and settings) refuse anonymous callers first ([`may_try`]).
//!
//! Groups show themselves to readers through a project in them; managing
//! one needs a grant on it ([`on_group`]).

use genreg_token::{Claims, Kind, Role, Scope};

use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::meta::model::{Project, Visibility};
use crate::meta::protection::MinimumAccess;

/// What a caller may do, lowest first: each right includes those below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Right {
    /// Knows it exists (its record), nothing more: reading its packages
    /// answers 403, not 404.
    See,
    /// Reads and downloads its packages.
    Download,
    /// Publishes packages.
    Publish,
    /// Deletes packages, changes settings and rules, issues project tokens.
    Maintain,
    /// Changes group settings, issues group tokens.
    Own,
    /// Everything, creating and deleting projects and users included.
    Administer,
}

impl Right {
    /// The right a role gives to a caller who acts with it.
    pub fn of_role(role: Role) -> Right {
        match role {
            Role::Guest | Role::Reporter => Right::Download,
            Role::Developer => Right::Publish,
            Role::Maintainer => Right::Maintain,
            Role::Owner => Right::Own,
        }
    }

    /// The right a protection rule's minimum access level demands.
    pub fn of_minimum_access(minimum: MinimumAccess) -> Right {
        match minimum {
            MinimumAccess::Maintainer => Right::Maintain,
            MinimumAccess::Owner => Right::Own,
            MinimumAccess::Admin => Right::Administer,
        }
    }
}

/// The most an anonymous caller can ever hold (on a public project).
const ANONYMOUS_MOST: Right = Right::Download;

/// What the caller holds on a project; `None`: the project does not exist
/// for them.
pub fn on_project(actor: &Actor, project: &Project) -> Option<Right> {
    let public = project.visibility == Visibility::Public;
    let anyone = public.then_some(Right::Download);
    let claims = match actor {
        Actor::Anonymous => return anyone,
        Actor::Token(claims) if claims.admin => return Some(Right::Administer),
        Actor::Token(claims) => claims,
    };
    let Some(role) = claims.role_on(project.id, &project.full_path()) else {
        return anyone;
    };
    let reads_anyway = |scoped: bool| {
        if scoped || public {
            Right::Download
        } else {
            Right::See
        }
    };
    Some(match claims.kind {
        Kind::Job => Right::Publish,
        Kind::Deploy if claims.has_scope(Scope::WritePackageRegistry) => Right::Publish,
        Kind::Deploy => reads_anyway(claims.has_scope(Scope::ReadPackageRegistry)),
        Kind::Personal if claims.has_scope(Scope::Api) => Right::of_role(role),
        Kind::Personal => reads_anyway(reads_packages(claims)),
    })
}

/// Scopes that let a personal token read packages.
fn reads_packages(claims: &Claims) -> bool {
    [
        Scope::Api,
        Scope::ReadApi,
        Scope::ReadPackageRegistry,
        Scope::WritePackageRegistry,
    ]
    .iter()
    .any(|s| claims.has_scope(*s))
}

/// What the caller holds on a group through its grants: `*` or `ns/*`
/// covering the group give the grant's role (acted on only by tokens that
/// administer), and a grant on anything below the group lets the caller see
/// it. `None` here still lets the caller see the group through a project in
/// it they may see ([`on_group`]).
pub fn on_group_by_grants(actor: &Actor, group_path: &str) -> Option<Right> {
    let Actor::Token(claims) = actor else {
        return None;
    };
    if claims.admin {
        return Some(Right::Administer);
    }
    match claims.role_on_group(group_path) {
        Some(role) if administers(claims) => Some(Right::of_role(role)),
        Some(_) => Some(Right::See),
        None => names_something_below(claims, group_path).then_some(Right::See),
    }
}

/// What the caller holds on a group for a need of `needed`: its grants,
/// or, for reading (`needed` at most [`Right::Download`]) and failing
/// those, seeing the group because it sees a project in it
/// (`sees_a_project` is asked only then, since it reads the project index).
pub fn on_group(
    actor: &Actor,
    group_path: &str,
    needed: Right,
    sees_a_project: impl FnOnce() -> ApiResult<bool>,
) -> ApiResult<Option<Right>> {
    match on_group_by_grants(actor, group_path) {
        Some(right) => Ok(Some(right)),
        None if needed <= Right::Download => Ok(sees_a_project()?.then_some(Right::See)),
        None => Ok(None),
    }
}

/// What the caller holds on the instance itself (users, creating projects):
/// administrators administer; personal tokens read user records; deploy and
/// job tokens only exist.
pub fn on_instance(actor: &Actor) -> Option<Right> {
    match actor {
        Actor::Anonymous => None,
        Actor::Token(claims) if claims.admin => Some(Right::Administer),
        Actor::Token(claims) if claims.kind == Kind::Personal => Some(Right::Download),
        Actor::Token(_) => Some(Right::See),
    }
}

/// Checks that the caller holds `needed` on the instance: 401 for
/// anonymous callers, 403 for everyone else who does not.
pub fn require_on_instance(actor: &Actor, needed: Right) -> ApiResult<Right> {
    decide(actor, on_instance(actor), needed, Unseen::Forbidden)
}

/// Only personal tokens with scope `api` (and administrators) act with
/// their role when administering; deploy and job tokens, and read-only
/// scopes, administer nothing.
fn administers(claims: &Claims) -> bool {
    claims.admin || (claims.kind == Kind::Personal && claims.has_scope(Scope::Api))
}

/// Whether a grant names a project or group below this group.
fn names_something_below(claims: &Claims, group_path: &str) -> bool {
    claims.grants.iter().any(|g| g.reaches_below(group_path))
}

/// Refuses at once a caller who can never hold `needed`: anonymous callers
/// asking for more than a public project gives (401, before anything is
/// loaded or parsed). For endpoints that are only for signed-in callers.
pub fn may_try(actor: &Actor, needed: Right) -> ApiResult<()> {
    match actor {
        Actor::Anonymous if needed > ANONYMOUS_MOST => Err(ApiError::Unauthorized),
        _ => Ok(()),
    }
}

/// What a caller who holds nothing on a thing is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unseen {
    /// `404 <message>`: existence does not leak.
    NotFound(&'static str),
    /// 403: the thing is known to exist anyway (a namespace's settings).
    Forbidden,
}

/// GitLab's answer for a caller holding `held` where `needed` is required:
/// enough → the right held; nothing held → 401 to an anonymous caller when
/// signing in could help, otherwise `unseen`; too little → 403.
pub fn decide(
    actor: &Actor,
    held: Option<Right>,
    needed: Right,
    unseen: Unseen,
) -> ApiResult<Right> {
    match held {
        Some(held) if held >= needed => Ok(held),
        Some(_) => Err(ApiError::Forbidden),
        None if matches!(actor, Actor::Anonymous) && needed > Right::See => {
            Err(ApiError::Unauthorized)
        }
        None => Err(match unseen {
            Unseen::NotFound(message) => ApiError::NotFound(message),
            Unseen::Forbidden => ApiError::Forbidden,
        }),
    }
}

/// Whether a caller holding `held` may hand out a token with `role`: a
/// token never carries more than its issuer holds.
pub fn may_grant(held: Right, role: Role) -> bool {
    Right::of_role(role) <= held
}

/// Whether the caller reaches a protection rule's minimum access on the
/// project. Protection looks at the role the caller acts with, whatever its
/// scopes (job tokens act with the role they carry); deploy tokens never
/// reach it.
pub fn passes_protection(actor: &Actor, project: &Project, minimum: MinimumAccess) -> bool {
    let acting = match actor {
        Actor::Anonymous => None,
        Actor::Token(claims) if claims.admin => Some(Right::Administer),
        Actor::Token(claims) if claims.kind == Kind::Deploy => None,
        Actor::Token(claims) => claims
            .role_on(project.id, &project.full_path())
            .map(Right::of_role),
    };
    acting >= Some(Right::of_minimum_access(minimum))
}

/// `GET /user`: personal tokens only (GitLab answers other kinds 401), with
/// a scope that reads the API (otherwise 403).
pub fn current_user(actor: &Actor) -> ApiResult<&Claims> {
    let claims = match actor {
        Actor::Token(claims) if claims.kind == Kind::Personal => claims,
        _ => return Err(ApiError::Unauthorized),
    };
    if claims.admin || claims.has_scope(Scope::Api) || claims.has_scope(Scope::ReadApi) {
        Ok(claims)
    } else {
        Err(ApiError::Forbidden)
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
