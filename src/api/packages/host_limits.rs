//! Living within the limits of the platform that runs the component.
//!
//! Hosted Spin platforms (Fermyon Wasm Functions, Akamai Functions) cap
//! request and response bodies (10 MiB). The operator declares those caps
//! in the `max_request_body` and `max_response_body` variables
//! ([`HostLimits`]); with them the registry answers in its own words instead
//! of the platform's:
//!
//! - a publish over the request cap is refused with a 413 that names the
//!   upload-session API (a `POST` on the same URL), before any byte is read
//!   when `Content-Length` says so, or as soon as the streamed body crosses
//!   the cap ([`CappedBody`]);
//! - with `download_mode = auto`, a file larger than the response cap is
//!   answered with the redirect to object storage instead of being proxied
//!   ([`redirects`]).

use crate::config::{Config, DownloadMode, HostLimits};
use crate::error::ApiError;
use crate::http::ByteSource;

/// Refuses a publish whose announced length is over the host's request cap
/// (a file over `max_file_size` is left to the usual 413: a session would
/// not help it).
pub fn check_announced_length(
    config: &Config,
    content_length: Option<u64>,
    path: &str,
) -> Result<(), ApiError> {
    let (Some(length), Some(cap)) = (content_length, config.host_limits.max_request_body) else {
        return Ok(());
    };
    let over_file_limit = config.max_file_size.is_some_and(|max| length > max);
    if length > cap && !over_file_limit {
        return Err(over_request_cap(cap, path));
    }
    Ok(())
}

/// Whether a download of a file of `size` bytes is answered with a redirect
/// to object storage rather than streamed through the component.
pub fn redirects(config: &Config, size: u64) -> bool {
    match config.download_mode {
        DownloadMode::Redirect => true,
        DownloadMode::Proxy => false,
        DownloadMode::Auto => over_response_cap(&config.host_limits, size),
    }
}

fn over_response_cap(limits: &HostLimits, size: u64) -> bool {
    limits.max_response_body.is_some_and(|cap| size > cap)
}

/// The 413 for a body over the host's cap, pointing at the upload-session
/// API (see README, "Upload sessions").
fn over_request_cap(cap: u64, path: &str) -> ApiError {
    ApiError::TooLargeFor(format!(
        "this host accepts request bodies of at most {cap} bytes; upload larger files \
         through an upload session: POST {path} with a JSON body \
         {{\"size\": <bytes>, \"sha256\": \"<hex>\"}}"
    ))
}

/// A publish's body, counted against the host's request cap.
///
/// Over the cap, reading fails (so the upload stops and leaves nothing
/// behind) and [`CappedBody::explain`] turns the upload's failure into the
/// 413 naming sessions. A host that enforces the cap itself may instead cut
/// the body after exactly `cap` bytes: a read failing there is taken as the
/// same refusal.
pub struct CappedBody<'a> {
    inner: &'a mut dyn ByteSource,
    cap: Option<u64>,
    path: &'a str,
    received: u64,
    over: bool,
}

impl<'a> CappedBody<'a> {
    pub fn new(config: &Config, inner: &'a mut dyn ByteSource, path: &'a str) -> Self {
        CappedBody {
            inner,
            cap: config.host_limits.max_request_body,
            path,
            received: 0,
            over: false,
        }
    }

    /// The answer for an upload that failed with `error`.
    pub fn explain(&self, error: impl Into<ApiError>) -> ApiError {
        match self.cap {
            Some(cap) if self.over => over_request_cap(cap, self.path),
            _ => error.into(),
        }
    }

    fn reached_cap(&self) -> bool {
        self.cap.is_some_and(|cap| self.received >= cap)
    }
}

