//! Namespace package settings (duplicates) through REST and GraphQL, and
//! group-wide package listings.

use genreg_token::{Role, Scope};
use serde_json::{json, Value};

use crate::http::Method;
use crate::testing::{personal, Credential, TestRegistry};

/// A GraphQL request with the token as `Authorization: Bearer`; GraphQL
/// answers 200 whatever it says.
fn graphql(r: &TestRegistry, who: &Credential, query: &str, variables: Value) -> Value {
    let bearer = format!("Bearer {}", who.token);
    let body = json!({"query": query, "variables": variables}).to_string();
    let reply = r.send(
        Method::Post,
        "/api/graphql",
        &[
            ("Authorization", bearer.as_str()),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert_eq!(reply.status, 200);
    reply.json()
}

const UPDATE: &str = r#"mutation($input: UpdateNamespacePackageSettingsInput!) {
  updateNamespacePackageSettings(input: $input) {
    packageSettings { genericDuplicatesAllowed genericDuplicateExceptionRegex }
    errors
  }
}"#;

#[test]
fn duplicates_follow_the_namespace_settings_set_through_graphql() {
    let r = TestRegistry::default();
    let admin = r.admin();
    let id = r.create_project("acme", "tools", "private");
    let owner = Credential::private(r.token(personal(&[Scope::Api], "acme/*", Role::Owner)));
    let maintainer =
        Credential::private(r.token(personal(&[Scope::Api], "acme/*", Role::Maintainer)));

    let refused = graphql(
        &r,
        &maintainer,
        UPDATE,
        json!({"input": {"namespacePath": "acme", "genericDuplicatesAllowed": false}}),
    );
    assert!(refused["data"]["updateNamespacePackageSettings"].is_null());
    assert!(refused["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("permission"));

    let answer = graphql(
        &r,
        &owner,
        UPDATE,
        json!({"input": {"namespacePath": "acme", "genericDuplicatesAllowed": false, "genericDuplicateExceptionRegex": ".*-SNAPSHOT"}}),
    );
    assert_eq!(
        answer["data"]["updateNamespacePackageSettings"],
        json!({"packageSettings": {"genericDuplicatesAllowed": false, "genericDuplicateExceptionRegex": ".*-SNAPSHOT"}, "errors": []})
    );
    let read = graphql(
        &r,
        &owner,
        r#"{ namespace(fullPath: "acme") { packageSettings { genericDuplicatesAllowed } } }"#,
        json!({}),
    );
    assert_eq!(
        read["data"]["namespace"]["packageSettings"]["genericDuplicatesAllowed"],
        false
    );

    let url = |rest: &str| r.generic(id, rest);
    assert_eq!(r.put_bytes(&url("t/1.0/a.bin"), &admin, b"1").status, 201);
    let duplicate = r.put_bytes(&url("t/1.0/a.bin"), &admin, b"2");
    assert_eq!(duplicate.status, 400);
    assert_eq!(
        duplicate.json(),
        json!({"message": "400 Bad request - Duplicate package is not allowed"})
    );
    assert_eq!(r.get(&url("t/1.0/a.bin"), &admin).body, b"1");
    assert_eq!(
        r.s3.objects.borrow().len(),
        1,
        "the refused upload's object is gone"
    );
    // Another file name, and versions the exception regex matches, are fine.
    assert_eq!(r.put_bytes(&url("t/1.0/b.bin"), &admin, b"3").status, 201);
    for body in ["4", "5"] {
        let reply = r.put_bytes(&url("t/1.0-SNAPSHOT/a.bin"), &admin, body.as_bytes());
        assert_eq!(reply.status, 201);
    }

    let invalid = graphql(
        &r,
        &owner,
        UPDATE,
        json!({"input": {"namespacePath": "acme", "genericDuplicateExceptionRegex": "(unclosed"}}),
    );
    let errors = &invalid["data"]["updateNamespacePackageSettings"]["errors"];
    assert!(
        errors[0].as_str().unwrap().contains("not valid RE2 syntax"),
        "{invalid}"
    );
}

#[test]
fn rest_settings_are_for_owners_and_validate_the_regex() {
    let r = TestRegistry::default();
    let admin = r.admin();
    r.create_project("acme", "tools", "private");
    let settings = "/api/v4/groups/acme/packages/settings";
    assert_eq!(
        r.get(settings, &admin).json(),
        json!({"generic_duplicates_allowed": true, "generic_duplicate_exception_regex": ""})
    );
    let maintainer =
        Credential::private(r.token(personal(&[Scope::Api], "acme/*", Role::Maintainer)));
    let put = |who: &Credential, body: Value| r.call(Method::Put, settings, who, Some(body));
    assert_eq!(
        put(&maintainer, json!({"generic_duplicates_allowed": false})).status,
        403
    );
    let too_long = put(
        &admin,
        json!({"generic_duplicate_exception_regex": "a".repeat(256)}),
    );
    assert_eq!(too_long.status, 400);
    assert_eq!(
        too_long.json(),
        json!({"message": {"generic_duplicate_exception_regex": ["is too long (maximum is 255 characters)"]}})
    );
    assert_eq!(
        put(&admin, json!({"generic_duplicate_exception_regex": "("})).status,
        400
    );
    let missing = r.get("/api/v4/groups/nobody/packages/settings", &admin);
    assert_eq!(missing.status, 404);
}

#[test]
fn graphql_sets_the_cleanup_policy_and_rejects_garbage() {
    let r = TestRegistry::default();
    let admin = r.admin();
    r.create_project("acme", "tools", "private");
    let answer = graphql(
        &r,
        &admin,
        r#"mutation { updatePackagesCleanupPolicy(input: {projectPath: "acme/tools", keepNDuplicatedPackageFiles: TEN_PACKAGE_FILES}) { packagesCleanupPolicy { keepNDuplicatedPackageFiles } errors } }"#,
        json!({}),
    );
    assert_eq!(
        answer["data"]["updatePackagesCleanupPolicy"]["packagesCleanupPolicy"]
            ["keepNDuplicatedPackageFiles"],
        "TEN_PACKAGE_FILES"
    );
    let rest = r
        .get(
            "/api/v4/projects/acme%2Ftools/packages/cleanup_policy",
            &admin,
        )
        .json();
    assert_eq!(rest["keep_n_duplicated_package_files"], "10");
    let broken = graphql(&r, &admin, "mutation { oops(", json!({}));
    assert!(broken["errors"][0]["message"].is_string());
    let unknown = graphql(&r, &admin, "{ nothing(fullPath: \"x\") { a } }", json!({}));
    assert!(unknown["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("doesn't exist"));
}

#[test]
fn group_listings_cover_subgroups_and_name_the_project() {
    let r = TestRegistry::default();
    let admin = r.admin();
    let top = r.create_project("acme", "tools", "private");
    let nested = r.create_project("acme/platform", "api", "private");
    let other = r.create_project("other", "x", "private");
    for (project, name) in [(top, "top"), (nested, "nested"), (other, "elsewhere")] {
        r.put_bytes(
            &r.generic(project, &format!("{name}/1.0/a.bin")),
            &admin,
            b"x",
        );
    }
    let list = |query: &str| {
        r.get(&format!("/api/v4/groups/acme/packages{query}"), &admin)
            .json()
    };
    let all = list("");
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["top", "nested"]);
    assert_eq!(all[1]["project_path"], "acme/platform/api");
    assert_eq!(all[1]["project_id"], nested);
    let direct = list("?exclude_subgroups=true");
    assert_eq!(direct.as_array().unwrap().len(), 1);
    // A token that sees one project lists only its packages.
    let narrow = Credential::private(r.token(personal(
        &[Scope::ReadApi],
        "acme/platform/api",
        Role::Reporter,
    )));
    let seen = r.get("/api/v4/groups/acme/packages", &narrow).json();
    assert_eq!(seen.as_array().unwrap().len(), 1);
    assert_eq!(seen[0]["name"], "nested");
}
