//! Hostile and malformed input to the API gets a clear 4xx (GraphQL: its
//! error answer), and limits on what callers ask for hold. Input whose way
//! through HTTP matters (raw paths, empty headers) stays in the integration
//! suite (`tests/registry/bad_input.rs`).

use serde_json::{json, Value};

use crate::http::Method;
use crate::testing::{administrator, Credential, TestRegistry, NOW};

/// POSTs `/api/graphql` with an optional credential; GraphQL answers 200.
fn graphql(r: &TestRegistry, body: Value, who: &Credential) -> Value {
    let reply = r.call(Method::Post, "/api/graphql", who, Some(body));
    assert_eq!(reply.status, 200);
    reply.json()
}

#[test]
fn deeply_nested_graphql_answers_gitlabs_error_not_a_trap() {
    let r = TestRegistry::default();
    let anonymous = Credential::anonymous();
    // A 5 KB anonymous body, thousands of selection sets deep.
    let deep = format!("{}x{}", "{a".repeat(2500), "}".repeat(2500));
    let answer = graphql(&r, json!({ "query": deep }), &anonymous);
    assert_eq!(
        answer,
        json!({"errors": [{"message": "Query has depth of 2500, which exceeds max depth of 15"}]})
    );
    // Deep argument values, authenticated.
    let values = format!("{{ namespace(fullPath: {}) {{ id }} }}", "[".repeat(3000));
    let answer = graphql(&r, json!({ "query": values }), &r.admin());
    let message = answer["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("exceeds max nesting of 64"), "{message}");
    // A document over GitLab's size limit.
    let large = format!(
        "{{ namespace(fullPath: \"acme\") {{ id }} }}{}",
        " ".repeat(10_000)
    );
    let answer = graphql(&r, json!({ "query": large }), &anonymous);
    assert_eq!(answer["errors"][0]["message"], "Query too large");
    // Deeply nested variables are refused by the JSON reader, with a 400.
    let variables = format!(
        "{{\"query\":\"{{ a }}\",\"variables\":{{\"v\":{}1{}}}}}",
        "[".repeat(3000),
        "]".repeat(3000)
    );
    let reply = r.send(
        Method::Post,
        "/api/graphql",
        &[("Content-Type", "application/json")],
        variables.as_bytes(),
    );
    assert_eq!(reply.status, 400);
}

#[test]
fn exception_regexes_with_perl_classes_are_accepted_and_applied() {
    let r = TestRegistry::default();
    let id = r.create_project("acme", "tools", "private");
    let admin = r.admin();
    let settings = "/api/v4/groups/acme/packages/settings";
    for regex in [r"\w+-SNAPSHOT", r"\s*release", r"\d+\.\d+\.\d+"] {
        let reply = r.call(
            Method::Put,
            settings,
            &admin,
            Some(json!({
                "generic_duplicates_allowed": false,
                "generic_duplicate_exception_regex": regex,
            })),
        );
        assert_eq!(reply.status, 200, "{regex}");
        assert_eq!(reply.json()["generic_duplicate_exception_regex"], regex);
    }
    // Through GraphQL too.
    let mutation = r#"mutation($regex: String) { updateNamespacePackageSettings(input: {namespacePath: "acme", genericDuplicateExceptionRegex: $regex}) { packageSettings { genericDuplicateExceptionRegex } errors } }"#;
    let answer = graphql(
        &r,
        json!({"query": mutation, "variables": {"regex": r"\d+\.\d+\.\d+"}}),
        &admin,
    );
    assert_eq!(
        answer["data"]["updateNamespacePackageSettings"]["errors"],
        json!([])
    );
    // Versions matching `\d+\.\d+\.\d+` take duplicates; others do not.
    for (rest, status) in [
        ("t/1.2.3/a.bin", 201),
        ("t/1.2.3/a.bin", 201),
        ("t/1.2/a.bin", 201),
        ("t/1.2/a.bin", 400),
    ] {
        let reply = r.put_bytes(&r.generic(id, rest), &admin, b"x");
        assert_eq!(reply.status, status, "{rest}");
    }
}

/// A `YYYY-MM-DD` this many days after the registry's clock.
fn date_in(days: u64) -> String {
    let at = jiff::Timestamp::from_second((NOW + days * 86_400) as i64).unwrap();
    at.strftime("%Y-%m-%d").to_string()
}

/// An administrator token that never expires, so only the lifetime limit
/// bounds what it issues.
fn lasting_admin(r: &TestRegistry) -> Credential {
    Credential::private(r.token(administrator()))
}

fn post(r: &TestRegistry, path: &str, who: &Credential, body: Value) -> (u16, Value) {
    let reply = r.call(Method::Post, path, who, Some(body));
    (reply.status, reply.json())
}

#[test]
fn access_tokens_live_at_most_a_year_by_default() {
    let r = TestRegistry::default();
    r.create_project("acme", "tools", "private");
    let admin = lasting_admin(&r);
    let (_, user) = post(&r, "/api/v4/users", &admin, json!({"username": "alice"}));
    let endpoints = [
        "/api/v4/projects/acme%2Ftools/access_tokens".to_string(),
        "/api/v4/groups/acme/access_tokens".to_string(),
        format!("/api/v4/users/{}/personal_access_tokens", user["id"]),
    ];
    let token = |expires_at: Option<String>| {
        let mut token = json!({"name": "ci", "scopes": ["api"], "access_level": 30});
        if let Some(at) = expires_at {
            token["expires_at"] = at.into();
        }
        token
    };
    for endpoint in &endpoints {
        let (status, refused) = post(&r, endpoint, &admin, token(Some("2199-12-31".into())));
        assert_eq!(status, 400, "{endpoint}");
        assert_eq!(
            refused["message"],
            format!(
                "400 Bad request - Expires at must be before {}",
                date_in(366)
            ),
            "{endpoint}"
        );
        let (status, _) = post(&r, endpoint, &admin, token(Some(date_in(365))));
        assert_eq!(status, 201, "{endpoint}");
        let (_, default) = post(&r, endpoint, &admin, token(None));
        assert_eq!(default["expires_at"], date_in(365), "{endpoint}");
    }
    // Deploy tokens may live for ever, as in GitLab.
    let (status, _) = post(
        &r,
        "/api/v4/projects/acme%2Ftools/deploy_tokens",
        &admin,
        json!({"name": "d", "scopes": ["read_package_registry"], "expires_at": "2199-12-31"}),
    );
    assert_eq!(status, 201);
}

#[test]
fn the_token_lifetime_limit_is_configurable() {
    let r = TestRegistry::with_variables(&[("max_token_lifetime_days", "30")]);
    r.create_project("acme", "tools", "private");
    let admin = lasting_admin(&r);
    let path = "/api/v4/projects/acme%2Ftools/access_tokens";
    let token = json!({"name": "ci", "scopes": ["api"], "access_level": 30});
    let (_, default) = post(&r, path, &admin, token.clone());
    assert_eq!(default["expires_at"], date_in(30));
    let mut longer = token.clone();
    longer["expires_at"] = date_in(31).into();
    let (status, _) = post(&r, path, &admin, longer);
    assert_eq!(status, 400);

    let r = TestRegistry::with_variables(&[("max_token_lifetime_days", "0")]);
    r.create_project("acme", "tools", "private");
    let admin = lasting_admin(&r);
    let mut lasting = token;
    lasting["expires_at"] = "2199-12-31".into();
    let (status, created) = post(&r, path, &admin, lasting);
    assert_eq!(status, 201);
    assert_eq!(created["expires_at"], "2199-12-31");
}
