//! Tokens issued through GitLab's API: project and group access tokens,
//! deploy tokens and our CI job tokens. Who may issue them, what they may
//! do, and that revocation and expiry take effect on the next request.

use base64::Engine;
use genreg::genreg_token::{Role, Scope};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::*;

async fn delete(r: &TestRegistry, path: &str, token: &str) -> StatusCode {
    r.request(reqwest::Method::DELETE, &r.url(path), Some(token))
        .await
        .status()
}

/// Publishes a small file with a token in the given header.
async fn publish_with(r: &TestRegistry, project: &str, header: &str, token: &str) -> StatusCode {
    r.client
        .put(r.generic(project, "tok/1.0/file.bin"))
        .header(header, token)
        .body(b"data".to_vec())
        .send()
        .await
        .unwrap()
        .status()
}

async fn download_with(r: &TestRegistry, project: &str, header: &str, token: &str) -> StatusCode {
    r.client
        .get(r.generic(project, "tok/1.0/file.bin"))
        .header(header, token)
        .send()
        .await
        .unwrap()
        .status()
}

fn maintainer(r: &TestRegistry) -> String {
    r.token(personal(&[Scope::Api], "acme/*", Role::Maintainer))
}

#[tokio::test]
async fn project_access_tokens_are_created_listed_and_revoked() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    let maintainer = maintainer(&r);
    let response = post(
        &r,
        "/api/v4/projects/acme%2Ftools/access_tokens",
        Some(&maintainer),
        json!({"name": "ci", "scopes": ["api"], "access_level": 30, "expires_at": date_in(30)}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created = json(response).await;
    assert_eq!(created["name"], "ci");
    assert_eq!(created["scopes"], json!(["api"]));
    assert_eq!(created["access_level"], 30);
    assert_eq!(created["expires_at"], date_in(30));
    assert_eq!(created["active"], true);
    assert_eq!(created["revoked"], false);
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("glpat-"));
    let token_id = created["id"].as_u64().unwrap();

    // The token acts as a developer on this project, by id or path.
    assert_eq!(
        publish_with(&r, &id.to_string(), "PRIVATE-TOKEN", &token).await,
        StatusCode::CREATED
    );
    assert_eq!(
        download_with(&r, "acme%2Ftools", "PRIVATE-TOKEN", &token).await,
        StatusCode::OK
    );

    let list = r
        .get(
            &r.url("/api/v4/projects/acme%2Ftools/access_tokens"),
            Some(&maintainer),
        )
        .await;
    assert_eq!(list.status(), StatusCode::OK);
    assert_eq!(list.headers()["x-total"], "1");
    let list = json(list).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], token_id);
    assert!(
        list[0].get("token").is_none(),
        "listings never carry the token"
    );

    let one = r
        .get(
            &r.url(&format!("/api/v4/projects/{id}/access_tokens/{token_id}")),
            Some(&maintainer),
        )
        .await;
    assert_eq!(one.status(), StatusCode::OK);
    assert!(json(one).await.get("token").is_none());

    let path = format!("/api/v4/projects/{id}/access_tokens/{token_id}");
    assert_eq!(delete(&r, &path, &maintainer).await, StatusCode::NO_CONTENT);
    // Effective on the very next request.
    assert_eq!(
        download_with(&r, "acme%2Ftools", "PRIVATE-TOKEN", &token).await,
        StatusCode::UNAUTHORIZED
    );
    let shown = json(r.get(&r.url(&path), Some(&maintainer)).await).await;
    assert_eq!(shown["revoked"], true);
    assert_eq!(shown["active"], false);
}

