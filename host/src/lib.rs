//! `genreg`: a native host that serves the generic-registry component the way
//! Spin's HTTP trigger does, with everything it needs on one machine.
//!
//! - [`Registry::start`] compiles the component once per process (see
//!   [`runtime`]), opens the key-value store (SQLite in the data directory,
//!   or Redis: [`KvConfig`]),
//!   starts the embedded S3 server unless an external one is configured, and
//!   serves HTTP: one fresh instance per request.
//! - Each import lives in its own module with a `Ctx` / view /
//!   `add_to_linker`: [`keyvalue`], [`variables`], [`outbound`].
//! - [`gc::run`] deletes the bucket's objects no package record points to
//!   (`genreg gc`).
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let registry = genreg::Registry::start(genreg::Config::new(".genreg")).await?;
//! println!("{} admin token {}", registry.url(), registry.admin_token());
//! registry.shutdown().await;
//! # Ok(()) }
//! ```

pub mod banner;
pub mod data_dir;
pub mod gc;
mod group_sync;
mod handler;
pub mod http_client;
pub mod keyvalue;
mod limits;
pub mod outbound;
pub mod request_counts;
mod runtime;
mod s3;
mod serve;
pub mod spin_store;
mod state;
pub mod variables;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use genreg_token::Secrets;
use tokio::net::TcpListener;

pub use crate::keyvalue::KvConfig;
pub use crate::runtime::{use_compile_cache, use_profiler, CompileCache, Profiler};
pub use genreg_token;

use crate::handler::{GuestHandler, GuestLimits};
use crate::keyvalue::{SqliteStore, WasiKeyValueCtx};
use crate::outbound::{AllowedHosts, InProcessS3, OutboundHttp, SelfRequests};
use crate::serve::{ConnectionLimits, ServerHandle};
use crate::state::Imports;
use crate::variables::VariablesCtx;

/// The component file `build.rs` built alongside this crate.
pub fn component_path() -> PathBuf {
    PathBuf::from(env!("GENREG_COMPONENT"))
}

/// Default of the `max_file_size` variable: 5 GiB.
pub const DEFAULT_MAX_FILE_SIZE: &str = "5368709120";

/// How long the administrator token minted at start stays valid: 30 days.
pub const DEFAULT_ADMIN_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 86_400);

/// What the registry allows its clients: connections, request bodies and
/// component instances.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Time for a request head to arrive in full, counted from the moment
    /// the connection is ready for a request (opened, or its previous
    /// response sent).
    pub header_timeout: Duration,
    /// A connection with no request in progress that sends nothing for this
    /// long is closed.
    pub idle_timeout: Duration,
    /// A request body that sends nothing for this long while the registry
    /// reads it is cut.
    pub body_timeout: Duration,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// The memory one component instance (one request) may use, in bytes.
    pub instance_memory: usize,
    /// Requests running at once (one instance each).
    pub max_instances: usize,
    /// How long a request waits for a free instance before it is answered
    /// 503.
    pub instance_wait: Duration,
    /// Request bodies larger than this are refused with 413 (`None`: no
    /// limit). Also given to the component as `max_request_body`.
    pub max_request_body: Option<u64>,
    /// Response bodies larger than this are not sent (`None`: no limit).
    /// Also given to the component as `max_response_body`.
    pub max_response_body: Option<u64>,
    /// A request's instance running longer than this is stopped (`None`:
    /// no limit).
    pub request_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        let connections = ConnectionLimits::default();
        Limits {
            header_timeout: connections.header_timeout,
            idle_timeout: connections.idle_timeout,
            body_timeout: Duration::from_secs(60),
            max_connections: connections.max_connections,
            instance_memory: 256 * 1024 * 1024,
            max_instances: 64,
            instance_wait: Duration::from_secs(5),
            max_request_body: None,
            max_response_body: None,
            request_timeout: None,
        }
    }
}

impl Limits {
    /// The limits of a hosted Spin platform (Fermyon Wasm Functions, Akamai
    /// Functions): 10 MiB request and response bodies, 30 s per request,
    /// 128 MiB per instance; everything else as [`Limits::default`].
    pub fn hosted() -> Self {
        Limits {
            max_request_body: Some(HOSTED_MAX_BODY),
            max_response_body: Some(HOSTED_MAX_BODY),
            request_timeout: Some(Duration::from_secs(30)),
            instance_memory: 128 * 1024 * 1024,
            ..Limits::default()
        }
    }

