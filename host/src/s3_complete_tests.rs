use md5::{Digest as _, Md5};
use s3s::dto::*;
use s3s::S3;

use super::super::stored_parts::give_assembled_parts_files;
use super::super::test_support::{
    abort_input, create_upload, head, names_in, pattern, request, server, upload_part, MIB,
};
use super::super::FastFs;

fn completion(key: &str, upload_id: &str, etags: &[ETag]) -> CompleteMultipartUploadInput {
    let parts = etags
        .iter()
        .enumerate()
        .map(|(i, etag)| CompletedPart {
            part_number: Some(i as i32 + 1),
            e_tag: Some(etag.clone()),
            ..Default::default()
        })
        .collect();
    CompleteMultipartUploadInput {
        bucket: "genreg".into(),
        key: key.into(),
        upload_id: upload_id.into(),
        multipart_upload: Some(CompletedMultipartUpload { parts: Some(parts) }),
        ..Default::default()
    }
}

/// Two parts (5 MiB and a short last one) of an upload to `key`.
async fn upload_two_parts(fs: &FastFs, key: &str) -> (String, Vec<ETag>) {
    let id = create_upload(fs, key).await;
    let first = upload_part(fs, key, &id, 1, pattern(5 * MIB, 1)).await;
    let second = upload_part(fs, key, &id, 2, pattern(1000, 2)).await;
    (id, vec![first, second])
}

#[tokio::test]
async fn parts_are_joined_into_the_object_as_s3s_fs_would_join_them() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let (ours, etags) = upload_two_parts(&fs, "files/ours").await;
    let answer = fs
        .complete_multipart_upload(request(completion("files/ours", &ours, &etags)))
        .await
        .unwrap();
    // The same parts joined by s3s-fs itself, for comparison (it reads
    // only parts' files).
    let (theirs, their_etags) = upload_two_parts(&fs, "files/theirs").await;
    give_assembled_parts_files(&fs.root, &theirs).unwrap();
    fs.inner
        .complete_multipart_upload(request(completion("files/theirs", &theirs, &their_etags)))
        .await
        .unwrap();

    let bucket = dir.path().join("genreg");
    let mut expected = pattern(5 * MIB, 1);
    expected.extend(pattern(1000, 2));
    assert!(std::fs::read(bucket.join("files/ours")).unwrap() == expected);
    assert!(std::fs::read(bucket.join("files/theirs")).unwrap() == expected);
    let (length, etag) = head(&fs, "files/ours").await;
    assert_eq!(length, head(&fs, "files/theirs").await.0);
    assert_eq!(length, Some(expected.len() as i64));
    assert_eq!(answer.output.e_tag, etag);
    // S3's form: the md5 of the parts' ETags (as bytes), a dash, the count.
    let mut part_etags = Vec::new();
    for etag in &etags {
        let (ETag::Strong(value) | ETag::Weak(value)) = etag;
        part_etags.extend(hex::decode(value).unwrap());
    }
    let expected_etag = format!("{}-2", hex::encode(Md5::digest(&part_etags)));
    assert_eq!(etag, Some(ETag::Strong(expected_etag)));

    // The upload is gone: its parts, its file, the remembered ETags. (The
    // upload s3s-fs completed behind this server's back keeps its assembly,
    // `s3_assembly.rs`, until it is aborted.)
    let left: Vec<_> = names_in(dir.path())
        .into_iter()
        .filter(|name| name.contains(&ours) || name.starts_with(".tmp."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let known = fs.part_etags.known.lock().unwrap().clone();
    assert!(known.keys().all(|p| !p.to_string_lossy().contains(&ours)));
    let again = fs
        .complete_multipart_upload(request(completion("files/ours", &ours, &etags)))
        .await;
    assert_eq!(again.unwrap_err().code(), &s3s::S3ErrorCode::NoSuchUpload);
}

#[tokio::test]
async fn a_wrong_etag_is_refused_and_the_upload_stays_whole() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let (id, etags) = upload_two_parts(&fs, "files/a").await;
    let wrong = vec![etags[0].clone(), ETag::Strong("0".repeat(32))];
    let refused = fs
        .complete_multipart_upload(request(completion("files/a", &id, &wrong)))
        .await;
    assert_eq!(refused.unwrap_err().code(), &s3s::S3ErrorCode::InvalidPart);
    assert!(!dir.path().join("genreg/files/a").exists());

    // After a restart the ETags are hashed from the parts' files.
    fs.part_etags.known.lock().unwrap().clear();
    fs.complete_multipart_upload(request(completion("files/a", &id, &etags)))
        .await
        .unwrap();
    assert_eq!(head(&fs, "files/a").await.0, Some(5 * MIB as i64 + 1000));
}

