//! Load benchmark: small requests per second under `wrk`, `genreg` and real
//! `spin up` side by side, with the latency and the server CPU each request
//! costs.
//!
//! `genreg up` (the binary built with this bench, embedded S3 server,
//! SQLite store, temporary data directory) runs as a process of its own.
//! When `spin` is on `PATH` or at `../shared/bin/spin`, `spin up` serves the
//! same component from the repository's spin.toml with its default SQLite
//! store (in a temporary `--state-dir`), the same token secret and the same
//! embedded S3 server; otherwise the bench says it is skipped.
//!
//! On each server: one project, a deploy token with `write_package_registry`
//! (what CI uses to publish), a package `seeded/1.0.0` holding one 1 KiB
//! `seed.bin`, then these phases of `wrk -t2 -c16 -d<GENREG_BENCH_SECONDS>s`
//! (default 10; 1 under `cargo test --benches`), each a Lua script written
//! to a temporary directory:
//!
//! - `health`: `GET /-/health`;
//! - `download`: `GET` of `seeded/1.0.0/seed.bin` by name (download mode
//!   `proxy`: the bytes come through the component from S3);
//! - `publish into a package`: `PUT` of 1 KiB files with unique names into
//!   `filled/1.0.0` (the package grows through the phase);
//! - `publish a new version`: `PUT` of one 1 KiB file into a new version of
//!   `versioned` each time;
//! - `direct S3 GET` and `direct S3 PUT` (once, for reference): presigned
//!   `GET`s of one 1 KiB object and `PUT`s of 1 KiB objects under new keys,
//!   straight to the embedded S3 server: the floor under a download and a
//!   publish.
//!
//! Every phase must answer only 2xx with no socket error (a request may
//! take up to 30 s; wrk's `Non-2xx or 3xx responses` count and its error
//! counts); publishes are counted afterwards through the Packages API (`X-Total`) and must match
//! what wrk counted, so an error path cannot pass as throughput. A phase
//! that fails either check is reported loudly and the bench exits non-zero
//! after printing its table.
//!
//! CPU per request is the utime + stime the server processes spent during
//! the phase (`/proc/<pid>/stat`), divided by the requests wrk counted:
//! for `genreg` its one process (registry, wasmtime and S3 server); for
//! `spin up` every process of its group plus the `genreg` process, which
//! serves Spin's S3 requests. wrk runs on the same 2 cores as the servers.
//!
//! Both servers run without `RUST_BACKTRACE`, as users run them: with it,
//! every error value wasmtime makes (some on every request) captures a
//! backtrace, which costs a few percent of a download.
//!
//! `GENREG_BENCH_BASELINE=<component.wasm>` adds a `spin up` serving that
//! component (an earlier build), so a change is measured against what it
//! replaces in the same run.
//! `GENREG_BENCH_SPIN_WAL=1` adds a `spin up` of the same component whose
//! store file was put in WAL mode first (`genreg spin-store`).
//! `GENREG_BENCH_SPIN_REDIS=1` adds a `spin up` of the same component (and
//! of the baseline, when given) on Spin's Redis store: a `redis-server` on
//! a free loopback port (nothing saved), a database of its own per `spin
//! up`, whose CPU time counts as the server's. For those the bench also
//! prints, per phase, the Redis commands, the `WATCH`es (one per
//! compare-and-swap attempt) and the connections Redis accepted per
//! request (Spin opens one for each compare-and-swap).
//! For `genreg` the bench also prints, per phase, what its access log lines
//! counted per request: store reads, writes, compare-and-swap attempts and
//! lost ones, S3 requests.
//! `GENREG_BENCH_BINARY` runs another `genreg` binary instead of the one
//! built with the bench (an older build, to compare before and after).
//! `GENREG_BENCH_SPIN=off` measures `genreg` alone.
//! `GENREG_BENCH_PROJECT=path` names the project by its URL-encoded path
//! (`bench%2Fload`) in the download and publish phases, as README's
//! examples do, instead of by its number.
//! `GENREG_BENCH_DIR=<dir>` keeps the data directories, Spin's state and
//! the S3 objects under `<dir>` (e.g. `/dev/shm`, to see what the disk's
//! flushes cost); the bench prints what one SQLite write transaction costs
//! there, with the rollback journal and in WAL mode, what Spin's default
//! store alone serves there to 16 callers each making a publish phase's
//! store calls as `genreg`'s log counted them (`spin_store_alone.rs`: as
//! Spin creates the file, with one write fewer, and in WAL mode), and what
//! one durable 1 KiB object costs (its time, and its CPU with the kernel's
//! work in its system calls).
//! `GENREG_BENCH_GENREG_IN_MEMORY=1` adds the same phases on a second
//! `genreg` whose data directory is in `/dev/shm`, beside the first, with
//! their own rows of targets, and says per publish phase how much more
//! server CPU a publish took on the disk: the disk's share, which the
//! machine's disk sets.
//! `GENREG_BENCH_GENREG_DIR=<dir>` moves only `genreg`'s data directory
//! (its store and the embedded S3 server's objects, which Spin's publishes
//! write too), e.g. to `/dev/shm` while Spin's store stays on the disk.
//!
//! Without `wrk` on `PATH` (Debian: `apt-get install wrk`) the bench says
//! so and measures nothing.
//!
//! ```text
//! cargo bench -p genreg --bench load 2>/dev/null
//! GENREG_BENCH_SECONDS=30 cargo bench -p genreg --bench load 2>/dev/null
//! GENREG_BENCH_BINARY=/tmp/genreg-old cargo bench -p genreg --bench load 2>/dev/null
//! ```

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use tokio::process::Command;

