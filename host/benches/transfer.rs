//! Transfer benchmark: how fast the registry moves file bytes compared with
//! talking to its S3 server directly and with CNCF Distribution (the
//! `docker-registry` a user could run instead for large blobs), how much
//! server CPU each spends per GiB, and how much memory the registry takes.
//!
//! The servers run as processes of their own, so their CPU time (utime +
//! stime of `/proc/<pid>/stat`, read before and after each transfer) is
//! theirs alone and not mixed with the client's:
//!
//! - `genreg up` (the binary built with this bench, embedded S3 server,
//!   default `s3_part_size` of 16 MiB, temporary data directory). Its CPU
//!   during a registry transfer is the component, the host and the S3
//!   server together; during a direct S3 transfer, the S3 server alone.
//! - `docker-registry serve` (Debian's CNCF Distribution 2.8) when it is on
//!   PATH, with a config of its own: filesystem storage in a temporary
//!   directory, loopback, no auth. Otherwise the bench says it is skipped.
//!
//! Each run measures, with one client and the same generated body:
//!
//! - registry upload: `PUT /api/v4/projects/:id/packages/generic/bench/1.0/file.bin`
//!   with `Content-Length` (the registry streams it to S3 in multipart parts);
//! - direct upload: a presigned `PUT` (UNSIGNED-PAYLOAD) to another key;
//! - Distribution upload: `POST /v2/bench/file/blobs/uploads/`, then one
//!   `PUT <location>&digest=sha256:...` carrying the whole body (the
//!   monolithic form: one request with the body, as the other two do; a
//!   PATCH first would only add a round trip, both stream into the same
//!   upload file). The digest is computed from the generated body before
//!   any timing;
//! - the three downloads: the generic URL (download mode `proxy`), a
//!   presigned `GET`, `GET /v2/bench/file/blobs/<digest>`.
//!
//! Each server's download follows its upload. Before every upload the page
//! cache is synced and, as root, its clean pages dropped, so that each
//! upload starts as the first did (see `settle_page_cache`); each download
//! reads the file just uploaded, from the page cache.
//!
//! Upload bodies are generated on the fly (one pseudo-random 1 MiB block,
//! repeated); downloads are consumed chunk by chunk and only counted, so the
//! client never holds the file. The table shows the medians of the runs
//! (MiB/s and server CPU-seconds per GiB), the ratios to Distribution and to
//! direct S3 with the targets, the load average before and after, and the
//! peak growth of `genreg`'s resident memory during the transfers (a 50 ms
//! VmRSS sampler and VmHWM, reset before the transfers). It always exits 0:
//! it is a measurement, not a test. (`cargo test --benches` runs it once
//! with 8 MiB.)
//!
//! ```text
//! cargo bench -p genreg --bench transfer                       # 1 GiB, 3 runs
//! GENREG_BENCH_SIZE=4294967296 GENREG_BENCH_RUNS=1 cargo bench -p genreg --bench transfer
//! GENREG_BENCH_DOWNLOAD_MODE=redirect cargo bench -p genreg --bench transfer
//! GENREG_BENCH_COMPONENT=other.wasm cargo bench -p genreg --bench transfer  # another component
//! GENREG_BIN=other/genreg cargo bench -p genreg --bench transfer       # another genreg binary
//! ```

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use bytes::Bytes;
use futures::StreamExt as _;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::RequestBuilder;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use sha2::{Digest as _, Sha256};
use tokio::process::{Child, Command};

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;
const BLOCK: usize = 1 << 20;
const SIGNED_FOR: Duration = Duration::from_secs(3600);
/// How long a server may take to start (genreg may compile its component).
const START_AT_MOST: Duration = Duration::from_secs(300);
/// The repository Distribution stores the blob under.
const DISTRIBUTION_REPOSITORY: &str = "bench/file";
/// Targets of issue 10: ratios to Distribution, and memory.
const DOWNLOAD_TARGET: f64 = 1.0;
const UPLOAD_TARGET: f64 = 0.85;
const UPLOAD_CPU_TARGET: f64 = 2.0;
const RSS_GROWTH_TARGET_MIB: f64 = 64.0;

