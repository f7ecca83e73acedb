//! [`ObjectStore`] over `wasi:http/outgoing-handler`: each call is one
//! presigned HTTP request to the S3 endpoint, bodies streamed both ways.
//!
//! Every request carries the configured timeouts as `request-options`, so
//! the host (Spin, or genreg through wasmtime-wasi-http) gives up on an S3
//! that does not connect, does not answer, or stops sending. The host's
//! first-byte clock starts with the request, though, and a PUT's body is the
//! client's upload streaming through: a slow client is no stalled S3. So a
//! PUT gets a long host limit, and the component times the parts only S3
//! controls itself: a body S3 stops accepting (between-bytes timeout) and
//! the wait for the answer once the body is out (first-byte timeout).

use std::time::Duration;

use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, RequestOptions, Scheme,
};
use url::Url;
use wasi::clocks::monotonic_clock;
use wasi::io::streams::OutputStream;

use super::io::{
    describe, flush_within, nanos, ready_within, write_within, IncomingBytes, WriteError,
};
use crate::blob::store::{ObjectBody, ObjectStore, PutRequest, StoreError};
use crate::config::S3Timeouts;
use crate::http::ByteSource;

/// The host's first-byte limit for a PUT, which covers the whole upload of
/// the body from the client (see the module documentation).
const PUT_HOST_FIRST_BYTE: Duration = Duration::from_secs(24 * 3600);

/// The body of an S3 answer being read; what [`WasiStore::get`] returns as
/// an object's source, so the response writer can splice it.
pub type S3AnswerBody = IncomingBytes<IncomingResponse>;

/// The S3 client of the component. Stateless but for its settings: one per
/// request.
pub struct WasiStore {
    pub timeouts: S3Timeouts,
}

/// The request options every S3 request carries. Hosts that cannot apply
/// one keep their default; the component's own limits still hold.
fn request_options(timeouts: &S3Timeouts, method: &Method) -> RequestOptions {
    let first_byte = match method {
        Method::Put => PUT_HOST_FIRST_BYTE,
        _ => timeouts.first_byte,
    };
    let options = RequestOptions::new();
    let _ = options.set_connect_timeout(Some(nanos(timeouts.connect)));
    let _ = options.set_first_byte_timeout(Some(nanos(first_byte)));
    let _ = options.set_between_bytes_timeout(Some(nanos(timeouts.between_bytes)));
    options
}

/// A host error, sorted into "S3 did not answer in time" and the rest.
fn request_failed(error: ErrorCode) -> StoreError {
    match error {
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => StoreError::TimedOut(format!("S3 request: {error:?}")),
        other => StoreError::Failed(format!("S3 request failed: {other:?}")),
    }
}

/// A request whose body may still be written, and its pending answer.
struct InFlight {
    stream: Option<OutputStream>,
    body: Option<OutgoingBody>,
    response: FutureIncomingResponse,
    timeouts: S3Timeouts,
}

fn start(
    timeouts: &S3Timeouts,
    method: Method,
    url: &Url,
    headers: &[(&str, String)],
) -> Result<InFlight, StoreError> {
    let options = request_options(timeouts, &method);
    let sent = send(method, url, headers, options).map_err(|e| match e {
        SendError::Build(what) => StoreError::Failed(what),
        SendError::Host(code) => request_failed(code),
    })?;
    Ok(InFlight {
        stream: Some(sent.stream),
        body: Some(sent.body),
        response: sent.response,
        timeouts: *timeouts,
    })
}

/// A request handed to the host: its body open for writing, its answer
/// pending. The fields drop in this order, the body's stream before the
/// body (dropping a body whose stream is alive traps), so keep it whole
/// until its parts are moved out.
pub(super) struct Sent {
    pub stream: OutputStream,
    pub body: OutgoingBody,
    pub response: FutureIncomingResponse,
}

pub(super) enum SendError {
    /// The request could not be built.
    Build(String),
    /// The host refused to send it.
    Host(ErrorCode),
}

