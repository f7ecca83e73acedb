//! The limits a hosted Spin platform puts on each request, as genreg
//! enforces them (`--max-request-body`, `--max-response-body`,
//! `--request-timeout`, `--instance-memory`, or all four with `--hosted`),
//! and the answer a request over one of them gets.
//!
//! Fermyon Wasm Functions and Akamai Functions document the limits (10 MiB
//! request and response bodies, 30 s per request, 128 MiB per instance) but
//! not what a client sees beyond them; genreg answers as an HTTP gateway
//! does: 413 for a request body over the cap, 502 for a response over it
//! (or a cut connection once its head is sent), 504 for a request that runs
//! too long (its instance is stopped), 500 for an instance out of memory.
//! Every answer is GitLab-shaped JSON naming the limit:
//! `{"message": "...", "limit": "max_request_body"}`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// A limit a request went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// The request body is larger than this many bytes.
    RequestBody(u64),
    /// The response body is larger than this many bytes.
    ResponseBody(u64),
    /// The request ran longer than this.
    RequestTimeout(Duration),
    /// The instance needed more memory than this many bytes.
    InstanceMemory(usize),
}

impl Exceeded {
    pub fn status(self) -> StatusCode {
        match self {
            Exceeded::RequestBody(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Exceeded::ResponseBody(_) => StatusCode::BAD_GATEWAY,
            Exceeded::RequestTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Exceeded::InstanceMemory(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The limit's name, as the `genreg up` flag (without dashes) and the
    /// component variable spell it.
    pub fn name(self) -> &'static str {
        match self {
            Exceeded::RequestBody(_) => "max_request_body",
            Exceeded::ResponseBody(_) => "max_response_body",
            Exceeded::RequestTimeout(_) => "request_timeout",
            Exceeded::InstanceMemory(_) => "instance_memory",
        }
    }

    fn message(self) -> String {
        match self {
            Exceeded::RequestBody(bytes) => format!(
                "413 Request Entity Too Large - the request body is larger than this host \
                 accepts ({bytes} bytes)"
            ),
            Exceeded::ResponseBody(bytes) => format!(
                "502 Bad Gateway - the response body is larger than this host sends \
                 ({bytes} bytes)"
            ),
            Exceeded::RequestTimeout(limit) => format!(
                "504 Gateway Timeout - the request ran longer than this host allows \
                 ({} s); it was stopped",
                limit.as_secs_f64()
            ),
            Exceeded::InstanceMemory(bytes) => format!(
                "500 Internal Server Error - the request needed more memory than this host \
                 gives an instance ({bytes} bytes)"
            ),
        }
    }

    /// The host's answer.
    pub fn response(self) -> Response<HyperOutgoingBody> {
        let body = serde_json::json!({ "message": self.message(), "limit": self.name() });
        let body = Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed_unsync();
        let mut response = Response::new(body);
        *response.status_mut() = self.status();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

/// The `Content-Length` of a request or response, when valid.
pub fn announced_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A request body counted against the host's cap. The guest gets at most
/// `limit` bytes; the read after that fails. A body announced larger fails
/// at its first read, before any byte is taken from the client. Either way
/// the request is marked over the cap ([`RequestBodyCap::exceeded`]).
#[derive(Debug)]
pub struct RequestBodyCap {
    limit: Option<u64>,
    received: u64,
    exceeded: Arc<AtomicBool>,
}

impl RequestBodyCap {
    pub fn new(limit: Option<u64>, announced: Option<u64>) -> Self {
        let over = matches!((limit, announced), (Some(limit), Some(length)) if length > limit);
        RequestBodyCap {
            limit,
            received: 0,
            exceeded: Arc::new(AtomicBool::new(over)),
        }
    }

    /// The limit, once the request went over it; shared with the body.
    pub fn exceeded(&self) -> ExceededFlag {
        ExceededFlag {
            limit: self.limit,
            flag: self.exceeded.clone(),
        }
    }

    /// The error for a read once the body is over the cap.
    pub fn refusal(&self) -> Option<wasmtime_wasi_http::Error> {
        self.exceeded
            .load(Ordering::Relaxed)
            .then_some(wasmtime_wasi_http::Error::HttpRequestBodySize(self.limit))
    }

    /// Counts `frame`; the part of it beyond the cap is dropped, and an
    /// empty remainder is the refusal itself.
    pub fn admit(
        &mut self,
        frame: Frame<Bytes>,
    ) -> Result<Frame<Bytes>, wasmtime_wasi_http::Error> {
        let (Some(limit), Some(data)) = (self.limit, frame.data_ref()) else {
            return Ok(frame);
        };
        let room = limit - self.received;
        let len = data.len() as u64;
        if len <= room {
            self.received += len;
            return Ok(frame);
        }
        self.exceeded.store(true, Ordering::Relaxed);
        if room == 0 {
            return Err(wasmtime_wasi_http::Error::HttpRequestBodySize(Some(limit)));
        }
        let kept = data.slice(..room as usize);
        self.received = limit;
        Ok(Frame::data(kept))
    }
}

/// Whether a request went over its body cap, seen from the handler.
#[derive(Clone, Debug)]
pub struct ExceededFlag {
    limit: Option<u64>,
    flag: Arc<AtomicBool>,
}

impl ExceededFlag {
    pub fn get(&self) -> Option<Exceeded> {
        match self.limit {
            Some(limit) if self.flag.load(Ordering::Relaxed) => Some(Exceeded::RequestBody(limit)),
            _ => None,
        }
    }
}

/// A response body counted against the host's cap.
#[derive(Debug, Default)]
pub struct ResponseBodyCap {
    limit: Option<u64>,
    sent: u64,
}

impl ResponseBodyCap {
    pub fn new(limit: Option<u64>) -> Self {
        ResponseBodyCap { limit, sent: 0 }
    }

    /// Counts `frame`; `Err` once the body went over the cap (the
    /// connection is then cut: its head is already sent).
    pub fn admit(&mut self, frame: &Frame<Bytes>) -> Result<(), wasmtime_wasi_http::Error> {
        let Some(data) = frame.data_ref() else {
            return Ok(());
        };
        self.sent += data.len() as u64;
        match self.limit {
            Some(limit) if self.sent > limit => {
                Err(wasmtime_wasi_http::Error::HttpResponseBodySize(Some(limit)))
            }
            _ => Ok(()),
        }
    }
}

/// Whether a guest's response must be refused before it is sent: its
/// announced length is over the cap (a `HEAD` answer sends no body).
pub fn refuse_response(
    limit: Option<u64>,
    head_request: bool,
    headers: &HeaderMap,
) -> Option<Exceeded> {
    let limit = limit?;
    let over = !head_request && announced_length(headers).is_some_and(|length| length > limit);
    over.then_some(Exceeded::ResponseBody(limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(frame: Result<Frame<Bytes>, wasmtime_wasi_http::Error>) -> usize {
        frame.unwrap().into_data().unwrap().len()
    }

    #[test]
    fn a_request_body_is_cut_at_the_cap_and_marked_over_it() {
        let mut cap = RequestBodyCap::new(Some(10), None);
        let flag = cap.exceeded();
        assert_eq!(data(cap.admit(Frame::data(Bytes::from(vec![0; 6])))), 6);
        assert_eq!(flag.get(), None);
        assert_eq!(data(cap.admit(Frame::data(Bytes::from(vec![0; 6])))), 4);
        assert_eq!(flag.get(), Some(Exceeded::RequestBody(10)));
        assert!(cap.refusal().is_some(), "the next read fails");
        assert!(cap.admit(Frame::data(Bytes::from(vec![0; 1]))).is_err());
    }

    #[test]
    fn a_request_body_up_to_the_cap_passes_whole() {
        let mut cap = RequestBodyCap::new(Some(10), Some(10));
        assert_eq!(data(cap.admit(Frame::data(Bytes::from(vec![0; 10])))), 10);
        assert_eq!(cap.exceeded().get(), None);
        assert!(cap.refusal().is_none());
    }

    #[test]
    fn a_request_announced_over_the_cap_is_refused_before_reading() {
        let cap = RequestBodyCap::new(Some(10), Some(11));
        assert_eq!(cap.exceeded().get(), Some(Exceeded::RequestBody(10)));
        assert!(cap.refusal().is_some());
        let unlimited = RequestBodyCap::new(None, None);
        assert!(unlimited.refusal().is_none());
    }

    #[test]
    fn a_response_body_over_the_cap_fails_the_frame_that_crosses_it() {
        let mut cap = ResponseBodyCap::new(Some(10));
        assert!(cap.admit(&Frame::data(Bytes::from(vec![0; 10]))).is_ok());
        assert!(cap.admit(&Frame::data(Bytes::from(vec![0; 1]))).is_err());
        let mut unlimited = ResponseBodyCap::default();
        assert!(unlimited
            .admit(&Frame::data(Bytes::from(vec![0; 1 << 20])))
            .is_ok());
    }

    #[test]
    fn a_response_announced_over_the_cap_is_refused_unless_it_answers_a_head() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("11"));
        assert_eq!(
            refuse_response(Some(10), false, &headers),
            Some(Exceeded::ResponseBody(10))
        );
        assert_eq!(refuse_response(Some(10), true, &headers), None);
        assert_eq!(refuse_response(Some(11), false, &headers), None);
        assert_eq!(refuse_response(None, false, &headers), None);
    }

    #[test]
    fn answers_say_which_limit_was_exceeded() {
        let cases = [
            (Exceeded::RequestBody(10), 413, "max_request_body"),
            (Exceeded::ResponseBody(10), 502, "max_response_body"),
            (
                Exceeded::RequestTimeout(Duration::from_secs(30)),
                504,
                "request_timeout",
            ),
            (Exceeded::InstanceMemory(1 << 27), 500, "instance_memory"),
        ];
        for (exceeded, status, name) in cases {
            assert_eq!(exceeded.status().as_u16(), status);
            assert_eq!(exceeded.name(), name);
            let message = exceeded.message();
            assert!(message.starts_with(&status.to_string()), "{message}");
        }
    }
}
