//! Cold start: how long `genreg up` takes to answer its first request, and
//! how long that first request takes, with an empty compile cache, with the
//! cache the previous start filled, and with `--disable-cache`.
//!
//! Each start runs the `genreg` binary of this build on a fresh data
//! directory (embedded S3 and SQLite) and its own cache directory, polls
//! `GET /-/health` (answered by the component) every 2 ms until it answers
//! 200, then sends 20 more. "Ready" is the time from spawning the process
//! to the first 200; "first request" that request's own latency; the
//! median of the next 20 is a warm request for comparison. Every set-up
//! runs `GENREG_BENCH_STARTS` times (default 5) and the table shows medians.
//!
//! ```text
//! cargo bench -p genreg --bench cold_start 2>/dev/null
//! ```

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long one start may take before the bench gives up.
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// Requests timed after the first.
const WARM_REQUESTS: usize = 20;

/// What one start measured.
struct Start {
    ready: Duration,
    first: Duration,
    warm: Duration,
}

fn main() -> anyhow::Result<()> {
    let starts: usize = std::env::var("GENREG_BENCH_STARTS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(5)
        .max(1);
    let mut rows = Vec::new();
    for (label, disable, keep_cache) in [
        ("empty compile cache", false, false),
        ("cache from the previous start", false, true),
        ("--disable-cache", true, false),
    ] {
        let mut measured = Vec::new();
        let cache = tempfile::tempdir()?;
        if keep_cache {
            // Fill it once; every measured start then finds it.
            start(cache.path(), false)?;
        }
        for _ in 0..starts {
            let fresh;
            let cache_root = if keep_cache {
                cache.path()
            } else {
                fresh = tempfile::tempdir()?;
                fresh.path()
            };
            measured.push(start(cache_root, disable)?);
        }
        eprintln!("{label}: {starts} starts");
        rows.push((label, measured));
    }
    println!();
    println!("genreg cold start: medians of {starts} starts, release build");
    println!(
        "{:<32}{:>12}{:>18}{:>16}",
        "set-up", "ready ms", "first request ms", "warm request ms"
    );
    for (label, measured) in rows {
        let median = |f: fn(&Start) -> Duration| {
            let mut values: Vec<Duration> = measured.iter().map(f).collect();
            values.sort();
            values[values.len() / 2].as_secs_f64() * 1000.0
        };
        println!(
            "{:<32}{:>12.0}{:>18.1}{:>16.2}",
            label,
            median(|s| s.ready),
            median(|s| s.first),
            median(|s| s.warm),
        );
    }
    Ok(())
}

/// A `genreg up` killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `genreg up` with its cache under `cache_root` and measures it.
fn start(cache_root: &Path, disable_cache: bool) -> anyhow::Result<Start> {
    let data = tempfile::tempdir()?;
    let address = free_loopback_address()?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_genreg"));
    command
        .arg("up")
        .arg("--listen")
        .arg(address.to_string())
        .arg("--data")
        .arg(data.path())
        .env("XDG_CACHE_HOME", cache_root.join("cache"))
        .env("XDG_CONFIG_HOME", cache_root.join("config"))
        .env_remove("GENREG_CACHE")
        .env_remove("GENREG_DISABLE_CACHE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if disable_cache {
        command.arg("--disable-cache");
    }
    let spawned = Instant::now();
    let running = Running(command.spawn()?);
    let first = loop {
        anyhow::ensure!(
            spawned.elapsed() < START_TIMEOUT,
            "genreg up did not answer within {START_TIMEOUT:?}"
        );
        let sent = Instant::now();
        if health(address).unwrap_or(false) {
            break sent.elapsed();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let ready = spawned.elapsed();
    let mut warm = Vec::new();
    for _ in 0..WARM_REQUESTS {
        let sent = Instant::now();
        anyhow::ensure!(health(address)?, "a later /-/health did not answer 200");
        warm.push(sent.elapsed());
    }
    warm.sort();
    drop(running);
    Ok(Start {
        ready,
        first,
        warm: warm[warm.len() / 2],
    })
}

/// Whether `GET /-/health` answers 200 (an error while it is not
/// listening yet).
fn health(address: SocketAddr) -> anyhow::Result<bool> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(b"GET /-/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(answer.starts_with(b"HTTP/1.1 200"))
}

fn free_loopback_address() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}
