//! The endpoints, one folder per resource and one file per group of
//! actions. Each handler reads top to bottom: read the parameters
//! ([`params`]), check who asks (`Context::project_for`/`group_for`, which
//! ask `auth::policy`), do it, answer.
//!
//! - `packages/`: the Packages API (`mod.rs`), generic publish and download
//!   (`generic`), protection rules (`protection`), the cleanup policy
//!   (`cleanup`);
//! - `projects/`: create, show, delete (`mod.rs`), list and change
//!   (`listing`);
//! - `groups/`: the implicit groups (`mod.rs`) and their package settings
//!   (`settings`);
//! - `tokens/`: one `issue()` path and the listing of issued tokens
//!   (`mod.rs`), each kind (`access`, `deploy`, `job`, `personal`), and the
//!   rules they share: where a token is issued, its lifetime (`rules`);
//! - `users`, `graphql` (the `POST /api/graphql` endpoint; the document
//!   reader is `crate::graphql_engine`);
//! - `objects`: the referenced object keys, for `genreg gc` (ours);
//! - shared helpers: `params` (the one parameter reader), `pagination`.

pub mod graphql;
pub mod groups;
pub mod objects;
pub mod packages;
pub mod pagination;
pub mod params;
pub mod projects;
pub mod tokens;
pub mod users;

use jiff::Timestamp;

use crate::auth::policy::{self, Unseen};
use crate::auth::{self, Actor, Right};
use crate::blob::Blobs;
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::http::Request;
use crate::meta;
use crate::meta::groups::Group;
use crate::meta::kv::KeyValue;
use crate::meta::model::{Millis, PackageFile, Project};
use crate::meta::project_index::ProjectEntry;
use crate::meta::read_ahead;
use crate::meta::ProjectRef;
use crate::router::{GroupId, ProjectId};

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
        auth::authenticate(
            request,
            &self.config.token_secrets,
            self.kv,
            self.now_secs(),
        )
    }

    fn now_secs(&self) -> u64 {
        u64::try_from(self.now.as_second()).unwrap_or(0)
    }

    /// [`Context::authenticate`] for a request about the project
    /// `project_id`, reading ahead what it reads next (see
    /// `meta::read_ahead`): the project and `under(id)`, the keys of its
    /// records the handler reads after it. When `:id` is the project's
    /// number that is one store round trip with the token's revocation;
    /// when it is the project's path, the first round trip reads the
    /// path's claim, which gives the id, and a second the rest.
    pub fn authenticate_reading_ahead(
        &self,
        request: &Request,
        project_id: &ProjectId,
        under: impl FnOnce(u64) -> Vec<String>,
    ) -> ApiResult<Actor> {
        let claims = auth::verify(request, &self.config.token_secrets, self.now_secs())?;
        let mut keys: Vec<String> = claims
            .iter()
            .map(|claims| read_ahead::token_revocation(&claims.id))
            .collect();
        if let Some(reference @ ProjectRef::Path(_)) = project_id {
            keys.push(read_ahead::project(reference));
            self.kv.read_ahead(&keys);
            keys.clear();
        }
        if let Some(reference) = project_id {
            if let Some(id) = read_ahead::project_id(self.kv, reference)? {
                keys.push(read_ahead::project(&ProjectRef::Id(id)));
                keys.extend(under(id));
            }
        }
        self.kv.read_ahead(&keys);
        auth::unless_revoked(self.kv, claims)
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

    /// Loads the project `:id` names for a caller who needs `needed` on it,
    /// answering as the policy says when they do not hold it (401, 403, or
    /// `404 Project Not Found`, also when `:id` did not decode). Returns the
    /// project and the right held.
    pub fn project_for(
        &self,
        actor: &Actor,
        project_id: &ProjectId,
        needed: Right,
    ) -> ApiResult<(Project, Right)> {
        let project = match project_id {
            Some(reference) => meta::project(self.kv, reference)?,
            None => None,
        };
        let held = project.as_ref().and_then(|p| policy::on_project(actor, p));
        let held = policy::decide(actor, held, needed, Unseen::NotFound(PROJECT_NOT_FOUND))?;
        let project = project.expect("a caller holds rights only on a project that exists");
        Ok((project, held))
    }

    /// Loads the group `:id` names (numeric id or URL-encoded full path) for
    /// a caller who needs `needed` on it: `404 Group Not Found` when it does
    /// not exist for them, 401 or 403 as the policy says.
    pub fn group_for(
        &self,
        actor: &Actor,
        group_id: &GroupId,
        needed: Right,
    ) -> ApiResult<(Group, Right)> {
        let group = self.find_group(group_id)?;
        let held = self.right_on_group(actor, &group, needed)?;
        let held = policy::decide(actor, held, needed, Unseen::NotFound(GROUP_NOT_FOUND))?;
        Ok((group, held))
    }

    /// The group `:id` names, whoever asks: `404 Group Not Found` when there
    /// is none (or `:id` did not decode).
    pub fn find_group(&self, group_id: &GroupId) -> ApiResult<Group> {
        let group = match group_id {
            Some(reference) => meta::groups::group(self.kv, reference)?,
            None => None,
        };
        group.ok_or(ApiError::NotFound(GROUP_NOT_FOUND))
    }

    /// What the caller holds on a group for a need of `needed`
    /// (`policy::on_group`), reading the project index only when its grants
    /// do not tell.
    pub fn right_on_group(
        &self,
        actor: &Actor,
        group: &Group,
        needed: Right,
    ) -> ApiResult<Option<Right>> {
        policy::on_group(actor, &group.full_path, needed, || {
            Ok(!self
                .visible_projects_in(actor, &group.full_path)?
                .is_empty())
        })
    }

    /// The index entries of the projects under a group (nested groups
    /// included) that the caller sees.
    pub fn visible_projects_in(
        &self,
        actor: &Actor,
        group_path: &str,
    ) -> ApiResult<Vec<ProjectEntry>> {
        Ok(meta::project_index::project_entries(self.kv)?
            .into_iter()
            .filter(|e| {
                e.is_in(group_path, true) && policy::on_project(actor, &e.as_project()).is_some()
            })
            .collect())
    }
}

/// GitLab's 404 messages for projects and groups that do not exist for
/// the caller.
pub const PROJECT_NOT_FOUND: &str = "Project Not Found";
pub const GROUP_NOT_FOUND: &str = "Group Not Found";

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
