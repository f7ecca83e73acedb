//! Which endpoint a request is for. Paths are matched on their raw,
//! still-encoded segments, so `group%2Fproject` stays one `:id`.

use crate::api::{self, Context};
use crate::error::{ApiError, ApiResult};
use crate::http::{ByteSource, Method, Request, Response};
use crate::meta::kv::KeyValue;

#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Projects,
    Project(&'a str),
    /// `projects/:id/packages/generic/` and the segments after it.
    GenericFile(&'a str, Vec<&'a str>),
    Health,
}

pub fn route(path: &str) -> Option<Route<'_>> {
    if path == "/-/health" {
        return Some(Route::Health);
    }
    let rest = path.strip_prefix("/api/v4/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        ["projects"] => Some(Route::Projects),
        ["projects", id] => Some(Route::Project(id)),
        ["projects", id, "packages", "generic", file @ ..] if !file.is_empty() => {
            Some(Route::GenericFile(id, file.to_vec()))
        }
        _ => None,
    }
}

/// Answers one request. Every error becomes GitLab's JSON error answer.
pub fn handle<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    body: &mut dyn ByteSource,
) -> Response {
    dispatch(ctx, request, body).unwrap_or_else(ApiError::into_response)
}

fn dispatch<K: KeyValue>(
    ctx: &Context<K>,
    request: &Request,
    body: &mut dyn ByteSource,
) -> ApiResult<Response> {
    let Some(route) = route(&request.path) else {
        return Ok(Response::json(
            404,
            &serde_json::json!({ "error": "404 Not Found" }),
        ));
    };
    match (&request.method, route) {
        (Method::Get, Route::Health) => Ok(Response::new(200).with_body(b"OK".to_vec())),
        (Method::Post, Route::Projects) => {
            let body = read_small_body(body, api::projects::MAX_FORM_BODY)?;
            api::projects::create(ctx, request, &body)
        }
        (Method::Get, Route::Project(id)) => api::projects::get(ctx, request, id),
        (Method::Put, Route::GenericFile(id, segments)) => {
            api::generic::publish(ctx, request, id, &segments, body)
        }
        (Method::Get | Method::Head, Route::GenericFile(id, segments)) => {
            api::generic::download(ctx, request, id, &segments)
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

fn read_small_body(body: &mut dyn ByteSource, limit: usize) -> ApiResult<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = body
        .next_chunk()
        .map_err(|e| ApiError::BadRequest(format!("the body could not be read: {e}")))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > limit {
            return Err(ApiError::PayloadTooLarge);
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_keep_encoded_ids_whole() {
        assert_eq!(route("/api/v4/projects"), Some(Route::Projects));
        assert_eq!(
            route("/api/v4/projects/acme%2Ftools"),
            Some(Route::Project("acme%2Ftools"))
        );
        assert_eq!(
            route("/api/v4/projects/7/packages/generic/t/1.0/linux/t.tgz"),
            Some(Route::GenericFile("7", vec!["t", "1.0", "linux", "t.tgz"]))
        );
        assert_eq!(
            route("/api/v4/projects/7/packages/generic/"),
            Some(Route::GenericFile("7", vec![""]))
        );
        assert_eq!(route("/api/v4/projects/7/packages/generic"), None);
        assert_eq!(route("/api/v3/projects"), None);
    }
}
