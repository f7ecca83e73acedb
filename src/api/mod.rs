//! The endpoints, one module per group. Each handler reads top to bottom:
//! parse the request, check who asks, do it, answer.

pub mod access_tokens;
pub mod administer;
pub mod cleanup;
pub mod deploy_tokens;
pub mod directory;
pub mod fields;
pub mod generic;
pub mod graphql;
pub mod issued;
pub mod job_tokens;
pub mod packages;
pub mod pagination;
pub mod personal_access_tokens;
pub mod projects;
pub mod protection;
pub mod settings;
pub mod users;

use jiff::Timestamp;

use crate::auth::{self, Access, Actor};
use crate::blob::Blobs;
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::http::Request;
use crate::meta::kv::KeyValue;
use crate::meta::model::{Millis, PackageFile, Project};
use crate::meta::{self, ProjectRef};
use crate::validate;

/// Everything a handler may use, built fresh for every request.
pub struct Context<'a, K: KeyValue> {
    pub config: Config,
    pub kv: &'a K,
    /// Object storage (S3): file contents.
    pub blobs: Blobs<'a>,
    pub now: Timestamp,
    /// 16 random bytes per call (object keys, token ids).
    pub random: &'a dyn Fn() -> [u8; 16],
}

impl<K: KeyValue> Context<'_, K> {
    pub fn now_millis(&self) -> Millis {
        self.now.as_millisecond()
    }

    pub fn authenticate(&self, request: &Request) -> ApiResult<Actor> {
        let now = u64::try_from(self.now.as_second()).unwrap_or(0);
        auth::authenticate(request, &self.config.token_secrets, self.kv, now)
    }

    /// Deletes the objects of files whose records are gone. A failure is
    /// only logged: the record is what counts, and `genreg gc` collects
    /// objects left behind.
    pub fn discard_objects(&self, files: &[PackageFile]) {
        for file in files {
            if let Err(e) = self.blobs.delete(&file.object_key) {
                eprintln!("warning: object {} left behind: {e}", file.object_key);
            }
        }
    }

    /// Finds the project `:id` names, as the caller may see it. A project the
    /// caller may not see does not exist for them: 404 (401 when anonymous,
    /// so a client knows to send credentials).
    pub fn project(&self, actor: &Actor, raw_id: &str) -> ApiResult<(Project, Access)> {
        let hidden = || match actor {
            Actor::Anonymous => ApiError::Unauthorized,
            Actor::Token(_) => ApiError::NotFound("Project Not Found"),
        };
        let decoded = validate::decode_segment(raw_id).ok_or_else(hidden)?;
        let project = meta::project(self.kv, &ProjectRef::parse(&decoded))
            .map_err(ApiError::internal)?
            .ok_or_else(hidden)?;
        let access = auth::access(actor, &project);
        if !access.visible {
            return Err(hidden());
        }
        Ok((project, access))
    }
}

/// ISO 8601 in UTC with milliseconds, as GitLab renders times.
pub fn iso8601(millis: Millis) -> String {
    let at = Timestamp::from_millisecond(millis).unwrap_or(Timestamp::UNIX_EPOCH);
    format!(
        "{}.{:03}Z",
        at.strftime("%Y-%m-%dT%H:%M:%S"),
        millis.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_render_like_gitlab() {
        assert_eq!(
            super::iso8601(1_634_040_323_387),
            "2021-10-12T12:05:23.387Z"
        );
        assert_eq!(super::iso8601(0), "1970-01-01T00:00:00.000Z");
    }
}
