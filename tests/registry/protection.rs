//! Package protection rules: who may push and delete matching packages.

use genreg::genreg_token::{Role, Scope};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn protection_rules_guard_pushes_and_deletes() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    let rules = r.url(&format!("/api/v4/projects/{id}/packages/protection/rules"));
    let maintainer = r.token(personal(&[Scope::Api], "acme/tools", Role::Maintainer));
    let developer = r.token(personal(&[Scope::Api], "acme/tools", Role::Developer));
    let owner = r.token(personal(&[Scope::Api], "acme/tools", Role::Owner));
    let deployer = r.token(deploy(&[Scope::WritePackageRegistry], "acme/tools"));

    // Developers may not manage rules.
    let response = r
        .client
        .get(&rules)
        .header("PRIVATE-TOKEN", &developer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let response = r
        .client
        .post(&rules)
        .header("PRIVATE-TOKEN", &maintainer)
        .json(&json!({
            "package_name_pattern": "release-*",
            "package_type": "generic",
            "minimum_access_level_for_push": "maintainer",
            "minimum_access_level_for_delete": "owner",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let rule = json(response).await;
    assert_eq!(rule["package_name_pattern"], "release-*");
    assert_eq!(rule["minimum_access_level_for_delete"], "owner");
    assert_eq!(rule["project_id"], id);

    let publish = |token: String, name: &str| {
        let url = format!(
            "{}?select=package_file",
            r.generic(&id.to_string(), &format!("{name}/1.0/a.bin"))
        );
        let client = r.client.clone();
        async move {
            let mut request = client.put(url).body(b"x".to_vec());
            request = if token.starts_with("gldt-") {
                request.header("Deploy-Token", token)
            } else {
                request.header("PRIVATE-TOKEN", token)
            };
            request.send().await.unwrap()
        }
    };
    let refused = publish(developer.clone(), "RELEASE-app").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        json(refused).await,
        json!({"message": "403 Forbidden - Package protected."})
    );
    assert_eq!(
        publish(deployer.clone(), "release-app").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        publish(developer.clone(), "nightly-app").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        publish(deployer, "nightly-app").await.status(),
        StatusCode::OK
    );
    let published = json(publish(maintainer.clone(), "release-app").await).await;

    let package = r.url(&format!(
        "/api/v4/projects/{id}/packages/{}",
        published["package_id"]
    ));
    let refused = r
        .client
        .delete(&package)
        .header("PRIVATE-TOKEN", &maintainer)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        json(refused).await,
        json!({"message": "403 Forbidden - Package is deletion protected."})
    );
    let deleted = r
        .client
        .delete(&package)
        .header("PRIVATE-TOKEN", &owner)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    // Update, list, delete the rule.
    let rule_url = format!("{rules}/{}", rule["id"]);
    let response = r
        .client
        .patch(&rule_url)
        .header("PRIVATE-TOKEN", &maintainer)
        .json(&json!({"minimum_access_level_for_push": "owner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json(response).await["minimum_access_level_for_push"],
        "owner"
    );
    assert_eq!(
        publish(maintainer.clone(), "release-app").await.status(),
        StatusCode::FORBIDDEN
    );
    let listed = json(
        r.client
            .get(&rules)
            .header("PRIVATE-TOKEN", &maintainer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let response = r
        .client
        .delete(&rule_url)
        .header("PRIVATE-TOKEN", &maintainer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        publish(developer, "release-app").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn invalid_rules_are_refused() {
    let r = start().await;
    let id = r.create_project("acme", "tools", "private").await;
    let rules = r.url(&format!("/api/v4/projects/{id}/packages/protection/rules"));
    for (body, message) in [
        (json!({"package_type": "generic", "minimum_access_level_for_push": "maintainer"}), "package_name_pattern is missing"),
        (json!({"package_name_pattern": "a", "package_type": "generic"}), "minimum_access_level_for_push, minimum_access_level_for_delete are missing, at least one parameter must be provided"),
        (json!({"package_name_pattern": "a", "package_type": "generic", "minimum_access_level_for_push": "developer"}), "minimum_access_level_for_push does not have a valid value"),
        (json!({"package_name_pattern": "a", "package_type": "generic", "minimum_access_level_for_delete": "maintainer"}), "minimum_access_level_for_delete does not have a valid value"),
        (json!({"package_name_pattern": "a", "package_type": "zip", "minimum_access_level_for_push": "owner"}), "package_type does not have a valid value"),
    ] {
        let response = r.client.post(&rules).header("PRIVATE-TOKEN", r.admin()).json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(json(response).await, json!({"error": message}));
    }
    let body = json!({"package_name_pattern": "a*", "package_type": "generic", "minimum_access_level_for_push": "owner"});
    let first = r
        .client
        .post(&rules)
        .header("PRIVATE-TOKEN", r.admin())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let again = r
        .client
        .post(&rules)
        .header("PRIVATE-TOKEN", r.admin())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let missing = r
        .client
        .delete(format!("{rules}/999"))
        .header("PRIVATE-TOKEN", r.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