#[tokio::test]
async fn an_etag_an_earlier_version_answered_still_completes() {
    use sha2::{Digest as _, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let (id, etags) = upload_two_parts(&fs, "files/e").await;
    // Earlier versions stored every part as a file.
    give_assembled_parts_files(&fs.root, &id).unwrap();
    // A client that stored the parts before an upgrade holds their md5
    // (s3s-fs's ETag) or the head of their SHA-256.
    let first = pattern(5 * MIB, 1);
    let md5 = ETag::Strong(hex::encode(Md5::digest(&first)));
    let sha256 = ETag::Strong(hex::encode(&Sha256::digest(pattern(1000, 2))[..16]));
    assert!(md5 != etags[0] && sha256 != etags[1]);
    let earlier = completion("files/e", &id, &[md5, sha256]);
    // Parts this server stored answered XXH3: nothing else is hashed for.
    let refused = fs.complete_multipart_upload(request(earlier.clone())).await;
    assert_eq!(refused.unwrap_err().code(), &s3s::S3ErrorCode::InvalidPart);

    // Stored before the server started: the earlier ETags match.
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for number in [1, 2] {
        let path = super::super::part_etags::part_path(&fs.root, &id, number);
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(an_hour_ago).unwrap();
    }
    let answer = fs
        .complete_multipart_upload(request(earlier))
        .await
        .unwrap();
    assert_eq!(
        head(&fs, "files/e").await,
        (Some(5 * MIB as i64 + 1000), answer.output.e_tag)
    );
}

#[tokio::test]
async fn a_short_part_before_the_last_is_too_small() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let id = create_upload(&fs, "files/b").await;
    let first = upload_part(&fs, "files/b", &id, 1, pattern(1000, 1)).await;
    let second = upload_part(&fs, "files/b", &id, 2, pattern(1000, 2)).await;
    let refused = fs
        .complete_multipart_upload(request(completion("files/b", &id, &[first, second])))
        .await;
    assert_eq!(
        refused.unwrap_err().code(),
        &s3s::S3ErrorCode::EntityTooSmall
    );
}

#[tokio::test]
async fn another_access_key_may_not_complete_the_upload() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let (id, etags) = upload_two_parts(&fs, "files/c").await;
    let mut req = request(completion("files/c", &id, &etags));
    req.credentials.as_mut().unwrap().access_key = "someone-else".into();
    let refused = fs.complete_multipart_upload(req).await;
    assert_eq!(refused.unwrap_err().code(), &s3s::S3ErrorCode::AccessDenied);
}

#[tokio::test]
async fn an_aborted_upload_leaves_no_remembered_etags() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let (id, _) = upload_two_parts(&fs, "files/d").await;
    let (kept, _) = upload_two_parts(&fs, "files/e").await;
    fs.abort_multipart_upload(request(abort_input("files/d", &id)))
        .await
        .unwrap();
    let known = fs.part_etags.known.lock().unwrap().clone();
    let names: Vec<String> = known.keys().map(|p| p.to_string_lossy().into()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| n.contains(&kept) && !n.contains(&id)));
}
