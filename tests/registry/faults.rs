//! A client that goes away mid-upload leaves neither a record nor an object
//! (nor an unfinished multipart upload) behind.

use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;

use crate::common::*;

#[tokio::test]
async fn an_aborted_upload_leaves_nothing_behind() {
    let r = start_with(&[("s3_part_size", "5242880")]).await;
    let id = r.create_project("acme", "tools", "private").await;
    let admin = r.admin();
    let address = r.registry.url().trim_start_matches("http://").to_string();
    let path = format!("/api/v4/projects/{id}/packages/generic/t/1.0/cut.bin");

    // Announce 20 MiB, send 12 MiB (two full parts and some), then hang up.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {address}\r\nPRIVATE-TOKEN: {admin}\r\nContent-Length: {}\r\n\r\n",
        20 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&data(12 * 1024 * 1024, 9)).await.unwrap();
    stream.flush().await.unwrap();
    drop(stream);

    // Shutting down waits for the request in flight to finish its cleanup.
    let TestRegistry {
        registry,
        data: dir,
        ..
    } = r;
    registry.shutdown().await;
    let r = start_in(dir, &[]).await;
    assert!(r.objects().is_empty(), "left behind: {:?}", r.objects());
    assert!(
        r.unfinished_uploads().is_empty(),
        "left behind: {:?}",
        r.unfinished_uploads()
    );
    let url = r.generic(&id.to_string(), "t/1.0/cut.bin");
    assert_eq!(
        r.get(&url, Some(&r.admin())).await.status(),
        StatusCode::NOT_FOUND
    );
}

/// A registry whose S3 endpoint is `endpoint` (nothing else changes).
async fn start_with_s3(endpoint: &str, variables: &[(&str, &str)]) -> TestRegistry {
    start_configured(variables, |config| {
        config.s3 = genreg::S3Config::External {
            endpoint: endpoint.to_string(),
            bucket: "genreg".into(),
            region: "us-east-1".into(),
            access_key_id: "key".into(),
            secret_access_key: "secret".into(),
        };
    })
    .await
}

/// An "S3" that accepts connections, reads whatever comes, and never
/// answers. Returns its URL; it lives as long as the test's runtime.
async fn silent_s3() -> String {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut connection, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut sink = vec![0u8; 64 * 1024];
                while matches!(connection.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    format!("http://{address}")
}

const SHORT_S3_TIMEOUTS: [(&str, &str); 3] = [
    ("s3_connect_timeout_ms", "2000"),
    ("s3_first_byte_timeout_ms", "300"),
    ("s3_between_bytes_timeout_ms", "300"),
];

#[tokio::test]
async fn a_silent_s3_answers_504_and_records_nothing() {
    let s3 = silent_s3().await;
    let mut variables = SHORT_S3_TIMEOUTS.to_vec();
    variables.push(("s3_part_size", "5242880"));
    let r = start_with_s3(&s3, &variables).await;
    let id = r.create_project("acme", "tools", "private").await;
    let admin = r.admin();

    // One PUT, and a chunked body of more than a part: a multipart upload
    // (stalled at its creation, once the first part is read).
    for (name, size) in [("small.bin", 1000), ("large.bin", 5 * 1024 * 1024 + 10)] {
        let url = r.generic(&id.to_string(), &format!("t/1.0/{name}"));
        let bytes = data(size, 3);
        let body = if size > 1000 {
            let chunks = bytes
                .chunks(64 * 1024)
                .map(|c| Ok::<_, std::io::Error>(c.to_vec()));
            reqwest::Body::wrap_stream(futures::stream::iter(chunks.collect::<Vec<_>>()))
        } else {
            reqwest::Body::from(bytes)
        };
        let response = r
            .client
            .put(&url)
            .header("PRIVATE-TOKEN", &admin)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT, "{name}");
        let body = json(response).await;
        assert_eq!(
            body,
            serde_json::json!({ "message": "504 Gateway Timeout" })
        );
    }

    let listing = r
        .get(
            &r.url(&format!("/api/v4/projects/{id}/packages")),
            Some(&admin),
        )
        .await;
    assert_eq!(listing.status(), StatusCode::OK);
    assert_eq!(json(listing).await, serde_json::json!([]));
    let url = r.generic(&id.to_string(), "t/1.0/small.bin");
    assert_eq!(
        r.get(&url, Some(&admin)).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_unreachable_s3_answers_502_without_its_details() {
    // A port nothing listens on: the connection is refused at once.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let r = start_with_s3(&endpoint, &SHORT_S3_TIMEOUTS).await;
    let id = r.create_project("acme", "tools", "private").await;
    let url = r.generic(&id.to_string(), "t/1.0/a.bin");
    let response = r.put(&url, Some(&r.admin()), b"bytes".to_vec()).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = response.text().await.unwrap();
    assert_eq!(body, r#"{"message":"502 Bad Gateway"}"#);
}

#[tokio::test]
async fn a_cut_body_answers_a_plain_400() {
    use tokio::io::AsyncReadExt;
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    let admin = r.admin();
    let address = r.registry.url().trim_start_matches("http://").to_string();
    let path = format!("/api/v4/projects/{id}/packages/generic/t/1.0/cut.bin");

    // Announce 1000 bytes, send 100, then close the sending side and read.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {address}\r\nPRIVATE-TOKEN: {admin}\r\nContent-Length: 1000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&data(100, 1)).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);

    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert!(
        body.contains(r#"{"message":"400 Bad request - the request body was cut off"}"#),
        "{answer}"
    );
    for internal in ["hyper", "connection", "backtrace", "error reading"] {
        assert!(!body.contains(internal), "leaks {internal:?}: {body}");
    }
    let url = r.generic(&id.to_string(), "t/1.0/cut.bin");
    assert_eq!(
        r.get(&url, Some(&admin)).await.status(),
        StatusCode::NOT_FOUND
    );
}
