//! Headless Chromium driven through the system's `chromedriver` (WebDriver),
//! one browser per test file.
//!
//! [`Browser::start`] starts `chromedriver --port=<free>` in its own process
//! group, opens a session on Debian's `chromium` with a fresh profile, and
//! its `Drop` kills the whole group (chromedriver and every Chromium process
//! it started), also when a test panics. Every wait polls the page for a
//! condition up to [`WAIT`], which only bounds how long a failing test hangs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// The longest a wait lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// How often a wait looks at the page again.
const POLL: Duration = Duration::from_millis(100);

/// Attempts at starting chromedriver (a free port may be taken in between).
const DRIVER_STARTS: usize = 3;

const CHROMIUM_FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--window-size=1280,900",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
];

/// A Chromium session and the chromedriver behind it.
pub struct Browser {
    pub client: Client,
    /// Declared after `client`, so the session's connection closes before
    /// the processes are killed.
    driver: Driver,
    profile: tempfile::TempDir,
}

/// The chromedriver process; dropping it kills its process group.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver leads its own process group, and the Chromium it
        // starts stays in it: one signal ends them all.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// Where a program is on `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Debian's `chromium` and `chromium-driver`, or a failure saying how to
/// get them: the browser tests never pass silently without a browser.
fn browser_programs() -> (PathBuf, PathBuf) {
    match (on_path("chromium"), on_path("chromedriver")) {
        (Some(chromium), Some(driver)) => (chromium, driver),
        _ => panic!(
            "the browser tests need Chromium and chromedriver on PATH: \
             install them with `apt-get install chromium chromium-driver` \
             (.ci/run does this in CI)"
        ),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Driver {
    /// Starts chromedriver and waits for the line saying it listens.
    fn start(program: &Path) -> Driver {
        for _ in 0..DRIVER_STARTS {
            if let Some(driver) = Driver::try_start(program, free_port()) {
                return driver;
            }
        }
        panic!("chromedriver did not start in {DRIVER_STARTS} attempts");
    }

    fn try_start(program: &Path, port: u16) -> Option<Driver> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(program)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("chromedriver runs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        // Reads every line to the end, so chromedriver never blocks on a
        // full pipe; the first line that says it listens signals readiness.
        std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("started successfully") {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
            }
        });
        let driver = Driver { child, port };
        // A closed channel means chromedriver exited (e.g. the port was taken).
        ready_rx.recv().ok().map(|()| driver)
    }
}

fn capabilities(chromium: &Path, profile: &Path, downloads: &Path) -> Capabilities {
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|flag| flag.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": args,
            // Downloads land in `downloads` without asking.
            "prefs": {
                "download.default_directory": downloads,
                "download.prompt_for_download": false,
            },
        },
        // Console messages (CSP violations among them) through `se/log`.
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    match capabilities {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object"),
    }
}

/// One console message of the page.
#[derive(Debug, Clone)]
pub struct ConsoleMessage {
    pub message: String,
}

impl ConsoleMessage {
    /// Whether Chromium reports a Content-Security-Policy violation.
    pub fn is_csp_violation(&self) -> bool {
        self.message.contains("Content Security Policy")
    }
}

/// ChromeDriver's `POST /session/:id/goog/cdp/execute`: one Chrome DevTools
/// Protocol command (e.g. emulating the dark colour scheme).
#[derive(Debug)]
struct DevToolsCommand {
    name: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for DevToolsCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("a session");
        base_url.join(&format!("session/{session}/goog/cdp/execute"))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (reqwest::Method, Option<String>) {
        let body = json!({ "cmd": self.name, "params": self.params });
        (reqwest::Method::POST, Some(body.to_string()))
    }
}

