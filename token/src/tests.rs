use super::*;

/// Signs with one given secret (what [`Secrets::sign`] does with its first).
fn mint(secret: &[u8], claims: &Claims) -> String {
    wire::sign(secret, claims)
}

/// Verifies against the given secrets (what [`Secrets::verify`] does).
fn verify<S: AsRef<[u8]>>(secrets: &[S], token: &str, now: u64) -> Result<Claims, TokenError> {
    wire::open(secrets, token, now)
}

fn parse_secrets(text: &str) -> Vec<&str> {
    secrets::split(text).collect()
}

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

#[test]
fn secrets_sign_with_the_first_and_verify_with_all() {
    let rotated = Secrets::parse(" new , old ,").unwrap();
    assert_eq!(rotated.count(), 2);
    let signed = rotated.sign(&claims(Kind::Personal));
    // Signed with the first: the new secret alone verifies it, the old does not.
    assert!(Secrets::parse("new").unwrap().verify(&signed, NOW).is_ok());
    assert_eq!(
        Secrets::parse("old").unwrap().verify(&signed, NOW),
        Err(TokenError::BadSignature)
    );
    // Tokens signed with the old secret still verify during the rotation.
    let before = Secrets::parse("old").unwrap().sign(&claims(Kind::Deploy));
    assert_eq!(rotated.verify(&before, NOW).unwrap(), claims(Kind::Deploy));
    assert_eq!(
        rotated.verify(&before, NOW + 3600),
        Err(TokenError::Expired)
    );
}

#[test]
fn secrets_sign_and_verify_as_the_wire_format_does() {
    let secrets = Secrets::parse("s1,s2").unwrap();
    let c = claims(Kind::Job);
    assert_eq!(secrets.sign(&c), mint(b"s1", &c));
    assert_eq!(
        secrets.verify(&mint(b"s2", &c), NOW),
        verify(&parse_secrets("s1,s2"), &mint(b"s2", &c), NOW)
    );
}

#[test]
fn macs_are_made_with_the_first_secret_and_checked_with_all() {
    let rotated = Secrets::parse("new,old").unwrap();
    let mac = rotated.mac("sha256-helper 1700000000");
    assert!(rotated.verifies_mac("sha256-helper 1700000000", &mac));
    assert!(Secrets::parse("new")
        .unwrap()
        .verifies_mac("sha256-helper 1700000000", &mac));
    assert!(!Secrets::parse("old")
        .unwrap()
        .verifies_mac("sha256-helper 1700000000", &mac));
    // Another text, another secret, or garbage: refused.
    assert!(!rotated.verifies_mac("sha256-helper 1700000001", &mac));
    let by_old = Secrets::parse("old").unwrap().mac("x");
    assert!(rotated.verifies_mac("x", &by_old));
    assert!(!Secrets::parse("other").unwrap().verifies_mac("x", &by_old));
    for garbage in ["", "!!", "AAAA"] {
        assert!(!rotated.verifies_mac("x", garbage), "{garbage:?}");
    }
}

#[test]
fn a_secret_text_without_a_secret_is_an_error() {
    for blank in ["", " ", ",", " , ,"] {
        assert_eq!(Secrets::parse(blank), Err(NoSecret), "{blank:?}");
    }
}

#[test]
fn secrets_never_show_in_debug_output() {
    let shown = format!("{:?}", Secrets::parse("hunter2,swordfish").unwrap());
    assert!(
        !shown.contains("hunter2") && !shown.contains("swordfish"),
        "{shown}"
    );
    assert!(shown.contains('2'), "{shown}");
}

#[test]
fn roles_and_access_levels_map_both_ways() {
    let levels: Vec<u8> = Role::ALL.iter().map(|r| r.access_level()).collect();
    assert_eq!(levels, vec![10, 20, 30, 40, 50]);
    for role in Role::ALL {
        assert_eq!(Role::from_access_level(role.access_level()), Some(role));
        let text = format!(" {} ", role.access_level());
        assert_eq!(Role::from_access_level_text(&text), Some(role));
        assert_eq!(Role::parse(role.name()), Some(role));
        let json = serde_json::to_string(&role).unwrap();
        assert_eq!(json, format!("\"{}\"", role.name()));
    }
    for level in [0, 5, 15, 35, 60, 255] {
        assert_eq!(Role::from_access_level(level), None, "{level}");
    }
    for text in ["", "35", "030", "+30", "3O", "thirty", "40.0"] {
        assert_eq!(Role::from_access_level_text(text), None, "{text:?}");
    }
    assert_eq!(Role::parse("Owner"), None);
    assert!(Role::Guest < Role::Reporter && Role::Maintainer < Role::Owner);
}

#[test]
fn scope_names_parse_render_and_match_the_token_format() {
    for scope in Scope::ALL {
        assert_eq!(Scope::parse(scope.name()), Some(scope));
        let json = serde_json::to_string(&scope).unwrap();
        assert_eq!(json, format!("\"{}\"", scope.name()));
    }
    assert_eq!(Scope::parse("write_repository"), None);
    assert_eq!(Scope::parse("API"), None);
}

