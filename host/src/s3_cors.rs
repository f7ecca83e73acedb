//! Cross-origin answers of the embedded S3 server, so the registry's web
//! interface can send upload-session parts straight to the presigned URLs
//! (and follow download redirects) from the browser.
//!
//! s3s answers no CORS, so [`Cors`] wraps its service: a preflight
//! (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) from an
//! allowed origin, for `GET`, `HEAD` or `PUT` and only [`ALLOWED_HEADERS`],
//! is answered 200 with the `Access-Control-Allow-*` headers; any other
//! preflight 403, as AWS answers one no CORS rule matches. Every other
//! request goes to S3, and when it comes from an allowed origin its answer
//! carries `Access-Control-Allow-Origin` and exposes `ETag`. The presigned
//! URLs are the credential, so CORS only decides which pages may read the
//! answers.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use http::header::{HeaderValue, ORIGIN, VARY};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::Service;
use s3s::service::S3Service;
use s3s::{Body, HttpError, HttpResponse};

/// Methods a page may use on the bucket: downloads and part uploads.
pub const ALLOWED_METHODS: &str = "GET, HEAD, PUT";

/// Request headers a page may send: those a part URL signs (the browser
/// sets `content-length` itself) and the usual S3 ones.
pub const ALLOWED_HEADERS: &[&str] = &[
    "content-type",
    "content-md5",
    "x-amz-checksum-sha256",
    "x-amz-content-sha256",
    "x-amz-date",
];

/// Answer headers a page may read: the part's ETag.
pub const EXPOSED_HEADERS: &str = "ETag";

/// How long a browser may keep a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The web origins allowed to call the server from a browser, in their
/// ASCII serialization (`http://127.0.0.1:3000`); empty: none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrowserOrigins(Arc<[String]>);

impl BrowserOrigins {
    pub fn none() -> Self {
        BrowserOrigins::default()
    }

    /// The origins a registry listening on `listen` (its bound address) is
    /// opened at: `http://<listen>`; on a loopback address also
    /// `localhost` on that port; on an unspecified one (`0.0.0.0`, `::`)
    /// the loopback names, since the embedded S3 server listens on
    /// loopback; and the origin of `public_url` when set.
    pub fn of_registry(listen: SocketAddr, public_url: Option<&str>) -> Self {
        let port = listen.port();
        let mut origins = vec![format!("http://{listen}")];
        let ip = listen.ip();
        if ip.is_loopback() || ip.is_unspecified() {
            origins.push(format!("http://localhost:{port}"));
        }
        if ip.is_unspecified() {
            for loopback in [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ] {
                origins.push(format!("http://{}", SocketAddr::new(loopback, port)));
            }
        }
        origins.extend(public_url.and_then(origin_of));
        let mut unique: Vec<String> = Vec::with_capacity(origins.len());
        for origin in origins {
            if !unique.contains(&origin) {
                unique.push(origin);
            }
        }
        BrowserOrigins(unique.into())
    }

    #[cfg(test)]
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// The request's `Origin` when it is one of these.
    fn allowed(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(ORIGIN)?;
        let text = origin.to_str().ok()?;
        self.0
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(text))
            .then(|| origin.clone())
    }
}

