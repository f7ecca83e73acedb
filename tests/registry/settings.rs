//! Namespace package settings (duplicates) through REST and GraphQL, and
//! group-wide package listings.

use genreg::genreg_token::{Role, Scope};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::*;

async fn graphql(r: &TestRegistry, token: &str, query: &str, variables: Value) -> Value {
    let response = r
        .client
        .post(r.url("/api/graphql"))
        .header("Authorization", format!("Bearer {token}"))
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    json(response).await
}

const UPDATE: &str = r#"mutation($input: UpdateNamespacePackageSettingsInput!) {
  updateNamespacePackageSettings(input: $input) {
    packageSettings { genericDuplicatesAllowed genericDuplicateExceptionRegex }
    errors
  }
}"#;

#[tokio::test]
async fn duplicates_follow_the_namespace_settings_set_through_graphql() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    let owner = r.token(personal(&[Scope::Api], "acme/*", Role::Owner));
    let maintainer = r.token(personal(&[Scope::Api], "acme/*", Role::Maintainer));

    let refused = graphql(
        &r,
        &maintainer,
        UPDATE,
        json!({"input": {"namespacePath": "acme", "genericDuplicatesAllowed": false}}),
    )
    .await;
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
    )
    .await;
    assert_eq!(
        answer["data"]["updateNamespacePackageSettings"],
        json!({"packageSettings": {"genericDuplicatesAllowed": false, "genericDuplicateExceptionRegex": ".*-SNAPSHOT"}, "errors": []})
    );
    let read = graphql(
        &r,
        &owner,
        r#"{ namespace(fullPath: "acme") { packageSettings { genericDuplicatesAllowed } } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        read["data"]["namespace"]["packageSettings"]["genericDuplicatesAllowed"],
        false
    );

    let url = |rest: &str| r.generic(&id.to_string(), rest);
    assert_eq!(
        r.put(&url("t/1.0/a.bin"), Some(&r.admin()), b"1".to_vec())
            .await
            .status(),
        StatusCode::CREATED
    );
    let duplicate = r
        .put(&url("t/1.0/a.bin"), Some(&r.admin()), b"2".to_vec())
        .await;
    assert_eq!(duplicate.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json(duplicate).await,
        json!({"message": "400 Bad request - Duplicate package is not allowed"})
    );
    assert_eq!(
        r.get(&url("t/1.0/a.bin"), Some(&r.admin()))
            .await
            .bytes()
            .await
            .unwrap(),
        "1"
    );
    assert_eq!(r.objects().len(), 1, "the refused upload's object is gone");
    // Another file name, and versions the exception regex matches, are fine.
    assert_eq!(
        r.put(&url("t/1.0/b.bin"), Some(&r.admin()), b"3".to_vec())
            .await
            .status(),
        StatusCode::CREATED
    );
    for body in ["4", "5"] {
        let response = r
            .put(&url("t/1.0-SNAPSHOT/a.bin"), Some(&r.admin()), body.into())
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }

    let invalid = graphql(
        &r,
        &owner,
        UPDATE,
        json!({"input": {"namespacePath": "acme", "genericDuplicateExceptionRegex": "(unclosed"}}),
    )
    .await;
    let errors = &invalid["data"]["updateNamespacePackageSettings"]["errors"];
    assert!(
        errors[0].as_str().unwrap().contains("not valid RE2 syntax"),
        "{invalid}"
    );
}

