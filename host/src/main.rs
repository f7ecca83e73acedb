//! The `genreg` command: `genreg up` runs a registry, `genreg token create`
//! mints a token offline, `genreg token revoke` revokes one, `genreg gc`
//! deletes unreferenced objects, `genreg push` / `genreg pull` publish and
//! download a file through any generic package URL (ours or GitLab's).

mod client;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand, ValueEnum};
use genreg::genreg_token::{self, Claims, Grant, Kind, Role, Scope, Secrets};
use genreg::{banner, CompileCache, Config, KvConfig, Limits, Profiler, Registry, S3Config};

#[derive(Parser)]
#[command(
    name = "genreg",
    version,
    about = "A GitLab-compatible generic package registry"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry (and, unless --s3-endpoint is given, an S3 server).
    Up(Box<Up>),
    /// Tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Delete the bucket's objects (under files/) that no package record
    /// points to; with --dry-run, only list them.
    Gc(Gc),
    /// Publish a file to a generic package URL: one PUT for small files or
    /// servers without upload sessions (GitLab), else an upload session
    /// with parts sent straight to S3 in parallel; resumes an interrupted
    /// upload; prints the file record.
    Push(Push),
    /// Download a file from a generic package URL: follows redirects,
    /// resumes FILE.part with Range, verifies X-Checksum-SHA256.
    Pull(Pull),
    /// Put the SQLite file of Spin's default key-value store in WAL mode
    /// (creating it if absent), so each of Spin's writes syncs once; run it
    /// before `spin up`. Its keys are kept.
    SpinStore(SpinStore),
}

#[derive(Args)]
struct SpinStore {
    /// Spin's state directory, as given to `spin up --state-dir`; without
    /// it Spin uses `.spin` beside spin.toml (run this there).
    #[arg(long, default_value = genreg::spin_store::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// The store's file itself, when a runtime config gives Spin's
    /// `default` store a `path` (instead of --state-dir).
    #[arg(long, conflicts_with = "state_dir")]
    file: Option<PathBuf>,
}

#[derive(Args)]
struct Push {
    /// The file to publish.
    file: PathBuf,
    /// The generic package URL, as for a PUT:
    /// https://HOST/api/v4/projects/ID/packages/generic/NAME/VERSION/FILE
    url: String,
    /// A personal access token (PRIVATE-TOKEN); default: GITLAB_TOKEN, then
    /// CI_JOB_TOKEN (sent as JOB-TOKEN).
    #[arg(long)]
    token: Option<String>,
    /// Parts sent at once.
    #[arg(long, default_value_t = client::push::DEFAULT_PARALLEL, value_parser = parse_count)]
    parallel: usize,
    /// Files larger than this go through an upload session (smaller ones in
    /// one PUT).
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    session_above: usize,
    /// Part size asked of the registry (5 MiB to 5 GiB).
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    part_size: usize,
    /// Stop after sending this many parts, as an interrupted push would
    /// (for testing resumption).
    #[arg(long, hide = true)]
    stop_after_parts: Option<usize>,
}

#[derive(Args)]
struct Pull {
    /// The generic package URL.
    url: String,
    /// Where to write the file (default: the URL's file name in the current
    /// directory).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// A personal access token (PRIVATE-TOKEN); default: GITLAB_TOKEN, then
    /// CI_JOB_TOKEN (sent as JOB-TOKEN).
    #[arg(long)]
    token: Option<String>,
}

/// Where file bytes are: the embedded S3 server unless --s3-endpoint.
#[derive(Args)]
struct S3Args {
    /// External S3 endpoint, e.g. https://s3.eu-west-1.amazonaws.com; without
    /// it the embedded S3 server (files under the data directory) is used.
    #[arg(long, env = "GENREG_S3_ENDPOINT", requires_all = ["s3_bucket", "s3_access_key_id", "s3_secret_access_key"])]
    s3_endpoint: Option<String>,
    #[arg(long, env = "GENREG_S3_BUCKET")]
    s3_bucket: Option<String>,
    #[arg(long, env = "GENREG_S3_REGION", default_value = "us-east-1")]
    s3_region: String,
    #[arg(long, env = "GENREG_S3_ACCESS_KEY_ID")]
    s3_access_key_id: Option<String>,
    #[arg(long, env = "GENREG_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    s3_secret_access_key: Option<String>,
}