/// The three servers, in the order of the table.
const SERVERS: [&str; 3] = ["registry", "direct S3", "Distribution"];

#[path = "support/genreg_up.rs"]
mod genreg_up;
#[path = "support/proc_stats.rs"]
mod proc_stats;

use genreg_up::GenregUp;
use proc_stats::{cpu_seconds, load_average, proc_status_kib, reset_peak_resident};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then
    // this is only a quick smoke run of the same code.
    let bench = std::env::args().any(|a| a == "--bench");
    let size: u64 = env_or("GENREG_BENCH_SIZE", if bench { 1 << 30 } else { 8 << 20 });
    let runs: usize = env_or("GENREG_BENCH_RUNS", if bench { 3 } else { 1 }).max(1);
    let mode = std::env::var("GENREG_BENCH_DOWNLOAD_MODE").unwrap_or_else(|_| "proxy".into());
    let load_before = load_average();

    let digest = format!("sha256:{}", hex::encode(generated_sha256(size).await));
    let temp = tempfile::tempdir()?;
    let program = GenregUp::program("GENREG_BIN");
    let genreg = GenregUp::start(&program, &temp.path().join("genreg"), &mode).await?;
    let distribution = match Distribution::find() {
        Ok(program) => {
            Some(Distribution::start(&program, &temp.path().join("distribution")).await?)
        }
        Err(reason) => {
            eprintln!("Distribution skipped: {reason}");
            None
        }
    };
    let client = reqwest::Client::new();
    let targets = Targets::prepare(&client, &genreg, distribution.as_ref(), &digest).await?;

    let baseline = proc_status_kib(genreg.pid, "VmRSS");
    let hwm_reset = reset_peak_resident(genreg.pid);
    let sampler = RssSampler::start(genreg.pid);

    let mut caches_dropped = true;
    let mut uploads: [Vec<Measured>; 3] = Default::default();
    let mut downloads: [Vec<Measured>; 3] = Default::default();
    for run in 1..=runs {
        // Each server's download right after its upload, so that it reads
        // the file from the page cache, which the next upload drops.
        for server in 0..SERVERS.len() {
            caches_dropped &= settle_page_cache().await;
            if let Some(measured) = targets.upload(&client, server, size).await? {
                uploads[server].push(measured);
            }
            if let Some(measured) = targets.download(&client, server, size).await? {
                downloads[server].push(measured);
            }
        }
        targets.forget_distribution_blob(&client).await;
        eprintln!(
            "run {run}/{runs}: uploads {:.2?}, downloads {:.2?}",
            uploads
                .iter()
                .filter_map(|m| m.last())
                .map(|m| m.time)
                .collect::<Vec<_>>(),
            downloads
                .iter()
                .filter_map(|m| m.last())
                .map(|m| m.time)
                .collect::<Vec<_>>()
        );
    }

    let mut peak = sampler.stop();
    if hwm_reset {
        peak = peak.max(proc_status_kib(genreg.pid, "VmHWM"));
    }
    let growth = peak.saturating_sub(baseline) as f64 / 1024.0;
    let load_after = load_average();
    drop(genreg);
    drop(distribution);

    let report = Report {
        size,
        uploads: uploads.map(|all| Summary::of(all, size)),
        downloads: downloads.map(|all| Summary::of(all, size)),
    };
    println!();
    println!(
        "genreg transfer benchmark: {:.0} MiB, {runs} run(s), embedded S3, s3_part_size 16 MiB, download_mode {mode}",
        size as f64 / MIB
    );
    println!("load average (1, 5, 15 min): {load_before} before, {load_after} after");
    if caches_dropped {
        println!("page cache: synced and its clean pages dropped before every upload");
    } else {
        println!(
            "page cache: synced before every upload, but not dropped (that takes root): \
             later runs' uploads may run slower than the first's"
        );
    }
    report.print_table();
    report.print_ratios();
    println!(
        "{:<34}{:>11.1} MiB{:>12}  {}",
        "genreg peak RSS growth",
        growth,
        format!("< {RSS_GROWTH_TARGET_MIB:.0} MiB"),
        verdict(growth < RSS_GROWTH_TARGET_MIB)
    );
    println!();
    println!(
        "RSS is the genreg process (registry, wasmtime, embedded S3 server): \
         baseline {:.1} MiB before the transfers, peak {:.1} MiB during them.",
        baseline as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// What is measured.
// ---------------------------------------------------------------------------

/// One transfer: wall time and the server process's CPU time.
#[derive(Clone, Copy)]
struct Measured {
    time: Duration,
    cpu_seconds: f64,
}

/// Where each server's transfers go.
struct Targets {
    genreg_pid: u32,
    token: String,
    file_url: String,
    bucket: Bucket,
    credentials: Credentials,
    /// Distribution's pid, URL and storage root, when it runs.
    distribution: Option<(u32, String, PathBuf)>,
    digest: String,
}

/// The key of the object uploaded to S3 directly.
const DIRECT_KEY: &str = "bench/direct.bin";

impl Targets {
    /// Creates the registry's project; nothing to prepare elsewhere.
    async fn prepare(
        client: &reqwest::Client,
        genreg: &GenregUp,
        distribution: Option<&Distribution>,
        digest: &str,
    ) -> anyhow::Result<Targets> {
        let project: serde_json::Value = client
            .post(format!("{}/api/v4/projects", genreg.url))
            .header("PRIVATE-TOKEN", &genreg.admin_token)
            .json(&serde_json::json!({ "path": "bench", "namespace_path": "bench" }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = project["id"].as_u64().context("project id")?;
        let credentials = genreg::data_dir::s3_credentials(&genreg.data)?;
        Ok(Targets {
            genreg_pid: genreg.pid,
            token: genreg.admin_token.clone(),
            file_url: format!(
                "{}/api/v4/projects/{id}/packages/generic/bench/1.0/file.bin",
                genreg.url
            ),
            bucket: Bucket::new(
                genreg.s3_endpoint.parse()?,
                UrlStyle::Path,
                "genreg",
                "us-east-1",
            )?,
            credentials: Credentials::new(credentials.access_key_id, credentials.secret_access_key),
            distribution: distribution.map(|d| (d.pid, d.url.clone(), d.storage.clone())),
            digest: digest.to_string(),
        })
    }

    /// Uploads to server number `server` of [`SERVERS`]; `None` when that
    /// server is not running.
    async fn upload(
        &self,
        client: &reqwest::Client,
        server: usize,
        size: u64,
    ) -> anyhow::Result<Option<Measured>> {
        Ok(Some(match server {
            0 => {
                let request = client
                    .put(&self.file_url)
                    .header("PRIVATE-TOKEN", &self.token);
                measure(self.genreg_pid, upload(request, size)).await?
            }
            1 => {
                let url = self
                    .bucket
                    .put_object(Some(&self.credentials), DIRECT_KEY)
                    .sign(SIGNED_FOR);
                measure(self.genreg_pid, upload(client.put(url), size)).await?
            }
            _ => {
                let Some((pid, base, _)) = &self.distribution else {
                    return Ok(None);
                };
                let transfer = distribution_upload(client, base, &self.digest, size);
                measure(*pid, transfer).await?
            }
        }))
    }

    /// Downloads from server number `server` of [`SERVERS`].
    async fn download(
        &self,
        client: &reqwest::Client,
        server: usize,
        size: u64,
    ) -> anyhow::Result<Option<Measured>> {
        Ok(Some(match server {
            0 => {
                let request = client
                    .get(&self.file_url)
                    .header("PRIVATE-TOKEN", &self.token);
                measure(self.genreg_pid, download(request, size)).await?
            }
            1 => {
                let url = self
                    .bucket
                    .get_object(Some(&self.credentials), DIRECT_KEY)
                    .sign(SIGNED_FOR);
                measure(self.genreg_pid, download(client.get(url), size)).await?
            }
            _ => {
                let Some((pid, base, _)) = &self.distribution else {
                    return Ok(None);
                };
                let request = client.get(self.distribution_blob_url(base));
                measure(*pid, download(request, size)).await?
            }
        }))
    }

    fn distribution_blob_url(&self, base: &str) -> String {
        format!("{base}/v2/{DISTRIBUTION_REPOSITORY}/blobs/{}", self.digest)
    }

    /// Deletes the blob from Distribution, so every run's upload stores it
    /// anew (Distribution skips moving a blob it already has). Its API
    /// unlinks the blob from the repository but keeps the data until a
    /// garbage collection, so the data goes from its storage too: else the
    /// next upload would keep the old file, no longer in the page cache,
    /// and its download read the disk.
    async fn forget_distribution_blob(&self, client: &reqwest::Client) {
        if let Some((_, base, storage)) = &self.distribution {
            let url = self.distribution_blob_url(base);
            if let Err(e) = client
                .delete(url)
                .send()
                .await
                .and_then(|r| r.error_for_status())
            {
                eprintln!("warning: Distribution kept the blob: {e}");
            }
            let hex = self.digest.trim_start_matches("sha256:");
            let data = storage
                .join("docker/registry/v2/blobs/sha256")
                .join(&hex[..2])
                .join(hex);
            if let Err(e) = std::fs::remove_dir_all(&data) {
                eprintln!("warning: Distribution's blob data stays: {e}");
            }
        }
    }
}

/// Runs `transfer`, reading the CPU time of process `pid` around it.
async fn measure(
    pid: u32,
    transfer: impl std::future::Future<Output = anyhow::Result<Duration>>,
) -> anyhow::Result<Measured> {
    let before = cpu_seconds(pid)?;
    let time = transfer.await?;
    let cpu_seconds = cpu_seconds(pid)? - before;
    Ok(Measured { time, cpu_seconds })
}

/// Starts an upload from the same state of the page cache as the first:
/// writes every dirty page to the disk (`sync`) and, where the bench may
/// (as root), drops the clean ones (`/proc/sys/vm/drop_caches`). On a
/// virtual machine whose page cache held the earlier runs' gigabytes, an
/// upload through the registry, which then copied its bytes into the page
/// cache twice (the parts, then the object), ran up to 1.8x slower, at up
/// to 1.7x the CPU, than from a dropped cache; a `sync` alone did not change
/// that.
/// Answers whether the cache was dropped.
async fn settle_page_cache() -> bool {
    tokio::task::spawn_blocking(|| {
        // SAFETY: sync takes no arguments and cannot fail.
        unsafe { libc::sync() };
        std::fs::write("/proc/sys/vm/drop_caches", "1").is_ok()
    })
    .await
    .expect("the blocking pool runs it")
}

/// Sends `size` generated bytes with `Content-Length`; returns the time until
/// the response is read.
async fn upload(request: RequestBuilder, size: u64) -> anyhow::Result<Duration> {
    let start = Instant::now();
    send_generated(request, size).await?;
    Ok(start.elapsed())
}

async fn send_generated(request: RequestBuilder, size: u64) -> anyhow::Result<()> {
    let response = request
        .header(CONTENT_LENGTH, size)
        .body(reqwest::Body::wrap_stream(generated(size)))
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    ensure!(status.is_success(), "upload answered {status}: {text}");
    Ok(())
}

/// A blob upload through the Registry HTTP API V2: start an upload session,
/// then one PUT with the whole body that also completes it.
async fn distribution_upload(
    client: &reqwest::Client,
    base: &str,
    digest: &str,
    size: u64,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let session = client
        .post(format!(
            "{base}/v2/{DISTRIBUTION_REPOSITORY}/blobs/uploads/"
        ))
        .header(CONTENT_LENGTH, 0)
        .send()
        .await?;
    ensure!(
        session.status() == reqwest::StatusCode::ACCEPTED,
        "Distribution answered {} to the upload's start",
        session.status()
    );
    let location = session
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .context("no Location for the upload")?;
    let location = reqwest::Url::parse(base)?.join(location)?;
    let separator = if location.query().is_some() { '&' } else { '?' };
    let request = client
        .put(format!("{location}{separator}digest={digest}"))
        .header(CONTENT_TYPE, "application/octet-stream");
    send_generated(request, size).await?;
    Ok(start.elapsed())
}

/// Reads the response body chunk by chunk, checking that `size` bytes came.
async fn download(request: RequestBuilder, size: u64) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut response = request.send().await?.error_for_status()?;
    let mut received = 0u64;
    while let Some(chunk) = response.chunk().await? {
        received += chunk.len() as u64;
    }
    ensure!(
        received == size,
        "downloaded {received} bytes, expected {size}"
    );
    Ok(start.elapsed())
}

/// `size` bytes: one pseudo-random block, repeated (shared, not copied).
fn generated(size: u64) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let block: Bytes = (0..BLOCK)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect::<Vec<u8>>()
        .into();
    let chunks = size.div_ceil(BLOCK as u64);
    futures::stream::iter((0..chunks).map(move |i| {
        let len = (size - i * BLOCK as u64).min(BLOCK as u64) as usize;
        Ok(block.slice(..len))
    }))
}

/// The sha256 of [`generated`]`(size)`, which Distribution needs up front.
async fn generated_sha256(size: u64) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let mut chunks = std::pin::pin!(generated(size));
    while let Some(Ok(chunk)) = chunks.next().await {
        hasher.update(&chunk);
    }
    hasher.finalize().into()
}

