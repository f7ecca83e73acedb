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
