//! The WASI side of a request: turn the incoming request into plain types,
//! build the per-request context from Spin's variables, key-value store and
//! outbound HTTP, and write the answer back (streaming it when it is a file).

use std::time::Duration;

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::wit::wasi::http0_2_0::types::{
    self as wasi_http, Fields, IncomingBody, Method as WasiMethod, OutgoingBody, OutgoingResponse,
};
use wasi::io::streams::OutputStream;

use super::io::{describe, flush, write_all, IncomingBytes};
use super::keyvalue::WasiKv;
use super::object_store::{S3AnswerBody, WasiStore};
use super::sha256_helper::{self, SelfRequestHelper};
use crate::api::Context;
use crate::blob::Blobs;
use crate::config::Config;
use crate::error::ApiError;
use crate::http::{Body, ByteSource, Method, Request, Response};
use crate::meta::read_ahead::ReadAhead;
use crate::router;

pub fn serve(incoming: IncomingRequest, out: ResponseOutparam) {
    let head = matches!(incoming.method(), WasiMethod::Head);
    let request = Request::new(
        method(incoming.method()),
        &incoming.path_with_query().unwrap_or_else(|| "/".into()),
        incoming.headers().entries(),
    );
    if sha256_helper::is_helper_request(&request) {
        return sha256_helper::serve(&request, incoming, out, unix_now());
    }
    let mut body = match incoming.consume() {
        Ok(body) => RequestBody::Open(body),
        Err(()) => RequestBody::Gone,
    };
    let response = match context_parts(&request) {
        Ok((config, kv)) => {
            let store = WasiStore {
                timeouts: config.s3_timeouts,
            };
            let clock = jiff::Timestamp::now;
            let secrets = config.token_secrets.clone();
            let helper = SelfRequestHelper { secrets: &secrets };
            match Blobs::new(&config, &store, &clock) {
                Ok(blobs) => {
                    // Hosted platforms cap a request's body, the helper's
                    // too: there an upload hashes everything itself.
                    let blobs = match config.host_limits.max_request_body {
                        None => blobs.with_sha256_helper(&helper),
                        Some(_) => blobs,
                    };
                    let kv = ReadAhead::new(&kv);
                    let ctx = Context {
                        config,
                        kv: &kv,
                        blobs,
                        now: clock(),
                        random: &random_bytes,
                    };
                    router::handle(&ctx, &request, &mut body)
                }
                Err(e) => ApiError::internal(e).into_response(),
            }
        }
        Err(e) => e.into_response(),
    };
    if should_drain(&request, &response) {
        body.drain_rest();
    }
    // The request body (and so the request) must outlive reading it.
    drop(body);
    drop(incoming);
    respond(out.into_inner(), response, head);
}

fn context_parts(request: &Request) -> Result<(Config, WasiKv), ApiError> {
    let mut config = Config::from_variables(|name| spin_sdk::variables::get(name).ok())?;
    config.fall_back_to_origin(request.header("spin-full-url"));
    let kv = WasiKv::open_default().map_err(ApiError::internal)?;
    Ok((config, kv))
}

pub(super) fn unix_now() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0)
}

fn random_bytes() -> [u8; 16] {
    let bytes = wasi::random::random::get_random_bytes(16);
    let mut out = [0u8; 16];
    out.copy_from_slice(&bytes[..16]);
    out
}

fn method(method: WasiMethod) -> Method {
    match method {
        WasiMethod::Get => Method::Get,
        WasiMethod::Head => Method::Head,
        WasiMethod::Put => Method::Put,
        WasiMethod::Post => Method::Post,
        WasiMethod::Delete => Method::Delete,
        WasiMethod::Patch => Method::Patch,
        WasiMethod::Options => Method::Other("OPTIONS".into()),
        WasiMethod::Connect => Method::Other("CONNECT".into()),
        WasiMethod::Trace => Method::Other("TRACE".into()),
        WasiMethod::Other(other) => Method::Other(other),
    }
}

/// How much of a body left unread is read before answering; see
/// [`should_drain`].
const DRAIN_BYTES: u64 = 1024 * 1024;
/// How long such a body is read at most before answering.
const DRAIN_TIME: Duration = Duration::from_secs(3);

