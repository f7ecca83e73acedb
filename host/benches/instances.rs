//! Instances benchmark: publishes/s and downloads/s of 1 KiB files, `genreg`
//! and real `spin up` side by side, on their default SQLite stores and on
//! Redis with one and with two instances.
//!
//! One `redis-server` (started on a free loopback port, nothing saved) and
//! one embedded S3 server serve six set-ups in turn: 1 `genreg` and 1 `spin
//! up` on their default SQLite stores, then 1 and 2 `genreg`, 1 and 2 `spin
//! up` on Redis (the repository's spin.toml, with a runtime config putting
//! Spin's `default` store on Redis). Each Redis set-up gets its own database
//! (1 to 4), so every one starts from an empty store. All instances share
//! the token secret and the bucket, as behind a load balancer, and the
//! client sends requests round-robin over them.
//!
//! In each set-up: one project, one package holding `seed.bin`, then three
//! phases of `GENREG_BENCH_REQUESTS` requests (default 2000), 16 in flight:
//! publishes of new 1 KiB files into that package, publishes of new
//! versions (one file each), and downloads of the files of the first
//! phase. A publish that answers 503 with `Retry-After` (a key another
//! request is creating) is sent again after a second, as `curl --retry`
//! does; the table counts those retries and the latency includes them. The
//! table gives the rate and the p50/p99 latency (nearest rank).
//!
//! Without `redis-server` the Redis set-ups, without `spin` (on `PATH` or
//! at `../shared/bin/spin`) the Spin set-ups, are skipped with a printed
//! line. Logs go to stderr.
//!
//! `GENREG_BENCH_BASELINE=<component.wasm>` adds 1 `spin up` on SQLite and
//! on Redis serving that component (an earlier build), so a change is
//! measured against what it replaces in the same run.
//! `GENREG_BENCH_DIR=<dir>` keeps the data directories, Spin's state and
//! the S3 objects under `<dir>` (e.g. `/dev/shm`).
//!
//! ```text
//! cargo bench -p genreg --bench instances 2>/dev/null
//! GENREG_BENCH_REQUESTS=500 cargo bench -p genreg --bench instances 2>/dev/null
//! ```

#[path = "support/bench_dir.rs"]
mod bench_dir;
#[path = "../tests/support/redis_server.rs"]
mod redis_server;
#[path = "support/spin_manifest.rs"]
mod spin_manifest;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use futures::{StreamExt as _, TryStreamExt as _};
use reqwest::StatusCode;

use redis_server::RedisServer;
use spin_manifest::{workspace, write_spin_manifest};

/// Requests in flight at once.
const IN_FLIGHT: usize = 16;
/// Bytes per published file.
const FILE_SIZE: usize = 1024;
/// Sends of one publish while it answers 503 with `Retry-After`.
const BUSY_RETRIES: usize = 30;
/// How long a `spin up` may take to answer its first request (the first
/// start compiles the component).
const SPIN_READY_TIMEOUT: Duration = Duration::from_secs(300);
/// Where Spin is looked for besides `PATH`, relative to the workspace.
const SHARED_SPIN: &str = "../shared/bin/spin";

#[derive(Clone, Copy, PartialEq)]
enum Host {
    Genreg,
    Spin,
}

/// Where a set-up keeps its metadata.
#[derive(Clone, Copy, PartialEq)]
enum Store {
    /// The host's own SQLite store (one instance only).
    Default,
    /// The shared Redis server.
    Redis,
}

