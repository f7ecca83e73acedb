//! The registry's access tokens, shared by the component (which verifies and
//! issues them), the `genreg` host and CLI (which mint them offline) and the
//! tests. This crate is the one place that knows secrets, kinds, scopes,
//! roles and access levels, and when a path lies within a group.
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
//! a set of revoked [`Claims::id`]s). [`Secrets`] signs with the first secret
//! and verifies with all of them, so a secret can be rotated.
//!
//! Time and randomness are inputs, never read here, so every function is
//! deterministic and testable.
//!
//! ```
//! use genreg_token::{Claims, Grant, Kind, Role, Scope, Secrets};
//!
//! let secrets = Secrets::parse("new-secret, old-secret").unwrap();
//! let claims = Claims {
//!     id: "a1".into(),
//!     kind: Kind::Personal,
//!     subject: "alice".into(),
//!     scopes: vec![Scope::Api],
//!     grants: vec![Grant { project: "acme/*".into(), role: Role::Developer }],
//!     admin: false,
//!     issued_at: 1_700_000_000,
//!     expires_at: None,
//! };
//! let token = secrets.sign(&claims);
//! let verified = secrets.verify(&token, 1_700_000_001).unwrap();
//! assert_eq!(verified.role_on(7, "acme/tools"), Some(Role::Developer));
//! ```

mod claims;
mod path;
mod role;
mod scope;
mod secrets;
mod wire;

pub use claims::{Claims, Grant, Kind};
pub use path::{is_below, is_within};
pub use role::Role;
pub use scope::{Scope, ACCESS_TOKEN_SCOPES, DEPLOY_TOKEN_SCOPES, PERSONAL_ACCESS_TOKEN_SCOPES};
pub use secrets::{NoSecret, Secrets};
pub use wire::{TokenError, MAX_TOKEN_LEN};

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
