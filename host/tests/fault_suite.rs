//! The standing fault-and-crash suite: publishes through a faulty S3, `kill
//! -9` of `genreg` while clients publish and in the middle of multipart
//! uploads, each scenario followed by the invariant checker
//! (`support::checker`): every listed file downloads as recorded, every 201
//! is listed, and after `genreg gc --min-age 0s` the bucket holds nothing
//! unreferenced and no open multipart upload. And a key-value store that
//! cannot sync: no publish is acknowledged while it cannot.
//!
//! Nothing here depends on timing: faults are drawn from a seeded generator
//! (`GENREG_FAULT_SEED` changes the seed), every wait and retry loop is
//! bounded, and a hang shows up as a client timeout. The default run is
//! sized for CI; `GENREG_FAULT_SUITE_FULL=1` runs more publishes, more kills
//! and more cut points.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use genreg::data_dir::KEYVALUE_FILE;
use genreg::keyvalue::{Backend, KeyPage, OpenedBackend, StoreError};
use genreg::request_counts::Counted;
use genreg::KvConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use support::checker::{self, Acknowledged, RegistryAccess, Unacknowledged};
use support::process::{self, Genreg};
use support::proxy::{Fault, FaultProxy, Mode};
use support::rng::{suite_seed, Rng};
use support::{
    client, create_project, full_suite, judge, publish_until_created, Answer, Retries, Upload,
};

const MIB: usize = 1024 * 1024;
/// The smallest part size the registry accepts, so that multipart uploads
/// stay small.
const PART_SIZE: usize = 5 * MIB;

// ---------------------------------------------------------------------------
// (a) Publishes through a faulty S3.
// ---------------------------------------------------------------------------

/// A registry (in this process) whose component reaches its embedded S3
/// server only through a [`FaultProxy`]: its `s3_endpoint` variable names
/// the proxy, which forwards to the embedded server's address byte for byte
/// (signatures stay valid: the component signed for the proxy's host).
struct BehindProxy {
    registry: genreg::Registry,
    proxy: FaultProxy,
    access: RegistryAccess,
    data: tempfile::TempDir,
    project: u64,
}

