//! `genreg up` as a process of its own, as users run it, for the benches
//! that measure it from outside.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long `genreg up` may take to print its URLs (a first start compiles
/// the component).
const START_AT_MOST: Duration = Duration::from_secs(300);

/// Names another component for the benches to serve. Not `GENREG_COMPONENT`,
/// `genreg`'s own variable: cargo sets that one for every bench it runs (to
/// the component `build.rs` built), over the caller's value.
pub const COMPONENT_OVERRIDE: &str = "GENREG_BENCH_COMPONENT";

/// A running `genreg up`, killed when dropped.
pub struct GenregUp {
    _child: Child,
    pub pid: u32,
    pub url: String,
    pub s3_endpoint: String,
    pub admin_token: String,
    pub data: PathBuf,
}

impl GenregUp {
    /// The `genreg` binary built with the bench, or the one the variable
    /// `override_with` names (an older build, to compare before and after).
    pub fn program(override_with: &str) -> PathBuf {
        std::env::var_os(override_with)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_genreg")))
    }

    /// Starts `program up` on `data` with its embedded S3 server and waits
    /// for the URLs and the administrator token it prints. Its log goes to
    /// `<data>.log`. It runs without `RUST_BACKTRACE`, as users run it: with
    /// it, every error value wasmtime makes captures a backtrace. It serves
    /// the component [`COMPONENT_OVERRIDE`] names, if set.
    pub async fn start(program: &Path, data: &Path, download_mode: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data)?;
        let log = data.with_extension("log");
        let mut command = Command::new(program);
        if let Some(component) = std::env::var_os(COMPONENT_OVERRIDE) {
            command.env("GENREG_COMPONENT", component);
        }
        let mut child = command
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .arg("up")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--download-mode", download_mode])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("genreg up")?;
        let pid = child.id().context("genreg pid")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let mut banner = genreg::banner::Banner::default();
        let started = tokio::time::timeout(START_AT_MOST, async {
            while let Some(line) = lines.next_line().await.ok().flatten() {
                if banner.read(&line) {
                    return true;
                }
            }
            false
        })
        .await;
        if started != Ok(true) {
            bail!(
                "genreg up did not start; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        // Keep reading so that the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(GenregUp {
            _child: child,
            pid,
            url: banner.url.context("genreg printed no URL")?,
            s3_endpoint: banner
                .s3_endpoint
                .context("genreg printed no S3 endpoint")?,
            admin_token: banner.admin_token.unwrap_or_default(),
            data: data.to_path_buf(),
        })
    }
}