// ---------------------------------------------------------------------------
// The servers.
// ---------------------------------------------------------------------------

/// A running `docker-registry serve`, killed when dropped.
struct Distribution {
    _child: Child,
    pid: u32,
    url: String,
    /// Its filesystem storage's root directory.
    storage: PathBuf,
}

impl Distribution {
    /// `docker-registry` on PATH, or why the comparison is skipped.
    fn find() -> Result<PathBuf, String> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join("docker-registry"))
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| {
                "docker-registry (CNCF Distribution) is not on PATH; \
                 on Debian: apt-get install docker-registry"
                    .to_string()
            })
    }

    /// Serves from `dir` on a free loopback port; ready once `/v2/` answers.
    async fn start(program: &Path, dir: &Path) -> anyhow::Result<Distribution> {
        std::fs::create_dir_all(dir)?;
        let address = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let config = dir.join("config.yml");
        let storage = dir.join("storage");
        std::fs::write(&config, distribution_config(&storage, address))?;
        let log = dir.join("registry.log");
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new(program)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .context("docker-registry serve")?;
        let pid = child.id().context("docker-registry pid")?;
        let url = format!("http://{address}");
        let probe = reqwest::Client::new();
        let deadline = Instant::now() + START_AT_MOST;
        loop {
            match probe.get(format!("{url}/v2/")).send().await {
                Ok(response) if response.status().is_success() => break,
                _ if Instant::now() > deadline => bail!(
                    "docker-registry did not start; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        Ok(Distribution {
            _child: child,
            pid,
            url,
            storage,
        })
    }
}

