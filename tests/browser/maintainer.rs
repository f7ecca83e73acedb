//! A maintainer of a private project, in one browser session: signs in with
//! a pasted token, searches, uploads a file with progress, downloads it,
//! checks the curl command against the real curl, deletes with
//! confirmation, creates and revokes an access token, changes a setting,
//! signs out. Every step is checked against the API.

use fantoccini::Locator;
use genreg::genreg_token::{Kind, Role, Scope};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::harness::Browser;
use super::support::{
    assert_no_csp_violations, bytes_of, confirm_in_dialog, has_button, navigated, page_drawn,
    publish, sign_in, status_of,
};
use crate::common::{self, TestRegistry, TokenSpec};

/// A few MiB, so the upload reports progress on its way.
const UPLOAD_SIZE: usize = 3 * 1024 * 1024 + 12_345;

fn maintainer_of_acme_tools_and_docs(r: &TestRegistry) -> String {
    r.token(TokenSpec {
        kind: Kind::Personal,
        scopes: vec![Scope::Api],
        grants: vec![
            ("acme/tools", Role::Maintainer),
            ("acme/docs", Role::Maintainer),
        ],
        admin: false,
        expires_at: None,
    })
}

#[tokio::test]
async fn a_maintainer_uploads_downloads_deletes_and_manages_tokens_and_settings() {
    let r = common::start().await;
    let tools = r.create_project("acme", "tools", "private").await;
    r.create_project("acme", "docs", "private").await;
    let token = maintainer_of_acme_tools_and_docs(&r);
    let browser = Browser::start().await;

    sign_in(&browser, &r, &token).await;
    search_projects(&browser, &r).await;
    let package_id = upload_with_progress(&browser, &r, tools, &token).await;
    download_and_run_the_curl_command(&browser, &r, tools, &token).await;
    delete_a_file_then_the_package(&browser, &r, tools, package_id, &token).await;
    create_and_revoke_an_access_token(&browser, &r, tools, &token).await;
    change_the_cleanup_policy(&browser, &r, tools, &token).await;

    // The token never travelled in a URL: neither the pages' nor the API
    // calls' (every request the page made is in its resource timing).
    let urls = browser
        .script(
            "return performance.getEntriesByType('resource').map(e => e.name)
                .concat([location.href]);",
            vec![],
        )
        .await;
    let urls = urls.as_array().unwrap();
    assert!(urls.len() > 10, "the page made its API calls: {urls:?}");
    assert!(urls
        .iter()
        .all(|url| !url.as_str().unwrap().contains(&token)));

    sign_out(&browser, &r).await;
    assert_no_csp_violations(&browser).await;
    browser.close().await;
}

/// The search finds the project by a part of its path, and only it.
async fn search_projects(browser: &Browser, r: &TestRegistry) {
    browser.open(&r.url("/explore")).await;
    page_drawn(browser, "Projects").await;
    browser
        .find(Locator::XPath("//main//a[normalize-space(.)='acme/docs']"))
        .await;
    browser.type_into("Search projects", "too").await;
    browser.button("Search").await.click().await.unwrap();
    navigated(browser, "search=too", "Projects").await;
    assert!(
        !browser
            .is_present(Locator::XPath("//main//a[normalize-space(.)='acme/docs']"))
            .await,
        "the search leaves out acme/docs"
    );
    browser
        .find(Locator::XPath("//main//a[normalize-space(.)='acme/tools']"))
        .await
        .click()
        .await
        .unwrap();
    page_drawn(browser, "tools packages").await;
}

