//! The server side of the web interface: which paths get the shell, the
//! headers it carries, asset caching, and rules on the embedded files
//! themselves (size, no inline code, no HTML built from strings).

use super::*;
use crate::testing::{Credential, Reply, TestRegistry};

fn get(r: &TestRegistry, path: &str, headers: &[(&str, &str)]) -> Reply {
    r.send(Method::Get, path, headers, b"")
}

fn assert_is_shell(reply: &Reply, path: &str) {
    assert_eq!(reply.status, 200, "{path} answers the shell");
    assert_eq!(
        reply.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{path}"
    );
    assert_eq!(reply.body, SHELL, "{path}");
}

fn asset_text(path: &str) -> &'static str {
    std::str::from_utf8(asset(path).expect("embedded").bytes).expect("UTF-8")
}

fn scripts() -> impl Iterator<Item = &'static Asset> {
    ASSETS.iter().filter(|a| a.path.ends_with(".js"))
}

#[test]
fn the_shell_carries_a_strict_security_policy_and_no_framing() {
    let r = TestRegistry::default();
    let reply = get(&r, "/", &[]);
    assert_is_shell(&reply, "/");
    assert_eq!(
        reply.header("content-security-policy"),
        Some(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self' http://s3.test; frame-ancestors 'none'; base-uri 'none'; \
             form-action 'self'"
        )
    );
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(reply.header("cache-control"), Some("no-cache"));
}

#[test]
fn pages_may_reach_only_the_s3_endpoints_origin_beyond_their_own() {
    let connect_src = |endpoint: &str| {
        let policy = content_security_policy(endpoint);
        let directive = policy
            .split("; ")
            .find(|d| d.starts_with("connect-src "))
            .expect("a connect-src directive");
        directive.to_string()
    };
    assert_eq!(
        connect_src("https://S3.eu-west-1.amazonaws.com/bucket-path"),
        "connect-src 'self' https://s3.eu-west-1.amazonaws.com"
    );
    assert_eq!(
        connect_src("http://127.0.0.1:9000"),
        "connect-src 'self' http://127.0.0.1:9000"
    );
    assert_eq!(connect_src("http://[::1]:9000"), "connect-src 'self'");
    assert_eq!(connect_src("not a url"), "connect-src 'self'");
}

#[test]
fn head_on_a_page_answers_the_shell_headers_without_a_body() {
    let r = TestRegistry::default();
    let reply = r.send(Method::Head, "/explore", &[], b"");
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty());
    assert_eq!(
        reply.header("content-length"),
        Some(SHELL.len().to_string().as_str())
    );
    assert!(reply.header("content-security-policy").is_some());
}

#[test]
fn every_gitlab_page_shape_answers_the_shell() {
    let r = TestRegistry::default();
    for path in [
        "/",
        "/explore",
        "/users/sign_in",
        "/acme/tools",
        "/acme/platform/tools/-/packages",
        "/acme/tools/-/packages/12",
        "/acme/tools/-/settings/packages_and_registries",
        "/acme/tools/-/settings/access_tokens",
        "/acme/tools/-/settings/repository",
        "/groups/acme/platform",
        "/groups/acme/platform/-/packages",
        "/groups/acme/-/settings/packages_and_registries",
        "/groups/acme/-/settings/access_tokens",
        "/groups/acme/-/settings/repository",
        "/no/such/page/-/at/all",
    ] {
        assert_is_shell(&get(&r, path, &[]), path);
    }
}

#[test]
fn every_web_path_and_web_url_the_api_returns_opens_the_shell() {
    let r = TestRegistry::default();
    let admin = r.admin();
    let project = r.create_project("acme/platform", "tools", "public");
    let published = r.put_bytes(&r.generic(project, "tool/1.0.0/a.txt"), &admin, b"a");
    assert_eq!(published.status, 201);

    let project_json = r.get(&format!("/api/v4/projects/{project}"), &admin).json();
    let group_json = r.get("/api/v4/groups/acme%2Fplatform", &admin).json();
    let packages = r
        .get(&format!("/api/v4/projects/{project}/packages"), &admin)
        .json();
    let public_url = "http://registry.test";
    let pages = [
        project_json["web_url"].as_str().unwrap().to_string(),
        group_json["web_url"].as_str().unwrap().to_string(),
        format!(
            "{public_url}{}",
            packages[0]["_links"]["web_path"].as_str().unwrap()
        ),
    ];
    assert_eq!(
        pages,
        [
            "http://registry.test/acme/platform/tools",
            "http://registry.test/groups/acme/platform",
            "http://registry.test/acme/platform/tools/-/packages/1",
        ]
    );
    for url in pages {
        let path = url.strip_prefix(public_url).unwrap();
        assert_is_shell(&get(&r, path, &[]), path);
    }
}

#[test]
fn the_api_and_health_keep_their_answers() {
    let r = TestRegistry::default();
    let health = get(&r, "/-/health", &[]);
    assert_eq!((health.status, health.body.as_slice()), (200, &b"OK"[..]));

    for path in [
        "/api/v4/nothing/here",
        "/api/v3/projects",
        "/api",
        "/-/nope",
    ] {
        let reply = get(&r, path, &[]);
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(
            reply.json(),
            serde_json::json!({"error": "404 Not Found"}),
            "{path}"
        );
    }
    let projects = r.get("/api/v4/projects", &Credential::anonymous());
    assert_eq!(projects.status, 200);
    assert_eq!(projects.header("content-type"), Some("application/json"));
    assert!(projects.header("content-security-policy").is_none());
}

