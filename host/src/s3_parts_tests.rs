use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use s3s::dto::*;
use s3s::{S3ErrorCode, S3};
use sha2::{Digest as _, Sha256};

use super::super::assembly::is_assembly;
use super::super::stored_parts::{assembly_path, stored_part};
use super::super::test_support::{create_upload, names_in, pattern, request, server, MIB};
use super::super::FastFs;
use super::*;

const KEY: &str = "part/object";

/// An UploadPart of `chunks` as the body's pieces, with `Content-Length`
/// their total.
fn part_input(
    upload_id: &str,
    number: i32,
    chunks: Vec<std::io::Result<Bytes>>,
) -> UploadPartInput {
    let length = chunks
        .iter()
        .map(|c| c.as_ref().map_or(0, Bytes::len))
        .sum::<usize>();
    UploadPartInput {
        bucket: "genreg".into(),
        key: KEY.into(),
        upload_id: upload_id.into(),
        part_number: number,
        content_length: Some(length as i64),
        body: Some(StreamingBlob::wrap(futures::stream::iter(chunks))),
        ..Default::default()
    }
}

/// `data` in pieces of `size` bytes.
fn chunks_of(data: &[u8], size: usize) -> Vec<std::io::Result<Bytes>> {
    data.chunks(size)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect()
}

/// A part's ETag as S3 clients see it: the 128-bit XXH3 of its bytes, in hex.
fn part_etag(data: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(data))
}

async fn upload(fs: &FastFs, input: UploadPartInput) -> S3Result<String> {
    let answer = fs.upload_part(request(input)).await?;
    match answer.output.e_tag.unwrap() {
        ETag::Strong(value) | ETag::Weak(value) => Ok(value),
    }
}

/// The names of the files in the server's root that parts leave: their
/// files, the markers of those written into the assembly, and temporary
/// files (but the assembly itself).
fn root_files(fs: &FastFs) -> Vec<String> {
    names_in(&fs.root)
        .into_iter()
        .filter(|name| {
            (name.contains(".part") || name.contains(".assembled-")) && !is_assembly(name)
        })
        .collect()
}

/// That nothing of a refused part is kept: no file, no marker, and an
/// assembly that holds no more than the parts stored before.
fn assert_nothing_kept(fs: &FastFs, upload_id: &str, assembled: u64) {
    assert!(root_files(fs).is_empty(), "{:?}", root_files(fs));
    let assembly = std::fs::metadata(assembly_path(&fs.root, upload_id)).map_or(0, |m| m.len());
    assert_eq!(assembly, assembled);
}

/// The bytes stored for part `number`, in its file or in the assembly.
fn stored(fs: &FastFs, upload_id: &str, number: i32) -> Vec<u8> {
    let part = stored_part(&fs.root, upload_id, number).expect("the part is stored");
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut part.open().unwrap(), &mut bytes).unwrap();
    bytes
}

#[tokio::test]
async fn a_part_is_stored_whole_with_its_xxh3_as_etag() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let upload_id = create_upload(&fs, KEY).await;
    // Part 3 comes out of order and is a file; part 1 comes in order and
    // is written into the assembly, with no file of its own.
    for (number, in_assembly) in [(3, false), (1, true)] {
        // More pieces than the writer's queue holds.
        let data = pattern(3 * MIB + 123, number as u8);
        let etag = upload(
            &fs,
            part_input(&upload_id, number, chunks_of(&data, 64 * 1024)),
        )
        .await
        .unwrap();

        assert_eq!(etag, part_etag(&data));
        assert!(stored(&fs, &upload_id, number) == data);
        assert_eq!(
            part_path(&fs.root, &upload_id, number).exists(),
            !in_assembly,
            "{number}"
        );
        // The same ETag is found again from the stored bytes, as after a
        // restart.
        let part = stored_part(&fs.root, &upload_id, number).unwrap();
        assert_eq!(etag_of_stored(&part), Some(etag));
    }
    assert_eq!(
        root_files(&fs),
        [
            format!(".upload_id-{upload_id}.assembled-1"),
            format!(".upload_id-{upload_id}.part-3")
        ]
    );
}

