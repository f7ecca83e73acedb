//! Plain HTTP request and response types the endpoints work with, free of
//! any WASI type so they can be unit-tested natively.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Put,
    Post,
    Delete,
    Patch,
    Other(String),
}

/// An incoming request without its body.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The path as sent, still percent-encoded.
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Lowercased names.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Request {
    pub fn new(method: Method, path_with_query: &str, headers: Vec<(String, Vec<u8>)>) -> Request {
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((path_with_query, ""));
        Request {
            method,
            path: path.to_string(),
            query: form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
            headers: headers
                .into_iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value))
                .collect(),
        }
    }

    /// The first header with this (lowercase) name, if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A source of body bytes: the incoming request body or an object read from
/// storage. `Ok(None)` is the end; an error means the peer went away.
pub trait ByteSource {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String>;

    /// The source itself, for a writer that can move its bytes without
    /// reading them (the component splices an S3 answer into the response);
    /// `None`: read it with [`ByteSource::next_chunk`].
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        None
    }
}

impl ByteSource for std::collections::VecDeque<Vec<u8>> {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        Ok(self.pop_front())
    }
}

pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// Streamed to the client as it is read.
    Stream(Box<dyn ByteSource>),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => write!(f, "Empty"),
            Body::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Body::Stream(_) => write!(f, "Stream"),
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub fn json(status: u16, value: &impl serde::Serialize) -> Response {
        Response::new(status)
            .header("content-type", "application/json")
            .with_body(serde_json::to_vec(value).expect("JSON values serialize"))
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn with_body(mut self, body: Vec<u8>) -> Response {
        self.headers.retain(|(n, _)| n != "content-length");
        self.headers
            .push(("content-length".into(), body.len().to_string()));
        self.body = Body::Bytes(body);
        self
    }

    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}
