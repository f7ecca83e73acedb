//! `GET /api/v4/admin/referenced_objects`: every object key the registry
//! references, page by page, for `genreg gc` (ours).

use std::collections::BTreeSet;

use genreg_token::{Role, Scope};
use serde_json::Value;

use crate::meta::keys;
use crate::meta::kv::KeyValue;
use crate::meta::model::Project;
use crate::meta::objects::READ_ALLOWANCE;
use crate::meta::packages::TAIL_FILES;
use crate::meta::project_index::ProjectShard;
use crate::testing::{personal, Credential, TestRegistry};

const PATH: &str = "/api/v4/admin/referenced_objects";

/// Follows `next_cursor` from the first page; returns every key and the
/// number of pages. Checks each page's size and reads on the way.
fn all_pages(r: &TestRegistry, per_page: usize) -> (Vec<String>, usize) {
    let admin = r.admin();
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    for pages in 1..10_000 {
        let url = match &cursor {
            Some(c) => format!("{PATH}?per_page={per_page}&cursor={c}"),
            None => format!("{PATH}?per_page={per_page}"),
        };
        let reply = r.get(&url, &admin);
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let page = reply.json();
        let page_keys = page["object_keys"].as_array().unwrap();
        // A part (a segment or the tail) is taken whole.
        assert!(
            page_keys.len() < per_page + TAIL_FILES,
            "{}",
            page_keys.len()
        );
        // Authentication reads a few keys; the walk at most its budget.
        let reads = reply.counts.reads();
        assert!(
            reads <= per_page as u32 + READ_ALLOWANCE + 8,
            "{reads} reads"
        );
        keys.extend(page_keys.iter().map(|k| k.as_str().unwrap().to_string()));
        match &page["next_cursor"] {
            Value::Null => return (keys, pages),
            Value::String(next) => cursor = Some(next.clone()),
            other => panic!("next_cursor is {other}"),
        }
    }
    panic!("the pages never end");
}

fn stored_objects(r: &TestRegistry) -> BTreeSet<String> {
    r.s3.objects.borrow().keys().cloned().collect()
}

#[test]
fn pages_cover_every_file_of_every_package_segments_included() {
    let r = TestRegistry::default();
    let admin = r.admin();
    let first = r.create_project("acme", "tools", "private");
    let second = r.create_project("acme", "other", "public");
    // More than a tail's worth of files: the oldest are sealed in a segment.
    for i in 0..TAIL_FILES + 15 {
        let url = r.generic(first, &format!("big/1.0/f{i}.bin"));
        assert_eq!(r.put_bytes(&url, &admin, b"x").status, 201);
    }
    for version in ["1.0", "2.0", "3.0"] {
        let url = r.generic(second, &format!("small/{version}/a.bin"));
        assert_eq!(r.put_bytes(&url, &admin, b"y").status, 201);
    }
    let sealed =
        r.kv.get(&keys::package(first, "big", "1.0"))
            .unwrap()
            .unwrap();
    let sealed: Value = serde_json::from_slice(&sealed).unwrap();
    assert_eq!(sealed["segments"].as_array().unwrap().len(), 1);

    // The segment, the tail, then two pages of one-file packages.
    let (keys, pages) = all_pages(&r, 2);
    assert_eq!(pages, 4);
    let distinct: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(
        keys.len(),
        distinct.len(),
        "no key repeats on a quiet store"
    );
    assert_eq!(distinct, stored_objects(&r));
    assert_eq!(distinct.len(), TAIL_FILES + 15 + 3);

    let (one_page, pages) = all_pages(&r, 1000);
    assert_eq!(pages, 1);
    assert_eq!(one_page.into_iter().collect::<BTreeSet<_>>(), distinct);
}

#[test]
fn deleted_files_packages_and_projects_are_not_referenced() {
    let r = TestRegistry::default();
    let admin = r.admin();
    let kept = r.create_project("acme", "tools", "private");
    let gone = r.create_project("acme", "gone", "private");
    let left = r.create_project("acme", "left", "private");
    for (project, rest) in [
        (kept, "a/1.0/a.bin"),
        (kept, "b/1.0/b.bin"),
        (gone, "c/1.0/c.bin"),
        (left, "d/1.0/d.bin"),
    ] {
        assert_eq!(
            r.put_bytes(&r.generic(project, rest), &admin, b"z").status,
            201
        );
    }
    let packages = r
        .get(&format!("/api/v4/projects/{kept}/packages"), &admin)
        .json();
    let b_id = &packages[1]["id"];
    let deleted = r.call(
        crate::http::Method::Delete,
        &format!("/api/v4/projects/{kept}/packages/{b_id}"),
        &admin,
        None,
    );
    assert_eq!(deleted.status, 204);
    let deleted = r.call(
        crate::http::Method::Delete,
        &format!("/api/v4/projects/{gone}"),
        &admin,
        None,
    );
    assert!(deleted.status < 300, "{}", deleted.status);
    let before_crash = stored_objects(&r);

    // A deletion of `left` cut short after marking its record: its package
    // and object stay behind, but nothing can reach them any more.
    mark_deleted_as_a_crash_leaves_it(&r, left);

    let (keys, _) = all_pages(&r, 2);
    let keys: BTreeSet<String> = keys.into_iter().collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(before_crash.is_superset(&keys));
    let left_object = before_crash.difference(&keys).count();
    assert_eq!(
        left_object, 1,
        "the deleted project's object is still stored"
    );
}