    /// The variables telling the component the host's body limits.
    fn component_variables(&self) -> Vec<(&'static str, String)> {
        [
            ("max_request_body", self.max_request_body),
            ("max_response_body", self.max_response_body),
        ]
        .into_iter()
        .filter_map(|(name, limit)| limit.map(|bytes| (name, bytes.to_string())))
        .collect()
    }

    fn connections(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
        }
    }

    fn guests(&self) -> GuestLimits {
        GuestLimits {
            body_timeout: self.body_timeout,
            instance_memory: self.instance_memory,
            max_instances: self.max_instances,
            instance_wait: self.instance_wait,
            max_request_body: self.max_request_body,
            max_response_body: self.max_response_body,
            request_timeout: self.request_timeout,
        }
    }
}

/// The body limit of hosted Spin platforms: 10 MiB.
pub const HOSTED_MAX_BODY: u64 = 10 * 1024 * 1024;

/// How to run a registry.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the registry listens (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Token secret, key-value database and embedded S3 files.
    pub data_dir: PathBuf,
    /// Where metadata is kept (SQLite in `data_dir` unless told otherwise).
    pub kv: KvConfig,
    pub s3: S3Config,
    /// The component to serve.
    pub component: PathBuf,
    /// Variables overriding or adding to the ones derived from the rest of
    /// the configuration (`max_file_size`, `download_mode`, `public_url`, ...).
    pub variables: BTreeMap<String, String>,
    pub limits: Limits,
    /// Lifetime of the administrator token minted at start.
    pub admin_token_lifetime: Duration,
}

impl Config {
    /// Listen on 127.0.0.1:3000, embedded S3 on an ephemeral port, the
    /// component built with this crate.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            data_dir: data_dir.into(),
            kv: KvConfig::Sqlite,
            s3: S3Config::Embedded { listen: None },
            component: component_path(),
            variables: BTreeMap::new(),
            limits: Limits::default(),
            admin_token_lifetime: DEFAULT_ADMIN_TOKEN_LIFETIME,
        }
    }
}

/// Where file bytes go.
#[derive(Clone, Debug)]
pub enum S3Config {
    /// The built-in S3 server on loopback (`None`: an ephemeral port).
    Embedded { listen: Option<SocketAddr> },
    /// Any S3-compatible service.
    External {
        endpoint: String,
        bucket: String,
        region: String,
        access_key_id: String,
        secret_access_key: String,
    },
}

/// How to reach the registry's bucket directly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Access {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// A running registry.
pub struct Registry {
    url: String,
    admin_token: AdminToken,
    token_secret: String,
    token_secrets: Secrets,
    s3: S3Access,
    s3_root: Option<PathBuf>,
    http: ServerHandle,
    embedded_s3: Option<ServerHandle>,
}