/// Whether the rest of an unread body is read before answering. A refusal
/// sent while the client is still sending, followed by the host closing the
/// connection with unread data, makes the client's socket reset, and a
/// streaming client (`fetch`) then reports a broken pipe instead of the
/// refusal. Reading a bounded amount first, as GitLab's front servers do,
/// lets the answer arrive on every host. Not drained: empty bodies, clients
/// waiting for `100 Continue` (they send nothing until told), and 413, whose
/// point is not to read. (Hosts hide `Transfer-Encoding`, so a chunked body
/// shows no header: a request without a body simply ends at once.)
fn should_drain(request: &Request, response: &Response) -> bool {
    let empty = request
        .header("content-length")
        .is_some_and(|n| n.trim() == "0");
    let waits_for_continue = request
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
    !empty && !waits_for_continue && response.status != 413
}

/// The client's body, opened lazily: only endpoints that read it open it.
enum RequestBody {
    Open(IncomingBody),
    Reading(IncomingBytes<()>),
    Gone,
}

impl RequestBody {
    /// Reads and drops what is left of the body, within [`DRAIN_BYTES`] and
    /// [`DRAIN_TIME`].
    fn drain_rest(&mut self) {
        if let RequestBody::Open(_) = self {
            let RequestBody::Open(body) = std::mem::replace(self, RequestBody::Gone) else {
                unreachable!()
            };
            match IncomingBytes::new(body, ()) {
                Ok(bytes) => *self = RequestBody::Reading(bytes),
                Err(_) => return,
            }
        }
        if let RequestBody::Reading(bytes) = self {
            bytes.discard(DRAIN_BYTES, DRAIN_TIME);
        }
    }
}

impl ByteSource for RequestBody {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        if let RequestBody::Open(_) = self {
            let RequestBody::Open(body) = std::mem::replace(self, RequestBody::Gone) else {
                unreachable!()
            };
            *self = RequestBody::Reading(IncomingBytes::new(body, ())?);
        }
        match self {
            RequestBody::Reading(bytes) => bytes.next_chunk(),
            _ => Ok(None),
        }
    }
}

/// Sends the answer. A `HEAD` answer carries the `Content-Length` of the
/// body it does not send, so its body is left unfinished for the host to
/// drop rather than finished short.
pub(super) fn respond(out: wasi_http::ResponseOutparam, response: Response, head: bool) {
    let headers: Vec<(String, Vec<u8>)> = response
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), v.as_bytes().to_vec()))
        .collect();
    let headers = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
    let outgoing = OutgoingResponse::new(headers);
    let _ = outgoing.set_status_code(response.status);
    let body = outgoing.body().expect("a new response has a body");
    wasi_http::ResponseOutparam::set(out, Ok(outgoing));
    if head {
        return;
    }
    match write_body(&body, response.body) {
        Ok(()) => {
            if let Err(e) = OutgoingBody::finish(body, None) {
                eprintln!("warning: response body not finished: {e:?}");
            }
        }
        // Dropping an unfinished body tells the host the response broke off.
        Err(e) => eprintln!("warning: response body broke off: {e}"),
    }
}

fn write_body(body: &OutgoingBody, content: Body) -> Result<(), String> {
    let stream = body
        .write()
        .map_err(|()| "body already taken".to_string())?;
    match content {
        Body::Empty => {}
        Body::Bytes(bytes) => write_all(&stream, &bytes).map_err(describe)?,
        Body::Stream(mut source) => write_stream(&stream, source.as_mut())?,
    }
    flush(&stream).map_err(describe)
}

/// Writes a streamed body: an S3 answer passed through unchanged (a
/// download, whole or a range) is spliced into the response without
/// entering the component's memory; anything else is copied chunk by chunk.
fn write_stream(stream: &OutputStream, source: &mut dyn ByteSource) -> Result<(), String> {
    if let Some(s3_answer) = source
        .as_any_mut()
        .and_then(|any| any.downcast_mut::<S3AnswerBody>())
    {
        return s3_answer.splice_into(stream);
    }
    while let Some(chunk) = source.next_chunk()? {
        write_all(stream, &chunk).map_err(describe)?;
    }
    Ok(())
}
