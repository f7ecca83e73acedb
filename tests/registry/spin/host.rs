//! The component under real `spin up`: the repository's spin.toml (a copy
//! whose `source` names the component host/build.rs built), variables from
//! `SPIN_VARIABLE_*`, the embedded S3 server of the genreg crate, and Spin's
//! default key-value store (SQLite) in a temporary state directory.
//!
//! [`SpinRegistry::start_on_redis`] puts the store on a Redis database
//! instead (`--runtime-config-file`), [`SpinRegistry::start_on_wal_store`]
//! keeps it in SQLite after `genreg spin-store` put the file in WAL mode,
//! and [`SpinRegistry::start_shared`]
//! starts one of several instances sharing S3, secret and Redis.
//!
//! One `spin up` per test: Spin caches the compiled component, so a start
//! after the first takes well under a second, and every test gets a fresh
//! store and bucket. The process is killed when the registry is dropped.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use genreg::genreg_token::Secrets;

use crate::common::Target;

/// How long `spin up` may take to answer its first request (the first
/// start of a test run compiles the component).
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// Where the tests look for Spin besides `PATH`, relative to the workspace.
const SHARED_SPIN: &str = "../shared/bin/spin";

/// Spin's state directory (its SQLite store, logs) in a test's directory.
const STATE_DIR: &str = "state";

/// The `source` line of the repository's spin.toml, replaced in the copy.
const MANIFEST_SOURCE: &str = "source = \"target/wasm32-wasip2/component/generic_registry.wasm\"";

pub struct SpinRegistry {
    url: String,
    client: reqwest::Client,
    secrets: Secrets,
    admin: String,
    process: SpinProcess,
    /// Its own S3 server (kept running for as long as Spin is) or the
    /// address of a shared one.
    _s3: S3Server,
    /// The manifest copy, Spin's state (key-value database, logs) and the
    /// S3 server's files; removed after the process is killed.
    dir: tempfile::TempDir,
}

