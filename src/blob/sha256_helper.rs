//! Handing a large upload's SHA-256 to a second instance of the component.
//!
//! An upload computes md5, sha1 and sha256 of every byte, on the one core
//! its instance runs on, and those digests are what limit its speed (and
//! that of an upload session's verification, which reads the object back).
//! Once a body proves large, the SHA-256 (the costliest of the three) goes
//! to a helper: another instance of this component, reached through the
//! host's self request (`http://self.alt/-/sha256` on Spin, whose instances
//! run in parallel). The helper resumes the hash from the state so far,
//! hashes the rest of the bytes as this instance streams them over, and
//! answers the state it reached; md5, sha1 (and the S3 upload) go on here.
//!
//! A helper that cannot be had (self requests not allowed, a busy host) is
//! no failure: the hashing goes on here. One that fails after taking over
//! fails the request, which then leaves nothing behind, like any other.

use genreg_token::Secrets;
use serde::{Deserialize, Serialize};

use crate::checksum::{Checksums, HandedOff, Sha256Resumed};
use crate::error::ApiError;
use crate::http::Request;

/// Another instance that can take over a SHA-256.
pub trait Sha256Helper {
    /// Bytes hashed here before a hand-off is tried: a smaller body is not
    /// worth a second instance.
    fn hand_off_after(&self) -> u64;

    /// Starts a helper resuming from `state` (see
    /// [`crate::checksum::Checksums::sha256_state`]); `None` when none can be
    /// had, and nothing has been sent.
    fn start(&self, state: &str) -> Option<Box<dyn Sha256Stream + '_>>;
}

/// A helper that took over: it is sent the rest of the bytes.
pub trait Sha256Stream {
    fn write(&mut self, bytes: &[u8]) -> Result<(), String>;
    /// Ends the bytes and returns the SHA-256 state reached after all of
    /// them (for [`Checksums::rejoin`]).
    fn finish(self: Box<Self>) -> Result<String, String>;
}

/// Checksums being computed, here or (the SHA-256) in a helper.
pub enum Hashing<'a> {
    Here(Checksums),
    Split(HandedOff, Box<dyn Sha256Stream + 'a>),
    /// In the middle of a hand-off, or finished.
    Taken,
}

impl<'a> Hashing<'a> {
    pub fn update(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self {
            Hashing::Here(sums) => sums.update(bytes),
            Hashing::Split(sums, helper) => {
                sums.update(bytes);
                helper.write(bytes)?;
            }
            Hashing::Taken => unreachable!("checksums updated after they were taken"),
        }
        Ok(())
    }

    /// Bytes hashed so far.
    pub fn size(&self) -> u64 {
        match self {
            Hashing::Here(sums) => sums.size(),
            Hashing::Split(sums, _) => sums.size(),
            Hashing::Taken => unreachable!("checksums measured after they were taken"),
        }
    }

    /// Hands the SHA-256 to `helper` if one can be had and it is worth it:
    /// `left` bytes still to hash (unknown: `None`) are at least
    /// [`Sha256Helper::hand_off_after`]. Hashing goes on here otherwise.
    pub fn hand_off(&mut self, helper: &'a dyn Sha256Helper, left: Option<u64>) {
        if left.is_some_and(|left| left < helper.hand_off_after()) {
            return;
        }
        let Hashing::Here(sums) = std::mem::replace(self, Hashing::Taken) else {
            unreachable!("handed off twice");
        };
        *self = match helper.start(&sums.sha256_state()) {
            Some(stream) => Hashing::Split(sums.hand_off_sha256(), stream),
            None => Hashing::Here(sums),
        };
    }

    /// The checksums, whole again: waits for the helper's state if it took
    /// over.
    pub fn finish(&mut self) -> Result<Checksums, String> {
        match std::mem::replace(self, Hashing::Taken) {
            Hashing::Here(sums) => Ok(sums),
            Hashing::Split(rest, helper) => {
                let state = helper.finish()?;
                Checksums::rejoin(rest, &state)
                    .map_err(|_| "the helper answered no SHA-256 state".to_string())
            }
            Hashing::Taken => unreachable!("checksums taken twice"),
        }
    }
}

/// The helper's path, on the component's own origin.
pub const PATH: &str = "/-/sha256";
/// The SHA-256 state the helper resumes from (base64).
pub const STATE_HEADER: &str = "x-genreg-sha256-state";
/// `<expires>.<mac>`: the uploader is an instance of this registry.
pub const CREDENTIAL_HEADER: &str = "x-genreg-helper";
/// Bytes an upload hashes itself before it asks for a helper: a second
/// instance is worth its request only for a body that takes a while.
pub const HAND_OFF_AFTER: u64 = 8 * 1024 * 1024;
/// How long a credential is good for after it was made (Unix seconds).
const CREDENTIAL_LIFETIME: u64 = 600;

