//! Several instances on one store: two `genreg` and two `spin up` with their
//! metadata in one Redis database, their files in one S3 bucket (one
//! embedded S3 server) and one token secret, as behind a load balancer.
//! Requests go round-robin over the four, so every write races writes made
//! through other processes, and every read may come from any of them.
//!
//! Without `spin` or `redis-server` the test prints "skipped: ..." and
//! returns.

use std::sync::Arc;

use genreg::genreg_token::{Role, Scope};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::*;
use crate::redis_server::RedisServer;
use crate::spin::host::{find_spin, Shared, SpinRegistry};

/// Files published in parallel into one new package.
const PARALLEL_FILES: usize = 64;

/// 1 KiB per published file.
const FILE_SIZE: usize = 1024;

/// The registries a test talks to, and what they share; dropped in this
/// order (instances first, then the S3 and Redis servers they use).
struct Cluster {
    /// `genreg`, `genreg`, `spin up`, `spin up`.
    instances: Vec<Arc<dyn Target>>,
    _s3: genreg::EmbeddedS3Server,
    _redis: RedisServer,
    _s3_dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts the four instances; `None` (after saying why) without `spin`
    /// or `redis-server`.
    async fn start() -> Option<Cluster> {
        if let Err(looked) = find_spin() {
            eprintln!("skipped: spin not found ({looked})");
            return None;
        }
        let redis = RedisServer::start_or_skip("multi_instance")?;
        let redis_url = redis.url(0);
        let s3_dir = tempfile::tempdir().expect("temporary directory");
        let s3 = genreg::EmbeddedS3Server::start(s3_dir.path())
            .await
            .expect("embedded S3 server starts");
        let token_secret = genreg::data_dir::random_hex(32);
        let shared = Shared {
            s3: s3.access(),
            token_secret: &token_secret,
            redis_url: &redis_url,
        };
        // Started together: each compiles the component.
        let (genreg_a, genreg_b, spin_a, spin_b) = tokio::join!(
            start_genreg(&shared),
            start_genreg(&shared),
            SpinRegistry::start_shared(&[], &shared),
            SpinRegistry::start_shared(&[], &shared),
        );
        let spin_a = spin_a.expect("spin was found above");
        let spin_b = spin_b.expect("spin was found above");
        let instances: Vec<Arc<dyn Target>> = vec![
            Arc::new(genreg_a),
            Arc::new(genreg_b),
            Arc::new(spin_a),
            Arc::new(spin_b),
        ];
        Some(Cluster {
            instances,
            _s3: s3,
            _redis: redis,
            _s3_dir: s3_dir,
        })
    }

    /// The instance the `n`th request goes to (round-robin).
    fn pick(&self, n: usize) -> Arc<dyn Target> {
        self.instances[n % self.instances.len()].clone()
    }
}

