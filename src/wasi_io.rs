//! Blocking helpers over `wasi:io` streams and `wasi:http` bodies.
//!
//! An instance serves one request, so blocking on a pollable is the simplest
//! correct way to wait; reads ask for large chunks so a gigabyte is a few
//! thousand host calls, not millions.

use spin_sdk::wit::wasi::http0_2_0::types::IncomingBody;
use wasi::io::streams::{InputStream, OutputStream, StreamError};

use crate::http::ByteSource;

/// The most we ask a stream for in one read.
pub const READ_CHUNK: u64 = 1024 * 1024;

/// Writes all of `bytes`, waiting whenever the stream's buffer is full.
pub fn write_all(stream: &OutputStream, mut bytes: &[u8]) -> Result<(), StreamError> {
    while !bytes.is_empty() {
        let budget = stream.check_write()?;
        if budget == 0 {
            stream.subscribe().block();
            continue;
        }
        let n = bytes
            .len()
            .min(usize::try_from(budget).unwrap_or(usize::MAX));
        stream.write(&bytes[..n])?;
        bytes = &bytes[n..];
    }
    Ok(())
}

/// Flushes and waits until everything written has been accepted.
pub fn flush(stream: &OutputStream) -> Result<(), StreamError> {
    stream.blocking_flush()
}

/// A body being received: a request's (from the client) or a response's
/// (from S3). Holds the parent resources so the stream stays valid.
pub struct IncomingBytes<P> {
    stream: Option<InputStream>,
    body: Option<IncomingBody>,
    _parent: P,
}

impl<P> IncomingBytes<P> {
    pub fn new(body: IncomingBody, parent: P) -> Result<Self, String> {
        let stream = body
            .stream()
            .map_err(|()| "body stream already taken".to_string())?;
        Ok(IncomingBytes {
            stream: Some(stream),
            body: Some(body),
            _parent: parent,
        })
    }
}

impl<P> ByteSource for IncomingBytes<P> {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        let Some(stream) = &self.stream else {
            return Ok(None);
        };
        loop {
            match stream.blocking_read(READ_CHUNK) {
                Ok(bytes) if bytes.is_empty() => continue,
                Ok(bytes) => return Ok(Some(bytes)),
                Err(StreamError::Closed) => {
                    self.stream = None;
                    if let Some(body) = self.body.take() {
                        IncomingBody::finish(body);
                    }
                    return Ok(None);
                }
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(e.to_debug_string());
                }
            }
        }
    }
}

pub fn describe(error: StreamError) -> String {
    match error {
        StreamError::Closed => "stream closed".into(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}