impl Registry {
    /// Starts everything; returns once both servers accept connections.
    pub async fn start(config: Config) -> anyhow::Result<Registry> {
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating data directory {}", data_dir.display()))?;
        let token_secret = data_dir::token_secret(&data_dir).context("reading the token secret")?;
        let token_secrets = Secrets::parse(&token_secret).context("reading the token secret")?;

        let pre = runtime::load(&config.component).await?;

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let local = listener.local_addr()?;
        let url = format!("http://{local}");

        let (s3, s3_root, embedded_s3, in_process_s3) = match config.s3 {
            S3Config::Embedded { listen } => {
                // The web interface sends upload parts to it from its pages.
                let public_url = config.variables.get("public_url").map(String::as_str);
                let origins = s3::BrowserOrigins::of_registry(local, public_url);
                let embedded = s3::start(&data_dir, listen, origins).await?;
                let access = S3Access {
                    endpoint: embedded.endpoint(),
                    bucket: s3::BUCKET.to_string(),
                    region: s3::REGION.to_string(),
                    access_key_id: embedded.credentials.access_key_id.clone(),
                    secret_access_key: embedded.credentials.secret_access_key.clone(),
                };
                let in_process = InProcessS3::new(&access.endpoint, embedded.service);
                (
                    access,
                    Some(embedded.root),
                    Some(embedded.server),
                    in_process,
                )
            }
            S3Config::External {
                endpoint,
                bucket,
                region,
                access_key_id,
                secret_access_key,
            } => {
                let access = S3Access {
                    endpoint,
                    bucket,
                    region,
                    access_key_id,
                    secret_access_key,
                };
                (access, None, None, None)
            }
        };

        let variables = component_variables(&s3, &token_secret, &url, &config.limits)
            .into_iter()
            .chain(config.variables)
            .collect::<BTreeMap<_, _>>();
        let store = config.kv.open(&data_dir).await?;
        // What the repository's spin.toml allows: S3 and self requests.
        let self_requests = SelfRequests::new(local);
        let mut outbound =
            OutboundHttp::new(AllowedHosts::from_urls([variables["s3_endpoint"].as_str()]))
                .with_self_requests(self_requests.clone());
        if let Some(s3) = in_process_s3 {
            outbound = outbound.with_in_process_s3(s3);
        }
        let imports = Imports {
            keyvalue: WasiKeyValueCtx::new(store),
            outbound,
            variables: VariablesCtx::new(variables),
        };

        let guest = Arc::new(GuestHandler::new(
            pre,
            imports,
            local,
            config.limits.guests(),
        ));
        self_requests.connect(&guest);
        let http = serve::spawn_with(listener, config.limits.connections(), move |peer| {
            let guest = guest.clone();
            hyper::service::service_fn(move |req| {
                let guest = guest.clone();
                async move { Ok::<_, Infallible>(guest.handle(req, peer).await) }
            })
        })?;

        let admin_token = mint_admin_token(&token_secrets, unix_now(), config.admin_token_lifetime);
        Ok(Registry {
            url,
            admin_token,
            token_secret,
            token_secrets,
            s3,
            s3_root,
            http,
            embedded_s3,
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:43121`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// An administrator personal token minted at start.
    pub fn admin_token(&self) -> &str {
        &self.admin_token.token
    }

    /// The administrator token with its id and expiry.
    pub fn admin(&self) -> &AdminToken {
        &self.admin_token
    }

    /// The token secret text (the `token_secret` variable).
    pub fn token_secret(&self) -> &str {
        &self.token_secret
    }

    /// The token secrets: what signs and verifies this registry's tokens.
    pub fn token_secrets(&self) -> &Secrets {
        &self.token_secrets
    }

    /// How to reach the bucket directly.
    pub fn s3(&self) -> S3Access {
        self.s3.clone()
    }

    /// The embedded S3 server's directory; `None` with an external S3.
    pub fn s3_root(&self) -> Option<PathBuf> {
        self.s3_root.clone()
    }

    /// Stops serving, waits for requests in flight, then stops the S3 server.
    pub async fn shutdown(self) {
        self.http.shutdown().await;
        if let Some(s3) = self.embedded_s3 {
            s3.shutdown().await;
        }
    }
}

/// The embedded S3 server on its own, for serving the component under
/// another host (the integration tests run it under `spin up`).
pub struct EmbeddedS3Server {
    access: S3Access,
    root: PathBuf,
    server: ServerHandle,
}

impl EmbeddedS3Server {
    /// Starts the server on an ephemeral loopback port, with its bucket and
    /// credentials under `data_dir` (created on first start).
    pub async fn start(data_dir: &Path) -> anyhow::Result<EmbeddedS3Server> {
        let embedded = s3::start(data_dir, None, s3::BrowserOrigins::none()).await?;
        let access = S3Access {
            endpoint: embedded.endpoint(),
            bucket: s3::BUCKET.to_string(),
            region: s3::REGION.to_string(),
            access_key_id: embedded.credentials.access_key_id.clone(),
            secret_access_key: embedded.credentials.secret_access_key.clone(),
        };
        Ok(EmbeddedS3Server {
            access,
            root: embedded.root,
            server: embedded.server,
        })
    }

    /// How to reach the bucket (the component's `s3_*` variables).
    pub fn access(&self) -> &S3Access {
        &self.access
    }

    /// The directory the objects are kept in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// The variables the component sees before the caller's overrides: S3
/// access, the token secret, the host's body limits and the defaults.
fn component_variables(
    s3: &S3Access,
    token_secret: &str,
    url: &str,
    limits: &Limits,
) -> BTreeMap<String, String> {
    let vars = BTreeMap::from([
        ("s3_endpoint", s3.endpoint.as_str()),
        ("s3_bucket", s3.bucket.as_str()),
        ("s3_region", s3.region.as_str()),
        ("s3_access_key_id", s3.access_key_id.as_str()),
        ("s3_secret_access_key", s3.secret_access_key.as_str()),
        ("token_secret", token_secret),
        ("max_file_size", DEFAULT_MAX_FILE_SIZE),
        ("download_mode", "proxy"),
        ("public_url", url),
    ])
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()));
    vars.chain(
        limits
            .component_variables()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
    )
    .collect()
}

/// An administrator token and what revoking it or knowing its end takes.
#[derive(Clone, Debug)]
pub struct AdminToken {
    pub token: String,
    /// The token's id: `genreg token revoke --data DIR <id>` revokes it.
    pub id: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// Mints an administrator personal token (scope `api`) valid for
/// `lifetime` from `now`, signed with the first of the secrets.
pub fn mint_admin_token(secrets: &Secrets, now: u64, lifetime: Duration) -> AdminToken {
    use genreg_token::{Claims, Kind, Scope};
    let expires_at = now.saturating_add(lifetime.as_secs());
    let claims = Claims {
        id: format!("admin-{}", data_dir::random_hex(16)),
        kind: Kind::Personal,
        subject: "admin".to_string(),
        scopes: vec![Scope::Api],
        grants: vec![],
        admin: true,
        issued_at: now,
        expires_at: Some(expires_at),
    };
    AdminToken {
        token: secrets.sign(&claims),
        id: claims.id,
        expires_at,
    }
}

/// The key whose presence revokes the token with this id: the component's
/// key-value layout, read on every request.
fn revoked_token_key(id: &str) -> String {
    genreg_layout::keys::revoked_token(id)
}

/// Revokes the token with this id (its `jti`) in the registry whose data
/// directory is `data_dir`: from the next request on it answers 401. Safe
/// while the registry runs; revoking twice is harmless.
pub fn revoke_token(data_dir: &Path, id: &str) -> anyhow::Result<()> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    anyhow::ensure!(valid, "{id:?} is not a token id");
    let path = data_dir::keyvalue_path(data_dir);
    anyhow::ensure!(
        path.is_file(),
        "no key-value database at {} (is --data the registry's data directory?)",
        path.display()
    );
    let store = SqliteStore::open(&path).context("opening the key-value database")?;
    store
        .set(&revoked_token_key(id), b"1")
        .context("writing the revocation")?;
    store.sync().context("syncing the revocation to the disk")?;
    Ok(())
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_token_expires_after_its_lifetime() {
        let secrets = Secrets::parse("s1,s2").unwrap();
        let admin = mint_admin_token(&secrets, 1_000, Duration::from_secs(86_400));
        assert_eq!(admin.expires_at, 1_000 + 86_400);
        let signer = Secrets::parse("s1").unwrap();
        let claims = signer.verify(&admin.token, 1_000).unwrap();
        assert!(claims.admin);
        assert_eq!(claims.id, admin.id);
        let second = Secrets::parse("s2").unwrap();
        assert!(
            second.verify(&admin.token, 1_000).is_err(),
            "signed by the first"
        );
        assert_eq!(
            signer.verify(&admin.token, 1_000 + 86_400),
            Err(genreg_token::TokenError::Expired)
        );
    }

    #[test]
    fn the_component_learns_the_hosts_body_limits() {
        let s3 = S3Access {
            endpoint: "http://127.0.0.1:9000".into(),
            bucket: "b".into(),
            region: "r".into(),
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
        };
        let plain = component_variables(&s3, "t", "http://x", &Limits::default());
        assert!(!plain.contains_key("max_request_body"));
        assert!(!plain.contains_key("max_response_body"));
        let hosted = component_variables(&s3, "t", "http://x", &Limits::hosted());
        assert_eq!(hosted["max_request_body"], "10485760");
        assert_eq!(hosted["max_response_body"], "10485760");
    }

    #[test]
    fn revocation_writes_the_key_the_component_reads() {
        let dir = tempfile::tempdir().unwrap();
        assert!(revoke_token(dir.path(), "abc").is_err(), "no database yet");
        let store = SqliteStore::open(&data_dir::keyvalue_path(dir.path())).unwrap();
        revoke_token(dir.path(), "admin-0123abcd").unwrap();
        assert_eq!(
            store.get("v1/revoked-token/admin-0123abcd").unwrap(),
            Some(b"1".to_vec())
        );
        assert!(revoke_token(dir.path(), "../v1/x").is_err());
    }
}
