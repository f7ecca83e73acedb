//! Listing benchmark: how fast `GET /api/v4/projects/:id/packages` answers
//! for a project with many packages.
//!
//! One process runs a `genreg::Registry` (embedded S3 server, temporary data
//! directory) and the client. It creates one project, publishes one 1-byte
//! file into each of `GENREG_BENCH_PACKAGES` packages (default 10,000: 100
//! names `p000`..`p099`, versions `1.0.0`, `1.0.1`, ...), 16 requests in
//! flight, and times that. Then it measures the latency of three listings,
//! `GENREG_BENCH_REQUESTS` requests each (default 20, one after the other,
//! after one warm-up request), and prints the median and the p95
//! (nearest rank). The registry's access log goes to stderr.
//!
//! A second phase publishes `GENREG_BENCH_FILES` 1-byte files (default
//! 100,000) into one package of another project, ten file names taking
//! turns after one `early.bin`, and reports the publish rate of the first
//! and the last tenth, then the latency of file listings (first and last
//! page), of a download by name that the package record holds and of one
//! (`early.bin`) found only in the oldest sealed segment.
//!
//! ```text
//! cargo bench -p genreg --bench listing 2>/dev/null
//! GENREG_BENCH_PACKAGES=1000 GENREG_BENCH_FILES=5000 cargo bench -p genreg --bench listing 2>/dev/null
//! ```

use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use futures::{StreamExt as _, TryStreamExt as _};
use reqwest::StatusCode;