#[test]
fn each_issued_token_takes_only_its_scopes() {
    assert_eq!(ACCESS_TOKEN_SCOPES, &Scope::ALL);
    assert_eq!(
        Scope::parse_among("api", DEPLOY_TOKEN_SCOPES),
        None,
        "a deploy token never carries api"
    );
    assert_eq!(
        Scope::parse_among("write_package_registry", DEPLOY_TOKEN_SCOPES),
        Some(Scope::WritePackageRegistry)
    );
    assert_eq!(
        Scope::parse_among("write_package_registry", PERSONAL_ACCESS_TOKEN_SCOPES),
        None
    );
    assert_eq!(
        Scope::parse_among("read_api", PERSONAL_ACCESS_TOKEN_SCOPES),
        Some(Scope::ReadApi)
    );
    assert_eq!(Scope::parse_among("nope", ACCESS_TOKEN_SCOPES), None);
}

#[test]
fn kinds_have_names_prefixes_and_default_scopes() {
    for kind in Kind::ALL {
        assert_eq!(Kind::parse(kind.name()), Some(kind));
    }
    assert_eq!(Kind::parse("robot"), None);
    assert_eq!(Kind::Personal.default_scopes(), vec![Scope::Api]);
    assert_eq!(Kind::Deploy.default_scopes(), DEPLOY_TOKEN_SCOPES.to_vec());
    assert!(Kind::Job.default_scopes().is_empty());
}

#[test]
fn paths_lie_within_groups_at_segment_boundaries_ignoring_case() {
    assert!(is_within("acme", "acme"));
    assert!(is_within("Acme/Tools", "acme"));
    assert!(is_within("acme/platform/tools", "ACME/platform"));
    assert!(!is_within("acmeinc/tools", "acme"));
    assert!(!is_within("acme", "acme/tools"));
    assert!(
        !is_within("acme/", "acme"),
        "an empty last segment is no path"
    );
    assert!(!is_within("tools", ""));

    assert!(is_below("acme/tools", "acme"));
    assert!(!is_below("acme", "acme"));
    assert!(!is_below("acme/", "acme"));
    assert!(!is_below("acmeinc", "acme"));
    // Non-ASCII text never panics on a byte index.
    assert!(!is_below("\u{e9}\u{e9}/x", "\u{e9}"));
    assert!(is_below("\u{e9}/x", "\u{e9}"));
}

#[test]
fn group_roles_come_from_wildcards_on_the_group_or_its_parents() {
    let grant = |p: &str, role| Grant {
        project: p.into(),
        role,
    };
    let mut c = claims(Kind::Personal);
    c.grants = vec![
        grant("acme/*", Role::Reporter),
        grant("acme/platform/*", Role::Maintainer),
        grant("acme/tools", Role::Owner),
        grant("42", Role::Owner),
    ];
    assert_eq!(c.role_on_group("acme"), Some(Role::Reporter));
    assert_eq!(c.role_on_group("Acme/Platform"), Some(Role::Maintainer));
    assert_eq!(
        c.role_on_group("acme/platform/deep"),
        Some(Role::Maintainer)
    );
    assert_eq!(
        c.role_on_group("acme/tools"),
        Some(Role::Reporter),
        "a project grant is no group role"
    );
    assert_eq!(c.role_on_group("acmeinc"), None);
    assert_eq!(c.role_on_group("other"), None);
    assert!(grant("*", Role::Guest).covers_group("any/group"));
}

#[test]
fn grants_reach_below_a_group_through_their_selector_path() {
    let grant = |p: &str| Grant {
        project: p.into(),
        role: Role::Guest,
    };
    assert!(grant("acme/tools").reaches_below("acme"));
    assert!(grant("acme/platform/*").reaches_below("acme"));
    assert!(grant("Acme/platform/tools").reaches_below("acme/PLATFORM"));
    assert!(
        !grant("acme/*").reaches_below("acme"),
        "the group itself is not below it"
    );
    assert!(!grant("acmeinc/tools").reaches_below("acme"));
    assert!(!grant("42").reaches_below("acme"));
    assert!(!grant("*").reaches_below("acme"));
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
        wire::sign_payload(SECRET, kind, payload)
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
        fn is_within_agrees_with_comparing_lowercased_segments(
            path in "[aAbB/\u{e9}]{0,8}",
            group in "[aAbB/\u{e9}]{0,5}",
        ) {
            let (p, g) = (path.to_ascii_lowercase(), group.to_ascii_lowercase());
            let below = p.len() > g.len() + 1 && p.starts_with(&format!("{g}/"));
            prop_assert_eq!(is_below(&path, &group), below);
            prop_assert_eq!(is_within(&path, &group), p == g || below);
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
