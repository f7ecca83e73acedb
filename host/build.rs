//! Builds the `generic-registry` component (wasm32-wasip2, with the
//! workspace's `component` profile, as `spin build` does) so that
//! `cargo run -p genreg` and `cargo test --workspace` need nothing else, and
//! exports its path as `GENREG_COMPONENT`.
//!
//! The nested cargo uses its own target directory so it never waits for the
//! lock the outer cargo holds, and it runs with the environment cargo gives
//! build scripts scrubbed, so flags meant for the host build do not leak in.

use std::env;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .parent()
        .expect("host/ lives in the workspace")
        .to_path_buf();
    for watched in [
        "src",
        "wit",
        "web",
        "token/src",
        "layout/src",
        "Cargo.toml",
        "Cargo.lock",
        ".cargo/config.toml",
        "token/Cargo.toml",
        "layout/Cargo.toml",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    ensure_target_installed();

    let target_dir = workspace.join("target").join("component");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--profile",
            "component",
            "--target",
            TARGET,
            "-p",
            "generic-registry",
        ])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&workspace)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    scrub_build_script_env(&mut command);

    let output = command
        .output()
        .expect("failed to run the nested cargo build");
    if !output.status.success() {
        for line in String::from_utf8_lossy(&output.stderr).lines() {
            println!("cargo:warning={line}");
        }
        panic!("building the generic-registry component failed (see the warnings above)");
    }

    let wasm = target_dir
        .join(TARGET)
        .join("component")
        .join("generic_registry.wasm");
    assert!(
        wasm.exists(),
        "the nested build did not produce {}",
        wasm.display()
    );
    println!("cargo:rustc-env=GENREG_COMPONENT={}", wasm.display());
}

/// Installs the wasm32-wasip2 standard library with rustup when it is missing.
/// Without rustup we assume the toolchain already has it (the build says so
/// otherwise).
fn ensure_target_installed() {
    let Ok(listed) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .env_remove("RUSTUP_TOOLCHAIN_SOURCE")
        .output()
    else {
        return;
    };
    let installed = String::from_utf8_lossy(&listed.stdout);
    if installed.lines().any(|l| l.trim() == TARGET) {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdout(Stdio::null())
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        println!("cargo:warning=`rustup target add {TARGET}` failed; the nested build may fail");
    }
}

/// Removes the variables cargo sets for build scripts (and the ones users set
/// for the outer build) that would change or break the nested build.
fn scrub_build_script_env(command: &mut Command) {
    const EXACT: &[&str] = &[
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTDOCFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTC_WRAPPER",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_LINKER",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_TARGET_TMPDIR",
    ];
    const PREFIXES: &[&str] = &[
        "CARGO_PROFILE_",
        "CARGO_CFG_",
        "CARGO_FEATURE_",
        "CARGO_PKG_",
        "CARGO_BIN_",
        "DEP_",
        "CARGO_TARGET_",
    ];
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p)) {
            command.env_remove(key);
        }
    }
}
