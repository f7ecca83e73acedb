//! `GET /user`: the caller, as python-gitlab's `gl.auth()` asks for it. A
//! user's personal access token answers its user; tokens without a user
//! record answer a stand-in named after their subject.

use genreg::genreg_token::{Role, Scope};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::*;

async fn me(r: &TestRegistry, header: &str, token: &str) -> (StatusCode, Value) {
    let response = r
        .client
        .get(r.url("/api/v4/user"))
        .header(header, token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn post(r: &TestRegistry, path: &str, token: &str, body: Value) -> Value {
    let response = r
        .client
        .post(r.url(path))
        .header("PRIVATE-TOKEN", token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{path}");
    json(response).await
}

#[tokio::test]
async fn the_caller_is_its_user_or_a_stand_in() {
    let r = start().await;
    let admin = r.admin();
    let project = r.create_project("acme", "tools", "private").await;

    // Anonymous callers must log in.
    let anonymous = r.get(&r.url("/api/v4/user"), None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(anonymous).await["message"], "401 Unauthorized");

    // A user's personal access token: that user's record.
    let alice = post(
        &r,
        "/api/v4/users",
        &admin,
        json!({"username": "alice", "name": "Alice A."}),
    )
    .await;
    let alice_id = alice["id"].as_u64().unwrap();
    let issued = post(
        &r,
        &format!("/api/v4/users/{alice_id}/personal_access_tokens"),
        &admin,
        json!({"name": "laptop", "scopes": ["read_api"]}),
    )
    .await;
    let (status, shown) = me(&r, "PRIVATE-TOKEN", issued["token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["id"], alice_id);
    assert_eq!(shown["username"], "alice");
    assert_eq!(shown["name"], "Alice A.");
    assert_eq!(shown["state"], "active");
    assert_eq!(shown["is_admin"], false);
    assert_eq!(shown["bot"], false);
    assert_eq!(shown["avatar_url"], Value::Null);
    assert_eq!(shown["web_url"], format!("{}/alice", r.registry.url()));
    assert_eq!(shown["created_at"], alice["created_at"]);
    assert_eq!(shown["can_create_project"], false);
    // The same through `Authorization: Bearer`.
    let bearer = format!("Bearer {}", issued["token"].as_str().unwrap());
    assert_eq!(me(&r, "Authorization", &bearer).await.1["id"], alice_id);

    // The administrator's token (minted by the CLI, no user record).
    let (status, shown) = me(&r, "PRIVATE-TOKEN", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["id"], 0);
    assert_eq!(shown["username"], "admin");
    assert_eq!(shown["is_admin"], true);
    assert_eq!(shown["bot"], false);
    assert_eq!(shown["state"], "active");
    assert_eq!(shown["can_create_project"], true);

    // A project access token: its bot user, whose id is the token's.
    let access = post(
        &r,
        &format!("/api/v4/projects/{project}/access_tokens"),
        &admin,
        json!({"name": "ci bot", "scopes": ["api"], "access_level": 30}),
    )
    .await;
    let token_id = access["id"].as_u64().unwrap();
    assert_eq!(access["user_id"], token_id);
    let access_token = access["token"].as_str().unwrap().to_string();
    let (status, shown) = me(&r, "PRIVATE-TOKEN", &access_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["id"], token_id);
    assert_eq!(
        shown["username"],
        format!("project_{project}_bot_{token_id}")
    );
    assert_eq!(shown["name"], "ci bot");
    assert_eq!(shown["bot"], true);
    assert_eq!(shown["is_admin"], false);

    // A group access token likewise.
    let group = post(
        &r,
        "/api/v4/groups/acme/access_tokens",
        &admin,
        json!({"name": "g", "scopes": ["read_api"]}),
    )
    .await;
    let group_id = json(r.get(&r.url("/api/v4/groups/acme"), Some(&admin)).await).await["id"]
        .as_u64()
        .unwrap();
    let (_, shown) = me(&r, "PRIVATE-TOKEN", group["token"].as_str().unwrap()).await;
    assert_eq!(
        shown["username"],
        format!("group_{group_id}_bot_{}", group["id"])
    );
    assert_eq!(shown["bot"], true);

    // Revoked: 401 from the next request on.
    let revoke = r
        .request(
            reqwest::Method::DELETE,
            &r.url(&format!(
                "/api/v4/projects/{project}/access_tokens/{token_id}"
            )),
            Some(&admin),
        )
        .await;
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        me(&r, "PRIVATE-TOKEN", &access_token).await.0,
        StatusCode::UNAUTHORIZED
    );

    // A token minted with `genreg token create`: its subject.
    let (_, shown) = me(
        &r,
        "PRIVATE-TOKEN",
        &r.token(personal(&[Scope::Api], "acme/*", Role::Developer)),
    )
    .await;
    assert_eq!(shown["username"], "tester");
    assert_eq!(shown["is_admin"], false);

    // Personal tokens without `api`/`read_api`: 403, as GitLab's
    // insufficient scope. Deploy and job tokens are no users: 401.
    let registry_only = post(
        &r,
        &format!("/api/v4/projects/{project}/access_tokens"),
        &admin,
        json!({"name": "pkg", "scopes": ["read_package_registry"]}),
    )
    .await;
    assert_eq!(
        me(
            &r,
            "PRIVATE-TOKEN",
            registry_only["token"].as_str().unwrap()
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    let deploy_token = r.token(deploy(&[Scope::WritePackageRegistry], "acme/*"));
    assert_eq!(
        me(&r, "Deploy-Token", &deploy_token).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me(&r, "JOB-TOKEN", &r.token(job("acme/tools"))).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Expired and forged tokens: 401.
    let mut expired = personal(&[Scope::Api], "acme/*", Role::Owner);
    expired.expires_at = Some(now_secs() - 1);
    assert_eq!(
        me(&r, "PRIVATE-TOKEN", &r.token(expired)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let forged = r.token_with_secret(
        personal(&[Scope::Api], "acme/*", Role::Owner),
        "not-the-secret",
    );
    assert_eq!(
        me(&r, "PRIVATE-TOKEN", &forged).await.0,
        StatusCode::UNAUTHORIZED
    );
}
