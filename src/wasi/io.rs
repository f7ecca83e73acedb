//! Blocking helpers over `wasi:io` streams and `wasi:http` bodies.
//!
//! An instance serves one request, so blocking on a pollable is the simplest
//! correct way to wait; reads ask for large chunks so a gigabyte is a few
//! thousand host calls, not millions. A body passed through unchanged (an
//! S3 answer to a download) is spliced: the host moves it from one stream to
//! the other and the bytes never enter the component's memory.

use std::any::Any;
use std::time::Duration;

use spin_sdk::wit::wasi::http0_2_0::types::IncomingBody;
use wasi::clocks::monotonic_clock;
use wasi::io::poll::{self, Pollable};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

use crate::http::ByteSource;

/// The most we ask a stream for in one read.
pub const READ_CHUNK: u64 = 1024 * 1024;

/// The most one splice is asked to move. The host moves at most what the
/// output stream accepts at once (1 MiB on wasmtime's default response
/// body) and what the input has at hand, so this only keeps the component
/// from being the limit.
pub const SPLICE_CHUNK: u64 = 16 * 1024 * 1024;

pub fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Waits until `pollable` is ready, at most `limit`; false when time ran out.
pub fn ready_within(pollable: &Pollable, limit: Duration) -> bool {
    let timer = monotonic_clock::subscribe_duration(nanos(limit));
    poll::poll(&[pollable, &timer]).contains(&0)
}

/// Why writing a body to a peer (S3, a helper instance) stopped.
pub enum WriteError {
    /// The peer accepted no byte for the allowed time.
    Stalled,
    Stream(StreamError),
}

/// Writes all of `bytes`, waiting while the peer is not ready for more, at
/// most `stall` at a time.
pub fn write_within(
    stream: &OutputStream,
    mut bytes: &[u8],
    stall: Duration,
) -> Result<(), WriteError> {
    while !bytes.is_empty() {
        let budget = stream.check_write().map_err(WriteError::Stream)?;
        if budget == 0 {
            if !ready_within(&stream.subscribe(), stall) {
                return Err(WriteError::Stalled);
            }
            continue;
        }
        let n = bytes
            .len()
            .min(usize::try_from(budget).unwrap_or(usize::MAX));
        stream.write(&bytes[..n]).map_err(WriteError::Stream)?;
        bytes = &bytes[n..];
    }
    Ok(())
}

/// Flushes, waiting at most `stall` for the peer to take what is buffered.
pub fn flush_within(stream: &OutputStream, stall: Duration) -> Result<(), WriteError> {
    stream.flush().map_err(WriteError::Stream)?;
    if !ready_within(&stream.subscribe(), stall) {
        return Err(WriteError::Stalled);
    }
    stream.check_write().map(drop).map_err(WriteError::Stream)
}

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

impl<P> IncomingBytes<P> {
    /// Moves the rest of the body into `out` with `blocking-splice`, so the
    /// bytes go from stream to stream inside the host. Fails as reading
    /// would: a body that breaks off (S3 cut the answer, or the host's
    /// between-bytes timeout ended it) is an error, never a short success.
    pub fn splice_into(&mut self, out: &OutputStream) -> Result<(), String> {
        let Some(input) = &self.stream else {
            return Ok(());
        };
        loop {
            match out.blocking_splice(input, SPLICE_CHUNK) {
                Ok(_) => continue,
                // `Closed` is the end of the body, or `out` was closed: a
                // closed `out` refuses the check below.
                Err(StreamError::Closed) => {
                    out.check_write().map_err(describe)?;
                    self.end();
                    return Ok(());
                }
                Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
            }
        }
    }

    /// The body ended: releases the stream and finishes the body.
    fn end(&mut self) {
        self.stream = None;
        if let Some(body) = self.body.take() {
            IncomingBody::finish(body);
        }
    }

    /// Reads and drops the rest of the body, at most `max_bytes` of it and
    /// for at most `max_time`; true when the body ended within those bounds.
    pub fn discard(&mut self, max_bytes: u64, max_time: Duration) -> bool {
        let Some(stream) = &self.stream else {
            return true;
        };
        match read_bounded(stream, max_bytes, max_time, |_| {}) {
            ReadStop::Ended => {
                self.end();
                true
            }
            _ => false,
        }
    }
}

/// Why [`read_bounded`] stopped.
pub enum ReadStop {
    Ended,
    /// `max_bytes` were read and the stream had not ended.
    TooLong,
    TimedOut,
    Failed(String),
}

/// Reads `stream` until it ends, handing each piece to `each`; stops once
/// `max_bytes` were read, `max_time` passed or the stream failed.
pub fn read_bounded(
    stream: &InputStream,
    max_bytes: u64,
    max_time: Duration,
    mut each: impl FnMut(&[u8]),
) -> ReadStop {
    let timer = monotonic_clock::subscribe_duration(nanos(max_time));
    let readable = stream.subscribe();
    let mut left = max_bytes;
    while left > 0 {
        match stream.read(left.min(READ_CHUNK)) {
            Ok(bytes) if bytes.is_empty() => {
                // Wait for bytes or the end of the time, whichever is first.
                if !poll::poll(&[&readable, &timer]).contains(&0) {
                    return ReadStop::TimedOut;
                }
            }
            Ok(bytes) => {
                left = left.saturating_sub(bytes.len() as u64);
                each(&bytes);
            }
            Err(StreamError::Closed) => return ReadStop::Ended,
            Err(StreamError::LastOperationFailed(e)) => {
                return ReadStop::Failed(e.to_debug_string())
            }
        }
    }
    ReadStop::TooLong
}

impl<P: 'static> ByteSource for IncomingBytes<P> {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        let Some(stream) = &self.stream else {
            return Ok(None);
        };
        loop {
            match stream.blocking_read(READ_CHUNK) {
                Ok(bytes) if bytes.is_empty() => continue,
                Ok(bytes) => return Ok(Some(bytes)),
                Err(StreamError::Closed) => {
                    self.end();
                    return Ok(None);
                }
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(e.to_debug_string());
                }
            }
        }
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn Any> {
        Some(self)
    }
}

pub fn describe(error: StreamError) -> String {
    match error {
        StreamError::Closed => "stream closed".into(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}
