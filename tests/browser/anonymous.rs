//! A visitor without a token: browses a public project, searches, opens a
//! package and downloads a file; a private project stays out of sight; user
//! data with markup in it stays text; the pages carry a strict CSP that the
//! page itself never violates. Also checks the harness leaves no browser
//! process behind.

use fantoccini::Locator;
use reqwest::StatusCode;

use super::harness::{processes_mentioning, Browser};
use super::support::{assert_no_csp_violations, has_button, navigated, page_drawn, publish};
use crate::common;

/// A path segment the API accepts (any character but traversal) that is
/// markup when inserted as HTML.
const MARKUP_SEGMENT: &str = "<img src=x onerror=\"document.title='injected'\">";

#[tokio::test]
async fn an_anonymous_visitor_browses_a_public_project_and_user_data_stays_text() {
    let r = common::start().await;
    r.create_project("acme", "tools", "public").await;
    r.create_project("acme", "secret", "private").await;
    let widget = common::data(10_000, 1);
    let widget_file = publish(
        &r,
        "acme%2Ftools",
        "widget/1.0.0/linux/amd64/widget.tar.gz",
        widget.clone(),
    )
    .await;
    publish(
        &r,
        "acme%2Ftools",
        "widget/2.0.0/widget.tar.gz",
        common::data(5, 2),
    )
    .await;
    publish(
        &r,
        "acme%2Ftools",
        "gadget/0.1.0/gadget.zip",
        common::data(7, 3),
    )
    .await;
    let segment: String = url::form_urlencoded::byte_serialize(MARKUP_SEGMENT.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    let odd = publish(
        &r,
        "acme%2Ftools",
        &format!("odd/1.0/{segment}/payload.txt"),
        common::data(3, 4),
    )
    .await;

    let browser = Browser::start().await;
    let profile = browser.profile().display().to_string();

    // The projects page lists the public project, not the private one.
    browser.open(&r.url("/")).await;
    page_drawn(&browser, "Projects").await;
    let project_link = browser
        .find(Locator::XPath("//main//a[normalize-space(.)='acme/tools']"))
        .await;
    assert!(
        !browser
            .is_present(Locator::XPath(
                "//main//a[normalize-space(.)='acme/secret']"
            ))
            .await,
        "a private project is not listed for anonymous visitors"
    );
    browser.screenshot("projects").await;

    // Its packages, then a search by name.
    project_link.click().await.unwrap();
    page_drawn(&browser, "packages").await;
    browser.with_text("main//td", "gadget").await;
    browser.screenshot("packages").await;
    browser.type_into("Search by name", "widg").await;
    browser.button("Apply").await.click().await.unwrap();
    navigated(&browser, "package_name=widg", "packages").await;
    let rows = browser
        .client
        .find_all(Locator::XPath("//main//tbody/tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "both versions of widget, nothing else");

    // One package: its files with path and checksum, its other version, no
    // delete button for a visitor.
    browser
        .find(Locator::XPath(
            "//tr[td[normalize-space(.)='1.0.0']]//a[normalize-space(.)='widget']",
        ))
        .await
        .click()
        .await
        .unwrap();
    page_drawn(&browser, "widget 1.0.0").await;
    browser
        .with_text("main//td", "linux/amd64/widget.tar.gz")
        .await;
    browser
        .with_text("main//code", &common::sha256_hex(&widget))
        .await;
    browser
        .find(Locator::XPath("//main//a[normalize-space(.)='2.0.0']"))
        .await;
    assert!(!has_button(&browser, "Delete package").await);
    assert!(!has_button(&browser, "Delete").await);
    browser.screenshot("package").await;

    // A real click on Download saves the same bytes.
    browser
        .find(Locator::XPath(
            "//main//a[starts-with(normalize-space(.), 'Download')]",
        ))
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(browser.downloaded("widget.tar.gz").await, widget);

    // Markup in a file's path is shown as text and never becomes an element.
    let odd_page = format!("/acme/tools/-/packages/{}", odd["package_id"]);
    browser.open(&r.url(&odd_page)).await;
    page_drawn(&browser, "odd 1.0").await;
    let cell = browser.with_text("main//td", "payload.txt").await;
    assert_eq!(
        cell.text().await.unwrap(),
        format!("{MARKUP_SEGMENT}/payload.txt")
    );
    assert!(!browser.is_present(Locator::Css("main img")).await);
    browser.screenshot("package-markup-in-path").await;
    // The curl command shown for it is quoted for the shell and works as is,
    // without a token for a public project.
    let command = browser
        .find(Locator::Css("code[data-tool=curl]"))
        .await
        .text()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .env("TOKEN", "")
        .current_dir(dir.path())
        .status()
        .await
        .expect("curl runs");
    assert!(status.success(), "{command}");
    assert_eq!(
        std::fs::read(dir.path().join("payload.txt")).unwrap(),
        common::data(3, 4)
    );
    assert!(!browser.client.title().await.unwrap().contains("injected"));

    // The group's page (`/acme`, as GitLab's group URLs) lists the public
    // project and its packages, and nothing of the private one.
    browser.open(&r.url("/acme")).await;
    page_drawn(&browser, "acme").await;
    browser
        .find(Locator::XPath("//main//a[normalize-space(.)='acme/tools']"))
        .await;
    browser
        .find(Locator::XPath("//main//td//a[normalize-space(.)='gadget']"))
        .await;
    assert!(
        !browser
            .is_present(Locator::XPath("//main//a[contains(., 'acme/secret')]"))
            .await
    );
    browser.screenshot("group").await;

    // A private project looks like nothing at all, and the page says what
    // to do.
    browser.open(&r.url("/acme/secret/-/packages")).await;
    page_drawn(&browser, "Not found").await;
    browser
        .find(Locator::XPath("//main//a[normalize-space(.)='sign in']"))
        .await;

    // Readable on a phone (nothing wider than the screen) and in the dark.
    browser.resize(390, 844).await;
    let widget_page = format!("/acme/tools/-/packages/{}", widget_file["package_id"]);
    for (path, heading, name) in [
        ("/acme/tools/-/packages", "packages", "packages-phone"),
        (widget_page.as_str(), "widget 1.0.0", "package-phone"),
    ] {
        browser.open(&r.url(path)).await;
        page_drawn(&browser, heading).await;
        let overflow = browser
            .script(
                "return document.documentElement.scrollWidth - window.innerWidth;",
                vec![],
            )
            .await;
        assert!(
            overflow.as_i64().unwrap() <= 0,
            "{path} is {overflow} px wider than a phone's screen"
        );
        browser.screenshot(name).await;
    }
    browser.resize(1280, 900).await;
    let light = background(&browser).await;
    browser.color_scheme("dark").await;
    let dark = background(&browser).await;
    assert_ne!(light, dark, "the dark colour scheme changes the background");
    browser.screenshot("packages-dark").await;

    // The pages carry a strict policy and never violated it...
    let shell = r.get(&r.url("/acme/tools/-/packages"), None).await;
    assert_eq!(shell.status(), StatusCode::OK);
    let policy = shell.headers()["content-security-policy"].to_str().unwrap();
    for directive in [
        "script-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert_eq!(shell.headers()["x-frame-options"], "DENY");
    assert_no_csp_violations(&browser).await;
    // ...and a violation would have been seen: an inline script is refused
    // and reported on the console.
    browser
        .script(
            "const s = document.createElement('script');
             s.textContent = 'document.title = \"inline ran\"';
             document.body.append(s);",
            vec![],
        )
        .await;
    assert!(!browser.client.title().await.unwrap().contains("inline ran"));
    let reported = browser.console().await;
    assert!(
        reported.iter().any(|message| message.is_csp_violation()),
        "the refused inline script shows on the console: {reported:#?}"
    );

    browser.close().await;
    assert_eq!(
        processes_mentioning(&profile),
        Vec::<u32>::new(),
        "no Chromium process outlives its session"
    );
}

/// The computed background colour of the page.
async fn background(browser: &Browser) -> String {
    browser
        .script(
            "return getComputedStyle(document.body).backgroundColor;",
            vec![],
        )
        .await
        .as_str()
        .unwrap()
        .to_string()
}
