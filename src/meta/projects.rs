//! Projects: lookup by id or path, creation (claiming the path) and
//! deletion with everything in them.

use super::kv::{KeyValue, Step};
use super::model::{Millis, PackageFile, Project, Visibility};
use super::{encode, groups, keys, next_id, project_index, read, update_record, MetaError};

/// How many times deleting a project goes over its package index: a later
/// pass catches packages that publishes in flight when the project was
/// marked deleted created meanwhile (those publishes also delete what they
/// added, see [`forget_if_project_deleted`]).
const PACKAGE_DELETION_PASSES: usize = 3;

/// A project named by id or by full path, as `:id` in the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectRef {
    Id(u64),
    Path(String),
}

impl ProjectRef {
    /// Parses an already URL-decoded `:id`.
    pub fn parse(decoded: &str) -> ProjectRef {
        match decoded.parse::<u64>() {
            Ok(id) => ProjectRef::Id(id),
            Err(_) => ProjectRef::Path(decoded.to_string()),
        }
    }
}

pub fn project<K: KeyValue>(kv: &K, reference: &ProjectRef) -> Result<Option<Project>, MetaError> {
    let id = match reference {
        ProjectRef::Id(id) => *id,
        ProjectRef::Path(path) => match read(kv, &keys::project_path(path))? {
            None => return Ok(None),
            Some(id) => id,
        },
    };
    let project: Option<Project> = read(kv, &keys::project(id))?;
    Ok(project.filter(|p| !p.is_deleted()))
}

/// What creating a project needs; the id and time are filled in here.
pub struct NewProject {
    pub name: String,
    pub path: String,
    pub namespace: String,
    pub visibility: Visibility,
}

/// Creates a project and claims its full path. The record and a pending
/// index entry are written before the path is claimed, so a path never
/// points at a missing project and a crash never leaves a live project
/// unlisted (see `meta::project_index`); a record whose claim lost is deleted
/// again.
///
/// The claim of a deleted project's path is free: it is taken over by
/// compare-and-swap from the old id to the new one. Ids never repeat, so a
/// claim cannot change and come back to the value read (a true swap on every
/// store, since the key exists); of several creators racing for a freed
/// path, one swaps and the others read the new, live claim.
pub fn create_project<K: KeyValue>(
    kv: &K,
    new: NewProject,
    now: Millis,
) -> Result<Project, MetaError> {
    let project = Project {
        id: next_id(kv, "project")?,
        name: new.name,
        path: new.path,
        namespace: new.namespace,
        visibility: new.visibility,
        created_at: now,
        deleted_at: None,
    };
    let path_key = keys::project_path(&project.full_path());
    if let Some(holder) = read::<K, u64>(kv, &path_key)? {
        if !path_claim_is_free(kv, holder)? {
            return Err(MetaError::PathTaken);
        }
    }
    groups::ensure_groups(kv, &project.namespace, now)?;
    kv.set(&keys::project(project.id), &encode(&project))?;
    project_index::reserve_entry(kv, &project)?;
    let claimed = update_record(kv, &path_key, |holder: Option<u64>| {
        Ok::<_, MetaError>(match holder {
            // A retry after a write that landed but was not confirmed.
            Some(holder) if holder == project.id => Step::Keep(true),
            Some(holder) if !path_claim_is_free(kv, holder)? => Step::Keep(false),
            _ => Step::Write(encode(&project.id), true),
        })
    });
    match claimed {
        Ok(true) => {
            project_index::confirm_creation(kv, project.id)?;
            Ok(project)
        }
        Ok(false) => {
            kv.delete(&keys::project(project.id))?;
            project_index::confirm_creation(kv, project.id)?;
            Err(MetaError::PathTaken)
        }
        Err(e) => Err(e),
    }
}

/// Whether a path claim (`project-path/<path>` → `holder`) may be taken:
/// the project it names was deleted (or its record is gone, which a lookup
/// by path also takes for no project).
fn path_claim_is_free<K: KeyValue>(kv: &K, holder: u64) -> Result<bool, MetaError> {
    let holder: Option<Project> = read(kv, &keys::project(holder))?;
    Ok(holder.is_none_or(|p| p.is_deleted()))
}

/// Deletes a project: it is gone at once for every lookup and listing and
/// its path is free (see `project_index::delete_project`), then its packages are
/// deleted. Returns the project as it was and the files whose objects the
/// caller deletes, or `None` when there is no live project with this id.
///
/// A crash part-way leaves packages in a deleted project: no request can
/// reach them, and `genreg gc` counts their objects as unreferenced.
pub fn delete_project<K: KeyValue>(
    kv: &K,
    project_id: u64,
    now: Millis,
) -> Result<Option<(Project, Vec<PackageFile>)>, MetaError> {
    let Some(project) = project_index::delete_project(kv, project_id, now)? else {
        return Ok(None);
    };
    let mut files = Vec::new();
    for _ in 0..PACKAGE_DELETION_PASSES {
        let packages = super::package_summaries(kv, project_id)?;
        if packages.is_empty() {
            break;
        }
        for listed in packages {
            // The entry names the record: no lookup by id.
            let found = super::package(kv, project_id, &listed.name, &listed.version)?
                .filter(|p| p.id == listed.id);
            if let Some(found) = found {
                let deleted = super::remove_package(kv, &found, now)?;
                files.extend(deleted.unwrap_or_default());
            }
        }
    }
    Ok(Some((project, files)))
}

/// After a publish committed into `package_id`: if the project was deleted
/// meanwhile, deleting it may have gone over its packages before this one
/// was there, so the package is deleted here. Returns its files when that
/// happened (the publish then answers 404), `None` when the project lives.
pub fn forget_if_project_deleted<K: KeyValue>(
    kv: &K,
    project_id: u64,
    package_id: u64,
    now: Millis,
) -> Result<Option<Vec<PackageFile>>, MetaError> {
    if project(kv, &ProjectRef::Id(project_id))?.is_some() {
        return Ok(None);
    }
    let files = super::delete_package(kv, project_id, package_id, now)?;
    Ok(Some(files.unwrap_or_default()))
}