#[tokio::test]
async fn a_part_sent_again_replaces_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let upload_id = create_upload(&fs, KEY).await;
    // Part 2 first, as a file, and again; part 1 in order, into the
    // assembly, then again, as a file; and each once more.
    for number in [2, 1, 2, 1] {
        let first = upload(&fs, part_input(&upload_id, number, chunks_of(b"first", 2)))
            .await
            .unwrap();
        let second = upload(&fs, part_input(&upload_id, number, chunks_of(b"second", 4)))
            .await
            .unwrap();
        assert_ne!(first, second);
        assert_eq!(stored(&fs, &upload_id, number), b"second", "{number}");
    }
}

#[tokio::test]
async fn sent_digests_are_checked_and_a_mismatch_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let upload_id = create_upload(&fs, KEY).await;
    let data = pattern(100_000, 9);
    let sha256 = STANDARD.encode(Sha256::digest(&data));
    let md5 = STANDARD.encode(<Md5 as md5::Digest>::digest(&data));
    let other = pattern(100_000, 10);
    let wrong_sha256 = STANDARD.encode(Sha256::digest(&other));
    let wrong_md5 = STANDARD.encode(<Md5 as md5::Digest>::digest(&other));

    // Part 2 out of order (a file), then part 1 in order (the assembly).
    for number in [2, 1] {
        for (sha256, md5) in [
            (Some(&wrong_sha256), None),
            (None, Some(&wrong_md5)),
            (Some(&sha256), Some(&wrong_md5)),
            (Some(&wrong_sha256), Some(&md5)),
        ] {
            let mut input = part_input(&upload_id, number, chunks_of(&data, 7_000));
            input.checksum_sha256 = sha256.cloned();
            input.content_md5 = md5.cloned();
            let refused = upload(&fs, input).await.unwrap_err();
            assert_eq!(
                refused.code(),
                &S3ErrorCode::BadDigest,
                "{sha256:?} {md5:?}"
            );
            assert_nothing_kept(&fs, &upload_id, 0);
        }

        // Digests that are no base64 are refused before the body is read.
        let mut input = part_input(&upload_id, number, chunks_of(&data, 7_000));
        input.content_md5 = Some("not base64!".into());
        let refused = upload(&fs, input).await.unwrap_err();
        assert_eq!(refused.code(), &S3ErrorCode::InvalidDigest);
        let mut input = part_input(&upload_id, number, chunks_of(&data, 7_000));
        input.checksum_sha256 = Some("not base64!".into());
        let refused = upload(&fs, input).await.unwrap_err();
        assert_eq!(refused.code(), &S3ErrorCode::InvalidRequest);
        assert_nothing_kept(&fs, &upload_id, 0);
    }

    for number in [2, 1] {
        let mut input = part_input(&upload_id, number, chunks_of(&data, 7_000));
        input.checksum_sha256 = Some(sha256.clone());
        input.content_md5 = Some(md5.clone());
        let etag = upload(&fs, input).await.unwrap();
        assert_eq!(etag, part_etag(&data));
        assert!(stored(&fs, &upload_id, number) == data);
    }
}

