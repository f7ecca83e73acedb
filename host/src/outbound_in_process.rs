//! The component's requests to the embedded S3 server, answered in this
//! process.
//!
//! The embedded server runs in the same process as the component, so a
//! request to it over loopback TCP would write and parse HTTP/1 twice and
//! copy each body through the kernel both ways, for a server a function
//! call away. Instead a request to the server's origin is handed to its S3
//! service as the server receives requests (an origin-form URI, and the
//! `Host` header wasmtime-wasi-http sets from the authority), and the
//! service's answer is the response, its body streamed from the files. The
//! service checks all it checks over TCP (the signature, the body's length
//! and digests). Everyone else (presigned URLs, the web interface's parts,
//! `genreg gc`, another host) still reaches the server over TCP.

use http_body::Body as _;
use http_body_util::BodyExt as _;
use wasmtime_wasi_http::{Error, WasiBody};

use super::Origin;

/// The embedded S3 server's service, and the origin the component reaches
/// it at.
#[derive(Clone)]
pub struct InProcessS3 {
    origin: Origin,
    service: s3s::service::S3Service,
}

impl InProcessS3 {
    /// Answers requests to `endpoint` (the server's `http://` URL) with
    /// `service`; `None` when the URL does not parse.
    pub fn new(endpoint: &str, service: s3s::service::S3Service) -> Option<InProcessS3> {
        Some(InProcessS3 {
            origin: Origin::parse(endpoint)?,
            service,
        })
    }

    /// Whether `uri` is addressed to the embedded server.
    pub fn serves(&self, uri: &http::Uri) -> bool {
        Origin::of_uri(uri).is_some_and(|o| o == self.origin)
    }

    /// Answers `request` (a `PUT`'s whole body is taken before the head),
    /// the body streamed from the files.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let is_head = request.method() == http::Method::HEAD;
        let request = as_received(request)?;
        let response = self
            .service
            .call(request)
            .await
            .map_err(|e| Error::InternalError(Some(format!("embedded S3 server: {e:?}"))))?;
        let (mut parts, body) = response.into_parts();
        // What hyper's server adds on the wire for a body of known size.
        if gets_content_length(is_head, parts.status)
            && !parts.headers.contains_key(http::header::CONTENT_LENGTH)
        {
            if let Some(length) = body.size_hint().exact() {
                parts
                    .headers
                    .insert(http::header::CONTENT_LENGTH, length.into());
            }
        }
        let body = body
            .map_err(|e| Error::InternalError(Some(format!("embedded S3 server: {e}"))))
            .boxed_unsync();
        Ok(http::Response::from_parts(parts, body))
    }
}

/// Whether hyper's server would send a `Content-Length` for an answer's
/// body of known size: not for a `HEAD` (the service gives the object's),
/// nor for a status that has no body (1xx, 204, 304).
fn gets_content_length(is_head: bool, status: http::StatusCode) -> bool {
    !is_head
        && !status.is_informational()
        && !matches!(
            status,
            http::StatusCode::NO_CONTENT | http::StatusCode::NOT_MODIFIED
        )
}

