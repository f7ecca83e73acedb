//! Parallel publishes into one new package all land (GitLab loses some).

use reqwest::StatusCode;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_uploads_into_one_new_package_all_succeed() {
    let r = std::sync::Arc::new(start().await);
    let id = r.create_project("acme", "tools", "private").await;
    let admin = r.admin();
    let uploads = (0..48u8).map(|i| {
        let r = r.clone();
        let admin = admin.clone();
        tokio::spawn(async move {
            let url = r.generic(&id.to_string(), &format!("burst/1.0/file-{i}.bin"));
            let response = r
                .put(
                    &format!("{url}?select=package_file"),
                    Some(&admin),
                    data(4096, i),
                )
                .await;
            assert_eq!(response.status(), StatusCode::OK, "upload {i}");
            json(response).await["package_id"].as_u64().unwrap()
        })
    });
    let package_ids: Vec<u64> = futures::future::join_all(uploads)
        .await
        .into_iter()
        .map(|result| result.unwrap())
        .collect();
    assert!(
        package_ids.iter().all(|p| *p == package_ids[0]),
        "one package: {package_ids:?}"
    );

    for i in 0..48u8 {
        let url = r.generic(&id.to_string(), &format!("burst/1.0/file-{i}.bin"));
        let response = r.get(&url, Some(&admin)).await;
        assert_eq!(response.status(), StatusCode::OK, "download {i}");
        assert_eq!(response.bytes().await.unwrap(), data(4096, i));
    }
}