#[tokio::test]
async fn a_body_that_breaks_off_or_misses_its_length_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let upload_id = create_upload(&fs, KEY).await;
    let first = pattern(1_000, 1);
    upload(&fs, part_input(&upload_id, 1, chunks_of(&first, 300)))
        .await
        .unwrap();

    // Part 3 out of order (a file), part 2 in order (the assembly, which
    // keeps part 1 whole).
    for number in [3, 2] {
        let mut chunks = chunks_of(&pattern(MIB, 1), 64 * 1024);
        chunks.push(Err(std::io::Error::other("connection reset")));
        let refused = upload(&fs, part_input(&upload_id, number, chunks))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), &S3ErrorCode::IncompleteBody);
        let marker = [format!(".upload_id-{upload_id}.assembled-1")];
        assert_eq!(root_files(&fs), marker);

        for announced in [999, 1_001] {
            let mut input = part_input(&upload_id, number, chunks_of(&pattern(1_000, 2), 300));
            input.content_length = Some(announced);
            let refused = upload(&fs, input).await.unwrap_err();
            assert_eq!(refused.code(), &S3ErrorCode::IncompleteBody, "{announced}");
            assert_eq!(root_files(&fs), marker);
        }
    }
    let assembly = std::fs::metadata(assembly_path(&fs.root, &upload_id)).unwrap();
    assert_eq!(assembly.len(), 1_000);
    assert!(stored(&fs, &upload_id, 1) == first);
}

#[tokio::test]
async fn a_part_of_no_open_upload_or_out_of_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let upload_id = create_upload(&fs, KEY).await;
    let body = || chunks_of(b"bytes", 5);

    for number in [0, 10_001] {
        let refused = upload(&fs, part_input(&upload_id, number, body()))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), &S3ErrorCode::InvalidArgument, "{number}");
    }
    for unknown in ["6e8bd2a4-0b5c-4cbd-9a53-3d0ef1c5c9a1", "../../etc", ""] {
        let refused = upload(&fs, part_input(unknown, 1, body()))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), &S3ErrorCode::NoSuchUpload, "{unknown}");
    }

    let mut other_key = request(part_input(&upload_id, 1, body()));
    other_key.credentials.as_mut().unwrap().access_key = "someone-else".into();
    let refused = fs.upload_part(other_key).await.unwrap_err();
    assert_eq!(refused.code(), &S3ErrorCode::AccessDenied);
    assert!(root_files(&fs).is_empty(), "{:?}", root_files(&fs));
}

#[tokio::test]
async fn a_part_copied_from_an_object_gets_the_same_etag_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let source = pattern(6 * MIB, 3);
    std::fs::write(dir.path().join("genreg/source"), &source).unwrap();
    let upload_id = create_upload(&fs, KEY).await;

    let copy = UploadPartCopyInput::builder()
        .bucket("genreg".into())
        .key(KEY.into())
        .upload_id(upload_id.clone())
        .part_number(1)
        .copy_source(CopySource::Bucket {
            bucket: "genreg".into(),
            key: "source".into(),
            version_id: None,
        })
        .copy_source_range(Some(format!("bytes=0-{}", 5 * MIB - 1)))
        .build()
        .unwrap();
    let answer = fs.upload_part_copy(request(copy)).await.unwrap();
    let copied = answer.output.copy_part_result.unwrap().e_tag.unwrap();
    let head = &source[..5 * MIB];
    assert_eq!(copied, ETag::Strong(part_etag(head)));
    let last = upload(&fs, part_input(&upload_id, 2, chunks_of(b"tail", 4)))
        .await
        .unwrap();

    // After a restart too: the ETag is hashed from the file the same way.
    fs.part_etags.known.lock().unwrap().clear();
    let parts = [copied, ETag::Strong(last)]
        .into_iter()
        .enumerate()
        .map(|(i, etag)| CompletedPart {
            part_number: Some(i as i32 + 1),
            e_tag: Some(etag),
            ..Default::default()
        })
        .collect();
    let complete = CompleteMultipartUploadInput {
        bucket: "genreg".into(),
        key: KEY.into(),
        upload_id,
        multipart_upload: Some(CompletedMultipartUpload { parts: Some(parts) }),
        ..Default::default()
    };
    fs.complete_multipart_upload(request(complete))
        .await
        .unwrap();
    let stored = std::fs::read(dir.path().join("genreg").join(KEY)).unwrap();
    assert!(stored == [head, b"tail"].concat());
}
