//! Files the registry keeps in its data directory, created on first start
//! and reused afterwards:
//!
//! - `token_secret`: the token signing secret (32 random bytes, hex), 0600;
//! - `s3_credentials.json`: the embedded S3 server's access key, 0600;
//! - `keyvalue.sqlite3`: the key-value store;
//! - `s3/`: the embedded S3 server's files (bucket `genreg` is `s3/genreg/`).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub const TOKEN_SECRET_FILE: &str = "token_secret";
pub const S3_CREDENTIALS_FILE: &str = "s3_credentials.json";
pub const KEYVALUE_FILE: &str = "keyvalue.sqlite3";
pub const S3_DIR: &str = "s3";

/// The embedded S3 server's access key pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    hex::encode(bytes)
}

/// Reads the token secret text, creating it on first use.
pub fn token_secret(dir: &Path) -> io::Result<String> {
    let path = dir.join(TOKEN_SECRET_FILE);
    let text = read_or_create(&path, || random_hex(32))?;
    let text = text.trim().to_string();
    if genreg_token::Secrets::parse(&text).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} holds no secret", path.display()),
        ));
    }
    Ok(text)
}

/// Reads the token secret of an existing data directory (never creates one).
pub fn existing_token_secret(dir: &Path) -> io::Result<String> {
    let path = dir.join(TOKEN_SECRET_FILE);
    fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", path.display())))
}

/// Reads the embedded S3 credentials, creating them on first use.
pub fn s3_credentials(dir: &Path) -> io::Result<S3Credentials> {
    let path = dir.join(S3_CREDENTIALS_FILE);
    let text = read_or_create(&path, || {
        serde_json::json!({
            "access_key_id": format!("GENREG{}", random_hex(7).to_uppercase()),
            "secret_access_key": random_hex(20),
        })
        .to_string()
    })?;
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not valid", path.display()),
        )
    };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|_| invalid())?;
    let field = |name: &str| json[name].as_str().map(str::to_string).ok_or_else(invalid);
    Ok(S3Credentials {
        access_key_id: field("access_key_id")?,
        secret_access_key: field("secret_access_key")?,
    })
}

pub fn keyvalue_path(dir: &Path) -> PathBuf {
    dir.join(KEYVALUE_FILE)
}

pub fn s3_root(dir: &Path) -> PathBuf {
    dir.join(S3_DIR)
}

/// Returns the file's text, or writes `make()` to a new owner-only file.
/// If another process creates it first, its content wins.
fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> io::Result<String> {
    match fs::read_to_string(path) {
        Ok(text) => return Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let text = make();
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            Ok(text)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => fs::read_to_string(path),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("genreg-test-{name}-{}", random_hex(6)));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn token_secret_is_created_once_and_kept() {
        let dir = temp_dir("secret");
        let first = token_secret(&dir).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(token_secret(&dir).unwrap(), first);
        assert_eq!(existing_token_secret(&dir).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join(TOKEN_SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn s3_credentials_are_created_once_and_kept() {
        let dir = temp_dir("s3");
        let first = s3_credentials(&dir).unwrap();
        assert_eq!(s3_credentials(&dir).unwrap(), first);
        assert_ne!(first.access_key_id, first.secret_access_key);
        fs::remove_dir_all(dir).unwrap();
    }
}