impl ByteSource for CappedBody<'_> {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        let chunk = match self.inner.next_chunk() {
            Ok(chunk) => chunk,
            Err(e) => {
                self.over = self.reached_cap();
                return Err(e);
            }
        };
        if let Some(bytes) = &chunk {
            self.received += bytes.len() as u64;
            if self.cap.is_some_and(|cap| self.received > cap) {
                self.over = true;
                return Err("the request body is over the host's limit".into());
            }
        }
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::blob::upload::UploadError;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let defaults = [
            ("s3_endpoint", "http://s3.test"),
            ("s3_bucket", "b"),
            ("s3_access_key_id", "k"),
            ("s3_secret_access_key", "s"),
            ("token_secret", "secret"),
        ];
        Config::from_variables(|name| {
            pairs
                .iter()
                .chain(defaults.iter())
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    const PATH: &str = "/api/v4/projects/1/packages/generic/tool/1.0/big.bin";

    fn read_all(body: &mut CappedBody) -> Result<u64, String> {
        let mut total = 0;
        while let Some(chunk) = body.next_chunk()? {
            total += chunk.len() as u64;
        }
        Ok(total)
    }

    /// A body that delivers `chunks`, then fails as a host cutting it does.
    struct CutBody(VecDeque<Vec<u8>>);

    impl ByteSource for CutBody {
        fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
            self.0
                .pop_front()
                .map(Some)
                .ok_or_else(|| "connection reset".to_string())
        }
    }

    #[test]
    fn an_announced_length_over_the_cap_is_refused_naming_sessions() {
        let c = config(&[("max_request_body", "100")]);
        assert!(check_announced_length(&c, Some(100), PATH).is_ok());
        assert!(check_announced_length(&c, None, PATH).is_ok());
        let refused = check_announced_length(&c, Some(101), PATH).unwrap_err();
        assert_eq!(refused.status(), 413);
        let message = refused.body()["message"].as_str().unwrap().to_string();
        assert!(message.starts_with("413 Request Entity Too Large - "));
        assert!(message.contains("at most 100 bytes"), "{message}");
        assert!(message.contains(&format!("POST {PATH}")), "{message}");
        assert!(message.contains("upload session"), "{message}");
    }

    #[test]
    fn without_a_declared_cap_any_length_passes() {
        let c = config(&[]);
        assert!(check_announced_length(&c, Some(u64::MAX / 2), PATH).is_ok());
    }

    #[test]
    fn a_file_over_the_maximum_file_size_keeps_the_plain_413() {
        let c = config(&[("max_request_body", "100"), ("max_file_size", "1000")]);
        assert!(check_announced_length(&c, Some(500), PATH).is_err());
        assert!(check_announced_length(&c, Some(1001), PATH).is_ok());
    }

    #[test]
    fn a_streamed_body_crossing_the_cap_fails_and_is_explained() {
        let c = config(&[("max_request_body", "10")]);
        let mut chunks = VecDeque::from([vec![0u8; 6], vec![0u8; 6]]);
        let mut body = CappedBody::new(&c, &mut chunks, PATH);
        let failure = read_all(&mut body).unwrap_err();
        let explained = body.explain(UploadError::ClientGone(failure));
        assert_eq!(explained.status(), 413);
        assert!(explained.to_string().contains("upload session"));
    }

    #[test]
    fn a_body_up_to_the_cap_reads_whole() {
        let c = config(&[("max_request_body", "12")]);
        let mut chunks = VecDeque::from([vec![0u8; 6], vec![0u8; 6]]);
        let mut body = CappedBody::new(&c, &mut chunks, PATH);
        assert_eq!(read_all(&mut body), Ok(12));
        let other = body.explain(UploadError::LengthMismatch);
        assert_eq!(other.status(), 400, "other failures keep their answer");
    }

    #[test]
    fn a_body_cut_by_the_host_at_the_cap_is_the_same_refusal() {
        let c = config(&[("max_request_body", "10")]);
        let mut cut = CutBody(VecDeque::from([vec![0u8; 10]]));
        let mut body = CappedBody::new(&c, &mut cut, PATH);
        let failure = read_all(&mut body).unwrap_err();
        assert_eq!(body.explain(UploadError::ClientGone(failure)).status(), 413);
    }

    #[test]
    fn a_body_cut_before_the_cap_is_a_cut_body() {
        let c = config(&[("max_request_body", "10")]);
        let mut cut = CutBody(VecDeque::from([vec![0u8; 4]]));
        let mut body = CappedBody::new(&c, &mut cut, PATH);
        let failure = read_all(&mut body).unwrap_err();
        assert_eq!(body.explain(UploadError::ClientGone(failure)).status(), 400);
    }

    #[test]
    fn auto_redirects_only_files_over_the_response_cap() {
        let auto = config(&[("download_mode", "auto"), ("max_response_body", "100")]);
        assert!(!redirects(&auto, 100));
        assert!(redirects(&auto, 101));
        let auto_without_cap = config(&[("download_mode", "auto")]);
        assert!(!redirects(&auto_without_cap, u64::MAX));
        assert!(redirects(&config(&[("download_mode", "redirect")]), 1));
        assert!(!redirects(&config(&[("max_response_body", "1")]), 100));
    }

    mod through_the_router {
        use crate::http::Method;
        use crate::testing::TestRegistry;

        fn registry(variables: &[(&str, &str)]) -> (TestRegistry, String) {
            let r = TestRegistry::with_variables(variables);
            let id = r.create_project("acme", "tools", "private");
            let url = r.generic(id, "tool/1.0/big.bin");
            (r, url)
        }

        #[test]
        fn a_put_announced_over_the_cap_is_refused_before_its_body_is_stored() {
            let (r, url) = registry(&[("max_request_body", "10")]);
            let admin = r.admin();
            let mut headers = admin.headers();
            headers.push(("content-length", "11"));
            let reply = r.send(Method::Put, &url, &headers, &[7u8; 11]);
            assert_eq!(reply.status, 413);
            let message = reply.json()["message"].as_str().unwrap().to_string();
            assert!(message.contains(&format!("POST {url}")), "{message}");
            assert_eq!(reply.counts.s3_requests(), 0, "nothing was sent to S3");
            assert!(r.s3.objects.borrow().is_empty());
        }

        #[test]
        fn a_streamed_put_crossing_the_cap_is_refused_and_leaves_nothing() {
            let (r, url) = registry(&[("max_request_body", "10")]);
            let reply = r.put_bytes(&url, &r.admin(), &[7u8; 11]);
            assert_eq!(reply.status, 413);
            assert!(reply.json()["message"]
                .as_str()
                .unwrap()
                .contains("upload session"));
            assert!(r.s3.objects.borrow().is_empty());
            let download = r.get(&url, &r.admin());
            assert_eq!(download.status, 404, "nothing was recorded");
        }

        #[test]
        fn a_put_within_the_cap_publishes() {
            let (r, url) = registry(&[("max_request_body", "10")]);
            assert_eq!(r.put_bytes(&url, &r.admin(), &[7u8; 10]).status, 201);
        }

        #[test]
        fn auto_proxies_small_files_and_redirects_large_ones_with_their_checksum() {
            let (r, small) = registry(&[("download_mode", "auto"), ("max_response_body", "10")]);
            let large = small.replace("big.bin", "large.bin");
            assert_eq!(r.put_bytes(&small, &r.admin(), &[1u8; 10]).status, 201);
            assert_eq!(r.put_bytes(&large, &r.admin(), &[2u8; 11]).status, 201);

            let proxied = r.get(&small, &r.admin());
            assert_eq!(proxied.status, 200);
            assert_eq!(proxied.body, vec![1u8; 10]);

            let redirected = r.get(&large, &r.admin());
            assert_eq!(redirected.status, 302);
            let mut sums = crate::checksum::Checksums::default();
            sums.update(&[2u8; 11]);
            let sha256 = sums.finish().sha256;
            assert_eq!(
                redirected.header("x-checksum-sha256"),
                Some(sha256.as_str())
            );
            let etag = format!("\"{sha256}\"");
            assert_eq!(redirected.header("etag"), Some(etag.as_str()));
            let location = url::Url::parse(redirected.header("location").unwrap()).unwrap();
            let query: Vec<(String, String)> = location.query_pairs().into_owned().collect();
            let value = |name: &str| {
                query
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(
                value("response-content-type"),
                Some("application/octet-stream")
            );
            assert!(value("response-content-disposition")
                .unwrap()
                .contains("filename=\"large.bin\""));
        }
    }
}