/// The origin of a URL (`https://registry.example.com`), if it has one.
fn origin_of(url: &str) -> Option<String> {
    let origin = url::Url::parse(url.trim()).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// The embedded S3 service with CORS answers for `origins`.
#[derive(Clone)]
pub struct Cors {
    inner: S3Service,
    origins: BrowserOrigins,
}

impl Cors {
    pub fn new(inner: S3Service, origins: BrowserOrigins) -> Self {
        Cors { inner, origins }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl Service<Request<Incoming>> for Cors {
    type Response = HttpResponse;
    type Error = HttpError;
    type Future = BoxFuture<Result<HttpResponse, HttpError>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        if is_preflight(&request) {
            let answer = preflight(&self.origins, request.headers());
            return Box::pin(std::future::ready(Ok(answer)));
        }
        let origin = self.origins.allowed(request.headers());
        let answer = Service::call(&self.inner, request);
        Box::pin(async move {
            let mut response = answer.await?;
            if let Some(origin) = origin {
                allow_origin(response.headers_mut(), origin);
            }
            Ok(response)
        })
    }
}

/// Whether a request is a CORS preflight (an `OPTIONS` S3 would not know).
fn is_preflight<B>(request: &Request<B>) -> bool {
    request.method() == Method::OPTIONS
        && request.headers().contains_key(ORIGIN)
        && request
            .headers()
            .contains_key("access-control-request-method")
}

/// The answer to a preflight: 200 with what is allowed, or 403.
fn preflight(origins: &BrowserOrigins, headers: &HeaderMap) -> HttpResponse {
    let Some(origin) = origins.allowed(headers) else {
        return refused("the origin is not the registry's");
    };
    let method = header_text(headers, "access-control-request-method");
    if !ALLOWED_METHODS.split(", ").any(|allowed| allowed == method) {
        return refused("the method is not GET, HEAD or PUT");
    }
    let requested = header_text(headers, "access-control-request-headers");
    let unknown = requested
        .split(',')
        .map(|name| name.trim().to_ascii_lowercase())
        .find(|name| !name.is_empty() && !ALLOWED_HEADERS.contains(&name.as_str()));
    if let Some(name) = unknown {
        return refused(&format!("the header {name} is not allowed"));
    }
    let mut response = Response::new(Body::empty());
    let answer = response.headers_mut();
    allow_origin(answer, origin);
    answer.insert(
        "access-control-allow-methods",
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    let allowed_headers = ALLOWED_HEADERS.join(", ");
    answer.insert(
        "access-control-allow-headers",
        HeaderValue::from_str(&allowed_headers).expect("header names are valid values"),
    );
    answer.insert(
        "access-control-max-age",
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    response
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

/// Lets `origin` read this answer and its ETag.
fn allow_origin(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert("access-control-allow-origin", origin);
    headers.insert(
        "access-control-expose-headers",
        HeaderValue::from_static(EXPOSED_HEADERS),
    );
    headers.append(VARY, HeaderValue::from_static("Origin"));
}

/// 403 with an S3 error document saying why.
fn refused(why: &str) -> HttpResponse {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessForbidden</Code>\
         <Message>CORSResponse: this CORS request is not allowed: {why}</Message></Error>"
    );
    let mut response = Response::new(Body::from(xml));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn registry() -> BrowserOrigins {
        BrowserOrigins::of_registry("127.0.0.1:3000".parse().unwrap(), None)
    }

    #[test]
    fn a_loopback_registry_is_opened_at_its_address_and_localhost() {
        assert_eq!(
            registry().as_slice(),
            ["http://127.0.0.1:3000", "http://localhost:3000"]
        );
    }

    #[test]
    fn an_unspecified_address_allows_the_loopback_names_and_the_public_url() {
        let origins = BrowserOrigins::of_registry(
            "0.0.0.0:3000".parse().unwrap(),
            Some("https://Registry.example.com/prefix/"),
        );
        assert_eq!(
            origins.as_slice(),
            [
                "http://0.0.0.0:3000",
                "http://localhost:3000",
                "http://127.0.0.1:3000",
                "http://[::1]:3000",
                "https://registry.example.com",
            ]
        );
    }

    #[test]
    fn a_public_url_without_an_origin_adds_nothing() {
        let origins =
            BrowserOrigins::of_registry("10.0.0.5:80".parse().unwrap(), Some("not a url"));
        assert_eq!(origins.as_slice(), ["http://10.0.0.5:80"]);
    }

    #[test]
    fn a_preflight_for_a_part_put_from_the_registry_is_allowed() {
        let answer = preflight(
            &registry(),
            &headers(&[
                ("origin", "http://127.0.0.1:3000"),
                ("access-control-request-method", "PUT"),
                (
                    "access-control-request-headers",
                    "X-Amz-Checksum-Sha256,content-type",
                ),
            ]),
        );
        assert_eq!(answer.status(), StatusCode::OK);
        let h = answer.headers();
        assert_eq!(
            h["access-control-allow-origin"], "http://127.0.0.1:3000",
            "the origin itself, never *"
        );
        assert_eq!(h["access-control-allow-methods"], "GET, HEAD, PUT");
        assert!(h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("x-amz-checksum-sha256"));
        assert_eq!(h["access-control-expose-headers"], "ETag");
        assert_eq!(h["vary"], "Origin");
    }

    #[test]
    fn preflights_from_elsewhere_or_for_other_methods_or_headers_are_refused() {
        let refused_for = |pairs: &[(&'static str, &str)]| {
            let answer = preflight(&registry(), &headers(pairs));
            assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{pairs:?}");
            assert!(!answer.headers().contains_key("access-control-allow-origin"));
        };
        refused_for(&[
            ("origin", "http://evil.example"),
            ("access-control-request-method", "PUT"),
        ]);
        refused_for(&[
            ("origin", "http://127.0.0.1:3000"),
            ("access-control-request-method", "DELETE"),
        ]);
        refused_for(&[
            ("origin", "http://127.0.0.1:3000"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "authorization"),
        ]);
    }
}
