//! Users and the personal access tokens administrators hand out to them:
//! `POST /users`, `GET /users/:id`, `POST /users/:id/personal_access_tokens`
//! with the `projects` grants, and listing, showing and revoking them
//! through `/personal_access_tokens`.

use genreg::genreg_token::{Role, Scope};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

async fn create_user(r: &TestRegistry, username: &str) -> u64 {
    let response = post(
        r,
        "/api/v4/users",
        Some(&r.admin()),
        json!({"username": username}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    json(response).await["id"].as_u64().unwrap()
}

#[tokio::test]
async fn administrators_create_users_with_unique_usernames() {
    let r = start().await;
    let admin = r.admin();
    let body = json!({"username": "alice", "name": "Alice A.", "email": "alice@example.com"});
    let anonymous = post(&r, "/api/v4/users", None, body.clone()).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let owner = r.token(personal(&[Scope::Api], "*", Role::Owner));
    let refused = post(&r, "/api/v4/users", Some(&owner), body.clone()).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let response = post(&r, "/api/v4/users", Some(&admin), body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let alice = json(response).await;
    assert_eq!(alice["username"], "alice");
    assert_eq!(alice["name"], "Alice A.");
    assert_eq!(alice["state"], "active");
    assert_eq!(
        alice["web_url"],
        format!("{}/alice", r.registry.url()).as_str()
    );
    let id = alice["id"].as_u64().unwrap();

    let taken = post(
        &r,
        "/api/v4/users",
        Some(&admin),
        json!({"username": "ALICE"}),
    )
    .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    assert_eq!(
        json(taken).await,
        json!({"message": "Username has already been taken"})
    );
    let invalid = post(&r, "/api/v4/users", Some(&admin), json!({"username": "-x"})).await;
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
    let form = r
        .client
        .post(r.url("/api/v4/users"))
        .header("PRIVATE-TOKEN", &admin)
        .form(&[("username", "bob")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::CREATED);

    let shown = r
        .get(&r.url(&format!("/api/v4/users/{id}")), Some(&admin))
        .await;
    assert_eq!(shown.status(), StatusCode::OK);
    assert_eq!(json(shown).await, alice);
    // Personal tokens may look users up; deploy tokens may not.
    let reader = r.token(personal(&[Scope::ReadApi], "acme/*", Role::Guest));
    let shown = r
        .get(&r.url(&format!("/api/v4/users/{id}")), Some(&reader))
        .await;
    assert_eq!(shown.status(), StatusCode::OK);
    let deploy = r.token(deploy(&[Scope::ReadPackageRegistry], "acme/*"));
    let refused = r
        .client
        .get(r.url(&format!("/api/v4/users/{id}")))
        .header("Deploy-Token", deploy)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    for missing in ["9999", "alice"] {
        let response = r
            .get(&r.url(&format!("/api/v4/users/{missing}")), Some(&admin))
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(
            json(response).await,
            json!({"message": "404 User Not Found"})
        );
    }
}

#[tokio::test]
async fn personal_access_tokens_reach_the_projects_they_name() {
    let r = start().await;
    let admin = r.admin();
    r.create_project("acme", "tools", "private").await;
    r.create_project("acme/platform", "cli", "private").await;
    let other = r.create_project("other", "x", "private").await;
    let user = create_user(&r, "alice").await;
    let path = format!("/api/v4/users/{user}/personal_access_tokens");

    let response = post(
        &r,
        &path,
        Some(&admin),
        json!({
            "name": "laptop",
            "scopes": ["api"],
            "expires_at": date_in(30),
            "projects": [{"project": "acme/*", "access_level": 30}],
        }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created = json(response).await;
    assert_eq!(created["name"], "laptop");
    assert_eq!(created["user_id"], user);
    assert_eq!(created["scopes"], json!(["api"]));
    assert_eq!(created["expires_at"], date_in(30));
    assert_eq!(created["active"], true);
    assert_eq!(created["revoked"], false);
    assert_eq!(
        created["projects"],
        json!([{"project": "acme/*", "access_level": 30}])
    );
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("glpat-"));
    let token_id = created["id"].as_u64().unwrap();

    // A developer below acme, nested groups included; nothing elsewhere.
    for project in ["acme%2Ftools", "acme%2Fplatform%2Fcli"] {
        let published = r
            .put(
                &r.generic(project, "t/1.0/t.bin"),
                Some(&token),
                data(10, 1),
            )
            .await;
        assert_eq!(published.status(), StatusCode::CREATED, "{project}");
    }
    let elsewhere = r
        .put(
            &r.generic(&other.to_string(), "t/1.0/t.bin"),
            Some(&token),
            data(10, 1),
        )
        .await;
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);
    // A developer administers nothing.
    let tokens = r
        .get(
            &r.url("/api/v4/projects/acme%2Ftools/access_tokens"),
            Some(&token),
        )
        .await;
    assert_eq!(tokens.status(), StatusCode::FORBIDDEN);

    // read_api reads, whatever the level; without `projects`, nothing.
    let reader = post(
        &r,
        &path,
        Some(&admin),
        json!({"name": "ro", "scopes": ["read_api"],
               "projects": [{"project": "acme/tools", "access_level": 40}]}),
    )
    .await;
    assert_eq!(reader.status(), StatusCode::CREATED);
    let reader = json(reader).await["token"].as_str().unwrap().to_string();
    let file = r.generic("acme%2Ftools", "t/1.0/t.bin");
    assert_eq!(r.get(&file, Some(&reader)).await.status(), StatusCode::OK);
    assert_eq!(
        r.put(&file, Some(&reader), data(5, 2)).await.status(),
        StatusCode::FORBIDDEN
    );
    let bare = post(
        &r,
        &path,
        Some(&admin),
        json!({"name": "bare", "scopes": ["api"]}),
    )
    .await;
    assert_eq!(bare.status(), StatusCode::CREATED);
    let bare = json(bare).await;
    assert_eq!(bare["projects"], json!([]));
    assert_eq!(
        r.get(&file, bare["token"].as_str()).await.status(),
        StatusCode::NOT_FOUND
    );

    // Listed per user, shown, revoked.
    let listed = r
        .get(
            &r.url(&format!("/api/v4/personal_access_tokens?user_id={user}")),
            Some(&admin),
        )
        .await;
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(listed.headers()["x-total"], "3");
    let listed = json(listed).await;
    assert_eq!(listed[0]["id"], token_id);
    assert!(listed[0].get("token").is_none());
    let one = format!("/api/v4/personal_access_tokens/{token_id}");
    let shown = r.get(&r.url(&one), Some(&admin)).await;
    assert_eq!(json(shown).await["name"], "laptop");
    let revoked = r.request(Method::DELETE, &r.url(&one), Some(&admin)).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        r.get(&file, Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let shown = json(r.get(&r.url(&one), Some(&admin)).await).await;
    assert_eq!(shown["revoked"], true);
    assert_eq!(shown["active"], false);
}

#[tokio::test]
async fn personal_access_tokens_are_for_administrators_to_hand_out() {
    let r = start().await;
    let admin = r.admin();
    r.create_project("acme", "tools", "private").await;
    let user = create_user(&r, "alice").await;
    let path = format!("/api/v4/users/{user}/personal_access_tokens");
    let body = json!({"name": "t", "scopes": ["api"]});

    let owner = r.token(personal(&[Scope::Api], "*", Role::Owner));
    for (token, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(owner.as_str()), StatusCode::FORBIDDEN),
    ] {
        let response = post(&r, &path, token, body.clone()).await;
        assert_eq!(response.status(), status, "{token:?}");
        let listing = r
            .get(
                &r.url(&format!("/api/v4/personal_access_tokens?user_id={user}")),
                token,
            )
            .await;
        assert_eq!(listing.status(), status, "{token:?}");
    }
    let unknown = post(
        &r,
        "/api/v4/users/9999/personal_access_tokens",
        Some(&admin),
        body,
    )
    .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    for bad in [
        json!({"name": "t", "scopes": ["sudo"]}),
        json!({"name": "t", "scopes": ["api"], "expires_at": "2000-01-01"}),
        json!({"name": "t", "scopes": ["api"], "projects": [{"project": "../x"}]}),
        json!({"name": "t", "scopes": ["api"], "projects": [{"project": "acme/*", "access_level": 60}]}),
    ] {
        let response = post(&r, &path, Some(&admin), bad.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let no_user = r
        .get(&r.url("/api/v4/personal_access_tokens"), Some(&admin))
        .await;
    assert_eq!(no_user.status(), StatusCode::BAD_REQUEST);

    // Project access tokens are not personal access tokens of a user.
    let access = post(
        &r,
        "/api/v4/projects/acme%2Ftools/access_tokens",
        Some(&admin),
        json!({"name": "ci", "scopes": ["api"]}),
    )
    .await;
    let access_id = json(access).await["id"].as_u64().unwrap();
    let response = r
        .get(
            &r.url(&format!("/api/v4/personal_access_tokens/{access_id}")),
            Some(&admin),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
