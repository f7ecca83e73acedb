//! One error type for every endpoint, answered as GitLab shapes its errors.

use crate::http::Response;

/// Everything a request can fail with. Each variant knows its status code and
/// GitLab's JSON body; internal details are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Invalid parameters: `{"error":"<message>"}`.
    #[error("{0}")]
    InvalidParams(String),
    /// Any other bad request: `{"message":"400 Bad request - <detail>"}`.
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unauthorized")]
    Unauthorized,
    #[error("forbidden")]
    Forbidden,
    /// `403 Forbidden - <reason>`
    #[error("forbidden: {0}")]
    ForbiddenBecause(&'static str),
    /// `404 <what>`, e.g. `404 Not found`, `404 Project Not Found`.
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    /// A field-level validation failure: `{"message":{"<field>":["<text>"]}}`.
    #[error("{field} {text}")]
    FieldInvalid { field: &'static str, text: String },
    /// A failure of the key-value store, object storage or configuration.
    #[error("internal: {0}")]
    Internal(String),
    /// The object store or key-value store could not be reached or answered badly.
    #[error("bad gateway: {0}")]
    Upstream(String),
}

impl ApiError {
    pub fn not_found() -> Self {
        ApiError::NotFound("Not found")
    }

    pub fn internal(what: impl std::fmt::Display) -> Self {
        ApiError::Internal(what.to_string())
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::InvalidParams(_)
            | ApiError::BadRequest(_)
            | ApiError::FieldInvalid { .. } => 400,
            ApiError::Unauthorized => 401,
            ApiError::Forbidden | ApiError::ForbiddenBecause(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed => 405,
            ApiError::PayloadTooLarge => 413,
            ApiError::RangeNotSatisfiable { .. } => 416,
            ApiError::Internal(_) => 500,
            ApiError::Upstream(_) => 502,
        }
    }

    pub fn body(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            ApiError::InvalidParams(message) => json!({ "error": message }),
            ApiError::BadRequest(detail) => {
                json!({ "message": format!("400 Bad request - {detail}") })
            }
            ApiError::Unauthorized => json!({ "message": "401 Unauthorized" }),
            ApiError::Forbidden => json!({ "message": "403 Forbidden" }),
            ApiError::ForbiddenBecause(reason) => {
                json!({ "message": format!("403 Forbidden - {reason}") })
            }
            ApiError::NotFound(what) => json!({ "message": format!("404 {what}") }),
            ApiError::MethodNotAllowed => json!({ "error": "405 Method Not Allowed" }),
            ApiError::PayloadTooLarge => json!({ "message": "413 Request Entity Too Large" }),
            ApiError::RangeNotSatisfiable { .. } => {
                json!({ "message": "416 Range Not Satisfiable" })
            }
            ApiError::FieldInvalid { field, text } => json!({ "message": { *field: [text] } }),
            ApiError::Internal(_) => json!({ "message": "500 Internal Server Error" }),
            ApiError::Upstream(_) => json!({ "message": "502 Bad Gateway" }),
        }
    }

    pub fn into_response(self) -> Response {
        if matches!(self, ApiError::Internal(_) | ApiError::Upstream(_)) {
            eprintln!("error: {self}");
        }
        let mut response = Response::json(self.status(), &self.body());
        if let ApiError::RangeNotSatisfiable { size } = self {
            response = response.header("content-range", format!("bytes */{size}"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