/// Marks the project's index entry pending and its record deleted, as
/// `project_index::delete_project` does before it goes over the packages.
fn mark_deleted_as_a_crash_leaves_it(r: &TestRegistry, project_id: u64) {
    let shard = keys::project_index(0);
    let mut stored: ProjectShard =
        serde_json::from_slice(&r.kv.get(&shard).unwrap().unwrap()).unwrap();
    for entry in stored.entries.iter_mut().filter(|e| e.id == project_id) {
        entry.pending = true;
        entry.changes.push("deletion".into());
    }
    r.kv.set(&shard, &serde_json::to_vec(&stored).unwrap())
        .unwrap();
    let key = keys::project(project_id);
    let mut project: Project = serde_json::from_slice(&r.kv.get(&key).unwrap().unwrap()).unwrap();
    project.deleted_at = Some(1);
    r.kv.set(&key, &serde_json::to_vec(&project).unwrap())
        .unwrap();
}

#[test]
fn only_administrators_may_list() {
    let r = TestRegistry::default();
    r.create_project("acme", "tools", "public");
    assert_eq!(r.get(PATH, &Credential::anonymous()).status, 401);
    let owner = Credential::private(r.token(personal(&[Scope::Api], "acme/*", Role::Owner)));
    let refused = r.get(PATH, &owner);
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["message"], "403 Forbidden");
    assert_eq!(r.get(PATH, &r.admin()).status, 200);
}

#[test]
fn bad_cursors_and_page_sizes_are_refused() {
    let r = TestRegistry::default();
    let admin = r.admin();
    for query in ["cursor=nope", "cursor=1.0.0.0.0.xyz", "per_page=many"] {
        let reply = r.get(&format!("{PATH}?{query}"), &admin);
        assert_eq!(reply.status, 400, "{query}");
        assert!(reply.json()["error"]
            .as_str()
            .unwrap()
            .ends_with("is invalid"));
    }
    let empty = r.get(PATH, &admin).json();
    assert_eq!(empty["object_keys"], serde_json::json!([]));
    assert_eq!(empty["next_cursor"], Value::Null);
}

/// Reads one page from `cursor`; returns its keys and the next cursor.
fn one_page(
    r: &TestRegistry,
    per_page: usize,
    cursor: Option<&str>,
) -> (Vec<String>, Option<String>) {
    let url = match cursor {
        Some(c) => format!("{PATH}?per_page={per_page}&cursor={c}"),
        None => format!("{PATH}?per_page={per_page}"),
    };
    let page = r.get(&url, &r.admin()).json();
    let keys = page["object_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    (keys, page["next_cursor"].as_str().map(String::from))
}

/// Follows the cursor to the end, calling `between` after the first page.
fn walk_changing(r: &TestRegistry, per_page: usize, between: impl FnOnce()) -> Vec<String> {
    let (mut keys, mut cursor) = one_page(r, per_page, None);
    between();
    while let Some(c) = cursor {
        let (more, next) = one_page(r, per_page, Some(&c));
        keys.extend(more);
        cursor = next;
    }
    keys
}

#[test]
fn a_segment_rewritten_between_pages_is_walked_again_not_skipped() {
    let r = TestRegistry::default();
    let admin = r.admin();
    let id = r.create_project("acme", "tools", "private");
    for i in 0..2 * TAIL_FILES + 3 {
        let url = r.generic(id, &format!("big/1.0/f{i}.bin"));
        assert_eq!(r.put_bytes(&url, &admin, b"x").status, 201);
    }
    let package = &r
        .get(&format!("/api/v4/projects/{id}/packages"), &admin)
        .json()[0]["id"];
    let files = format!("/api/v4/projects/{id}/packages/{package}/package_files");
    let oldest = &r
        .get(&format!("{files}?order_by=id&per_page=1"), &admin)
        .json()[0]["id"];

    // The first page holds the first segment; then a file of that segment
    // is deleted, which writes the segment anew under another digest.
    let keys = walk_changing(&r, 1, || {
        let deleted = r.call(
            crate::http::Method::Delete,
            &format!("{files}/{oldest}"),
            &admin,
            None,
        );
        assert_eq!(deleted.status, 204);
    });
    let distinct: BTreeSet<String> = keys.iter().cloned().collect();
    assert!(distinct.is_superset(&stored_objects(&r)));
    assert_eq!(stored_objects(&r).len(), 2 * TAIL_FILES + 2);
    assert!(keys.len() > distinct.len(), "the package was walked again");
}

#[test]
fn projects_deleted_between_pages_do_not_shift_the_walk() {
    let r = TestRegistry::default();
    let admin = r.admin();
    let ids: Vec<u64> = ["a", "b", "c", "d"]
        .iter()
        .map(|path| r.create_project("acme", path, "private"))
        .collect();
    for id in &ids {
        assert_eq!(
            r.put_bytes(&r.generic(*id, "p/1.0/f.bin"), &admin, b"x")
                .status,
            201
        );
    }
    // After the first project's key: the first two go (the index shard
    // loses the entries before the cursor and the one it names).
    let keys = walk_changing(&r, 1, || {
        for id in &ids[..2] {
            let path = format!("/api/v4/projects/{id}");
            assert!(
                r.call(crate::http::Method::Delete, &path, &admin, None)
                    .status
                    < 300
            );
        }
    });
    let distinct: BTreeSet<String> = keys.into_iter().collect();
    assert!(distinct.is_superset(&stored_objects(&r)));
    assert_eq!(stored_objects(&r).len(), 2);
}