/// ChromeDriver's `POST /session/:id/se/log`: the console messages since
/// the last call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("a session");
        base_url.join(&format!("session/{session}/se/log"))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (reqwest::Method, Option<String>) {
        (
            reqwest::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Browser {
        let (chromium, driver_program) = browser_programs();
        let profile = tempfile::tempdir().expect("a profile directory");
        let downloads = profile.path().join("downloads");
        std::fs::create_dir(&downloads).expect("a download directory");
        let driver = Driver::start(&driver_program);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities(&chromium, profile.path(), &downloads))
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a Chromium session through chromedriver");
        Browser {
            client,
            driver,
            profile,
        }
    }

    /// The profile directory, which names this browser's processes.
    pub fn profile(&self) -> PathBuf {
        self.profile.path().to_path_buf()
    }

    /// Where the browser saves downloads.
    pub fn downloads(&self) -> PathBuf {
        self.profile.path().join("downloads")
    }

    /// Waits until the browser has saved `name` completely, and reads it.
    pub async fn downloaded(&self, name: &str) -> Vec<u8> {
        let path = self.downloads().join(name);
        let partial = self.downloads().join(format!("{name}.crdownload"));
        self.wait_until(&format!("the download of {name}"), || async {
            path.is_file() && !partial.exists()
        })
        .await;
        std::fs::read(&path).expect("read the download")
    }

    /// Emulates `prefers-color-scheme: <scheme>` (`light` or `dark`).
    pub async fn color_scheme(&self, scheme: &str) {
        let features = json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] });
        self.client
            .issue_cmd(DevToolsCommand {
                name: "Emulation.setEmulatedMedia",
                params: features,
            })
            .await
            .expect("emulate a colour scheme");
    }

    /// Lets the page read and write the clipboard without asking.
    pub async fn allow_clipboard(&self) {
        let permissions =
            json!({ "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"] });
        self.client
            .issue_cmd(DevToolsCommand {
                name: "Browser.grantPermissions",
                params: permissions,
            })
            .await
            .expect("grant clipboard access");
    }

    /// The clipboard's text, as the page reads it.
    pub async fn clipboard(&self) -> String {
        let text = self
            .script("return navigator.clipboard.readText();", vec![])
            .await;
        text.as_str().expect("clipboard text").to_string()
    }

    /// Ends the session (chromedriver closes Chromium), then the processes.
    pub async fn close(self) {
        let Browser { client, driver, .. } = self;
        let _ = client.close().await;
        drop(driver);
    }

    pub async fn open(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Waits for an element `locator` finds.
    pub async fn find(&self, locator: Locator<'_>) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .every(POLL)
            .for_element(locator)
            .await
            .unwrap_or_else(|e| panic!("no element {locator:?} appeared: {e}"))
    }

    /// Waits for an element `path` finds (an XPath step list such as
    /// `main//td`) whose text contains `text`.
    pub async fn with_text(&self, path: &str, text: &str) -> Element {
        let xpath = format!(
            "//{path}[contains(normalize-space(.), {})]",
            xpath_literal(text)
        );
        self.find(Locator::XPath(&xpath)).await
    }

    /// Waits for a button (or a link styled as one) labelled `label`.
    pub async fn button(&self, label: &str) -> Element {
        let label = xpath_literal(label);
        let scope = self.scope().await;
        let xpath = format!(
            "{scope}//button[normalize-space(.)={label} or @aria-label={label}] \
             | {scope}//input[@type='submit' and @value={label}]"
        );
        self.find(Locator::XPath(&xpath)).await
    }

    /// Waits for the form control labelled `label`: by a `<label>` (`for`
    /// or wrapping it) whose own text starts with `label` (a wrapping label
    /// also holds the control's and a hint's text), or by `aria-label`.
    pub async fn control(&self, label: &str) -> Element {
        let label = xpath_literal(label);
        let scope = self.scope().await;
        let labels = format!("{scope}//label[normalize-space(text()[1])={label}]");
        let controls = "self::input or self::select or self::textarea";
        let xpath = format!(
            "{scope}//*[({controls}) and (@id={labels}/@for or @aria-label={label})] \
             | {labels}//*[{controls}]"
        );
        self.find(Locator::XPath(&xpath)).await
    }

    /// Where controls and buttons are looked for: in the open modal dialog
    /// while there is one (the page behind it cannot be used), else anywhere.
    async fn scope(&self) -> &'static str {
        if self.is_present(Locator::Css("dialog[open]")).await {
            "//dialog[@open]"
        } else {
            ""
        }
    }

    /// Types `text` into the control labelled `label`, replacing its value.
    pub async fn type_into(&self, label: &str, text: &str) -> Element {
        let control = self.control(label).await;
        control.clear().await.expect("clear the control");
        control
            .send_keys(text)
            .await
            .expect("type into the control");
        control
    }

    /// Whether an element `locator` finds is on the page now (no wait).
    pub async fn is_present(&self, locator: Locator<'_>) -> bool {
        !self
            .client
            .find_all(locator)
            .await
            .expect("search the page")
            .is_empty()
    }

    /// Waits until `script` (a function body) returns `true`.
    pub async fn wait_until_script(&self, what: &str, script: &str) {
        self.wait_until(what, || async {
            self.client
                .execute(script, vec![])
                .await
                .expect("run a script")
                == Value::Bool(true)
        })
        .await;
    }

    /// Waits for an element `selector` finds to have text, and returns it
    /// (read in the page, so a redraw in between cannot make it stale).
    pub async fn text_of(&self, selector: &str) -> String {
        let script = "const found = document.querySelector(arguments[0]);
                      return found ? found.textContent : '';";
        let text = std::cell::RefCell::new(String::new());
        self.wait_until(&format!("text in {selector}"), || async {
            let found = self.script(script, vec![selector.into()]).await;
            *text.borrow_mut() = found.as_str().unwrap_or_default().to_string();
            !text.borrow().is_empty()
        })
        .await;
        text.into_inner()
    }

    /// Waits until `condition` holds, failing with `what` after [`WAIT`].
    pub async fn wait_until<F, Fut>(&self, what: &str, mut condition: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while !condition().await {
            assert!(start.elapsed() < WAIT, "waited in vain for {what}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// The current URL's path and query.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("the current URL");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Runs `script` in the page and returns what it returns.
    pub async fn script(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The console messages since the last call.
    pub async fn console(&self) -> Vec<ConsoleMessage> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("chromedriver's browser log");
        entries
            .as_array()
            .expect("a list of log entries")
            .iter()
            .map(|entry| ConsoleMessage {
                message: entry["message"].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    }

    /// Saves a screenshot of the viewport as
    /// `target/browser-screenshots/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// Resizes the window (for the phone-sized screenshots).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize the window");
    }
}

/// `target/browser-screenshots`, next to the test's `target/tmp`.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("browser-screenshots")
}

/// `text` as an XPath 1.0 string literal (which has no escapes: a text with
/// both quote kinds becomes a `concat()`).
pub fn xpath_literal(text: &str) -> String {
    if !text.contains('\'') {
        format!("'{text}'")
    } else if !text.contains('"') {
        format!("\"{text}\"")
    } else {
        let parts: Vec<String> = text.split('\'').map(|part| format!("'{part}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

/// The ids of the processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}
