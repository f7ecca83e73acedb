//! The SHA-256 helper over the host's self requests, both sides (see
//! [`crate::blob::sha256_helper`] for why).
//!
//! The hashing instance sends `POST http://self.alt/-/sha256` (a self
//! request: Spin sends it to its own listener, where another instance takes
//! it) with the hash state so far and a credential made with the token
//! secret, and waits for the answer's head before sending any of the body:
//! the helper answers `200` at once, then hashes the body as it streams and
//! ends its answer with `{"state": ..., "size": ...}`: the hash state after
//! the body. Without a `200` head in time (self requests not allowed, a busy
//! or buffering host), the sender hashes on itself.

use std::time::Duration;

use genreg_token::Secrets;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::wit::wasi::http0_2_0::types::{
    self as wasi_http, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse, Method,
    OutgoingBody, OutgoingResponse, RequestOptions,
};
use url::Url;
use wasi::io::streams::{InputStream, OutputStream};

use super::io::{
    describe, flush_within, nanos, read_bounded, ready_within, write_all, write_within,
    IncomingBytes, ReadStop, WriteError,
};
use super::object_store::{send, SendError};
use crate::blob::sha256_helper::{
    self as protocol, HelperAnswer, Sha256Helper, Sha256Stream, CREDENTIAL_HEADER, PATH,
    STATE_HEADER,
};
use crate::checksum::Sha256Resumed;
use crate::http::{ByteSource, Method as HttpMethod, Request};

/// The self request's authority (Spin's name for "this application").
const SELF_AUTHORITY: &str = "self.alt";
/// How long the uploader waits to connect to its host and for the helper's
/// head before hashing on itself.
const HEAD_WAIT: Duration = Duration::from_secs(5);
/// How long the helper may take no byte of the body.
const STALL: Duration = Duration::from_secs(30);
/// How long the helper may take, once the body is sent, to answer the
/// hash state (what it still has buffered to hash).
const ANSWER_WAIT: Duration = Duration::from_secs(60);
/// The host's wait for the answer's body: the state comes after the whole
/// upload, which the component times itself.
const HOST_BETWEEN_BYTES: Duration = Duration::from_secs(24 * 3600);

/// The uploading side: starts helpers as self requests.
pub struct SelfRequestHelper<'a> {
    pub secrets: &'a Secrets,
}

impl Sha256Helper for SelfRequestHelper<'_> {
    fn hand_off_after(&self) -> u64 {
        protocol::HAND_OFF_AFTER
    }

    fn start(&self, state: &str) -> Option<Box<dyn Sha256Stream + '_>> {
        // Made when the helper is asked: a slow body may take long to
        // reach the hand-off.
        let credential = protocol::credential(self.secrets, super::component::unix_now());
        match HelperStream::start(state, &credential) {
            Ok(stream) => Some(Box::new(stream)),
            Err(why) => {
                eprintln!("warning: no SHA-256 helper instance, hashing here: {why}");
                None
            }
        }
    }
}

/// A helper that answered `200`: the body goes to it.
struct HelperStream {
    stream: Option<OutputStream>,
    body: Option<OutgoingBody>,
    response: IncomingResponse,
    sent: u64,
}

impl HelperStream {
    fn start(state: &str, credential: &str) -> Result<HelperStream, String> {
        let url = Url::parse(&format!("http://{SELF_AUTHORITY}{PATH}")).expect("a valid URL");
        let headers = [
            (STATE_HEADER, state.to_string()),
            (CREDENTIAL_HEADER, credential.to_string()),
            ("content-type", "application/octet-stream".to_string()),
        ];
        let options = RequestOptions::new();
        let _ = options.set_connect_timeout(Some(nanos(HEAD_WAIT)));
        let _ = options.set_first_byte_timeout(Some(nanos(HEAD_WAIT)));
        let _ = options.set_between_bytes_timeout(Some(nanos(HOST_BETWEEN_BYTES)));
        let sent = send(Method::Post, &url, &headers, options).map_err(|e| match e {
            SendError::Build(what) => what,
            SendError::Host(code) => format!("self request refused: {code:?}"),
        })?;
        // On an early return `sent` drops whole, its stream before its body.
        let response = head_within(&sent.response, HEAD_WAIT)?;
        if response.status() != 200 {
            return Err(format!("the helper answered {}", response.status()));
        }
        Ok(HelperStream {
            stream: Some(sent.stream),
            body: Some(sent.body),
            response,
            sent: 0,
        })
    }
}

/// The response's head, if it comes within `limit`.
fn head_within(
    pending: &FutureIncomingResponse,
    limit: Duration,
) -> Result<IncomingResponse, String> {
    if !ready_within(&pending.subscribe(), limit) {
        return Err(format!("no answer within {limit:?}"));
    }
    match pending.get() {
        Some(Ok(Ok(response))) => Ok(response),
        Some(Ok(Err(e))) => Err(format!("self request failed: {e:?}")),
        _ => Err("the answer was lost".into()),
    }
}

