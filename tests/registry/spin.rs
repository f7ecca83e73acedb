//! The same flows on both hosts: each scenario below runs once under real
//! `spin up` (`<scenario>::on_spin`, see [`host`]) and once under `genreg`
//! (`<scenario>::on_genreg`), so a difference between the hosts shows up as
//! one of the pair failing. Without a `spin` binary the `on_spin` half says
//! "skipped: spin not found (...)" and returns.

pub mod host;

use std::sync::Arc;

use genreg::genreg_token::{Role, Scope};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::*;
use host::SpinRegistry;

/// Variables every scenario runs with: 5 MiB parts, so an upload of a few
/// MiB already goes up as a multipart upload.
const VARIABLES: &[(&str, &str)] = &[("s3_part_size", "5242880")];

/// `mod <scenario> { on_spin, on_genreg }`, both calling
/// `<scenario>(Arc<registry>)`; the registry runs with [`VARIABLES`], or
/// with the variables given after `with`.
macro_rules! on_both_hosts {
    ($($scenario:ident $(with $variables:expr)?),* $(,)?) => {$(
        mod $scenario {
            #[allow(unused_variables)]
            fn variables() -> &'static [(&'static str, &'static str)] {
                let variables = super::VARIABLES;
                $(let variables = $variables;)?
                variables
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_spin() {
                if let Some(r) = super::SpinRegistry::start(variables()).await {
                    super::$scenario(std::sync::Arc::new(r)).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_genreg() {
                let r = crate::common::start_with(variables()).await;
                super::$scenario(std::sync::Arc::new(r)).await;
            }
        }
    )*};
}

on_both_hosts!(
    a_small_file_publishes_and_downloads,
    ranges_and_conditional_downloads,
    a_multipart_upload_round_trips,
    a_chunked_upload_round_trips,
    parallel_publishes_into_one_new_version_all_land,
    racing_duplicates_give_one_201,
    a_revoked_token_is_refused,
    the_packages_api_lists_shows_and_deletes,
    raw_paths_reach_the_component_undecoded,
    too_large_uploads_answer_413 with &[("max_file_size", "1048576")],
    refusals_come_before_the_body with &[("max_file_size", "1048576")],
    links_use_the_public_url with &[("public_url", "https://packages.example.com")],
    links_without_a_public_url_use_the_origin with &[("public_url", "")],
    parallel_project_creations_get_distinct_ids,
    a_large_upload_hands_its_sha256_to_a_helper_instance,
);

/// Spin's SQLite store after `genreg spin-store`: Spin keeps the file in WAL
/// mode (its writes land in the `-wal` log) and the publishes that lean on
/// its swaps and counters all land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_spin_a_store_in_wal_mode_takes_parallel_publishes() {
    let Some(r) = SpinRegistry::start_on_wal_store(VARIABLES).await else {
        return;
    };
    let r = Arc::new(r);
    parallel_publishes_into_one_new_version_all_land(r.clone()).await;
    let mut log = r.store_file().into_os_string();
    log.push("-wal");
    let written = std::fs::metadata(&log).map_or(0, |m| m.len());
    assert!(
        written > 0,
        "{} holds nothing: Spin did not write in WAL mode",
        std::path::Path::new(&log).display()
    );
}

/// The scenarios that lean on the key-value store's compare-and-swap and
/// counters, with the store on Redis: under `spin up` with
/// `[key_value_store.default] type = "redis"` (Spin 4.0.2's Redis store
/// misreports swaps, see README "Metadata that survives crashes") and under
/// `genreg --kv redis://...`. Each test runs its own `redis-server`; without
/// one it says "SKIPPED ..." and returns.
mod on_redis {
    macro_rules! on_both_hosts_with_redis {
        ($($scenario:ident),* $(,)?) => {$(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_spin() {
                    let test = concat!("spin::on_redis::", stringify!($scenario), "::on_spin");
                    let Some(redis) = crate::redis_server::RedisServer::start_or_skip(test) else {
                        return;
                    };
                    let url = redis.url(0);
                    let variables = crate::spin::VARIABLES;
                    if let Some(r) = crate::spin::SpinRegistry::start_on_redis(variables, &url).await {
                        crate::spin::$scenario(std::sync::Arc::new(r)).await;
                        super::assert_metadata_in(&redis);
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_genreg() {
                    let test = concat!("spin::on_redis::", stringify!($scenario), "::on_genreg");
                    let Some(redis) = crate::redis_server::RedisServer::start_or_skip(test) else {
                        return;
                    };
                    let r = crate::common::start_on_redis(&redis.url(0), crate::spin::VARIABLES).await;
                    crate::spin::$scenario(std::sync::Arc::new(r)).await;
                    super::assert_metadata_in(&redis);
                }
            }
        )*};
    }

    on_both_hosts_with_redis!(
        a_small_file_publishes_and_downloads,
        parallel_publishes_into_one_new_version_all_land,
        racing_duplicates_give_one_201,
        parallel_project_creations_get_distinct_ids,
        a_revoked_token_is_refused,
    );

    /// Spin 4.0.2's Redis store refuses `get-many` (it sends `KEYS` with the
    /// keys, which Redis rejects): a request asks it once at most, then
    /// reads key by key.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_spin_a_request_asks_for_get_many_at_most_once() {
        use crate::common::Target as _;
        let test = "spin::on_redis::on_spin_a_request_asks_for_get_many_at_most_once";
        let Some(redis) = crate::redis_server::RedisServer::start_or_skip(test) else {
            return;
        };
        let variables = crate::spin::VARIABLES;
        let Some(r) = crate::spin::SpinRegistry::start_on_redis(variables, &redis.url(0)).await
        else {
            return;
        };
        let refused = || redis.command_stat("keys", "rejected_calls");
        let id = super::new_project(&r, "acme", "private").await;
        let url = |file: &str| r.generic_url(&id.to_string(), &format!("tool/1.0.0/{file}"));
        let first = super::publish(&r, &url("a.bin"), super::data(10, 1)).await;
        assert_eq!(first, super::StatusCode::CREATED);

        // A publish into the package reads ahead before the body and reads
        // back after its write: two batches, one refusal.
        let before = refused();
        let second = super::publish(&r, &url("b.bin"), super::data(10, 2)).await;
        assert_eq!(second, super::StatusCode::CREATED);
        assert_eq!(refused() - before, 1);

        // By the project's path: the path's claim, which names the keys
        // to read ahead next, is read on its own after the refusal.
        let before = refused();
        let by_path = r.generic_url("acme%2Ftools", "tool/1.0.0/c.bin");
        let third = super::publish(&r, &by_path, super::data(10, 3)).await;
        assert_eq!(third, super::StatusCode::CREATED);
        assert_eq!(refused() - before, 1);

        // A listing reads its index shards, then its page's packages.
        let before = refused();
        let packages = r.at(&format!("/api/v4/projects/{id}/packages"));
        let list = r
            .as_admin(super::Method::GET, &packages)
            .send()
            .await
            .unwrap();
        assert_eq!(list.status(), super::StatusCode::OK);
        let listed: serde_json::Value = list.json().await.unwrap();
        assert_eq!(listed.as_array().map(Vec::len), Some(1));
        assert_eq!(refused() - before, 1);
    }

    /// The registry kept its metadata in this Redis server (database 0),
    /// not in a store of its own.
    fn assert_metadata_in(redis: &crate::redis_server::RedisServer) {
        let keys = key_count(redis.address());
        assert!(keys > 0, "no keys in Redis database 0");
    }

    /// `DBSIZE` of database 0, over a plain RESP exchange.
    fn key_count(address: std::net::SocketAddr) -> u64 {
        use std::io::{BufRead as _, Write as _};
        let mut stream = std::net::TcpStream::connect(address).expect("connecting to Redis");
        stream.write_all(b"DBSIZE\r\n").expect("sending DBSIZE");
        let mut answer = String::new();
        std::io::BufReader::new(stream)
            .read_line(&mut answer)
            .expect("reading the DBSIZE answer");
        answer
            .trim_end()
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("DBSIZE answered {answer:?}"))
    }
}

