//! The Packages API: listing, showing, files, downloads by id, deleting.

use genreg::genreg_token::{Role, Scope};
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::*;

async fn publish(r: &TestRegistry, project: u64, rest: &str, body: &[u8]) -> Value {
    let url = format!(
        "{}?select=package_file",
        r.generic(&project.to_string(), rest)
    );
    let response = r.put(&url, Some(&r.admin()), body.to_vec()).await;
    assert_eq!(response.status(), StatusCode::OK, "{rest}");
    json(response).await
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}@{}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn listing_filters_orders_and_pages() {
    let r = start_with(&[("public_url", "https://packages.example.com")]).await;
    let id = r.create_project("acme", "tools", "private").await;
    for (rest, query) in [
        ("alpha/1.0/a.bin", ""),
        ("beta/2.0/a.bin", ""),
        ("alpha/1.1/a.bin", ""),
        ("secret/1.0/a.bin", "&status=hidden"),
    ] {
        let url = format!(
            "{}?select=package_file{query}",
            r.generic(&id.to_string(), rest)
        );
        assert_eq!(
            r.put(&url, Some(&r.admin()), b"x".to_vec()).await.status(),
            StatusCode::OK
        );
    }
    let list = |query: &str| {
        let url = r.url(&format!("/api/v4/projects/{id}/packages{query}"));
        let admin = r.admin();
        let client = r.client.clone();
        async move {
            client
                .get(url)
                .header("PRIVATE-TOKEN", admin)
                .send()
                .await
                .unwrap()
        }
    };

    let response = list("").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-total"], "3");
    let body = json(response).await;
    assert_eq!(names(&body), ["alpha@1.0", "beta@2.0", "alpha@1.1"]);
    let first = &body[0];
    assert_eq!(first["package_type"], "generic");
    assert_eq!(first["status"], "default");
    assert_eq!(first["tags"], serde_json::json!([]));
    assert!(first["_links"]["web_path"]
        .as_str()
        .unwrap()
        .starts_with("/acme/tools/-/packages/"));
    assert!(first["_links"]["delete_api_path"]
        .as_str()
        .unwrap()
        .starts_with(&format!(
            "https://packages.example.com/api/v4/projects/{id}/packages/"
        )));

    assert_eq!(
        names(&json(list("?status=hidden").await).await),
        ["secret@1.0"]
    );
    assert_eq!(
        names(&json(list("?package_name=ALP").await).await),
        ["alpha@1.0", "alpha@1.1"]
    );
    assert_eq!(
        names(&json(list("?package_version=2.0").await).await),
        ["beta@2.0"]
    );
    assert_eq!(
        names(&json(list("?order_by=version&sort=desc").await).await),
        ["beta@2.0", "alpha@1.1", "alpha@1.0"]
    );

    let response = list("?per_page=2&page=2&sort=asc").await;
    let headers = response.headers().clone();
    assert_eq!(headers["x-page"], "2");
    assert_eq!(headers["x-per-page"], "2");
    assert_eq!(headers["x-total-pages"], "2");
    assert_eq!(headers["x-prev-page"], "1");
    assert_eq!(headers["x-next-page"], "");
    let link = headers["link"].to_str().unwrap();
    assert!(
        link.contains(&format!(
            "<https://packages.example.com/api/v4/projects/{id}/packages?sort=asc&page=1&per_page=2>; rel=\"first\""
        )),
        "{link}"
    );
    assert_eq!(names(&json(response).await), ["alpha@1.1"]);
    assert_eq!(json(list("?page=99").await).await, serde_json::json!([]));

    for bad in [
        "?order_by=size",
        "?sort=up",
        "?per_page=many",
        "?package_type=zip",
        "?status=gone",
    ] {
        assert_eq!(list(bad).await.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn a_package_shows_its_versions_and_files() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    let one = publish(&r, id, "tool/1.0/b.bin", b"b").await;
    publish(&r, id, "tool/1.0/a.bin", b"a").await;
    let other = publish(&r, id, "tool/2.0/a.bin", b"2").await;
    let package_id = one["package_id"].as_u64().unwrap();

    let shown = json(
        r.get(
            &r.url(&format!("/api/v4/projects/{id}/packages/{package_id}")),
            Some(&r.admin()),
        )
        .await,
    )
    .await;
    assert_eq!(shown["version"], "1.0");
    assert_eq!(shown["versions"][0]["id"], other["package_id"]);
    assert_eq!(shown["versions"][0]["version"], "2.0");

    let files_url = |query: &str| {
        r.url(&format!(
            "/api/v4/projects/{id}/packages/{package_id}/package_files{query}"
        ))
    };
    let files = json(r.get(&files_url(""), Some(&r.admin())).await).await;
    let file_names: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file_name"].as_str().unwrap())
        .collect();
    assert_eq!(file_names, ["b.bin", "a.bin"]);
    assert_eq!(files[0]["file_sha256"], sha256_hex(b"b"));
    let files = json(
        r.get(
            &files_url("?order_by=file_name&sort=desc"),
            Some(&r.admin()),
        )
        .await,
    )
    .await;
    assert_eq!(files[0]["file_name"], "b.bin");
    assert_eq!(
        r.get(&files_url("?order_by=size"), Some(&r.admin()))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );

    let file_id = one["id"].as_u64().unwrap();
    let download = r
        .get(
            &r.url(&format!(
                "/api/v4/projects/{id}/packages/{package_id}/package_files/{file_id}/download"
            )),
            Some(&r.admin()),
        )
        .await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(
        download.headers()["content-disposition"].to_str().unwrap(),
        "attachment; filename=\"b.bin\"; filename*=UTF-8''b.bin"
    );
    assert_eq!(download.bytes().await.unwrap(), "b");

    for missing in [format!("{package_id}9"), "x".into()] {
        let response = r
            .get(
                &r.url(&format!("/api/v4/projects/{id}/packages/{missing}")),
                Some(&r.admin()),
            )
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    // A package is not found through another project.
    let elsewhere = r.create_project("acme", "elsewhere", "private").await;
    let response = r
        .get(
            &r.url(&format!(
                "/api/v4/projects/{elsewhere}/packages/{package_id}"
            )),
            Some(&r.admin()),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn maintainers_delete_packages_and_files_and_their_objects() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    let first = publish(&r, id, "tool/1.0/a.bin", b"first").await;
    let second = publish(&r, id, "tool/1.0/a.bin", b"second").await;
    let package_id = first["package_id"].as_u64().unwrap();
    assert_eq!(r.objects().len(), 2);
    let developer = r.token(personal(&[Scope::Api], "acme/tools", Role::Developer));
    let maintainer = r.token(personal(&[Scope::Api], "acme/tools", Role::Maintainer));
    let package_url = r.url(&format!("/api/v4/projects/{id}/packages/{package_id}"));
    let file_url = format!("{package_url}/package_files/{}", second["id"]);

    let delete = |url: String, token: String| {
        let client = r.client.clone();
        async move {
            client
                .delete(url)
                .header("PRIVATE-TOKEN", token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        delete(file_url.clone(), developer.clone()).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        delete(file_url.clone(), maintainer.clone()).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(file_url.clone(), maintainer.clone()).await,
        StatusCode::NOT_FOUND
    );
    // The older file with that name is served again.
    let generic = r.generic(&id.to_string(), "tool/1.0/a.bin");
    assert_eq!(
        r.get(&generic, Some(&r.admin()))
            .await
            .bytes()
            .await
            .unwrap(),
        "first"
    );
    assert_eq!(r.objects().len(), 1);

    assert_eq!(
        delete(package_url.clone(), developer).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        delete(package_url.clone(), maintainer.clone()).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        r.get(&generic, Some(&r.admin())).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        r.get(&package_url, Some(&r.admin())).await.status(),
        StatusCode::NOT_FOUND
    );
    let list = json(
        r.get(
            &r.url(&format!("/api/v4/projects/{id}/packages")),
            Some(&r.admin()),
        )
        .await,
    )
    .await;
    assert_eq!(list, serde_json::json!([]));
    assert!(r.objects().is_empty());
    assert_eq!(delete(package_url, maintainer).await, StatusCode::NOT_FOUND);

    // Publishing the same name and version again starts a new package.
    let again = publish(&r, id, "tool/1.0/a.bin", b"again").await;
    assert_ne!(again["package_id"].as_u64().unwrap(), package_id);
    assert_eq!(
        r.get(&generic, Some(&r.admin()))
            .await
            .bytes()
            .await
            .unwrap(),
        "again"
    );
}

#[tokio::test]
async fn readers_list_but_do_not_see_delete_links() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    publish(&r, id, "tool/1.0/a.bin", b"x").await;
    let reporter = r.token(personal(&[Scope::ReadApi], "acme/tools", Role::Reporter));
    let list = json(
        r.get(
            &r.url(&format!("/api/v4/projects/{id}/packages")),
            Some(&reporter),
        )
        .await,
    )
    .await;
    assert!(list[0]["_links"].get("delete_api_path").is_none());
    let stranger = r.token(personal(&[Scope::Api], "other/*", Role::Owner));
    let response = r
        .get(
            &r.url(&format!("/api/v4/projects/{id}/packages")),
            Some(&stranger),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