/// A `genreg` on the shared Redis database and S3 bucket, signing and
/// checking tokens with the shared secret (written to its data directory,
/// where `genreg` keeps it).
async fn start_genreg(shared: &Shared<'_>) -> TestRegistry {
    let data = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        data.path().join(genreg::data_dir::TOKEN_SECRET_FILE),
        shared.token_secret,
    )
    .expect("writing the token secret");
    let mut config = genreg::Config::new(data.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.kv = genreg::KvConfig::Redis {
        url: shared.redis_url.to_string(),
    };
    config.s3 = genreg::S3Config::External {
        endpoint: shared.s3.endpoint.clone(),
        bucket: shared.s3.bucket.clone(),
        region: shared.s3.region.clone(),
        access_key_id: shared.s3.access_key_id.clone(),
        secret_access_key: shared.s3.secret_access_key.clone(),
    };
    let registry = genreg::Registry::start(config)
        .await
        .expect("genreg starts on the shared store");
    TestRegistry {
        registry,
        client: reqwest::Client::new(),
        data,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_on_one_store_agree() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let id = create_project(&cluster).await;
    forbid_duplicates(&cluster).await;
    parallel_publishes_all_land_everywhere(&cluster, id).await;
    racing_duplicates_give_one_201(&cluster, id).await;
    a_token_revoked_on_one_is_refused_by_all(&cluster, id).await;
}

async fn create_project(cluster: &Cluster) -> u64 {
    let r = cluster.pick(0);
    let response = r
        .as_admin(Method::POST, &r.at("/api/v4/projects"))
        .json(&json!({"path": "tools", "namespace_path": "acme", "visibility": "private"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    json(response).await["id"].as_u64().unwrap()
}

/// `acme` refuses a second file of the same name in a package (set through
/// another instance than the project was created on).
async fn forbid_duplicates(cluster: &Cluster) {
    let r = cluster.pick(1);
    let response = r
        .as_admin(Method::PUT, &r.at("/api/v4/groups/acme/packages/settings"))
        .json(&json!({"generic_duplicates_allowed": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// 64 different files into one new version, round-robin: all 201, listed
/// alike by every instance, each downloadable from every instance.
async fn parallel_publishes_all_land_everywhere(cluster: &Cluster, id: u64) {
    let uploads = (0..PARALLEL_FILES).map(|i| {
        let r = cluster.pick(i);
        tokio::spawn(async move {
            let url = r.generic_url(&id.to_string(), &format!("burst/1.0/file-{i}.bin"));
            send_retrying_busy(|| r.as_admin(Method::PUT, &url).body(file_bytes(i))).await
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

    let mut expected: Vec<String> = (0..PARALLEL_FILES)
        .map(|i| format!("file-{i}.bin"))
        .collect();
    expected.sort();
    let first = listing(&*cluster.pick(0), id).await;
    let names: Vec<String> = first.iter().flat_map(|p| p.files.clone()).collect();
    assert_eq!(first.len(), 1, "one package: {first:?}");
    assert_eq!(names, expected);
    for (n, r) in cluster.instances.iter().enumerate() {
        assert_eq!(listing(&**r, id).await, first, "listing on instance {n}");
    }

    let downloads = (0..PARALLEL_FILES * cluster.instances.len()).map(|n| {
        let r = cluster.pick(n);
        let i = n / cluster.instances.len();
        async move {
            let url = r.generic_url(&id.to_string(), &format!("burst/1.0/file-{i}.bin"));
            let response = r.as_admin(Method::GET, &url).send().await.unwrap();
            let status = response.status();
            let bytes = response.bytes().await.unwrap();
            (n % cluster.instances.len(), i, status, bytes)
        }
    });
    for (instance, i, status, bytes) in futures::future::join_all(downloads).await {
        assert_eq!(status, StatusCode::OK, "file {i} from instance {instance}");
        assert!(
            bytes == file_bytes(i),
            "file {i} from instance {instance}: other bytes"
        );
    }
}

/// Two uploads of one file name into a new package, through two different
/// instances (every pair of the four, one round each): exactly one 201, the
/// other 400, and every instance then serves the winner's bytes.
async fn racing_duplicates_give_one_201(cluster: &Cluster, id: u64) {
    let pairs = [(0, 1), (2, 3), (0, 2), (1, 3), (0, 3), (1, 2)];
    for (round, (a, b)) in pairs.into_iter().enumerate() {
        let url =
            |r: &dyn Target| r.generic_url(&id.to_string(), &format!("race/{round}/same.bin"));
        let uploads = [a, b].map(|n| {
            let r = cluster.instances[n].clone();
            let url = url(&*r);
            tokio::spawn(async move {
                let bytes = race_bytes(round, n);
                let (status, body) =
                    send_retrying_busy(|| r.as_admin(Method::PUT, &url).body(bytes.clone())).await;
                (n, status, body)
            })
        });
        let answers: Vec<(usize, StatusCode, String)> = futures::future::join_all(uploads)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let mut statuses: Vec<StatusCode> = answers.iter().map(|(_, s, _)| *s).collect();
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::BAD_REQUEST],
            "round {round} (instances {a} and {b}): {answers:?}"
        );
        let winner = answers
            .iter()
            .find(|(_, status, _)| *status == StatusCode::CREATED)
            .map(|(n, _, _)| *n)
            .unwrap();
        for (n, r) in cluster.instances.iter().enumerate() {
            let response = r.as_admin(Method::GET, &url(&**r)).send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "round {round}, instance {n}"
            );
            let bytes = response.bytes().await.unwrap();
            assert!(
                bytes == race_bytes(round, winner),
                "round {round}: instance {n} serves other bytes than the 201's"
            );
        }
    }
}

/// A project access token created through one instance works on all four;
/// revoked through another, each instance refuses it on its next request.
async fn a_token_revoked_on_one_is_refused_by_all(cluster: &Cluster, id: u64) {
    let maintainer = cluster
        .pick(0)
        .mint(personal(&[Scope::Api], "acme/*", Role::Maintainer));
    let r = cluster.pick(2);
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

    let download = |r: &dyn Target| {
        r.http()
            .get(r.generic_url(&id.to_string(), "burst/1.0/file-0.bin"))
            .header("PRIVATE-TOKEN", &token)
            .send()
    };
    for (n, r) in cluster.instances.iter().enumerate() {
        let status = download(&**r).await.unwrap().status();
        assert_eq!(status, StatusCode::OK, "before revoking, instance {n}");
    }

    let r = cluster.pick(1);
    let revoke = r
        .http()
        .delete(r.at(&format!("/api/v4/projects/{id}/access_tokens/{token_id}")))
        .header("PRIVATE-TOKEN", &maintainer)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    for (n, r) in cluster.instances.iter().enumerate() {
        let refused = download(&**r).await.unwrap();
        assert_eq!(
            refused.status(),
            StatusCode::UNAUTHORIZED,
            "after revoking, instance {n}"
        );
        assert_eq!(json(refused).await, json!({"message": "401 Unauthorized"}));
    }
}

/// What an instance lists of a project's packages and their files, without
/// the links (each instance writes its own origin into them).
#[derive(Debug, PartialEq)]
struct PackageListing {
    id: u64,
    name: String,
    version: String,
    /// File names, sorted.
    files: Vec<String>,
    /// `file_name size file_sha256` of each file, sorted.
    records: Vec<String>,
}

async fn listing(r: &dyn Target, project: u64) -> Vec<PackageListing> {
    let packages_url = r.at(&format!("/api/v4/projects/{project}/packages?per_page=100"));
    let packages = get_json(r, &packages_url).await;
    let mut listing = Vec::new();
    for package in packages.as_array().expect("a list of packages") {
        let id = package["id"].as_u64().unwrap();
        let files_url = r.at(&format!(
            "/api/v4/projects/{project}/packages/{id}/package_files?per_page=100"
        ));
        let files = get_json(r, &files_url).await;
        let files = files.as_array().expect("a list of files");
        let mut names: Vec<String> = files
            .iter()
            .map(|f| f["file_name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        let mut records: Vec<String> = files
            .iter()
            .map(|f| format!("{} {} {}", f["file_name"], f["size"], f["file_sha256"]))
            .collect();
        records.sort();
        listing.push(PackageListing {
            id,
            name: package["name"].as_str().unwrap().to_string(),
            version: package["version"].as_str().unwrap().to_string(),
            files: names,
            records,
        });
    }
    listing
}

async fn get_json(r: &dyn Target, url: &str) -> Value {
    let response = r.as_admin(Method::GET, url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {url}");
    json(response).await
}

fn file_bytes(i: usize) -> Vec<u8> {
    data(FILE_SIZE, i as u8)
}

/// Different bytes for each racer, so the winner's can be recognised.
fn race_bytes(round: usize, instance: usize) -> Vec<u8> {
    data(FILE_SIZE, (100 + round * 4 + instance) as u8)
}
