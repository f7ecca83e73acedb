//! `genreg gc` against a real registry: the component under genreg with its
//! embedded S3 server, files published over HTTP, an orphan object put
//! straight into the bucket.

use std::path::Path;
use std::time::Duration;

use genreg::gc::{self, GcConfig, Outcome};
use reqwest::StatusCode;
use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};

const SIGNED_FOR: Duration = Duration::from_secs(600);

async fn start(data: &Path) -> genreg::Registry {
    let mut config = genreg::Config::new(data);
    config.listen = "127.0.0.1:0".parse().unwrap();
    genreg::Registry::start(config)
        .await
        .expect("registry starts")
}

/// Puts `body` at `key` in the registry's bucket with a presigned PUT.
async fn put_object(registry: &genreg::Registry, key: &str, body: &'static [u8]) {
    let s3 = registry.s3();
    let bucket = Bucket::new(
        s3.endpoint.parse().unwrap(),
        UrlStyle::Path,
        s3.bucket,
        s3.region,
    )
    .unwrap();
    let credentials = Credentials::new(s3.access_key_id, s3.secret_access_key);
    let url = bucket.put_object(Some(&credentials), key).sign(SIGNED_FOR);
    let response = reqwest::Client::new()
        .put(url)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

fn object_path(data: &Path, key: &str) -> std::path::PathBuf {
    genreg::data_dir::s3_root(data).join("genreg").join(key)
}

/// Two keys per listing page, so every run follows continuation tokens.
fn config(data: &Path, min_age: Duration, dry_run: bool) -> GcConfig {
    GcConfig {
        min_age,
        dry_run,
        page_size: 2,
        ..GcConfig::new(data)
    }
}

#[tokio::test]
async fn gc_deletes_only_unreferenced_objects_under_files() {
    let data = tempfile::tempdir().unwrap();
    let registry = start(data.path()).await;
    let client = reqwest::Client::new();
    let token = registry.admin_token().to_string();

    let response = client
        .post(format!("{}/api/v4/projects", registry.url()))
        .header("PRIVATE-TOKEN", &token)
        .json(&serde_json::json!({ "path": "tools", "namespace_path": "acme" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let project: serde_json::Value = response.json().await.unwrap();
    let id = project["id"].as_u64().unwrap();
    let file_url = |name: &str| {
        format!(
            "{}/api/v4/projects/{id}/packages/generic/p/1.0/{name}",
            registry.url()
        )
    };
    for (name, body) in [("a.bin", "alpha"), ("b.bin", "bravo")] {
        let response = client
            .put(file_url(name))
            .header("PRIVATE-TOKEN", &token)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{name}");
    }
    put_object(&registry, "files/orphan", b"nobody points here").await;
    // Outside files/: gc must neither list nor delete it.
    put_object(&registry, "other/keep", b"not ours").await;

    // While the registry runs: gc's own S3 server must leave the running
    // one's files alone (s3s-fs clears `.tmp.*` files of its root at start:
    // those are uploads in flight).
    let in_flight = genreg::data_dir::s3_root(data.path()).join(".tmp.999.internal.part");
    std::fs::write(&in_flight, b"half an upload").unwrap();
    let report = gc::run(&config(data.path(), Duration::ZERO, true))
        .await
        .unwrap();
    assert_eq!(report.unreferenced.len(), 1, "{report:?}");
    assert!(in_flight.is_file(), "gc removed a running upload's file");
    std::fs::remove_file(&in_flight).unwrap();
    registry.shutdown().await;
    assert!(object_path(data.path(), "files/orphan").is_file());

    // Dry run: the orphan is listed, nothing is deleted.
    let report = gc::run(&config(data.path(), Duration::ZERO, true))
        .await
        .unwrap();
    assert_eq!(report.records, 1);
    assert_eq!(report.referenced, 2);
    assert_eq!(report.objects, 3, "{report:?}");
    assert!(report.missing.is_empty(), "{report:?}");
    let listed: Vec<_> = report
        .unreferenced
        .iter()
        .map(|o| (o.key.as_str(), o.outcome.clone()))
        .collect();
    assert_eq!(listed, [("files/orphan", Outcome::WouldDelete)]);
    assert_eq!(report.unreferenced[0].size, Some(18));
    assert_eq!(
        report.summary(),
        "3 objects, 1 unreferenced, 0 deleted (dry run: 1 would be deleted)"
    );
    assert!(object_path(data.path(), "files/orphan").is_file());

    // Within the grace period: reported, kept.
    let report = gc::run(&config(data.path(), gc::DEFAULT_MIN_AGE, false))
        .await
        .unwrap();
    assert_eq!(report.unreferenced.len(), 1);
    assert_eq!(report.unreferenced[0].outcome, Outcome::Skipped);
    assert_eq!(report.deleted(), 0);
    assert!(object_path(data.path(), "files/orphan").is_file());

    // No grace period: the orphan goes, and only the orphan.
    let report = gc::run(&config(data.path(), Duration::ZERO, false))
        .await
        .unwrap();
    let listed: Vec<_> = report
        .unreferenced
        .iter()
        .map(|o| (o.key.as_str(), o.outcome.clone()))
        .collect();
    assert_eq!(listed, [("files/orphan", Outcome::Deleted)]);
    assert_eq!(report.summary(), "3 objects, 1 unreferenced, 1 deleted");
    assert!(!object_path(data.path(), "files/orphan").exists());
    assert!(object_path(data.path(), "other/keep").is_file());

    // A second run finds nothing more.
    let report = gc::run(&config(data.path(), Duration::ZERO, false))
        .await
        .unwrap();
    assert_eq!(report.summary(), "2 objects, 0 unreferenced, 0 deleted");

    // After a restart both files still download.
    let registry = start(data.path()).await;
    let file_url = |name: &str| {
        format!(
            "{}/api/v4/projects/{id}/packages/generic/p/1.0/{name}",
            registry.url()
        )
    };
    for (name, body) in [("a.bin", "alpha"), ("b.bin", "bravo")] {
        let response = client
            .get(file_url(name))
            .header("PRIVATE-TOKEN", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        assert_eq!(response.text().await.unwrap(), body);
    }
    registry.shutdown().await;
}

#[tokio::test]
async fn gc_refuses_without_a_key_value_database() {
    // A directory that is no data directory at all: nothing is created.
    let empty = tempfile::tempdir().unwrap();
    let error = gc::run(&config(empty.path(), Duration::ZERO, false))
        .await
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("key-value database"), "{message}");
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);

    // A bucket with objects but an unreadable database: nothing is deleted.
    let data = tempfile::tempdir().unwrap();
    let registry = start(data.path()).await;
    put_object(&registry, "files/x", b"x").await;
    registry.shutdown().await;
    let db = genreg::data_dir::keyvalue_path(data.path());
    std::fs::remove_file(&db).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::write(
        &db,
        b"this is not a database, but long enough to look like a file",
    )
    .unwrap();
    assert!(gc::run(&config(data.path(), Duration::ZERO, false))
        .await
        .is_err());
    assert!(object_path(data.path(), "files/x").is_file());
}

/// Starts a multipart upload of `key` in the registry's bucket, sends one
/// part and leaves it open, as a publish cut by a crash would. Returns its id.
async fn open_upload(registry: &genreg::Registry, key: &str) -> String {
    let s3 = registry.s3();
    let bucket = Bucket::new(
        s3.endpoint.parse().unwrap(),
        UrlStyle::Path,
        s3.bucket,
        s3.region,
    )
    .unwrap();
    let credentials = Credentials::new(s3.access_key_id, s3.secret_access_key);
    let client = reqwest::Client::new();
    let url = bucket
        .create_multipart_upload(Some(&credentials), key)
        .sign(SIGNED_FOR);
    let answer = client.post(url).send().await.unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    let xml = answer.text().await.unwrap();
    let id = rusty_s3::actions::CreateMultipartUpload::parse_response(&xml)
        .unwrap()
        .upload_id()
        .to_string();
    let url = bucket
        .upload_part(Some(&credentials), key, 1, &id)
        .sign(SIGNED_FOR);
    let answer = client.put(url).body(&b"part"[..]).send().await.unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    id
}

/// Makes an open upload of the embedded server look initiated `age` ago
/// (it keeps the time as the modification time of the upload's file).
fn backdate_upload(data: &Path, upload_id: &str, age: Duration) {
    let info = genreg::data_dir::s3_root(data).join(format!(".upload-{upload_id}.json"));
    let file = std::fs::File::options().write(true).open(&info).unwrap();
    file.set_modified(std::time::SystemTime::now() - age)
        .unwrap();
}

#[tokio::test]
async fn gc_aborts_uploads_left_open_past_the_grace_period() {
    let data = tempfile::tempdir().unwrap();
    let registry = start(data.path()).await;
    // gc refuses a key-value store without registry data.
    let response = reqwest::Client::new()
        .post(format!("{}/api/v4/projects", registry.url()))
        .header("PRIVATE-TOKEN", registry.admin_token())
        .json(&serde_json::json!({ "path": "tools", "namespace_path": "acme" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let old = open_upload(&registry, "files/crashed").await;
    let young = open_upload(&registry, "files/running").await;
    let outside = open_upload(&registry, "other/upload").await;
    backdate_upload(data.path(), &old, Duration::from_secs(2 * 3600));
    backdate_upload(data.path(), &outside, Duration::from_secs(2 * 3600));

    let outcomes = |report: &gc::Report| -> Vec<(String, String, Outcome)> {
        report
            .open_uploads
            .iter()
            .map(|u| (u.key.clone(), u.upload_id.clone(), u.outcome.clone()))
            .collect()
    };
    // Dry run: listed, nothing aborted (two uploads per listing page).
    let report = gc::run(&config(data.path(), gc::DEFAULT_MIN_AGE, true))
        .await
        .unwrap();
    assert_eq!(
        outcomes(&report),
        [
            ("files/crashed".into(), old.clone(), Outcome::WouldDelete),
            ("files/running".into(), young.clone(), Outcome::Skipped),
        ]
    );
    assert_eq!(
        report.summary(),
        "0 objects, 0 unreferenced, 0 deleted; 2 open uploads, 0 aborted \
         (dry run: 0 would be deleted, 1 would be aborted, 1 younger than 1h skipped)"
    );

    // The old one is aborted, the young one (maybe still running) kept,
    // and nothing outside files/ is touched.
    let report = gc::run(&config(data.path(), gc::DEFAULT_MIN_AGE, false))
        .await
        .unwrap();
    assert_eq!(
        outcomes(&report),
        [
            ("files/crashed".into(), old.clone(), Outcome::Deleted),
            ("files/running".into(), young.clone(), Outcome::Skipped),
        ]
    );
    assert_eq!(
        report.open_uploads[0].to_string().split(" (").next(),
        Some(format!("aborted upload {old} of files/crashed").as_str())
    );
    let report = gc::run(&config(data.path(), gc::DEFAULT_MIN_AGE, false))
        .await
        .unwrap();
    assert_eq!(
        outcomes(&report),
        [("files/running".into(), young.clone(), Outcome::Skipped)]
    );
    let root = genreg::data_dir::s3_root(data.path());
    let left: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(&old))
        .collect();
    assert!(left.is_empty(), "the aborted upload left {left:?}");
    assert!(root.join(format!(".upload-{outside}.json")).is_file());
    registry.shutdown().await;
}

/// gc for a deployment whose store gc cannot read: the referenced keys come
/// from the running registry's API, the bucket is reached as external S3.
fn api_config(
    registry: &genreg::Registry,
    token: &str,
    min_age: Duration,
    dry_run: bool,
) -> GcConfig {
    let s3 = registry.s3();
    GcConfig {
        s3: genreg::S3Config::External {
            endpoint: s3.endpoint,
            bucket: s3.bucket,
            region: s3.region,
            access_key_id: s3.access_key_id,
            secret_access_key: s3.secret_access_key,
        },
        registry: Some(gc::RegistryAccess {
            url: registry.url(),
            token: token.to_string(),
        }),
        // No data directory: everything goes through the registry and S3.
        ..config(Path::new("/nonexistent/genreg-data"), min_age, dry_run)
    }
}

#[tokio::test]
async fn gc_through_the_registry_api_deletes_exactly_the_orphans() {
    let data = tempfile::tempdir().unwrap();
    let registry = start(data.path()).await;
    let client = reqwest::Client::new();
    let token = registry.admin_token().to_string();
    let create = |path: &'static str| {
        client
            .post(format!("{}/api/v4/projects", registry.url()))
            .header("PRIVATE-TOKEN", &token)
            .json(&serde_json::json!({ "path": path, "namespace_path": "acme" }))
            .send()
    };
    let tools = create("tools").await.unwrap();
    assert_eq!(tools.status(), StatusCode::CREATED);
    let tools = tools.json::<serde_json::Value>().await.unwrap()["id"].clone();
    let gone = create("gone").await.unwrap();
    assert_eq!(gone.status(), StatusCode::CREATED);
    let gone = gone.json::<serde_json::Value>().await.unwrap()["id"].clone();
    let files = [
        (&tools, "p/1.0/a.bin"),
        (&tools, "p/1.0/b.bin"),
        (&tools, "p/1.0/c.bin"),
        (&tools, "q/2.0/d.bin"),
        (&gone, "g/1.0/e.bin"),
    ];
    for (project, rest) in files {
        let url = format!(
            "{}/api/v4/projects/{project}/packages/generic/{rest}",
            registry.url()
        );
        let response = client
            .put(url)
            .header("PRIVATE-TOKEN", &token)
            .body(rest.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{rest}");
    }
    let deleted = client
        .delete(format!("{}/api/v4/projects/{gone}", registry.url()))
        .header("PRIVATE-TOKEN", &token)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    put_object(&registry, "files/orphan-1", b"one").await;
    put_object(&registry, "files/orphan-2", b"two").await;
    put_object(&registry, "other/keep", b"not ours").await;

    // The registry names exactly what gc reads from genreg's own database
    // (two keys a page, so the cursor is followed).
    let access = gc::RegistryAccess {
        url: registry.url(),
        token: token.clone(),
    };
    let from_api = gc::registry_references(&access, 2).await.unwrap();
    let db = genreg::data_dir::keyvalue_path(data.path());
    let store = genreg::keyvalue::SqliteStore::open_existing(&db).unwrap();
    let from_db = gc::collect_references(&store).unwrap().keys;
    drop(store);
    assert_eq!(from_api.len(), 4, "{from_api:?}");
    assert_eq!(from_api, from_db);

    let orphans = |report: &gc::Report| -> Vec<(String, Outcome)> {
        report
            .unreferenced
            .iter()
            .map(|o| (o.key.clone(), o.outcome.clone()))
            .collect()
    };
    let both = |outcome: Outcome| {
        vec![
            ("files/orphan-1".to_string(), outcome.clone()),
            ("files/orphan-2".to_string(), outcome),
        ]
    };

    // A token that is no administrator's: the run stops, nothing deleted.
    let refused = gc::run(&api_config(&registry, "glpat-nope", Duration::ZERO, false))
        .await
        .unwrap_err();
    assert!(format!("{refused:#}").contains("401"), "{refused:#}");

    let report = gc::run(&api_config(&registry, &token, Duration::ZERO, true))
        .await
        .unwrap();
    assert_eq!(orphans(&report), both(Outcome::WouldDelete));
    assert_eq!((report.referenced, report.objects), (4, 6));
    assert!(report.missing.is_empty(), "{report:?}");

    let report = gc::run(&api_config(&registry, &token, gc::DEFAULT_MIN_AGE, false))
        .await
        .unwrap();
    assert_eq!(orphans(&report), both(Outcome::Skipped));

    let report = gc::run(&api_config(&registry, &token, Duration::ZERO, false))
        .await
        .unwrap();
    assert_eq!(orphans(&report), both(Outcome::Deleted));
    assert!(!object_path(data.path(), "files/orphan-1").exists());
    assert!(object_path(data.path(), "other/keep").is_file());
    let report = gc::run(&api_config(&registry, &token, Duration::ZERO, false))
        .await
        .unwrap();
    assert_eq!(report.summary(), "4 objects, 0 unreferenced, 0 deleted");

    for (project, rest) in &files[..4] {
        let url = format!(
            "{}/api/v4/projects/{project}/packages/generic/{rest}",
            registry.url()
        );
        let response = client
            .get(url)
            .header("PRIVATE-TOKEN", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{rest}");
        assert_eq!(response.text().await.unwrap(), *rest);
    }
    registry.shutdown().await;
}

/// Upload sessions as gc meets them: one still uploading, one whose parts
/// S3 joined (the registry is verifying it), one expired more than an hour
/// ago. All three began long before gc's grace period.
struct Sessions {
    project: u64,
    uploading: genreg_layout::records::UploadSession,
    verifying: genreg_layout::records::UploadSession,
    expired: genreg_layout::records::UploadSession,
}

const SESSION_FILE: &[u8] = b"ten bytes!";

fn session_record(
    data: &Path,
    project: u64,
    id: &str,
) -> Option<genreg_layout::records::UploadSession> {
    let db = genreg::data_dir::keyvalue_path(data);
    let store = genreg::keyvalue::SqliteStore::open_existing(&db).unwrap();
    let value = store
        .get(&genreg_layout::keys::upload_session(project, id))
        .unwrap()?;
    Some(serde_json::from_slice(&value).unwrap())
}

fn session_index_ids(data: &Path, project: u64) -> Vec<String> {
    let db = genreg::data_dir::keyvalue_path(data);
    let store = genreg::keyvalue::SqliteStore::open_existing(&db).unwrap();
    let value = store
        .get(&genreg_layout::keys::upload_session_index(project))
        .unwrap()
        .unwrap_or_else(|| b"[]".to_vec());
    let entries: Vec<genreg_layout::records::UploadSessionEntry> =
        serde_json::from_slice(&value).unwrap();
    entries.into_iter().map(|e| e.id).collect()
}

/// Creates a session for `name` (one part: [`SESSION_FILE`]) and sends its
/// part straight to S3; returns the session's JSON.
async fn session_with_its_part(
    registry: &genreg::Registry,
    project: u64,
    name: &str,
) -> serde_json::Value {
    use sha2::Digest as _;
    let client = reqwest::Client::new();
    let token = registry.admin_token();
    let sha256 = hex::encode(sha2::Sha256::digest(SESSION_FILE));
    let created = client
        .post(format!(
            "{}/api/v4/projects/{project}/packages/generic/tool/1.0/{name}",
            registry.url()
        ))
        .header("PRIVATE-TOKEN", token)
        .json(&serde_json::json!({ "size": SESSION_FILE.len(), "sha256": sha256 }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED, "{name}");
    let session: serde_json::Value = created.json().await.unwrap();
    let link: serde_json::Value = client
        .post(format!(
            "{}/api/v4/projects/{project}/packages/upload_sessions/{}/parts/1",
            registry.url(),
            session["id"].as_str().unwrap()
        ))
        .header("PRIVATE-TOKEN", token)
        .json(&serde_json::json!({ "size": SESSION_FILE.len(), "sha256": sha256 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut put = client.put(link["url"].as_str().unwrap()).body(SESSION_FILE);
    for (name, value) in link["headers"].as_object().unwrap() {
        put = put.header(name.as_str(), value.as_str().unwrap());
    }
    let sent = put.send().await.unwrap();
    assert!(sent.status().is_success(), "{}", sent.status());
    session
}

/// POSTs `complete` once; returns its status.
async fn complete_once(registry: &genreg::Registry, project: u64, id: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!(
            "{}/api/v4/projects/{project}/packages/upload_sessions/{id}/complete",
            registry.url()
        ))
        .header("PRIVATE-TOKEN", registry.admin_token())
        .send()
        .await
        .unwrap()
        .status()
}

/// Makes a file of the bucket look modified `age` ago.
fn backdate_object(data: &Path, key: &str, age: Duration) {
    let file = std::fs::File::options()
        .write(true)
        .open(object_path(data, key))
        .unwrap();
    file.set_modified(std::time::SystemTime::now() - age)
        .unwrap();
}

/// Rewrites a session's record and index entry as if it had been created
/// `age` ago.
fn age_session(data: &Path, project: u64, id: &str, age: Duration) {
    use genreg_layout::keys;
    use genreg_layout::records::{UploadSession, UploadSessionEntry};
    let db = genreg::data_dir::keyvalue_path(data);
    let store = genreg::keyvalue::SqliteStore::open(&db).unwrap();
    let age = age.as_millis() as i64;
    let key = keys::upload_session(project, id);
    let mut session: UploadSession =
        serde_json::from_slice(&store.get(&key).unwrap().unwrap()).unwrap();
    session.created_at -= age;
    session.expires_at -= age;
    store
        .set(&key, &serde_json::to_vec(&session).unwrap())
        .unwrap();
    let index = keys::upload_session_index(project);
    let mut entries: Vec<UploadSessionEntry> =
        serde_json::from_slice(&store.get(&index).unwrap().unwrap()).unwrap();
    for entry in entries.iter_mut().filter(|e| e.id == id) {
        entry.expires_at = session.expires_at;
    }
    store
        .set(&index, &serde_json::to_vec(&entries).unwrap())
        .unwrap();
}

async fn three_sessions(registry: &genreg::Registry, data: &Path) -> Sessions {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v4/projects", registry.url()))
        .header("PRIVATE-TOKEN", registry.admin_token())
        .json(&serde_json::json!({ "path": "tools", "namespace_path": "acme" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let project = response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap();
    let mut ids = Vec::new();
    for name in ["uploading.bin", "verifying.bin", "expired.bin"] {
        let session = session_with_its_part(registry, project, name).await;
        ids.push(session["id"].as_str().unwrap().to_string());
    }
    // S3 joins the parts: the registry is about to read the object back.
    assert_eq!(
        complete_once(registry, project, &ids[1]).await,
        StatusCode::ACCEPTED
    );
    let two_hours = Duration::from_secs(2 * 3600);
    age_session(data, project, &ids[2], Duration::from_secs(26 * 3600));
    let record = |id: &str| session_record(data, project, id).unwrap();
    let sessions = Sessions {
        project,
        uploading: record(&ids[0]),
        verifying: record(&ids[1]),
        expired: record(&ids[2]),
    };
    backdate_upload(data, &sessions.uploading.upload_id, two_hours);
    backdate_upload(data, &sessions.expired.upload_id, two_hours);
    backdate_object(data, &sessions.verifying.object_key, two_hours);
    sessions
}

/// After a collecting run: the live sessions kept their upload and joined
/// object and still complete; the expired one is gone from S3 and from
/// the key-value store.
async fn check_sessions_after_gc(
    registry: &genreg::Registry,
    data: &Path,
    sessions: &Sessions,
    report: &gc::Report,
) {
    let project = sessions.project;
    let aborted: Vec<_> = report
        .open_uploads
        .iter()
        .map(|u| (u.upload_id.as_str(), u.outcome.clone()))
        .collect();
    assert_eq!(
        aborted,
        [(sessions.expired.upload_id.as_str(), Outcome::Deleted)]
    );
    assert!(report.unreferenced.is_empty(), "{report:?}");
    assert!(report.missing.is_empty(), "{report:?}");
    assert_eq!((report.upload_sessions, report.expired_sessions), (2, 1));
    let root = genreg::data_dir::s3_root(data);
    let upload_file = |id: &str| root.join(format!(".upload-{id}.json"));
    assert!(!upload_file(&sessions.expired.upload_id).exists());
    assert!(upload_file(&sessions.uploading.upload_id).is_file());
    assert!(object_path(data, &sessions.verifying.object_key).is_file());
    assert_eq!(session_record(data, project, &sessions.expired.id), None);
    let mut listed = session_index_ids(data, project);
    listed.sort();
    let mut live = vec![sessions.uploading.id.clone(), sessions.verifying.id.clone()];
    live.sort();
    assert_eq!(listed, live);

    // Both live sessions complete, and their files download.
    for session in [&sessions.uploading, &sessions.verifying] {
        let mut status = StatusCode::ACCEPTED;
        for _ in 0..10 {
            status = complete_once(registry, project, &session.id).await;
            if status != StatusCode::ACCEPTED {
                break;
            }
        }
        assert_eq!(status, StatusCode::CREATED, "{}", session.file_name);
        let body = reqwest::Client::new()
            .get(format!(
                "{}/api/v4/projects/{project}/packages/generic/tool/1.0/{}",
                registry.url(),
                session.file_name
            ))
            .header("PRIVATE-TOKEN", registry.admin_token())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&body[..], SESSION_FILE);
    }
}

#[tokio::test]
async fn gc_keeps_live_upload_sessions_and_collects_expired_ones() {
    let data = tempfile::tempdir().unwrap();
    let registry = start(data.path()).await;
    let sessions = three_sessions(&registry, data.path()).await;

    // Dry run: the expired session would go, nothing changes.
    let report = gc::run(&config(data.path(), gc::DEFAULT_MIN_AGE, true))
        .await
        .unwrap();
    assert_eq!((report.upload_sessions, report.expired_sessions), (2, 1));
    assert_eq!(report.open_uploads.len(), 1, "{report:?}");
    assert_eq!(report.open_uploads[0].outcome, Outcome::WouldDelete);
    assert!(session_record(data.path(), sessions.project, &sessions.expired.id).is_some());

    let report = gc::run(&config(data.path(), gc::DEFAULT_MIN_AGE, false))
        .await
        .unwrap();
    assert_eq!(
        report.summary(),
        "1 objects, 0 unreferenced, 0 deleted; 1 open uploads, 1 aborted; \
         2 upload sessions kept, 1 expired removed"
    );
    check_sessions_after_gc(&registry, data.path(), &sessions, &report).await;
    registry.shutdown().await;
}

#[tokio::test]
async fn gc_through_the_registry_api_keeps_live_upload_sessions_and_collects_expired_ones() {
    let data = tempfile::tempdir().unwrap();
    let registry = start(data.path()).await;
    let sessions = three_sessions(&registry, data.path()).await;
    let token = registry.admin_token().to_string();

    // Dry run: the registry only reads.
    let report = gc::run(&api_config(&registry, &token, gc::DEFAULT_MIN_AGE, true))
        .await
        .unwrap();
    assert_eq!((report.upload_sessions, report.expired_sessions), (2, 1));
    assert_eq!(report.open_uploads.len(), 1, "{report:?}");
    assert_eq!(report.open_uploads[0].outcome, Outcome::WouldDelete);
    assert!(session_record(data.path(), sessions.project, &sessions.expired.id).is_some());

    let report = gc::run(&api_config(&registry, &token, gc::DEFAULT_MIN_AGE, false))
        .await
        .unwrap();
    check_sessions_after_gc(&registry, data.path(), &sessions, &report).await;
    registry.shutdown().await;
}