/// What one set-up measured.
struct Figures {
    label: String,
    phases: Vec<(&'static str, Phase)>,
}

/// One phase: its wall time, the latency of each request (sorted) and the
/// number of busy retries.
struct Phase {
    elapsed: Duration,
    latencies: Vec<Duration>,
    retries: usize,
}

/// What every instance of a set-up shares.
struct Shared<'a> {
    /// The component `spin up` serves.
    component: PathBuf,
    s3: &'a genreg::S3Access,
    token_secret: &'a str,
    /// The Redis database, or `None` for the host's default store.
    redis_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let requests: usize = env_or("GENREG_BENCH_REQUESTS", 2000).max(1);
    let redis = RedisServer::start_or_skip("instances benchmark");
    let spin = find_spin();
    let s3_dir = bench_dir::temp_dir()?;
    let s3 = genreg::EmbeddedS3Server::start(s3_dir.path()).await?;
    let token_secret = genreg::data_dir::random_hex(32);
    let secrets = genreg::genreg_token::Secrets::parse(&token_secret).context("token secret")?;
    let admin = genreg::mint_admin_token(
        &secrets,
        genreg::unix_now(),
        genreg::DEFAULT_ADMIN_TOKEN_LIFETIME,
    )
    .token;

    let current = genreg::component_path();
    let baseline = std::env::var_os("GENREG_BENCH_BASELINE").map(PathBuf::from);
    let mut setups = vec![
        (Host::Genreg, Store::Default, 1, None),
        (Host::Spin, Store::Default, 1, None),
        (Host::Genreg, Store::Redis, 1, None),
        (Host::Genreg, Store::Redis, 2, None),
        (Host::Spin, Store::Redis, 1, None),
        (Host::Spin, Store::Redis, 2, None),
    ];
    if let Some(baseline) = &baseline {
        setups.insert(2, (Host::Spin, Store::Default, 1, Some(baseline.clone())));
        setups.push((Host::Spin, Store::Redis, 1, Some(baseline.clone())));
    }
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    // Each Redis set-up starts from an empty database of its own.
    let mut redis_database = 0;
    for (host, store, count, other_component) in setups {
        let host_name = if host == Host::Genreg {
            "genreg"
        } else {
            "spin up"
        };
        let store_name = if store == Store::Default {
            "SQLite"
        } else {
            "Redis"
        };
        let mut label = format!("{count} {host_name}, {store_name}");
        if other_component.is_some() {
            label.push_str(", baseline");
        }
        let spin = match (host, &spin) {
            (Host::Spin, Err(looked)) => {
                skipped.push(format!("{label}: skipped, spin not found ({looked})"));
                continue;
            }
            (_, spin) => spin.as_ref().ok(),
        };
        let redis_url = match (store, &redis) {
            (Store::Default, _) => None,
            (Store::Redis, Some(redis)) => {
                redis_database += 1;
                Some(redis.url(redis_database))
            }
            (Store::Redis, None) => {
                skipped.push(format!("{label}: skipped, redis-server is not installed"));
                continue;
            }
        };
        let shared = Shared {
            component: other_component.unwrap_or_else(|| current.clone()),
            s3: s3.access(),
            token_secret: &token_secret,
            redis_url,
        };
        eprintln!("starting {label}");
        let instances = start_instances(host, count, spin, &shared).await?;
        let urls: Vec<String> = instances.iter().map(Instance::url).collect();
        let phases = measure(&urls, &admin, &label, requests).await?;
        for instance in instances {
            instance.stop().await;
        }
        results.push(Figures { label, phases });
    }
    s3.shutdown().await;
    print_table(requests, &results, &skipped);
    print_write_floor()?;
    Ok(())
}

/// What one write costs Spin's default store where the bench keeps its
/// files, and the floor that puts under a new version's latency: with 16
/// publishes in flight each waits for the others' writes.
fn print_write_floor() -> anyhow::Result<()> {
    let (mean, p50, p99) = bench_dir::sqlite_write_cost(bench_dir::Journal::Rollback)?;
    let writes_per_new_version = 4.0;
    let floor = mean.as_secs_f64() * writes_per_new_version * IN_FLIGHT as f64;
    println!(
        "SQLite write transaction here (as Spin's default store runs them): mean \
         {:.2} ms (p50 {:.2}, p99 {:.2}), so at most {:.0} writes/s; a new version's \
         {writes_per_new_version} writes with {IN_FLIGHT} in flight wait about {:.0} ms",
        ms(mean),
        ms(p50),
        ms(p99),
        1.0 / mean.as_secs_f64(),
        floor * 1000.0
    );
    Ok(())
}