/// Distribution's configuration: filesystem storage under `storage`, the
/// in-memory blob descriptor cache of Debian's default config, deletes
/// allowed (between runs), no auth, no access log.
fn distribution_config(storage: &Path, address: std::net::SocketAddr) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: error\n  accesslog:\n    disabled: true\n\
         storage:\n  cache:\n    blobdescriptor: inmemory\n  \
         filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: {address}\n",
        storage.display()
    )
}

// ---------------------------------------------------------------------------
// The report.
// ---------------------------------------------------------------------------

/// The medians of one server's transfers in one direction.
#[derive(Clone, Copy)]
struct Summary {
    mib_per_second: f64,
    cpu_seconds_per_gib: f64,
}

impl Summary {
    fn of(mut all: Vec<Measured>, size: u64) -> Option<Summary> {
        if all.is_empty() {
            return None;
        }
        let median = |values: &mut Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let gib = size as f64 / GIB;
        all.sort_by_key(|m| m.time);
        let time = all[all.len() / 2].time;
        let mut cpu: Vec<f64> = all.iter().map(|m| m.cpu_seconds / gib).collect();
        Some(Summary {
            mib_per_second: size as f64 / MIB / time.as_secs_f64(),
            cpu_seconds_per_gib: median(&mut cpu),
        })
    }
}

