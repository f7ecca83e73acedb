use bytes::Bytes;
use futures::StreamExt as _;
use md5::{Digest as _, Md5};
use s3s::dto::*;
use s3s::S3;

use super::super::test_support::{head, names_in, pattern, request, server, MIB};
use super::super::FastFs;
use super::{is_plain_put, GATHERED_PUT};

fn body(data: &[u8]) -> StreamingBlob {
    let chunk = Bytes::copy_from_slice(data);
    StreamingBlob::wrap(futures::stream::iter([Ok::<_, std::io::Error>(chunk)]))
}

fn put_input(key: &str, data: &[u8]) -> PutObjectInput {
    PutObjectInput {
        bucket: "genreg".into(),
        key: key.into(),
        content_length: Some(data.len() as i64),
        body: Some(body(data)),
        ..Default::default()
    }
}

fn get_input(key: &str, range: Option<Range>) -> GetObjectInput {
    GetObjectInput {
        bucket: "genreg".into(),
        key: key.into(),
        range,
        ..Default::default()
    }
}

async fn read_body(output: GetObjectOutput) -> Vec<u8> {
    let mut body = output.body.unwrap();
    let mut read = Vec::new();
    while let Some(chunk) = body.next().await {
        read.extend_from_slice(&chunk.unwrap());
    }
    read
}

/// The answer and body of a GetObject through `FastFs`, and through s3s-fs.
async fn get_both(fs: &FastFs, key: &str) -> [(GetObjectOutput, Vec<u8>); 2] {
    let mut answers = Vec::new();
    for ours in [true, false] {
        let req = request(get_input(key, None));
        let mut output = match ours {
            true => fs.get_object(req).await.unwrap().output,
            false => fs.inner.get_object(req).await.unwrap().output,
        };
        let body = read_body(GetObjectOutput {
            body: output.body.take(),
            ..Default::default()
        })
        .await;
        answers.push((output, body));
    }
    answers.try_into().unwrap()
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

#[tokio::test]
async fn a_plain_put_reads_back_through_s3s_fs_and_ours_alike() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let data = pattern(1024, 7);
    let req = request(put_input("files/a/b", &data));
    assert!(is_plain_put(&req));
    let answer = fs.put_object(req).await.unwrap().output;
    assert_eq!(answer.e_tag, Some(ETag::Strong(md5_hex(&data))));

    let [(ours, our_body), (theirs, their_body)] = get_both(&fs, "files/a/b").await;
    assert_eq!(our_body, data);
    assert_eq!(their_body, data);
    assert_eq!(ours.e_tag, theirs.e_tag);
    assert_eq!(ours.content_length, Some(1024));
    assert_eq!(ours.content_length, theirs.content_length);
    assert_eq!(ours.last_modified, theirs.last_modified);
    assert_eq!(ours.content_type, None);
    assert_eq!(head(&fs, "files/a/b").await, (Some(1024), ours.e_tag));

    // Only the object was written (its ETag comes from its bytes); no
    // temporary file is left.
    assert_eq!(names_in(dir.path()), ["genreg"]);
}

#[tokio::test]
async fn objects_s3s_fs_stored_read_back_through_ours() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let data = pattern(3000, 1);
    let mut with_checksum = put_input("files/sum", &data);
    with_checksum.checksum_sha256 = Some({
        use base64::Engine as _;
        use sha2::Digest as _;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&data))
    });
    let req = request(with_checksum);
    assert!(!is_plain_put(&req));
    fs.put_object(req).await.unwrap();
    let [(ours, body), (theirs, _)] = get_both(&fs, "files/sum").await;
    assert_eq!(body, data);
    assert!(ours.checksum_sha256.is_some());
    assert_eq!(ours.checksum_sha256, theirs.checksum_sha256);
    assert_eq!(ours.e_tag, theirs.e_tag);

    // With attributes, s3s-fs answers: the content type comes back.
    let mut typed = put_input("files/typed", &data);
    typed.content_type = Some("text/plain".into());
    fs.put_object(request(typed)).await.unwrap();
    let [(ours, body), _] = get_both(&fs, "files/typed").await;
    assert_eq!(body, data);
    assert_eq!(ours.content_type.as_deref(), Some("text/plain"));

    // A plain put over it leaves no stale attributes or ETag behind.
    let newer = pattern(10, 2);
    fs.put_object(request(put_input("files/typed", &newer)))
        .await
        .unwrap();
    for (output, body) in get_both(&fs, "files/typed").await {
        assert_eq!(body, newer);
        assert_eq!(output.content_type, None);
        assert_eq!(output.e_tag, Some(ETag::Strong(md5_hex(&newer))));
    }
}

#[tokio::test]
async fn a_range_reads_part_of_the_object_without_its_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let data = pattern(2000, 3);
    fs.put_object(request(put_input("files/r", &data)))
        .await
        .unwrap();
    let range = Range::Int {
        first: 100,
        last: Some(199),
    };
    let output = fs
        .get_object(request(get_input("files/r", Some(range))))
        .await
        .unwrap()
        .output;
    assert_eq!(output.content_range.as_deref(), Some("bytes 100-199/2000"));
    assert_eq!(output.content_length, Some(100));
    assert_eq!(read_body(output).await, data[100..200]);

    let past_the_end = Range::Int {
        first: 5000,
        last: None,
    };
    let refused = fs
        .get_object(request(get_input("files/r", Some(past_the_end))))
        .await;
    assert_eq!(refused.unwrap_err().code(), &s3s::S3ErrorCode::InvalidRange);
}

#[tokio::test]
async fn a_body_that_does_not_match_its_length_or_md5_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let data = pattern(100, 4);
    let mut short = put_input("files/short", &data);
    short.content_length = Some(101);
    assert!(fs.put_object(request(short)).await.is_err());
    let mut long = put_input("files/long", &data);
    long.content_length = Some(99);
    assert!(fs.put_object(request(long)).await.is_err());
    let mut wrong_md5 = put_input("files/md5", &data);
    wrong_md5.content_md5 = Some({
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(Md5::digest(b"other"))
    });
    let refused = fs.put_object(request(wrong_md5)).await;
    assert_eq!(refused.unwrap_err().code(), &s3s::S3ErrorCode::BadDigest);

    for key in ["files/short", "files/long", "files/md5"] {
        let missing = fs.get_object(request(get_input(key, None))).await;
        assert_eq!(missing.unwrap_err().code(), &s3s::S3ErrorCode::NoSuchKey);
    }
    let leftovers = names_in(dir.path())
        .iter()
        .filter(|name| *name != "genreg")
        .count();
    assert_eq!(leftovers, 0);
}

#[tokio::test]
async fn objects_past_the_gathered_size_go_to_s3s_fs_and_stream_back() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let largest = pattern(GATHERED_PUT as usize, 6);
    assert!(is_plain_put(&request(put_input("files/largest", &largest))));
    let data = pattern(2 * MIB + 5, 5);
    let req = request(put_input("files/big", &data));
    assert!(!is_plain_put(&req));
    fs.put_object(req).await.unwrap();
    let [(ours, body), (theirs, _)] = get_both(&fs, "files/big").await;
    assert!(body == data);
    assert_eq!(ours.e_tag, theirs.e_tag);
    assert_eq!(ours.content_length, Some(data.len() as i64));
}