/// wrk's threads and connections.
const THREADS: usize = 2;
const CONNECTIONS: usize = 16;
/// Bytes of every file published and downloaded.
const FILE_SIZE: usize = 1024;
/// How long a server may take to answer its first request (the first start
/// may compile the component).
const START_AT_MOST: Duration = Duration::from_secs(300);
/// Where Spin is looked for besides `PATH`, relative to the workspace.
const SHARED_SPIN: &str = "../shared/bin/spin";
/// The object the direct S3 phase reads.
const DIRECT_KEY: &str = "bench/direct-1k.bin";
/// Where `genreg`'s data directory goes, apart from the other files.
const GENREG_DIR: &str = "GENREG_BENCH_GENREG_DIR";
/// Adds a second `genreg` whose data directory is in memory (`/dev/shm`).
const GENREG_IN_MEMORY: &str = "GENREG_BENCH_GENREG_IN_MEMORY";
/// Adds a `spin up` whose store file `genreg spin-store` put in WAL mode.
const SPIN_WAL: &str = "GENREG_BENCH_SPIN_WAL";
/// Adds `spin up`s on Spin's Redis store.
const SPIN_REDIS: &str = "GENREG_BENCH_SPIN_REDIS";
/// `path` names the project by its path in the phases' URLs.
const PROJECT_BY: &str = "GENREG_BENCH_PROJECT";
/// The path of the project [`prepare`] creates.
const PROJECT_PATH: &str = "bench/load";

/// Presigned keys for the direct `PUT` phase, per second it runs.
const DIRECT_PUTS_PER_SECOND: u64 = 8_000;
/// A request wrk waits for longer than this counts as a socket error (its
/// default of 2 s would count slow publishes that succeed).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How the deploy token is sent.
const TOKEN_HEADER: &str = "Deploy-Token";
/// Targets of issue 10 on `genreg`.
const DOWNLOAD_RATE_TARGET: f64 = 4000.0;
const DOWNLOAD_P50_TARGET_MS: f64 = 4.0;
const PUBLISH_RATE_TARGET: f64 = 2000.0;
/// The phases that publish, as the targets name them.
const PUBLISH_PHASES: [&str; 2] = ["publish into a package", "publish a new version"];

/// The packages of the phases; no name is a substring of another, so the
/// Packages API's `package_name` filter (a substring match) counts one.
const SEEDED: &str = "seeded";
const FILLED: &str = "filled";
const VERSIONED: &str = "versioned";

#[path = "support/bench_dir.rs"]
mod bench_dir;
#[path = "support/genreg_up.rs"]
mod genreg_up;
#[path = "support/proc_stats.rs"]
mod proc_stats;
#[path = "../tests/support/redis_server.rs"]
mod redis_server;
#[path = "support/spin_manifest.rs"]
mod spin_manifest;
#[path = "support/spin_store_alone.rs"]
mod spin_store_alone;

use bench_dir::Journal;
use genreg::request_counts::Counted;
use genreg_up::GenregUp;
use proc_stats::{
    cpu_seconds, load_average, proc_status_kib, reset_peak_resident, stat_field, stat_fields,
};
use redis_server::{RedisServer, RedisTotals};
use spin_manifest::{workspace, write_spin_manifest};
use spin_store_alone::StoreCalls;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then
    // this is a quick smoke run of the same code.
    let bench = std::env::args().any(|a| a == "--bench");
    let seconds: u64 = env_or("GENREG_BENCH_SECONDS", if bench { 10 } else { 1 }).max(1);
    let Some(wrk) = find_program("wrk") else {
        println!("load benchmark skipped: wrk is not on PATH (Debian: apt-get install wrk)");
        return Ok(());
    };
    let load_before = load_average();
    let temp = bench_dir::temp_dir()?;
    let scripts = temp.path().join("scripts");
    std::fs::create_dir_all(&scripts)?;
    let wrk = Wrk {
        program: wrk,
        scripts,
        seconds,
    };

    let program = GenregUp::program("GENREG_BENCH_BINARY");
    // `genreg`'s data directory holds its store and the S3 objects Spin
    // writes too; it may live apart from Spin's state.
    let genreg_temp = match std::env::var_os(GENREG_DIR) {
        Some(dir) => Some(tempfile::tempdir_in(dir)?),
        None => None,
    };
    let genreg_data = genreg_temp.as_ref().map_or(temp.path(), |t| t.path());
    let genreg = GenregUp::start(&program, &genreg_data.join("genreg"), "proxy").await?;
    let client = reqwest::Client::new();
    let mut columns = Vec::new();

    eprintln!("genreg: preparing");
    columns.push(measure_server(&client, &wrk, &Server::genreg("genreg", &genreg)).await?);
    if std::env::var_os(GENREG_IN_MEMORY).is_some() {
        columns.push(measure_in_memory(&client, &wrk, &program).await?);
    }

    let direct = direct_s3_phases(&client, &wrk, &genreg).await?;

    let redis = if std::env::var_os(SPIN_REDIS).is_some() {
        RedisServer::start_or_skip("load benchmark, spin up on Redis")
    } else {
        None
    };
    let baseline = std::env::var_os("GENREG_BENCH_BASELINE").map(PathBuf::from);
    let mut spin_components = vec![(
        "spin up",
        genreg::component_path(),
        SpinStore::File(Journal::Rollback),
    )];
    if std::env::var_os(SPIN_WAL).is_some() {
        spin_components.push((
            "spin up, WAL store",
            genreg::component_path(),
            SpinStore::File(Journal::Wal),
        ));
    }
    if let Some(baseline) = &baseline {
        spin_components.push((
            "spin up, baseline",
            baseline.clone(),
            SpinStore::File(Journal::Rollback),
        ));
    }
    if let Some(redis) = &redis {
        spin_components.push((
            "spin up, Redis",
            genreg::component_path(),
            SpinStore::Redis(redis.url(1)),
        ));
        if let Some(baseline) = &baseline {
            spin_components.push((
                "spin up, Redis, baseline",
                baseline.clone(),
                SpinStore::Redis(redis.url(2)),
            ));
        }
    }
    let spin_skipped = match find_spin() {
        Ok(spin) => {
            for (name, component, store) in spin_components {
                eprintln!("{name}: starting");
                let dir = temp.path().join(name.replace([' ', ','], "-"));
                let mut extra_pids = vec![("S3 server (genreg)", genreg.pid)];
                let store_redis = match (&store, &redis) {
                    (SpinStore::Redis(_), Some(redis)) => Some(redis),
                    _ => None,
                };
                extra_pids.extend(store_redis.map(|redis| ("Redis", redis.pid())));
                let spin = SpinProcess::start(&spin, &genreg, &dir, &component, store).await?;
                let server = Server {
                    name,
                    url: spin.url.clone(),
                    admin_token: genreg.admin_token.clone(),
                    pids: Pids::Group(spin.child.id()),
                    redis: store_redis,
                    log: None,
                    extra_pids,
                };
                columns.push(measure_server(&client, &wrk, &server).await?);
            }
            None
        }
        Err(looked) => Some(format!("spin up skipped: {looked}")),
    };
    let load_after = load_average();

    println!();
    println!(
        "genreg load benchmark: wrk -t{THREADS} -c{CONNECTIONS} -d{seconds}s per phase, \
         {FILE_SIZE}-byte files, download mode proxy, SQLite stores, embedded S3"
    );
    println!("load average (1, 5, 15 min): {load_before} before, {load_after} after");
    print_table(&columns, &direct);
    if let Some(line) = spin_skipped {
        println!("{line}");
    }
    let genreg_columns: Vec<&Column> = columns
        .iter()
        .filter(|c| c.server.starts_with("genreg"))
        .collect();
    print_targets(&genreg_columns);
    for (journal, how) in [
        (Journal::Rollback, "as Spin's default store runs them"),
        (
            Journal::Wal,
            "the same in WAL mode, after genreg spin-store",
        ),
    ] {
        let (mean, p50, p99) = bench_dir::sqlite_write_cost(journal)?;
        println!(
            "SQLite write transaction where the bench keeps its files ({}; {how}, one \
             at a time): mean {:.2} ms (p50 {:.2}, p99 {:.2}), so at most {:.0} writes/s",
            temp.path()
                .parent()
                .map_or("?".into(), |p| p.display().to_string()),
            ms(mean),
            ms(p50),
            ms(p99),
            1.0 / mean.as_secs_f64()
        );
    }
    print_spin_store_alone(&columns, seconds)?;
    let (object_time, object_cpu) = bench_dir::durable_object_cost()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "durable 1 KiB object where the bench keeps its files (written, synced, renamed \
         and its directory synced, as genreg's S3 server stores a small PutObject; one at \
         a time): {:.2} ms, {:.2} ms of CPU each; {PUBLISH_RATE_TARGET:.0} publishes/s on \
         {cores} cores leave at most {:.2} ms of CPU per publish, wrk's share included",
        ms(object_time),
        ms(object_cpu),
        cores as f64 * 1000.0 / PUBLISH_RATE_TARGET
    );
    let failures: Vec<String> = columns
        .iter()
        .flat_map(|column| {
            column.phases.iter().filter_map(move |(name, phase)| {
                phase
                    .failure
                    .as_ref()
                    .map(|f| format!("{} {name}: {f}", column.server))
            })
        })
        .chain(
            direct
                .iter()
                .filter_map(|(name, phase)| phase.failure.as_ref().map(|f| format!("{name}: {f}"))),
        )
        .collect();
    if !failures.is_empty() {
        println!();
        for failure in &failures {
            println!("ERROR: {failure}");
        }
        bail!(
            "{} phase(s) had errors: their figures do not count",
            failures.len()
        );
    }
    Ok(())
}

