//! Push benchmark: `genreg push` of a file against a direct S3 multipart
//! upload of the same file, with the same part size and parallelism.
//!
//! One process runs a `genreg::Registry` (embedded S3 server, temporary
//! data directory); the file (pseudo-random, each MiB different) is written
//! once to a temporary directory. Each run measures:
//!
//! - `genreg push FILE URL --parallel P --part-size S` (the release binary
//!   built with this bench): hashing the file, creating the session, the
//!   parts straight to S3 through presigned URLs, and completing (the
//!   registry reads the object back to verify md5/sha1/sha256);
//! - direct: CreateMultipartUpload, the same parts streamed from the same
//!   file with `P` in flight through the same HTTP client (reqwest), and
//!   CompleteMultipartUpload, all presigned with rusty-s3: no checksums,
//!   nothing verified.
//!
//! The table shows the median and best of the runs and the ratio of the
//! throughputs (direct time / push time; goal >= 0.9). It always exits 0:
//! it is a measurement, not a test (`cargo test --benches` runs it once
//! with 24 MiB).
//!
//! ```text
//! cargo bench -p genreg --bench push                            # 1 GiB, 3 runs
//! GENREG_BENCH_SIZE=268435456 GENREG_BENCH_RUNS=1 cargo bench -p genreg --bench push
//! GENREG_BENCH_COMPONENT=other.wasm cargo bench -p genreg --bench push  # another component
//! ```

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use futures_util::{StreamExt as _, TryStreamExt as _};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

