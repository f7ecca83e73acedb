//! Package protection rules: who may push and delete matching packages.

use genreg_token::{Role, Scope};
use serde_json::json;

use crate::http::Method;
use crate::testing::{deploy, personal, Credential, TestRegistry};

#[test]
fn protection_rules_guard_pushes_and_deletes() {
    let r = TestRegistry::default();
    let id = r.create_project("acme", "tools", "private");
    let rules = format!("/api/v4/projects/{id}/packages/protection/rules");
    let on_project =
        |role| Credential::private(r.token(personal(&[Scope::Api], "acme/tools", role)));
    let maintainer = on_project(Role::Maintainer);
    let developer = on_project(Role::Developer);
    let owner = on_project(Role::Owner);
    let deployer =
        Credential::deploy(r.token(deploy(&[Scope::WritePackageRegistry], "acme/tools")));

    // Developers may not manage rules.
    assert_eq!(r.get(&rules, &developer).status, 403);

    let created = r.call(
        Method::Post,
        &rules,
        &maintainer,
        Some(json!({
            "package_name_pattern": "release-*",
            "package_type": "generic",
            "minimum_access_level_for_push": "maintainer",
            "minimum_access_level_for_delete": "owner",
        })),
    );
    assert_eq!(created.status, 201);
    let rule = created.json();
    assert_eq!(rule["package_name_pattern"], "release-*");
    assert_eq!(rule["minimum_access_level_for_delete"], "owner");
    assert_eq!(rule["project_id"], id);

    let publish = |who: &Credential, name: &str| {
        let url = format!(
            "{}?select=package_file",
            r.generic(id, &format!("{name}/1.0/a.bin"))
        );
        r.put_bytes(&url, who, b"x")
    };
    let refused = publish(&developer, "RELEASE-app");
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.json(),
        json!({"message": "403 Forbidden - Package protected."})
    );
    assert_eq!(publish(&deployer, "release-app").status, 403);
    assert_eq!(publish(&developer, "nightly-app").status, 200);
    assert_eq!(publish(&deployer, "nightly-app").status, 200);
    let published = publish(&maintainer, "release-app").json();

    let package = format!("/api/v4/projects/{id}/packages/{}", published["package_id"]);
    let refused = r.call(Method::Delete, &package, &maintainer, None);
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.json(),
        json!({"message": "403 Forbidden - Package is deletion protected."})
    );
    assert_eq!(r.call(Method::Delete, &package, &owner, None).status, 204);

    // Update, list, delete the rule.
    let rule_url = format!("{rules}/{}", rule["id"]);
    let updated = r.call(
        Method::Patch,
        &rule_url,
        &maintainer,
        Some(json!({"minimum_access_level_for_push": "owner"})),
    );
    assert_eq!(updated.status, 200);
    assert_eq!(updated.json()["minimum_access_level_for_push"], "owner");
    assert_eq!(publish(&maintainer, "release-app").status, 403);
    let listed = r.get(&rules, &maintainer).json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        r.call(Method::Delete, &rule_url, &maintainer, None).status,
        204
    );
    assert_eq!(publish(&developer, "release-app").status, 200);
}

#[test]
fn invalid_rules_are_refused() {
    let r = TestRegistry::default();
    let admin = r.admin();
    let id = r.create_project("acme", "tools", "private");
    let rules = format!("/api/v4/projects/{id}/packages/protection/rules");
    #[rustfmt::skip]
    let cases = [
        (json!({"package_type": "generic", "minimum_access_level_for_push": "maintainer"}), "package_name_pattern is missing"),
        (json!({"package_name_pattern": "a", "package_type": "generic"}), "minimum_access_level_for_push, minimum_access_level_for_delete are missing, at least one parameter must be provided"),
        (json!({"package_name_pattern": "a", "package_type": "generic", "minimum_access_level_for_push": "developer"}), "minimum_access_level_for_push does not have a valid value"),
        (json!({"package_name_pattern": "a", "package_type": "generic", "minimum_access_level_for_delete": "maintainer"}), "minimum_access_level_for_delete does not have a valid value"),
        (json!({"package_name_pattern": "a", "package_type": "zip", "minimum_access_level_for_push": "owner"}), "package_type does not have a valid value"),
    ];
    for (body, message) in cases {
        let reply = r.call(Method::Post, &rules, &admin, Some(body.clone()));
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(reply.json(), json!({"error": message}));
    }
    let body = json!({"package_name_pattern": "a*", "package_type": "generic", "minimum_access_level_for_push": "owner"});
    let first = r.call(Method::Post, &rules, &admin, Some(body.clone()));
    assert_eq!(first.status, 201);
    let again = r.call(Method::Post, &rules, &admin, Some(body));
    assert_eq!(again.status, 400);
    let missing = r.call(Method::Delete, &format!("{rules}/999"), &admin, None);
    assert_eq!(missing.status, 404);
}