/// `request` as the server would have read it from a connection: its URI in
/// origin form (path and query) and a `Host` header naming the authority.
fn as_received(request: http::Request<WasiBody>) -> Result<s3s::HttpRequest, Error> {
    let (mut parts, body) = request.into_parts();
    if !parts.headers.contains_key(http::header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            let host = http::HeaderValue::from_str(authority.as_str())
                .map_err(|_| Error::HttpRequestUriInvalid)?;
            parts.headers.insert(http::header::HOST, host);
        }
    }
    parts.uri = match parts.uri.path_and_query() {
        Some(path) => http::Uri::from(path.clone()),
        None => http::Uri::from_static("/"),
    };
    Ok(http::Request::from_parts(
        parts,
        s3s::Body::http_body_unsync(body),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{Full, StreamBody};
    use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};
    use std::time::Duration;

    const TIMEOUT: Duration = Duration::from_secs(10);

    /// The embedded server with its TCP listener stopped: what answers
    /// below answers in process.
    async fn server_without_its_listener(
        dir: &std::path::Path,
    ) -> (InProcessS3, Bucket, Credentials) {
        let embedded = crate::s3::start(dir, None, crate::s3::BrowserOrigins::none())
            .await
            .unwrap();
        let endpoint = embedded.endpoint();
        let in_process = InProcessS3::new(&endpoint, embedded.service).unwrap();
        embedded.server.shutdown().await;
        let bucket = Bucket::new(
            endpoint.parse().unwrap(),
            UrlStyle::Path,
            crate::s3::BUCKET,
            crate::s3::REGION,
        )
        .unwrap();
        let credentials = Credentials::new(
            embedded.credentials.access_key_id,
            embedded.credentials.secret_access_key,
        );
        (in_process, bucket, credentials)
    }

    fn body(bytes: Vec<u8>) -> WasiBody {
        Full::new(Bytes::from(bytes))
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    fn request(method: http::Method, url: &url::Url, content: Vec<u8>) -> http::Request<WasiBody> {
        http::Request::builder()
            .method(method)
            .uri(url.as_str())
            .header(http::header::CONTENT_LENGTH, content.len())
            .body(body(content))
            .unwrap()
    }

    async fn send(
        s3: &InProcessS3,
        request: http::Request<WasiBody>,
    ) -> (http::StatusCode, http::HeaderMap, Vec<u8>) {
        let response = s3.send(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }

    fn content_length(headers: &http::HeaderMap) -> Option<&str> {
        headers
            .get(http::header::CONTENT_LENGTH)
            .map(|v| v.to_str().unwrap())
    }

    #[tokio::test]
    async fn signed_puts_gets_and_heads_are_answered_without_the_listener() {
        let dir = tempfile::tempdir().unwrap();
        let (s3, bucket, credentials) = server_without_its_listener(dir.path()).await;
        let expires = Duration::from_secs(60);
        // One object stored in one piece, one streamed through s3s-fs.
        for (key, size) in [("files/small", 1024), ("files/large", 300 * 1024)] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let put = bucket.put_object(Some(&credentials), key).sign(expires);
            let (status, _, answer) =
                send(&s3, request(http::Method::PUT, &put, data.clone())).await;
            assert_eq!(
                status,
                http::StatusCode::OK,
                "{key}: {}",
                String::from_utf8_lossy(&answer)
            );

            let get = bucket.get_object(Some(&credentials), key).sign(expires);
            let head = bucket.head_object(Some(&credentials), key).sign(expires);
            for (method, url) in [(http::Method::GET, get), (http::Method::HEAD, head)] {
                let (status, headers, answer) =
                    send(&s3, request(method.clone(), &url, Vec::new())).await;
                assert_eq!(status, http::StatusCode::OK, "{method} {key}");
                let length = size.to_string();
                assert_eq!(
                    content_length(&headers),
                    Some(length.as_str()),
                    "{method} {key}"
                );
                let expected: &[u8] = if method == http::Method::HEAD {
                    &[]
                } else {
                    &data
                };
                assert!(answer == expected, "{method} {key}: other bytes came back");
            }
        }
    }

    #[tokio::test]
    async fn a_request_signed_with_another_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (s3, bucket, credentials) = server_without_its_listener(dir.path()).await;
        let forged = Credentials::new(credentials.key().to_string(), "not-the-secret");
        let put = bucket
            .put_object(Some(&forged), "files/forged")
            .sign(Duration::from_secs(60));
        let (status, headers, answer) =
            send(&s3, request(http::Method::PUT, &put, b"x".to_vec())).await;
        assert_eq!(status, http::StatusCode::FORBIDDEN);
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.contains("SignatureDoesNotMatch"), "{answer}");
        assert_eq!(
            content_length(&headers),
            Some(answer.len().to_string().as_str())
        );
        let get = bucket
            .get_object(Some(&credentials), "files/forged")
            .sign(Duration::from_secs(60));
        let (status, _, _) = send(&s3, request(http::Method::GET, &get, Vec::new())).await;
        assert_eq!(
            status,
            http::StatusCode::NOT_FOUND,
            "the forged PUT stored nothing"
        );
    }

    #[tokio::test]
    async fn a_body_that_stops_coming_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let (s3, bucket, credentials) = server_without_its_listener(dir.path()).await;
        let put = bucket
            .put_object(Some(&credentials), "files/stalled")
            .sign(Duration::from_secs(60));
        // One frame of the ten bytes announced, then nothing (the sender
        // stays alive, so the body neither ends nor fails).
        let (sender, frames) =
            tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, Error>>(1);
        sender
            .send(Ok(http_body::Frame::data(Bytes::from_static(b"abc"))))
            .await
            .unwrap();
        let stalled = StreamBody::new(tokio_stream_from(frames)).boxed_unsync();
        let request = http::Request::builder()
            .method(http::Method::PUT)
            .uri(put.as_str())
            .header(http::header::CONTENT_LENGTH, 10)
            .body(stalled)
            .unwrap();
        let timeouts = super::super::Timeouts {
            connect: TIMEOUT,
            first_byte: Duration::from_millis(200),
            between_bytes: TIMEOUT,
        };
        let answer = super::super::within_timeouts(s3.send(request), timeouts).await;
        assert!(
            matches!(answer, Err(Error::ConnectionReadTimeout)),
            "{:?}",
            answer.map(|(response, _)| response.status())
        );
        drop(sender);
    }

    /// A stream of what `receiver` is sent.
    fn tokio_stream_from<T>(
        mut receiver: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_core::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
    }

    #[test]
    fn only_the_servers_origin_is_answered_in_process() {
        let service = s3s::service::S3ServiceBuilder::new(NoObjects).build();
        let s3 = InProcessS3::new("http://127.0.0.1:9000", service).unwrap();
        assert!(s3.serves(&"http://127.0.0.1:9000/genreg/files/a".parse().unwrap()));
        assert!(!s3.serves(&"http://127.0.0.1:9001/genreg/files/a".parse().unwrap()));
        assert!(!s3.serves(&"https://127.0.0.1:9000/genreg/files/a".parse().unwrap()));
        assert!(!s3.serves(&"http://localhost:9000/genreg/files/a".parse().unwrap()));
    }

    /// An S3 implementation with no operations.
    struct NoObjects;

    #[async_trait::async_trait]
    impl s3s::S3 for NoObjects {}

    #[test]
    fn only_answers_that_carry_a_body_get_a_content_length() {
        use http::StatusCode;
        for status in [
            StatusCode::OK,
            StatusCode::PARTIAL_CONTENT,
            StatusCode::FORBIDDEN,
        ] {
            assert!(gets_content_length(false, status), "{status}");
            assert!(!gets_content_length(true, status), "HEAD {status}");
        }
        for status in [
            StatusCode::CONTINUE,
            StatusCode::NO_CONTENT,
            StatusCode::NOT_MODIFIED,
        ] {
            assert!(!gets_content_length(false, status), "{status}");
        }
    }

    #[test]
    fn a_request_reaches_the_service_as_a_connection_would_carry_it() {
        let request = request(
            http::Method::GET,
            &"http://127.0.0.1:9000/genreg/files/a?x-id=GetObject"
                .parse()
                .unwrap(),
            Vec::new(),
        );
        let received = as_received(request).unwrap();
        assert_eq!(received.uri(), "/genreg/files/a?x-id=GetObject");
        assert_eq!(received.headers()[http::header::HOST], "127.0.0.1:9000");
    }
}
