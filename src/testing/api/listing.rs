//! Package listings over an index whose newest entries may still be
//! *creating* (see `meta::packages`): the records decide, and a creation cut
//! short before its record is neither shown nor counted.

use crate::meta::keys;
use crate::meta::kv::KeyValue;
use crate::meta::model::{IndexShard, PackageStatus, PackageSummary};
use crate::testing::TestRegistry;

/// Enters a package in shard 0 as a creator that died before writing its
/// record would have left it.
fn plant_cut_short_creation(r: &TestRegistry, project: u64, name: &str) {
    let key = keys::package_index(project, 0);
    let mut shard: IndexShard = serde_json::from_slice(&r.kv.get(&key).unwrap().unwrap()).unwrap();
    shard.entries.push(PackageSummary {
        id: 9_999,
        name: name.into(),
        version: "1.0".into(),
        status: PackageStatus::Default,
        created_at: 0,
        pending: false,
        changes: Vec::new(),
        creating: Some(r.kv.now_millis()),
    });
    r.kv.set(&key, &serde_json::to_vec(&shard).unwrap())
        .unwrap();
}

fn names(r: &TestRegistry, url: &str) -> (Vec<String>, Option<String>) {
    let reply = r.get(url, &r.admin());
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let listed = reply.json();
    let names = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        })
        .collect();
    (names, reply.header("x-total").map(str::to_string))
}

#[test]
fn a_creation_cut_short_is_neither_listed_nor_counted() {
    let r = TestRegistry::default();
    let project = r.create_project("acme", "tools", "private");
    for version in ["1.0", "2.0", "3.0"] {
        let url = r.generic(project, &format!("tool/{version}/a.bin"));
        assert_eq!(r.put_bytes(&url, &r.admin(), b"x").status, 201);
    }
    // Created first, so sorted first by creation time (0).
    plant_cut_short_creation(&r, project, "aaa-ghost");
    let packages = format!("/api/v4/projects/{project}/packages");

    let (all, total) = names(&r, &packages);
    assert_eq!(all, ["tool/1.0", "tool/2.0", "tool/3.0"]);
    assert_eq!(total.as_deref(), Some("3"));
    let (first, _) = names(&r, &format!("{packages}?per_page=1&order_by=name"));
    assert_eq!(first, ["tool/1.0"]);
    let (named, total) = names(&r, &format!("{packages}?package_name=ghost"));
    assert!(named.is_empty());
    assert_eq!(total.as_deref(), Some("0"));
    let (last, _) = names(&r, &format!("{packages}?per_page=2&page=2"));
    assert_eq!(last, ["tool/3.0"]);
    assert_eq!(r.get(&format!("{packages}/9999"), &r.admin()).status, 404);
}

#[test]
fn the_newest_package_is_listed_and_shown_before_anything_settles_it() {
    let r = TestRegistry::default();
    let project = r.create_project("acme", "tools", "private");
    let url = r.generic(project, "tool/1.0/a.bin?select=package_file");
    let reply = r.put_bytes(&url, &r.admin(), b"x");
    // With `select=package_file`, GitLab answers 200 and the file record.
    assert_eq!(reply.status, 200);
    let package_id = reply.json()["package_id"].as_u64().unwrap();
    let packages = format!("/api/v4/projects/{project}/packages");
    let (all, total) = names(&r, &packages);
    assert_eq!(
        (all, total.as_deref()),
        (vec!["tool/1.0".to_string()], Some("1"))
    );
    let shown = r.get(&format!("{packages}/{package_id}"), &r.admin());
    assert_eq!(shown.status, 200);
    assert_eq!(shown.json()["id"].as_u64(), Some(package_id));
    let files = r.get(
        &format!("{packages}/{package_id}/package_files"),
        &r.admin(),
    );
    assert_eq!(files.json().as_array().unwrap().len(), 1);
}
