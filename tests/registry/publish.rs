//! Publishing and downloading files, as README.md ("The API") and GitLab's
//! generic packages documentation
//! (<https://docs.gitlab.com/user/packages/generic_packages/>) describe it.

use reqwest::StatusCode;

use crate::common::*;

#[tokio::test]
async fn a_published_file_downloads_with_gitlabs_headers() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    let admin = r.admin();
    let bytes = data(100_000, 1);
    let url = r.generic(&id.to_string(), "my-tool/1.2.3/tool.tar.gz");

    let response = r.put(&url, Some(&admin), bytes.clone()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        json(response).await,
        serde_json::json!({"message": "201 Created"})
    );

    let response = r.get(&url, Some(&admin)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_string();
    assert_eq!(header("content-type"), "application/octet-stream");
    assert_eq!(
        header("content-disposition"),
        "attachment; filename=\"tool.tar.gz\"; filename*=UTF-8''tool.tar.gz"
    );
    assert_eq!(header("content-length"), "100000");
    assert_eq!(header("x-checksum-sha256"), sha256_hex(&bytes));
    assert_eq!(header("etag"), format!("\"{}\"", sha256_hex(&bytes)));
    assert_eq!(header("accept-ranges"), "bytes");
    assert_eq!(response.bytes().await.unwrap(), bytes);
}

#[tokio::test]
async fn head_answers_the_headers_alone() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    let url = r.generic(&id.to_string(), "t/1.0/a.bin");
    r.put(&url, Some(&r.admin()), data(5000, 2)).await;
    let response = r
        .request(reqwest::Method::HEAD, &url, Some(&r.admin()))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-length"], "5000");
    assert_eq!(response.bytes().await.unwrap().len(), 0);
}

#[tokio::test]
async fn select_package_file_answers_the_full_file_record() {
    let r = start().await;
    let id = r.create_project("acme/platform", "tools", "private").await;
    let bytes = b"hello world".to_vec();
    let url = r.generic(
        "acme%2Fplatform%2Ftools",
        "tool/1.0.0/linux/amd64/tool.tar.gz?select=package_file",
    );
    let response = r.put(&url, Some(&r.admin()), bytes).await;
    assert_eq!(response.status(), StatusCode::OK);
    let record = json(response).await;
    assert_eq!(record["file_name"], "linux%2Famd64%2Ftool.tar.gz");
    assert_eq!(record["size"], 11);
    assert_eq!(record["file_store"], 2);
    assert_eq!(record["file_md5"], "5eb63bbbe01eeed093cb22bb8f5acdc3");
    assert_eq!(
        record["file_sha1"],
        "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"
    );
    assert_eq!(
        record["file_sha256"],
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    );
    assert_eq!(record["project_id"], id);
    assert_eq!(record["status"], "default");
    assert!(record["id"].as_u64().is_some());
    assert!(record["package_id"].as_u64().is_some());
    for null in [
        "file_final_path",
        "new_file_path",
        "verified_at",
        "verification_checksum",
    ] {
        assert!(record[null].is_null(), "{null}");
    }
    let created = record["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");

    // The same path segments find the file again.
    let download = r.generic(&id.to_string(), "tool/1.0.0/linux/amd64/tool.tar.gz");
    let response = r.get(&download, Some(&r.admin())).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"tool.tar.gz\""));
    assert_eq!(response.bytes().await.unwrap(), "hello world");
}

#[tokio::test]
async fn the_same_file_name_twice_keeps_both_and_serves_the_newest() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    let url = r.generic(&id.to_string(), "t/1.0/a.bin");
    let first = json(
        r.put(
            &format!("{url}?select=package_file"),
            Some(&r.admin()),
            b"first".to_vec(),
        )
        .await,
    )
    .await;
    let second = json(
        r.put(
            &format!("{url}?select=package_file"),
            Some(&r.admin()),
            b"second".to_vec(),
        )
        .await,
    )
    .await;
    assert_ne!(first["id"], second["id"]);
    assert_eq!(first["package_id"], second["package_id"]);
    assert_eq!(
        r.get(&url, Some(&r.admin())).await.bytes().await.unwrap(),
        "second"
    );
}

#[tokio::test]
async fn hidden_packages_still_download() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    let url = r.generic(&id.to_string(), "t/1.0/a.bin");
    let response = r
        .put(
            &format!("{url}?status=hidden"),
            Some(&r.admin()),
            b"x".to_vec(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        r.get(&url, Some(&r.admin())).await.bytes().await.unwrap(),
        "x"
    );
}

#[tokio::test]
async fn chunked_bodies_of_any_size_are_accepted() {
    // 5 MiB parts: the larger body needs a multipart upload of 3 parts.
    let r = start_with(&[("s3_part_size", "5242880")]).await;
    let id = r.create_project("acme", "tools", "private").await;
    for (name, len) in [("small.bin", 1000), ("large.bin", 12 * 1024 * 1024 + 3)] {
        let bytes = data(len, 3);
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            bytes.chunks(70_000).map(|c| Ok(c.to_vec())).collect();
        let url = r.generic(&id.to_string(), &format!("t/1.0/{name}"));
        let response = r
            .client
            .put(&url)
            .header("PRIVATE-TOKEN", r.admin())
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{name}");
        let back = r.get(&url, Some(&r.admin())).await;
        assert_eq!(
            back.headers()["x-checksum-sha256"].to_str().unwrap(),
            sha256_hex(&bytes)
        );
        assert_eq!(back.bytes().await.unwrap(), bytes, "{name}");
    }
}