/// Uploads a file through the dialog (file input, package, version, path);
/// the progress bar reaches 100 % and the dialog shows the stored sha256.
/// Returns the package's id.
async fn upload_with_progress(
    browser: &Browser,
    r: &TestRegistry,
    project: u64,
    token: &str,
) -> u64 {
    let bytes = common::data(UPLOAD_SIZE, 7);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app-linux.tar.gz");
    std::fs::write(&file, &bytes).unwrap();

    browser.button("Upload a file").await.click().await.unwrap();
    let picker = browser
        .find(Locator::Css("dialog[open] input[type=file]"))
        .await;
    picker.send_keys(file.to_str().unwrap()).await.unwrap();
    let file_name = browser.control("File name").await;
    assert_eq!(
        file_name.prop("value").await.unwrap().as_deref(),
        Some("app-linux.tar.gz"),
        "the file name comes from the chosen file"
    );
    browser.type_into("Package name", "app").await;
    browser.type_into("Version", "1.0.0").await;
    browser.type_into("Path (optional)", "linux/amd64").await;
    // Records every text the progress line shows while the upload runs.
    browser
        .script(
            "const line = document.querySelector('dialog[open] progress').nextElementSibling;
             window.progressSeen = [];
             new MutationObserver(() => window.progressSeen.push(line.textContent))
                 .observe(line, { childList: true, characterData: true, subtree: true });",
            vec![],
        )
        .await;
    browser.button("Upload").await.click().await.unwrap();

    let shown = browser
        .find(Locator::Css("[data-testid=uploaded-sha256]"))
        .await;
    assert_eq!(shown.text().await.unwrap(), common::sha256_hex(&bytes));
    let progress = browser
        .script(
            "const bar = document.querySelector('dialog[open] progress');
             return [bar.value, bar.max, bar.hidden];",
            vec![],
        )
        .await;
    assert_eq!(
        progress,
        serde_json::json!([100, 100, false]),
        "the bar is full"
    );
    let seen = browser.script("return window.progressSeen;", vec![]).await;
    assert!(
        seen.as_array()
            .unwrap()
            .iter()
            .any(|text| text.as_str().unwrap().contains("(100%)")),
        "the progress line counted up to 100 %: {seen}"
    );
    browser.screenshot("upload").await;

    let record = package_file_named(r, project, token, "linux%2Famd64%2Fapp-linux.tar.gz").await;
    assert_eq!(record["size"], UPLOAD_SIZE as u64);
    browser.button("Close").await.click().await.unwrap();
    record["package_id"].as_u64().unwrap()
}

/// The file record the API lists for `file_name` in the project's only
/// `app` package.
async fn package_file_named(r: &TestRegistry, project: u64, token: &str, file_name: &str) -> Value {
    let packages = format!("/api/v4/projects/{project}/packages?package_name=app");
    let packages = common::json(r.get(&r.url(&packages), Some(token)).await).await;
    let id = &packages[0]["id"];
    let files = format!("/api/v4/projects/{project}/packages/{id}/package_files");
    let files = common::json(r.get(&r.url(&files), Some(token)).await).await;
    let named: Vec<&Value> = files
        .as_array()
        .unwrap()
        .iter()
        .filter(|file| file["file_name"] == file_name)
        .collect();
    assert_eq!(named.len(), 1, "one {file_name} in the package: {files}");
    named[0].clone()
}

/// On the package page: a click on Download saves the uploaded bytes, the
/// link's URL answers them to the token, and the curl command shown, run
/// by the real curl with `TOKEN` set, fetches them too.
async fn download_and_run_the_curl_command(
    browser: &Browser,
    r: &TestRegistry,
    project: u64,
    token: &str,
) {
    let expected = common::data(UPLOAD_SIZE, 7);
    browser
        .find(Locator::XPath("//main//td//a[normalize-space(.)='app']"))
        .await
        .click()
        .await
        .unwrap();
    page_drawn(browser, "app 1.0.0").await;
    browser.screenshot("package-private").await;

    let download = browser
        .find(Locator::XPath(
            "//main//a[starts-with(normalize-space(.), 'Download')]",
        ))
        .await;
    let href = download
        .prop("href")
        .await
        .unwrap()
        .expect("a download URL");
    assert_eq!(bytes_of(r, &href, token).await, expected);
    assert_eq!(r.get(&href, None).await.status(), StatusCode::UNAUTHORIZED);
    download.click().await.unwrap();
    assert_eq!(browser.downloaded("app-linux.tar.gz").await, expected);

    let command = browser
        .find(Locator::Css("code[data-tool=curl]"))
        .await
        .text()
        .await
        .unwrap();
    assert!(command.contains(&format!(
        "/api/v4/projects/{project}/packages/generic/app/1.0.0/"
    )));
    // Its copy button copies exactly this text.
    browser.allow_clipboard().await;
    browser
        .button("Copy curl command")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_until("the curl command on the clipboard", || async {
            browser.clipboard().await == command
        })
        .await;
    let dir = tempfile::tempdir().unwrap();
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .env("TOKEN", token)
        .current_dir(dir.path())
        .status()
        .await
        .expect("curl runs");
    assert!(status.success(), "{command}");
    assert_eq!(
        std::fs::read(dir.path().join("app-linux.tar.gz")).unwrap(),
        expected
    );
}

