//! Setting the scene through the API, and steps every flow shares.

use fantoccini::Locator;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::harness::Browser;
use crate::common::{self, TestRegistry};

/// Publishes `bytes` as the administrator at `project` (URL-encoded id or
/// path) and `rest` (`name/version/(path/)file`), and returns the file record.
pub async fn publish(r: &TestRegistry, project: &str, rest: &str, bytes: Vec<u8>) -> Value {
    let url = format!("{}?select=package_file", r.generic(project, rest));
    let response = r.put(&url, Some(&r.admin()), bytes).await;
    assert_eq!(response.status(), StatusCode::OK, "publish {rest}");
    common::json(response).await
}

/// The status an API call answers with this `PRIVATE-TOKEN` (or none).
pub async fn status_of(
    r: &TestRegistry,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> StatusCode {
    r.request(method, &r.url(path), token).await.status()
}

/// The bytes an URL answers with this token, after checking it says 200.
pub async fn bytes_of(r: &TestRegistry, url: &str, token: &str) -> Vec<u8> {
    let response = r.get(url, Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {url}");
    response.bytes().await.unwrap().to_vec()
}

/// Signs in on the sign-in page by pasting `token`, and waits until the
/// header says who is signed in.
pub async fn sign_in(browser: &Browser, r: &TestRegistry, token: &str) {
    browser.open(&r.url("/users/sign_in")).await;
    browser.with_text("main//h1", "Sign in").await;
    browser.type_into("Token", token).await;
    browser.screenshot("sign-in").await;
    browser.button("Sign in").await.click().await.unwrap();
    browser.with_text("header//span", "Signed in as").await;
}

/// Waits until the page has drawn: its heading reads `heading` and the
/// main region is no longer busy, so absent elements are really absent.
pub async fn page_drawn(browser: &Browser, heading: &str) {
    browser.with_text("main//h1", heading).await;
    browser
        .wait_until_script(
            "the page to finish drawing",
            "return document.querySelector('main[aria-busy]') === null;",
        )
        .await;
}

/// Waits until the address shows `fragment` (an in-page navigation has
/// begun, which marks the main region busy at once), then until the page
/// with `heading` is drawn.
pub async fn navigated(browser: &Browser, fragment: &str, heading: &str) {
    browser
        .wait_until(&format!("the address to show {fragment}"), || async {
            browser.path().await.contains(fragment)
        })
        .await;
    page_drawn(browser, heading).await;
}

/// Fails on any Content-Security-Policy violation the console reported
/// since the last look.
pub async fn assert_no_csp_violations(browser: &Browser) {
    let violations: Vec<_> = browser
        .console()
        .await
        .into_iter()
        .filter(|message| message.is_csp_violation())
        .collect();
    assert!(violations.is_empty(), "CSP violations: {violations:#?}");
}

pub fn button_labelled(label: &str) -> String {
    let label = super::harness::xpath_literal(label);
    format!("//button[normalize-space(.)={label}]")
}

/// Whether a button labelled `label` is on the page now.
pub async fn has_button(browser: &Browser, label: &str) -> bool {
    browser
        .is_present(Locator::XPath(&button_labelled(label)))
        .await
}

/// Clicks the button labelled `label` inside the open `<dialog>`.
pub async fn confirm_in_dialog(browser: &Browser, label: &str) {
    let label = super::harness::xpath_literal(label);
    let xpath = format!("//dialog[@open]//button[normalize-space(.)={label}]");
    browser
        .find(Locator::XPath(&xpath))
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_until_script(
            "the dialog to close",
            "return document.querySelector('dialog[open]') === null;",
        )
        .await;
}
