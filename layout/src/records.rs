//! The records the component stores as JSON and `genreg gc` reads back:
//! projects, packages with their newest files, the sealed segments holding
//! their older files, and the file records that point into the bucket.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::keys;

/// Milliseconds since the Unix epoch; rendered as ISO 8601 at the API edge.
pub type Millis = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Private,
    Public,
}

impl Visibility {
    pub fn parse(s: &str) -> Option<Visibility> {
        match s {
            "private" => Some(Visibility::Private),
            "public" => Some(Visibility::Public),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Public => "public",
        }
    }
}

/// `v1/project/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: u64,
    pub name: String,
    /// The project's own slug, the last segment of its full path.
    pub path: String,
    /// The namespace (group path) it belongs to, e.g. `acme/platform`.
    pub namespace: String,
    pub visibility: Visibility,
    pub created_at: Millis,
    /// Set when the project was deleted (`DELETE /projects/:id`). The record
    /// stays, as keys are never deleted; the project is gone for every
    /// endpoint and its path may be taken by a new project. Packages left
    /// in it by a deletion cut short reference nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Millis>,
}

impl Project {
    pub fn full_path(&self) -> String {
        format!("{}/{}", self.namespace, self.path)
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageStatus {
    Default,
    Hidden,
}

impl PackageStatus {
    pub fn parse(s: &str) -> Option<PackageStatus> {
        match s {
            "default" => Some(PackageStatus::Default),
            "hidden" => Some(PackageStatus::Hidden),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PackageStatus::Default => "default",
            PackageStatus::Hidden => "hidden",
        }
    }
}

/// One version of one package in a project, with its files:
/// `v1/pkg/<project id>/<name>/<version>`.
///
/// `F` is how its files are held: decoded ([`PackageFile`]), or as the
/// JSON text they are stored as ([`RawFile`]), for a write that adds a
/// file and carries the others through unread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package<F = PackageFile> {
    pub id: u64,
    pub project_id: u64,
    pub name: String,
    pub version: String,
    pub status: PackageStatus,
    pub created_at: Millis,
    pub updated_at: Millis,
    #[serde(default)]
    pub last_downloaded_at: Option<Millis>,
    /// The newest files, oldest first; the same file name may appear
    /// several times. Older files are sealed into `segments`.
    pub files: Vec<F>,
    /// Older files, in immutable segments, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<SegmentRef>,
    /// Set when the package was deleted. The record stays (keys are never
    /// deleted); publishing the same name and version again starts a new
    /// package with a new id in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Millis>,
    /// The shard of the project's package index that lists it. Packages
    /// created before records carried it are found through `pkg-id/<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_shard: Option<u64>,
    /// The file ids this package hands out next, a block drawn from the
    /// file sequence, so that most publishes into it draw no id of their
    /// own. Records written before blocks have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_ids: Option<IdBlock>,
}

/// File ids `next..end`, drawn from the file sequence for one package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdBlock {
    pub next: u64,
    pub end: u64,
}

/// A file record as the JSON text it is stored as.
pub type RawFile = Box<RawValue>;

impl<F> Package<F> {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// How many files the package holds, sealed ones included.
    pub fn file_count(&self) -> u64 {
        let sealed: u64 = self.segments.iter().map(|s| u64::from(s.files)).sum();
        sealed + self.files.len() as u64
    }

    /// The key of the package's record.
    pub fn record_key(&self) -> String {
        keys::package(self.project_id, &self.name, &self.version)
    }

    /// The key of one of this package's segments.
    pub fn segment_key(&self, segment: &SegmentRef) -> String {
        keys::package_segment(self.id, &segment.digest)
    }
}

impl Package<RawFile> {
    /// The record with its files decoded.
    pub fn decode_files(self) -> Result<Package, serde_json::Error> {
        let files = self
            .files
            .iter()
            .map(|raw| serde_json::from_str(raw.get()))
            .collect::<Result<_, _>>()?;
        Ok(Package {
            id: self.id,
            project_id: self.project_id,
            name: self.name,
            version: self.version,
            status: self.status,
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_downloaded_at: self.last_downloaded_at,
            files,
            segments: self.segments,
            deleted_at: self.deleted_at,
            index_shard: self.index_shard,
            file_ids: self.file_ids,
        })
    }
}

impl Package {
    /// The newest file stored under this name among the record's own
    /// files (the segments hold older ones).
    pub fn newest_file(&self, stored_name: &str) -> Option<&PackageFile> {
        self.files.iter().rev().find(|f| f.file_name == stored_name)
    }

    /// Whether the record itself holds the file with this id.
    pub fn has_file(&self, file_id: u64) -> bool {
        self.files.iter().any(|f| f.id == file_id)
    }
}

/// A sealed segment of a package's files: the digest that names its key and
/// how many files it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    pub digest: String,
    pub files: u32,
    /// The smallest and largest file id in the segment, so a retry can
    /// tell without reading it that a file is not there.
    pub min_id: u64,
    pub max_id: u64,
}

/// The files of one segment, `v1/pkg-files/<package id>/<digest>`, where
/// the digest is taken over their ids. Written once, never changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub files: Vec<PackageFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageFile {
    pub id: u64,
    /// As stored: `path/file_name` URL-encoded as one component.
    pub file_name: String,
    pub size: u64,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
    /// Where the bytes are in the bucket (under [`keys::OBJECT_PREFIX`]).
    pub object_key: String,
    pub created_at: Millis,
}

impl PackageFile {
    /// The file's record as the JSON text it is stored as.
    pub fn to_raw(&self) -> RawFile {
        serde_json::value::to_raw_value(self).expect("file records always serialize")
    }
}