impl S3Args {
    /// External with --s3-endpoint, else embedded on `listen`.
    fn into_config(self, listen: Option<SocketAddr>) -> anyhow::Result<S3Config> {
        Ok(match self.s3_endpoint {
            Some(endpoint) => S3Config::External {
                endpoint,
                bucket: self.s3_bucket.context("--s3-bucket is required")?,
                region: self.s3_region,
                access_key_id: self
                    .s3_access_key_id
                    .context("--s3-access-key-id is required")?,
                secret_access_key: self
                    .s3_secret_access_key
                    .context("--s3-secret-access-key is required")?,
            },
            None => S3Config::Embedded { listen },
        })
    }
}

#[derive(Args)]
struct Gc {
    /// The registry's data directory (its key-value database; with the
    /// embedded S3 server, its files).
    #[arg(long, env = "GENREG_DATA", default_value = ".genreg")]
    data: PathBuf,
    /// Learn the referenced objects from this running registry (any
    /// deployment: genreg, spin up, SpinKube; any key-value store) instead
    /// of the data directory's database, e.g. https://registry.example.com.
    #[arg(long, env = "GENREG_REGISTRY", requires = "token")]
    registry: Option<String>,
    /// An administrator token for --registry.
    #[arg(
        long,
        env = "GENREG_TOKEN",
        hide_env_values = true,
        requires = "registry"
    )]
    token: Option<String>,
    /// Only list the unreferenced objects.
    #[arg(long)]
    dry_run: bool,
    /// Grace period: objects modified less than this long before gc read
    /// the records are kept (an upload writes its object before its record),
    /// e.g. 1h, 30m, 2d, 0.
    #[arg(long, default_value = "1h", value_parser = parse_min_age)]
    min_age: Duration,
    #[command(flatten)]
    s3: S3Args,
}

fn parse_min_age(text: &str) -> Result<Duration, String> {
    genreg_token::parse_duration_secs(text)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("invalid duration {text:?} (e.g. 1h, 30m, 2d, 0)"))
}

/// A timeout or lifetime: `30s`, `5m`, `2h`, `30d` or seconds; never zero.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match genreg_token::parse_duration_secs(text) {
        Some(0) => Err("must be more than 0".to_string()),
        Some(secs) => Ok(Duration::from_secs(secs)),
        None => Err(format!("invalid duration {text:?} (e.g. 30s, 5m, 2h)")),
    }
}

/// A size in bytes, with an optional binary unit: `256MiB`, `1GiB`, `512K`.
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => return Err(format!("invalid size {text:?} (e.g. 256MiB, 1GiB)")),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("invalid size {text:?} (e.g. 256MiB, 1GiB)"))
}

fn parse_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) | Err(_) => Err(format!("{text:?} is not a positive number")),
        Ok(n) => Ok(n),
    }
}

/// Bounds on what clients may hold of the server (see README, "Limits and
/// timeouts").
#[derive(Args)]
struct LimitArgs {
    /// Time for a request head to arrive, from the moment the connection is
    /// ready for a request (opened, or its previous response sent).
    #[arg(long, env = "GENREG_HEADER_TIMEOUT", default_value = "30s", value_parser = parse_timeout)]
    header_timeout: Duration,
    /// A connection with no request in progress that sends nothing for this
    /// long is closed.
    #[arg(long, env = "GENREG_IDLE_TIMEOUT", default_value = "20s", value_parser = parse_timeout)]
    idle_timeout: Duration,
    /// A request body that sends nothing for this long is cut.
    #[arg(long, env = "GENREG_BODY_TIMEOUT", default_value = "60s", value_parser = parse_timeout)]
    body_timeout: Duration,
    /// Connections served at once; more are answered 503 and closed.
    #[arg(long, env = "GENREG_MAX_CONNECTIONS", default_value = "512", value_parser = parse_count)]
    max_connections: usize,
    /// Memory one request's component instance may use (default 256MiB;
    /// 128MiB with --hosted).
    #[arg(long, env = "GENREG_INSTANCE_MEMORY", value_parser = parse_size)]
    instance_memory: Option<usize>,
    /// Requests running at once (one component instance each).
    #[arg(long, env = "GENREG_MAX_INSTANCES", default_value = "64", value_parser = parse_count)]
    max_instances: usize,
    /// How long a request waits for a free instance before it is answered 503.
    #[arg(long, env = "GENREG_INSTANCE_WAIT", default_value = "5s", value_parser = parse_timeout)]
    instance_wait: Duration,
    /// Emulate a hosted Spin platform (Fermyon Wasm Functions, Akamai
    /// Functions): --max-request-body 10MiB --max-response-body 10MiB
    /// --request-timeout 30s --instance-memory 128MiB; each flag given
    /// explicitly wins over the preset.
    #[arg(long, env = "GENREG_HOSTED")]
    hosted: bool,
    /// Request bodies larger than this are answered 413 (default: no limit).
    /// The component learns it as the `max_request_body` variable.
    #[arg(long, env = "GENREG_MAX_REQUEST_BODY", value_parser = parse_size)]
    max_request_body: Option<usize>,
    /// Response bodies larger than this are answered 502, or cut once
    /// started (default: no limit). The component learns it as the
    /// `max_response_body` variable.
    #[arg(long, env = "GENREG_MAX_RESPONSE_BODY", value_parser = parse_size)]
    max_response_body: Option<usize>,
    /// A request whose instance runs longer than this is stopped and, if not
    /// answered yet, answered 504 (default: no limit).
    #[arg(long, env = "GENREG_REQUEST_TIMEOUT", value_parser = parse_timeout)]
    request_timeout: Option<Duration>,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        let preset = if self.hosted {
            Limits::hosted()
        } else {
            Limits::default()
        };
        let bytes = |flag: Option<usize>, preset: Option<u64>| flag.map(|n| n as u64).or(preset);
        Limits {
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            body_timeout: self.body_timeout,
            max_connections: self.max_connections,
            instance_memory: self.instance_memory.unwrap_or(preset.instance_memory),
            max_instances: self.max_instances,
            instance_wait: self.instance_wait,
            max_request_body: bytes(self.max_request_body, preset.max_request_body),
            max_response_body: bytes(self.max_response_body, preset.max_response_body),
            request_timeout: self.request_timeout.or(preset.request_timeout),
        }
    }
}