/// Builds a request to `url` with `headers` and hands it to the host with
/// `options`; the caller writes the body.
pub(super) fn send(
    method: Method,
    url: &Url,
    headers: &[(&str, String)],
    options: RequestOptions,
) -> Result<Sent, SendError> {
    let fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
    let fields =
        Fields::from_list(&fields).map_err(|e| SendError::Build(format!("headers: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    let scheme = match url.scheme() {
        "https" => Scheme::Https,
        _ => Scheme::Http,
    };
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let path_with_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let refused = |what: &str| SendError::Build(format!("could not set {what}"));
    request
        .set_method(&method)
        .map_err(|()| refused("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| refused("scheme"))?;
    request
        .set_authority(Some(&authority))
        .map_err(|()| refused("authority"))?;
    request
        .set_path_with_query(Some(&path_with_query))
        .map_err(|()| refused("path"))?;
    let body = request.body().map_err(|()| refused("body"))?;
    let stream = body.write().map_err(|()| refused("body stream"))?;
    let response = outgoing_handler::handle(request, Some(options)).map_err(SendError::Host)?;
    Ok(Sent {
        stream,
        body,
        response,
    })
}

impl InFlight {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let stream = self.stream.as_ref().expect("body is open while writing");
        match write_within(stream, bytes, self.timeouts.between_bytes) {
            Ok(()) => Ok(()),
            Err(WriteError::Stalled) => Err(self.stalled()),
            Err(WriteError::Stream(e)) => Err(self.failure(describe(e))),
        }
    }

    fn stalled(&self) -> StoreError {
        StoreError::TimedOut(format!(
            "S3 accepted no byte of the body for {:?}",
            self.timeouts.between_bytes
        ))
    }

    /// Ends the body and waits for the answer, at most the first-byte timeout.
    fn finish(mut self) -> Result<IncomingResponse, StoreError> {
        if let Some(stream) = self.stream.take() {
            // Once the last byte of a body with Content-Length is out, the
            // host may close the stream: a failed flush is no failure, the
            // answer below says how the request went. A stalled one is.
            if let Err(WriteError::Stalled) = flush_within(&stream, self.timeouts.between_bytes) {
                return Err(self.stalled());
            }
        }
        if let Some(body) = self.body.take() {
            OutgoingBody::finish(body, None).map_err(|e| StoreError::Failed(format!("{e:?}")))?;
        }
        self.answer()
    }

    /// The answer, once S3 gives it within the first-byte timeout.
    fn answer(&self) -> Result<IncomingResponse, StoreError> {
        let limit = self.timeouts.first_byte;
        if !ready_within(&self.response.subscribe(), limit) {
            return Err(StoreError::TimedOut(format!(
                "S3 did not answer within {limit:?}"
            )));
        }
        match self.response.get() {
            Some(Ok(Ok(response))) => Ok(response),
            Some(Ok(Err(e))) => Err(request_failed(e)),
            _ => Err(StoreError::Failed("S3 response was lost".into())),
        }
    }

    /// When writing fails, S3 has answered early (with an error) or the
    /// connection broke; the pending answer tells which.
    fn failure(&self, write_error: String) -> StoreError {
        match self.answer() {
            Ok(response) => {
                let status = response.status();
                let detail = read_answer(response).map(|a| a.body).unwrap_or_default();
                StoreError::Failed(format!(
                    "S3 answered {status} while the body was sent: {detail}"
                ))
            }
            Err(StoreError::Failed(_)) => {
                StoreError::Failed(format!("sending to S3: {write_error}"))
            }
            Err(e) => e,
        }
    }
}

/// A whole answer, read into memory (only for small S3 answers).
struct Answer {
    status: u16,
    etag: Option<String>,
    body: String,
}

fn read_answer(response: IncomingResponse) -> Result<Answer, StoreError> {
    let status = response.status();
    let etag = header(&response, "etag");
    let body = response
        .consume()
        .map_err(|()| StoreError::Failed("S3 answer body already taken".into()))?;
    let mut bytes = IncomingBytes::new(body, ()).map_err(StoreError::Failed)?;
    let mut text = Vec::new();
    // Cap what we keep of an answer: S3's XML answers are small.
    while let Some(chunk) = bytes.next_chunk().map_err(StoreError::Failed)? {
        if text.len() < 64 * 1024 {
            text.extend_from_slice(&chunk);
        }
    }
    Ok(Answer {
        status,
        etag,
        body: String::from_utf8_lossy(&text).into_owned(),
    })
}

fn header(response: &IncomingResponse, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .into_iter()
        .next()
        .and_then(|v| String::from_utf8(v).ok())
}

fn call(
    timeouts: &S3Timeouts,
    method: Method,
    url: &Url,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<Answer, StoreError> {
    let mut request = start(timeouts, method, url, headers)?;
    if !body.is_empty() {
        request.write(body)?;
    }
    read_answer(request.finish()?)
}

fn expect_success(what: &str, answer: &Answer) -> Result<(), StoreError> {
    // S3 may report a failed CompleteMultipartUpload with 200 and an <Error> body.
    if (200..300).contains(&answer.status) && !answer.body.contains("<Error>") {
        Ok(())
    } else {
        Err(StoreError::Failed(format!(
            "{what}: S3 answered {}: {}",
            answer.status,
            answer.body.chars().take(300).collect::<String>()
        )))
    }
}

struct WasiPut {
    request: InFlight,
}

impl PutRequest for WasiPut {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.request.write(bytes)
    }

    fn finish(self: Box<Self>) -> Result<String, StoreError> {
        let answer = read_answer(self.request.finish()?)?;
        expect_success("PUT", &answer)?;
        Ok(answer.etag.unwrap_or_default())
    }

    fn cancel(self: Box<Self>) {
        // Dropping the body without finishing it tells the host the body is
        // incomplete, so the request fails instead of storing a short object.
        drop(self);
    }
}

impl ObjectStore for WasiStore {
    fn start_put(&self, url: &Url, length: u64) -> Result<Box<dyn PutRequest + '_>, StoreError> {
        let headers = [("content-length", length.to_string())];
        let request = start(&self.timeouts, Method::Put, url, &headers)?;
        Ok(Box::new(WasiPut { request }))
    }

    fn create_multipart(&self, url: &Url) -> Result<String, StoreError> {
        let headers = [("content-length", "0".to_string())];
        let answer = call(&self.timeouts, Method::Post, url, &headers, &[])?;
        expect_success("CreateMultipartUpload", &answer)?;
        crate::blob::signer::parse_upload_id(&answer.body).ok_or_else(|| {
            StoreError::Failed("CreateMultipartUpload answer has no UploadId".into())
        })
    }

    fn complete_multipart(&self, url: &Url, xml: String) -> Result<(), StoreError> {
        let headers = [
            ("content-length", xml.len().to_string()),
            ("content-type", "application/xml".to_string()),
        ];
        let answer = call(&self.timeouts, Method::Post, url, &headers, xml.as_bytes())?;
        expect_success("CompleteMultipartUpload", &answer)
    }

    fn delete(&self, url: &Url) -> Result<(), StoreError> {
        let answer = call(&self.timeouts, Method::Delete, url, &[], &[])?;
        if answer.status == 404 {
            return Ok(());
        }
        expect_success("DELETE", &answer)
    }

    fn get(&self, url: &Url, range: Option<(u64, u64)>) -> Result<ObjectBody, StoreError> {
        let headers: Vec<(&str, String)> = range
            .map(|(start, end)| ("range", format!("bytes={start}-{end}")))
            .into_iter()
            .collect();
        let response = start(&self.timeouts, Method::Get, url, &headers)?.finish()?;
        let status = response.status();
        if !(200..300).contains(&status) {
            let answer = read_answer(response)?;
            return Err(StoreError::Failed(format!(
                "GET: S3 answered {status}: {}",
                answer.body
            )));
        }
        let length = header(&response, "content-length")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| StoreError::Failed("GET: S3 answer has no Content-Length".into()))?;
        let body = response
            .consume()
            .map_err(|()| StoreError::Failed("S3 answer body already taken".into()))?;
        Ok(ObjectBody {
            length,
            source: Box::new(IncomingBytes::new(body, response).map_err(StoreError::Failed)?),
        })
    }

    fn pause(&self, duration: Duration) {
        monotonic_clock::subscribe_duration(nanos(duration)).block();
    }
}
