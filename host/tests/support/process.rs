//! The real `genreg` binary as a child process: `genreg up` on a data
//! directory (embedded S3 server), killed with SIGKILL and started again on
//! the same directory; `genreg gc`. Also included on its own (`#[path]`)
//! by tests that need only the process.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long `genreg up` may take to print its admin token (it compiles the
/// component first); only there so a broken start fails instead of hanging.
const START_AT_MOST: Duration = Duration::from_secs(300);

/// A running `genreg up`.
pub struct Genreg {
    child: Child,
    pub url: String,
    pub s3_endpoint: String,
    pub admin_token: String,
    data: PathBuf,
}

/// The binary under test, without any `GENREG_*` setting of the caller's
/// environment.
fn genreg_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_genreg"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GENREG_") {
            command.env_remove(name);
        }
    }
    command
}

impl Genreg {
    /// `genreg up --data <data> --listen 127.0.0.1:0`; its log goes to `log`.
    pub async fn start(data: &Path, log: &Path) -> Genreg {
        let log_file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let mut child = genreg_command()
            .arg("up")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("genreg starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
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
            panic!("genreg up did not start; log: {}", tail(log));
        }
        // Keep reading so that the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Genreg {
            child,
            url: banner.url.expect("genreg printed its URL"),
            s3_endpoint: banner.s3_endpoint.expect("genreg printed its S3 endpoint"),
            admin_token: banner.admin_token.unwrap_or_default(),
            data: data.to_path_buf(),
        }
    }

    /// SIGKILL, and wait until the process is gone.
    pub async fn kill9(mut self) {
        self.child.start_kill().expect("SIGKILL sent");
        self.child.wait().await.expect("genreg reaped");
    }

    /// How to reach the embedded S3 server directly.
    pub fn s3(&self) -> genreg::S3Access {
        let credentials = genreg::data_dir::s3_credentials(&self.data).expect("S3 credentials");
        genreg::S3Access {
            endpoint: self.s3_endpoint.clone(),
            bucket: "genreg".into(),
            region: "us-east-1".into(),
            access_key_id: credentials.access_key_id,
            secret_access_key: credentials.secret_access_key,
        }
    }
}

/// What `genreg gc` printed.
pub struct GcRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// `genreg gc --data <data> --min-age 0s`.
pub async fn gc_now(data: &Path) -> GcRun {
    let output = genreg_command()
        .arg("gc")
        .arg("--data")
        .arg(data)
        .args(["--min-age", "0s"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("genreg gc runs");
    GcRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The last lines of a log file.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
