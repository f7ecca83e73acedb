//! Outgoing HTTP (`wasi:http/outgoing-handler`): wasmtime-wasi-http's default
//! sender behind an allowlist, like Spin's `allowed_outbound_hosts`.
//!
//! The list holds `scheme://host:port` origins (built from the `s3_endpoint`
//! variable). A request to anything else fails with `http-request-denied`
//! before any connection is made, the error Spin gives.

use std::future::Future;
use std::sync::Arc;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// One allowed origin. Hosts compare case-insensitively; a missing port is
/// the scheme's default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port][/anything]` (http or https only).
    pub fn parse(url: &str) -> Option<Origin> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let authority = rest.split(['/', '?', '#']).next()?;
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        Origin::from_parts(&scheme, authority)
    }

    fn from_parts(scheme: &str, authority: &str) -> Option<Origin> {
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let (host, port) = split_host_port(authority)?;
        let port = match port {
            Some(p) => p.parse().ok()?,
            None => default_port,
        };
        if host.is_empty() {
            return None;
        }
        Some(Origin {
            scheme: scheme.to_string(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The origin a request URI targets.
    pub fn of_uri(uri: &http::Uri) -> Option<Origin> {
        Origin::from_parts(uri.scheme_str()?, uri.authority()?.as_str())
    }
}

/// Splits `host[:port]`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    Some(match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

/// The origins the component may reach.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts {
    origins: Vec<Origin>,
}

impl AllowedHosts {
    /// Allows exactly the origins of `urls`; unparsable entries allow nothing.
    pub fn from_urls<'a>(urls: impl IntoIterator<Item = &'a str>) -> Self {
        AllowedHosts {
            origins: urls.into_iter().filter_map(Origin::parse).collect(),
        }
    }

    pub fn allows(&self, uri: &http::Uri) -> bool {
        Origin::of_uri(uri).is_some_and(|o| self.origins.contains(&o))
    }
}

/// The wasi:http hooks every instance uses: the default sender, gated by the
/// allowlist.
#[derive(Clone, Debug, Default)]
pub struct OutboundHttp {
    allowed: Arc<AllowedHosts>,
}

impl OutboundHttp {
    pub fn new(allowed: AllowedHosts) -> Self {
        OutboundHttp {
            allowed: Arc::new(allowed),
        }
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
)>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _body_result: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        if !self.allowed.allows(request.uri()) {
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(endpoint: &str) -> AllowedHosts {
        AllowedHosts::from_urls([endpoint])
    }

    fn uri(s: &str) -> http::Uri {
        s.parse().unwrap()
    }

    #[test]
    fn the_endpoint_itself_is_allowed() {
        let a = allowed("http://127.0.0.1:9000");
        assert!(a.allows(&uri("http://127.0.0.1:9000/genreg/key?uploads")));
    }

    #[test]
    fn another_port_host_or_scheme_is_denied() {
        let a = allowed("http://127.0.0.1:9000");
        assert!(!a.allows(&uri("http://127.0.0.1:9001/")));
        assert!(!a.allows(&uri("http://localhost:9000/")));
        assert!(!a.allows(&uri("https://127.0.0.1:9000/")));
        assert!(!a.allows(&uri("http://example.com/")));
    }

    #[test]
    fn default_ports_and_case_are_normalised() {
        let a = allowed("https://S3.Example.com/bucket-prefix");
        assert!(a.allows(&uri("https://s3.example.com:443/x")));
        assert!(a.allows(&uri("https://s3.example.com/x")));
        assert!(!a.allows(&uri("http://s3.example.com/x")));
    }

    #[test]
    fn ipv6_endpoints_work() {
        let a = allowed("http://[::1]:9000");
        assert!(a.allows(&uri("http://[::1]:9000/x")));
        assert!(!a.allows(&uri("http://[::1]:9001/x")));
    }

    #[test]
    fn a_bad_endpoint_allows_nothing() {
        let a = allowed("not a url");
        assert!(!a.allows(&uri("http://127.0.0.1:9000/")));
        assert!(!AllowedHosts::default().allows(&uri("http://127.0.0.1/")));
    }

    #[test]
    fn a_uri_without_authority_is_denied() {
        assert!(!allowed("http://127.0.0.1:9000").allows(&uri("/relative")));
    }
}