fn write_failed(error: WriteError) -> String {
    match error {
        WriteError::Stalled => format!("the helper took no byte for {STALL:?}"),
        WriteError::Stream(e) => format!("sending to the helper: {}", describe(e)),
    }
}

impl Sha256Stream for HelperStream {
    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        let stream = self.stream.as_ref().expect("open until finished");
        write_within(stream, bytes, STALL).map_err(write_failed)?;
        self.sent += bytes.len() as u64;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<String, String> {
        if let Some(stream) = self.stream.take() {
            flush_within(&stream, STALL).map_err(write_failed)?;
        }
        if let Some(body) = self.body.take() {
            OutgoingBody::finish(body, None).map_err(|e| format!("ending the body: {e:?}"))?;
        }
        let body = self
            .response
            .consume()
            .map_err(|()| "the answer's body was taken".to_string())?;
        let stream = body
            .stream()
            .map_err(|()| "the answer's stream was taken".to_string())?;
        let text = read_within(&stream, 4096, ANSWER_WAIT)?;
        drop(stream);
        IncomingBody::finish(body);
        let answer: HelperAnswer = serde_json::from_slice(&text)
            .map_err(|e| format!("the helper's answer is not a hash state: {e}"))?;
        if answer.size != self.sent {
            return Err(format!(
                "the helper hashed {} bytes of the {} sent",
                answer.size, self.sent
            ));
        }
        Ok(answer.state)
    }
}

/// Reads `stream` to its end, at most `max` bytes and for at most `limit`.
fn read_within(stream: &InputStream, max: usize, limit: Duration) -> Result<Vec<u8>, String> {
    let mut text = Vec::new();
    // One byte more than `max` tells an answer that is too long.
    let stop = read_bounded(stream, max as u64 + 1, limit, |bytes| {
        text.extend_from_slice(bytes)
    });
    match stop {
        ReadStop::Ended => Ok(text),
        ReadStop::TooLong => Err("the helper's answer is too long".into()),
        ReadStop::TimedOut => Err(format!("the helper gave no answer within {limit:?}")),
        ReadStop::Failed(e) => Err(format!("reading the helper's answer: {e}")),
    }
}

/// Whether `request` is for the helper.
pub fn is_helper_request(request: &Request) -> bool {
    request.method == HttpMethod::Post && request.path == PATH
}

/// The helper's side: checks the credential and the state, answers `200`
/// at once, then hashes the body and ends the answer with the state. A
/// body that breaks off breaks the answer off.
pub fn serve(request: &Request, incoming: IncomingRequest, out: ResponseOutparam, now: u64) {
    let accepted =
        crate::config::Config::from_variables(|name| spin_sdk::variables::get(name).ok())
            .and_then(|config| protocol::accept(request, &config.token_secrets, now));
    let sha256 = match accepted {
        Ok(sha256) => sha256,
        Err(refusal) => {
            return super::component::respond(out.into_inner(), refusal.into_response(), false)
        }
    };
    let headers = Fields::from_list(&[("content-type".to_string(), b"application/json".to_vec())])
        .unwrap_or_else(|_| Fields::new());
    let outgoing = OutgoingResponse::new(headers);
    let body = outgoing.body().expect("a new response has a body");
    wasi_http::ResponseOutparam::set(out.into_inner(), Ok(outgoing));
    let written = hash_body(incoming, sha256).and_then(|answer| {
        let json = serde_json::to_vec(&answer).expect("an answer serializes");
        let stream = body
            .write()
            .map_err(|()| "answer stream taken".to_string())?;
        write_all(&stream, &json).map_err(describe)?;
        stream.blocking_flush().map_err(describe)
    });
    match written {
        Ok(()) => {
            if let Err(e) = OutgoingBody::finish(body, None) {
                eprintln!("warning: SHA-256 helper answer not finished: {e:?}");
            }
        }
        // Dropping the unfinished answer tells the uploader it broke off.
        Err(e) => eprintln!("warning: SHA-256 helper stopped: {e}"),
    }
}

fn hash_body(incoming: IncomingRequest, mut sha256: Sha256Resumed) -> Result<HelperAnswer, String> {
    let body = incoming
        .consume()
        .map_err(|()| "body already taken".to_string())?;
    let mut bytes = IncomingBytes::new(body, incoming)?;
    let mut size = 0u64;
    while let Some(chunk) = bytes.next_chunk()? {
        sha256.update(&chunk);
        size += chunk.len() as u64;
    }
    Ok(HelperAnswer {
        state: sha256.state(),
        size,
    })
}
