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

/// Hostile token text: whatever arrives is accepted or rejected, never a
/// panic.
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = Kind> {
        prop::sample::select(Kind::ALL.to_vec())
    }

    /// A token signed with the right secret over any payload at all, so the
    /// decoding behind the signature check is reached.
    fn signed_over(kind: Kind, payload: &[u8]) -> String {
        let signed = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(payload));
        let mac = URL_SAFE_NO_PAD.encode(mac_of(SECRET, &signed).finalize().into_bytes());
        format!("{signed}.{mac}")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_text_is_rejected_without_panic(text in "\\PC{0,300}") {
            prop_assert!(verify(&[SECRET], &text, NOW).is_err());
        }

        #[test]
        fn prefixed_garbage_is_rejected(kind in kind(), rest in "[A-Za-z0-9_.=+/-]{0,200}") {
            let text = format!("{}{rest}", kind.prefix());
            prop_assert!(verify(&[SECRET], &text, NOW).is_err());
        }

        #[test]
        fn signed_arbitrary_payloads_decode_or_are_malformed(
            kind in kind(),
            payload in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..200),
                "\\PC{0,120}".prop_map(String::into_bytes),
                Just(br#"{"jti":"x","kind":"personal"}"#.to_vec()),
            ],
        ) {
            match verify(&[SECRET], &signed_over(kind, &payload), NOW) {
                Ok(claims) => prop_assert_eq!(claims.kind, kind),
                Err(e) => prop_assert!(e == TokenError::Malformed || e == TokenError::Expired),
            }
        }

        #[test]
        fn a_token_changed_anywhere_is_rejected(
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            kind in kind(),
        ) {
            let token = mint(SECRET, &claims(kind));
            let mut bytes = token.clone().into_bytes();
            let at = at.index(bytes.len());
            prop_assume!(bytes[at] != byte);
            bytes[at] = byte;
            let changed = String::from_utf8_lossy(&bytes);
            prop_assert!(verify(&[SECRET], &changed, NOW).is_err());
        }

        #[test]
        fn minted_claims_round_trip(
            kind in kind(),
            subject in "\\PC{0,40}",
            id in "[a-z0-9-]{1,20}",
            lifetime in 1u64..u64::MAX / 2,
        ) {
            let mut c = claims(kind);
            c.subject = subject;
            c.id = id;
            c.expires_at = Some(NOW + lifetime);
            let token = mint(SECRET, &c);
            prop_assert_eq!(verify(&[SECRET], &token, NOW).unwrap(), c);
        }

        #[test]
        fn durations_and_secrets_parse_without_panic(text in "\\PC{0,30}") {
            if let Some(secs) = parse_duration_secs(&text) {
                prop_assert!(text.trim().chars().next().is_some_and(|c| c.is_ascii_digit()));
                let _ = secs;
            }
            for secret in parse_secrets(&text) {
                prop_assert!(!secret.is_empty() && !secret.contains(','));
            }
        }
    }
}
