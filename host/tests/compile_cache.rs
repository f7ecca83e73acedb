//! `genreg up` keeps the compiled component in wasmtime's cache, as `spin
//! up` does, so a restart loads it instead of compiling it again; and
//! `--disable-cache` leaves the cache alone. `--profile perfmap` names the
//! component's compiled functions for `perf`.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a start may take (a debug build compiles the component).
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// A `genreg up` with its own data directory and its own home, config and
/// cache directories, killed on drop.
struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `genreg up` under `root` and waits until it serves.
fn start(root: &Path, extra: &[&str]) -> Up {
    let mut child = Command::new(env!("CARGO_BIN_EXE_genreg"))
        .arg("up")
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(root.join("data"))
        .args(extra)
        .env("HOME", root.join("home"))
        .env("XDG_CONFIG_HOME", root.join("config"))
        .env("XDG_CACHE_HOME", root.join("cache"))
        .env_remove("GENREG_CACHE")
        .env_remove("GENREG_DISABLE_CACHE")
        .env_remove("GENREG_PROFILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("genreg starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (serving, started) = mpsc::channel();
    std::thread::spawn(move || {
        let mut banner = genreg::banner::Banner::default();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            banner.read(&line);
            if banner.url.take().is_some() {
                let _ = serving.send(());
            }
        }
    });
    let up = Up(child);
    started
        .recv_timeout(START_TIMEOUT)
        .expect("genreg up serves within the timeout");
    up
}

/// Every file under `dir` (none when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries.map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn the_compiled_component_is_cached_unless_the_cache_is_disabled() {
    let cached = tempfile::tempdir().expect("a temporary directory");
    drop(start(cached.path(), &[]));
    let cache = cached.path().join("cache").join("wasmtime");
    assert!(
        !files_under(&cache).is_empty(),
        "nothing was cached under {}",
        cache.display()
    );
    // A restart on the same cache serves as well.
    drop(start(cached.path(), &[]));

    let uncached = tempfile::tempdir().expect("a temporary directory");
    drop(start(uncached.path(), &["--disable-cache"]));
    let files = files_under(&uncached.path().join("cache"));
    assert!(files.is_empty(), "--disable-cache wrote {files:?}");
}

/// The perf map wasmtime writes for the process `pid` (always under
/// `/tmp`, where `perf` looks for it).
fn perf_map(pid: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/perf-{pid}.map"))
}

#[cfg(target_os = "linux")]
#[test]
fn a_perf_map_names_the_components_functions_only_when_asked() {
    let root = tempfile::tempdir().expect("a temporary directory");
    let profiled = start(root.path(), &["--profile", "perfmap"]);
    let map = perf_map(profiled.0.id());
    let named = std::fs::read_to_string(&map);
    drop(profiled);
    let _ = std::fs::remove_file(&map);
    let named = named.expect("--profile perfmap wrote the perf map");
    // Each line is `<start> <size> <name>`; the component's own functions
    // carry its crate's name.
    assert!(
        named.lines().any(|line| line.contains("generic_registry")),
        "no function of the component in {}",
        map.display()
    );

    let plain = start(root.path(), &[]);
    let map = perf_map(plain.0.id());
    assert!(!map.exists(), "{} written without --profile", map.display());
}
