//! Crash-recovery benchmark: what a `kill -9` of `genreg` costs its clients.
//!
//! 16 clients publish small files without pause (half add files to one
//! package, half publish new versions) into the real `genreg up` binary
//! with its embedded S3 server. After `GENREG_BENCH_KILL_EVERY` (default 40)
//! more publishes have answered 201, the process is killed with SIGKILL and started
//! again on the same data directory. For each kill it measures:
//!
//! - restart: from SIGKILL to the new process serving (it loads the
//!   compiled component from the compile cache the first start filled);
//! - recovery: from serving again until every client has had a 201 again
//!   (each retries its interrupted publish; a creation claim the dead
//!   process left makes requests for that key answer 503 for up to 35 s);
//! - the 503s and failed connections the clients saw.
//!
//! At the end `genreg gc --min-age 0s` collects what the kills left, and
//! the fault suite's invariant checker verifies the result (every 201
//! listed, every file downloads as recorded, nothing unreferenced), so the
//! figures come from a run that lost nothing. It exits non-zero only when
//! an invariant breaks.
//!
//! ```text
//! cargo bench -p genreg --bench crash_recovery               # 5 kills
//! GENREG_BENCH_KILLS=20 cargo bench -p genreg --bench crash_recovery
//! ```
//! (`cargo test --benches` runs it with one kill.)

#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::ensure;
use tokio::sync::watch;

use support::checker::{self, RegistryAccess, Unacknowledged};
use support::process::{self, Genreg};
use support::{client, create_project, publish_until_created, Retries, Upload};

const CLIENTS: usize = 16;

/// What one kill cost.
struct Kill {
    restart: Duration,
    recovery: Duration,
    unavailable: usize,
    connection_errors: usize,
}

/// What the clients share with the loop that kills.
#[derive(Default)]
struct Progress {
    created: AtomicUsize,
    unavailable: AtomicUsize,
    connection_errors: AtomicUsize,
    stop: AtomicBool,
    /// Per client, when it last had a 201 since the latest restart.
    since_restart: Mutex<Vec<Option<Instant>>>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let kills: usize = env_or("GENREG_BENCH_KILLS", if bench { 5 } else { 1 });
    let every: usize = env_or("GENREG_BENCH_KILL_EVERY", 40);

    let dir = tempfile::tempdir()?;
    let (data, log) = (dir.path().join("data"), dir.path().join("genreg.log"));
    let mut genreg = Genreg::start(&data, &log).await;
    let token = genreg.admin_token.clone();
    let http = client();
    let project = create_project(&http, &genreg.url, &token, "bench").await;

    let (url_tx, url_rx) = watch::channel(Some(genreg.url.clone()));
    let progress = Arc::new(Progress {
        since_restart: Mutex::new(vec![None; CLIENTS]),
        ..Progress::default()
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (http, token, progress) = (http.clone(), token.clone(), progress.clone());
            tokio::spawn(publish_continuously(
                c,
                project,
                http,
                url_rx.clone(),
                token,
                progress,
            ))
        })
        .collect();

