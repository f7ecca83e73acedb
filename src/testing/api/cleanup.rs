//! The packages cleanup policy, applied when files are published.

use serde_json::json;

use crate::http::Method;
use crate::testing::TestRegistry;

#[test]
fn publishing_keeps_only_the_newest_files_of_a_name() {
    let r = TestRegistry::default();
    let admin = r.admin();
    let id = r.create_project("acme", "tools", "private");
    let policy = format!("/api/v4/projects/{id}/packages/cleanup_policy");
    let current = r.get(&policy, &admin).json();
    assert_eq!(current, json!({"keep_n_duplicated_package_files": "all"}));

    let set = |value: &str| {
        r.call(
            Method::Put,
            &policy,
            &admin,
            Some(json!({"keep_n_duplicated_package_files": value})),
        )
    };
    assert_eq!(set("1").status, 200);
    assert_eq!(set("7").status, 400);

    let url = r.generic(id, "tool/1.0/a.bin");
    for body in ["one", "two", "three"] {
        assert_eq!(r.put_bytes(&url, &admin, body.as_bytes()).status, 201);
    }
    r.put_bytes(&r.generic(id, "tool/1.0/b.bin"), &admin, b"b");
    assert_eq!(r.get(&url, &admin).body, b"three");
    let packages = r
        .get(&format!("/api/v4/projects/{id}/packages"), &admin)
        .json();
    let package_id = &packages[0]["id"];
    let files = r
        .get(
            &format!("/api/v4/projects/{id}/packages/{package_id}/package_files"),
            &admin,
        )
        .json();
    assert_eq!(files.as_array().unwrap().len(), 2, "{files}");
    assert_eq!(
        r.s3.objects.borrow().len(),
        2,
        "the objects of pruned files are gone"
    );
}