#[tokio::test]
async fn racing_uploads_of_one_name_without_duplicates_give_one_201_and_one_400() {
    let r = std::sync::Arc::new(start().await);
    let id = r.create_project("acme", "tools", "private").await;
    let settings = r.url("/api/v4/groups/acme/packages/settings");
    let response = r
        .client
        .put(&settings)
        .header("PRIVATE-TOKEN", r.admin())
        .json(&json!({"generic_duplicates_allowed": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for round in 0..4 {
        let uploads = (0..2u8).map(|i| {
            let r = r.clone();
            tokio::spawn(async move {
                let url = r.generic(&id.to_string(), &format!("race/{round}/same.bin"));
                r.put(&url, Some(&r.admin()), data(64 * 1024, i))
                    .await
                    .status()
            })
        });
        let mut statuses: Vec<StatusCode> = futures::future::join_all(uploads)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::BAD_REQUEST],
            "round {round}"
        );
    }
}

#[tokio::test]
async fn rest_settings_are_for_owners_and_validate_the_regex() {
    let r = start().await;
    r.create_project("acme", "tools", "private").await;
    let settings = r.url("/api/v4/groups/acme/packages/settings");
    let current = json(r.get(&settings, Some(&r.admin())).await).await;
    assert_eq!(
        current,
        json!({"generic_duplicates_allowed": true, "generic_duplicate_exception_regex": ""})
    );
    let maintainer = r.token(personal(&[Scope::Api], "acme/*", Role::Maintainer));
    let put = |token: String, body: Value| {
        let client = r.client.clone();
        let url = settings.clone();
        async move {
            client
                .put(url)
                .header("PRIVATE-TOKEN", token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        put(maintainer, json!({"generic_duplicates_allowed": false}))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let too_long = put(
        r.admin(),
        json!({"generic_duplicate_exception_regex": "a".repeat(256)}),
    )
    .await;
    assert_eq!(too_long.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json(too_long).await,
        json!({"message": {"generic_duplicate_exception_regex": ["is too long (maximum is 255 characters)"]}})
    );
    assert_eq!(
        put(r.admin(), json!({"generic_duplicate_exception_regex": "("}))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    let missing = r
        .get(
            &r.url("/api/v4/groups/nobody/packages/settings"),
            Some(&r.admin()),
        )
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn graphql_sets_the_cleanup_policy_and_rejects_garbage() {
    let r = start().await;
    r.create_project("acme", "tools", "private").await;
    let answer = graphql(
        &r,
        &r.admin(),
        r#"mutation { updatePackagesCleanupPolicy(input: {projectPath: "acme/tools", keepNDuplicatedPackageFiles: TEN_PACKAGE_FILES}) { packagesCleanupPolicy { keepNDuplicatedPackageFiles } errors } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        answer["data"]["updatePackagesCleanupPolicy"]["packagesCleanupPolicy"]
            ["keepNDuplicatedPackageFiles"],
        "TEN_PACKAGE_FILES"
    );
    let rest = json(
        r.get(
            &r.url("/api/v4/projects/acme%2Ftools/packages/cleanup_policy"),
            Some(&r.admin()),
        )
        .await,
    )
    .await;
    assert_eq!(rest["keep_n_duplicated_package_files"], "10");
    let broken = graphql(&r, &r.admin(), "mutation { oops(", json!({})).await;
    assert!(broken["errors"][0]["message"].is_string());
    let unknown = graphql(
        &r,
        &r.admin(),
        "{ nothing(fullPath: \"x\") { a } }",
        json!({}),
    )
    .await;
    assert!(unknown["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("doesn't exist"));
}

#[tokio::test]
async fn group_listings_cover_subgroups_and_name_the_project() {
    let r = start().await;
    let top = r.create_project("acme", "tools", "private").await;
    let nested = r.create_project("acme/platform", "api", "private").await;
    let other = r.create_project("other", "x", "private").await;
    for (project, name) in [(top, "top"), (nested, "nested"), (other, "elsewhere")] {
        r.put(
            &r.generic(&project.to_string(), &format!("{name}/1.0/a.bin")),
            Some(&r.admin()),
            b"x".to_vec(),
        )
        .await;
    }
    let list = |query: &str| {
        let url = r.url(&format!("/api/v4/groups/acme/packages{query}"));
        let admin = r.admin();
        let client = r.client.clone();
        async move {
            json(
                client
                    .get(url)
                    .header("PRIVATE-TOKEN", admin)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let all = list("").await;
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["top", "nested"]);
    assert_eq!(all[1]["project_path"], "acme/platform/api");
    assert_eq!(all[1]["project_id"], nested);
    let direct = list("?exclude_subgroups=true").await;
    assert_eq!(direct.as_array().unwrap().len(), 1);
    // A token that sees one project lists only its packages.
    let narrow = r.token(personal(
        &[Scope::ReadApi],
        "acme/platform/api",
        Role::Reporter,
    ));
    let response = r
        .get(&r.url("/api/v4/groups/acme/packages"), Some(&narrow))
        .await;
    let seen = json(response).await;
    assert_eq!(seen.as_array().unwrap().len(), 1);
    assert_eq!(seen[0]["name"], "nested");
}