#[test]
fn only_get_and_head_reach_the_interface() {
    let r = TestRegistry::default();
    for method in [Method::Post, Method::Put, Method::Delete, Method::Patch] {
        let reply = r.send(method.clone(), "/acme/tools/-/packages", &[], b"");
        assert_eq!(reply.status, 404, "{method:?}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }
}

#[test]
fn files_browsers_ask_for_by_themselves_are_not_pages() {
    let r = TestRegistry::default();
    for path in ["/favicon.ico", "/robots.txt"] {
        assert_eq!(get(&r, path, &[]).status, 404, "{path}");
    }
}

#[test]
fn assets_carry_their_sha256_as_etag_and_revalidate_to_304() {
    let r = TestRegistry::default();
    let app = asset("js/app.js").unwrap();
    let expected = format!("\"{}\"", hex::encode(Sha256::digest(app.bytes)));

    let first = get(&r, "/-/assets/js/app.js", &[]);
    assert_eq!(first.status, 200);
    assert_eq!(first.body, app.bytes);
    assert_eq!(first.header("etag"), Some(expected.as_str()));
    assert_eq!(
        first.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(first.header("cache-control"), Some("no-cache"));

    let weak = format!("W/{expected}");
    let listed = format!("\"0000\", {expected}");
    for if_none_match in [expected.as_str(), weak.as_str(), listed.as_str(), "*"] {
        let again = get(
            &r,
            "/-/assets/js/app.js",
            &[("If-None-Match", if_none_match)],
        );
        assert_eq!(again.status, 304, "{if_none_match}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(expected.as_str()));
    }

    let changed = get(&r, "/-/assets/js/app.js", &[("If-None-Match", "\"0000\"")]);
    assert_eq!(changed.status, 200);
    let css = get(&r, "/-/assets/app.css", &[("If-None-Match", &expected)]);
    assert_eq!(css.status, 200, "another asset's ETag does not match");
}

#[test]
fn unknown_assets_answer_404_not_the_shell() {
    let r = TestRegistry::default();
    for path in [
        "/-/assets/nope.js",
        "/-/assets/",
        "/-/assets/../index.html",
        "/-/assets/index.html",
    ] {
        let reply = get(&r, path, &[]);
        assert_eq!(reply.status, 404, "{path}");
        assert_ne!(reply.body, SHELL, "{path}");
    }
}

#[test]
fn the_embedded_assets_stay_small() {
    let total: usize = SHELL.len() + ASSETS.iter().map(|a| a.bytes.len()).sum::<usize>();
    assert!(
        total < 300 * 1024,
        "the web interface grew to {total} bytes"
    );
}

#[test]
fn the_shell_has_no_inline_script_or_style() {
    let shell = std::str::from_utf8(SHELL).unwrap();
    assert!(!shell.contains("<style"));
    assert!(!shell.contains(" style="));
    assert!(!shell.contains(" on"), "no inline event handlers");
    for script in shell.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap();
        assert!(tag.contains("src=\"/-/assets/"), "inline script: {tag}");
    }
}

#[test]
fn scripts_never_build_html_from_strings_or_evaluate_code() {
    for script in scripts() {
        let text = std::str::from_utf8(script.bytes).unwrap();
        for forbidden in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "setAttribute('style'",
            "javascript:",
        ] {
            assert!(
                !text.contains(forbidden),
                "{} uses {forbidden}",
                script.path
            );
        }
    }
}

#[test]
fn scripts_never_put_a_token_in_a_url() {
    for script in scripts() {
        let text = std::str::from_utf8(script.bytes).unwrap();
        for forbidden in [
            "?private_token=",
            "&private_token=",
            "?job_token=",
            "&job_token=",
            "?token=",
            "&token=",
        ] {
            assert!(
                !text.contains(forbidden),
                "{} uses {forbidden}",
                script.path
            );
        }
    }
}

/// The paths a module imports (`from './x.js'`), resolved against its own
/// directory.
fn imports_of(asset: &Asset) -> Vec<String> {
    let text = std::str::from_utf8(asset.bytes).unwrap();
    let dir: Vec<&str> = asset
        .path
        .rsplit_once('/')
        .map_or(vec![], |(d, _)| d.split('/').collect());
    text.split("from '")
        .skip(1)
        .filter_map(|rest| rest.split('\'').next())
        .map(|relative| {
            let mut parts = dir.clone();
            for segment in relative.split('/') {
                match segment {
                    "." => {}
                    ".." => {
                        parts.pop();
                    }
                    name => parts.push(name),
                }
            }
            parts.join("/")
        })
        .collect()
}

#[test]
fn every_module_import_is_embedded() {
    for script in scripts() {
        for import in imports_of(script) {
            assert!(asset(&import).is_some(), "{} imports {import}", script.path);
        }
    }
    let shell = std::str::from_utf8(SHELL).unwrap();
    for reference in shell.split(ASSETS_PREFIX).skip(1) {
        let path = reference.split('"').next().unwrap();
        assert!(asset(path).is_some(), "the shell refers to {path}");
    }
    assert!(asset_text("js/app.js").contains("from './routes.js'"));
}