/// Publishes in flight at once.
const IN_FLIGHT: usize = 16;
/// Distinct package names; each gets `packages / NAMES` versions.
const NAMES: usize = 100;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let packages: usize = env_or("GENREG_BENCH_PACKAGES", 10_000).max(1);
    let requests: usize = env_or("GENREG_BENCH_REQUESTS", 20).max(1);

    let data = tempfile::tempdir()?;
    let mut config = genreg::Config::new(data.path());
    config.listen = "127.0.0.1:0".parse()?;
    let registry = genreg::Registry::start(config).await?;
    let client = reqwest::Client::new();
    let token = registry.admin_token().to_string();
    let base = registry.url();

    let project: serde_json::Value = client
        .post(format!("{base}/api/v4/projects"))
        .header("PRIVATE-TOKEN", &token)
        .json(&serde_json::json!({ "path": "listing", "namespace_path": "bench" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = project["id"].as_u64().context("project id")?;

    let start = Instant::now();
    futures::stream::iter(0..packages)
        .map(|i| {
            let url = format!(
                "{base}/api/v4/projects/{id}/packages/generic/{}/1.0.{}/f.bin",
                name(i),
                i / NAMES
            );
            let request = client
                .put(url)
                .header("PRIVATE-TOKEN", &token)
                .body(vec![b'x']);
            async move {
                let response = request.send().await?;
                let status = response.status();
                let text = response.text().await?;
                ensure!(
                    status == StatusCode::CREATED,
                    "publish {i} answered {status}: {text}"
                );
                anyhow::Ok(())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<()>()
        .await?;
    let publish_time = start.elapsed();

    let wanted_name = name(42 % packages.min(NAMES));
    let listings = [
        String::new(),
        "?per_page=100&page=50".to_string(),
        format!("?package_name={wanted_name}&order_by=version"),
    ];
    let mut results = Vec::new();
    for query in &listings {
        let url = format!("{base}/api/v4/projects/{id}/packages{query}");
        list(&client, &url, &token).await?; // warm-up
        let mut times = Vec::with_capacity(requests);
        let mut shape = (0, String::new());
        for _ in 0..requests {
            let started = Instant::now();
            shape = list(&client, &url, &token).await?;
            times.push(started.elapsed());
        }
        times.sort();
        results.push((query.clone(), times, shape));
    }
    let files: usize = env_or("GENREG_BENCH_FILES", 100_000);
    let big = many_files(&client, &base, &token, files, requests).await?;
    registry.shutdown().await;

    println!();
    println!(
        "genreg listing benchmark: {packages} packages in one project, embedded S3, {requests} requests per listing"
    );
    println!(
        "publish: {packages} packages (1-byte files, {IN_FLIGHT} in flight) in {:.1} s, {:.0} publishes/s",
        publish_time.as_secs_f64(),
        packages as f64 / publish_time.as_secs_f64()
    );
    println!(
        "{:<58}{:>12}{:>10}{:>16}",
        "GET /api/v4/projects/:id/packages", "median ms", "p95 ms", "items / X-Total"
    );
    for (query, times, (items, total)) in &results {
        let query = if query.is_empty() {
            "(default page)"
        } else {
            query
        };
        println!(
            "  {query:<56}{:>12.1}{:>10.1}{:>16}",
            ms(times[times.len() / 2]),
            ms(times[nearest_rank(times.len(), 0.95)]),
            format!("{items} / {total}")
        );
    }
    if let Some((rates, timings)) = big {
        println!();
        println!(
            "one package, {files} files: publish {:.0}/s over the first tenth, {:.0}/s over the last",
            rates.0, rates.1
        );
        println!("{:<58}{:>12}{:>10}", "request", "median ms", "p95 ms");
        for (what, times) in &timings {
            println!(
                "  {what:<56}{:>12.1}{:>10.1}",
                ms(times[times.len() / 2]),
                ms(times[nearest_rank(times.len(), 0.95)])
            );
        }
    }
    Ok(())
}

/// Rates (first tenth, last tenth) and request timings of the many-files
/// phase, or `None` when it is switched off (`GENREG_BENCH_FILES=0`).
type ManyFiles = Option<((f64, f64), Vec<(String, Vec<Duration>)>)>;

async fn many_files(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    files: usize,
    requests: usize,
) -> anyhow::Result<ManyFiles> {
    if files == 0 {
        return Ok(None);
    }
    let project: serde_json::Value = client
        .post(format!("{base}/api/v4/projects"))
        .header("PRIVATE-TOKEN", token)
        .json(&serde_json::json!({ "path": "nightly", "namespace_path": "bench" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = project["id"].as_u64().context("project id")?;
    let file_url =
        |name: &str| format!("{base}/api/v4/projects/{id}/packages/generic/nightly/1.0.0/{name}");
    let tenth = (files / 10).max(1);
    let mut rates = Vec::new();
    for chunk in [0..tenth, tenth..files - tenth, files - tenth..files] {
        let count = chunk.len();
        let start = Instant::now();
        futures::stream::iter(chunk)
            .map(|i| {
                let name = if i == 0 {
                    "early.bin".to_string()
                } else {
                    format!("f{}.bin", i % 10)
                };
                let request = client
                    .put(file_url(&name))
                    .header("PRIVATE-TOKEN", token)
                    .body(vec![b'x']);
                async move {
                    let response = request.send().await?;
                    let status = response.status();
                    let text = response.text().await?;
                    ensure!(
                        status == StatusCode::CREATED,
                        "file {i} answered {status}: {text}"
                    );
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        rates.push(count as f64 / start.elapsed().as_secs_f64());
    }
    let package: Vec<serde_json::Value> = client
        .get(format!("{base}/api/v4/projects/{id}/packages"))
        .header("PRIVATE-TOKEN", token)
        .send()
        .await?
        .json()
        .await?;
    let package_id = package[0]["id"].as_u64().context("package id")?;
    let last_page = files.div_ceil(100);
    let files_url = format!("{base}/api/v4/projects/{id}/packages/{package_id}/package_files");
    let probes = [
        (
            "package_files ?per_page=100".to_string(),
            format!("{files_url}?per_page=100"),
        ),
        (
            format!("package_files ?per_page=100&page={last_page}"),
            format!("{files_url}?per_page=100&page={last_page}"),
        ),
        (
            "download f3.bin (in the record)".to_string(),
            file_url("f3.bin"),
        ),
        (
            "download early.bin (oldest segment)".to_string(),
            file_url("early.bin"),
        ),
    ];
    let mut timings = Vec::new();
    for (what, url) in probes {
        let mut times = Vec::with_capacity(requests);
        for _ in 0..=requests {
            let started = Instant::now();
            let response = client
                .get(&url)
                .header("PRIVATE-TOKEN", token)
                .send()
                .await?;
            let status = response.status();
            response.bytes().await?;
            ensure!(status == StatusCode::OK, "{url} answered {status}");
            times.push(started.elapsed());
        }
        times.remove(0); // warm-up
        times.sort();
        timings.push((what, times));
    }
    Ok(Some(((rates[0], rates[2]), timings)))
}

/// `p000` .. `p099`.
fn name(i: usize) -> String {
    format!("p{:03}", i % NAMES)
}

/// One listing: checks 200 and returns the number of items and `X-Total`.
async fn list(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<(usize, String)> {
    let response = client
        .get(url)
        .header("PRIVATE-TOKEN", token)
        .send()
        .await?;
    let status = response.status();
    let total = response
        .headers()
        .get("x-total")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let text = response.text().await?;
    ensure!(status == StatusCode::OK, "{url} answered {status}: {text}");
    let items: Vec<serde_json::Value> = serde_json::from_str(&text).context("listing JSON")?;
    Ok((items.len(), total))
}

/// Index of the `p` quantile in `n` sorted values (nearest rank).
fn nearest_rank(n: usize, p: f64) -> usize {
    ((p * n as f64).ceil() as usize).clamp(1, n) - 1
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
