//! Stalled-upload benchmark: how much memory uploads that stop mid-body make
//! the registry hold.
//!
//! One process runs a `genreg::Registry` (embedded S3 server, temporary data
//! directory, default limits) and the clients. Each client opens a chunked
//! `PUT /api/v4/projects/:id/packages/generic/stalled/1.0/file-<n>.bin`,
//! sends `GENREG_BENCH_STALLED_MIB` MiB (default 20) of its body, then stops
//! sending and keeps the connection open. Once every client has sent its
//! share, the process's resident memory (VmRSS) is sampled for a few seconds;
//! the table shows its growth over the idle registry (after one warm-up
//! upload), at the peak and at the end. Afterwards the clients go away.
//!
//! It always exits 0: it is a measurement, not a test. (`cargo test
//! --benches` runs it once with 4 uploads of 2 MiB.) The body timeout
//! (default 60 s) eventually cuts such uploads; the sampling ends well before.
//!
//! ```text
//! cargo bench -p genreg --bench stalled                          # 40 x 20 MiB
//! GENREG_BENCH_STALLED=12 cargo bench -p genreg --bench stalled
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;
/// How long memory is sampled once every upload has stalled.
const SETTLE: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let uploads: usize = env_or("GENREG_BENCH_STALLED", if bench { 40 } else { 4 });
    let mib: usize = env_or("GENREG_BENCH_STALLED_MIB", if bench { 20 } else { 2 });

    let data = tempfile::tempdir()?;
    let mut config = genreg::Config::new(data.path());
    config.listen = "127.0.0.1:0".parse()?;
    let registry = genreg::Registry::start(config).await?;
    let address = registry.url().trim_start_matches("http://").to_string();
    let token = registry.admin_token().to_string();
    let project = create_project(&registry.url(), &token).await?;

    // Warm up: compile, instantiate, reach S3 once, so that the baseline is
    // the registry at rest rather than before its first request.
    let warm = reqwest::Client::new()
        .put(format!(
            "{}/api/v4/projects/{project}/packages/generic/stalled/1.0/warm-up.bin",
            registry.url()
        ))
        .header("PRIVATE-TOKEN", &token)
        .body(vec![0u8; MIB])
        .send()
        .await?;
    anyhow::ensure!(
        warm.status().is_success(),
        "warm-up upload: {}",
        warm.status()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = rss_bytes()?;

    // One block shared by every client, so that the clients add nothing
    // to the growth but their sockets.
    let block: Arc<[u8]> = vec![7u8; MIB].into();
    let started = Instant::now();
    let mut clients = Vec::new();
    for n in 0..uploads {
        let address = address.clone();
        let token = token.clone();
        let block = block.clone();
        clients.push(tokio::spawn(async move {
            let mut stream = start_upload(&address, &token, project, &format!("file-{n}")).await?;
            for _ in 0..mib {
                send_chunk(&mut stream, &block).await?;
            }
            anyhow::Ok(stream)
        }));
    }
    let mut stalled = Vec::new();
    for client in clients {
        stalled.push(client.await??);
    }
    let sent_in = started.elapsed();

    let mut peak = 0;
    let mut last = 0;
    let sampling = Instant::now();
    while sampling.elapsed() < SETTLE {
        last = rss_bytes()?;
        peak = peak.max(last);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(stalled);

    let growth = |rss: u64| (rss.saturating_sub(baseline)) as f64 / MIB as f64;
    println!(
        "stalled uploads: {uploads} x {mib} MiB sent (chunked) in {:.1} s, then silent",
        sent_in.as_secs_f64()
    );
    println!(
        "  RSS at rest          {:>8.1} MiB",
        baseline as f64 / MIB as f64
    );
    println!("  RSS growth, peak     {:>8.1} MiB", growth(peak));
    println!("  RSS growth, settled  {:>8.1} MiB", growth(last));
    println!(
        "  per stalled upload   {:>8.1} MiB (peak growth / uploads)",
        growth(peak) / uploads.max(1) as f64
    );
    registry.shutdown().await;
    Ok(())
}

async fn create_project(url: &str, token: &str) -> anyhow::Result<u64> {
    let project: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/api/v4/projects"))
        .header("PRIVATE-TOKEN", token)
        .json(&serde_json::json!({ "path": "stalled", "namespace_path": "bench" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    project["id"].as_u64().context("project id")
}

/// Connects and sends the head of a chunked upload.
async fn start_upload(
    address: &str,
    token: &str,
    project: u64,
    name: &str,
) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(address).await?;
    let head = format!(
        "PUT /api/v4/projects/{project}/packages/generic/stalled/1.0/{name}.bin HTTP/1.1\r\n\
         Host: {address}\r\nPRIVATE-TOKEN: {token}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    Ok(stream)
}

async fn send_chunk(stream: &mut TcpStream, bytes: &[u8]) -> anyhow::Result<()> {
    stream
        .write_all(format!("{:x}\r\n", bytes.len()).as_bytes())
        .await?;
    stream.write_all(bytes).await?;
    stream.write_all(b"\r\n").await?;
    Ok(())
}

/// This process's resident memory, from /proc/self/status.
fn rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kib * 1024)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
