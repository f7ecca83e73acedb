//! Listing projects (paginated like GitLab), changing their visibility, and
//! the implicit groups, by id or path.

use genreg::genreg_token::{Role, Scope};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::*;

fn paths(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["path_with_namespace"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn groups_are_found_by_id_or_path() {
    let r = start().await;
    r.create_project("acme/platform", "tools", "private").await;
    let acme = r.get(&r.url("/api/v4/groups/acme"), Some(&r.admin())).await;
    assert_eq!(acme.status(), StatusCode::OK);
    let acme = json(acme).await;
    assert_eq!(acme["full_path"], "acme");
    assert_eq!(acme["parent_id"], Value::Null);
    let platform = json(
        r.get(&r.url("/api/v4/groups/acme%2Fplatform"), Some(&r.admin()))
            .await,
    )
    .await;
    assert_eq!(platform["name"], "platform");
    assert_eq!(platform["full_path"], "acme/platform");
    assert_eq!(platform["full_name"], "acme / platform");
    assert_eq!(platform["parent_id"], acme["id"]);
    assert_eq!(platform["visibility"], "private");
    let by_id = json(
        r.get(
            &r.url(&format!("/api/v4/groups/{}", platform["id"])),
            Some(&r.admin()),
        )
        .await,
    )
    .await;
    assert_eq!(by_id, platform);

    // Members see it; strangers and anonymous callers do not.
    let member = r.token(personal(
        &[Scope::ReadApi],
        "acme/platform/tools",
        Role::Reporter,
    ));
    assert_eq!(
        r.get(&r.url("/api/v4/groups/acme"), Some(&member))
            .await
            .status(),
        StatusCode::OK
    );
    let stranger = r.token(personal(&[Scope::Api], "other/*", Role::Owner));
    for token in [Some(stranger.as_str()), None] {
        let response = r.get(&r.url("/api/v4/groups/acme"), token).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            json(response).await,
            json!({"message": "404 Group Not Found"})
        );
    }
    assert_eq!(
        r.get(&r.url("/api/v4/groups/nope"), Some(&r.admin()))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        r.get(&r.url("/api/v4/groups/99999"), Some(&r.admin()))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // A public project makes its groups visible to everyone.
    r.create_project("acme", "open", "public").await;
    let acme = r.get(&r.url("/api/v4/groups/acme"), None).await;
    assert_eq!(acme.status(), StatusCode::OK);
    assert_eq!(json(acme).await["visibility"], "public");
}

#[tokio::test]
async fn a_group_lists_its_projects_and_optionally_its_subgroups() {
    let r = start().await;
    r.create_project("acme", "a", "private").await;
    r.create_project("acme/sub", "b", "private").await;
    r.create_project("acmeish", "c", "private").await;
    let direct = json(
        r.get(&r.url("/api/v4/groups/acme/projects"), Some(&r.admin()))
            .await,
    )
    .await;
    assert_eq!(paths(&direct), vec!["acme/a"]);
    let all = r
        .get(
            &r.url("/api/v4/groups/acme/projects?include_subgroups=true"),
            Some(&r.admin()),
        )
        .await;
    assert_eq!(all.headers()["x-total"], "2");
    assert_eq!(paths(&json(all).await), vec!["acme/sub/b", "acme/a"]);
}

#[tokio::test]
async fn project_listings_are_paginated_like_gitlab() {
    let r = start_with(&[("public_url", "https://r.example")]).await;
    for i in 1..=5 {
        r.create_project("acme", &format!("p{i}"), "private").await;
    }
    let response = r
        .get(
            &r.url("/api/v4/projects?per_page=2&page=2&search=acme"),
            Some(&r.admin()),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let h = |name: &str| response.headers()[name].to_str().unwrap().to_string();
    assert_eq!(h("x-page"), "2");
    assert_eq!(h("x-per-page"), "2");
    assert_eq!(h("x-total"), "5");
    assert_eq!(h("x-total-pages"), "3");
    assert_eq!(h("x-next-page"), "3");
    assert_eq!(h("x-prev-page"), "1");
    let link = h("link");
    assert!(
        link.contains(
            "<https://r.example/api/v4/projects?search=acme&page=3&per_page=2>; rel=\"next\""
        ),
        "{link}"
    );
    assert!(
        link.contains("rel=\"first\"")
            && link.contains("rel=\"last\"")
            && link.contains("rel=\"prev\"")
    );
    // Newest first, as GitLab orders them.
    assert_eq!(paths(&json(response).await), vec!["acme/p3", "acme/p2"]);

    let ascending = json(
        r.get(
            &r.url("/api/v4/projects?sort=asc&per_page=2"),
            Some(&r.admin()),
        )
        .await,
    )
    .await;
    assert_eq!(paths(&ascending), vec!["acme/p1", "acme/p2"]);
    let last = r
        .get(
            &r.url("/api/v4/projects?per_page=2&page=3"),
            Some(&r.admin()),
        )
        .await;
    assert_eq!(last.headers()["x-next-page"], "");
    assert_eq!(json(last).await.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn project_listings_show_only_what_the_caller_may_see() {
    let r = start().await;
    r.create_project("acme", "private", "private").await;
    r.create_project("acme", "public", "public").await;
    r.create_project("other", "secret", "private").await;
    let anonymous = json(r.get(&r.url("/api/v4/projects"), None).await).await;
    assert_eq!(paths(&anonymous), vec!["acme/public"]);
    let member = r.token(personal(&[Scope::ReadApi], "acme/*", Role::Reporter));
    let seen = json(r.get(&r.url("/api/v4/projects"), Some(&member)).await).await;
    assert_eq!(paths(&seen), vec!["acme/public", "acme/private"]);
    let public_only = json(
        r.get(
            &r.url("/api/v4/projects?visibility=public"),
            Some(&r.admin()),
        )
        .await,
    )
    .await;
    assert_eq!(paths(&public_only), vec!["acme/public"]);
    let all = r.get(&r.url("/api/v4/projects"), Some(&r.admin())).await;
    assert_eq!(all.headers()["x-total"], "3");
}

#[tokio::test]
async fn maintainers_change_project_visibility() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    let path = r.url(&format!("/api/v4/projects/{id}"));
    let put = |token: String, visibility: &'static str| {
        let request = r
            .client
            .put(&path)
            .header("PRIVATE-TOKEN", token)
            .json(&json!({"visibility": visibility}));
        async move { request.send().await.unwrap() }
    };
    let developer = r.token(personal(&[Scope::Api], "acme/*", Role::Developer));
    assert_eq!(
        put(developer, "public").await.status(),
        StatusCode::FORBIDDEN
    );
    let maintainer = r.token(personal(&[Scope::Api], "acme/tools", Role::Maintainer));
    assert_eq!(
        put(maintainer.clone(), "secret").await.status(),
        StatusCode::BAD_REQUEST
    );
    let response = put(maintainer.clone(), "public").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await["visibility"], "public");

    assert_eq!(r.get(&path, None).await.status(), StatusCode::OK);
    let listed = json(r.get(&r.url("/api/v4/projects"), None).await).await;
    assert_eq!(paths(&listed), vec!["acme/tools"]);

    assert_eq!(put(maintainer, "private").await.status(), StatusCode::OK);
    assert_eq!(r.get(&path, None).await.status(), StatusCode::NOT_FOUND);
    let listed = json(r.get(&r.url("/api/v4/projects"), None).await).await;
    assert!(paths(&listed).is_empty());
}