struct Report {
    size: u64,
    uploads: [Option<Summary>; 3],
    downloads: [Option<Summary>; 3],
}

impl Report {
    fn print_table(&self) {
        println!(
            "{:<16}{:>14}{:>14}{:>16}{:>14}",
            "server", "upload MiB/s", "CPU-s/GiB", "download MiB/s", "CPU-s/GiB"
        );
        for (i, name) in SERVERS.iter().enumerate() {
            let cell = |summary: Option<Summary>| match summary {
                Some(s) => (
                    format!("{:.1}", s.mib_per_second),
                    format!("{:.2}", s.cpu_seconds_per_gib),
                ),
                None => ("skipped".into(), "-".into()),
            };
            let (up, up_cpu) = cell(self.uploads[i]);
            let (down, down_cpu) = cell(self.downloads[i]);
            println!("{name:<16}{up:>14}{up_cpu:>14}{down:>16}{down_cpu:>14}");
        }
        println!(
            "(medians; CPU-s/GiB is the server process's utime + stime per GiB moved, \
             {:.2} GiB a transfer)",
            self.size as f64 / GIB
        );
        println!();
    }

    fn print_ratios(&self) {
        let ratio = |a: Option<Summary>, b: Option<Summary>, f: fn(&Summary) -> f64| {
            a.zip(b).map(|(a, b)| f(&a) / f(&b))
        };
        let speed = |s: &Summary| s.mib_per_second;
        let cpu = |s: &Summary| s.cpu_seconds_per_gib;
        let (registry, direct, distribution) = (0, 1, 2);
        println!("{:<34}{:>15}{:>12}", "", "measured", "target");
        let rows = [
            (
                "download registry/Distribution",
                ratio(
                    self.downloads[registry],
                    self.downloads[distribution],
                    speed,
                ),
                Some((">=", DOWNLOAD_TARGET)),
            ),
            (
                "upload registry/Distribution",
                ratio(self.uploads[registry], self.uploads[distribution], speed),
                Some((">=", UPLOAD_TARGET)),
            ),
            (
                "upload CPU registry/Distribution",
                ratio(self.uploads[registry], self.uploads[distribution], cpu),
                Some(("<=", UPLOAD_CPU_TARGET)),
            ),
            (
                "download CPU registry/Distrib.",
                ratio(self.downloads[registry], self.downloads[distribution], cpu),
                None,
            ),
            (
                "download registry/direct S3",
                ratio(self.downloads[registry], self.downloads[direct], speed),
                None,
            ),
            (
                "upload registry/direct S3",
                ratio(self.uploads[registry], self.uploads[direct], speed),
                None,
            ),
        ];
        for (name, measured, target) in rows {
            let Some(measured) = measured else {
                println!("{name:<34}{:>15}", "skipped");
                continue;
            };
            match target {
                Some((">=", goal)) => println!(
                    "{name:<34}{measured:>14.2}x{:>11}  {}",
                    format!(">= {goal:.2}x"),
                    verdict(measured >= goal)
                ),
                Some((_, goal)) => println!(
                    "{name:<34}{measured:>14.2}x{:>11}  {}",
                    format!("<= {goal:.2}x"),
                    verdict(measured <= goal)
                ),
                None => println!("{name:<34}{measured:>14.2}x"),
            }
        }
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

// ---------------------------------------------------------------------------
// /proc.
// ---------------------------------------------------------------------------

/// Samples VmRSS of a process every 50 ms on a thread of its own; `stop`
/// returns the peak.
struct RssSampler {
    pid: u32,
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(proc_status_kib(pid, "VmRSS")));
        let thread = std::thread::spawn({
            let (stop, peak) = (stop.clone(), peak.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(proc_status_kib(pid, "VmRSS"), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        RssSampler {
            pid,
            stop,
            peak,
            thread,
        }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.peak
            .load(Ordering::Relaxed)
            .max(proc_status_kib(self.pid, "VmRSS"))
    }
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
