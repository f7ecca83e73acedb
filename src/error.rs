//! One error type for every endpoint, answered as GitLab shapes its errors.

use crate::blob::upload::UploadError;
use crate::blob::StoreError;
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
    /// `413 Request Entity Too Large - <detail>`: too large for a reason
    /// the client can act on.
    #[error("payload too large: {0}")]
    TooLargeFor(String),
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
    /// Another request is creating what this one needs; retry shortly:
    /// `503` with `Retry-After`.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The object store did not answer in time.
    #[error("gateway timeout: {0}")]
    UpstreamTimeout(String),
}

impl ApiError {
    pub fn not_found() -> Self {
        ApiError::NotFound("Not found")
    }

    pub fn internal(what: impl std::fmt::Display) -> Self {
        ApiError::Internal(what.to_string())
    }

    /// The client's body broke off (a reset, or fewer bytes than announced).
    /// What the host said about it is logged, never sent: it names the
    /// host's internals.
    pub fn body_cut_off(detail: impl std::fmt::Display) -> Self {
        eprintln!("warning: request body cut off: {detail}");
        ApiError::BadRequest(BODY_CUT_OFF.into())
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
            ApiError::PayloadTooLarge | ApiError::TooLargeFor(_) => 413,
            ApiError::RangeNotSatisfiable { .. } => 416,
            ApiError::Internal(_) => 500,
            ApiError::Unavailable(_) => 503,
            ApiError::Upstream(_) => 502,
            ApiError::UpstreamTimeout(_) => 504,
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
            ApiError::TooLargeFor(detail) => {
                json!({ "message": format!("413 Request Entity Too Large - {detail}") })
            }
            ApiError::RangeNotSatisfiable { .. } => {
                json!({ "message": "416 Range Not Satisfiable" })
            }
            ApiError::FieldInvalid { field, text } => json!({ "message": { *field: [text] } }),
            ApiError::Internal(_) => json!({ "message": "500 Internal Server Error" }),
            ApiError::Unavailable(_) => {
                json!({ "message": "503 Service Unavailable - try again in a moment" })
            }
            ApiError::Upstream(_) => json!({ "message": "502 Bad Gateway" }),
            ApiError::UpstreamTimeout(_) => json!({ "message": "504 Gateway Timeout" }),
        }
    }

    pub fn into_response(self) -> Response {
        if matches!(
            self,
            ApiError::Internal(_) | ApiError::Upstream(_) | ApiError::UpstreamTimeout(_)
        ) {
            eprintln!("error: {self}");
        }
        let mut response = Response::json(self.status(), &self.body());
        match self {
            ApiError::RangeNotSatisfiable { size } => {
                response = response.header("content-range", format!("bytes */{size}"));
            }
            ApiError::Unavailable(_) => response = response.header("retry-after", "1"),
            _ => {}
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The detail of a 400 for a body that broke off.
const BODY_CUT_OFF: &str = "the request body was cut off";

/// S3's answer (which may quote URLs and their signatures) is logged; the
/// client learns only that storage failed or timed out.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::TimedOut(detail) => ApiError::UpstreamTimeout(detail),
            StoreError::Failed(detail) => ApiError::Upstream(detail),
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(error: UploadError) -> Self {
        match error {
            UploadError::TooLarge => ApiError::PayloadTooLarge,
            UploadError::ChecksumMismatch => {
                ApiError::BadRequest("X-Checksum-SHA256 does not match the uploaded file".into())
            }
            UploadError::LengthMismatch => ApiError::BadRequest(error.to_string()),
            UploadError::ClientGone(detail) => ApiError::body_cut_off(detail),
            UploadError::Storage(e) => e.into(),
            // The helper runs on this host: busy or failing, worth a retry.
            UploadError::Helper(detail) => {
                eprintln!("error: the SHA-256 helper instance failed: {detail}");
                ApiError::Unavailable(detail)
            }
        }
    }
}

/// A metadata failure: a creation in flight elsewhere is worth a retry
/// (503), anything else is internal.
impl From<crate::meta::MetaError> for ApiError {
    fn from(error: crate::meta::MetaError) -> Self {
        if error.is_busy() {
            ApiError::Unavailable(error.to_string())
        } else {
            ApiError::Internal(error.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_text(error: ApiError) -> (u16, String) {
        let status = error.status();
        (status, error.body().to_string())
    }

    #[test]
    fn a_cut_body_answers_a_plain_400_without_the_hosts_words() {
        let host_said = "hyper error: error reading a body from connection\n   0: backtrace";
        let (status, body) = body_text(UploadError::ClientGone(host_said.into()).into());
        assert_eq!(status, 400);
        assert_eq!(
            body,
            r#"{"message":"400 Bad request - the request body was cut off"}"#
        );
    }

    #[test]
    fn storage_failures_answer_502_or_504_without_s3s_answer() {
        let s3_said = "<Error><Code>AccessDenied</Code></Error> http://s3/b/k?X-Amz-Signature=abc";
        let (status, body) = body_text(StoreError::Failed(s3_said.into()).into());
        assert_eq!(
            (status, body.as_str()),
            (502, r#"{"message":"502 Bad Gateway"}"#)
        );
        let timed_out = UploadError::Storage(StoreError::TimedOut(s3_said.into()));
        let (status, body) = body_text(timed_out.into());
        assert_eq!(
            (status, body.as_str()),
            (504, r#"{"message":"504 Gateway Timeout"}"#)
        );
    }
}