async fn start_behind_proxy(seed: u64, s3_timeouts: &[(&str, &str)]) -> BehindProxy {
    let proxy = FaultProxy::start(seed).await;
    let data = tempfile::tempdir().unwrap();
    let mut config = genreg::Config::new(data.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let part_size = PART_SIZE.to_string();
    let proxy_url = proxy.url();
    let mut variables = vec![
        ("s3_endpoint", proxy_url.as_str()),
        ("s3_part_size", part_size.as_str()),
    ];
    variables.extend_from_slice(s3_timeouts);
    for (name, value) in variables {
        config.variables.insert(name.into(), value.into());
    }
    let registry = genreg::Registry::start(config)
        .await
        .expect("registry starts");
    proxy.set_upstream(&registry.s3().endpoint);
    let access = RegistryAccess {
        url: registry.url(),
        token: registry.admin_token().to_string(),
        client: client(),
    };
    let project = create_project(&access.client, &access.url, &access.token, "faults").await;
    BehindProxy {
        registry,
        proxy,
        access,
        data,
        project,
    }
}

/// What one fault scenario publishes: small files into one package (one
/// empty, one hidden), and multipart uploads of more than 16 MiB (three
/// parts and more), one with `Content-Length` and one chunked, each in a
/// new version.
fn fault_uploads(project: u64, rng: &mut Rng) -> Vec<Upload> {
    let (small, large) = if full_suite() { (24, 4) } else { (8, 2) };
    let mut uploads = Vec::new();
    for i in 0..small {
        let size = match i {
            0 => 0,
            1 => 1,
            _ => rng.below(256 * 1024) as usize,
        };
        let mut upload = Upload::new(
            project,
            "small",
            "1.0",
            &format!("f{i}.bin"),
            rng.bytes(size),
        );
        upload.chunked = i % 3 == 2;
        uploads.push(upload);
    }
    let mut hidden = Upload::new(project, "hidden", "1.0", "h.bin", rng.bytes(1000));
    hidden.hidden = true;
    uploads.push(hidden);
    for i in 0..large {
        let size = 16 * MIB + 1 + rng.below(MIB as u64) as usize;
        let version = format!("{i}.0");
        let mut upload = Upload::new(project, "large", &version, "big.bin", rng.bytes(size));
        upload.chunked = i % 2 == 1;
        uploads.push(upload);
    }
    uploads
}

/// Publishes one after the other (so the same requests fail every run)
/// with the proxy in `mode`, then checks every invariant with the proxy
/// passing everything through. Returns the answers.
async fn publish_through(mode: Mode, s3_timeouts: &[(&str, &str)]) -> Vec<Answer> {
    let seed = suite_seed();
    let run = start_behind_proxy(
        Rng::derived(seed, &format!("{mode:?}")).next_u64(),
        s3_timeouts,
    )
    .await;
    let mut rng = Rng::derived(seed, "fault uploads");
    let uploads = fault_uploads(run.project, &mut rng);

    run.proxy.set_mode(mode);
    let mut answers = Vec::new();
    let mut acknowledged = Vec::new();
    for upload in &uploads {
        let answer = judge(
            upload
                .send(&run.access.client, &run.access.url, &run.access.token)
                .await,
        )
        .await;
        if answer == Answer::Created {
            acknowledged.push(upload.acknowledged());
        }
        answers.push(answer);
    }
    run.proxy.set_mode(Mode::PassThrough);

    report(
        &format!("{mode:?} (seed {seed})"),
        &uploads,
        &answers,
        &run.proxy,
    );
    let unexpected: Vec<String> = uploads
        .iter()
        .zip(&answers)
        .filter_map(|(u, a)| match a {
            Answer::Unexpected(what) => Some(format!("{}: {what}", u.describe())),
            _ => None,
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "publishes that answered neither 201 nor a 5xx JSON error: {unexpected:#?}"
    );
    if mode != Mode::PassThrough {
        assert!(!run.proxy.injected().is_empty(), "no fault was injected");
    }

    check_all(&run, &acknowledged).await;
    let BehindProxy { registry, data, .. } = run;
    registry.shutdown().await;
    drop(data);
    answers
}

/// The invariants of a fault scenario: nothing recorded without a 201, and
/// after gc a clean bucket.
async fn check_all(run: &BehindProxy, acknowledged: &[Acknowledged]) {
    let catalog = checker::check_registry(
        &run.access,
        &[run.project],
        acknowledged,
        Unacknowledged::Forbidden,
    )
    .await
    .unwrap_or_else(|v| panic!("{v}"));
    let config = genreg::gc::GcConfig {
        min_age: Duration::ZERO,
        ..genreg::gc::GcConfig::new(run.data.path())
    };
    let report = genreg::gc::run(&config).await.expect("gc runs");
    eprintln!("gc: {}", report.summary());
    assert!(
        report.missing.is_empty(),
        "records point to missing objects: {:?}",
        report.missing
    );
    assert_eq!(report.failed() + report.failed_uploads(), 0, "{report:?}");
    checker::check_bucket(&run.registry.s3(), &catalog)
        .await
        .unwrap_or_else(|v| panic!("{v}"));
}

/// One line per scenario and per non-201, for `--nocapture` readers.
fn report(scenario: &str, uploads: &[Upload], answers: &[Answer], proxy: &FaultProxy) {
    let created = answers.iter().filter(|a| **a == Answer::Created).count();
    eprintln!(
        "{scenario}: {} publishes, {created} answered 201; {} S3 requests, {} faults injected",
        uploads.len(),
        proxy.requests(),
        proxy.injected().len()
    );
    for fault in proxy.injected() {
        eprintln!("  injected: {fault}");
    }
    for (upload, answer) in uploads.iter().zip(answers) {
        if *answer != Answer::Created {
            eprintln!("  {}: {answer:?}", upload.describe());
        }
    }
}

/// S3 timeouts short enough that stalls end quickly (the component's
/// defaults are 10 s / 60 s / 30 s).
const SHORT_S3_TIMEOUTS: [(&str, &str); 3] = [
    ("s3_connect_timeout_ms", "2000"),
    ("s3_first_byte_timeout_ms", "2000"),
    ("s3_between_bytes_timeout_ms", "1000"),
];

#[tokio::test]
async fn publishes_through_a_healthy_proxy_all_succeed() {
    let answers = publish_through(Mode::PassThrough, &[]).await;
    assert!(answers.iter().all(|a| *a == Answer::Created), "{answers:?}");
}

#[tokio::test]
async fn s3_answering_500_fails_publishes_cleanly() {
    let mode = Mode::Inject {
        fault: Fault::Status(500),
        percent: 20,
    };
    publish_through(mode, &[]).await;
}

#[tokio::test]
async fn s3_answering_503_fails_publishes_cleanly() {
    let mode = Mode::Inject {
        fault: Fault::Status(503),
        percent: 20,
    };
    publish_through(mode, &[]).await;
}

#[tokio::test]
async fn s3_connections_reset_mid_body_fail_publishes_cleanly() {
    let mode = Mode::Inject {
        fault: Fault::Reset,
        percent: 20,
    };
    publish_through(mode, &[]).await;
}

#[tokio::test]
async fn s3_stalling_mid_body_fails_publishes_cleanly() {
    let mode = Mode::Inject {
        fault: Fault::Stall,
        percent: 10,
    };
    publish_through(mode, &SHORT_S3_TIMEOUTS).await;
}

/// A proxied download whose S3 answer is cut (reset or stalled mid-body)
/// breaks off: the client never gets a complete-looking short file.
#[tokio::test]
async fn downloads_of_a_cut_s3_answer_break_off() {
    let run = start_behind_proxy(suite_seed(), &SHORT_S3_TIMEOUTS).await;
    let mut rng = Rng::derived(suite_seed(), "cut downloads");
    let upload = Upload::new(run.project, "dl", "1.0", "f.bin", rng.bytes(3 * MIB));
    let http = &run.access.client;
    let created = upload.send(http, &run.access.url, &run.access.token).await;
    assert_eq!(created.unwrap().status(), reqwest::StatusCode::CREATED);

    let url = format!("{}{}", run.access.url, upload.path());
    for fault in [Fault::Reset, Fault::Stall] {
        run.proxy.set_mode(Mode::Inject {
            fault,
            percent: 100,
        });
        for range in [None, Some("bytes=1000-2000999")] {
            let mut request = http.get(&url).header("PRIVATE-TOKEN", &run.access.token);
            if let Some(range) = range {
                request = request.header("range", range);
            }
            let response = request.send().await.expect("the answer starts");
            let status = response.status();
            let body = response.bytes().await;
            assert!(
                status.is_server_error() || body.is_err(),
                "{fault:?} {range:?}: {status} with {:?} bytes",
                body.map(|b| b.len())
            );
        }
    }
    run.proxy.set_mode(Mode::PassThrough);
    let whole = http
        .get(&url)
        .header("PRIVATE-TOKEN", &run.access.token)
        .send()
        .await
        .unwrap();
    assert_eq!(whole.bytes().await.unwrap(), upload.body);
    run.registry.shutdown().await;
}

// ---------------------------------------------------------------------------
// (b) kill -9 while 16 clients publish.
// ---------------------------------------------------------------------------

const CLIENTS: usize = 16;
/// The `j`-th publish of client `c`: the first half of the clients add
/// files to one package, the others publish new versions of another.
fn crash_upload(project: u64, seed: u64, c: usize, j: usize) -> Upload {
    let mut rng = Rng::derived(seed, &format!("client {c} upload {j}"));
    let size = 1 + rng.below(64 * 1024) as usize;
    let body = rng.bytes(size);
    if c < CLIENTS / 2 {
        Upload::new(project, "shared", "1.0", &format!("c{c}-{j}.bin"), body)
    } else {
        Upload::new(project, "tool", &format!("{c}.{j}.0"), "tool.bin", body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_while_16_clients_publish_loses_no_201() {
    let seed = suite_seed();
    let (per_client, kills): (usize, &[usize]) = if full_suite() {
        (16, &[30, 80, 130, 180, 230])
    } else {
        (6, &[24])
    };
    let dir = tempfile::tempdir().unwrap();
    let (data, log) = (dir.path().join("data"), dir.path().join("genreg.log"));
    let mut genreg = Genreg::start(&data, &log).await;
    let token = genreg.admin_token.clone();
    let http = client();
    let project = create_project(&http, &genreg.url, &token, "crash").await;

    let (url_tx, url_rx) = watch::channel(Some(genreg.url.clone()));
    let created = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (http, token, created, finished) = (
            http.clone(),
            token.clone(),
            created.clone(),
            finished.clone(),
        );
        let mut current = url_rx.clone();
        clients.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut retries = Retries::default();
            for j in 0..per_client {
                let upload = crash_upload(project, seed, c, j);
                let result =
                    publish_until_created(&http, &mut current, &token, &upload, &mut retries).await;
                if let Err(e) = result {
                    finished.fetch_add(1, Ordering::SeqCst);
                    return Err(e);
                }
                acknowledged.push(upload.acknowledged());
                created.fetch_add(1, Ordering::SeqCst);
            }
            finished.fetch_add(1, Ordering::SeqCst);
            Ok((acknowledged, retries))
        }));
    }

    for &kill_at in kills {
        assert!(kill_at < CLIENTS * per_client);
        while created.load(Ordering::SeqCst) < kill_at {
            assert!(
                finished.load(Ordering::SeqCst) < CLIENTS,
                "every client ended before {kill_at} publishes answered 201"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        url_tx.send_replace(None);
        genreg.kill9().await;
        eprintln!(
            "killed genreg after {} publishes answered 201",
            created.load(Ordering::SeqCst)
        );
        genreg = Genreg::start(&data, &log).await;
        url_tx.send_replace(Some(genreg.url.clone()));
    }

    let mut acknowledged = Vec::new();
    let mut totals = Retries::default();
    for client in clients {
        let (acks, retries) = client
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}\ngenreg log:\n{}", process::tail(&log)));
        acknowledged.extend(acks);
        totals.unavailable += retries.unavailable;
        totals.server_errors += retries.server_errors;
        totals.connection_errors += retries.connection_errors;
    }
    eprintln!(
        "{} publishes answered 201 over {} kill(s); retried: {totals:?}",
        acknowledged.len(),
        kills.len()
    );
    assert_eq!(acknowledged.len(), CLIENTS * per_client);

    let access = RegistryAccess {
        url: genreg.url.clone(),
        token,
        client: http,
    };
    collect_and_check(&genreg, &data, &access, &[project], &acknowledged).await;
    genreg.kill9().await;
    check_publish_counts(&log);
}

/// Every publish the log shows answering 201 ends its access log line with
/// the store and S3 counts of what it did: at least one S3 request and one
/// change of the store, and no more lost swaps than swaps.
fn check_publish_counts(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap();
    let publishes: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("PUT /api/v4/projects/") && line.contains(" 201 "))
        .collect();
    assert!(!publishes.is_empty(), "no publish in the log");
    let (mut swaps, mut lost) = (0, 0);
    for line in &publishes {
        let counted = Counted::from_log_line(line).unwrap_or_else(|| panic!("no counts: {line}"));
        assert!(counted.s3_requests >= 1, "{line}");
        assert!(counted.writes + counted.swaps >= 1, "{line}");
        assert!(counted.lost_swaps <= counted.swaps, "{line}");
        assert!(counted.reads >= 1, "{line}");
        swaps += counted.swaps;
        lost += counted.lost_swaps;
    }
    eprintln!(
        "{} publishes in the log: {swaps} swaps, {lost} of them lost",
        publishes.len()
    );
}

/// `genreg gc --min-age 0s`, then every invariant; the catalog is returned.
async fn collect_and_check(
    genreg: &Genreg,
    data: &Path,
    access: &RegistryAccess,
    projects: &[u64],
    acknowledged: &[Acknowledged],
) -> checker::Catalog {
    let gc = process::gc_now(data).await;
    eprintln!("genreg gc:\n{}{}", gc.stdout, gc.stderr);
    assert!(gc.success, "genreg gc failed: {}{}", gc.stdout, gc.stderr);
    assert!(!gc.stderr.contains("not in the bucket"), "{}", gc.stderr);
    let catalog = checker::check_registry(access, projects, acknowledged, Unacknowledged::Allowed)
        .await
        .unwrap_or_else(|v| panic!("{v}"));
    checker::check_bucket(&genreg.s3(), &catalog)
        .await
        .unwrap_or_else(|v| panic!("{v}"));
    eprintln!(
        "checked {} packages, {} files ({} answered 201)",
        catalog.packages,
        catalog.files.len(),
        acknowledged.len()
    );
    catalog
}

// ---------------------------------------------------------------------------
// (c) kill -9 in the middle of multipart uploads.
// ---------------------------------------------------------------------------

/// Size of the files cut by the crash: two parts at genreg's default part
/// size (16 MiB).
const BIG: usize = 20 * MIB;

/// Where the crash cuts: bytes of the body sent, how many multipart uploads
/// must be open by then (the sized one creates its upload before reading
/// the body, the chunked one once a whole part is in), and whether their
/// first part must be complete.
struct CutPoint {
    sent: usize,
    open: usize,
    first_part_done: bool,
}

/// Opens a `PUT` of `body`, sends its first `sent` bytes, and leaves the
/// connection open.
async fn start_cut_upload(url: &str, token: &str, upload: &Upload, sent: usize) -> TcpStream {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    let framing = if upload.chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {}", upload.body.len())
    };
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: {address}\r\nPRIVATE-TOKEN: {token}\r\n{framing}\r\n\r\n",
        upload.path()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in upload.body[..sent].chunks(256 * 1024) {
        if upload.chunked {
            stream
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await
                .unwrap();
            stream.write_all(chunk).await.unwrap();
            stream.write_all(b"\r\n").await.unwrap();
        } else {
            stream.write_all(chunk).await.unwrap();
        }
    }
    stream.flush().await.unwrap();
    stream
}

