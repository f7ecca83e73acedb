//! The token text: `<prefix><payload>.<mac>`, where `payload` is the
//! base64url (unpadded) JSON of the claims and `mac` the base64url
//! HMAC-SHA256 of `<prefix><payload>`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Claims, Kind};

type HmacSha256 = Hmac<Sha256>;

/// Longest token we try to verify; anything longer is rejected unread.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

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
pub(crate) fn sign(secret: &[u8], claims: &Claims) -> String {
    let json = serde_json::to_vec(claims).expect("claims always serialize");
    sign_payload(secret, claims.kind, &json)
}

/// The token text for any payload bytes, valid JSON or not (tests reach the
/// decoding behind the signature check with it).
pub(crate) fn sign_payload(secret: &[u8], kind: Kind, payload: &[u8]) -> String {
    let signed = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(payload));
    let mac = URL_SAFE_NO_PAD.encode(mac_of(secret, &signed).finalize().into_bytes());
    format!("{signed}.{mac}")
}

/// Checks a token's signature against each of `secrets` and its expiry
/// against `now` (Unix seconds), and returns its claims.
pub(crate) fn open<S: AsRef<[u8]>>(
    secrets: &[S],
    token: &str,
    now: u64,
) -> Result<Claims, TokenError> {
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

/// The base64url HMAC-SHA256 of `text`.
pub(crate) fn mac(secret: &[u8], text: &str) -> String {
    URL_SAFE_NO_PAD.encode(mac_of(secret, text).finalize().into_bytes())
}

/// Whether `mac` is the HMAC of `text` under one of `secrets`, compared in
/// constant time.
pub(crate) fn verifies_mac<S: AsRef<[u8]>>(secrets: &[S], text: &str, mac: &str) -> bool {
    let Ok(mac) = URL_SAFE_NO_PAD.decode(mac) else {
        return false;
    };
    secrets
        .iter()
        .any(|secret| mac_of(secret.as_ref(), text).verify_slice(&mac).is_ok())
}

fn mac_of(secret: &[u8], signed: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(signed.as_bytes());
    mac
}