#[derive(Args)]
struct Up {
    /// Address to serve the registry on.
    #[arg(long, env = "GENREG_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Data directory (token secret, key-value database, embedded S3 files).
    #[arg(long, env = "GENREG_DATA", default_value = ".genreg")]
    data: PathBuf,
    /// Key-value store: `sqlite` (in the data directory) or
    /// `redis://HOST[:PORT][/DB]` (the layout of Spin's Redis store, so
    /// genreg and `spin up` instances can share it).
    #[arg(long, env = "GENREG_KV", default_value = "sqlite", value_parser = KvConfig::parse)]
    kv: KvConfig,
    #[command(flatten)]
    s3: S3Args,
    /// Address of the embedded S3 server (default: an ephemeral loopback port).
    #[arg(long, env = "GENREG_S3_LISTEN", conflicts_with = "s3_endpoint")]
    s3_listen: Option<SocketAddr>,
    /// Largest file accepted, in bytes (0 = unlimited; default 5 GiB).
    #[arg(long, env = "GENREG_MAX_FILE_SIZE")]
    max_file_size: Option<u64>,
    /// Serve downloads through the registry (proxy), redirect to S3, or
    /// redirect only files larger than --max-response-body (auto).
    #[arg(long, env = "GENREG_DOWNLOAD_MODE", value_enum)]
    download_mode: Option<DownloadMode>,
    /// The URL clients use to reach the registry (default: the listen URL).
    #[arg(long, env = "GENREG_PUBLIC_URL")]
    public_url: Option<String>,
    /// Milliseconds to connect to S3 before answering 504 (default 10000).
    #[arg(long, env = "GENREG_S3_CONNECT_TIMEOUT_MS")]
    s3_connect_timeout_ms: Option<u64>,
    /// Milliseconds S3 may take to start answering (default 60000).
    #[arg(long, env = "GENREG_S3_FIRST_BYTE_TIMEOUT_MS")]
    s3_first_byte_timeout_ms: Option<u64>,
    /// Milliseconds S3 may pause while sending or taking a body (default 30000).
    #[arg(long, env = "GENREG_S3_BETWEEN_BYTES_TIMEOUT_MS")]
    s3_between_bytes_timeout_ms: Option<u64>,
    /// Longest lifetime, in days, of a personal, project or group access
    /// token issued through the API (0 = unlimited; default 365).
    #[arg(long, env = "GENREG_MAX_TOKEN_LIFETIME_DAYS")]
    max_token_lifetime_days: Option<u64>,
    /// Lifetime of the administrator token printed at start (a fresh one
    /// is minted on every start).
    #[arg(long, env = "GENREG_ADMIN_TOKEN_LIFETIME", default_value = "30d", value_parser = parse_timeout)]
    admin_token_lifetime: Duration,
    #[command(flatten)]
    limits: LimitArgs,
    /// Serve another component file instead of the one built with genreg.
    #[arg(long, env = "GENREG_COMPONENT", hide = true)]
    component: Option<PathBuf>,
    /// wasmtime cache configuration file for compiled components (default:
    /// wasmtime's own, caching under `~/.cache/wasmtime`), as `spin up
    /// --cache`.
    #[arg(long, env = "GENREG_CACHE", conflicts_with = "disable_cache")]
    cache: Option<PathBuf>,
    /// Compile the component on every start instead of loading it from the
    /// cache, as `spin up --disable-cache`.
    #[arg(long, env = "GENREG_DISABLE_CACHE")]
    disable_cache: bool,
    /// Describe the component's compiled code to a profiler, as `wasmtime
    /// run --profile`: `perfmap` writes `/tmp/perf-<pid>.map`, which `perf
    /// report` reads; `jitdump` writes `jit-<pid>.dump` for `perf inject
    /// --jit`.
    #[arg(long, env = "GENREG_PROFILE", value_name = "PROFILER")]
    profile: Option<ProfileArg>,
}