/// Deleting asks first: Cancel keeps the file; confirming removes it, then
/// the package.
async fn delete_a_file_then_the_package(
    browser: &Browser,
    r: &TestRegistry,
    project: u64,
    package_id: u64,
    token: &str,
) {
    let notes = publish(
        r,
        &project.to_string(),
        "app/1.0.0/notes.txt",
        b"notes".to_vec(),
    )
    .await;
    let files_path = format!("/api/v4/projects/{project}/packages/{package_id}/package_files");
    browser.client.refresh().await.unwrap();
    page_drawn(browser, "app 1.0.0").await;
    let notes_delete =
        "//tr[td[normalize-space(.)='notes.txt']]//button[normalize-space(.)='Delete']";

    browser
        .find(Locator::XPath(notes_delete))
        .await
        .click()
        .await
        .unwrap();
    browser.with_text("dialog//h2", "Delete file?").await;
    browser.screenshot("confirm-delete").await;
    confirm_in_dialog(browser, "Cancel").await;
    let file_path = format!("{files_path}/{}", notes["id"]);
    let listed = common::json(r.get(&r.url(&files_path), Some(token)).await).await;
    assert!(
        listed.to_string().contains("notes.txt"),
        "Cancel keeps the file"
    );

    browser
        .find(Locator::XPath(notes_delete))
        .await
        .click()
        .await
        .unwrap();
    confirm_in_dialog(browser, "Delete file").await;
    browser
        .wait_until("notes.txt to leave the page", || async {
            !browser.is_present(Locator::XPath(notes_delete)).await
        })
        .await;
    let listed = common::json(r.get(&r.url(&files_path), Some(token)).await).await;
    assert!(
        !listed.to_string().contains("notes.txt"),
        "{file_path} is gone"
    );

    browser
        .button("Delete package")
        .await
        .click()
        .await
        .unwrap();
    confirm_in_dialog(browser, "Delete package").await;
    page_drawn(browser, "tools packages").await;
    let package = format!("/api/v4/projects/{project}/packages/{package_id}");
    assert_eq!(
        status_of(r, Method::GET, &package, Some(token)).await,
        StatusCode::NOT_FOUND
    );
}

/// A new access token is shown once and works against the API; after
/// Revoke it is refused.
async fn create_and_revoke_an_access_token(
    browser: &Browser,
    r: &TestRegistry,
    project: u64,
    maintainer: &str,
) {
    browser
        .find(Locator::XPath(
            "//nav//a[normalize-space(.)='Access tokens']",
        ))
        .await
        .click()
        .await
        .unwrap();
    page_drawn(browser, "Access tokens").await;
    browser.type_into("Token name", "ci-browser").await;
    browser.control("read_api").await.click().await.unwrap();
    browser
        .control("Role")
        .await
        .select_by_value("20")
        .await
        .unwrap();
    browser
        .button("Create access token")
        .await
        .click()
        .await
        .unwrap();
    let created = browser.text_of("[data-testid=new-token]").await;
    browser.screenshot("access-tokens").await;

    let packages = format!("/api/v4/projects/{project}/packages");
    assert_eq!(
        status_of(r, Method::GET, &packages, Some(&created)).await,
        StatusCode::OK
    );
    let listed = common::json(
        r.get(
            &r.url(&format!("/api/v4/projects/{project}/access_tokens")),
            Some(maintainer),
        )
        .await,
    )
    .await;
    let record = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci-browser")
        .expect("the new token is listed")
        .clone();
    assert_eq!(record["scopes"], serde_json::json!(["read_api"]));
    assert_eq!(record["access_level"], 20);

    browser
        .button("Revoke ci-browser")
        .await
        .click()
        .await
        .unwrap();
    confirm_in_dialog(browser, "Revoke").await;
    browser.with_text("main//div", "Revoked.").await;
    assert_eq!(
        status_of(r, Method::GET, &packages, Some(&created)).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(!has_button(browser, "Revoke ci-browser").await);
}

/// The cleanup policy chosen on the settings page is what the API answers.
async fn change_the_cleanup_policy(browser: &Browser, r: &TestRegistry, project: u64, token: &str) {
    browser
        .find(Locator::XPath(
            "//nav//a[normalize-space(.)='Package settings']",
        ))
        .await
        .click()
        .await
        .unwrap();
    page_drawn(browser, "Package settings").await;
    browser
        .control("Files of the same name kept per package")
        .await
        .select_by_value("10")
        .await
        .unwrap();
    browser
        .button("Save cleanup policy")
        .await
        .click()
        .await
        .unwrap();
    browser.with_text("main//div", "Saved.").await;
    browser.screenshot("settings").await;
    let policy = common::json(
        r.get(
            &r.url(&format!(
                "/api/v4/projects/{project}/packages/cleanup_policy"
            )),
            Some(token),
        )
        .await,
    )
    .await;
    assert_eq!(policy["keep_n_duplicated_package_files"], "10");
}

/// Sign out forgets the token: the private project is out of sight again.
async fn sign_out(browser: &Browser, r: &TestRegistry) {
    browser.button("Sign out").await.click().await.unwrap();
    browser
        .find(Locator::XPath("//header//a[normalize-space(.)='Sign in']"))
        .await;
    let stored = browser.script("return localStorage.length;", vec![]).await;
    assert_eq!(stored, 0, "nothing is left in the browser's storage");
    browser.open(&r.url("/acme/tools/-/packages")).await;
    page_drawn(browser, "Not found").await;
}