/// The helper's answer, at the end of the body.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperAnswer {
    /// The SHA-256 state after the body (base64, as [`STATE_HEADER`]).
    pub state: String,
    /// Bytes of body the helper hashed (beyond the state it resumed), so
    /// the sender knows it hashed what was sent.
    pub size: u64,
}

fn credential_text(expires: u64) -> String {
    format!("sha256-helper {expires}")
}

/// A credential for a helper request made at `now` (Unix seconds), with
/// the token secret that every instance of the registry shares.
pub fn credential(secrets: &Secrets, now: u64) -> String {
    let expires = now + CREDENTIAL_LIFETIME;
    format!("{expires}.{}", secrets.mac(&credential_text(expires)))
}

/// Checks a helper request: its credential (unexpired, not valid for longer
/// than one is made for, made with one of `secrets`), then its state.
pub fn accept(request: &Request, secrets: &Secrets, now: u64) -> Result<Sha256Resumed, ApiError> {
    if !credential_ok(secrets, request.header(CREDENTIAL_HEADER), now) {
        return Err(ApiError::Unauthorized);
    }
    let state = request.header(STATE_HEADER).unwrap_or_default();
    Sha256Resumed::resume(state)
        .map_err(|_| ApiError::BadRequest(format!("{STATE_HEADER} is not a SHA-256 state")))
}

fn credential_ok(secrets: &Secrets, credential: Option<&str>, now: u64) -> bool {
    let Some((expires, mac)) = credential.and_then(|c| c.split_once('.')) else {
        return false;
    };
    let Ok(expires) = expires.parse::<u64>() else {
        return false;
    };
    expires > now
        && expires <= now.saturating_add(CREDENTIAL_LIFETIME)
        && secrets.verifies_mac(&credential_text(expires), mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    const NOW: u64 = 1_700_000_000;

    fn request(headers: &[(&str, &str)]) -> Request {
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        Request::new(Method::Post, PATH, headers)
    }

    #[test]
    fn a_request_with_a_fresh_credential_and_a_state_is_accepted() {
        let secrets = Secrets::parse("s").unwrap();
        let mut sums = Checksums::default();
        sums.update(b"hello ");
        let state = sums.sha256_state();
        let credential = credential(&secrets, NOW);
        let mut sha256 = accept(
            &request(&[(CREDENTIAL_HEADER, &credential), (STATE_HEADER, &state)]),
            &secrets,
            NOW,
        )
        .unwrap();
        sha256.update(b"world");
        let mut rest = sums.hand_off_sha256();
        rest.update(b"world");
        let whole = Checksums::rejoin(rest, &sha256.state()).unwrap().finish();
        assert_eq!(
            whole.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        // Still good within its lifetime, under a rotated secret too.
        let rotated = Secrets::parse("new,s").unwrap();
        let headers = [(CREDENTIAL_HEADER, &credential[..]), (STATE_HEADER, &state)];
        assert!(accept(&request(&headers), &rotated, NOW + 599).is_ok());
        // A bad state is a 400 once the credential holds.
        let bad_state = [(CREDENTIAL_HEADER, &credential[..]), (STATE_HEADER, "AAAA")];
        let err = accept(&request(&bad_state), &secrets, NOW).err().unwrap();
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn credentials_are_checked_for_mac_and_time() {
        let secrets = Secrets::parse("s").unwrap();
        let made = credential(&secrets, NOW);
        assert!(credential_ok(&secrets, Some(&made), NOW));
        // Expired at its end.
        assert!(!credential_ok(
            &secrets,
            Some(&made),
            NOW + CREDENTIAL_LIFETIME
        ));
        // Valid for longer than one is ever made for: made for a later time.
        assert!(!credential_ok(
            &secrets,
            Some(&credential(&secrets, NOW + 1)),
            NOW
        ));
        // Another secret, another expiry than signed, or none at all.
        assert!(!credential_ok(
            &Secrets::parse("t").unwrap(),
            Some(&made),
            NOW
        ));
        let mac = made.split_once('.').unwrap().1;
        let moved = format!("{}.{mac}", NOW + 10);
        assert!(!credential_ok(&secrets, Some(&moved), NOW));
        for bad in [None, Some(""), Some("x.y"), Some("123")] {
            assert!(!credential_ok(&secrets, bad, NOW), "{bad:?}");
        }
        let err = accept(&request(&[(STATE_HEADER, "AAAA")]), &secrets, NOW)
            .err()
            .unwrap();
        assert_eq!(err.status(), 401);
    }
}
