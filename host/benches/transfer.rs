//! Transfer benchmark: how fast the registry moves file bytes compared with
//! talking to its S3 server directly, and how much memory that takes.
//!
//! One process runs a `genreg::Registry` (embedded S3 server, default
//! `s3_part_size` of 16 MiB, temporary data directory) and the client. Each
//! run measures, against that one S3 server:
//!
//! - registry upload: `PUT /api/v4/projects/:id/packages/generic/bench/1.0/file.bin`
//!   with `Content-Length` (the registry streams it to S3 in multipart parts);
//! - direct upload: a presigned `PUT` (UNSIGNED-PAYLOAD) of the same size to
//!   another key;
//! - registry download: `GET` of the same URL (download mode `proxy`);
//! - direct download: a presigned `GET` of the direct object.
//!
//! Upload bodies are generated on the fly (one pseudo-random 1 MiB block,
//! repeated); downloads are consumed chunk by chunk and only counted, so the
//! client never holds the file. The table shows the median of the runs, the
//! best run, the registry/direct ratios and the peak growth of the process's
//! resident memory during the transfers (a 50 ms VmRSS sampler and VmHWM,
//! reset before the transfers), with the targets. It always exits 0: it is a
//! measurement, not a test. (`cargo test --benches` runs it once with 8 MiB.)
//!
//! ```text
//! cargo bench -p genreg --bench transfer                       # 1 GiB, 3 runs
//! GENREG_BENCH_DOWNLOAD_MODE=redirect cargo bench -p genreg --bench transfer
//! GENREG_BENCH_SIZE=67108864 GENREG_BENCH_RUNS=1 cargo bench -p genreg --bench transfer
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use bytes::Bytes;
use reqwest::header::CONTENT_LENGTH;
use reqwest::RequestBuilder;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

const MIB: f64 = 1024.0 * 1024.0;
const BLOCK: usize = 1 << 20;
const SIGNED_FOR: Duration = Duration::from_secs(3600);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then
    // this is only a quick smoke run of the same code.
    let bench = std::env::args().any(|a| a == "--bench");
    let size: u64 = env_or("GENREG_BENCH_SIZE", if bench { 1 << 30 } else { 8 << 20 });
    let runs: usize = env_or("GENREG_BENCH_RUNS", if bench { 3 } else { 1 }).max(1);

    let data = tempfile::tempdir()?;
    let mut config = genreg::Config::new(data.path());
    config.listen = "127.0.0.1:0".parse()?;
    // `redirect` measures downloads that follow the registry's 302 to S3.
    let mode = std::env::var("GENREG_BENCH_DOWNLOAD_MODE").unwrap_or_else(|_| "proxy".into());
    config
        .variables
        .insert("download_mode".into(), mode.clone());
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
    let file_url = format!(
        "{}/api/v4/projects/{id}/packages/generic/bench/1.0/file.bin",
        registry.url()
    );

    let s3 = registry.s3();
    let bucket = Bucket::new(s3.endpoint.parse()?, UrlStyle::Path, s3.bucket, s3.region)?;
    let credentials = Credentials::new(s3.access_key_id, s3.secret_access_key);
    let direct_key = "bench/direct.bin";

    let baseline = proc_status_kib("VmRSS");
    let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let sampler = RssSampler::start();

    let mut times: [Vec<Duration>; 4] = Default::default();
    for run in 1..=runs {
        let put = bucket
            .put_object(Some(&credentials), direct_key)
            .sign(SIGNED_FOR);
        let get = bucket
            .get_object(Some(&credentials), direct_key)
            .sign(SIGNED_FOR);
        let measured = [
            upload(client.put(&file_url).header("PRIVATE-TOKEN", &token), size).await?,
            upload(client.put(put), size).await?,
            download(client.get(&file_url).header("PRIVATE-TOKEN", &token), size).await?,
            download(client.get(get), size).await?,
        ];
        eprintln!("run {run}/{runs}: {measured:.2?}");
        for (all, time) in times.iter_mut().zip(measured) {
            all.push(time);
        }
    }

    let mut peak = sampler.stop();
    if hwm_reset {
        peak = peak.max(proc_status_kib("VmHWM"));
    }
    let growth = peak.saturating_sub(baseline) as f64 / 1024.0;
    registry.shutdown().await;

    let rate = |time: Duration| size as f64 / MIB / time.as_secs_f64();
    let (median, best): (Vec<f64>, Vec<f64>) = times
        .iter_mut()
        .map(|all| {
            all.sort();
            (rate(all[all.len() / 2]), rate(all[0]))
        })
        .unzip();
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };

    println!();
    println!(
        "genreg transfer benchmark: {:.0} MiB, {runs} run(s), embedded S3, s3_part_size 16 MiB, download_mode {mode}",
        size as f64 / MIB
    );
    println!("{:<22}{:>16}{:>12}", "", "median MiB/s", "best MiB/s");
    let names = [
        "registry upload",
        "direct S3 upload",
        "registry download",
        "direct S3 download",
    ];
    for (i, name) in names.iter().enumerate() {
        println!("{name:<22}{:>16.1}{:>12.1}", median[i], best[i]);
    }
    let up = median[0] / median[1];
    let down = median[2] / median[3];
    println!();
    println!("{:<22}{:>16}{:>12}", "", "measured", "target");
    println!(
        "{:<22}{:>15.2}x{:>11}  {}",
        "upload registry/direct",
        up,
        ">= 0.80x",
        verdict(up >= 0.8)
    );
    println!(
        "{:<22}{:>15.2}x{:>11}  {}",
        "download reg./direct",
        down,
        ">= 0.90x",
        verdict(down >= 0.9)
    );
    println!(
        "{:<22}{:>12.1} MiB{:>11}  {}",
        "peak RSS growth",
        growth,
        "< 100 MiB",
        verdict(growth < 100.0)
    );
    println!();
    println!(
        "RSS is the whole process (client, registry, wasmtime, embedded S3 server): \
         baseline {:.1} MiB before the transfers, peak {:.1} MiB during them.",
        baseline as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    Ok(())
}

/// Sends `size` generated bytes with `Content-Length`; returns the time until
/// the response is read.
async fn upload(request: RequestBuilder, size: u64) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let response = request
        .header(CONTENT_LENGTH, size)
        .body(reqwest::Body::wrap_stream(generated(size)))
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    ensure!(status.is_success(), "upload answered {status}: {text}");
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

/// Samples VmRSS every 50 ms on a thread of its own; `stop` returns the peak.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl RssSampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(proc_status_kib("VmRSS")));
        let thread = std::thread::spawn({
            let (stop, peak) = (stop.clone(), peak.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(proc_status_kib("VmRSS"), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        RssSampler { stop, peak, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.peak
            .load(Ordering::Relaxed)
            .max(proc_status_kib("VmRSS"))
    }
}

/// A `kB` field of /proc/self/status (0 where there is none).
fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
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