/// Prints what Spin's default store alone serves at the bench's
/// concurrency when each caller makes the store calls a publish made on
/// `genreg` (its access log's counts, per phase): as Spin creates the store
/// file, with one write fewer per publish, and in WAL mode: the figures a
/// `spin up` of the same calls approaches as the component's own work
/// between them shrinks.
fn print_spin_store_alone(columns: &[Column], seconds: u64) -> anyhow::Result<()> {
    let Some(genreg) = columns.iter().find(|c| c.server == "genreg") else {
        return Ok(());
    };
    let duration = Duration::from_secs(seconds.min(5));
    for name in PUBLISH_PHASES {
        let Some(logged) = phase(genreg, name).and_then(|p| p.logged.as_ref()) else {
            continue;
        };
        let per_publish =
            |count: u64| (count as f64 / logged.requests.max(1) as f64).round() as u32;
        let total = logged.total;
        let swaps = per_publish(total.swaps.saturating_sub(total.lost_swaps));
        let calls = StoreCalls {
            reads: per_publish(total.reads.saturating_sub(total.lost_swaps)).saturating_sub(swaps),
            swaps,
            writes: per_publish(total.writes),
        };
        let mut runs = vec![("as Spin creates the store file", Journal::Rollback, calls)];
        if calls.writes > 0 {
            let fewer = StoreCalls {
                writes: calls.writes - 1,
                ..calls
            };
            runs.push(("with one write fewer", Journal::Rollback, fewer));
        }
        runs.push(("in WAL mode", Journal::Wal, calls));
        for (how, journal, calls) in runs {
            let served = spin_store_alone::serve(journal, CONNECTIONS, calls, duration)?;
            println!(
                "Spin's default store alone, {CONNECTIONS} callers, {name} (per publish: \
                 reads {}, swaps {}, writes {}, as genreg's log counted them; {how}): \
                 {:.0} publishes/s, p50 {:.1} ms, p99 {:.1} ms",
                calls.reads,
                calls.swaps,
                calls.writes,
                served.publishes_per_second,
                ms(served.p50),
                ms(served.p99)
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The phases.
// ---------------------------------------------------------------------------

/// A server under test and the processes whose CPU time is its cost.
struct Server<'a> {
    name: &'static str,
    url: String,
    admin_token: String,
    pids: Pids,
    /// The Redis server it stores in, whose counters each phase reads.
    redis: Option<&'a RedisServer>,
    /// Its access log (`genreg`'s), whose lines each phase adds up.
    log: Option<PathBuf>,
    /// Processes it needs besides `pids`, by name: the S3 server's when it
    /// is not one of them, Redis when it is the store.
    extra_pids: Vec<(&'static str, u32)>,
}

/// Which processes a server is.
#[derive(Clone, Copy)]
enum Pids {
    One(u32),
    /// Every process of the group this process leads (`spin up` runs its
    /// trigger as a child).
    Group(u32),
}

impl Server<'_> {
    /// `genreg` as the server: its own process, its access log.
    fn genreg(name: &'static str, genreg: &GenregUp) -> Self {
        Server {
            name,
            url: genreg.url.clone(),
            admin_token: genreg.admin_token.clone(),
            pids: Pids::One(genreg.pid),
            redis: None,
            log: Some(genreg.data.with_extension("log")),
            extra_pids: Vec::new(),
        }
    }

    /// CPU seconds spent so far by the server's own processes, then by
    /// each of [`Server::extra_pids`], with their names.
    fn cpu_seconds(&self) -> anyhow::Result<Vec<(&'static str, f64)>> {
        let own = match self.pids {
            Pids::One(pid) => cpu_seconds(pid)?,
            Pids::Group(leader) => group_members(leader)
                .into_iter()
                .map(|pid| cpu_seconds(pid).unwrap_or(0.0))
                .sum(),
        };
        let process = match self.pids {
            Pids::One(_) => "genreg",
            Pids::Group(_) => "spin",
        };
        let mut spent = vec![(process, own)];
        for &(name, pid) in &self.extra_pids {
            spent.push((name, cpu_seconds(pid)?));
        }
        Ok(spent)
    }
}

/// What one server measured.
struct Column {
    server: &'static str,
    phases: Vec<(&'static str, Phase)>,
    /// The server process's resident memory before its phases and its
    /// peak during them, in MiB, when it is one process.
    resident_mib: Option<(f64, f64)>,
}

/// One wrk run: its counts and latencies, the server CPU it cost, and why
/// its figures do not count, if they do not.
struct Phase {
    report: WrkReport,
    cpu_seconds: f64,
    /// `cpu_seconds` by process: the server's own, then the others it
    /// needs (its S3 server, Redis), with their names.
    cpu_by_process: Vec<(&'static str, f64)>,
    /// What the store's Redis served during the phase, when it is Redis.
    redis: Option<RedisTotals>,
    /// What the server's access log counted during the phase.
    logged: Option<LoggedCounts>,
    failure: Option<String>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.report.requests as f64 / self.report.duration.as_secs_f64()
    }

    fn cpu_ms_per_request(&self) -> f64 {
        self.cpu_seconds * 1000.0 / self.report.requests.max(1) as f64
    }

    /// `count` per request wrk counted.
    fn per_request(&self, count: u64) -> f64 {
        count as f64 / self.report.requests.max(1) as f64
    }
}

/// The ids and credentials the phases of one server use.
struct Prepared {
    project: u64,
    token: String,
}

impl Prepared {
    fn generic_path(&self, package: &str, version: &str, file: &str) -> String {
        format!(
            "/api/v4/projects/{}/packages/generic/{package}/{version}/{file}",
            self.project_ref()
        )
    }

    /// `:id` in the phases' URLs: the project's number, or with
    /// `GENREG_BENCH_PROJECT=path` its URL-encoded path, as README's
    /// examples name it.
    fn project_ref(&self) -> String {
        match std::env::var(PROJECT_BY).as_deref() {
            Ok("path") => PROJECT_PATH.replace('/', "%2F"),
            _ => self.project.to_string(),
        }
    }
}

/// The same phases on a second `genreg` of the same build whose data
/// directory (its store and the S3 objects) is in memory: beside the first,
/// what the disk's flushes cost a request in the same run.
async fn measure_in_memory(
    client: &reqwest::Client,
    wrk: &Wrk,
    program: &Path,
) -> anyhow::Result<Column> {
    let memory = tempfile::tempdir_in("/dev/shm").context("a directory in /dev/shm")?;
    let genreg = GenregUp::start(program, &memory.path().join("genreg"), "proxy").await?;
    eprintln!("genreg, data in memory: preparing");
    measure_server(
        client,
        wrk,
        &Server::genreg("genreg, data in memory", &genreg),
    )
    .await
}

/// Prepares `server`, then runs its four phases.
async fn measure_server(
    client: &reqwest::Client,
    wrk: &Wrk,
    server: &Server<'_>,
) -> anyhow::Result<Column> {
    let prepared = prepare(client, server).await?;
    let token = prepared.token.as_str();
    let mut phases = Vec::new();
    // Memory from here on: compiling the component at start (when the
    // compile cache has no copy) peaks far above what requests hold.
    let resident_before = match server.pids {
        Pids::One(pid) if reset_peak_resident(pid) => Some(proc_status_kib(pid, "VmRSS")),
        _ => None,
    };

    eprintln!("{}: health", server.name);
    let script = format!("wrk.method = \"GET\"\n{}", done_function());
    let health = run_phase(wrk, server, "health", &script, "/-/health").await?;
    phases.push(("health", health));

    eprintln!("{}: download", server.name);
    let script = format!(
        "wrk.method = \"GET\"\nwrk.headers[\"{TOKEN_HEADER}\"] = {}\n{}",
        lua_string(token),
        done_function()
    );
    let seed = prepared.generic_path(SEEDED, "1.0.0", "seed.bin");
    let download = run_phase(wrk, server, "download", &script, &seed).await?;
    phases.push(("download", download));

    eprintln!("{}: publish into a package", server.name);
    let prefix = prepared.generic_path(FILLED, "1.0.0", "f");
    let script = publish_script(
        token,
        &format!("{prefix}\" .. thread_id .. \"-\" .. n .. \".bin"),
    );
    let mut into_package = run_phase(wrk, server, "publish-file", &script, &prefix).await?;
    let stored = count_files(client, server, &prepared, FILLED, "1.0.0").await?;
    check_stored(&mut into_package, stored);
    phases.push(("publish into a package", into_package));

    eprintln!("{}: publish a new version", server.name);
    let prefix = prepared.generic_path(VERSIONED, "2.", "");
    let versioned = format!(
        "/api/v4/projects/{}/packages/generic/{VERSIONED}/2.\" .. thread_id .. \".\" .. n .. \"/f.bin",
        prepared.project_ref()
    );
    let script = publish_script(token, &versioned);
    let mut new_versions = run_phase(wrk, server, "publish-version", &script, &prefix).await?;
    let stored = count_packages(client, server, &prepared, VERSIONED).await?;
    check_stored(&mut new_versions, stored);
    phases.push(("publish a new version", new_versions));

    let mib = |kib: u64| kib as f64 / 1024.0;
    let resident_mib = match (server.pids, resident_before) {
        (Pids::One(pid), Some(before)) => Some((mib(before), mib(proc_status_kib(pid, "VmHWM")))),
        _ => None,
    };
    Ok(Column {
        server: server.name,
        phases,
        resident_mib,
    })
}

/// A project, a deploy token that may publish into it, and `seed.bin`.
async fn prepare(client: &reqwest::Client, server: &Server<'_>) -> anyhow::Result<Prepared> {
    let (namespace, path) = PROJECT_PATH
        .split_once('/')
        .expect("a namespace and a path");
    let project: serde_json::Value = client
        .post(format!("{}/api/v4/projects", server.url))
        .header("PRIVATE-TOKEN", &server.admin_token)
        .json(&serde_json::json!({ "path": path, "namespace_path": namespace }))
        .send()
        .await?
        .error_for_status()
        .context("creating the project")?
        .json()
        .await?;
    let project = project["id"].as_u64().context("project id")?;
    let deploy_token: serde_json::Value = client
        .post(format!(
            "{}/api/v4/projects/{project}/deploy_tokens",
            server.url
        ))
        .header("PRIVATE-TOKEN", &server.admin_token)
        .json(&serde_json::json!({
            "name": "load", "scopes": ["read_package_registry", "write_package_registry"]
        }))
        .send()
        .await?
        .error_for_status()
        .context("creating the deploy token")?
        .json()
        .await?;
    let prepared = Prepared {
        project,
        token: deploy_token["token"]
            .as_str()
            .context("the deploy token")?
            .to_string(),
    };
    let seed = prepared.generic_path(SEEDED, "1.0.0", "seed.bin");
    client
        .put(format!("{}{seed}", server.url))
        .header(TOKEN_HEADER, &prepared.token)
        .body(vec![b'x'; FILE_SIZE])
        .send()
        .await?
        .error_for_status()
        .context("publishing seed.bin")?;
    let downloaded = client
        .get(format!("{}{seed}", server.url))
        .header(TOKEN_HEADER, &prepared.token)
        .send()
        .await?
        .error_for_status()
        .context("downloading seed.bin")?
        .bytes()
        .await?;
    ensure!(downloaded.len() == FILE_SIZE, "seed.bin came back short");
    Ok(prepared)
}

/// A `PUT` of 1 KiB per request to the path the Lua expression `path`
/// builds from `thread_id` (0, 1, ... per wrk thread) and `n` (the
/// thread's request count), so every request names a new file.
fn publish_script(token: &str, path: &str) -> String {
    format!(
        r#"wrk.method = "PUT"
wrk.headers["{TOKEN_HEADER}"] = {token}
wrk.body = string.rep("x", {FILE_SIZE})

local next_thread = 0
function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

n = 0
function request()
  n = n + 1
  return wrk.format(nil, "{path}")
end
{done}"#,
        token = lua_string(token),
        done = done_function()
    )
}

/// wrk's `done` hook: one machine-readable line with the counts and the
/// latency quantiles (microseconds).
fn done_function() -> &'static str {
    r#"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "GENREG_WRK requests=%d duration_us=%d p50_us=%d p99_us=%d status=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
"#
}

/// A Lua string literal of `text`.
fn lua_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Runs one wrk phase against `server` at `path`, measuring its CPU.
async fn run_phase(
    wrk: &Wrk,
    server: &Server<'_>,
    name: &str,
    script: &str,
    path: &str,
) -> anyhow::Result<Phase> {
    let script_path = wrk
        .scripts
        .join(format!("{}-{name}.lua", server.name.replace(' ', "-")));
    std::fs::write(&script_path, script)?;
    let cpu_before = server.cpu_seconds()?;
    let redis_before = server.redis.map(RedisServer::totals);
    let log_before = server.log.as_deref().map(log_length);
    let report = wrk
        .run(&script_path, &format!("{}{path}", server.url))
        .await?;
    let cpu_by_process: Vec<(&'static str, f64)> = server
        .cpu_seconds()?
        .into_iter()
        .zip(cpu_before)
        .map(|((name, after), (_, before))| (name, after - before))
        .collect();
    let cpu_seconds = cpu_by_process.iter().map(|(_, spent)| spent).sum();
    // Less the snapshots' own: each reads two `INFO`s over two
    // connections, and two of each fall between the readings.
    let redis = server.redis.zip(redis_before).map(|(redis, before)| {
        let after = redis.totals();
        RedisTotals {
            commands: after.commands.saturating_sub(before.commands + 2),
            watches: after.watches - before.watches,
            connections: after.connections.saturating_sub(before.connections + 2),
        }
    });
    let logged = server
        .log
        .as_deref()
        .zip(log_before)
        .map(|(log, from)| LoggedCounts::since(log, from))
        .transpose()?;
    let failure = report.errors();
    Ok(Phase {
        report,
        cpu_seconds,
        cpu_by_process,
        redis,
        logged,
        failure,
    })
}

/// The length of a log file so far (0 before it exists).
fn log_length(log: &Path) -> u64 {
    std::fs::metadata(log).map_or(0, |m| m.len())
}

/// The counts at the end of `genreg`'s access log lines, added up.
#[derive(Clone, Copy, Debug, Default)]
struct LoggedCounts {
    requests: u64,
    total: Counted,
}

impl LoggedCounts {
    /// The lines written to `log` past its first `from` bytes.
    fn since(log: &Path, from: u64) -> anyhow::Result<LoggedCounts> {
        use std::io::{Read as _, Seek as _};
        let mut file = std::fs::File::open(log)?;
        file.seek(std::io::SeekFrom::Start(from))?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let mut counts = LoggedCounts::default();
        for counted in text.lines().filter_map(Counted::from_log_line) {
            counts.requests += 1;
            counts.total += counted;
        }
        Ok(counts)
    }
}

/// Fails `phase` unless the server stored what wrk says was published: at
/// least the requests wrk counted (all answered 2xx), and at most those
/// plus the ones still in flight when wrk stopped.
fn check_stored(phase: &mut Phase, stored: u64) {
    let counted = phase.report.requests;
    let at_most = counted + CONNECTIONS as u64;
    if phase.failure.is_none() && !(counted..=at_most).contains(&stored) {
        phase.failure = Some(format!(
            "wrk counted {counted} publishes answered 2xx, the registry holds {stored}"
        ));
    }
    eprintln!("  {stored} stored, {counted} counted by wrk");
}

/// The files of package `name`/`version`, by the Packages API.
async fn count_files(
    client: &reqwest::Client,
    server: &Server<'_>,
    prepared: &Prepared,
    name: &str,
    version: &str,
) -> anyhow::Result<u64> {
    let packages: serde_json::Value = client
        .get(format!(
            "{}/api/v4/projects/{}/packages",
            server.url, prepared.project
        ))
        .query(&[("package_name", name), ("package_version", version)])
        .header("PRIVATE-TOKEN", &server.admin_token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let Some(package) = packages.as_array().and_then(|all| all.first()) else {
        return Ok(0);
    };
    let id = package["id"].as_u64().context("package id")?;
    let url = format!(
        "{}/api/v4/projects/{}/packages/{id}/package_files?per_page=1",
        server.url, prepared.project
    );
    x_total(client, &url, &server.admin_token).await
}

/// The packages whose name contains `name`, by the Packages API.
async fn count_packages(
    client: &reqwest::Client,
    server: &Server<'_>,
    prepared: &Prepared,
    name: &str,
) -> anyhow::Result<u64> {
    let url = format!(
        "{}/api/v4/projects/{}/packages?per_page=1&package_name={name}",
        server.url, prepared.project
    );
    x_total(client, &url, &server.admin_token).await
}

/// The `X-Total` header of a listing.
async fn x_total(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<u64> {
    let response = client
        .get(url)
        .header("PRIVATE-TOKEN", token)
        .send()
        .await?
        .error_for_status()?;
    response
        .headers()
        .get("x-total")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{url}: no X-Total"))
}

/// A presigned `GET` of a 1 KiB object from the embedded S3 server, with
/// the `genreg` process's CPU (it is the S3 server).
/// The reference phases straight against the S3 server: `GET` of one 1 KiB
/// object, and `PUT`s of 1 KiB objects under new keys (presigned
/// beforehand, [`DIRECT_PUTS_PER_SECOND`] per second of the phase; a phase
/// that outruns them overwrites from the first key on).
async fn direct_s3_phases(
    client: &reqwest::Client,
    wrk: &Wrk,
    genreg: &GenregUp,
) -> anyhow::Result<Vec<(&'static str, Phase)>> {
    let credentials = genreg::data_dir::s3_credentials(&genreg.data)?;
    let bucket = Bucket::new(
        genreg.s3_endpoint.parse()?,
        UrlStyle::Path,
        "genreg",
        "us-east-1",
    )?;
    let credentials = Credentials::new(credentials.access_key_id, credentials.secret_access_key);
    let signed_for = Duration::from_secs(3600);
    let put = bucket
        .put_object(Some(&credentials), DIRECT_KEY)
        .sign(signed_for);
    client
        .put(put)
        .body(vec![b'x'; FILE_SIZE])
        .send()
        .await?
        .error_for_status()
        .context("putting the direct S3 object")?;
    let get = bucket
        .get_object(Some(&credentials), DIRECT_KEY)
        .sign(signed_for);
    let server = Server {
        name: "S3",
        url: String::new(),
        admin_token: String::new(),
        pids: Pids::One(genreg.pid),
        redis: None,
        log: None,
        extra_pids: Vec::new(),
    };
    eprintln!("direct S3 GET");
    let script = format!("wrk.method = \"GET\"\n{}", done_function());
    let get = run_phase(wrk, &server, "direct", &script, get.as_str()).await?;

    eprintln!("direct S3 PUT");
    let count = DIRECT_PUTS_PER_SECOND * wrk.seconds;
    let paths: Vec<String> = (0..count)
        .map(|i| {
            let url = bucket
                .put_object(Some(&credentials), &format!("bench/direct-put/{i}.bin"))
                .sign(signed_for);
            lua_string(&format!(
                "{}?{}",
                url.path(),
                url.query().unwrap_or_default()
            ))
        })
        .collect();
    let script = format!(
        r#"wrk.method = "PUT"
wrk.body = string.rep("x", {FILE_SIZE})
paths = {{ {paths} }}
local threads = 0
function setup(thread)
  thread:set("first", threads)
  threads = threads + 1
end
local n = 0
function request()
  local i = (n * {THREADS} + first) % #paths + 1
  n = n + 1
  return wrk.format(nil, paths[i])
end
{done}"#,
        paths = paths.join(",\n"),
        done = done_function(),
    );
    let server = Server {
        url: genreg.s3_endpoint.clone(),
        ..server
    };
    let put = run_phase(wrk, &server, "direct-put", &script, "/").await?;
    Ok(vec![
        ("direct S3 GET (reference)", get),
        ("direct S3 PUT (reference)", put),
    ])
}

// ---------------------------------------------------------------------------
// wrk.
// ---------------------------------------------------------------------------

struct Wrk {
    program: PathBuf,
    scripts: PathBuf,
    seconds: u64,
}

/// What wrk reported for one run.
struct WrkReport {
    requests: u64,
    duration: Duration,
    p50: Duration,
    p99: Duration,
    /// Responses with a status of 400 or more.
    non_2xx: u64,
    /// connect, read, write and timeout errors.
    socket_errors: [u64; 4],
}

impl Wrk {
    /// Runs `script` against `url` for the configured time.
    async fn run(&self, script: &Path, url: &str) -> anyhow::Result<WrkReport> {
        let output = Command::new(&self.program)
            .arg(format!("-t{THREADS}"))
            .arg(format!("-c{CONNECTIONS}"))
            .arg(format!("-d{}s", self.seconds))
            .arg(format!("--timeout={}s", REQUEST_TIMEOUT.as_secs()))
            .arg("-s")
            .arg(script)
            .arg(url)
            .stdin(Stdio::null())
            .output()
            .await
            .context("running wrk")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        ensure!(
            output.status.success(),
            "wrk failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        WrkReport::parse(&stdout).with_context(|| format!("wrk's output:\n{stdout}"))
    }
}

impl WrkReport {
    /// Reads the `done` hook's line, and cross-checks wrk's own
    /// `Non-2xx or 3xx responses` line.
    fn parse(stdout: &str) -> anyhow::Result<WrkReport> {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("GENREG_WRK "))
            .context("no GENREG_WRK line")?;
        let field = |name: &str| -> anyhow::Result<u64> {
            line.split_whitespace()
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                .with_context(|| format!("no {name}"))?
                .parse()
                .with_context(|| format!("{name} is not a number"))
        };
        let non_2xx_line: u64 = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
            .map_or(Ok(0), |n| n.trim().parse())?;
        let report = WrkReport {
            requests: field("requests")?,
            duration: Duration::from_micros(field("duration_us")?),
            p50: Duration::from_micros(field("p50_us")?),
            p99: Duration::from_micros(field("p99_us")?),
            non_2xx: field("status")?.max(non_2xx_line),
            socket_errors: [
                field("connect")?,
                field("read")?,
                field("write")?,
                field("timeout")?,
            ],
        };
        Ok(report)
    }

    /// Why the run does not count, if it does not.
    fn errors(&self) -> Option<String> {
        let [connect, read, write, timeout] = self.socket_errors;
        if self.requests == 0 {
            return Some("no request was answered".into());
        }
        if self.non_2xx > 0 || connect + read + write + timeout > 0 {
            return Some(format!(
                "{} non-2xx responses; socket errors: connect {connect}, read {read}, \
                 write {write}, timeout {timeout}",
                self.non_2xx
            ));
        }
        None
    }
}

// ---------------------------------------------------------------------------
// The report.
// ---------------------------------------------------------------------------

fn print_table(columns: &[Column], direct: &[(&str, Phase)]) {
    println!(
        "{:<26}{:<26}{:>11}{:>9}{:>9}{:>14}",
        "server", "phase", "requests/s", "p50 ms", "p99 ms", "CPU ms/req"
    );
    for column in columns {
        for (name, phase) in &column.phases {
            print_row(column.server, name, phase);
        }
    }
    for (name, phase) in direct {
        print_row("S3", name, phase);
    }
    println!(
        "(CPU ms/req: utime + stime of the server's processes per request; for spin up \
         its processes plus the genreg process serving its S3 requests, and Redis when it is the store)"
    );
    for column in columns {
        for (name, phase) in &column.phases {
            if let Some(logged) = phase.logged {
                let per = |n: u64| n as f64 / logged.requests.max(1) as f64;
                let total = logged.total;
                println!(
                    "{}, {name}: per request (access log, {} lines) {:.2} store reads, \
                     {:.2} writes, {:.2} swaps ({:.2} lost), {:.2} S3 requests",
                    column.server,
                    logged.requests,
                    per(total.reads),
                    per(total.writes),
                    per(total.swaps),
                    per(total.lost_swaps),
                    per(total.s3_requests),
                );
            }
            if phase.cpu_by_process.len() > 1 {
                let parts: Vec<String> = phase
                    .cpu_by_process
                    .iter()
                    .map(|(process, spent)| {
                        let per_request = spent * 1000.0 / phase.report.requests.max(1) as f64;
                        format!("{process} {per_request:.3}")
                    })
                    .collect();
                println!(
                    "{}, {name}: CPU ms per request by process: {}",
                    column.server,
                    parts.join(", ")
                );
            }
            if let Some(redis) = phase.redis {
                println!(
                    "{}, {name}: per request {:.1} Redis commands, {:.2} WATCH \
                     (compare-and-swap attempts), {:.2} new Redis connections",
                    column.server,
                    phase.per_request(redis.commands),
                    phase.per_request(redis.watches),
                    phase.per_request(redis.connections),
                );
            }
        }
    }
    for column in columns {
        if let Some((before, peak)) = column.resident_mib {
            println!(
                "{}: resident memory {before:.1} MiB before the phases, peak {peak:.1} MiB during them",
                column.server
            );
        }
    }
}

fn print_row(server: &str, name: &str, phase: &Phase) {
    let flag = if phase.failure.is_some() {
        "  ERRORS"
    } else {
        ""
    };
    println!(
        "{server:<26}{name:<26}{:>11.0}{:>9.2}{:>9.2}{:>14.3}{flag}",
        phase.rate(),
        ms(phase.report.p50),
        ms(phase.report.p99),
        phase.cpu_ms_per_request(),
    );
}

/// The issue's targets for `genreg`, for each of its columns (its data
/// directory where the bench keeps its files, usually on the disk, and in
/// `/dev/shm` when measured). With both, each publish phase also gets the
/// disk's share of its CPU: what keeping the data directory there (its
/// syncs above all) costs a publish in this run, against the CPU a publish
/// may take at the target rate on these cores (`wrk`'s share included).
fn print_targets(columns: &[&Column]) {
    for column in columns {
        println!();
        println!("{:<40}{:>12}{:>12}", column.server, "measured", "target");
        if let Some(download) = phase(column, "download") {
            target_row(
                "download requests/s",
                download.rate(),
                DOWNLOAD_RATE_TARGET,
                true,
            );
            target_row(
                "download p50 ms",
                ms(download.report.p50),
                DOWNLOAD_P50_TARGET_MS,
                false,
            );
        }
        for name in PUBLISH_PHASES {
            if let Some(publish) = phase(column, name) {
                target_row(
                    &format!("{name} requests/s"),
                    publish.rate(),
                    PUBLISH_RATE_TARGET,
                    true,
                );
            }
        }
    }
    let [disk, memory] = columns else {
        return;
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let budget = cores as f64 * 1000.0 / PUBLISH_RATE_TARGET;
    for name in PUBLISH_PHASES {
        if let (Some(on_disk), Some(in_memory)) = (phase(disk, name), phase(memory, name)) {
            let (on_disk, in_memory) =
                (on_disk.cpu_ms_per_request(), in_memory.cpu_ms_per_request());
            println!(
                "{name}: {on_disk:.3} ms of server CPU each with the data directory where the \
                 bench keeps its files, {in_memory:.3} in /dev/shm: {:.3} ms more there; \
                 {PUBLISH_RATE_TARGET:.0}/s on {cores} cores leaves {budget:.2} ms, wrk's share \
                 included",
                on_disk - in_memory
            );
        }
    }
}

/// The phase of `column` named `wanted`, if it ran.
fn phase<'a>(column: &'a Column, wanted: &str) -> Option<&'a Phase> {
    column
        .phases
        .iter()
        .find(|(name, _)| *name == wanted)
        .map(|(_, phase)| phase)
}

fn target_row(name: &str, measured: f64, target: f64, at_least: bool) {
    let (sign, ok) = if at_least {
        (">=", measured >= target)
    } else {
        ("<=", measured <= target)
    };
    println!(
        "{name:<40}{measured:>12.1}{:>12}  {}",
        format!("{sign} {target}"),
        if ok { "PASS" } else { "MISS" }
    );
}

// ---------------------------------------------------------------------------
// The servers.
// ---------------------------------------------------------------------------

/// Where a `spin up` keeps its key-value store.
enum SpinStore {
    /// Its default SQLite file, as Spin makes it or put in WAL mode first.
    File(Journal),
    /// Spin's Redis store at this URL.
    Redis(String),
}

/// A `spin up` of the repository's spin.toml on `genreg`'s S3 server and
/// token secret; killed (with the trigger process it starts) on drop.
struct SpinProcess {
    url: String,
    child: std::process::Child,
}

impl SpinProcess {
    async fn start(
        spin: &Path,
        genreg: &GenregUp,
        dir: &Path,
        component: &Path,
        store: SpinStore,
    ) -> anyhow::Result<SpinProcess> {
        std::fs::create_dir_all(dir)?;
        if let SpinStore::File(Journal::Wal) = store {
            genreg::spin_store::use_wal(&genreg::spin_store::store_file(&dir.join("state")))?;
        }
        let manifest = write_spin_manifest(dir, component)?;
        let listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut command = std::process::Command::new(spin);
        command
            .arg("up")
            .arg("--from")
            .arg(&manifest)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--listen")
            .arg(listen.to_string())
            .current_dir(dir);
        if let SpinStore::Redis(url) = &store {
            let runtime_config = dir.join("runtime-config.toml");
            std::fs::write(
                &runtime_config,
                format!("[key_value_store.default]\ntype = \"redis\"\nurl = {url:?}\n"),
            )?;
            command.arg("--runtime-config-file").arg(&runtime_config);
        }
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("SPIN_")
                || name == "RUNTIME_CONFIG_FILE"
                || name.ends_with("_BACKTRACE")
            {
                command.env_remove(&*name);
            }
        }
        let credentials = genreg::data_dir::s3_credentials(&genreg.data)?;
        let token_secret = genreg::data_dir::existing_token_secret(&genreg.data)?;
        for (name, value) in [
            ("S3_ENDPOINT", genreg.s3_endpoint.as_str()),
            ("S3_BUCKET", "genreg"),
            ("S3_REGION", "us-east-1"),
            ("S3_ACCESS_KEY_ID", credentials.access_key_id.as_str()),
            (
                "S3_SECRET_ACCESS_KEY",
                credentials.secret_access_key.as_str(),
            ),
            ("TOKEN_SECRET", token_secret.trim()),
            ("DOWNLOAD_MODE", "proxy"),
        ] {
            command.env(format!("SPIN_VARIABLE_{name}"), value);
        }
        // Its own process group: `spin up` runs the trigger as a child
        // process, which killing `spin up` alone would leave running.
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("spin.stdout"))?)
            .stderr(std::fs::File::create(dir.join("spin.stderr"))?)
            .spawn()
            .context("starting spin up")?;
        let mut process = SpinProcess {
            url: format!("http://{listen}"),
            child,
        };
        process.wait_until_ready(dir).await?;
        Ok(process)
    }

    /// Polls until Spin answers its health check.
    async fn wait_until_ready(&mut self, dir: &Path) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let started = Instant::now();
        let probe = format!("{}/-/health", self.url);
        loop {
            if let Ok(response) = client.get(&probe).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("spin up exited ({status}), see {}", dir.display());
            }
            ensure!(
                started.elapsed() < START_AT_MOST,
                "spin up did not answer within {START_AT_MOST:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SpinProcess {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `spin` on `PATH`, else `../shared/bin/spin`; `Err` says where it was
/// looked for, or that the bench was told to leave Spin out.
fn find_spin() -> Result<PathBuf, String> {
    if std::env::var_os("GENREG_BENCH_SPIN").is_some_and(|v| v == "off") {
        return Err("GENREG_BENCH_SPIN=off".into());
    }
    let shared = workspace().join(SHARED_SPIN);
    find_program("spin")
        .or_else(|| shared.is_file().then_some(shared.clone()))
        .ok_or_else(|| format!("spin not found (not on PATH, not at {})", shared.display()))
}

/// `name` on `PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

// ---------------------------------------------------------------------------
// /proc.
// ---------------------------------------------------------------------------

/// The processes whose process group is `leader`.
fn group_members(leader: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![leader];
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            stat_fields(pid)
                .and_then(|fields| stat_field(&fields, 5))
                .is_ok_and(|group| group == u64::from(leader))
        })
        .collect()
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
