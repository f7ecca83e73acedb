//! A file larger than a hosted platform's 10 MiB body cap, uploaded from
//! the web interface: the page hashes it, opens an upload session and PUTs
//! the parts straight to the embedded S3 server's presigned URLs (which
//! answers CORS for the registry's origin), then completes the session. And
//! the embedded S3 server's CORS answers, checked without a browser.

use fantoccini::Locator;
use genreg::genreg_token::{Kind, Role, Scope};
use genreg::Limits;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::harness::Browser;
use super::support::{assert_no_csp_violations, bytes_of, page_drawn, sign_in};
use crate::common::{self, start_configured, TestRegistry, TokenSpec};

const MIB: usize = 1024 * 1024;

/// Well over the hosted 10 MiB cap, and not a whole number of parts.
const LARGE_SIZE: usize = 24 * MIB + 4321;

/// A registry under the hosted preset (`genreg up --hosted`: 10 MiB request
/// and response bodies, 30 s per request, 128 MiB per instance), with
/// downloads over the response cap redirected to S3.
async fn start_hosted() -> TestRegistry {
    start_configured(&[("download_mode", "auto")], |config| {
        config.limits = Limits::hosted()
    })
    .await
}

fn maintainer_of(r: &TestRegistry, project: &'static str) -> String {
    r.token(TokenSpec {
        kind: Kind::Personal,
        scopes: vec![Scope::Api],
        grants: vec![(project, Role::Maintainer)],
        admin: false,
        expires_at: None,
    })
}

#[tokio::test]
async fn a_file_over_the_hosts_body_cap_is_uploaded_from_the_browser_through_a_session() {
    let r = start_hosted().await;
    let project = r.create_project("acme", "big", "private").await;
    let token = maintainer_of(&r, "acme/big");
    let bytes = common::data(LARGE_SIZE, 24);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big-image.bin");
    std::fs::write(&file, &bytes).unwrap();

    let browser = Browser::start().await;
    sign_in(&browser, &r, &token).await;
    browser.open(&r.url("/acme/big/-/packages")).await;
    page_drawn(&browser, "big packages").await;
    browser.button("Upload a file").await.click().await.unwrap();
    browser
        .find(Locator::Css("dialog[open] input[type=file]"))
        .await
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    browser.type_into("Package name", "image").await;
    browser.type_into("Version", "1.0").await;
    record_progress_lines(&browser).await;
    browser.button("Upload").await.click().await.unwrap();

    let shown = browser
        .find(Locator::Css("[data-testid=uploaded-sha256]"))
        .await;
    assert_eq!(shown.text().await.unwrap(), common::sha256_hex(&bytes));
    browser
        .script(
            "document.querySelector('[data-testid=uploaded-sha256]')
                 .scrollIntoView({ block: 'center' });",
            vec![],
        )
        .await;
    browser.screenshot("upload-large").await;
    let bar = browser
        .script(
            "const bar = document.querySelector('dialog[open] progress');
             return [bar.value, bar.max, bar.hidden];",
            vec![],
        )
        .await;
    assert_eq!(bar, json!([100, 100, false]), "the bar is full");
    let lines = browser.script("return window.progressSeen;", vec![]).await;
    let lines: Vec<&str> = lines
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line.as_str().unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l.starts_with("Computing the sha256")),
        "the page hashed the file first: {lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Uploading") && l.ends_with("(100%)")),
        "the upload counted up to 100 %: {lines:?}"
    );

    assert_went_through_a_session(&browser, &r, project, &token).await;

    // The same bytes come back: through the API, and from the package
    // page's download button (redirected to S3, past the response cap).
    let url = r.generic(&project.to_string(), "image/1.0/big-image.bin");
    assert_eq!(bytes_of(&r, &url, &token).await, bytes);
    browser.button("Close").await.click().await.unwrap();
    browser
        .find(Locator::XPath("//main//td//a[normalize-space(.)='image']"))
        .await
        .click()
        .await
        .unwrap();
    page_drawn(&browser, "image 1.0").await;
    browser
        .find(Locator::XPath(
            "//main//a[starts-with(normalize-space(.), 'Download')]",
        ))
        .await
        .click()
        .await
        .unwrap();
    assert!(browser.downloaded("big-image.bin").await == bytes);

    assert_page_sha256_matches_the_standard(&browser).await;
    assert_no_csp_violations(&browser).await;
    browser.close().await;
}

/// The page's incremental SHA-256 gives FIPS 180-4's answers, whatever the
/// pieces the input comes in (padding into a second block, a million bytes
/// in uneven pieces).
async fn assert_page_sha256_matches_the_standard(browser: &Browser) {
    let digests = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             import('/-/assets/js/sha256.js').then(({ Sha256, hex }) => {
               const text = (s) => new TextEncoder().encode(s);
               const once = (bytes) => hex(new Sha256().update(bytes).digest());
               const million = new Uint8Array(1000000).fill(0x61);
               const pieces = new Sha256();
               for (let at = 0, step = 1; at < million.length; at += step, step = step * 3 % 1000 + 1) {
                 pieces.update(million.subarray(at, at + step));
               }
               done([once(text('')), once(text('abc')),
                     once(text('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')),
                     hex(pieces.digest())]);
             }, (error) => done(String(error)));",
            vec![],
        )
        .await
        .expect("run the page's SHA-256");
    assert_eq!(
        digests,
        json!([
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
        ])
    );
}