/// `count` instances of `host` on the shared store, all answering.
async fn start_instances(
    host: Host,
    count: usize,
    spin: Option<&PathBuf>,
    shared: &Shared<'_>,
) -> anyhow::Result<Vec<Instance>> {
    let mut instances = Vec::new();
    for _ in 0..count {
        let instance = match host {
            Host::Genreg => Instance::Genreg(Box::new(start_genreg(shared).await?)),
            Host::Spin => {
                let spin = spin.context("spin binary")?;
                Instance::Spin(SpinProcess::start(spin, shared).await?)
            }
        };
        instances.push(instance);
    }
    Ok(instances)
}

/// One project with one package (`seed.bin`), then the three phases,
/// round-robin over `urls`.
async fn measure(
    urls: &[String],
    token: &str,
    label: &str,
    requests: usize,
) -> anyhow::Result<Vec<(&'static str, Phase)>> {
    let client = reqwest::Client::new();
    let project: serde_json::Value = client
        .post(format!("{}/api/v4/projects", urls[0]))
        .header("PRIVATE-TOKEN", token)
        .json(&serde_json::json!({ "path": "instances", "namespace_path": "bench" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = project["id"].as_u64().context("project id")?;
    let version_url = |n: usize, version: &str, name: &str| {
        format!(
            "{}/api/v4/projects/{id}/packages/generic/bench/{version}/{name}",
            urls[n % urls.len()]
        )
    };
    let file_url = |n: usize, name: &str| version_url(n, "1.0.0", name);
    let body = vec![b'x'; FILE_SIZE];
    publish(&client, &file_url(0, "seed.bin"), token, &body).await?;
    // Every instance answers once before the clock starts.
    for n in 0..urls.len() {
        download(&client, &file_url(n, "seed.bin"), token).await?;
    }

    eprintln!("{label}: {requests} publishes into one package");
    let into_package = publish_phase(&client, token, &body, requests, |i| {
        file_url(i, &format!("f{i}.bin"))
    })
    .await?;
    eprintln!("{label}: {requests} publishes of new versions");
    let new_versions = publish_phase(&client, token, &body, requests, |i| {
        version_url(i, &format!("2.0.{i}"), "f.bin")
    })
    .await?;

    eprintln!("{label}: {requests} downloads");
    let download_phase = run_phase(requests, |i| {
        // Spread the files over the instances differently from the
        // publishes, so most downloads read what another instance wrote.
        let url = file_url(i + 1, &format!("f{i}.bin"));
        let client = &client;
        async move { download(client, &url, token).await }
    })
    .await?;
    Ok(vec![
        ("publish into a package", into_package),
        ("publish a new version", new_versions),
        ("download", download_phase),
    ])
}

/// Publishes `body` to `url(0..count)`, counting the busy retries.
async fn publish_phase(
    client: &reqwest::Client,
    token: &str,
    body: &[u8],
    count: usize,
    url: impl Fn(usize) -> String,
) -> anyhow::Result<Phase> {
    let retries = AtomicUsize::new(0);
    let phase = run_phase(count, |i| {
        let url = url(i);
        let retries = &retries;
        async move {
            let busy = publish(client, &url, token, body).await?;
            retries.fetch_add(busy, Ordering::Relaxed);
            anyhow::Ok(())
        }
    })
    .await?;
    Ok(Phase {
        retries: retries.into_inner(),
        ..phase
    })
}

/// Runs `request(0..count)`, `IN_FLIGHT` at once; the wall time and each
/// request's latency, sorted.
async fn run_phase<F, Fut>(count: usize, request: F) -> anyhow::Result<Phase>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let start = Instant::now();
    let mut latencies: Vec<Duration> = futures::stream::iter(0..count)
        .map(|i| {
            let request = request(i);
            async move {
                let started = Instant::now();
                request.await?;
                anyhow::Ok(started.elapsed())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;
    let elapsed = start.elapsed();
    latencies.sort();
    Ok(Phase {
        elapsed,
        latencies,
        retries: 0,
    })
}

/// Publishes `body` to `url`; 201 expected, resent after a second while it
/// answers 503 with `Retry-After`. Returns how many times it was resent.
async fn publish(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &[u8],
) -> anyhow::Result<usize> {
    for attempt in 0..BUSY_RETRIES {
        let response = client
            .put(url)
            .header("PRIVATE-TOKEN", token)
            .body(body.to_vec())
            .send()
            .await?;
        let status = response.status();
        let busy = status == StatusCode::SERVICE_UNAVAILABLE
            && response.headers().contains_key("retry-after");
        let text = response.text().await?;
        if busy {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        ensure!(
            status == StatusCode::CREATED,
            "PUT {url} answered {status}: {text}"
        );
        return Ok(attempt);
    }
    bail!("PUT {url} answered 503 with Retry-After {BUSY_RETRIES} times")
}

/// Downloads `url`; 200 and `FILE_SIZE` bytes expected.
async fn download(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<()> {
    let response = client
        .get(url)
        .header("PRIVATE-TOKEN", token)
        .send()
        .await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    ensure!(status == StatusCode::OK, "GET {url} answered {status}");
    ensure!(
        bytes.len() == FILE_SIZE,
        "GET {url} gave {} bytes",
        bytes.len()
    );
    Ok(())
}

fn print_table(requests: usize, results: &[Figures], skipped: &[String]) {
    println!();
    println!(
        "genreg instances benchmark: one embedded S3 server, {requests} requests per phase, \
         {FILE_SIZE}-byte files, {IN_FLIGHT} in flight, round-robin over the instances"
    );
    println!(
        "{:<28}{:<26}{:>11}{:>9}{:>9}{:>9}",
        "set-up", "phase", "requests/s", "p50 ms", "p99 ms", "retries"
    );
    for figures in results {
        for (name, phase) in &figures.phases {
            println!(
                "{:<28}{:<26}{:>11.0}{:>9.1}{:>9.1}{:>9}",
                figures.label,
                name,
                rate(requests, phase.elapsed),
                ms(quantile(&phase.latencies, 0.50)),
                ms(quantile(&phase.latencies, 0.99)),
                phase.retries,
            );
        }
    }
    for line in skipped {
        println!("{line}");
    }
}

/// A registry process of a set-up.
enum Instance {
    Genreg(Box<GenregInstance>),
    Spin(SpinProcess),
}

impl Instance {
    fn url(&self) -> String {
        match self {
            Instance::Genreg(genreg) => genreg.registry.url(),
            Instance::Spin(spin) => spin.url.clone(),
        }
    }

    async fn stop(self) {
        match self {
            Instance::Genreg(genreg) => genreg.registry.shutdown().await,
            Instance::Spin(spin) => drop(spin),
        }
    }
}

/// A `genreg` and its data directory (removed after it stops).
struct GenregInstance {
    registry: genreg::Registry,
    _data: tempfile::TempDir,
}

/// A `genreg` on the shared Redis database and bucket, with the shared
/// token secret in its data directory.
async fn start_genreg(shared: &Shared<'_>) -> anyhow::Result<GenregInstance> {
    let data = bench_dir::temp_dir()?;
    std::fs::write(
        data.path().join(genreg::data_dir::TOKEN_SECRET_FILE),
        shared.token_secret,
    )?;
    let mut config = genreg::Config::new(data.path());
    config.listen = "127.0.0.1:0".parse()?;
    if let Some(url) = &shared.redis_url {
        config.kv = genreg::KvConfig::Redis { url: url.clone() };
    }
    config.s3 = genreg::S3Config::External {
        endpoint: shared.s3.endpoint.clone(),
        bucket: shared.s3.bucket.clone(),
        region: shared.s3.region.clone(),
        access_key_id: shared.s3.access_key_id.clone(),
        secret_access_key: shared.s3.secret_access_key.clone(),
    };
    let registry = genreg::Registry::start(config).await?;
    Ok(GenregInstance {
        registry,
        _data: data,
    })
}

/// A `spin up` of the repository's spin.toml on the shared store; killed
/// on drop, its files (manifest copy, state, output) removed after.
struct SpinProcess {
    url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl SpinProcess {
    async fn start(spin: &Path, shared: &Shared<'_>) -> anyhow::Result<SpinProcess> {
        let dir = bench_dir::temp_dir()?;
        let manifest = write_spin_manifest(dir.path(), &shared.component)?;
        let listen = free_loopback_address()?;
        let mut command = Command::new(spin);
        command
            .arg("up")
            .arg("--from")
            .arg(&manifest)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--listen")
            .arg(&listen)
            .current_dir(dir.path());
        if let Some(url) = &shared.redis_url {
            let runtime_config = dir.path().join("runtime-config.toml");
            std::fs::write(
                &runtime_config,
                format!("[key_value_store.default]\ntype = \"redis\"\nurl = {url:?}\n"),
            )?;
            command.arg("--runtime-config-file").arg(&runtime_config);
        }
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("SPIN_") || name == "RUNTIME_CONFIG_FILE" {
                command.env_remove(&*name);
            }
        }
        let s3 = shared.s3;
        for (name, value) in [
            ("S3_ENDPOINT", s3.endpoint.as_str()),
            ("S3_BUCKET", s3.bucket.as_str()),
            ("S3_REGION", s3.region.as_str()),
            ("S3_ACCESS_KEY_ID", s3.access_key_id.as_str()),
            ("S3_SECRET_ACCESS_KEY", s3.secret_access_key.as_str()),
            ("TOKEN_SECRET", shared.token_secret),
        ] {
            command.env(format!("SPIN_VARIABLE_{name}"), value);
        }
        // Its own process group: `spin up` runs the trigger as a child
        // process, which killing `spin up` alone would leave running.
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("spin.stdout"))?)
            .stderr(std::fs::File::create(dir.path().join("spin.stderr"))?)
            .spawn()
            .context("starting spin up")?;
        let mut process = SpinProcess {
            url: format!("http://{listen}"),
            child,
            _dir: dir,
        };
        process.wait_until_ready().await?;
        Ok(process)
    }

    /// Polls until Spin answers any HTTP request.
    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let started = Instant::now();
        let probe = format!("{}/api/v4/version", self.url);
        while client.get(&probe).send().await.is_err() {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "spin up exited ({status}), see {}",
                    self._dir.path().display()
                );
            }
            ensure!(
                started.elapsed() < SPIN_READY_TIMEOUT,
                "spin up did not answer within {SPIN_READY_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

impl Drop for SpinProcess {
    /// Kills `spin up` and the trigger process it started (the group the
    /// child leads).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `spin` binary: on `PATH`, else `../shared/bin/spin`; `Err` says
/// where it was looked for.
fn find_spin() -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("spin"))
        .find(|candidate| candidate.is_file());
    let shared = workspace().join(SHARED_SPIN);
    on_path
        .or_else(|| shared.is_file().then_some(shared.clone()))
        .ok_or_else(|| format!("not on PATH, not at {}", shared.display()))
}

fn free_loopback_address() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

/// The `p` quantile of sorted `values` (nearest rank).
fn quantile(values: &[Duration], p: f64) -> Duration {
    let n = values.len();
    values[((p * n as f64).ceil() as usize).clamp(1, n) - 1]
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a valid number")),
        Err(_) => default,
    }
}
