//! [`ObjectStore`] over `wasi:http/outgoing-handler`: each call is one
//! presigned HTTP request to the S3 endpoint, bodies streamed both ways.

use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    Fields, FutureIncomingResponse, IncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use url::Url;
use wasi::io::streams::OutputStream;

use super::store::{ObjectBody, ObjectStore, PutRequest, StoreError};
use crate::http::ByteSource;
use crate::wasi_io::{describe, flush, write_all, IncomingBytes};

/// The S3 client of the component. Stateless: one per request.
pub struct WasiStore;

/// A request whose body may still be written, and its pending answer.
struct InFlight {
    stream: Option<OutputStream>,
    body: Option<OutgoingBody>,
    response: FutureIncomingResponse,
}

fn start(method: Method, url: &Url, headers: &[(&str, String)]) -> Result<InFlight, StoreError> {
    let fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&fields).map_err(|e| StoreError(format!("headers: {e:?}")))?;
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
    let refused = |what: &str| StoreError(format!("could not set {what}"));
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
    let response = outgoing_handler::handle(request, None)
        .map_err(|e| StoreError(format!("S3 request refused: {e:?}")))?;
    Ok(InFlight {
        stream: Some(stream),
        body: Some(body),
        response,
    })
}

impl InFlight {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let stream = self.stream.as_ref().expect("body is open while writing");
        write_all(stream, bytes).map_err(|e| self.failure(describe(e)))
    }

    /// Ends the body and waits for the answer.
    fn finish(mut self) -> Result<IncomingResponse, StoreError> {
        if let Some(stream) = self.stream.take() {
            // Once the last byte of a body with Content-Length is out, the
            // host may close the stream: a failed flush is no failure, the
            // answer below says how the request went.
            let _ = flush(&stream);
        }
        if let Some(body) = self.body.take() {
            OutgoingBody::finish(body, None).map_err(|e| StoreError(format!("{e:?}")))?;
        }
        self.response.subscribe().block();
        match self.response.get() {
            Some(Ok(Ok(response))) => Ok(response),
            Some(Ok(Err(e))) => Err(StoreError(format!("S3 request failed: {e:?}"))),
            _ => Err(StoreError("S3 response was lost".into())),
        }
    }

    /// When writing fails, S3 has answered early (with an error) or the
    /// connection broke; the pending answer tells which.
    fn failure(&self, write_error: String) -> StoreError {
        self.response.subscribe().block();
        match self.response.get() {
            Some(Ok(Ok(response))) => {
                let status = response.status();
                let detail = read_answer(response).map(|a| a.body).unwrap_or_default();
                StoreError(format!(
                    "S3 answered {status} while the body was sent: {detail}"
                ))
            }
            Some(Ok(Err(e))) => StoreError(format!("S3 request failed: {e:?}")),
            _ => StoreError(format!("sending to S3: {write_error}")),
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
        .map_err(|()| StoreError("S3 answer body already taken".into()))?;
    let mut bytes = IncomingBytes::new(body, ()).map_err(StoreError)?;
    let mut text = Vec::new();
    // Cap what we keep of an answer: S3's XML answers are small.
    while let Some(chunk) = bytes.next_chunk().map_err(StoreError)? {
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
    method: Method,
    url: &Url,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<Answer, StoreError> {
    let mut request = start(method, url, headers)?;
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
        Err(StoreError(format!(
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
        let request = start(Method::Put, url, &[("content-length", length.to_string())])?;
        Ok(Box::new(WasiPut { request }))
    }

    fn create_multipart(&self, url: &Url) -> Result<String, StoreError> {
        let answer = call(Method::Post, url, &[("content-length", "0".into())], &[])?;
        expect_success("CreateMultipartUpload", &answer)?;
        super::requests::parse_upload_id(&answer.body)
            .ok_or_else(|| StoreError("CreateMultipartUpload answer has no UploadId".into()))
    }

    fn complete_multipart(&self, url: &Url, xml: String) -> Result<(), StoreError> {
        let headers = [
            ("content-length", xml.len().to_string()),
            ("content-type", "application/xml".to_string()),
        ];
        let answer = call(Method::Post, url, &headers, xml.as_bytes())?;
        expect_success("CompleteMultipartUpload", &answer)
    }

    fn delete(&self, url: &Url) -> Result<(), StoreError> {
        let answer = call(Method::Delete, url, &[], &[])?;
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
        let response = start(Method::Get, url, &headers)?.finish()?;
        let status = response.status();
        if !(200..300).contains(&status) {
            let answer = read_answer(response)?;
            return Err(StoreError(format!(
                "GET: S3 answered {status}: {}",
                answer.body
            )));
        }
        let length = header(&response, "content-length")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| StoreError("GET: S3 answer has no Content-Length".into()))?;
        let body = response
            .consume()
            .map_err(|()| StoreError("S3 answer body already taken".into()))?;
        Ok(ObjectBody {
            length,
            source: Box::new(IncomingBytes::new(body, response).map_err(StoreError)?),
        })
    }
}