/// Records every text the upload dialog's progress line shows.
async fn record_progress_lines(browser: &Browser) {
    browser
        .script(
            "const line = document.querySelector('dialog[open] progress').nextElementSibling;
             window.progressSeen = [];
             new MutationObserver(() => window.progressSeen.push(line.textContent))
                 .observe(line, { childList: true, characterData: true, subtree: true });",
            vec![],
        )
        .await;
}

/// The page asked for a session and part URLs, sent the parts to S3 (not to
/// the registry), and the session is gone once completed.
async fn assert_went_through_a_session(
    browser: &Browser,
    r: &TestRegistry,
    project: u64,
    token: &str,
) {
    let requests = browser
        .script(
            "return performance.getEntriesByType('resource')
                 .map(e => [e.name, e.initiatorType]);",
            vec![],
        )
        .await;
    let requests: Vec<(String, String)> = serde_json::from_value(requests).unwrap();
    let s3 = r.registry.s3().endpoint;
    let parts_to_s3 = requests
        .iter()
        .filter(|(url, kind)| {
            url.starts_with(&s3) && url.contains("partNumber=") && kind == "xmlhttprequest"
        })
        .count();
    assert_eq!(
        parts_to_s3,
        LARGE_SIZE.div_ceil(8 * MIB),
        "one PUT per 8 MiB part, straight to S3: {requests:?}"
    );
    assert!(requests
        .iter()
        .any(|(url, _)| url.contains("/packages/upload_sessions/") && url.ends_with("/complete")));
    let live = r
        .get(
            &r.url(&format!(
                "/api/v4/projects/{project}/packages/upload_sessions"
            )),
            Some(token),
        )
        .await;
    assert_eq!(common::json(live).await, json!([]));
}

/// The origin the registry's pages are served from.
fn origin_of(r: &TestRegistry) -> String {
    r.registry.url()
}

/// An OPTIONS preflight to the embedded S3 server.
async fn preflight(
    r: &TestRegistry,
    origin: &str,
    method: &str,
    headers: &str,
) -> reqwest::Response {
    let url = format!(
        "{}/genreg/some-object?partNumber=1&uploadId=x",
        r.registry.s3().endpoint
    );
    r.client
        .request(Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_embedded_s3_answers_cors_for_the_registrys_own_origin_only() {
    let r = common::start().await;
    let origin = origin_of(&r);

    // A preflight for a part PUT from the registry's pages is allowed...
    let allowed = preflight(&r, &origin, "PUT", "x-amz-checksum-sha256,content-type").await;
    assert_eq!(allowed.status(), StatusCode::OK);
    let headers = allowed.headers();
    assert_eq!(headers["access-control-allow-origin"], origin.as_str());
    assert_eq!(headers["access-control-allow-methods"], "GET, HEAD, PUT");
    let allowed_headers = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed_headers.contains("x-amz-checksum-sha256"));
    assert!(allowed_headers.contains("content-type"));
    assert_eq!(headers["access-control-expose-headers"], "ETag");

    // ...one from another site, or for another method or header, is not.
    for (from, method, asked) in [
        ("http://evil.example", "PUT", "x-amz-checksum-sha256"),
        (origin.as_str(), "DELETE", ""),
        (origin.as_str(), "PUT", "authorization"),
    ] {
        let refused = preflight(&r, from, method, asked).await;
        assert_eq!(
            refused.status(),
            StatusCode::FORBIDDEN,
            "{from} {method} {asked}"
        );
        assert!(!refused
            .headers()
            .contains_key("access-control-allow-origin"));
        assert!(refused.text().await.unwrap().contains("CORSResponse"));
    }

    // A real part PUT to a presigned URL: the answer lets the registry's
    // pages read it and its ETag, and nobody else's.
    let project = r.create_project("acme", "cors", "private").await;
    let part = common::data(1000, 3);
    let sha256 = common::sha256_hex(&part);
    let session = common::json(
        common::post(
            &r,
            &format!("/api/v4/projects/{project}/packages/generic/tool/1.0/tool.bin"),
            Some(&r.admin()),
            json!({ "size": part.len(), "sha256": sha256 }),
        )
        .await,
    )
    .await;
    let self_path = session["_links"]["self"].as_str().unwrap();
    for (from, allowed) in [(origin.as_str(), true), ("http://evil.example", false)] {
        let link = common::json(
            common::post(
                &r,
                &format!("{self_path}/parts/1"),
                Some(&r.admin()),
                json!({ "sha256": sha256, "size": part.len() }),
            )
            .await,
        )
        .await;
        let answer = put_part(&r, &link, from, part.clone()).await;
        assert_eq!(answer.status(), StatusCode::OK, "S3 takes the part");
        let headers = answer.headers();
        assert!(headers.contains_key("etag"));
        if allowed {
            assert_eq!(headers["access-control-allow-origin"], origin.as_str());
            assert_eq!(headers["access-control-expose-headers"], "ETag");
        } else {
            assert!(!headers.contains_key("access-control-allow-origin"));
        }
    }
}

/// PUTs a part to the URL `link` (a part-URL answer) hands out, with its
/// headers and an `Origin`, as a browser would.
async fn put_part(
    r: &TestRegistry,
    link: &Value,
    origin: &str,
    part: Vec<u8>,
) -> reqwest::Response {
    let mut request = r
        .client
        .put(link["url"].as_str().unwrap())
        .header("origin", origin)
        .body(part);
    for (name, value) in link["headers"].as_object().unwrap() {
        if name != "content-length" {
            request = request.header(name.as_str(), value.as_str().unwrap());
        }
    }
    request.send().await.unwrap()
}
