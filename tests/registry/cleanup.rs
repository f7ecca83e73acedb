//! The packages cleanup policy, applied when files are published.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn publishing_keeps_only_the_newest_files_of_a_name() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    let policy = r.url(&format!("/api/v4/projects/{id}/packages/cleanup_policy"));
    let current = json(r.get(&policy, Some(&r.admin())).await).await;
    assert_eq!(current, json!({"keep_n_duplicated_package_files": "all"}));

    let response = r
        .client
        .put(&policy)
        .header("PRIVATE-TOKEN", r.admin())
        .json(&json!({"keep_n_duplicated_package_files": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bad = r
        .client
        .put(&policy)
        .header("PRIVATE-TOKEN", r.admin())
        .json(&json!({"keep_n_duplicated_package_files": "7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let url = r.generic(&id.to_string(), "tool/1.0/a.bin");
    for body in ["one", "two", "three"] {
        assert_eq!(
            r.put(&url, Some(&r.admin()), body.into()).await.status(),
            StatusCode::CREATED
        );
    }
    r.put(
        &r.generic(&id.to_string(), "tool/1.0/b.bin"),
        Some(&r.admin()),
        b"b".to_vec(),
    )
    .await;
    assert_eq!(
        r.get(&url, Some(&r.admin())).await.bytes().await.unwrap(),
        "three"
    );
    let packages = json(
        r.get(
            &r.url(&format!("/api/v4/projects/{id}/packages")),
            Some(&r.admin()),
        )
        .await,
    )
    .await;
    let package_id = &packages[0]["id"];
    let files = json(
        r.get(
            &r.url(&format!(
                "/api/v4/projects/{id}/packages/{package_id}/package_files"
            )),
            Some(&r.admin()),
        )
        .await,
    )
    .await;
    assert_eq!(files.as_array().unwrap().len(), 2, "{files}");
    assert_eq!(r.objects().len(), 2, "the objects of pruned files are gone");
}
