//! `genreg gc` for a deployment whose store gc cannot read: the component
//! under `spin up` with its metadata in Redis and its files in an embedded
//! S3 server. gc learns the referenced objects through the registry's API
//! (`--registry`) and reaches the bucket as external S3.
//!
//! Without `spin` or `redis-server` the test prints "skipped: ..." and
//! returns.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use genreg::gc::{self, GcConfig, Outcome};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::*;
use crate::redis_server::RedisServer;
use crate::spin::host::{find_spin, Shared, SpinRegistry};

/// The files published, `package/version/file`; the last one is deleted.
const FILES: [&str; 4] = [
    "tools/1.0/a.bin",
    "tools/1.0/b.bin",
    "tools/2.0/c.bin",
    "tools/2.0/gone.bin",
];

/// Objects put straight into the bucket: the first two under `files/` are
/// orphans, the last is outside `files/` and never gc's business.
const STRAY_OBJECTS: [&str; 3] = ["files/orphan-1", "files/orphan-2", "other/keep"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_through_spin_on_redis_deletes_exactly_the_orphans() {
    if let Err(looked) = find_spin() {
        eprintln!("skipped: spin not found ({looked})");
        return;
    }
    let Some(redis) = RedisServer::start_or_skip("gc_on_spin") else {
        return;
    };
    let s3_dir = tempfile::tempdir().expect("temporary directory");
    let s3 = genreg::EmbeddedS3Server::start(s3_dir.path())
        .await
        .expect("embedded S3 server starts");
    let token_secret = genreg::data_dir::random_hex(32);
    let redis_url = redis.url(0);
    let shared = Shared {
        s3: s3.access(),
        token_secret: &token_secret,
        redis_url: &redis_url,
    };
    let spin = SpinRegistry::start_shared(&[], &shared)
        .await
        .expect("spin was found above");
    let admin = spin.admin_token();

    let project = create_project(&spin).await;
    for file in FILES {
        publish(&spin, project, file).await;
    }
    let before_delete = referenced(&spin).await;
    assert_eq!(before_delete.len(), FILES.len(), "{before_delete:?}");
    delete_file(&spin, project, "gone.bin").await;
    let live = referenced(&spin).await;
    assert_eq!(live.len(), FILES.len() - 1, "{live:?}");
    // The deleted file's object, as if the delete's cleanup had failed.
    let deleted_object = before_delete.difference(&live).next().unwrap().clone();

    let bucket = s3.root().join(&s3.access().bucket);
    assert!(
        !bucket.join(&deleted_object).exists(),
        "the delete removes its object"
    );
    for key in STRAY_OBJECTS
        .iter()
        .copied()
        .chain([deleted_object.as_str()])
    {
        put_object(&bucket, key, key.as_bytes());
    }
    let mut orphans: Vec<String> = vec![
        STRAY_OBJECTS[0].to_string(),
        STRAY_OBJECTS[1].to_string(),
        deleted_object,
    ];
    orphans.sort();

    let config = |dry_run| gc_config(&spin, s3.access(), &admin, dry_run);
    let report = gc::run(&config(true)).await.unwrap();
    assert_eq!(outcomes(&report), with(&orphans, Outcome::WouldDelete));
    assert_eq!((report.referenced, report.objects), (live.len(), 6));
    assert!(report.missing.is_empty(), "{report:?}");
    for key in &orphans {
        assert!(bucket.join(key).is_file(), "dry run deleted {key}");
    }

    let report = gc::run(&config(false)).await.unwrap();
    assert_eq!(outcomes(&report), with(&orphans, Outcome::Deleted));
    for key in &orphans {
        assert!(!bucket.join(key).exists(), "{key} was not deleted");
    }
    assert!(
        bucket.join("other/keep").is_file(),
        "outside files/ deleted"
    );
    let report = gc::run(&config(false)).await.unwrap();
    assert_eq!(report.summary(), "3 objects, 0 unreferenced, 0 deleted");

    for file in &FILES[..FILES.len() - 1] {
        let url = spin.generic_url(&project.to_string(), file);
        let response = spin.as_admin(Method::GET, &url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{file}");
        assert_eq!(response.bytes().await.unwrap(), file.as_bytes(), "{file}");
    }
}

/// gc as `genreg gc --registry URL --token TOKEN --s3-...` runs it: no data
/// directory, no grace period.
fn gc_config(spin: &SpinRegistry, s3: &genreg::S3Access, token: &str, dry_run: bool) -> GcConfig {
    GcConfig {
        s3: genreg::S3Config::External {
            endpoint: s3.endpoint.clone(),
            bucket: s3.bucket.clone(),
            region: s3.region.clone(),
            access_key_id: s3.access_key_id.clone(),
            secret_access_key: s3.secret_access_key.clone(),
        },
        registry: Some(gc::RegistryAccess {
            url: spin.base_url(),
            token: token.to_string(),
        }),
        min_age: Duration::ZERO,
        dry_run,
        // Two keys a page, so listings and the registry's cursor are followed.
        page_size: 2,
        ..GcConfig::new("/nonexistent/genreg-data")
    }
}

/// The object keys the registry names as referenced.
async fn referenced(spin: &SpinRegistry) -> BTreeSet<String> {
    let access = gc::RegistryAccess {
        url: spin.base_url(),
        token: spin.admin_token(),
    };
    gc::registry_references(&access, 2)
        .await
        .expect("the registry names its objects")
        .into_iter()
        .collect()
}

/// Each unreferenced object with what gc did to it.
fn outcomes(report: &gc::Report) -> Vec<(String, Outcome)> {
    report
        .unreferenced
        .iter()
        .map(|orphan| (orphan.key.clone(), orphan.outcome.clone()))
        .collect()
}

fn with(keys: &[String], outcome: Outcome) -> Vec<(String, Outcome)> {
    keys.iter()
        .map(|key| (key.clone(), outcome.clone()))
        .collect()
}

/// Writes an object into the embedded server's bucket directory, as
/// something outside the registry would have left it.
fn put_object(bucket: &Path, key: &str, body: &[u8]) {
    let path: PathBuf = bucket.join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, body).unwrap();
}

async fn create_project(spin: &SpinRegistry) -> u64 {
    let response = spin
        .as_admin(Method::POST, &spin.at("/api/v4/projects"))
        .json(&json!({"path": "tools", "namespace_path": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    json(response).await["id"].as_u64().unwrap()
}

/// Publishes `file` with its own path as content.
async fn publish(spin: &SpinRegistry, project: u64, file: &str) {
    let url = spin.generic_url(&project.to_string(), file);
    let response = spin
        .as_admin(Method::PUT, &url)
        .body(file.as_bytes().to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{file}");
}

/// An administrator's GET, its JSON body.
async fn get_json(spin: &SpinRegistry, url: &str) -> Value {
    let response = spin.as_admin(Method::GET, url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    json(response).await
}

/// Deletes the package file named `file_name` through the API.
async fn delete_file(spin: &SpinRegistry, project: u64, file_name: &str) {
    let packages = spin.at(&format!("/api/v4/projects/{project}/packages"));
    let packages = get_json(spin, &packages).await;
    for package in packages.as_array().unwrap() {
        let files = spin.at(&format!(
            "/api/v4/projects/{project}/packages/{}/package_files",
            package["id"]
        ));
        let files = get_json(spin, &files).await;
        let found = files
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["file_name"] == file_name);
        if let Some(found) = found {
            let url = spin.at(&format!(
                "/api/v4/projects/{project}/packages/{}/package_files/{}",
                package["id"], found["id"]
            ));
            let response = spin.as_admin(Method::DELETE, &url).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::NO_CONTENT);
            return;
        }
    }
    panic!("no package file named {file_name}");
}
