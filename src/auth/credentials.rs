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

/// Any headers and query string: extraction never panics, a token it finds
/// is never empty, and authentication ends in an actor or a 401.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::http::Method;
    use crate::testing::MemoryStore;
    use genreg_token::{Claims, Grant, Role, Scope};
    use proptest::prelude::*;

    const SECRET: &str = "property secret";
    const NOW: u64 = 1_767_225_610;

    fn minted(kind: Kind) -> String {
        let claims = Claims {
            id: "prop-1".into(),
            kind,
            subject: "tester".into(),
            scopes: vec![Scope::Api],
            grants: vec![Grant {
                project: "*".into(),
                role: Role::Developer,
            }],
            admin: false,
            issued_at: NOW,
            expires_at: Some(NOW + 60),
        };
        genreg_token::Secrets::parse(SECRET).unwrap().sign(&claims)
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        let kind = prop::sample::select(Kind::ALL.to_vec());
        prop_oneof![
            "\\PC{0,40}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..40),
            kind.clone().prop_map(|k| minted(k).into_bytes()),
            (
                prop::sample::select(vec!["Bearer", "bearer", "Basic", "Digest", ""]),
                "[ ]{0,2}",
                prop_oneof![
                    kind.prop_map(minted),
                    "\\PC{0,30}",
                    "\\PC{0,12}:\\PC{0,12}".prop_map(|pair| STANDARD.encode(pair)),
                ]
            )
                .prop_map(|(scheme, space, rest)| format!("{scheme}{space}{rest}").into_bytes()),
        ]
    }

    fn header() -> impl Strategy<Value = (String, Vec<u8>)> {
        let name = prop::sample::select(vec![
            "PRIVATE-TOKEN",
            "job-token",
            "Deploy-Token",
            "Authorization",
            "X-Other",
        ]);
        (name.prop_map(String::from), value())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_credentials_give_an_actor_or_401(
            headers in prop::collection::vec(header(), 0..4),
            query in prop_oneof![
                "\\PC{0,40}",
                prop::sample::select(vec!["private_token", "job_token"]).prop_flat_map(|name| {
                    prop_oneof![Just(String::new()), Just(minted(Kind::Personal)), "\\PC{0,20}"]
                        .prop_map(move |value| format!("{name}={value}"))
                }),
            ],
        ) {
            let request = Request::new(Method::Get, &format!("/x?{query}"), headers);
            if let Credentials::Token(presented) = extract(&request) {
                prop_assert!(!presented.token.is_empty());
                prop_assert_eq!(presented.token.trim(), presented.token.as_str());
            }
            let secrets = genreg_token::Secrets::parse(SECRET).unwrap();
            match crate::auth::authenticate(&request, &secrets, &MemoryStore::default(), NOW) {
                Ok(_) => {}
                Err(e) => prop_assert_eq!(e.status(), 401),
            }
        }
    }
}