    let mut measured = Vec::new();
    for _ in 0..kills {
        let kill_at = progress.created.load(Ordering::SeqCst) + every;
        wait_until(|| progress.created.load(Ordering::SeqCst) >= kill_at).await;
        let before = counts(&progress);
        url_tx.send_replace(None);
        let killed = Instant::now();
        genreg.kill9().await;
        genreg = Genreg::start(&data, &log).await;
        let serving = Instant::now();
        progress.since_restart.lock().unwrap().fill(None);
        url_tx.send_replace(Some(genreg.url.clone()));
        wait_until(|| {
            progress
                .since_restart
                .lock()
                .unwrap()
                .iter()
                .all(Option::is_some)
        })
        .await;
        let recovered = progress
            .since_restart
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .max()
            .copied()
            .unwrap_or(serving);
        let after = counts(&progress);
        measured.push(Kill {
            restart: serving - killed,
            recovery: recovered.saturating_duration_since(serving),
            unavailable: after.0 - before.0,
            connection_errors: after.1 - before.1,
        });
    }
    progress.stop.store(true, Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for client in clients {
        acknowledged.extend(client.await??);
    }

    let started = Instant::now();
    let gc = process::gc_now(&data).await;
    let gc_time = started.elapsed();
    ensure!(gc.success, "genreg gc failed: {}{}", gc.stdout, gc.stderr);
    let access = RegistryAccess {
        url: genreg.url.clone(),
        token,
        client: http,
    };
    if !gc.stderr.is_empty() {
        eprintln!("genreg gc: {}", gc.stderr);
    }
    let checked = async {
        let catalog =
            checker::check_registry(&access, &[project], &acknowledged, Unacknowledged::Allowed)
                .await?;
        checker::check_bucket(&genreg.s3(), &catalog).await?;
        Ok::<_, checker::Violations>(catalog)
    }
    .await;
    let catalog = match checked {
        Ok(catalog) => catalog,
        Err(violations) => {
            // Keep the evidence.
            let kept = dir.keep();
            anyhow::bail!("{violations}data directory kept at {}", kept.display());
        }
    };
    genreg.kill9().await;

    print_table(&measured);
    println!(
        "{} publishes answered 201, {} files listed; genreg gc after the run: {} ({:.2} s)",
        acknowledged.len(),
        catalog.files.len(),
        gc.stdout.lines().last().unwrap_or_default(),
        gc_time.as_secs_f64()
    );
    Ok(())
}

/// One client: publishes until told to stop, riding out the kills; returns
/// what answered 201.
async fn publish_continuously(
    c: usize,
    project: u64,
    http: reqwest::Client,
    mut current: support::Current,
    token: String,
    progress: Arc<Progress>,
) -> anyhow::Result<Vec<checker::Acknowledged>> {
    let mut acknowledged = Vec::new();
    let mut rng = support::rng::Rng::derived(support::rng::suite_seed(), &format!("bench {c}"));
    for j in 0.. {
        if progress.stop.load(Ordering::SeqCst) {
            break;
        }
        let size = 1 + rng.below(16 * 1024) as usize;
        let body = rng.bytes(size);
        let upload = if c < CLIENTS / 2 {
            Upload::new(project, "shared", "1.0", &format!("c{c}-{j}.bin"), body)
        } else {
            Upload::new(project, "tool", &format!("{c}.{j}.0"), "tool.bin", body)
        };
        let mut retries = Retries::default();
        let result =
            publish_until_created(&http, &mut current, &token, &upload, &mut retries).await;
        progress
            .unavailable
            .fetch_add(retries.unavailable, Ordering::SeqCst);
        progress
            .connection_errors
            .fetch_add(retries.connection_errors, Ordering::SeqCst);
        result.map_err(anyhow::Error::msg)?;
        acknowledged.push(upload.acknowledged());
        progress.created.fetch_add(1, Ordering::SeqCst);
        progress.since_restart.lock().unwrap()[c].get_or_insert_with(Instant::now);
    }
    Ok(acknowledged)
}

fn counts(progress: &Progress) -> (usize, usize) {
    (
        progress.unavailable.load(Ordering::SeqCst),
        progress.connection_errors.load(Ordering::SeqCst),
    )
}

/// Polls `done` (bounded: the clients' own retries are bounded, so this
/// ends or the run is broken).
async fn wait_until(done: impl Fn() -> bool) {
    for _ in 0..60_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the clients made no progress for 5 minutes");
}

fn print_table(kills: &[Kill]) {
    println!("| kill | restart | recovery | 503s | failed connections |");
    println!("|---|---|---|---|---|");
    for (i, kill) in kills.iter().enumerate() {
        println!(
            "| {} | {:.2} s | {:.2} s | {} | {} |",
            i + 1,
            kill.restart.as_secs_f64(),
            kill.recovery.as_secs_f64(),
            kill.unavailable,
            kill.connection_errors
        );
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let max = |v: Vec<Duration>| v.into_iter().max().unwrap_or_default().as_secs_f64();
    let restarts = || kills.iter().map(|k| k.restart).collect::<Vec<_>>();
    let recoveries = || kills.iter().map(|k| k.recovery).collect::<Vec<_>>();
    println!(
        "restart median {:.2} s (max {:.2} s); recovery median {:.2} s (max {:.2} s)",
        median(restarts()),
        max(restarts()),
        median(recoveries()),
        max(recoveries())
    );
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
