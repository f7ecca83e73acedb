//! The web interface: a static shell (`web/index.html`), its stylesheet and
//! ES modules, embedded in the component and served by it. The pages are
//! drawn in the browser by `web/js/`, which talks only to the API with the
//! visitor's token; the server side knows no session and renders nothing.
//!
//! - `GET`/`HEAD /-/assets/<file>`: an embedded asset, with an `ETag` (the
//!   sha256 of its bytes) that `If-None-Match` turns into 304.
//! - `GET`/`HEAD` on any other path outside `/api/` and `/-/`: the shell,
//!   200, with a strict Content-Security-Policy. The script reads the path
//!   and draws the page, or a "not found" page for paths it does not know
//!   (the server cannot tell a group from a typo without the API).
//! - Everything else is not the interface's: [`answer`] returns `None` and
//!   the router keeps its JSON answers.

use sha2::{Digest, Sha256};

use crate::http::{Method, Request, Response};

/// Where assets are served from; the shell refers to them by this prefix.
pub const ASSETS_PREFIX: &str = "/-/assets/";

/// One embedded file of `web/`.
pub struct Asset {
    /// Its path below `web/` (and below [`ASSETS_PREFIX`]).
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../../web/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `web/` but the shell. A module missing here fails the
/// `every_module_import_is_embedded` test.
pub const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/routes.js", JS),
    asset!("js/upload.js", JS),
    asset!("js/sha256.js", JS),
    asset!("js/pages/errors.js", JS),
    asset!("js/pages/signin.js", JS),
    asset!("js/pages/projects.js", JS),
    asset!("js/pages/packages.js", JS),
    asset!("js/pages/package.js", JS),
    asset!("js/pages/group.js", JS),
    asset!("js/pages/settings.js", JS),
    asset!("js/pages/tokens.js", JS),
];

/// The HTML every page starts from.
pub const SHELL: &[u8] = include_bytes!("../../web/index.html");

/// The policy the shell is served with: scripts, styles and API calls only
/// from this origin, no inline code, no framing, no foreign form targets.
/// `connect-src` adds the origin of the S3 endpoint (`s3_endpoint`), the
/// one other place pages talk to: large uploads send their parts to its
/// presigned URLs (see README, "Web interface").
pub fn content_security_policy(s3_endpoint: &str) -> String {
    let connect = match s3_origin(s3_endpoint) {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_string(),
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src {connect}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
}

/// The origin of the S3 endpoint as a CSP source (`https://s3.example.com`),
/// when it has one a policy can name (CSP has no syntax for IPv6 hosts).
fn s3_origin(endpoint: &str) -> Option<String> {
    let origin = url::Url::parse(endpoint).ok()?.origin();
    let text = origin.ascii_serialization();
    (origin.is_tuple() && !text.contains('[')).then_some(text)
}

/// Assets are revalidated on every use (a cheap 304): their URLs carry no
/// version, so a cached copy must never outlive an upgrade.
const ASSET_CACHE_CONTROL: &str = "no-cache";

/// The interface's answer to this request, or `None` when the path is not
/// the interface's (the API, `/-/health`, other methods). `s3_endpoint` is
/// the configured one, which the pages' policy lets them reach.
pub fn answer(request: &Request, s3_endpoint: &str) -> Option<Response> {
    if !matches!(request.method, Method::Get | Method::Head) {
        return None;
    }
    if let Some(asset_path) = request.path.strip_prefix(ASSETS_PREFIX) {
        return Some(match asset(asset_path) {
            Some(asset) => serve_asset(asset, request),
            None => not_found(),
        });
    }
    is_page_path(&request.path).then(|| shell(s3_endpoint))
}

/// Whether a path may name a page: anything but the API and the reserved
/// `/-/` prefix (health, assets), and no files browsers ask for by
/// themselves (`/favicon.ico`, `/robots.txt`), which get a 404 instead of
/// HTML.
pub fn is_page_path(path: &str) -> bool {
    let reserved = ["/api/", "/-/"];
    path.starts_with('/')
        && path != "/api"
        && path != "/favicon.ico"
        && path != "/robots.txt"
        && !reserved.iter().any(|prefix| path.starts_with(prefix))
}

pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.path == path)
}

/// The strong ETag of some bytes: their sha256, quoted.
pub fn etag(bytes: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha256::digest(bytes)))
}

fn serve_asset(asset: &Asset, request: &Request) -> Response {
    let etag = etag(asset.bytes);
    let response = if matches_any(request.header("if-none-match"), &etag) {
        Response::new(304)
    } else {
        Response::new(200)
            .header("content-type", asset.content_type)
            .with_body(asset.bytes.to_vec())
    };
    response
        .header("etag", etag)
        .header("cache-control", ASSET_CACHE_CONTROL)
        .header("x-content-type-options", "nosniff")
}

/// Whether an `If-None-Match` list names this ETag (weak comparison, as
/// RFC 9110 asks for `If-None-Match`), or is `*`.
fn matches_any(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match.is_some_and(|list| {
        list.split(',').map(str::trim).any(|candidate| {
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
        })
    })
}

fn shell(s3_endpoint: &str) -> Response {
    with_page_headers(Response::new(200), s3_endpoint)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-cache")
        .with_body(SHELL.to_vec())
}

/// The headers every HTML answer carries.
fn with_page_headers(response: Response, s3_endpoint: &str) -> Response {
    response
        .header(
            "content-security-policy",
            content_security_policy(s3_endpoint),
        )
        .header("x-frame-options", "DENY")
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
}

fn not_found() -> Response {
    Response::new(404)
        .header("content-type", "text/plain; charset=utf-8")
        .header("x-content-type-options", "nosniff")
        .with_body(b"404 Not Found\n".to_vec())
}

#[cfg(test)]
mod tests;
