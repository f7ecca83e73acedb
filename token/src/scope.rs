//! Scopes by GitLab's names, and which scopes each kind of token may carry.
//!
//! The registry knows four of GitLab's scopes; the others have no meaning in
//! a package registry. What a scope *allows* is the authorization policy's
//! business; this module only names them and says where each may appear.

use serde::{Deserialize, Serialize};

use crate::Kind;

/// What a token may be used for, by GitLab's scope names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Api,
    ReadApi,
    ReadPackageRegistry,
    WritePackageRegistry,
}

impl Scope {
    /// Every scope the registry knows.
    pub const ALL: [Scope; 4] = [
        Scope::Api,
        Scope::ReadApi,
        Scope::ReadPackageRegistry,
        Scope::WritePackageRegistry,
    ];

    /// GitLab's name for the scope (`read_package_registry`).
    pub fn name(self) -> &'static str {
        match self {
            Scope::Api => "api",
            Scope::ReadApi => "read_api",
            Scope::ReadPackageRegistry => "read_package_registry",
            Scope::WritePackageRegistry => "write_package_registry",
        }
    }

    /// The scope named `name` (exact).
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.name() == name)
    }

    /// The scope named `name` if it is one of `allowed` (one of the tables
    /// below), as the token-issuing endpoints check a requested scope.
    pub fn parse_among(name: &str, allowed: &[Scope]) -> Option<Scope> {
        Scope::parse(name).filter(|scope| allowed.contains(scope))
    }
}

/// Scopes of a project or group access token (a bot's personal token).
pub const ACCESS_TOKEN_SCOPES: &[Scope] = &Scope::ALL;

/// Scopes of a deploy token: it reads and/or writes packages, nothing else.
pub const DEPLOY_TOKEN_SCOPES: &[Scope] =
    &[Scope::ReadPackageRegistry, Scope::WritePackageRegistry];

/// Scopes of a user's personal access token issued through the API.
pub const PERSONAL_ACCESS_TOKEN_SCOPES: &[Scope] = &[Scope::Api, Scope::ReadApi];

impl Kind {
    /// The scopes a token of this kind gets when its minter names none: a
    /// personal token `api`, a deploy token both registry scopes, a job
    /// token none (it acts in its one project whatever its scopes).
    pub fn default_scopes(self) -> Vec<Scope> {
        match self {
            Kind::Personal => vec![Scope::Api],
            Kind::Deploy => DEPLOY_TOKEN_SCOPES.to_vec(),
            Kind::Job => Vec::new(),
        }
    }
}
