//! A reporter of a private project, in one browser session: sees packages
//! and files but no delete, upload or settings controls, and the API
//! refuses those actions anyway. Pages never offer what the API refuses.

use fantoccini::Locator;
use genreg::genreg_token::{Role, Scope};
use reqwest::{Method, StatusCode};

use super::harness::Browser;
use super::support::{
    assert_no_csp_violations, has_button, page_drawn, publish, sign_in, status_of,
};
use crate::common;

#[tokio::test]
async fn a_reporter_sees_no_delete_or_upload_and_the_api_refuses_them_anyway() {
    let r = common::start().await;
    let project = r.create_project("acme", "tools", "private").await;
    let file = publish(&r, "acme%2Ftools", "app/1.0.0/app.bin", common::data(64, 5)).await;
    let package = file["package_id"].as_u64().unwrap();
    let reporter = r.token(common::personal(
        &[Scope::Api],
        "acme/tools",
        Role::Reporter,
    ));
    let browser = Browser::start().await;
    sign_in(&browser, &r, &reporter).await;

    // The package page shows the file and its download, and no delete.
    browser
        .open(&r.url(&format!("/acme/tools/-/packages/{package}")))
        .await;
    page_drawn(&browser, "app 1.0.0").await;
    browser.with_text("main//td", "app.bin").await;
    browser
        .find(Locator::XPath(
            "//main//a[starts-with(normalize-space(.), 'Download')]",
        ))
        .await;
    assert!(!has_button(&browser, "Delete package").await);
    assert!(!has_button(&browser, "Delete").await);
    browser.screenshot("package-reporter").await;
    let package_path = format!("/api/v4/projects/{project}/packages/{package}");
    assert_eq!(
        status_of(&r, Method::DELETE, &package_path, Some(&reporter)).await,
        StatusCode::FORBIDDEN
    );
    let file_path = format!("{package_path}/package_files/{}", file["id"]);
    assert_eq!(
        status_of(&r, Method::DELETE, &file_path, Some(&reporter)).await,
        StatusCode::FORBIDDEN
    );

    // No upload on the package list; a publish is refused.
    browser.open(&r.url("/acme/tools/-/packages")).await;
    page_drawn(&browser, "tools packages").await;
    browser.with_text("main//td", "app").await;
    assert!(!has_button(&browser, "Upload a file").await);
    let refused = r
        .put(
            &r.generic("acme%2Ftools", "app/1.0.1/app.bin"),
            Some(&reporter),
            b"x".to_vec(),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // Settings are read only: no save button, the policy cannot be chosen,
    // and the API refuses a change.
    browser
        .open(&r.url("/acme/tools/-/settings/packages_and_registries"))
        .await;
    page_drawn(&browser, "Package settings").await;
    browser.with_text("main//div", "Read only.").await;
    assert!(!has_button(&browser, "Save cleanup policy").await);
    assert!(!has_button(&browser, "Add rule").await);
    let policy = browser
        .control("Files of the same name kept per package")
        .await;
    assert!(!policy.is_enabled().await.unwrap());
    let change = r
        .client
        .put(r.url(&format!(
            "/api/v4/projects/{project}/packages/cleanup_policy"
        )))
        .header("PRIVATE-TOKEN", &reporter)
        .json(&serde_json::json!({ "keep_n_duplicated_package_files": "1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(change.status(), StatusCode::FORBIDDEN);

    // The token pages say whom to ask instead of a form.
    browser
        .open(&r.url("/acme/tools/-/settings/access_tokens"))
        .await;
    page_drawn(&browser, "Access denied").await;
    browser.with_text("main//p", "Ask a maintainer").await;
    assert!(!has_button(&browser, "Create access token").await);
    browser.screenshot("access-denied").await;

    assert_no_csp_violations(&browser).await;
    browser.close().await;
}
