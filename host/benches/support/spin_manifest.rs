//! The repository's spin.toml, copied for a bench's `spin up` with its
//! component swapped in.

use std::path::{Path, PathBuf};

use anyhow::ensure;

/// The `source` line of the repository's spin.toml, replaced in the copy.
const MANIFEST_SOURCE: &str = "source = \"target/wasm32-wasip2/component/generic_registry.wasm\"";

/// The workspace root (host/'s parent).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Copies the repository's spin.toml into `dir`, its `source` pointing at
/// `component`, and answers the copy's path.
pub fn write_spin_manifest(dir: &Path, component: &Path) -> anyhow::Result<PathBuf> {
    let original = std::fs::read_to_string(workspace().join("spin.toml"))?;
    ensure!(
        original.contains(MANIFEST_SOURCE),
        "spin.toml no longer says {MANIFEST_SOURCE}: update host/benches/support/spin_manifest.rs"
    );
    let component = component.display().to_string();
    let manifest = original.replace(MANIFEST_SOURCE, &format!("source = {component:?}"));
    let path = dir.join("spin.toml");
    std::fs::write(&path, manifest)?;
    Ok(path)
}