#[tokio::test]
async fn a_multipart_sized_upload_with_content_length_round_trips() {
    let r = start_with(&[("s3_part_size", "5242880")]).await;
    let id = r.create_project("acme", "tools", "private").await;
    let bytes = data(11 * 1024 * 1024 + 17, 4);
    let url = r.generic(&id.to_string(), "t/1.0/big.bin");
    let response = r
        .put(
            &format!("{url}?select=package_file"),
            Some(&r.admin()),
            bytes.clone(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await["file_sha256"], sha256_hex(&bytes));
    assert_eq!(
        r.get(&url, Some(&r.admin())).await.bytes().await.unwrap(),
        bytes
    );
    assert_eq!(r.objects().len(), 1, "one object, its parts joined");
    assert!(r.unfinished_uploads().is_empty());
}

#[tokio::test]
async fn a_matching_checksum_is_accepted_and_a_wrong_one_keeps_nothing() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    let bytes = data(3000, 5);
    let url = r.generic(&id.to_string(), "t/1.0/a.bin");
    let response = r
        .client
        .put(&url)
        .header("PRIVATE-TOKEN", r.admin())
        .header("X-Checksum-SHA256", sha256_hex(&bytes).to_uppercase())
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let stored_before = r.objects().len();

    let other = r.generic(&id.to_string(), "t/1.0/b.bin");
    let response = r
        .client
        .put(&other)
        .header("PRIVATE-TOKEN", r.admin())
        .header("X-Checksum-SHA256", sha256_hex(b"something else"))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = json(response).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("400 Bad request"),
        "{body}"
    );
    assert_eq!(
        r.get(&other, Some(&r.admin())).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        r.objects().len(),
        stored_before,
        "the rejected object is gone"
    );
    assert!(r.unfinished_uploads().is_empty());
}

#[tokio::test]
async fn ranges_and_conditional_requests() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    let bytes = data(1000, 6);
    let url = r.generic(&id.to_string(), "t/1.0/a.bin");
    r.put(&url, Some(&r.admin()), bytes.clone()).await;
    let ranged = |range: &'static str| {
        r.client
            .get(&url)
            .header("PRIVATE-TOKEN", r.admin())
            .header("Range", range)
            .send()
    };

    let response = ranged("bytes=10-19").await.unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.headers()["content-range"], "bytes 10-19/1000");
    assert_eq!(response.bytes().await.unwrap(), bytes[10..20]);

    let response = ranged("bytes=-5").await.unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.bytes().await.unwrap(), bytes[995..]);

    let response = ranged("bytes=5000-").await.unwrap();
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(response.headers()["content-range"], "bytes */1000");

    let etag = format!("\"{}\"", sha256_hex(&bytes));
    let response = r
        .client
        .get(&url)
        .header("PRIVATE-TOKEN", r.admin())
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(response.headers()["etag"].to_str().unwrap(), etag);
}

#[tokio::test]
async fn missing_packages_and_files_answer_404() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    r.put(
        &r.generic(&id.to_string(), "t/1.0/a.bin"),
        Some(&r.admin()),
        b"x".to_vec(),
    )
    .await;
    for missing in [
        "t/2.0/a.bin",
        "u/1.0/a.bin",
        "t/1.0/b.bin",
        "t/1.0/sub/a.bin",
    ] {
        let response = r
            .get(&r.generic(&id.to_string(), missing), Some(&r.admin()))
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(
            json(response).await,
            serde_json::json!({"message": "404 Not found"})
        );
    }
}

#[tokio::test]
async fn max_file_size_answers_413_before_or_while_reading() {
    let r = start_with(&[("max_file_size", "1048576")]).await;
    let id = r.create_project("acme", "tools", "private").await;
    let url = r.generic(&id.to_string(), "t/1.0/a.bin");
    let too_big = data(1024 * 1024 + 1, 7);

    let response = r.put(&url, Some(&r.admin()), too_big.clone()).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        json(response).await,
        serde_json::json!({"message": "413 Request Entity Too Large"})
    );

    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        too_big.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let response = r
        .client
        .put(&url)
        .header("PRIVATE-TOKEN", r.admin())
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.get(&url, Some(&r.admin())).await.status(),
        StatusCode::NOT_FOUND
    );

    // Exactly the limit is fine.
    let response = r.put(&url, Some(&r.admin()), data(1024 * 1024, 7)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn redirect_mode_sends_clients_to_a_presigned_url_that_keeps_the_name() {
    let r = start_with(&[("download_mode", "redirect")]).await;
    let id = r.create_project("acme", "tools", "private").await;
    let bytes = data(2048, 8);
    let url = r.generic(&id.to_string(), "t/1.0/linux/tool.tgz");
    assert_eq!(
        r.put(&url, Some(&r.admin()), bytes.clone()).await.status(),
        StatusCode::CREATED
    );

    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects
        .get(&url)
        .header("PRIVATE-TOKEN", r.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()["x-checksum-sha256"].to_str().unwrap(),
        sha256_hex(&bytes)
    );
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(location.contains("X-Amz-Signature="), "{location}");

    // Following the redirect needs no registry token.
    let object = no_redirects.get(&location).send().await.unwrap();
    assert_eq!(object.status(), StatusCode::OK);
    assert!(object.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("filename=\"tool.tgz\""));
    assert_eq!(object.bytes().await.unwrap(), bytes);
}

#[tokio::test]
async fn packages_survive_a_restart_on_the_same_data_directory() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    let path = format!("{id}");
    r.put(
        &r.generic(&path, "t/1.0/a.bin"),
        Some(&r.admin()),
        b"kept".to_vec(),
    )
    .await;
    let TestRegistry { registry, data, .. } = r;
    registry.shutdown().await;

    let r = start_in(data, &[]).await;
    let response = r
        .get(&r.generic(&path, "t/1.0/a.bin"), Some(&r.admin()))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap(), "kept");
}
