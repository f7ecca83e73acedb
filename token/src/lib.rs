//! The registry's access tokens, shared by the component (which verifies them)
//! and the `genreg` CLI (which mints them offline).
//!
//! A token is self-contained: `<prefix><payload>.<mac>` where
//! - `prefix` names the kind (`glpat-`, `gldt-`, `glcbt-`, as GitLab's do, so
//!   secret scanners recognise leaked tokens),
//! - `payload` is the base64url (unpadded) JSON of [`Claims`],
//! - `mac` is the base64url HMAC-SHA256 of `<prefix><payload>` under the
//!   registry's token secret.
//!
//! Verifying is pure computation: no lookup is needed to know who a token
//! belongs to or what it may do. Revocation is the caller's business (it keeps
//! a set of revoked [`Claims::id`]s). Several secrets may verify at once, so a
//! secret can be rotated without invalidating every token at the same instant.
//!
//! Time and randomness are inputs, never read here, so every function is
//! deterministic and testable.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Longest token we try to verify; anything longer is rejected unread.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

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

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "personal" => Some(Kind::Personal),
            "deploy" => Some(Kind::Deploy),
            "job" => Some(Kind::Job),
            _ => None,
        }
    }
}

/// A role on a project, ordered from least to most powerful (GitLab's
/// access levels 10 to 50).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Guest,
    Reporter,
    Developer,
    Maintainer,
    Owner,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "guest" => Some(Role::Guest),
            "reporter" => Some(Role::Reporter),
            "developer" => Some(Role::Developer),
            "maintainer" => Some(Role::Maintainer),
            "owner" => Some(Role::Owner),
            _ => None,
        }
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
}

/// What a token may be used for, by GitLab's scope names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Api,
    ReadApi,
    ReadPackageRegistry,
    WritePackageRegistry,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "api" => Some(Scope::Api),
            "read_api" => Some(Scope::ReadApi),
            "read_package_registry" => Some(Scope::ReadPackageRegistry),
            "write_package_registry" => Some(Scope::WritePackageRegistry),
            _ => None,
        }
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
    /// Whether this grant covers the project with this id and full path.
    pub fn covers(&self, project_id: u64, project_path: &str) -> bool {
        let selector = self.project.as_str();
        if selector == "*" {
            return true;
        }
        if let Ok(id) = selector.parse::<u64>() {
            return id == project_id;
        }
        match selector.strip_suffix("/*") {
            Some(namespace) => {
                project_path.len() > namespace.len() + 1
                    && project_path.as_bytes()[namespace.len()] == b'/'
                    && project_path[..namespace.len()].eq_ignore_ascii_case(namespace)
            }
            None => selector.eq_ignore_ascii_case(project_path),
        }
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
}

/// Why a token was not accepted. Deliberately coarse: callers answer 401 for
/// all of them and never echo the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token has expired")]
    Expired,
}

/// Signs `claims` with `secret` and returns the token text.
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    let json = serde_json::to_vec(claims).expect("claims always serialize");
    let signed = format!("{}{}", claims.kind.prefix(), URL_SAFE_NO_PAD.encode(json));
    let mac = URL_SAFE_NO_PAD.encode(mac_of(secret, &signed).finalize().into_bytes());
    format!("{signed}.{mac}")
}

/// Checks a token's signature against each of `secrets` and its expiry
/// against `now` (Unix seconds), and returns its claims.
pub fn verify<S: AsRef<[u8]>>(secrets: &[S], token: &str, now: u64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN || !token.is_ascii() {
        return Err(TokenError::Malformed);
    }
    let kind = Kind::ALL
        .into_iter()
        .find(|k| token.starts_with(k.prefix()))
        .ok_or(TokenError::Malformed)?;
    let (signed, mac) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let mac = URL_SAFE_NO_PAD
        .decode(mac)
        .map_err(|_| TokenError::Malformed)?;
    // `verify_slice` compares in constant time.
    let authentic = secrets
        .iter()
        .any(|secret| mac_of(secret.as_ref(), signed).verify_slice(&mac).is_ok());
    if !authentic {
        return Err(TokenError::BadSignature);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(&signed[kind.prefix().len()..])
        .map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    if claims.kind != kind {
        return Err(TokenError::Malformed);
    }
    if claims.expires_at.is_some_and(|exp| exp <= now) {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// Splits the `token_secret` variable into its secrets: comma-separated, the
/// first one signs and all of them verify. Blank entries are ignored.
pub fn parse_secrets(variable: &str) -> Vec<&str> {
    variable
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn mac_of(secret: &[u8], signed: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(signed.as_bytes());
    mac
}

/// Parses a duration such as `30d`, `12h`, `45m`, `90s` or a bare number of
/// seconds into seconds.
pub fn parse_duration_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests;
