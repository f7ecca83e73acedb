//! Creating projects (administrators) and finding them by id or path.

use genreg::genreg_token::{Role, Scope};
use reqwest::StatusCode;

use crate::common::*;

#[tokio::test]
async fn administrators_create_projects_from_json_or_form_fields() {
    let r = start().await;
    let response = r
        .client
        .post(r.url("/api/v4/projects"))
        .header("PRIVATE-TOKEN", r.admin())
        .json(&serde_json::json!({"path": "tools", "namespace_path": "acme/platform", "name": "Tools", "visibility": "public"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let project = json(response).await;
    assert_eq!(project["name"], "Tools");
    assert_eq!(project["path"], "tools");
    assert_eq!(project["path_with_namespace"], "acme/platform/tools");
    assert_eq!(project["visibility"], "public");
    assert!(project["id"].as_u64().is_some());
    assert!(project["created_at"].as_str().unwrap().ends_with('Z'));

    let response = r
        .client
        .post(r.url("/api/v4/projects"))
        .header("PRIVATE-TOKEN", r.admin())
        .form(&[("path", "other"), ("namespace_path", "acme")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let project = json(response).await;
    assert_eq!(project["visibility"], "private");
    assert_eq!(project["name"], "other");
}

#[tokio::test]
async fn a_taken_path_is_refused_like_gitlab() {
    let r = start().await;
    r.create_project("acme", "tools", "private").await;
    let response = r
        .client
        .post(r.url("/api/v4/projects"))
        .header("PRIVATE-TOKEN", r.admin())
        .json(&serde_json::json!({"path": "Tools", "namespace_path": "ACME"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json(response).await,
        serde_json::json!({"message": {"path": ["has already been taken"]}})
    );
}

#[tokio::test]
async fn only_administrators_create_projects() {
    let r = start().await;
    let body = serde_json::json!({"path": "tools", "namespace_path": "acme"});
    let anonymous = r
        .client
        .post(r.url("/api/v4/projects"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let owner = r.token(personal(&[Scope::Api], "*", Role::Owner));
    let response = r
        .client
        .post(r.url("/api/v4/projects"))
        .header("PRIVATE-TOKEN", owner)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_project_fields_answer_400() {
    let r = start().await;
    for body in [
        serde_json::json!({"namespace_path": "acme"}),
        serde_json::json!({"path": "tools"}),
        serde_json::json!({"path": "../x", "namespace_path": "acme"}),
        serde_json::json!({"path": "tools", "namespace_path": "acme/../x"}),
        serde_json::json!({"path": "tools", "namespace_path": "acme", "visibility": "secret"}),
    ] {
        let response = r
            .client
            .post(r.url("/api/v4/projects"))
            .header("PRIVATE-TOKEN", r.admin())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let response = r
        .client
        .post(r.url("/api/v4/projects"))
        .header("PRIVATE-TOKEN", r.admin())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn projects_are_found_by_id_or_encoded_path_when_visible() {
    let r = start().await;
    let id = r.create_project("acme/platform", "tools", "private").await;
    for reference in [
        id.to_string(),
        "acme%2Fplatform%2Ftools".into(),
        "ACME%2Fplatform%2Ftools".into(),
    ] {
        let response = r
            .get(
                &r.url(&format!("/api/v4/projects/{reference}")),
                Some(&r.admin()),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{reference}");
        assert_eq!(json(response).await["id"], id);
    }
    let stranger = r.token(personal(&[Scope::Api], "other/*", Role::Owner));
    for token in [None, Some(stranger.as_str())] {
        let response = r
            .get(&r.url(&format!("/api/v4/projects/{id}")), token)
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            json(response).await,
            serde_json::json!({"message": "404 Project Not Found"})
        );
    }
    let missing = r
        .get(&r.url("/api/v4/projects/9999"), Some(&r.admin()))
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

/// The ids of the projects a listing answers.
async fn listed_ids(r: &TestRegistry, path: &str) -> Vec<u64> {
    let response = r.get(&r.url(path), Some(&r.admin())).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    json(response)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn deleting_a_project_removes_it_its_packages_and_frees_its_path() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "public").await;
    let other = r.create_project("acme", "other", "private").await;
    let admin = r.admin();
    for file in ["tool/1.0/a.bin", "tool/1.0/b.bin", "tool/2.0/a.bin"] {
        let response = r
            .put(&r.generic("acme%2Ftools", file), Some(&admin), data(100, 1))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    assert_eq!(r.objects().len(), 3);
    let created = r
        .client
        .post(r.url(&format!("/api/v4/projects/{id}/access_tokens")))
        .header("PRIVATE-TOKEN", &admin)
        .json(&serde_json::json!({"name": "ci", "scopes": ["api"], "access_level": 40}))
        .send()
        .await
        .unwrap();
    let bound_token = json(created).await["token"].as_str().unwrap().to_string();
    let project_url = r.url(&format!("/api/v4/projects/{id}"));

    // Only administrators: maintainers 403, strangers 404, anonymous 401.
    let maintainer = r.token(personal(&[Scope::Api], "acme/*", Role::Owner));
    let stranger = r.token(personal(&[Scope::Api], "other/*", Role::Owner));
    let other_url = r.url(&format!("/api/v4/projects/{other}"));
    for (token, status) in [
        (Some(maintainer.as_str()), StatusCode::FORBIDDEN),
        (Some(stranger.as_str()), StatusCode::NOT_FOUND),
        (None, StatusCode::UNAUTHORIZED),
    ] {
        let response = r.request(reqwest::Method::DELETE, &other_url, token).await;
        assert_eq!(response.status(), status, "{token:?}");
    }

    let response = r
        .request(
            reqwest::Method::DELETE,
            &r.url("/api/v4/projects/acme%2Ftools"),
            Some(&admin),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        json(response).await,
        serde_json::json!({"message": "202 Accepted"})
    );

    // Gone for every endpoint, and its files with it.
    for url in [
        project_url.clone(),
        r.url("/api/v4/projects/acme%2Ftools"),
        r.url(&format!("/api/v4/projects/{id}/packages")),
        r.url(&format!("/api/v4/projects/{id}/access_tokens")),
        r.generic(&id.to_string(), "tool/1.0/a.bin"),
    ] {
        let response = r.get(&url, Some(&admin)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{url}");
    }
    let anonymous = r
        .get(&r.generic("acme%2Ftools", "tool/1.0/a.bin"), None)
        .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(listed_ids(&r, "/api/v4/projects").await, vec![other]);
    assert_eq!(
        listed_ids(&r, "/api/v4/groups/acme/projects").await,
        vec![other]
    );
    let packages = r
        .get(&r.url("/api/v4/groups/acme/packages"), Some(&admin))
        .await;
    assert_eq!(json(packages).await, serde_json::json!([]));
    assert!(r.objects().is_empty(), "{:?}", r.objects());
    let again = r
        .request(reqwest::Method::DELETE, &project_url, Some(&admin))
        .await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    // The path is free: a new project, with a new id, empty, which tokens
    // bound to the old one do not reach.
    let new_id = r.create_project("acme", "tools", "private").await;
    assert_ne!(new_id, id);
    let found = r
        .get(&r.url("/api/v4/projects/acme%2Ftools"), Some(&admin))
        .await;
    assert_eq!(json(found).await["id"], new_id);
    let packages = r
        .get(
            &r.url("/api/v4/projects/acme%2Ftools/packages"),
            Some(&admin),
        )
        .await;
    assert_eq!(json(packages).await, serde_json::json!([]));
    let old_token = r
        .get(&r.url("/api/v4/projects/acme%2Ftools"), Some(&bound_token))
        .await;
    assert_eq!(old_token.status(), StatusCode::NOT_FOUND);
    let published = r
        .put(
            &r.generic("acme%2Ftools", "tool/1.0/a.bin"),
            Some(&admin),
            data(10, 2),
        )
        .await;
    assert_eq!(published.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_publish_in_flight_into_a_deleted_project_leaves_nothing_behind() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let r = start_with(&[("s3_part_size", "5242880")]).await;
    let id = r.create_project("acme", "tools", "private").await;
    let admin = r.admin();
    let address = r.registry.url().trim_start_matches("http://").to_string();
    let path = format!("/api/v4/projects/{id}/packages/generic/t/1.0/late.bin");
    let size = 6 * 1024 * 1024;
    let body = data(size, 4);

    // A body larger than a part starts a multipart upload at once: when it
    // shows up, the publish has found its project and is streaming.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {address}\r\nPRIVATE-TOKEN: {admin}\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..1024]).await.unwrap();
    stream.flush().await.unwrap();
    while r.unfinished_uploads().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let deleted = r
        .request(
            reqwest::Method::DELETE,
            &r.url(&format!("/api/v4/projects/{id}")),
            Some(&admin),
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);

    // The publish completes its upload, records the file, finds its project
    // gone and takes back what it added.
    stream.write_all(&body[1024..]).await.unwrap();
    stream.flush().await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(answer.contains("404 Project Not Found"), "{answer}");
    assert!(r.objects().is_empty(), "left behind: {:?}", r.objects());
    assert!(r.unfinished_uploads().is_empty());
    let again = r.create_project("acme", "tools", "private").await;
    let packages = r
        .get(
            &r.url(&format!("/api/v4/projects/{again}/packages")),
            Some(&admin),
        )
        .await;
    assert_eq!(json(packages).await, serde_json::json!([]));
}
