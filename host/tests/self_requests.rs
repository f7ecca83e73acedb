//! Self requests under `genreg up`: a large publish hands its SHA-256 to a
//! second instance through a self request, which genreg answers in its own
//! process. The access log shows the helper's request, the publish counting
//! it, and no warning that the upload hashed on itself.

#[path = "support/process.rs"]
mod process;

use std::path::Path;
use std::time::Duration;

use genreg::request_counts::Counted;
use process::Genreg;
use reqwest::StatusCode;
use serde_json::Value;

/// How long a log line may take to appear after its answer was read; only
/// there so a missing line fails instead of hanging.
const LOG_AT_MOST: Duration = Duration::from_secs(30);

/// The first line of `log` that starts with `prefix`, once it is there.
async fn log_line(log: &Path, prefix: &str) -> String {
    let found = tokio::time::timeout(LOG_AT_MOST, async {
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.starts_with(prefix)) {
                return line.to_string();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no line {prefix:?} in the log:\n{}", process::tail(log)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_publish_hands_its_sha256_to_a_helper_instance() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = dir.path().join("genreg.log");
    let genreg = Genreg::start(&dir.path().join("data"), &log).await;
    let client = reqwest::Client::new();
    let project: Value = client
        .post(format!("{}/api/v4/projects", genreg.url))
        .header("PRIVATE-TOKEN", &genreg.admin_token)
        .json(&serde_json::json!({ "path": "tools", "namespace_path": "acme" }))
        .send()
        .await
        .expect("project creation answers")
        .json()
        .await
        .expect("a project");

    // Past the 8 MiB after which the SHA-256 is handed off.
    let body: Vec<u8> = (0..20 * 1024 * 1024 + 5).map(|i| (i % 251) as u8).collect();
    let url = format!(
        "{}/api/v4/projects/{}/packages/generic/tool/1.0/big.bin",
        genreg.url, project["id"]
    );
    let published = client
        .put(&url)
        .header("PRIVATE-TOKEN", &genreg.admin_token)
        .body(body)
        .send()
        .await
        .expect("the publish answers");
    assert_eq!(published.status(), StatusCode::CREATED);
    published.bytes().await.expect("the publish's answer");

    log_line(&log, "POST /-/sha256 200 ").await;
    let publish = log_line(&log, "PUT /api/v4/projects/").await;
    let counted = Counted::from_log_line(&publish).expect("the publish's counts");
    assert_eq!(counted.self_requests, 1, "{publish}");
    let text = std::fs::read_to_string(&log).expect("the log");
    assert!(!text.contains("SHA-256 helper"), "{text}");
    genreg.kill9().await;
}