/// python-gitlab, unchanged, against the component under Spin (the
/// `genreg` half is `python_gitlab::python_gitlab_works_unchanged`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_gitlab_works_unchanged_on_spin() {
    if let Some(r) = SpinRegistry::start(VARIABLES).await {
        crate::python_gitlab::run_gitlab_client(&r).await;
    }
}

async fn new_project<T: Target>(r: &T, namespace: &str, visibility: &str) -> u64 {
    let response = r
        .as_admin(Method::POST, &r.at("/api/v4/projects"))
        .json(&json!({"path": "tools", "namespace_path": namespace, "visibility": visibility}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    json(response).await["id"].as_u64().unwrap()
}

async fn publish<T: Target>(r: &T, url: &str, body: Vec<u8>) -> StatusCode {
    r.as_admin(Method::PUT, url)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

async fn download<T: Target>(r: &T, url: &str) -> Vec<u8> {
    let response = r.as_admin(Method::GET, url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {url}");
    response.bytes().await.unwrap().to_vec()
}

async fn a_small_file_publishes_and_downloads<T: Target>(r: Arc<T>) {
    let id = new_project(&*r, "acme", "private").await;
    let bytes = data(1000, 1);
    let url = r.generic_url(&id.to_string(), "tool/1.0.0/linux/tool.bin");
    assert_eq!(publish(&*r, &url, bytes.clone()).await, StatusCode::CREATED);

    let response = r.as_admin(Method::GET, &url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["content-length"], "1000");
    assert_eq!(
        headers["x-checksum-sha256"].to_str().unwrap(),
        sha256_hex(&bytes)
    );
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"tool.bin\"; filename*=UTF-8''tool.bin"
    );
    assert_eq!(response.bytes().await.unwrap(), bytes);

    let head = r.as_admin(Method::HEAD, &url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], "1000");
    assert!(head.bytes().await.unwrap().is_empty());

    let anonymous = r.http().get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let missing = r.generic_url(&id.to_string(), "tool/1.0.0/other.bin");
    let missing = r.as_admin(Method::GET, &missing).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(json(missing).await, json!({"message": "404 Not found"}));
}

async fn ranges_and_conditional_downloads<T: Target>(r: Arc<T>) {
    let id = new_project(&*r, "acme", "private").await;
    let bytes = data(1000, 2);
    let url = r.generic_url(&id.to_string(), "t/1.0/a.bin");
    assert_eq!(publish(&*r, &url, bytes.clone()).await, StatusCode::CREATED);
    let ranged = |range: &'static str| r.as_admin(Method::GET, &url).header("Range", range).send();

    let response = ranged("bytes=10-19").await.unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.headers()["content-range"], "bytes 10-19/1000");
    assert_eq!(response.headers()["content-length"], "10");
    assert_eq!(response.bytes().await.unwrap(), bytes[10..20]);

    let response = ranged("bytes=-5").await.unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.bytes().await.unwrap(), bytes[995..]);

    let response = ranged("bytes=5000-").await.unwrap();
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(response.headers()["content-range"], "bytes */1000");

    let etag = format!("\"{}\"", sha256_hex(&bytes));
    let response = r
        .as_admin(Method::GET, &url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(response.headers()["etag"].to_str().unwrap(), etag);
}

/// Publishes `bytes` with `Content-Length` and returns the file record
/// (`select=package_file`).
async fn publish_for_record<T: Target>(r: &T, url: &str, bytes: &[u8]) -> Value {
    let response = r
        .as_admin(Method::PUT, &format!("{url}?select=package_file"))
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    json(response).await
}

/// Sends `bytes` as the body of `request`, chunked (no `Content-Length`),
/// in pieces of `piece` bytes.
async fn publish_chunked(
    request: reqwest::RequestBuilder,
    bytes: &[u8],
    piece: usize,
) -> reqwest::Response {
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(piece).map(|c| Ok(c.to_vec())).collect();
    request
        .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
        .send()
        .await
        .unwrap()
}

async fn a_multipart_upload_round_trips<T: Target>(r: Arc<T>) {
    let id = new_project(&*r, "acme", "private").await;
    // Three 5 MiB parts, the last one short.
    let bytes = data(11 * 1024 * 1024 + 17, 3);
    let url = r.generic_url(&id.to_string(), "t/1.0/big.bin");
    let record = publish_for_record(&*r, &url, &bytes).await;
    assert_eq!(record["file_sha256"], sha256_hex(&bytes));
    assert_eq!(record["size"], bytes.len());
    assert_eq!(download(&*r, &url).await, bytes);
}

async fn a_chunked_upload_round_trips<T: Target>(r: Arc<T>) {
    let id = new_project(&*r, "acme", "private").await;
    for (name, len) in [("small.bin", 1000), ("large.bin", 12 * 1024 * 1024 + 3)] {
        let bytes = data(len, 4);
        let url = r.generic_url(&id.to_string(), &format!("t/1.0/{name}"));
        let response = publish_chunked(r.as_admin(Method::PUT, &url), &bytes, 70_000).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{name}");
        let back = r.as_admin(Method::GET, &url).send().await.unwrap();
        assert_eq!(
            back.headers()["x-checksum-sha256"].to_str().unwrap(),
            sha256_hex(&bytes),
            "{name}"
        );
        assert_eq!(back.bytes().await.unwrap(), bytes, "{name}");
    }
}

async fn parallel_publishes_into_one_new_version_all_land<T: Target + 'static>(r: Arc<T>) {
    const FILES: u8 = 16;
    const BUSY_RETRIES: usize = 5;
    let id = new_project(&*r, "acme", "private").await;
    let uploads = (0..FILES).map(|i| {
        let r = r.clone();
        tokio::spawn(async move {
            let url = r.generic_url(&id.to_string(), &format!("burst/1.0/file-{i}.bin"));
            // While another request creates the package, a publish may wait
            // for it at most 3 s and then answer 503 with `Retry-After`
            // (README, "Metadata that survives crashes"); a client retries
            // that, as `curl --retry` does. Anything else must be a 201.
            for _ in 0..BUSY_RETRIES {
                let response = r
                    .as_admin(Method::PUT, &url)
                    .body(data(4096, i))
                    .send()
                    .await
                    .unwrap();
                let busy = response.status() == StatusCode::SERVICE_UNAVAILABLE
                    && response.headers().contains_key("retry-after");
                if !busy {
                    return (response.status(), response.text().await.unwrap());
                }
                eprintln!("upload {i}: 503 while the package is being created, retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy on every attempt".into(),
            )
        })
    });
    for (i, answer) in futures::future::join_all(uploads)
        .await
        .into_iter()
        .enumerate()
    {
        let (status, body) = answer.unwrap();
        assert_eq!(status, StatusCode::CREATED, "upload {i}: {body}");
    }

    let packages = r
        .as_admin(
            Method::GET,
            &r.at(&format!("/api/v4/projects/{id}/packages")),
        )
        .send()
        .await
        .unwrap();
    let packages = json(packages).await;
    assert_eq!(
        packages.as_array().unwrap().len(),
        1,
        "one package: {packages}"
    );
    let package = packages[0]["id"].as_u64().unwrap();
    let files = r
        .as_admin(
            Method::GET,
            &r.at(&format!(
                "/api/v4/projects/{id}/packages/{package}/package_files?per_page=100"
            )),
        )
        .send()
        .await
        .unwrap();
    let mut names: Vec<String> = json(files)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["file_name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    let mut expected: Vec<String> = (0..FILES).map(|i| format!("file-{i}.bin")).collect();
    expected.sort();
    assert_eq!(names, expected);
    for i in 0..FILES {
        let url = r.generic_url(&id.to_string(), &format!("burst/1.0/file-{i}.bin"));
        assert_eq!(download(&*r, &url).await, data(4096, i), "download {i}");
    }
}

async fn racing_duplicates_give_one_201<T: Target + 'static>(r: Arc<T>) {
    let id = new_project(&*r, "acme", "private").await;
    let response = r
        .as_admin(Method::PUT, &r.at("/api/v4/groups/acme/packages/settings"))
        .json(&json!({"generic_duplicates_allowed": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for round in 0..4 {
        let uploads = (0..2u8).map(|i| {
            let r = r.clone();
            tokio::spawn(async move {
                let url = r.generic_url(&id.to_string(), &format!("race/{round}/same.bin"));
                publish(&*r, &url, data(64 * 1024, i)).await
            })
        });
        let mut statuses: Vec<StatusCode> = futures::future::join_all(uploads)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::BAD_REQUEST],
            "round {round}"
        );
    }
}

async fn a_revoked_token_is_refused<T: Target>(r: Arc<T>) {
    let id = new_project(&*r, "acme", "private").await;
    let maintainer = r.mint(personal(&[Scope::Api], "acme/*", Role::Maintainer));
    let response = r
        .http()
        .post(r.at(&format!("/api/v4/projects/{id}/access_tokens")))
        .header("PRIVATE-TOKEN", &maintainer)
        .json(&json!({"name": "ci", "scopes": ["api"], "access_level": 30, "expires_at": date_in(30)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created = json(response).await;
    let token = created["token"].as_str().unwrap().to_string();
    let token_id = created["id"].as_u64().unwrap();

    let url = r.generic_url(&id.to_string(), "t/1.0/a.bin");
    let put_with_token = || {
        r.http()
            .put(&url)
            .header("PRIVATE-TOKEN", &token)
            .body(data(100, 5))
            .send()
    };
    assert_eq!(
        put_with_token().await.unwrap().status(),
        StatusCode::CREATED
    );

    let revoke = r
        .http()
        .delete(r.at(&format!("/api/v4/projects/{id}/access_tokens/{token_id}")))
        .header("PRIVATE-TOKEN", &maintainer)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    let refused = put_with_token().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(refused).await, json!({"message": "401 Unauthorized"}));
    let download = r
        .http()
        .get(&url)
        .header("PRIVATE-TOKEN", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::UNAUTHORIZED);
    // The maintainer's own token still works.
    let still = r
        .http()
        .get(&url)
        .header("PRIVATE-TOKEN", &maintainer)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), StatusCode::OK);
}

async fn the_packages_api_lists_shows_and_deletes<T: Target>(r: Arc<T>) {
    let id = new_project(&*r, "acme", "private").await;
    for (version, file) in [("1.0", "a.bin"), ("1.0", "b.bin"), ("2.0", "a.bin")] {
        let url = r.generic_url(&id.to_string(), &format!("tool/{version}/{file}"));
        assert_eq!(publish(&*r, &url, data(500, 6)).await, StatusCode::CREATED);
    }
    let packages_url = r.at(&format!("/api/v4/projects/{id}/packages"));
    let list = r.as_admin(Method::GET, &packages_url).send().await.unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    assert_eq!(list.headers()["x-total"], "2");
    let list = json(list).await;
    let versions: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.0", "2.0"]);
    assert!(list.as_array().unwrap().iter().all(|p| p["name"] == "tool"));
    let first = list[0]["id"].as_u64().unwrap();

    let show = r
        .as_admin(Method::GET, &format!("{packages_url}/{first}"))
        .send()
        .await
        .unwrap();
    assert_eq!(show.status(), StatusCode::OK);
    let show: Value = json(show).await;
    assert_eq!(show["version"], "1.0");
    assert_eq!(show["versions"].as_array().unwrap().len(), 1, "{show}");
    assert_eq!(show["versions"][0]["version"], "2.0");
    let files = r
        .as_admin(
            Method::GET,
            &format!("{packages_url}/{first}/package_files"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(json(files).await.as_array().unwrap().len(), 2);

    let deleted = r
        .as_admin(Method::DELETE, &format!("{packages_url}/{first}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let list = json(r.as_admin(Method::GET, &packages_url).send().await.unwrap()).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["version"], "2.0");
    let gone = r.generic_url(&id.to_string(), "tool/1.0/a.bin");
    let gone = r.as_admin(Method::GET, &gone).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let kept = r.generic_url(&id.to_string(), "tool/2.0/a.bin");
    assert_eq!(download(&*r, &kept).await, data(500, 6));
}

/// Paths an URL library would normalise, sent as they are: the host passes
/// them to the component without decoding, so its traversal checks answer.
async fn raw_paths_reach_the_component_undecoded<T: Target>(r: Arc<T>) {
    let id = new_project(&*r, "acme", "private").await;
    let cases: &[(&str, &str)] = &[
        (
            "%2E%2E/1.0/a.bin",
            "package_name should be a valid file path",
        ),
        (
            "t/%2E%2E/a.bin",
            "package_version should be a valid file path",
        ),
        ("t/1.0/%2E%2E", "file_name should be a valid file path"),
        (
            "t/1.0/x/%2E%2E%2F%2E%2E/a.bin",
            "path should be a valid file path",
        ),
        ("t/1.0/%252e%252e/a.bin", "path should be a valid file path"),
        ("t/1.0/a%5C..%5Cb/a.bin", "path should be a valid file path"),
        ("t/1.0/%2Fetc/a.bin", "path should be a valid file path"),
        ("my%20tool/1.0/a.bin", "package_name is invalid"),
        (
            "t/1.0/a.bin?status=gone",
            "status does not have a valid value",
        ),
    ];
    let admin = r.admin_token();
    let auth = [("PRIVATE-TOKEN", admin.as_str())];
    for (rest, message) in cases {
        let path = format!("/api/v4/projects/{id}/packages/generic/{rest}");
        let (status, body) = raw(&*r, "PUT", &path, &auth, b"x").await;
        assert_eq!(status, 400, "PUT {rest}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body, json!({"error": message}), "PUT {rest}");
    }
    // A path with encoded slashes in the file's own path is fine.
    let path = format!("/api/v4/projects/{id}/packages/generic/t/1.0/linux%2Famd64/a.bin");
    let (status, body) = raw(&*r, "PUT", &path, &auth, b"x").await;
    assert_eq!(status, 201, "{body}");
}

/// A body over `max_file_size` (1 MiB here) answers 413, announced by
/// `Content-Length` or found while streaming, and nothing is recorded.
async fn too_large_uploads_answer_413<T: Target>(r: Arc<T>) {
    let id = new_project(&*r, "acme", "private").await;
    let url = r.generic_url(&id.to_string(), "t/1.0/a.bin");
    let too_big = data(1024 * 1024 + 1, 7);

    let response = r
        .as_admin(Method::PUT, &url)
        .body(too_big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        json(response).await,
        json!({"message": "413 Request Entity Too Large"})
    );

    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        too_big.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let response = r
        .as_admin(Method::PUT, &url)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let missing = r.as_admin(Method::GET, &url).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // Exactly the limit is fine.
    assert_eq!(
        publish(&*r, &url, data(1024 * 1024, 7)).await,
        StatusCode::CREATED
    );
}

/// The head of the first final (non-1xx) answer to a request head sent
/// without its body; panics if the connection closes first or nothing
/// comes within a minute (a host that waits for the body never answers).
async fn answer_to_head_alone<T: Target>(r: &T, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = r.base_url().trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = head.replace("{address}", &address);
    stream.write_all(head.as_bytes()).await.unwrap();
    let read = async {
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(
                n > 0,
                "closed without an answer: {:?}",
                String::from_utf8_lossy(&answer)
            );
            answer.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&answer).into_owned();
            let final_head = text
                .split("\r\n\r\n")
                .find(|head| head.starts_with("HTTP/1.1 ") && !head.starts_with("HTTP/1.1 1"));
            if let Some(head) = final_head {
                if text.contains(&format!("{head}\r\n\r\n")) {
                    return head.to_string();
                }
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), read)
        .await
        .expect("an answer before the body is sent")
}

/// Refusals that need no body (no credentials, too large by
/// `Content-Length`) answer while the client still holds the body back,
/// with or without `Expect: 100-continue`.
async fn refusals_come_before_the_body<T: Target>(r: Arc<T>) {
    let id = new_project(&*r, "acme", "private").await;
    let path = format!("/api/v4/projects/{id}/packages/generic/t/1.0/a.bin");
    let admin = r.admin_token();
    for expect in ["", "Expect: 100-continue\r\n"] {
        let anonymous = format!(
            "PUT {path} HTTP/1.1\r\nHost: {{address}}\r\nContent-Length: 10485760\r\n{expect}\r\n"
        );
        let head = answer_to_head_alone(&*r, &anonymous).await;
        assert!(head.starts_with("HTTP/1.1 401"), "{expect:?}: {head}");

        let too_large = format!(
            "PUT {path} HTTP/1.1\r\nHost: {{address}}\r\nPRIVATE-TOKEN: {admin}\r\nContent-Length: 10485760\r\n{expect}\r\n"
        );
        let head = answer_to_head_alone(&*r, &too_large).await;
        assert!(head.starts_with("HTTP/1.1 413"), "{expect:?}: {head}");
    }
}

/// Pagination links and web paths start with the configured `public_url`,
/// whatever address the request came to.
async fn links_use_the_public_url<T: Target>(r: Arc<T>) {
    links_start_with(&*r, |path| format!("https://packages.example.com{path}")).await;
}

/// Without `public_url`, links are absolute all the same, on the origin the
/// request was sent to (`spin-full-url`), so clients can follow them.
async fn links_without_a_public_url_use_the_origin<T: Target>(r: Arc<T>) {
    links_start_with(&*r, |path| r.at(path)).await;
}

/// Publishes two versions, then checks the `next` pagination link and the
/// project's `web_url` are `absolute(path)`.
async fn links_start_with<T: Target>(r: &T, absolute: impl Fn(&str) -> String) {
    let id = new_project(r, "acme", "private").await;
    for version in ["1.0", "2.0"] {
        let url = r.generic_url(&id.to_string(), &format!("tool/{version}/a.bin"));
        assert_eq!(publish(r, &url, data(10, 8)).await, StatusCode::CREATED);
    }
    let list = r
        .as_admin(
            Method::GET,
            &r.at(&format!("/api/v4/projects/{id}/packages?per_page=1")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    let link = list.headers()["link"].to_str().unwrap().to_string();
    let next = absolute(&format!("/api/v4/projects/{id}/packages?page=2&per_page=1"));
    assert!(link.contains(&format!("<{next}>; rel=\"next\"")), "{link}");
    let project = r
        .as_admin(Method::GET, &r.at(&format!("/api/v4/projects/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(json(project).await["web_url"], absolute("/acme/tools"));
}

/// Projects created in parallel take distinct ids from the store's counter,
/// and each id leads to the project it was answered for.
async fn parallel_project_creations_get_distinct_ids<T: Target + 'static>(r: Arc<T>) {
    const PROJECTS: usize = 8;
    let creations = (0..PROJECTS).map(|i| {
        let r = r.clone();
        tokio::spawn(async move {
            let body = json!({"path": format!("tool-{i}"), "namespace_path": "acme"});
            send_retrying_busy(|| {
                r.as_admin(Method::POST, &r.at("/api/v4/projects"))
                    .json(&body)
            })
            .await
        })
    });
    let mut ids = Vec::new();
    for (i, answer) in futures::future::join_all(creations)
        .await
        .into_iter()
        .enumerate()
    {
        let (status, body) = answer.unwrap();
        assert_eq!(status, StatusCode::CREATED, "project {i}: {body}");
        let project: Value = serde_json::from_str(&body).unwrap();
        ids.push(project["id"].as_u64().unwrap());
    }
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), PROJECTS, "ids {ids:?}");
    for (i, id) in ids.into_iter().enumerate() {
        let project = r
            .as_admin(Method::GET, &r.at(&format!("/api/v4/projects/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(project.status(), StatusCode::OK, "project {id}");
        assert_eq!(json(project).await["path"], format!("tool-{i}"));
    }
}

/// The helper endpoint answers only the registry's own instances, and a
/// large upload (past 8 MiB, with a length and chunked) gets its SHA-256
/// from a helper instance: Spin allows the self request (no warning that
/// the upload hashed on itself) and the digests are those of the bytes.
async fn a_large_upload_hands_its_sha256_to_a_helper_instance<T: Target>(r: Arc<T>) {
    use generic_registry::blob::sha256_helper::{self as helper, CREDENTIAL_HEADER, STATE_HEADER};
    use generic_registry::checksum::Checksums;
    use md5::Digest as _;

    let helper_url = r.at(helper::PATH);
    let refused = r
        .http()
        .post(&helper_url)
        .body("world")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(refused).await["message"], "401 Unauthorized");
    let mut hello = Checksums::default();
    hello.update(b"hello ");
    let answer = r
        .http()
        .post(&helper_url)
        .header(
            CREDENTIAL_HEADER,
            helper::credential(r.secrets(), now_secs()),
        )
        .header(STATE_HEADER, hello.sha256_state())
        .body("world")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let answer = json(answer).await;
    assert_eq!(answer["size"], 5);
    let mut rest = hello.hand_off_sha256();
    rest.update(b"world");
    let state = answer["state"].as_str().unwrap();
    let whole = Checksums::rejoin(rest, state).unwrap().finish();
    assert_eq!(whole.sha256, sha256_hex(b"hello world"));

    let id = new_project(&*r, "acme", "private").await;
    let bytes = data(20 * 1024 * 1024 + 5, 9);
    let url = r.generic_url(&id.to_string(), "t/1.0/sized.bin");
    let record = publish_for_record(&*r, &url, &bytes).await;
    assert_eq!(record["file_sha256"], sha256_hex(&bytes));
    assert_eq!(record["file_md5"], hex::encode(md5::Md5::digest(&bytes)));
    assert_eq!(record["file_sha1"], hex::encode(sha1::Sha1::digest(&bytes)));
    let url = r.generic_url(&id.to_string(), "t/1.0/chunked.bin");
    let publish = r
        .as_admin(Method::PUT, &url)
        .header("X-Checksum-SHA256", sha256_hex(&bytes));
    let response = publish_chunked(publish, &bytes, 100_000).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(download(&*r, &url).await, bytes);
    if let Some(output) = r.host_output() {
        assert!(!output.contains("SHA-256 helper"), "{output}");
    }
}