const MIB: f64 = 1024.0 * 1024.0;
const PART_SIZE: u64 = 16 << 20;
const PARALLEL: usize = 4;
const SIGNED_FOR: Duration = Duration::from_secs(3600);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let size: u64 = env_or("GENREG_BENCH_SIZE", if bench { 1 << 30 } else { 24 << 20 });
    let runs: usize = env_or("GENREG_BENCH_RUNS", if bench { 3 } else { 1 }).max(1);

    let data = tempfile::tempdir()?;
    let mut config = genreg::Config::new(data.path().join("registry"));
    config.listen = "127.0.0.1:0".parse()?;
    config.variables.insert("max_file_size".into(), "0".into());
    // Not GENREG_COMPONENT: cargo sets that for every bench it runs.
    if let Some(component) = std::env::var_os("GENREG_BENCH_COMPONENT") {
        config.component = component.into();
    }
    let registry = genreg::Registry::start(config).await?;
    let client = reqwest::Client::new();
    let token = registry.admin_token().to_string();
    let project: serde_json::Value = client
        .post(format!("{}/api/v4/projects", registry.url()))
        .header("PRIVATE-TOKEN", &token)
        .json(&serde_json::json!({ "path": "bench", "namespace_path": "bench" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = project["id"].as_u64().context("project id")?;

    let file = data.path().join("file.bin");
    write_file(&file, size)?;
    let s3 = registry.s3();
    let bucket = Bucket::new(s3.endpoint.parse()?, UrlStyle::Path, s3.bucket, s3.region)?;
    let credentials = Credentials::new(s3.access_key_id, s3.secret_access_key);
    let direct = DirectUpload {
        client: client.clone(),
        bucket,
        credentials,
    };

    let (mut pushed, mut directs) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let url = format!(
            "{}/api/v4/projects/{id}/packages/generic/bench/1.{run}/file.bin",
            registry.url()
        );
        pushed.push(genreg_push(&file, &url, &token).await?);
        directs.push(direct.upload(&file, size, &format!("direct/{run}")).await?);
    }
    report(size, runs, &mut pushed, &mut directs);
    registry.shutdown().await;
    Ok(())
}

/// Runs the `genreg` binary; its time, start to exit.
async fn genreg_push(file: &Path, url: &str, token: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_genreg"))
        .arg("push")
        .arg(file)
        .arg(url)
        .args(["--token", token, "--parallel", &PARALLEL.to_string()])
        .args(["--part-size", &PART_SIZE.to_string()])
        .env_remove("GITLAB_TOKEN")
        .env_remove("CI_JOB_TOKEN")
        .output()
        .await?;
    let elapsed = started.elapsed();
    ensure!(
        output.status.success(),
        "genreg push failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(elapsed)
}

/// A multipart upload straight to the bucket.
struct DirectUpload {
    client: reqwest::Client,
    bucket: Bucket,
    credentials: Credentials,
}

impl DirectUpload {
    async fn upload(&self, file: &Path, size: u64, key: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let create = self
            .bucket
            .create_multipart_upload(Some(&self.credentials), key)
            .sign(SIGNED_FOR);
        let answer = self.client.post(create).send().await?.error_for_status()?;
        let created =
            rusty_s3::actions::CreateMultipartUpload::parse_response(&answer.text().await?)?;
        let upload_id = created.upload_id();
        let parts = size.div_ceil(PART_SIZE);
        let mut etags: Vec<(u64, String)> = futures_util::stream::iter(1..=parts)
            .map(|number| self.part(file, size, key, upload_id, number))
            .buffer_unordered(PARALLEL)
            .try_collect()
            .await?;
        etags.sort();
        let complete = self.bucket.complete_multipart_upload(
            Some(&self.credentials),
            key,
            upload_id,
            etags.iter().map(|(_, etag)| etag.as_str()),
        );
        let body = complete.body();
        let url = self
            .bucket
            .complete_multipart_upload(
                Some(&self.credentials),
                key,
                upload_id,
                std::iter::empty::<&str>(),
            )
            .sign(SIGNED_FOR);
        self.client
            .post(url)
            .body(body)
            .send()
            .await?
            .error_for_status()?;
        Ok(started.elapsed())
    }

    /// Streams part `number` from the file; its ETag.
    async fn part(
        &self,
        file: &Path,
        size: u64,
        key: &str,
        upload_id: &str,
        number: u64,
    ) -> anyhow::Result<(u64, String)> {
        let offset = (number - 1) * PART_SIZE;
        let len = PART_SIZE.min(size - offset);
        let url = self
            .bucket
            .upload_part(
                Some(&self.credentials),
                key,
                u16::try_from(number)?,
                upload_id,
            )
            .sign(SIGNED_FOR);
        let mut reader = tokio::fs::File::open(file).await?;
        reader.seek(std::io::SeekFrom::Start(offset)).await?;
        let body = tokio_util::io::ReaderStream::with_capacity(reader.take(len), 256 << 10);
        let answer = self
            .client
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await?
            .error_for_status()?;
        let etag = answer
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .context("an ETag")?
            .to_string();
        Ok((number, etag))
    }
}

fn write_file(path: &Path, size: u64) -> anyhow::Result<()> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let block: Vec<u8> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut chunk = block;
    for index in 0..size.div_ceil(1 << 20) {
        chunk[..8].copy_from_slice(&index.to_le_bytes());
        let len = (size - index * (1 << 20)).min(1 << 20) as usize;
        out.write_all(&chunk[..len])?;
    }
    out.flush()?;
    Ok(())
}

fn report(size: u64, runs: usize, pushed: &mut [Duration], directs: &mut [Duration]) {
    pushed.sort();
    directs.sort();
    let (push, direct) = (pushed[pushed.len() / 2], directs[directs.len() / 2]);
    let rate = |d: Duration| size as f64 / MIB / d.as_secs_f64();
    println!(
        "push benchmark: {:.0} MiB, part size {} MiB, {PARALLEL} parts at once, {runs} run(s)",
        size as f64 / MIB,
        PART_SIZE >> 20
    );
    println!(
        "{:<28} {:>10} {:>12} {:>10}",
        "", "median s", "median MiB/s", "best s"
    );
    for (name, median, best) in [
        ("genreg push (session)", push, pushed[0]),
        ("direct S3 multipart upload", direct, directs[0]),
    ] {
        println!(
            "{name:<28} {:>10.2} {:>12.0} {:>10.2}",
            median.as_secs_f64(),
            rate(median),
            best.as_secs_f64()
        );
    }
    println!(
        "ratio push/direct throughput: {:.2}x (goal >= 0.9x)",
        direct.as_secs_f64() / push.as_secs_f64()
    );
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
