//! What a token says: its kind, its bearer, its scopes and its grants.

use serde::{Deserialize, Serialize};

use crate::path::{is_below, is_within};
use crate::{Role, Scope};

/// What kind of credential a token is; each kind has its own prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A personal access token: acts with the roles in its grants.
    Personal,
    /// A deploy token: reads and/or writes packages, nothing else.
    Deploy,
    /// A CI job token: publishes and downloads in its one project.
    Job,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Personal, Kind::Deploy, Kind::Job];

    /// The prefix that starts every token of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Personal => "glpat-",
            Kind::Deploy => "gldt-",
            Kind::Job => "glcbt-",
        }
    }

    /// The kind's name (`personal`, `deploy`, `job`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Personal => "personal",
            Kind::Deploy => "deploy",
            Kind::Job => "job",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// A role on the projects a selector picks.
///
/// The selector is a numeric project id (`42`), a full project path
/// (`acme/tools`, compared case-insensitively), a namespace followed by `/*`
/// (`acme/*`: every project below `acme`, nested groups included), or `*`
/// (every project).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    #[serde(rename = "p")]
    pub project: String,
    #[serde(rename = "r")]
    pub role: Role,
}

impl Grant {
    /// The namespace of a `ns/*` selector.
    fn namespace(&self) -> Option<&str> {
        self.project.strip_suffix("/*")
    }

    fn is_everything(&self) -> bool {
        self.project == "*"
    }

    /// Whether this grant covers the project with this id and full path.
    pub fn covers(&self, project_id: u64, project_path: &str) -> bool {
        if self.is_everything() {
            return true;
        }
        if let Ok(id) = self.project.parse::<u64>() {
            return id == project_id;
        }
        match self.namespace() {
            Some(namespace) => is_below(project_path, namespace),
            None => self.project.eq_ignore_ascii_case(project_path),
        }
    }

    /// Whether this grant gives its role on the whole group `group_path`:
    /// `*`, or `ns/*` where `ns` is the group or one of its parents. Grants
    /// on single projects or on subgroups do not.
    pub fn covers_group(&self, group_path: &str) -> bool {
        self.is_everything()
            || self
                .namespace()
                .is_some_and(|namespace| is_within(group_path, namespace))
    }

    /// Whether the selector names something strictly below `group_path` (a
    /// project path or a subgroup's `sub/*`), so the group is on the way to
    /// what the grant reaches. Numeric ids say nothing about where their
    /// project lives, so they never do.
    pub fn reaches_below(&self, group_path: &str) -> bool {
        let path = self.namespace().unwrap_or(&self.project);
        is_below(path, group_path)
    }
}

/// Everything a token says about its bearer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Unique id, used to revoke the token.
    #[serde(rename = "jti")]
    pub id: String,
    #[serde(rename = "k")]
    pub kind: Kind,
    /// Who the token speaks for (a user name, a deploy token's user name, a CI system).
    #[serde(rename = "sub")]
    pub subject: String,
    #[serde(rename = "scp", default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<Scope>,
    #[serde(rename = "g", default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    /// Administrators may do everything on every project.
    #[serde(rename = "adm", default, skip_serializing_if = "is_false")]
    pub admin: bool,
    /// Unix seconds.
    #[serde(rename = "iat")]
    pub issued_at: u64,
    /// Unix seconds; `None` never expires.
    #[serde(rename = "exp", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Claims {
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// The highest role any grant gives on this project, if any.
    pub fn role_on(&self, project_id: u64, project_path: &str) -> Option<Role> {
        self.grants
            .iter()
            .filter(|g| g.covers(project_id, project_path))
            .map(|g| g.role)
            .max()
    }

    /// The highest role any grant gives on the whole group `group_path`
    /// (see [`Grant::covers_group`]), if any.
    pub fn role_on_group(&self, group_path: &str) -> Option<Role> {
        self.grants
            .iter()
            .filter(|g| g.covers_group(group_path))
            .map(|g| g.role)
            .max()
    }
}
