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
/// Completes `upload_id` with the parts numbered 1, 2, ... in the order of
/// `etags`.
async fn complete_in_order(fs: &FastFs, key: &str, upload_id: &str, etags: &[&ETag]) {
    let parts: Vec<(i32, &ETag)> = (1..).zip(etags.iter().copied()).collect();
    complete(fs, key, upload_id, &parts).await;
}

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

/// That no upload has an assembly, and that no file of an upload's parts
/// (part, marker, assembly) nor a temporary file is left.
async fn assert_no_assembly_left(fs: &FastFs, root: &Path) {
    assert_eq!(fs.assemblies.count(), 0);
    eventually("a file of an upload's parts is left", || {
        temporaries(root).is_empty() && upload_files(root).is_empty()
    })
    .await;
}

/// That the assembly (by its inode) became the object `key`, holding
/// `data`, and that nothing of its upload is left.
async fn assert_assembly_became(
    fs: &FastFs,
    root: &Path,
    key: &str,
    data: &[u8],
    assembly_inode: u64,
) {
    assert!(object(root, key) == data);
    let object_path = root.join("genreg").join(key);
    assert_eq!(
        inode(&object_path),
        assembly_inode,
        "the assembly is the object"
    );
    assert_no_assembly_left(fs, root).await;
}

/// The files of uploads' parts in the server's root: parts, markers,
/// assemblies.
fn upload_files(root: &Path) -> Vec<String> {
    names_in(root)
        .into_iter()
        .filter(|name| name.starts_with(".upload_id-"))
        .collect()
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

    complete_in_order(&fs, "files/a", &id, &[&first, &second, &third]).await;
    assert_assembly_became(&fs, dir.path(), "files/a", &data.concat(), assembly_inode).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_that_come_in_order_are_written_once_into_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let id = create_upload(&fs, "files/w").await;
    let data = three_parts();
    let etags = upload_parts(&fs, "files/w", &id, &data).await;
    // No part has a file: each is a marker and its range of the assembly.
    let (held, assembly) = fs.assemblies.appended(&id);
    assert_eq!(held, 3);
    let mut files = upload_files(dir.path());
    files.retain(|name| name.contains(".part-"));
    assert!(files.is_empty(), "{files:?}");
    let assembly_inode = inode(&assembly);

    complete_in_order(&fs, "files/w", &id, &[&etags[0], &etags[1], &etags[2]]).await;
    assert_assembly_became(&fs, dir.path(), "files/w", &data.concat(), assembly_inode).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_stored_again_after_it_was_joined_is_read_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let id = create_upload(&fs, "files/b").await;
    let data = three_parts();
    // Parts 2 and 3 first, as files; part 1, in order, into the assembly,
    // which then copies parts 2 and 3 from their files.
    let second = upload_part(&fs, "files/b", &id, 2, data[1].clone()).await;
    let third = upload_part(&fs, "files/b", &id, 3, data[2].clone()).await;
    let first = upload_part(&fs, "files/b", &id, 1, data[0].clone()).await;
    let assembly = joined_ahead(&fs, &id, 3).await;
    let assembly_inode = inode(&assembly);
    // Part 2 again, other bytes of the same length: its file is new.
    let again = pattern(5 * MIB, 9);
    let second_again = upload_part(&fs, "files/b", &id, 2, again.clone()).await;
    assert_ne!(second, second_again);

    complete_in_order(&fs, "files/b", &id, &[&first, &second_again, &third]).await;
    assert!(object(dir.path(), "files/b") == [data[0].clone(), again, data[2].clone()].concat());
    // Part 1 was kept, the others appended from their files.
    assert_eq!(inode(&dir.path().join("genreg/files/b")), assembly_inode);
    assert_no_assembly_left(&fs, dir.path()).await;

    // All three written in order, then part 2 again: part 3 lies in the
    // assembly past the part stored again, so the parts are joined anew.
    let id = create_upload(&fs, "files/b2").await;
    let etags = upload_parts(&fs, "files/b2", &id, &data).await;
    let again = pattern(5 * MIB, 8);
    let second = upload_part(&fs, "files/b2", &id, 2, again.clone()).await;
    complete_in_order(&fs, "files/b2", &id, &[&etags[0], &second, &etags[2]]).await;
    assert!(object(dir.path(), "files/b2") == [data[0].clone(), again, data[2].clone()].concat());
    assert_no_assembly_left(&fs, dir.path()).await;
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

    // Parts 1 and 2 of three written in order: part 3 lives only in the
    // assembly, so it is not cut back (a completion that failed after
    // cutting would lose it): the parts are joined into a new file.
    let id = create_upload(&fs, "files/c2").await;
    let etags = upload_parts(&fs, "files/c2", &id, &data).await;
    let assembly = joined_ahead(&fs, &id, 3).await;
    let assembly_inode = inode(&assembly);
    complete_in_order(&fs, "files/c2", &id, &[&etags[0], &etags[1]]).await;
    assert!(object(dir.path(), "files/c2") == [data[0].clone(), data[1].clone()].concat());
    assert_ne!(inode(&dir.path().join("genreg/files/c2")), assembly_inode);

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
    // `genreg gc` aborts through a server of its own: this one is not told,
    // but the abort removes the upload's files, the assembly among them.
    super::super::uploads::abort(&fs.uploads_root, request(abort_input("files/f", &gone))).unwrap();
    assert!(!assembly.exists());
    assert_eq!(fs.assemblies.count(), 1);

    let next = create_upload(&fs, "files/g").await;
    upload_part(&fs, "files/g", &next, 1, pattern(1000, 2)).await;
    assert_eq!(fs.assemblies.count(), 1);
    assert_eq!(
        upload_files(dir.path()),
        [
            format!(".upload_id-{next}.assembled-1"),
            format!(".upload_id-{next}.assembly")
        ]
    );
}

