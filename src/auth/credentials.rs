//! Finding the token in a request, wherever a GitLab client puts it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use genreg_token::Kind;

use crate::http::Request;

/// A token as presented, and which kinds the place it came in may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub token: String,
    /// `None`: any kind (`Authorization`); otherwise the one kind the header
    /// or parameter is for.
    pub expected_kind: Option<Kind>,
}

/// What the request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    Token(Presented),
    /// Something that looks like a credential but cannot be one (a Basic
    /// header that is not base64 of `user:token`, an unknown scheme).
    Malformed,
}

/// Looks in GitLab's places, most specific first: `PRIVATE-TOKEN`,
/// `JOB-TOKEN` and `Deploy-Token` headers, the `private_token` and
/// `job_token` query parameters, then `Authorization` (Bearer or Basic, the
/// user name of Basic being ignored).
///
/// As in GitLab, an empty value counts as absent: clients built without a
/// token still send `PRIVATE-TOKEN:` (GitLab's Go client does), and they
/// are anonymous, not holders of a bad token.
pub fn extract(request: &Request) -> Credentials {
    let places: [(Option<&str>, Kind); 5] = [
        (request.header("private-token"), Kind::Personal),
        (request.header("job-token"), Kind::Job),
        (request.header("deploy-token"), Kind::Deploy),
        (request.query_param("private_token"), Kind::Personal),
        (request.query_param("job_token"), Kind::Job),
    ];
    for (value, kind) in places {
        if let found @ Credentials::Token(_) = token(value.unwrap_or_default(), Some(kind)) {
            return found;
        }
    }
    // Present but not UTF-8 is as bad as malformed.
    if request.headers.iter().any(|(n, _)| n == "authorization") {
        return match request.header("authorization") {
            Some(value) => from_authorization(value),
            None => Credentials::Malformed,
        };
    }
    Credentials::None
}

/// A presented token; an empty one is no credential at all.
fn token(value: &str, expected_kind: Option<Kind>) -> Credentials {
    let value = value.trim();
    if value.is_empty() {
        return Credentials::None;
    }
    Credentials::Token(Presented {
        token: value.to_string(),
        expected_kind,
    })
}

fn from_authorization(value: &str) -> Credentials {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.is_empty() {
        return Credentials::None;
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        return token(rest, None);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        return from_basic(rest.trim());
    }
    Credentials::Malformed
}

/// `Basic base64(user:token)`; nothing after `Basic`, or an empty password,
/// is no credential.
fn from_basic(encoded: &str) -> Credentials {
    if encoded.is_empty() {
        return Credentials::None;
    }
    let Some(decoded) = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
    else {
        return Credentials::Malformed;
    };
    match decoded.split_once(':') {
        Some((_user, password)) => token(password, None),
        None => Credentials::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn request(path: &str, headers: &[(&str, &str)]) -> Request {
        Request::new(
            Method::Get,
            path,
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    fn presented(token: &str, kind: Option<Kind>) -> Credentials {
        Credentials::Token(Presented {
            token: token.into(),
            expected_kind: kind,
        })
    }

    #[test]
    fn every_gitlab_place_is_read() {
        let cases = [
            (
                request("/", &[("PRIVATE-TOKEN", "t")]),
                Some(Kind::Personal),
            ),
            (request("/", &[("Job-Token", "t")]), Some(Kind::Job)),
            (request("/", &[("Deploy-Token", "t")]), Some(Kind::Deploy)),
            (request("/?private_token=t", &[]), Some(Kind::Personal)),
            (request("/?job_token=t", &[]), Some(Kind::Job)),
            (request("/", &[("Authorization", "Bearer t")]), None),
            // base64("gitlab-ci-token:t")
            (
                request("/", &[("Authorization", "Basic Z2l0bGFiLWNpLXRva2VuOnQ=")]),
                None,
            ),
        ];
        for (req, kind) in cases {
            assert_eq!(extract(&req), presented("t", kind), "{req:?}");
        }
    }

    #[test]
    fn no_credentials_is_anonymous() {
        assert_eq!(extract(&request("/?other=1", &[])), Credentials::None);
    }

    #[test]
    fn broken_credentials_are_malformed() {
        for header in ["Basic !!!", "Basic dXNlcg==", "Digest abc"] {
            assert_eq!(
                extract(&request("/", &[("authorization", header)])),
                Credentials::Malformed,
                "{header}"
            );
        }
    }

    #[test]
    fn empty_credentials_are_anonymous() {
        for (name, value) in [
            ("private-token", ""),
            ("private-token", " "),
            ("job-token", ""),
            ("deploy-token", ""),
            ("authorization", ""),
            ("authorization", "Bearer "),
            ("authorization", "Bearer"),
            ("authorization", "Basic "),
            // base64(":") and base64("user:")
            ("authorization", "Basic Og=="),
            ("authorization", "Basic dXNlcjo="),
        ] {
            assert_eq!(
                extract(&request("/", &[(name, value)])),
                Credentials::None,
                "{name}: {value:?}"
            );
        }
        for query in [
            "/?private_token=",
            "/?job_token=",
            "/?private_token=&job_token=",
        ] {
            assert_eq!(extract(&request(query, &[])), Credentials::None, "{query}");
        }
    }

    #[test]
    fn an_empty_place_does_not_hide_a_filled_one() {
        let req = request(
            "/?job_token=t",
            &[("private-token", ""), ("authorization", "Bearer ")],
        );
        assert_eq!(extract(&req), presented("t", Some(Kind::Job)));
    }
}