/// `--profile`'s choices.
#[derive(Clone, Copy, ValueEnum)]
enum ProfileArg {
    Perfmap,
    Jitdump,
}

impl From<ProfileArg> for Profiler {
    fn from(arg: ProfileArg) -> Self {
        match arg {
            ProfileArg::Perfmap => Profiler::PerfMap,
            ProfileArg::Jitdump => Profiler::JitDump,
        }
    }
}

impl Up {
    fn compile_cache(&self) -> CompileCache {
        match (&self.cache, self.disable_cache) {
            (_, true) => CompileCache::Disabled,
            (Some(file), false) => CompileCache::ConfigFile(file.clone()),
            (None, false) => CompileCache::Default,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum DownloadMode {
    Proxy,
    Redirect,
    /// Proxy, but redirect files larger than the response limit.
    Auto,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a token; it is printed alone on the last line.
    Create(TokenCreate),
    /// Revoke a token by its id (printed by `genreg up` for the
    /// administrator token) or by the token itself; from the next request on
    /// it answers 401. Works while the registry runs.
    Revoke(TokenRevoke),
}

#[derive(Args)]
struct TokenRevoke {
    /// The registry's data directory.
    #[arg(long, env = "GENREG_DATA", default_value = ".genreg")]
    data: PathBuf,
    /// The token's id, or the token.
    token: String,
}

#[derive(Args)]
struct TokenCreate {
    /// Data directory whose token_secret signs the token.
    #[arg(
        long,
        env = "GENREG_DATA",
        required_unless_present = "secret",
        conflicts_with = "secret"
    )]
    data: Option<PathBuf>,
    /// The token secret itself (the first comma-separated entry signs).
    #[arg(long, env = "GENREG_TOKEN_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// An administrator token (may do everything).
    #[arg(long)]
    admin: bool,
    /// personal, deploy or job.
    #[arg(long, default_value = "personal")]
    kind: String,
    /// Comma-separated scopes (default: api for personal tokens,
    /// read_package_registry,write_package_registry for deploy tokens).
    #[arg(long, value_delimiter = ',')]
    scopes: Vec<String>,
    /// A project (numeric id, full path, `group/*` or `*`) with an optional
    /// role (`=maintainer`; default developer). Repeatable.
    #[arg(long = "project")]
    projects: Vec<String>,
    /// Lifetime such as 30d, 12h, 45m (default: never expires).
    #[arg(long)]
    expires_in: Option<String>,
    /// Who the token speaks for.
    #[arg(long)]
    name: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(up) => run_up(*up),
        Command::Token {
            command: TokenCommand::Create(create),
        } => create_token(create).map(|token| println!("{token}")),
        Command::Token {
            command: TokenCommand::Revoke(revoke),
        } => revoke_token(revoke),
        Command::Gc(gc) => run_gc(gc),
        Command::Push(push) => run_push(push),
        Command::Pull(pull) => run_pull(pull),
        Command::SpinStore(store) => run_spin_store(store),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_spin_store(store: SpinStore) -> anyhow::Result<()> {
    let file = store
        .file
        .unwrap_or_else(|| genreg::spin_store::store_file(&store.state_dir));
    let before = genreg::spin_store::use_wal(&file)?;
    println!("{}: journal mode wal (was {before})", file.display());
    Ok(())
}

fn run_up(up: Up) -> anyhow::Result<()> {
    genreg::use_compile_cache(&up.compile_cache())?;
    if let Some(profile) = up.profile {
        genreg::use_profiler(profile.into())?;
    }
    let mut config = Config::new(&up.data);
    config.listen = up.listen;
    config.kv = up.kv;
    if let Some(component) = up.component {
        config.component = component;
    }
    config.s3 = up.s3.into_config(up.s3_listen)?;
    let mut variables = BTreeMap::new();
    if let Some(size) = up.max_file_size {
        variables.insert("max_file_size".to_string(), size.to_string());
    }
    if let Some(mode) = up.download_mode {
        let mode = match mode {
            DownloadMode::Proxy => "proxy",
            DownloadMode::Redirect => "redirect",
            DownloadMode::Auto => "auto",
        };
        variables.insert("download_mode".to_string(), mode.to_string());
    }
    if let Some(url) = up.public_url {
        variables.insert("public_url".to_string(), url);
    }
    let timeouts = [
        ("s3_connect_timeout_ms", up.s3_connect_timeout_ms),
        ("s3_first_byte_timeout_ms", up.s3_first_byte_timeout_ms),
        (
            "s3_between_bytes_timeout_ms",
            up.s3_between_bytes_timeout_ms,
        ),
    ];
    for (name, millis) in timeouts {
        if let Some(millis) = millis {
            variables.insert(name.to_string(), millis.to_string());
        }
    }
    if let Some(days) = up.max_token_lifetime_days {
        variables.insert("max_token_lifetime_days".to_string(), days.to_string());
    }
    config.variables = variables;
    config.limits = up.limits.limits();
    config.admin_token_lifetime = up.admin_token_lifetime;

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let registry = Registry::start(config).await?;
        let s3 = registry.s3();
        println!("{}", banner::serving_line(&registry.url()));
        println!("{}", banner::s3_endpoint_line(&s3.endpoint, &s3.bucket));
        let admin = registry.admin();
        println!("{}", banner::admin_token_line(&admin.token));
        println!(
            "  id {}, expires {} (revoke: genreg token revoke --data {} {})",
            admin.id,
            format_unix(admin.expires_at),
            up.data.display(),
            admin.id
        );
        wait_for_stop_signal().await?;
        eprintln!("stopping: waiting for requests in flight");
        registry.shutdown().await;
        Ok(())
    })
}

