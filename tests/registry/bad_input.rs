//! Hostile and malformed input gets a clear 4xx, never a 5xx, and never
//! stores anything: the cases whose way through HTTP and the host matters
//! (raw paths, encodings, empty headers). GraphQL nesting, regexes and
//! token lifetimes are checked natively (`src/testing/api/bad_input.rs`).

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

/// The component keeps a 512 KiB stack (`.cargo/config.toml`): the deepest
/// documents it reads, a GraphQL document at its bracket limit and a JSON
/// body at serde_json's nesting limit, are answered, not trapped.
#[tokio::test]
async fn the_deepest_documents_fit_the_components_stack() {
    let r = start().await;
    let admin = r.admin();
    let depth = 62; // with the query's braces and parentheses: 64 brackets
    let query = format!(
        "query {{ project(fullPath: {}\"acme/tools\"{}) {{ id }} }}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let answer = post(&r, "/api/graphql", Some(&admin), json!({ "query": query })).await;
    let status = answer.status();
    let body = json(answer).await;
    assert!(
        !status.is_server_error(),
        "GraphQL answered {status}: {body}"
    );

    let nested = format!("{}1{}", "[".repeat(127), "]".repeat(127));
    let answer = r
        .client
        .post(r.url("/api/v4/projects"))
        .header("PRIVATE-TOKEN", &admin)
        .header("Content-Type", "application/json")
        .body(format!("{{\"name\": {nested}, \"path\": \"deep\"}}"))
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let body = json(answer).await;
    assert!(
        status.is_client_error(),
        "a nested JSON body answered {status}: {body}"
    );
}
