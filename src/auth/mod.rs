//! Authentication (who is asking, `credentials` and [`authenticate`]) and
//! authorization (what they may do, `policy`). Both are decided from the
//! request alone plus one key-value read for revocation: no sessions.

pub mod credentials;
pub mod policy;

use credentials::Credentials;
use genreg_token::{Claims, Secrets};

pub use policy::Right;

use crate::error::ApiError;
use crate::http::Request;
use crate::meta::{self, kv::KeyValue};

/// The caller, after authentication.
#[derive(Debug, Clone)]
pub enum Actor {
    Anonymous,
    Token(Claims),
}

/// Authenticates a request. Anonymous requests pass (endpoints decide whether
/// that is enough); a token that is malformed, forged, expired, revoked or
/// presented in a place meant for another kind answers 401.
pub fn authenticate<K: KeyValue>(
    request: &Request,
    secrets: &Secrets,
    kv: &K,
    now_secs: u64,
) -> Result<Actor, ApiError> {
    let claims = verify(request, secrets, now_secs)?;
    unless_revoked(kv, claims)
}

/// The claims of the token a request presents (`None` when it presents
/// none), checked without the store: well formed, genuine, unexpired and
/// presented where its kind belongs, else 401.
pub fn verify(
    request: &Request,
    secrets: &Secrets,
    now_secs: u64,
) -> Result<Option<Claims>, ApiError> {
    let presented = match credentials::extract(request) {
        Credentials::None => return Ok(None),
        Credentials::Malformed => return Err(ApiError::Unauthorized),
        Credentials::Token(presented) => presented,
    };
    let claims = secrets
        .verify(&presented.token, now_secs)
        .map_err(|_| ApiError::Unauthorized)?;
    if presented.expected_kind.is_some_and(|k| k != claims.kind) {
        return Err(ApiError::Unauthorized);
    }
    Ok(Some(claims))
}

/// The caller [`verify`] found, once its token's revocation is read: 401
/// when it was revoked.
pub fn unless_revoked<K: KeyValue>(kv: &K, claims: Option<Claims>) -> Result<Actor, ApiError> {
    let Some(claims) = claims else {
        return Ok(Actor::Anonymous);
    };
    if meta::is_token_revoked(kv, &claims.id).map_err(ApiError::internal)? {
        return Err(ApiError::Unauthorized);
    }
    Ok(Actor::Token(claims))
}
