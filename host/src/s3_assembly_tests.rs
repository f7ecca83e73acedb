use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use s3s::dto::*;
use s3s::S3;

use super::super::test_support::{
    abort_input, create_upload, names_in, pattern, request, server, upload_part, MIB,
};
use super::super::FastFs;

async fn complete(fs: &FastFs, key: &str, upload_id: &str, parts: &[(i32, &ETag)]) {
    let parts = parts
        .iter()
        .map(|(number, etag)| CompletedPart {
            part_number: Some(*number),
            e_tag: Some((*etag).clone()),
            ..Default::default()
        })
        .collect();
    let input = CompleteMultipartUploadInput {
        bucket: "genreg".into(),
        key: key.into(),
        upload_id: upload_id.into(),
        multipart_upload: Some(CompletedMultipartUpload { parts: Some(parts) }),
        ..Default::default()
    };
    fs.complete_multipart_upload(request(input)).await.unwrap();
}

/// Uploads `parts` as parts 1, 2, ... in turn; answers their ETags.
async fn upload_parts(fs: &FastFs, key: &str, upload_id: &str, parts: &[Vec<u8>]) -> Vec<ETag> {
    let mut etags = Vec::new();
    for (number, part) in (1..).zip(parts) {
        etags.push(upload_part(fs, key, upload_id, number, part.clone()).await);
    }
    etags
}

/// Waits until the assembly of `upload_id` holds `parts` parts (appending
/// runs on the blocking pool); answers its file. Looking holds the
/// assembly, and an append that finds it held leaves its part to the
/// holder, which only another append looks for again: so a look that
/// finds a part missing asks for the stored parts again, as storing one
/// does.
async fn joined_ahead(fs: &FastFs, upload_id: &str, parts: usize) -> PathBuf {
    let joined = || {
        let joined = fs.assemblies.appended(upload_id).0 == parts;
        if !joined {
            fs.assemblies.part_stored(&fs.root, upload_id);
        }
        joined
    };
    eventually(&format!("not all {parts} parts joined"), joined).await;
    fs.assemblies.appended(upload_id).1
}

/// An upload of `key` whose one part (5 MiB) was joined ahead: its id and
/// its assembly.
async fn one_part_joined_ahead(fs: &FastFs, key: &str) -> (String, PathBuf) {
    let id = create_upload(fs, key).await;
    upload_part(fs, key, &id, 1, pattern(5 * MIB, 1)).await;
    let assembly = joined_ahead(fs, &id, 1).await;
    (id, assembly)
}

/// That no upload has an assembly, and that their files are gone.
async fn assert_no_assembly_left(fs: &FastFs, root: &Path) {
    assert_eq!(fs.assemblies.count(), 0);
    eventually("an assembly's file is left", || {
        temporaries(root).is_empty()
    })
    .await;
}

/// Waits, up to 30 s, until `done` holds: appends run on the blocking
/// pool, and an assembly's file goes with its last holder, which may be
/// the append that joined a part, for a moment after the part is seen
/// joined.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Three parts: 5 MiB, 5 MiB and 1000 bytes.
fn three_parts() -> [Vec<u8>; 3] {
    [pattern(5 * MIB, 1), pattern(5 * MIB, 2), pattern(1000, 3)]
}

fn object(root: &Path, key: &str) -> Vec<u8> {
    std::fs::read(root.join("genreg").join(key)).unwrap()
}

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

/// The temporary files left in the server's root.
fn temporaries(root: &Path) -> Vec<String> {
    names_in(root)
        .into_iter()
        .filter(|name| name.starts_with(".tmp."))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_joined_ahead_become_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let id = create_upload(&fs, "files/a").await;
    let data = three_parts();
    // Part 2 before part 1: nothing is joined until part 1 is in.
    let second = upload_part(&fs, "files/a", &id, 2, data[1].clone()).await;
    assert_eq!(fs.assemblies.appended(&id).0, 0);
    let first = upload_part(&fs, "files/a", &id, 1, data[0].clone()).await;
    let third = upload_part(&fs, "files/a", &id, 3, data[2].clone()).await;
    let assembly = joined_ahead(&fs, &id, 3).await;
    let assembly_inode = inode(&assembly);

    complete(
        &fs,
        "files/a",
        &id,
        &[(1, &first), (2, &second), (3, &third)],
    )
    .await;
    assert!(object(dir.path(), "files/a") == data.concat());
    let object_path = dir.path().join("genreg/files/a");
    assert_eq!(
        inode(&object_path),
        assembly_inode,
        "the assembly is the object"
    );
    assert_no_assembly_left(&fs, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_stored_again_after_it_was_joined_is_read_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let id = create_upload(&fs, "files/b").await;
    let data = three_parts();
    let etags = upload_parts(&fs, "files/b", &id, &data).await;
    let assembly = joined_ahead(&fs, &id, 3).await;
    let assembly_inode = inode(&assembly);
    // Part 2 again, other bytes of the same length: its file is new.
    let again = pattern(5 * MIB, 9);
    let second = upload_part(&fs, "files/b", &id, 2, again.clone()).await;

    complete(
        &fs,
        "files/b",
        &id,
        &[(1, &etags[0]), (2, &second), (3, &etags[2])],
    )
    .await;
    assert!(object(dir.path(), "files/b") == [data[0].clone(), again, data[2].clone()].concat());
    // Part 1 was kept, the others appended from their files.
    assert_eq!(inode(&dir.path().join("genreg/files/b")), assembly_inode);
    assert!(temporaries(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_of_some_parts_keeps_only_the_first_ones_joined() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let data = three_parts();
    // Parts 1 and 3: part 1 is kept, the assembly cut after it.
    let id = create_upload(&fs, "files/c").await;
    let etags = upload_parts(&fs, "files/c", &id, &data).await;
    joined_ahead(&fs, &id, 3).await;
    complete(&fs, "files/c", &id, &[(1, &etags[0]), (3, &etags[2])]).await;
    assert!(object(dir.path(), "files/c") == [data[0].clone(), data[2].clone()].concat());

    // Parts 2 and 3: nothing joined ahead is the completion's, so the
    // parts are joined from their files and the assembly removed.
    let id = create_upload(&fs, "files/d").await;
    let etags = upload_parts(&fs, "files/d", &id, &data).await;
    joined_ahead(&fs, &id, 3).await;
    complete(&fs, "files/d", &id, &[(2, &etags[1]), (3, &etags[2])]).await;
    assert!(object(dir.path(), "files/d") == [data[1].clone(), data[2].clone()].concat());
    assert_no_assembly_left(&fs, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_upload_leaves_no_assembly() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let (id, assembly) = one_part_joined_ahead(&fs, "files/e").await;
    assert!(assembly.exists());
    fs.abort_multipart_upload(request(abort_input("files/e", &id)))
        .await
        .unwrap();
    eventually("the assembly is still there", || !assembly.exists()).await;
    assert_no_assembly_left(&fs, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_aborted_by_another_process_loses_its_assembly_at_the_next_part() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let (gone, assembly) = one_part_joined_ahead(&fs, "files/f").await;
    // `genreg gc` aborts through a server of its own: this one is not told.
    super::super::uploads::abort(&fs.uploads_root, request(abort_input("files/f", &gone))).unwrap();
    assert!(assembly.exists());

    let next = create_upload(&fs, "files/g").await;
    upload_part(&fs, "files/g", &next, 1, pattern(1000, 2)).await;
    assert_eq!(fs.assemblies.count(), 1);
    eventually("the assembly is still there", || !assembly.exists()).await;
}