/// ListParts's parts of `upload_id`, as part number, size and ETag.
async fn listed_parts(fs: &FastFs, key: &str, upload_id: &str) -> Vec<(i32, i64, ETag)> {
    let input = ListPartsInput {
        bucket: "genreg".into(),
        key: key.into(),
        upload_id: upload_id.into(),
        ..Default::default()
    };
    let output = fs.list_parts(request(input)).await.unwrap().output;
    output
        .parts
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.part_number.unwrap(), p.size.unwrap(), p.e_tag.unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_parts_written_in_order_are_listed_completed_and_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let data = three_parts();
    let (id, aborted, etags) = {
        let fs = server(dir.path());
        let id = create_upload(&fs, "files/r").await;
        let etags = upload_parts(&fs, "files/r", &id, &data[..2]).await;
        let aborted = create_upload(&fs, "files/s").await;
        upload_parts(&fs, "files/s", &aborted, &data[..1]).await;
        (id, aborted, etags)
    };
    // A part being written when the server died: its bytes reached the
    // assembly, its marker never did.
    let assembly = super::super::stored_parts::assembly_path(dir.path(), &id);
    let mut file = std::fs::File::options()
        .append(true)
        .open(&assembly)
        .unwrap();
    std::io::Write::write_all(&mut file, &pattern(MIB, 7)).unwrap();

    // A new server over the same files: it knows the parts only from them.
    let fs = server(dir.path());
    let sizes = [data[0].len() as i64, data[1].len() as i64];
    assert_eq!(
        listed_parts(&fs, "files/r", &id).await,
        [
            (1, sizes[0], etags[0].clone()),
            (2, sizes[1], etags[1].clone())
        ]
    );
    // The assembly is appended to no more: part 3 is a file.
    let third = upload_part(&fs, "files/r", &id, 3, data[2].clone()).await;
    assert!(upload_files(dir.path()).contains(&format!(".upload_id-{id}.part-3")));
    complete_in_order(&fs, "files/r", &id, &[&etags[0], &etags[1], &third]).await;
    assert!(object(dir.path(), "files/r") == data.concat());

    fs.abort_multipart_upload(request(abort_input("files/s", &aborted)))
        .await
        .unwrap();
    assert_no_assembly_left(&fs, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conditional_completion_by_s3s_fs_reads_parts_written_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let fs = server(dir.path());
    let id = create_upload(&fs, "files/i").await;
    let data = three_parts();
    let etags = upload_parts(&fs, "files/i", &id, &data).await;
    let parts = (1..)
        .zip(&etags)
        .map(|(number, etag)| CompletedPart {
            part_number: Some(number),
            e_tag: Some(etag.clone()),
            ..Default::default()
        })
        .collect();
    let input = CompleteMultipartUploadInput {
        bucket: "genreg".into(),
        key: "files/i".into(),
        upload_id: id,
        multipart_upload: Some(CompletedMultipartUpload { parts: Some(parts) }),
        if_none_match: Some(ETagCondition::Any),
        ..Default::default()
    };
    fs.complete_multipart_upload(request(input)).await.unwrap();
    assert!(object(dir.path(), "files/i") == data.concat());
    assert_no_assembly_left(&fs, dir.path()).await;
}
