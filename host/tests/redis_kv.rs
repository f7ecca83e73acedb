//! The registry under genreg with its metadata in Redis (`--kv redis://`):
//! a real `redis-server` started on a free loopback port, the component
//! served by `genreg::Registry`, requests over HTTP. Skipped, with a printed
//! reason, where `redis-server` is not installed.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::path::Path;
use std::sync::Arc;

use genreg::{Config, KvConfig, Registry};
use redis_server::RedisServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

const PARALLEL_PUBLISHES: usize = 16;

async fn start(data: &Path, redis: &RedisServer) -> Registry {
    let mut config = Config::new(data);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.kv = KvConfig::Redis { url: redis.url(0) };
    Registry::start(config).await.expect("registry starts")
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Client {
    fn of(registry: &Registry) -> Client {
        Client {
            http: reqwest::Client::new(),
            url: registry.url(),
            token: registry.admin_token().to_string(),
        }
    }

    async fn create_project(&self, namespace: &str, path: &str) -> u64 {
        let response = self
            .http
            .post(format!("{}/api/v4/projects", self.url))
            .header("PRIVATE-TOKEN", &self.token)
            .json(&json!({ "path": path, "namespace_path": namespace }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let project: Value = response.json().await.unwrap();
        project["id"].as_u64().unwrap()
    }

    async fn forbid_duplicates(&self, namespace: &str) {
        let response = self
            .http
            .put(format!(
                "{}/api/v4/groups/{namespace}/packages/settings",
                self.url
            ))
            .header("PRIVATE-TOKEN", &self.token)
            .json(&json!({ "generic_duplicates_allowed": false }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    async fn publish(&self, project: u64, package: &str, file: &str, body: Vec<u8>) -> StatusCode {
        self.http
            .put(format!(
                "{}/api/v4/projects/{project}/packages/generic/{package}/{file}",
                self.url
            ))
            .header("PRIVATE-TOKEN", &self.token)
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn download(&self, project: u64, package: &str, file: &str) -> (StatusCode, Vec<u8>) {
        let response = self
            .http
            .get(format!(
                "{}/api/v4/projects/{project}/packages/generic/{package}/{file}",
                self.url
            ))
            .header("PRIVATE-TOKEN", &self.token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.bytes().await.unwrap().to_vec())
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}/api/v4{path}", self.url))
            .header("PRIVATE-TOKEN", &self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json().await.unwrap()
    }

    /// The file names of the project's only package, sorted.
    async fn listed_files(&self, project: u64) -> Vec<String> {
        let packages = self
            .get_json(&format!("/projects/{project}/packages"))
            .await;
        let packages = packages.as_array().unwrap();
        assert_eq!(packages.len(), 1, "{packages:?}");
        let package_id = packages[0]["id"].as_u64().unwrap();
        let files = self
            .get_json(&format!(
                "/projects/{project}/packages/{package_id}/package_files?per_page=100"
            ))
            .await;
        let mut names: Vec<String> = files
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["file_name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }
}

fn body_of(i: usize) -> Vec<u8> {
    format!("file {i} ").repeat(100).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_publishes_into_a_new_package_all_land_in_redis() {
    let Some(redis) = RedisServer::start_or_skip("genreg on redis: parallel publishes") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let registry = start(data.path(), &redis).await;
    let client = Arc::new(Client::of(&registry));
    let project = client.create_project("acme", "tools").await;

    let publishes: Vec<_> = (0..PARALLEL_PUBLISHES)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let file = format!("f{i:02}.bin");
                client.publish(project, "tool/1.0", &file, body_of(i)).await
            })
        })
        .collect();
    for (i, publish) in publishes.into_iter().enumerate() {
        assert_eq!(publish.await.unwrap(), StatusCode::CREATED, "publish {i}");
    }
    let expected: Vec<String> = (0..PARALLEL_PUBLISHES)
        .map(|i| format!("f{i:02}.bin"))
        .collect();
    assert_eq!(client.listed_files(project).await, expected);
    let (status, bytes) = client.download(project, "tool/1.0", "f07.bin").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, body_of(7));

    // The metadata is in Redis, not in the data directory: a registry
    // started on another data directory (a fresh bucket) but the same
    // database lists the same files.
    registry.shutdown().await;
    assert!(!genreg::data_dir::keyvalue_path(data.path()).exists());
    let elsewhere = tempfile::tempdir().unwrap();
    let second = start(elsewhere.path(), &redis).await;
    assert_eq!(Client::of(&second).listed_files(project).await, expected);
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_uploads_of_one_name_without_duplicates_give_one_201() {
    let Some(redis) = RedisServer::start_or_skip("genreg on redis: duplicate race") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let registry = start(data.path(), &redis).await;
    let client = Arc::new(Client::of(&registry));
    let project = client.create_project("strict", "tools").await;
    client.forbid_duplicates("strict").await;

    for round in 0..4 {
        let uploads: Vec<_> = (0..2)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move {
                    let package = format!("race/{round}");
                    client
                        .publish(project, &package, "same.bin", body_of(i))
                        .await
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for upload in uploads {
            statuses.push(upload.await.unwrap());
        }
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::BAD_REQUEST],
            "round {round}"
        );
    }
    registry.shutdown().await;
}
