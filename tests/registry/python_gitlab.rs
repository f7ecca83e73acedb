//! python-gitlab, unchanged, against the registry: the script
//! `tests/python/gitlab_client.py` drives projects, tokens, generic packages
//! and the Packages API through python-gitlab and fails on anything that
//! does not work as against GitLab.
//!
//! The test installs python-gitlab itself into a virtualenv under the target
//! directory (`target/python-gitlab-venv`), once, and reuses it afterwards.
//! It needs `python3` with the `venv` module and access to PyPI the first
//! time.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// The python-gitlab release the test runs (`pip index versions
/// python-gitlab` names the newest).
const PYTHON_GITLAB_VERSION: &str = "8.6.0";

/// Where the virtualenv lives: next to the build output, so `cargo clean`
/// removes it.
fn venv_dir() -> PathBuf {
    let target_tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    target_tmp
        .parent()
        .unwrap_or(target_tmp)
        .join("python-gitlab-venv")
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{command:?} could not start: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// The virtualenv's python, with python-gitlab installed. Creating it holds
/// a file lock, so concurrent test runs (or tests) wait for one another
/// rather than install into the same directory at once; a finished install
/// leaves a marker naming the version, and an unfinished one is redone.
fn python_with_gitlab() -> Result<PathBuf, String> {
    let venv = venv_dir();
    let marker = venv.join(format!(".python-gitlab-{PYTHON_GITLAB_VERSION}"));
    let python = venv.join("bin").join("python");
    if marker.exists() {
        return Ok(python);
    }
    let lock_path = venv.with_extension("lock");
    let lock = File::create(&lock_path).map_err(|e| format!("{lock_path:?}: {e}"))?;
    lock.lock()
        .map_err(|e| format!("locking {lock_path:?}: {e}"))?;
    if marker.exists() {
        return Ok(python);
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv).map_err(|e| format!("{venv:?}: {e}"))?;
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("python-gitlab=={PYTHON_GITLAB_VERSION}"),
    ]))?;
    File::create(&marker).map_err(|e| format!("{marker:?}: {e}"))?;
    Ok(python)
}

#[tokio::test]
async fn python_gitlab_works_unchanged() {
    let r = start().await;
    run_gitlab_client(&r).await;
}

/// Runs `tests/python/gitlab_client.py` against `r` (any host) and fails
/// with its output unless it succeeds.
pub async fn run_gitlab_client(r: &impl Target) {
    let python = tokio::task::spawn_blocking(python_with_gitlab)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("python-gitlab could not be installed: {e}"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/gitlab_client.py");
    // The script talks to the registry, which may run on this test's
    // runtime: wait for it without blocking the runtime.
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .env("GENREG_URL", r.base_url())
        .env("GENREG_ADMIN_TOKEN", r.admin_token())
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("CI_JOB_TOKEN")
        .env_remove("GITLAB_PRIVATE_TOKEN")
        .output()
        .await
        .expect("the virtualenv's python runs");
    assert!(
        output.status.success(),
        "{} failed ({}):\n{}{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    print!("{}", String::from_utf8_lossy(&output.stdout));
}
