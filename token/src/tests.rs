use super::*;

const SECRET: &[u8] = b"first secret";
const NOW: u64 = 1_700_000_000;

fn claims(kind: Kind) -> Claims {
    Claims {
        id: "a1b2c3".into(),
        kind,
        subject: "alice".into(),
        scopes: vec![Scope::Api],
        grants: vec![Grant {
            project: "acme/*".into(),
            role: Role::Developer,
        }],
        admin: false,
        issued_at: NOW,
        expires_at: Some(NOW + 3600),
    }
}

#[test]
fn minted_token_verifies_to_the_same_claims() {
    for kind in Kind::ALL {
        let token = mint(SECRET, &claims(kind));
        assert!(token.starts_with(kind.prefix()));
        assert_eq!(verify(&[SECRET], &token, NOW).unwrap(), claims(kind));
    }
}

#[test]
fn token_signed_with_another_secret_is_rejected() {
    let token = mint(b"other", &claims(Kind::Personal));
    assert_eq!(
        verify(&[SECRET], &token, NOW),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn any_of_several_secrets_verifies_for_rotation() {
    let old = mint(b"old", &claims(Kind::Personal));
    let new = mint(b"new", &claims(Kind::Personal));
    let secrets = parse_secrets("new, old");
    assert_eq!(secrets, vec!["new", "old"]);
    assert!(verify(&secrets, &old, NOW).is_ok());
    assert!(verify(&secrets, &new, NOW).is_ok());
}

#[test]
fn expired_token_is_rejected() {
    let token = mint(SECRET, &claims(Kind::Personal));
    assert_eq!(
        verify(&[SECRET], &token, NOW + 3600),
        Err(TokenError::Expired)
    );
}

#[test]
fn tampered_payload_or_prefix_is_rejected() {
    let token = mint(SECRET, &claims(Kind::Deploy));
    let mut admin = claims(Kind::Deploy);
    admin.admin = true;
    let forged_payload = mint(b"guess", &admin);
    let (payload, _) = forged_payload.rsplit_once('.').unwrap();
    let (_, mac) = token.rsplit_once('.').unwrap();
    assert_eq!(
        verify(&[SECRET], &format!("{payload}.{mac}"), NOW),
        Err(TokenError::BadSignature)
    );
    let relabelled = token.replacen("gldt-", "glpat-", 1);
    assert!(verify(&[SECRET], &relabelled, NOW).is_err());
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    for junk in [
        "",
        "glpat-",
        "glpat-.",
        "glpat-%%%.abc",
        "nope",
        "glpat-e30.e30",
        "gldt-\u{e9}.x",
    ] {
        assert!(verify(&[SECRET], junk, NOW).is_err(), "{junk:?}");
    }
    assert_eq!(
        verify(&[SECRET], &"a".repeat(MAX_TOKEN_LEN + 1), NOW),
        Err(TokenError::Malformed)
    );
}

#[test]
fn grants_cover_ids_paths_and_namespaces() {
    let grant = |p: &str| Grant {
        project: p.into(),
        role: Role::Reporter,
    };
    assert!(grant("7").covers(7, "a/b"));
    assert!(!grant("7").covers(8, "a/b"));
    assert!(grant("Acme/Tools").covers(1, "acme/tools"));
    assert!(!grant("acme/tools").covers(1, "acme/tools2"));
    assert!(grant("acme/*").covers(1, "acme/tools"));
    assert!(grant("acme/*").covers(1, "acme/platform/tools"));
    assert!(!grant("acme/*").covers(1, "acmeinc/tools"));
    assert!(!grant("acme/*").covers(1, "acme"));
    assert!(grant("*").covers(1, "x/y"));
}

#[test]
fn role_on_takes_the_highest_matching_grant() {
    let mut c = claims(Kind::Personal);
    c.grants.push(Grant {
        project: "acme/tools".into(),
        role: Role::Maintainer,
    });
    assert_eq!(c.role_on(1, "acme/tools"), Some(Role::Maintainer));
    assert_eq!(c.role_on(1, "acme/other"), Some(Role::Developer));
    assert_eq!(c.role_on(1, "other/x"), None);
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration_secs("30d"), Some(30 * 86_400));
    assert_eq!(parse_duration_secs("12h"), Some(12 * 3600));
    assert_eq!(parse_duration_secs("90"), Some(90));
    assert_eq!(parse_duration_secs("5x"), None);
    assert_eq!(parse_duration_secs("d"), None);
}
