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
