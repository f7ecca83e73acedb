//! Roles on projects and groups, and GitLab's numeric access levels for them.

use serde::{Deserialize, Serialize};

/// A role on a project, ordered from least to most powerful (GitLab's
/// access levels 10 to 50).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Guest,
    Reporter,
    Developer,
    Maintainer,
    Owner,
}

impl Role {
    /// Every role, least powerful first.
    pub const ALL: [Role; 5] = [
        Role::Guest,
        Role::Reporter,
        Role::Developer,
        Role::Maintainer,
        Role::Owner,
    ];

    /// The role's name as tokens, the CLI and GitLab spell it (`developer`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::Reporter => "reporter",
            Role::Developer => "developer",
            Role::Maintainer => "maintainer",
            Role::Owner => "owner",
        }
    }

    /// The role named `name` (exact, lower case).
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.name() == name)
    }

    /// GitLab's numeric access level.
    pub fn access_level(self) -> u8 {
        match self {
            Role::Guest => 10,
            Role::Reporter => 20,
            Role::Developer => 30,
            Role::Maintainer => 40,
            Role::Owner => 50,
        }
    }

    /// The role with GitLab's numeric access `level` (10, 20, 30, 40 or 50).
    pub fn from_access_level(level: u8) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|role| role.access_level() == level)
    }

    /// The role an access level written as text names, as API fields carry
    /// it: exactly `10`, `20`, `30`, `40` or `50` around optional
    /// whitespace (`030` or `+30` are not levels).
    pub fn from_access_level_text(text: &str) -> Option<Role> {
        let text = text.trim();
        Role::ALL
            .into_iter()
            .find(|role| role.access_level().to_string() == text)
    }
}
