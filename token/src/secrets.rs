//! The registry's token secrets: the `token_secret` variable holds one or
//! more, comma-separated. The first signs every new token; all of them
//! verify, so a secret can be rotated (put the new one first, drop the old
//! one once its tokens have expired) without invalidating every token at the
//! same instant.

use std::fmt;

use crate::wire::{self, TokenError};
use crate::Claims;

/// One or more secrets, the signing one first. Never empty.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets {
    all: Vec<String>,
}

/// The variable's text held no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the token secret holds no secret")]
pub struct NoSecret;

impl Secrets {
    /// Parses the variable's text: comma-separated, surrounding whitespace
    /// and blank entries ignored.
    pub fn parse(text: &str) -> Result<Secrets, NoSecret> {
        let all: Vec<String> = split(text).map(String::from).collect();
        if all.is_empty() {
            return Err(NoSecret);
        }
        Ok(Secrets { all })
    }

    /// Signs `claims` with the first secret and returns the token text.
    pub fn sign(&self, claims: &Claims) -> String {
        wire::sign(self.signing().as_bytes(), claims)
    }

    /// Checks a token's signature against every secret and its expiry
    /// against `now` (Unix seconds), and returns its claims. `now` = 0
    /// checks the signature alone (to revoke an expired token, say).
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        wire::open(&self.all, token, now)
    }

    /// The MAC of `text` under the signing secret (base64url): a credential
    /// between instances of the registry, which share the secrets.
    pub fn mac(&self, text: &str) -> String {
        wire::mac(self.signing().as_bytes(), text)
    }

    /// Whether `mac` is [`Self::mac`] of `text` under any of the secrets.
    pub fn verifies_mac(&self, text: &str, mac: &str) -> bool {
        wire::verifies_mac(&self.all, text, mac)
    }

    /// How many secrets verify.
    pub fn count(&self) -> usize {
        self.all.len()
    }

    fn signing(&self) -> &str {
        &self.all[0]
    }
}

/// Never prints a secret.
impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} redacted)", self.all.len())
    }
}

/// The non-blank entries of the variable's text.
pub(crate) fn split(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}
