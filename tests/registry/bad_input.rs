//! Hostile and malformed input gets a clear 4xx, never a 5xx, and never
//! stores anything.

use genreg::genreg_token::{Kind, Scope};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn invalid_names_versions_and_paths_answer_gitlabs_400() {
    let r = start().await;
    let id = r
        .create_project("acme", "tools", "private")
        .await
        .to_string();
    let cases: &[(&str, &str)] = &[
        ("my%20tool/1.0/a.bin", "package_name is invalid"),
        ("t%C3%A9/1.0/a.bin", "package_name is invalid"),
        ("t/1.0..1/a.bin", "package_version is invalid"),
        ("t/1.0%2F1/a.bin", "package_version is invalid"),
        ("t/1.0/~a.bin", "file_name is invalid"),
        ("t/1.0/a.bin@", "file_name is invalid"),
        ("t/1.0/caf%C3%A9.bin", "file_name is invalid"),
        ("t/1.0/a%20b", "file_name is invalid"),
        (
            "%2E%2E/1.0/a.bin",
            "package_name should be a valid file path",
        ),
        (
            "t/%2E%2E/a.bin",
            "package_version should be a valid file path",
        ),
        ("t/1.0/%2E%2E", "file_name should be a valid file path"),
        (
            "t/1.0/x/%2E%2E%2F%2E%2E/a.bin",
            "path should be a valid file path",
        ),
        ("t/1.0/%252e%252e/a.bin", "path should be a valid file path"),
        ("t/1.0/a%5C..%5Cb/a.bin", "path should be a valid file path"),
        ("t/1.0/%2Fetc/a.bin", "path should be a valid file path"),
        ("t/1.0/a%0Ab/a.bin", "path should be a valid file path"),
        ("t/1.0/a%25252e", "file_name should be a valid file path"),
        (
            "bad%20name/1..0/~x",
            "package_name is invalid, package_version is invalid, file_name is invalid",
        ),
        (
            "t/1.0/a.bin?status=gone",
            "status does not have a valid value",
        ),
        (
            "t/1.0/a.bin?select=everything",
            "select does not have a valid value",
        ),
    ];
    let admin = r.admin();
    let auth = [("PRIVATE-TOKEN", admin.as_str())];
    for (rest, message) in cases {
        let path = format!("/api/v4/projects/{id}/packages/generic/{rest}");
        let (status, body) = raw(&r, "PUT", &path, &auth, b"x").await;
        assert_eq!(status, 400, "PUT {rest}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body, json!({"error": message}), "PUT {rest}");
        if !rest.contains('?') {
            let (status, _) = raw(&r, "GET", &path, &auth, b"").await;
            assert_eq!(status, 400, "GET {rest}");
        }
    }
    assert!(r.objects().is_empty(), "nothing was stored");
}

#[tokio::test]
async fn malformed_requests_never_cause_a_server_error() {
    let r = start().await;
    let id = r
        .create_project("acme", "tools", "private")
        .await
        .to_string();
    let admin = r.admin();
    let urls = [
        r.generic(&id, "t/1.0"),
        r.generic(&id, "t"),
        r.generic(&id, "t/1.0//a.bin"),
        r.generic(&id, &format!("t/1.0/{}", "a".repeat(300))),
        r.generic(&id, &format!("{}/1.0/a", "n".repeat(300))),
        r.generic("%FF%FE", "t/1.0/a.bin"),
        r.generic("acme%2F..%2Ftools", "t/1.0/a.bin"),
        r.generic("99999999999999999999999", "t/1.0/a.bin"),
        r.url("/api/v4/projects/%00"),
        r.url("/api/v4/nothing/here"),
    ];
    for url in urls {
        for method in [
            reqwest::Method::PUT,
            reqwest::Method::GET,
            reqwest::Method::DELETE,
        ] {
            let response = r
                .client
                .request(method.clone(), &url)
                .header("PRIVATE-TOKEN", &admin)
                .body(b"x".to_vec())
                .send()
                .await
                .unwrap();
            let status = response.status();
            assert!(status.is_client_error(), "{method} {url} answered {status}");
            let body = response.text().await.unwrap();
            assert!(
                serde_json::from_str::<serde_json::Value>(&body).is_ok(),
                "{method} {url}: {body}"
            );
        }
    }
    let bad_checksum = r
        .client
        .put(r.generic(&id, "t/1.0/a.bin"))
        .header("PRIVATE-TOKEN", &admin)
        .header("X-Checksum-SHA256", "not-hex")
        .body(b"x".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(bad_checksum.status(), StatusCode::BAD_REQUEST);
    assert!(r.objects().is_empty(), "nothing was stored");
}

#[tokio::test]
async fn encoded_slashes_cannot_make_empty_path_segments() {
    let r = start().await;
    let id = r
        .create_project("acme", "tools", "private")
        .await
        .to_string();
    let admin = r.admin();
    let auth = [("PRIVATE-TOKEN", admin.as_str())];
    for rest in [
        "t/1.0/a//b/f.bin",
        "t/1.0/a%2F%2Fb/f.bin",
        "t/1.0/a%2F/f.bin",
        "t/1.0/a/%2F/f.bin",
    ] {
        let path = format!("/api/v4/projects/{id}/packages/generic/{rest}");
        let (status, body) = raw(&r, "PUT", &path, &auth, b"x").await;
        assert_eq!(status, 400, "PUT {rest}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            json!({"error": "path should be a valid file path"}),
            "PUT {rest}"
        );
    }
    assert!(r.objects().is_empty(), "nothing was stored");
    // One encoded slash between two names is an ordinary path.
    let path = format!("/api/v4/projects/{id}/packages/generic/t/1.0/a%2Fb/f.bin");
    let (status, body) = raw(&r, "PUT", &path, &auth, b"x").await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn empty_credentials_are_anonymous_as_in_gitlab() {
    let r = start().await;
    let id = r.create_project("acme", "open", "public").await.to_string();
    let admin = r.admin();
    let url = r.generic(&id, "t/1.0/a.bin");
    assert_eq!(
        r.put(&url, Some(&admin), b"hello".to_vec()).await.status(),
        StatusCode::CREATED
    );
    // base64(":") and base64("gitlab-ci-token:")
    let headers: &[(&str, &str)] = &[
        ("PRIVATE-TOKEN", ""),
        ("JOB-TOKEN", ""),
        ("Deploy-Token", ""),
        ("Authorization", ""),
        ("Authorization", "Bearer "),
        ("Authorization", "Basic Og=="),
        ("Authorization", "Basic Z2l0bGFiLWNpLXRva2VuOg=="),
    ];
    for (name, value) in headers {
        let response = r
            .client
            .get(&url)
            .header(*name, *value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{name}: {value:?}");
        assert_eq!(response.bytes().await.unwrap().as_ref(), b"hello");
    }
    for query in ["private_token=", "job_token="] {
        let response = r.get(&format!("{url}?{query}"), None).await;
        assert_eq!(response.status(), StatusCode::OK, "?{query}");
    }
    // Anonymous may not publish: 401, as without any header.
    let response = r
        .client
        .put(&url)
        .header("PRIVATE-TOKEN", "")
        .body(b"x".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A wrong token is still refused.
    let response = r
        .client
        .get(&url)
        .header("PRIVATE-TOKEN", "glpat-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn deeply_nested_graphql_answers_gitlabs_error_not_a_trap() {
    let r = start().await;
    let send = |body: serde_json::Value, token: Option<String>| {
        let mut request = r.client.post(r.url("/api/graphql")).json(&body);
        if let Some(token) = token {
            request = request.header("PRIVATE-TOKEN", token);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            json(response).await
        }
    };
    // A 5 KB anonymous body, thousands of selection sets deep.
    let deep = format!("{}x{}", "{a".repeat(2500), "}".repeat(2500));
    let answer = send(json!({ "query": deep }), None).await;
    assert_eq!(
        answer,
        json!({"errors": [{"message": "Query has depth of 2500, which exceeds max depth of 15"}]})
    );
    // Deep argument values, authenticated.
    let values = format!("{{ namespace(fullPath: {}) {{ id }} }}", "[".repeat(3000));
    let answer = send(json!({ "query": values }), Some(r.admin())).await;
    let message = answer["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("exceeds max nesting of 64"), "{message}");
    // A document over GitLab's size limit.
    let large = format!(
        "{{ namespace(fullPath: \"acme\") {{ id }} }}{}",
        " ".repeat(10_000)
    );
    let answer = send(json!({ "query": large }), None).await;
    assert_eq!(answer["errors"][0]["message"], "Query too large");
    // Deeply nested variables are refused by the JSON reader, with a 400.
    let variables = format!(
        "{{\"query\":\"{{ a }}\",\"variables\":{{\"v\":{}1{}}}}}",
        "[".repeat(3000),
        "]".repeat(3000)
    );
    let response = r
        .client
        .post(r.url("/api/graphql"))
        .header("Content-Type", "application/json")
        .body(variables)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn exception_regexes_with_perl_classes_are_accepted_and_applied() {
    let r = start().await;
    let id = r
        .create_project("acme", "tools", "private")
        .await
        .to_string();
    let admin = r.admin();
    let settings = r.url("/api/v4/groups/acme/packages/settings");
    for regex in [r"\w+-SNAPSHOT", r"\s*release", r"\d+\.\d+\.\d+"] {
        let response = r
            .client
            .put(&settings)
            .header("PRIVATE-TOKEN", &admin)
            .json(&json!({
                "generic_duplicates_allowed": false,
                "generic_duplicate_exception_regex": regex,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{regex}");
        assert_eq!(
            json(response).await["generic_duplicate_exception_regex"],
            regex
        );
    }
    // Through GraphQL too.
    let mutation = r#"mutation($regex: String) { updateNamespacePackageSettings(input: {namespacePath: "acme", genericDuplicateExceptionRegex: $regex}) { packageSettings { genericDuplicateExceptionRegex } errors } }"#;
    let response = r
        .client
        .post(r.url("/api/graphql"))
        .header("PRIVATE-TOKEN", &admin)
        .json(&json!({"query": mutation, "variables": {"regex": r"\d+\.\d+\.\d+"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(response).await["data"]["updateNamespacePackageSettings"]["errors"],
        json!([])
    );
    // Versions matching `\d+\.\d+\.\d+` take duplicates; others do not.
    for (rest, status) in [
        ("t/1.2.3/a.bin", StatusCode::CREATED),
        ("t/1.2.3/a.bin", StatusCode::CREATED),
        ("t/1.2/a.bin", StatusCode::CREATED),
        ("t/1.2/a.bin", StatusCode::BAD_REQUEST),
    ] {
        let response = r
            .put(&r.generic(&id, rest), Some(&admin), b"x".to_vec())
            .await;
        assert_eq!(response.status(), status, "{rest}");
    }
}

/// An administrator token that never expires, so only the lifetime limit
/// bounds what it issues.
fn lasting_admin(r: &TestRegistry) -> String {
    r.token(TokenSpec {
        kind: Kind::Personal,
        scopes: vec![Scope::Api],
        grants: vec![],
        admin: true,
        expires_at: None,
    })
}

#[tokio::test]
async fn access_tokens_live_at_most_a_year_by_default() {
    let r = start().await;
    r.create_project("acme", "tools", "private").await;
    let admin = lasting_admin(&r);
    let user = json(
        post(
            &r,
            "/api/v4/users",
            Some(&admin),
            json!({"username": "alice"}),
        )
        .await,
    )
    .await;
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
        let refused = post(&r, endpoint, Some(&admin), token(Some("2199-12-31".into()))).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{endpoint}");
        assert_eq!(
            json(refused).await["message"],
            format!(
                "400 Bad request - Expires at must be before {}",
                date_in(366)
            ),
            "{endpoint}"
        );
        let last_day = post(&r, endpoint, Some(&admin), token(Some(date_in(365)))).await;
        assert_eq!(last_day.status(), StatusCode::CREATED, "{endpoint}");
        let default = json(post(&r, endpoint, Some(&admin), token(None)).await).await;
        assert_eq!(default["expires_at"], date_in(365), "{endpoint}");
    }
    // Deploy tokens may live for ever, as in GitLab.
    let deploy = post(
        &r,
        "/api/v4/projects/acme%2Ftools/deploy_tokens",
        Some(&admin),
        json!({"name": "d", "scopes": ["read_package_registry"], "expires_at": "2199-12-31"}),
    )
    .await;
    assert_eq!(deploy.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn the_token_lifetime_limit_is_configurable() {
    let r = start_with(&[("max_token_lifetime_days", "30")]).await;
    r.create_project("acme", "tools", "private").await;
    let admin = lasting_admin(&r);
    let path = "/api/v4/projects/acme%2Ftools/access_tokens";
    let token = json!({"name": "ci", "scopes": ["api"], "access_level": 30});
    let default = json(post(&r, path, Some(&admin), token.clone()).await).await;
    assert_eq!(default["expires_at"], date_in(30));
    let mut longer = token.clone();
    longer["expires_at"] = date_in(31).into();
    let refused = post(&r, path, Some(&admin), longer).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);

    let r = start_with(&[("max_token_lifetime_days", "0")]).await;
    r.create_project("acme", "tools", "private").await;
    let admin = lasting_admin(&r);
    let mut lasting = token;
    lasting["expires_at"] = "2199-12-31".into();
    let created = post(&r, path, Some(&admin), lasting).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(json(created).await["expires_at"], "2199-12-31");
}