/// Files of the embedded S3 server's root whose name satisfies `pick`.
fn count_upload_files(data: &Path, pick: impl Fn(&str) -> bool) -> usize {
    std::fs::read_dir(genreg::data_dir::s3_root(data))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| pick(&e.file_name().to_string_lossy()))
                .count()
        })
        .unwrap_or(0)
}

/// Waits (bounded) until the S3 server holds `cut.open` upload records
/// and, if asked, as many complete first parts.
async fn wait_for_open_uploads(data: &Path, cut: &CutPoint) {
    for _ in 0..2400 {
        let uploads =
            count_upload_files(data, |n| n.starts_with(".upload-") && n.ends_with(".json"));
        // Part 1 comes in order: it is written into the upload's assembly,
        // with a marker in place of its own file.
        let parts = count_upload_files(data, |n| {
            n.starts_with(".upload_id-") && (n.ends_with(".part-1") || n.ends_with(".assembled-1"))
        });
        if uploads >= cut.open && (!cut.first_part_done || parts >= cut.open) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the uploads never reached {} open with their first part",
        cut.open
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_multipart_upload_then_gc_leaves_nothing_open() {
    let seed = suite_seed();
    let mut cuts = vec![CutPoint {
        sent: 17 * MIB,
        open: 2,
        first_part_done: true,
    }];
    if full_suite() {
        cuts.push(CutPoint {
            sent: 8 * MIB,
            open: 1,
            first_part_done: false,
        });
        cuts.push(CutPoint {
            sent: BIG - 1,
            open: 2,
            first_part_done: true,
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let (data, log) = (dir.path().join("data"), dir.path().join("genreg.log"));
    let mut genreg = Genreg::start(&data, &log).await;
    let token = genreg.admin_token.clone();
    let http = client();
    let project = create_project(&http, &genreg.url, &token, "cut").await;
    let mut acknowledged = Vec::new();

    for (round, cut) in cuts.iter().enumerate() {
        let mut rng = Rng::derived(seed, &format!("cut round {round}"));
        let small = Upload::new(
            project,
            "keep",
            &format!("{round}.0"),
            "small.bin",
            rng.bytes(1000),
        );
        assert_eq!(
            judge(small.send(&http, &genreg.url, &token).await).await,
            Answer::Created
        );
        acknowledged.push(small.acknowledged());
        let version = format!("{round}.0");
        let sized = Upload::new(project, "big", &version, "sized.bin", rng.bytes(BIG));
        let mut chunked = Upload::new(project, "big", &version, "chunked.bin", rng.bytes(BIG));
        chunked.chunked = true;

        let streams = [
            start_cut_upload(&genreg.url, &token, &sized, cut.sent).await,
            start_cut_upload(&genreg.url, &token, &chunked, cut.sent).await,
        ];
        wait_for_open_uploads(&data, cut).await;
        genreg.kill9().await;
        drop(streams);
        genreg = Genreg::start(&data, &log).await;

        let access = RegistryAccess {
            url: genreg.url.clone(),
            token: token.clone(),
            client: http.clone(),
        };
        let open = checker::open_uploads(&genreg.s3()).await.unwrap();
        assert!(
            open.len() >= cut.open,
            "the crash left {} open uploads: {open:?}",
            open.len()
        );
        let gc = process::gc_now(&data).await;
        eprintln!("genreg gc after the crash:\n{}{}", gc.stdout, gc.stderr);
        let aborted = gc
            .stdout
            .lines()
            .filter(|l| l.starts_with("aborted upload"))
            .count();
        eprintln!("round {round}: cut at {} bytes, {} open upload(s) after the crash, gc aborted {aborted}", cut.sent, open.len());
        assert_eq!(
            aborted,
            open.len(),
            "genreg gc:\n{}{}",
            gc.stdout,
            gc.stderr
        );
        let catalog = collect_and_check(&genreg, &data, &access, &[project], &acknowledged).await;
        assert!(
            !catalog
                .files
                .iter()
                .any(|f| f.package == "big" && f.version == version),
            "a cut upload is listed"
        );

        // The clients try again, and the files arrive whole.
        let mut current = watch::channel(Some(genreg.url.clone())).1;
        for upload in [&sized, &chunked] {
            publish_until_created(&http, &mut current, &token, upload, &mut Retries::default())
                .await
                .unwrap();
            acknowledged.push(upload.acknowledged());
        }
        let catalog =
            checker::check_registry(&access, &[project], &acknowledged, Unacknowledged::Allowed)
                .await
                .unwrap_or_else(|v| panic!("{v}"));
        checker::check_bucket(&genreg.s3(), &catalog)
            .await
            .unwrap_or_else(|v| panic!("{v}"));
    }
    genreg.kill9().await;
}

// ---------------------------------------------------------------------------
// The checker itself: it must see what it is there to see.
// ---------------------------------------------------------------------------

/// Starts a multipart upload of `key` straight in the bucket and leaves it
/// open, as a crash would.
async fn leave_upload_open(s3: &genreg::S3Access, key: &str) {
    let bucket = rusty_s3::Bucket::new(
        s3.endpoint.parse().unwrap(),
        rusty_s3::UrlStyle::Path,
        s3.bucket.clone(),
        s3.region.clone(),
    )
    .unwrap();
    let credentials = rusty_s3::Credentials::new(&s3.access_key_id, &s3.secret_access_key);
    let url = rusty_s3::S3Action::sign(
        &bucket.create_multipart_upload(Some(&credentials), key),
        Duration::from_secs(600),
    );
    let response = reqwest::Client::new().post(url).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

#[tokio::test]
async fn the_checker_sees_lost_objects_orphans_open_uploads_and_unlisted_201s() {
    let run = start_behind_proxy(suite_seed(), &[]).await;
    let (access, project) = (&run.access, run.project);
    let kept = Upload::new(project, "p", "1.0", "kept.bin", b"kept".to_vec());
    let lost = Upload::new(project, "p", "1.0", "lost.bin", b"lost bytes".to_vec());
    for upload in [&kept, &lost] {
        let answer = judge(
            upload
                .send(&access.client, &access.url, &access.token)
                .await,
        )
        .await;
        assert_eq!(answer, Answer::Created);
    }
    let acknowledged = [kept.acknowledged(), lost.acknowledged()];
    checker::check_registry(access, &[project], &acknowledged, Unacknowledged::Forbidden)
        .await
        .unwrap();

    // A 201 that is not listed, and a listed file no 201 answered.
    let never = Upload::new(project, "p", "1.0", "never.bin", b"never".to_vec());
    let violations = checker::check_registry(
        access,
        &[project],
        &[kept.acknowledged(), never.acknowledged()],
        Unacknowledged::Forbidden,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(violations.contains("never.bin"), "{violations}");
    assert!(violations.contains("lost.bin"), "{violations}");

    // An object gone from under its record.
    let bucket_dir = genreg::data_dir::s3_root(run.data.path()).join("genreg/files");
    let lost_object = std::fs::read_dir(&bucket_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::read(p).is_ok_and(|bytes| bytes == lost.body))
        .expect("the object of lost.bin");
    std::fs::remove_file(&lost_object).unwrap();
    let violations =
        checker::check_registry(access, &[project], &acknowledged, Unacknowledged::Forbidden)
            .await
            .unwrap_err()
            .to_string();
    assert!(violations.contains("lost.bin"), "{violations}");

    // An object no record points to, an open upload, and the lost object.
    std::fs::write(bucket_dir.join("orphan"), b"nobody's").unwrap();
    leave_upload_open(&run.registry.s3(), "files/crashed").await;
    let listed = |upload: &Upload| checker::ListedFile {
        project,
        package: upload.package.clone(),
        version: upload.version.clone(),
        file_id: 0,
        file_name: upload.file_name.clone(),
        size: upload.body.len() as u64,
        sha256: checker::sha256_hex(&upload.body),
    };
    let catalog = checker::Catalog {
        packages: 1,
        files: vec![listed(&kept), listed(&lost)],
    };
    let violations = checker::check_bucket(&run.registry.s3(), &catalog)
        .await
        .unwrap_err();
    let text = violations.to_string();
    assert_eq!(violations.0.len(), 3, "{text}");
    assert!(text.contains("object files/orphan"), "{text}");
    assert!(
        text.contains("upload") && text.contains("files/crashed"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "10 bytes, sha256 {}, have no object",
            checker::sha256_hex(&lost.body)
        )),
        "{text}"
    );
    run.registry.shutdown().await;
}

/// 16 clients publish into one package until it seals its files into a
/// segment: every file is listed once, with its own object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_past_a_segment_seal_record_each_file_once() {
    let run = start_behind_proxy(suite_seed(), &[]).await;
    let (access, project) = (run.access.clone(), run.project);
    // More than one record's worth of files (200): the package seals a
    // segment while others commit.
    let per_client = if full_suite() { 40 } else { 13 };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let access = access.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut current = watch::channel(Some(access.url.clone())).1;
                for j in 0..per_client {
                    let body = format!("client {c} file {j}").into_bytes();
                    let upload =
                        Upload::new(project, "shared", "1.0", &format!("c{c}-{j}.bin"), body);
                    publish_until_created(
                        &access.client,
                        &mut current,
                        &access.token,
                        &upload,
                        &mut Retries::default(),
                    )
                    .await
                    .unwrap();
                    acknowledged.push(upload.acknowledged());
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for client in clients {
        acknowledged.extend(client.await.unwrap());
    }
    let catalog = checker::check_registry(
        &access,
        &[project],
        &acknowledged,
        Unacknowledged::Forbidden,
    )
    .await
    .unwrap_or_else(|v| panic!("{v}"));
    checker::check_bucket(&run.registry.s3(), &catalog)
        .await
        .unwrap_or_else(|v| panic!("{v}"));
    run.registry.shutdown().await;
}

// ---------------------------------------------------------------------------
// (d) A store that cannot make a publish durable.
// ---------------------------------------------------------------------------

/// The registry's SQLite store, whose `sync` fails while `failing` is set
/// (a disk that stopped taking writes).
struct FailingSync {
    inner: genreg::keyvalue::SqliteStore,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl Backend for FailingSync {
    async fn get(&self, key: String) -> Result<Option<Vec<u8>>, StoreError> {
        Backend::get(&self.inner, key).await
    }
    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), StoreError> {
        Backend::set(&self.inner, key, value).await
    }
    async fn delete(&self, key: String) -> Result<(), StoreError> {
        Backend::delete(&self.inner, key).await
    }
    async fn exists(&self, key: String) -> Result<bool, StoreError> {
        Backend::exists(&self.inner, key).await
    }
    async fn list_keys(&self, cursor: Option<String>, limit: usize) -> Result<KeyPage, StoreError> {
        Backend::list_keys(&self.inner, cursor, limit).await
    }
    async fn increment(&self, key: String, delta: i64) -> Result<i64, StoreError> {
        Backend::increment(&self.inner, key, delta).await
    }
    async fn swap(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool, StoreError> {
        Backend::swap(&self.inner, key, expected, value).await
    }
    async fn get_many(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, StoreError> {
        Backend::get_many(&self.inner, keys).await
    }
    async fn set_many(&self, key_values: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
        Backend::set_many(&self.inner, key_values).await
    }
    async fn delete_many(&self, keys: Vec<String>) -> Result<(), StoreError> {
        Backend::delete_many(&self.inner, keys).await
    }
    async fn sync(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError("the disk stopped taking writes".into()));
        }
        Backend::sync(&self.inner).await
    }
}

#[tokio::test]
async fn a_publish_the_store_cannot_sync_gets_no_201() {
    let data = tempfile::tempdir().unwrap();
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let store = FailingSync {
        inner: genreg::keyvalue::SqliteStore::open(&data.path().join(KEYVALUE_FILE)).unwrap(),
        failing: failing.clone(),
    };
    let mut config = genreg::Config::new(data.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.kv = KvConfig::Opened(OpenedBackend(Arc::new(store)));
    let registry = genreg::Registry::start(config)
        .await
        .expect("registry starts");
    let (http, url) = (client(), registry.url());
    let token = registry.admin_token().to_string();
    let project = create_project(&http, &url, &token, "durable").await;
    let upload = |name: &str| Upload::new(project, "p", "1.0", name, b"bytes".to_vec());

    failing.store(true, Ordering::SeqCst);
    let refused = upload("lost.bin").send(&http, &url, &token).await.unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::INTERNAL_SERVER_ERROR);
    // A read writes nothing, so it needs no sync and still answers.
    let health = http.get(format!("{url}/-/health")).send().await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);

    failing.store(false, Ordering::SeqCst);
    let created = upload("kept.bin").send(&http, &url, &token).await.unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    registry.shutdown().await;
}