/// `v1/upload-session/<project>/<id>` (ours): a file being uploaded to S3
/// in parts by a client, then read back and hashed by the registry in
/// steps, then committed as a publish commits it. Written only by the
/// session's own requests; gone once the file is committed or refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSession {
    /// 32 hex digits, random.
    pub id: String,
    pub project_id: u64,
    pub package_name: String,
    pub package_version: String,
    /// As stored: `path/file_name` URL-encoded as one component.
    pub file_name: String,
    /// The package status the commit sets, when the session asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PackageStatus>,
    pub size: u64,
    /// The whole file's sha256 the client announced, lowercase hex.
    pub sha256: String,
    pub part_size: u64,
    /// The object the parts become (under [`keys::OBJECT_PREFIX`]).
    pub object_key: String,
    /// The S3 multipart upload the parts go to.
    pub upload_id: String,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub state: SessionState,
    /// While verifying: the hash state after the bytes read so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashed: Option<HashState>,
    /// Set once the whole file matched: the id its file record gets, so
    /// that committing it twice records it once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<u64>,
    /// The digests of the whole file, once read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digests: Option<FileDigests>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// Parts are being sent to S3.
    Uploading,
    /// S3 joined the parts; the registry reads the object back in steps.
    Verifying,
    /// The object did not match the announced sha256; it is being removed.
    Failed,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Uploading => "uploading",
            SessionState::Verifying => "verifying",
            SessionState::Failed => "failed",
        }
    }
}

/// Hashing stopped part of the way: md5's, sha1's and sha256's serialized
/// states (base64) after `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashState {
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
    pub size: u64,
}

/// A whole file's digests, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigests {
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
}

/// One entry of a project's upload session index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSessionEntry {
    pub id: String,
    /// What a client resuming names: a digest of the package, version,
    /// file name, size and sha256.
    pub identity: String,
    pub expires_at: Millis,
}

/// How long after its expiry an upload session still counts as referenced:
/// longer than any request that read it while it was live can still run,
/// so `genreg gc` never removes the object of a session such a request is
/// committing. Once past it, gc removes the session's records, upload and
/// object.
pub const SESSION_COLLECTION_GRACE_MS: Millis = 60 * 60 * 1000;

/// Whether a session that expires at `expires_at` may be collected at `now`.
pub fn session_collectable(expires_at: Millis, now: Millis) -> bool {
    now >= expires_at.saturating_add(SESSION_COLLECTION_GRACE_MS)
}

/// The name of [`PackageFile::object_key`] in stored JSON.
const OBJECT_KEY_FIELD: &str = "object_key";

/// Every string stored under a field named like [`PackageFile::object_key`],
/// anywhere in a record's JSON. A reader that must never lose an object
/// (`genreg gc`) takes these on top of the typed fields, so a record written
/// by a newer component that keeps object keys in a field this version does
/// not know still keeps its objects.
pub fn object_keys_anywhere(record: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    walk_object_keys(record, &mut keys);
    keys
}

fn walk_object_keys(value: &Value, keys: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (name, inner) in map {
                match inner {
                    Value::String(key) if name == OBJECT_KEY_FIELD => keys.push(key.clone()),
                    _ => walk_object_keys(inner, keys),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk_object_keys(v, keys)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: u64, object_key: &str) -> PackageFile {
        PackageFile {
            id,
            file_name: format!("f{id}"),
            size: 1,
            md5: String::new(),
            sha1: String::new(),
            sha256: String::new(),
            object_key: object_key.into(),
            created_at: 0,
        }
    }

    #[test]
    fn the_object_key_field_is_the_one_file_records_are_stored_with() {
        let json = serde_json::to_value(file(1, "files/a")).unwrap();
        assert_eq!(json[OBJECT_KEY_FIELD], "files/a");
    }

    #[test]
    fn object_keys_are_found_wherever_they_are() {
        let mut record = serde_json::json!({ "files": [file(1, "files/a")] });
        record["pending"] = serde_json::json!([{ "object_key": "files/upload" }]);
        record["note"] = serde_json::json!({ "object_key": 7 });
        let mut keys = object_keys_anywhere(&record);
        keys.sort();
        assert_eq!(keys, ["files/a", "files/upload"]);
    }

    #[test]
    fn records_without_optional_fields_decode() {
        let package: Package = serde_json::from_str(
            r#"{"id":3,"project_id":1,"name":"p","version":"1.0","status":"hidden",
                "created_at":0,"updated_at":0,"files":[]}"#,
        )
        .unwrap();
        assert_eq!(package.status, PackageStatus::Hidden);
        assert!(package.segments.is_empty() && !package.is_deleted());
        let project: Project = serde_json::from_str(
            r#"{"id":1,"name":"t","path":"t","namespace":"acme","visibility":"public","created_at":0}"#,
        )
        .unwrap();
        assert_eq!(project.full_path(), "acme/t");
        assert!(!project.is_deleted());
    }

    #[test]
    fn segment_keys_are_named_by_package_and_digest() {
        let package = Package {
            id: 7,
            project_id: 1,
            name: "p".into(),
            version: "1.0".into(),
            status: PackageStatus::Default,
            created_at: 0,
            updated_at: 0,
            last_downloaded_at: None,
            files: vec![file(9, "files/a")],
            segments: vec![],
            deleted_at: None,
            index_shard: None,
            file_ids: None,
        };
        let segment = SegmentRef {
            digest: "abc".into(),
            files: 1,
            min_id: 1,
            max_id: 1,
        };
        assert_eq!(package.segment_key(&segment), "v1/pkg-files/7/abc");
        assert!(package.has_file(9) && !package.has_file(1));
        assert_eq!(package.newest_file("f9").map(|f| f.id), Some(9));
    }
}