/// `genreg gc`: one line per unreferenced object, then the summary. Fails
/// (after the report) when a delete failed.
fn run_gc(args: Gc) -> anyhow::Result<()> {
    let config = genreg::gc::GcConfig {
        s3: args.s3.into_config(None)?,
        min_age: args.min_age,
        dry_run: args.dry_run,
        registry: args
            .registry
            .zip(args.token)
            .map(|(url, token)| genreg::gc::RegistryAccess { url, token }),
        ..genreg::gc::GcConfig::new(args.data)
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(genreg::gc::run(&config))?;
    for orphan in &report.unreferenced {
        println!("{orphan}");
    }
    for upload in &report.open_uploads {
        println!("{upload}");
    }
    if !report.missing.is_empty() {
        eprintln!(
            "warning: {} object(s) that records point to are not in the bucket, e.g. {}",
            report.missing.len(),
            report.missing[0]
        );
    }
    println!("{}", report.summary());
    if report.failed() > 0 {
        bail!("{} object(s) could not be deleted", report.failed());
    }
    if report.failed_uploads() > 0 {
        bail!("{} upload(s) could not be aborted", report.failed_uploads());
    }
    Ok(())
}

/// `genreg push`: the file record on stdout, progress on stderr.
fn run_push(args: Push) -> anyhow::Result<()> {
    let options = client::push::PushOptions {
        file: args.file,
        url: args.url,
        credential: client::Credential::from_env(args.token),
        parallel: args.parallel,
        session_above: args.session_above as u64,
        part_size: args.part_size as u64,
        stop_after_parts: args.stop_after_parts,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let record = runtime.block_on(client::push::push(&options))?;
    println!("{}", serde_json::to_string_pretty(&record)?);
    Ok(())
}

/// `genreg pull`: the file written and verified.
fn run_pull(args: Pull) -> anyhow::Result<()> {
    let options = client::pull::PullOptions {
        url: args.url,
        output: args.output,
        credential: client::Credential::from_env(args.token),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(client::pull::pull(&options))?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn wait_for_stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// A Unix time as an RFC 3339 UTC timestamp.
fn format_unix(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|secs| jiff::Timestamp::from_second(secs).ok())
        .map(|t| t.to_string())
        .unwrap_or_else(|| secs.to_string())
}

/// `genreg token revoke`: the id is taken from the token when one is given
/// (its signature must verify with the data directory's secrets).
fn revoke_token(args: TokenRevoke) -> anyhow::Result<()> {
    let id = if args.token.contains('.') {
        let secrets = Secrets::parse(&genreg::data_dir::existing_token_secret(&args.data)?)?;
        // Expired tokens may be revoked too: check the signature only.
        secrets
            .verify(&args.token, 0)
            .context("that token was not signed with this registry's secret")?
            .id
    } else {
        args.token.clone()
    };
    genreg::revoke_token(&args.data, &id)?;
    println!("revoked token {id}");
    Ok(())
}

fn create_token(args: TokenCreate) -> anyhow::Result<String> {
    let secret_text = match (&args.secret, &args.data) {
        (Some(secret), _) => secret.clone(),
        (None, Some(dir)) => genreg::data_dir::existing_token_secret(dir)?,
        (None, None) => bail!("give --data DIR or --secret SECRET"),
    };
    let secrets = Secrets::parse(&secret_text)?;
    let claims = claims_for(&args, genreg::unix_now())?;
    Ok(secrets.sign(&claims))
}

/// The claims `token create` puts in a token, from its arguments.
fn claims_for(args: &TokenCreate, now: u64) -> anyhow::Result<Claims> {
    let kind = Kind::parse(&args.kind).with_context(|| {
        let kinds = Kind::ALL.map(Kind::name).join(", ");
        format!("unknown token kind {:?} ({kinds})", args.kind)
    })?;
    let scopes = if args.scopes.is_empty() {
        kind.default_scopes()
    } else {
        args.scopes
            .iter()
            .map(|s| {
                Scope::parse(s.trim()).with_context(|| {
                    let scopes = Scope::ALL.map(Scope::name).join(", ");
                    format!("unknown scope {s:?} ({scopes})")
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let grants = args
        .projects
        .iter()
        .map(|p| parse_grant(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if kind == Kind::Job && grants.len() != 1 {
        bail!("a job token needs exactly one --project");
    }
    let expires_at = match &args.expires_in {
        None => None,
        Some(text) => {
            let secs = genreg_token::parse_duration_secs(text)
                .with_context(|| format!("invalid --expires-in {text:?} (e.g. 30d, 12h, 45m)"))?;
            Some(now.checked_add(secs).context("--expires-in is too large")?)
        }
    };
    let subject = args.name.clone().unwrap_or_else(|| match kind {
        Kind::Personal if args.admin => "admin".to_string(),
        Kind::Personal => "user".to_string(),
        Kind::Deploy => "deploy-token".to_string(),
        Kind::Job => "gitlab-ci-token".to_string(),
    });
    Ok(Claims {
        id: genreg::data_dir::random_hex(16),
        kind,
        subject,
        scopes,
        grants,
        admin: args.admin,
        issued_at: now,
        expires_at,
    })
}

/// `ID_OR_PATH[=ROLE]`, role developer by default.
fn parse_grant(text: &str) -> anyhow::Result<Grant> {
    let (project, role) = match text.rsplit_once('=') {
        Some((project, role)) => {
            let role = Role::parse(role.trim()).with_context(|| {
                let roles = Role::ALL.map(Role::name).join(", ");
                format!("unknown role {role:?} ({roles})")
            })?;
            (project, role)
        }
        None => (text, Role::Developer),
    };
    let project = project.trim();
    if project.is_empty() {
        bail!("--project needs a project id or path");
    }
    Ok(Grant {
        project: project.to_string(),
        role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> TokenCreate {
        let mut argv = vec!["genreg", "token", "create", "--secret", "s"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Token {
                command: TokenCommand::Create(c),
            } => c,
            _ => unreachable!(),
        }
    }

    #[test]
    fn personal_tokens_default_to_api_scope() {
        let c = claims_for(&args(&[]), 100).unwrap();
        assert_eq!(c.kind, Kind::Personal);
        assert_eq!(c.scopes, vec![Scope::Api]);
        assert_eq!(c.expires_at, None);
    }

    #[test]
    fn deploy_tokens_default_to_registry_scopes() {
        let c = claims_for(&args(&["--kind", "deploy", "--project", "g/p=reporter"]), 0).unwrap();
        assert_eq!(
            c.scopes,
            vec![Scope::ReadPackageRegistry, Scope::WritePackageRegistry]
        );
        assert_eq!(
            c.grants,
            vec![Grant {
                project: "g/p".into(),
                role: Role::Reporter
            }]
        );
    }

    #[test]
    fn job_tokens_need_exactly_one_project() {
        assert!(claims_for(&args(&["--kind", "job"]), 0).is_err());
        let c = claims_for(&args(&["--kind", "job", "--project", "42"]), 0).unwrap();
        assert_eq!(c.grants[0].role, Role::Developer);
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(claims_for(&args(&["--kind", "robot"]), 0).is_err());
        assert!(claims_for(&args(&["--scopes", "api,nope"]), 0).is_err());
        assert!(claims_for(&args(&["--project", "1=king"]), 0).is_err());
        assert!(claims_for(&args(&["--expires-in", "soon"]), 0).is_err());
    }

    #[test]
    fn expiry_is_relative_to_now() {
        let c = claims_for(&args(&["--expires-in", "1d", "--admin"]), 1000).unwrap();
        assert_eq!(c.expires_at, Some(1000 + 86_400));
        assert!(c.admin);
    }

    fn gc_args(extra: &[&str]) -> Gc {
        let mut argv = vec!["genreg", "gc", "--data", "d"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Gc(gc) => gc,
            _ => unreachable!(),
        }
    }

    #[test]
    fn gc_defaults_to_an_hour_of_grace_and_the_embedded_s3() {
        let gc = gc_args(&[]);
        assert_eq!(gc.min_age, Duration::from_secs(3600));
        assert!(!gc.dry_run);
        assert!(matches!(
            gc.s3.into_config(None).unwrap(),
            S3Config::Embedded { listen: None }
        ));
        let gc = gc_args(&["--dry-run", "--min-age", "0"]);
        assert!(gc.dry_run);
        assert_eq!(gc.min_age, Duration::ZERO);
        assert_eq!(gc_args(&["--min-age", "2d"]).min_age.as_secs(), 172_800);
        assert!(Cli::try_parse_from(["genreg", "gc", "--min-age", "soon"]).is_err());
    }

    #[test]
    fn gc_asks_a_registry_with_its_token() {
        assert!(gc_args(&[]).registry.is_none());
        let gc = gc_args(&["--registry", "https://r.example", "--token", "t"]);
        assert_eq!(gc.registry.as_deref(), Some("https://r.example"));
        assert_eq!(gc.token.as_deref(), Some("t"));
        let alone = ["genreg", "gc", "--registry", "https://r.example"];
        assert!(Cli::try_parse_from(alone).is_err());
        assert!(Cli::try_parse_from(["genreg", "gc", "--token", "t"]).is_err());
    }

    #[test]
    fn gc_takes_an_external_s3() {
        let gc = gc_args(&[
            "--s3-endpoint",
            "https://s3.example.com",
            "--s3-bucket",
            "b",
            "--s3-access-key-id",
            "k",
            "--s3-secret-access-key",
            "s",
        ]);
        match gc.s3.into_config(None).unwrap() {
            S3Config::External {
                endpoint, region, ..
            } => assert_eq!(
                (endpoint.as_str(), region.as_str()),
                ("https://s3.example.com", "us-east-1")
            ),
            S3Config::Embedded { .. } => panic!("external expected"),
        }
        assert!(Cli::try_parse_from(["genreg", "gc", "--s3-endpoint", "https://h"]).is_err());
    }

    #[test]
    fn sizes_and_timeouts_take_units() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert_eq!(parse_timeout("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_count("0").is_err());
    }

    #[test]
    fn up_defaults_to_bounded_limits_and_a_30_day_admin_token() {
        let Command::Up(up) = Cli::try_parse_from(["genreg", "up"]).unwrap().command else {
            unreachable!()
        };
        let limits = up.limits.limits();
        assert_eq!(limits.instance_memory, 256 << 20);
        assert_eq!(limits.header_timeout, Duration::from_secs(30));
        assert_eq!(up.admin_token_lifetime, Duration::from_secs(30 * 86_400));
        let Command::Up(up) = Cli::try_parse_from([
            "genreg",
            "up",
            "--max-connections",
            "10",
            "--instance-memory",
            "64MiB",
        ])
        .unwrap()
        .command
        else {
            unreachable!()
        };
        assert_eq!(up.limits.limits().max_connections, 10);
        assert_eq!(up.limits.limits().instance_memory, 64 << 20);
    }

    #[test]
    fn up_hosted_presets_a_hosted_platforms_limits_and_flags_override_them() {
        let limits = |extra: &[&str]| {
            let args = ["genreg", "up"].iter().chain(extra);
            match Cli::try_parse_from(args).unwrap().command {
                Command::Up(up) => up.limits.limits(),
                _ => unreachable!(),
            }
        };
        let plain = limits(&[]);
        assert_eq!(
            (plain.max_request_body, plain.max_response_body),
            (None, None)
        );
        assert_eq!(plain.request_timeout, None);
        let hosted = limits(&["--hosted"]);
        assert_eq!(hosted.max_request_body, Some(10 << 20));
        assert_eq!(hosted.max_response_body, Some(10 << 20));
        assert_eq!(hosted.request_timeout, Some(Duration::from_secs(30)));
        assert_eq!(hosted.instance_memory, 128 << 20);
        let tuned = limits(&[
            "--hosted",
            "--max-request-body",
            "1MiB",
            "--request-timeout",
            "5s",
            "--instance-memory",
            "512MiB",
        ]);
        assert_eq!(tuned.max_request_body, Some(1 << 20));
        assert_eq!(tuned.max_response_body, Some(10 << 20));
        assert_eq!(tuned.request_timeout, Some(Duration::from_secs(5)));
        assert_eq!(tuned.instance_memory, 512 << 20);
        let alone = limits(&["--max-response-body", "2MiB"]);
        assert_eq!(alone.max_response_body, Some(2 << 20));
        assert_eq!(alone.max_request_body, None);
    }

    #[test]
    fn up_describes_the_component_to_a_profiler_only_when_asked() {
        let up = |extra: &[&str]| {
            let args = ["genreg", "up"].iter().chain(extra);
            match Cli::try_parse_from(args).map(|cli| cli.command) {
                Ok(Command::Up(up)) => Ok(up.profile.map(Profiler::from)),
                Ok(_) => unreachable!(),
                Err(e) => Err(e.to_string()),
            }
        };
        assert_eq!(up(&[]).unwrap(), None);
        assert_eq!(
            up(&["--profile", "perfmap"]).unwrap(),
            Some(Profiler::PerfMap)
        );
        assert_eq!(
            up(&["--profile", "jitdump"]).unwrap(),
            Some(Profiler::JitDump)
        );
        let refused = up(&["--profile", "vtune"]).unwrap_err();
        assert!(refused.contains("perfmap"), "{refused}");
    }

    #[test]
    fn up_caches_compiled_components_unless_told_otherwise() {
        let up = |extra: &[&str]| {
            let args = ["genreg", "up"].iter().chain(extra);
            match Cli::try_parse_from(args).map(|cli| cli.command) {
                Ok(Command::Up(up)) => Ok(up.compile_cache()),
                Ok(_) => unreachable!(),
                Err(e) => Err(e.to_string()),
            }
        };
        assert_eq!(up(&[]).unwrap(), CompileCache::Default);
        assert_eq!(up(&["--disable-cache"]).unwrap(), CompileCache::Disabled);
        assert_eq!(
            up(&["--cache", "cache.toml"]).unwrap(),
            CompileCache::ConfigFile("cache.toml".into())
        );
        let refused = up(&["--cache", "cache.toml", "--disable-cache"]).unwrap_err();
        assert!(refused.contains("cannot be used with"), "{refused}");
    }

    #[test]
    fn up_keeps_metadata_in_sqlite_unless_given_a_redis_url() {
        let up = |extra: &[&str]| {
            let args = ["genreg", "up"].iter().chain(extra);
            match Cli::try_parse_from(args).map(|cli| cli.command) {
                Ok(Command::Up(up)) => Ok(up.kv),
                Ok(_) => unreachable!(),
                Err(e) => Err(e.to_string()),
            }
        };
        assert_eq!(up(&[]).unwrap(), KvConfig::Sqlite);
        assert_eq!(up(&["--kv", "sqlite"]).unwrap(), KvConfig::Sqlite);
        assert_eq!(
            up(&["--kv", "redis://127.0.0.1:6379/2"]).unwrap(),
            KvConfig::Redis {
                url: "redis://127.0.0.1:6379/2".into()
            }
        );
        for bad in ["redis", "postgres://h/db", "redis://h:notaport/0"] {
            let refused = up(&["--kv", bad]).unwrap_err();
            assert!(refused.contains("--kv"), "{refused}");
        }
    }

    #[test]
    fn minted_tokens_verify_with_the_secret() {
        let token = create_token(args(&["--scopes", "read_api"])).unwrap();
        let secrets = Secrets::parse("s").unwrap();
        let claims = secrets.verify(&token, genreg::unix_now()).unwrap();
        assert_eq!(claims.scopes, vec![Scope::ReadApi]);
    }

    #[test]
    fn minted_tokens_are_signed_with_the_first_secret() {
        let mut create = args(&[]);
        create.secret = Some(" new , old".into());
        let token = create_token(create).unwrap();
        let now = genreg::unix_now();
        assert!(Secrets::parse("new").unwrap().verify(&token, now).is_ok());
        assert!(Secrets::parse("old").unwrap().verify(&token, now).is_err());
        let mut blank = args(&[]);
        blank.secret = Some(" , ".into());
        let refused = create_token(blank).unwrap_err();
        assert!(refused.to_string().contains("no secret"), "{refused}");
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let kind = claims_for(&args(&["--kind", "robot"]), 0).unwrap_err();
        assert!(kind.to_string().contains("personal, deploy, job"), "{kind}");
        let scope = claims_for(&args(&["--scopes", "nope"]), 0).unwrap_err();
        assert!(
            scope.to_string().contains("read_package_registry"),
            "{scope}"
        );
        let role = claims_for(&args(&["--project", "1=king"]), 0).unwrap_err();
        assert!(
            role.to_string()
                .contains("guest, reporter, developer, maintainer, owner"),
            "{role}"
        );
    }
}