/// The `spin` binary: on `PATH`, else `../shared/bin/spin`; `Err` says
/// where it was looked for.
pub fn find_spin() -> Result<PathBuf, String> {
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

/// The `spin` binary, or `None` after printing why the test is skipped.
fn spin_or_skip() -> Option<PathBuf> {
    match find_spin() {
        Ok(spin) => Some(spin),
        Err(looked) => {
            eprintln!("skipped: spin not found ({looked})");
            None
        }
    }
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a `spin up` shares with other instances in a test: the S3 bucket,
/// the token secret and the key-value store (a Redis database).
pub struct Shared<'a> {
    pub s3: &'a genreg::S3Access,
    pub token_secret: &'a str,
    pub redis_url: &'a str,
}

/// Where one `spin up` keeps its `default` key-value store.
enum Store<'a> {
    /// In the SQLite file Spin creates in its state directory.
    AsSpinMakesIt,
    /// In that file, put in WAL mode before Spin opens it.
    Wal,
    /// On this Redis database.
    Redis(&'a str),
}

/// Where the S3 server of one `spin up` comes from.
enum S3Server {
    /// Its own, kept running for as long as Spin is.
    Own(genreg::EmbeddedS3Server),
    /// One the test runs for several instances.
    Shared(genreg::S3Access),
}

impl S3Server {
    fn access(&self) -> &genreg::S3Access {
        match self {
            S3Server::Own(server) => server.access(),
            S3Server::Shared(access) => access,
        }
    }
}

impl SpinRegistry {
    /// Starts `spin up` with these variables on top of the S3 access and a
    /// fresh token secret; `None` (after saying so) when Spin is missing.
    pub async fn start(variables: &[(&str, &str)]) -> Option<SpinRegistry> {
        Self::start_with_store(variables, Store::AsSpinMakesIt).await
    }

    /// Like [`SpinRegistry::start`], with Spin's store file put in WAL mode
    /// beforehand, as `genreg spin-store` does.
    pub async fn start_on_wal_store(variables: &[(&str, &str)]) -> Option<SpinRegistry> {
        Self::start_with_store(variables, Store::Wal).await
    }

    /// Like [`SpinRegistry::start`], with Spin's `default` key-value store
    /// on this Redis database (`redis://127.0.0.1:PORT/DB`) through a
    /// runtime config file.
    pub async fn start_on_redis(
        variables: &[(&str, &str)],
        redis_url: &str,
    ) -> Option<SpinRegistry> {
        Self::start_with_store(variables, Store::Redis(redis_url)).await
    }

    /// One of several instances: the S3 bucket, token secret and Redis
    /// database of `shared`.
    pub async fn start_shared(
        variables: &[(&str, &str)],
        shared: &Shared<'_>,
    ) -> Option<SpinRegistry> {
        let spin = spin_or_skip()?;
        let dir = tempfile::tempdir().expect("temporary directory");
        let s3 = S3Server::Shared(shared.s3.clone());
        let registry = Self::launch(
            &spin,
            dir,
            s3,
            shared.token_secret,
            Some(shared.redis_url),
            variables,
        );
        registry.wait_until_ready().await;
        Some(registry)
    }

    async fn start_with_store(
        variables: &[(&str, &str)],
        store: Store<'_>,
    ) -> Option<SpinRegistry> {
        let spin = spin_or_skip()?;
        let dir = tempfile::tempdir().expect("temporary directory");
        let redis_url = match store {
            Store::AsSpinMakesIt => None,
            Store::Wal => {
                let file = genreg::spin_store::store_file(&dir.path().join(STATE_DIR));
                genreg::spin_store::use_wal(&file).expect("the store file in WAL mode");
                None
            }
            Store::Redis(url) => Some(url),
        };
        let s3 = genreg::EmbeddedS3Server::start(&dir.path().join("s3-data"))
            .await
            .expect("embedded S3 server starts");
        let token_secret = genreg::data_dir::random_hex(32);
        let registry = Self::launch(
            &spin,
            dir,
            S3Server::Own(s3),
            &token_secret,
            redis_url,
            variables,
        );
        registry.wait_until_ready().await;
        Some(registry)
    }

    /// Spawns `spin up` in `dir` (not yet answering).
    fn launch(
        spin: &Path,
        dir: tempfile::TempDir,
        s3: S3Server,
        token_secret: &str,
        redis_url: Option<&str>,
        variables: &[(&str, &str)],
    ) -> SpinRegistry {
        let secrets = Secrets::parse(token_secret).expect("a non-blank secret");
        let admin = genreg::mint_admin_token(
            &secrets,
            genreg::unix_now(),
            genreg::DEFAULT_ADMIN_TOKEN_LIFETIME,
        );

        let manifest = write_manifest(dir.path());
        let listen = free_loopback_address();
        let mut command = Command::new(spin);
        command
            .arg("up")
            .arg("--from")
            .arg(&manifest)
            .arg("--state-dir")
            .arg(dir.path().join(STATE_DIR))
            .arg("--listen")
            .arg(&listen)
            .current_dir(dir.path());
        if let Some(url) = redis_url {
            let config = write_redis_runtime_config(dir.path(), url);
            command.arg("--runtime-config-file").arg(config);
        }
        // Only this test's configuration: no variables, runtime config or
        // listen address from the environment the tests run in.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("SPIN_") || name == "RUNTIME_CONFIG_FILE" {
                command.env_remove(&*name);
            }
        }
        let url = format!("http://{listen}");
        for (name, value) in spin_variables(s3.access(), token_secret, variables) {
            command.env(format!("SPIN_VARIABLE_{}", name.to_uppercase()), value);
        }
        let process = SpinProcess::spawn(command, dir.path());
        SpinRegistry {
            url,
            client: reqwest::Client::new(),
            secrets,
            admin: admin.token,
            process,
            _s3: s3,
            dir,
        }
    }

    /// The SQLite file of Spin's `default` store (unless it is on Redis).
    pub fn store_file(&self) -> PathBuf {
        genreg::spin_store::store_file(&self.dir.path().join(STATE_DIR))
    }

    /// Polls until Spin answers any HTTP request; panics with its output if
    /// it exits or does not answer in time.
    async fn wait_until_ready(&self) {
        let started = Instant::now();
        loop {
            if self
                .client
                .get(self.at("/api/v4/version"))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            if let Some(status) = self.process.exited() {
                panic!("spin up exited ({status}):\n{}", self.process.output());
            }
            if started.elapsed() > READY_TIMEOUT {
                panic!(
                    "spin up did not answer within {READY_TIMEOUT:?}:\n{}",
                    self.process.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Target for SpinRegistry {
    fn base_url(&self) -> String {
        self.url.clone()
    }

    fn http(&self) -> &reqwest::Client {
        &self.client
    }

    fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    fn admin_token(&self) -> String {
        self.admin.clone()
    }

    fn host_output(&self) -> Option<String> {
        Some(self.process.output())
    }
}

/// The component's variables: the S3 access and the token secret, then the
/// test's own. `public_url` is left unset, as a plain `spin up` leaves it:
/// links then point at the origin each request was sent to.
fn spin_variables(
    s3: &genreg::S3Access,
    token_secret: &str,
    overrides: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut variables: Vec<(String, String)> = [
        ("s3_endpoint", s3.endpoint.as_str()),
        ("s3_bucket", s3.bucket.as_str()),
        ("s3_region", s3.region.as_str()),
        ("s3_access_key_id", s3.access_key_id.as_str()),
        ("s3_secret_access_key", s3.secret_access_key.as_str()),
        ("token_secret", token_secret),
    ]
    .into_iter()
    .chain(overrides.iter().copied())
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    // A later entry of the same name wins, as with genreg's overrides.
    let mut seen = std::collections::HashSet::new();
    variables.reverse();
    variables.retain(|(name, _)| seen.insert(name.clone()));
    variables
}

/// Copies the repository's spin.toml into `dir`, its `source` pointing at
/// the component host/build.rs built (spin.toml names cargo's default
/// target directory; the tests' build uses its own).
fn write_manifest(dir: &Path) -> PathBuf {
    let original = std::fs::read_to_string(workspace().join("spin.toml")).expect("spin.toml");
    assert!(
        original.contains(MANIFEST_SOURCE),
        "spin.toml no longer says {MANIFEST_SOURCE}: update the Spin test harness"
    );
    let component = genreg::component_path();
    let manifest = original.replace(
        MANIFEST_SOURCE,
        &format!("source = {:?}", component.display().to_string()),
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, manifest).expect("writing the manifest copy");
    path
}

/// A runtime config file in `dir` that puts Spin's `default` key-value
/// store on the Redis database at `url`.
fn write_redis_runtime_config(dir: &Path, url: &str) -> PathBuf {
    let path = dir.join("runtime-config.toml");
    let config = format!("[key_value_store.default]\ntype = \"redis\"\nurl = {url:?}\n");
    std::fs::write(&path, config).expect("writing the runtime config");
    path
}

/// A loopback address no one listens on right now.
fn free_loopback_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().to_string()
}

/// The `spin up` child process, its output in files; killed on drop.
struct SpinProcess {
    child: std::sync::Mutex<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl SpinProcess {
    fn spawn(mut command: Command, dir: &Path) -> SpinProcess {
        let stdout = dir.join("spin.stdout");
        let stderr = dir.join("spin.stderr");
        // Its own process group: `spin up` runs the trigger as a child
        // process, which killing `spin up` alone would leave running.
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("starting spin up");
        SpinProcess {
            child: std::sync::Mutex::new(child),
            stdout,
            stderr,
        }
    }

    fn exited(&self) -> Option<std::process::ExitStatus> {
        self.child.lock().unwrap().try_wait().ok().flatten()
    }

    fn output(&self) -> String {
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        format!(
            "--- stdout\n{}--- stderr\n{}",
            read(&self.stdout),
            read(&self.stderr)
        )
    }
}

impl Drop for SpinProcess {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        kill_process_group(child);
    }
}

/// Kills `spin up` and the trigger process it started (the group `child`
/// leads), then reaps `child`.
fn kill_process_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}
