//! The JSON shapes clients see, built from metadata records.

use serde_json::{json, Value};

use crate::api::iso8601;
use crate::meta::model::{Package, PackageFile, Project};

pub fn project(project: &Project, public_url: &str) -> Value {
    let full_path = project.full_path();
    json!({
        "id": project.id,
        "name": project.name,
        "path": project.path,
        "path_with_namespace": full_path,
        "name_with_namespace": format!("{} / {}", project.namespace.replace('/', " / "), project.name),
        "visibility": project.visibility.as_str(),
        "created_at": iso8601(project.created_at),
        "web_url": format!("{public_url}/{full_path}"),
        "namespace": {
            "name": project.namespace.rsplit('/').next().unwrap_or_default(),
            "path": project.namespace.rsplit('/').next().unwrap_or_default(),
            "full_path": project.namespace,
            "kind": "group",
        },
        "packages_enabled": true,
    })
}

/// GitLab's package file record, as `select=package_file` answers it.
pub fn package_file_record(project: &Project, package: &Package, file: &PackageFile) -> Value {
    let url = format!(
        "/api/v4/projects/{}/packages/generic/{}/{}/{}",
        project.id, package.name, package.version, file.file_name
    );
    json!({
        "id": file.id,
        "package_id": package.id,
        "created_at": iso8601(file.created_at),
        "updated_at": iso8601(file.created_at),
        "size": file.size,
        "file_store": 2,
        "file_md5": file.md5,
        "file_sha1": file.sha1,
        "file_name": file.file_name,
        "file": { "url": url },
        "file_sha256": file.sha256,
        "verification_retry_at": null,
        "verified_at": null,
        "verification_failure": null,
        "verification_retry_count": 0,
        "verification_checksum": null,
        "verification_state": 0,
        "verification_started_at": null,
        "status": "default",
        "file_final_path": null,
        "project_id": project.id,
        "new_file_path": null,
    })
}