#[tokio::test]
async fn tokens_of_one_project_cannot_be_reached_through_another() {
    let r = start().await;
    r.create_project("acme", "tools", "private").await;
    let other = r.create_project("acme", "other", "private").await;
    let maintainer = maintainer(&r);
    let created = json(
        post(
            &r,
            "/api/v4/projects/acme%2Ftools/access_tokens",
            Some(&maintainer),
            json!({"name": "ci", "scopes": ["api"]}),
        )
        .await,
    )
    .await;
    let token_id = created["id"].as_u64().unwrap();
    let token = created["token"].as_str().unwrap();
    let path = format!("/api/v4/projects/{other}/access_tokens/{token_id}");
    assert_eq!(delete(&r, &path, &maintainer).await, StatusCode::NOT_FOUND);
    // The token still works in its own project (a maintainer by default).
    assert_eq!(
        publish_with(&r, "acme%2Ftools", "PRIVATE-TOKEN", token).await,
        StatusCode::CREATED
    );
    // And it reaches nothing but its project.
    assert_eq!(
        publish_with(&r, &other.to_string(), "PRIVATE-TOKEN", token).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn issuers_never_grant_more_than_they_have() {
    let r = start().await;
    r.create_project("acme", "tools", "private").await;
    let path = "/api/v4/projects/acme%2Ftools/access_tokens";
    let body = |level: u8| json!({"name": "t", "scopes": ["api"], "access_level": level});

    // A maintainer may issue up to maintainer, not owner.
    let maintainer = maintainer(&r);
    assert_eq!(
        post(&r, path, Some(&maintainer), body(40)).await.status(),
        StatusCode::CREATED
    );
    let above = post(&r, path, Some(&maintainer), body(50)).await;
    assert_eq!(above.status(), StatusCode::BAD_REQUEST);
    // An owner may issue owner tokens; an administrator too.
    let owner = r.token(personal(&[Scope::Api], "acme/tools", Role::Owner));
    assert_eq!(
        post(&r, path, Some(&owner), body(50)).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        post(&r, path, Some(&r.admin()), body(50)).await.status(),
        StatusCode::CREATED
    );

    // Developers, read-only tokens, deploy and job tokens administer nothing.
    let refused = [
        r.token(personal(&[Scope::Api], "acme/*", Role::Developer)),
        r.token(personal(&[Scope::ReadApi], "acme/*", Role::Owner)),
    ];
    for token in &refused {
        assert_eq!(
            post(&r, path, Some(token), body(10)).await.status(),
            StatusCode::FORBIDDEN
        );
    }
    let deploy = r.token(deploy(&[Scope::WritePackageRegistry], "acme/*"));
    let job = r.token(job("acme/tools"));
    for (header, token) in [("Deploy-Token", &deploy), ("JOB-TOKEN", &job)] {
        for endpoint in ["access_tokens", "deploy_tokens", "job_tokens"] {
            let status = r
                .client
                .post(r.url(&format!("/api/v4/projects/acme%2Ftools/{endpoint}")))
                .header(header, token.as_str())
                .json(&json!({"name": "t", "scopes": ["read_package_registry"]}))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, StatusCode::FORBIDDEN, "{header} on {endpoint}");
        }
        let status = r
            .client
            .put(r.url("/api/v4/projects/acme%2Ftools"))
            .header(header, token.as_str())
            .json(&json!({"visibility": "public"}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::FORBIDDEN, "{header} on the project");
    }
    // Strangers do not learn the project exists; anonymous callers must log in.
    let stranger = r.token(personal(&[Scope::Api], "other/*", Role::Owner));
    assert_eq!(
        post(&r, path, Some(&stranger), body(10)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(&r, path, None, body(10)).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // A token never outlives the token that issued it.
    let mut spec = personal(&[Scope::Api], "acme/*", Role::Maintainer);
    spec.expires_at = Some(now_secs() + 3 * 86_400);
    let short_lived = r.token(spec);
    let longer = json!({"name": "t", "scopes": ["api"], "expires_at": date_in(30)});
    assert_eq!(
        post(&r, path, Some(&short_lived), longer).await.status(),
        StatusCode::BAD_REQUEST
    );
    let default = json(
        post(
            &r,
            path,
            Some(&short_lived),
            json!({"name": "t", "scopes": ["api"]}),
        )
        .await,
    )
    .await;
    assert_eq!(default["expires_at"], date_in(3));
}

#[tokio::test]
async fn bad_token_requests_answer_400() {
    let r = start().await;
    r.create_project("acme", "tools", "private").await;
    let maintainer = maintainer(&r);
    for (endpoint, body) in [
        ("access_tokens", json!({"scopes": ["api"]})),
        ("access_tokens", json!({"name": "t"})),
        ("access_tokens", json!({"name": "t", "scopes": ["sudo"]})),
        (
            "access_tokens",
            json!({"name": "t", "scopes": ["api"], "access_level": 45}),
        ),
        (
            "access_tokens",
            json!({"name": "t", "scopes": ["api"], "expires_at": "2001-01-01"}),
        ),
        ("deploy_tokens", json!({"name": "t", "scopes": ["api"]})),
        (
            "deploy_tokens",
            json!({"name": "t", "scopes": ["read_package_registry"], "username": "a b"}),
        ),
        ("job_tokens", json!({"expires_in": 86_401})),
        ("job_tokens", json!({"expires_in": 0})),
    ] {
        let path = format!("/api/v4/projects/acme%2Ftools/{endpoint}");
        let response = post(&r, &path, Some(&maintainer), body.clone()).await;
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{endpoint} {body}"
        );
    }
}

#[tokio::test]
async fn group_access_tokens_reach_every_project_below_the_group() {
    let r = start().await;
    let nested = r.create_project("acme/platform", "tools", "private").await;
    let outside = r.create_project("other", "x", "private").await;
    let group = json(r.get(&r.url("/api/v4/groups/acme"), Some(&r.admin())).await).await;
    let group_id = group["id"].as_u64().unwrap();
    let path = format!("/api/v4/groups/{group_id}/access_tokens");
    let body = json!({"name": "g", "scopes": ["api"], "access_level": 30});

    // Group tokens need an owner of the group.
    let maintainer = maintainer(&r);
    assert_eq!(
        post(&r, &path, Some(&maintainer), body.clone())
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let owner = r.token(personal(&[Scope::Api], "acme/*", Role::Owner));
    let created =
        json(post(&r, "/api/v4/groups/acme/access_tokens", Some(&owner), body).await).await;
    let token = created["token"].as_str().unwrap().to_string();
    assert_eq!(created["access_level"], 30);

    assert_eq!(
        publish_with(&r, &nested.to_string(), "PRIVATE-TOKEN", &token).await,
        StatusCode::CREATED
    );
    assert_eq!(
        publish_with(&r, &outside.to_string(), "PRIVATE-TOKEN", &token).await,
        StatusCode::NOT_FOUND
    );

    let list = json(r.get(&r.url(&path), Some(&owner)).await).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let token_id = created["id"].as_u64().unwrap();
    assert_eq!(
        delete(&r, &format!("{path}/{token_id}"), &owner).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        publish_with(&r, &nested.to_string(), "PRIVATE-TOKEN", &token).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn deploy_tokens_read_or_write_packages_and_are_deleted() {
    let r = start().await;
    let id = r
        .create_project("acme", "tools", "private")
        .await
        .to_string();
    assert_eq!(
        publish_with(&r, &id, "PRIVATE-TOKEN", &r.admin()).await,
        StatusCode::CREATED
    );
    let maintainer = maintainer(&r);
    let path = format!("/api/v4/projects/{id}/deploy_tokens");
    let response = post(
        &r,
        &path,
        Some(&maintainer),
        json!({"name": "read", "scopes": ["read_package_registry"]}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let reader = json(response).await;
    let reader_id = reader["id"].as_u64().unwrap();
    assert_eq!(
        reader["username"],
        format!("gitlab+deploy-token-{reader_id}")
    );
    assert_eq!(reader["scopes"], json!(["read_package_registry"]));
    assert_eq!(reader["expires_at"], Value::Null);
    assert_eq!(reader["revoked"], false);
    assert_eq!(reader["expired"], false);
    let read_token = reader["token"].as_str().unwrap().to_string();
    assert!(read_token.starts_with("gldt-"));

    assert_eq!(
        download_with(&r, &id, "Deploy-Token", &read_token).await,
        StatusCode::OK
    );
    assert_eq!(
        publish_with(&r, &id, "Deploy-Token", &read_token).await,
        StatusCode::FORBIDDEN
    );
    // Basic authentication with the deploy token's user name.
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("gitlab+deploy-token-{reader_id}:{read_token}"));
    assert_eq!(
        download_with(&r, &id, "Authorization", &format!("Basic {basic}")).await,
        StatusCode::OK
    );

    let writer = json(
        post(
            &r,
            &path,
            Some(&maintainer),
            json!({"name": "write", "scopes": ["read_package_registry", "write_package_registry"], "username": "ci-bot", "expires_at": date_in(5)}),
        )
        .await,
    )
    .await;
    assert_eq!(writer["username"], "ci-bot");
    assert!(writer["expires_at"].as_str().unwrap().ends_with('Z'));
    let write_token = writer["token"].as_str().unwrap();
    assert_eq!(
        publish_with(&r, &id, "Deploy-Token", write_token).await,
        StatusCode::CREATED
    );

    let list = r.get(&r.url(&path), Some(&maintainer)).await;
    assert_eq!(list.headers()["x-total"], "2");
    let list = json(list).await;
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t.get("token").is_none()));

    assert_eq!(
        delete(&r, &format!("{path}/{reader_id}"), &maintainer).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        download_with(&r, &id, "Deploy-Token", &read_token).await,
        StatusCode::UNAUTHORIZED
    );
    let list = json(r.get(&r.url(&path), Some(&maintainer)).await).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "write");
    assert_eq!(
        delete(&r, &format!("{path}/{reader_id}"), &maintainer).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn group_deploy_tokens_need_an_owner_and_reach_nested_projects() {
    let r = start().await;
    let nested = r
        .create_project("acme/platform", "tools", "private")
        .await
        .to_string();
    let path = "/api/v4/groups/acme/deploy_tokens";
    let body = json!({"name": "d", "scopes": ["write_package_registry"]});
    assert_eq!(
        post(&r, path, Some(&maintainer(&r)), body.clone())
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let owner = r.token(personal(&[Scope::Api], "acme/*", Role::Owner));
    let created = json(post(&r, path, Some(&owner), body).await).await;
    let token = created["token"].as_str().unwrap();
    assert_eq!(
        publish_with(&r, &nested, "Deploy-Token", token).await,
        StatusCode::CREATED
    );
    let list = json(r.get(&r.url(path), Some(&owner)).await).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn job_tokens_publish_in_their_project_only() {
    let r = start().await;
    let id = r
        .create_project("acme", "tools", "private")
        .await
        .to_string();
    let other = r
        .create_project("acme", "other", "private")
        .await
        .to_string();
    let path = format!("/api/v4/projects/{id}/job_tokens");
    let developer = r.token(personal(&[Scope::Api], "acme/*", Role::Developer));
    assert_eq!(
        post(&r, &path, Some(&developer), json!({})).await.status(),
        StatusCode::FORBIDDEN
    );

    let response = post(&r, &path, Some(&maintainer(&r)), json!({"expires_in": 600})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created = json(response).await;
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("glcbt-"));
    let expires_at: jiff::Timestamp = created["expires_at"].as_str().unwrap().parse().unwrap();
    let left = expires_at.as_second() - now_secs() as i64;
    assert!((590..=601).contains(&left), "{left}");

    assert_eq!(
        publish_with(&r, &id, "JOB-TOKEN", &token).await,
        StatusCode::CREATED
    );
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("gitlab-ci-token:{token}"));
    assert_eq!(
        download_with(&r, &id, "Authorization", &format!("Basic {basic}")).await,
        StatusCode::OK
    );
    assert_eq!(
        publish_with(&r, &other, "JOB-TOKEN", &token).await,
        StatusCode::NOT_FOUND
    );
    // A job token is no personal token.
    assert_eq!(
        publish_with(&r, &id, "PRIVATE-TOKEN", &token).await,
        StatusCode::UNAUTHORIZED
    );

    let default = json(post(&r, &path, Some(&r.admin()), json!({})).await).await;
    let expires_at: jiff::Timestamp = default["expires_at"].as_str().unwrap().parse().unwrap();
    let left = expires_at.as_second() - now_secs() as i64;
    assert!((3590..=3601).contains(&left), "{left}");
}

#[tokio::test]
async fn expired_and_forged_tokens_answer_401() {
    let r = start().await;
    let id = r
        .create_project("acme", "tools", "private")
        .await
        .to_string();
    let mut expired = personal(&[Scope::Api], "acme/*", Role::Maintainer);
    expired.expires_at = Some(now_secs() - 1);
    let expired = r.token(expired);
    let forged = r.token_with_secret(
        personal(&[Scope::Api], "acme/*", Role::Maintainer),
        "not-the-secret",
    );
    for token in [&expired, &forged] {
        let response = post(
            &r,
            &format!("/api/v4/projects/{id}/access_tokens"),
            Some(token),
            json!({"name": "t", "scopes": ["api"]}),
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body = response.text().await.unwrap();
        assert!(
            !body.contains(token.as_str()),
            "tokens never appear in error bodies"
        );
        assert_eq!(
            publish_with(&r, &id, "PRIVATE-TOKEN", token).await,
            StatusCode::UNAUTHORIZED
        );
    }
}
