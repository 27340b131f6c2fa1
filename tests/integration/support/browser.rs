//! Headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`),
//! presenting a client certificate, for the console's tests.
//!
//! What makes the browser present the admin certificate without a dialog, per test and
//! without touching anything machine-wide:
//! - an NSS database at `$HOME/.pki/nssdb` (chromedriver and Chromium run with `HOME` set to
//!   a temporary directory), holding the admin PKCS#12 (`pk12util`) and the CA root,
//!   trusted for TLS servers (`certutil -A -t "C,,"`);
//! - in a fresh `--user-data-dir`, a `Default/Preferences` file with the content setting
//!   that the `AutoSelectCertificateForUrls` policy would set
//!   (`profile.content_settings.exceptions.auto_select_certificate`, pattern
//!   `https://127.0.0.1:PORT,*`, filter `{}`). Headless Chromium answers the CA's
//!   certificate request with it; without it, it sends no certificate at all. (The policy
//!   file under `/etc/chromium/policies/managed/` works too, but for every profile on the
//!   machine.)
//!
//! The WebDriver client is a few lines of HTTP/1.1 over a loopback socket.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use super::free_port;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The programs this needs, or `None` with a `SKIPPED` line (a failure when `CI=true`).
pub fn available(test: &str) -> bool {
    let missing: Vec<&str> = [
        CHROMIUM,
        CHROMEDRIVER,
        "/usr/bin/pk12util",
        "/usr/bin/certutil",
    ]
    .into_iter()
    .filter(|p| !Path::new(p).exists())
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: {missing:?} missing and CI=true: .ci/run installs chromium, chromium-driver \
         and libnss3-tools"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {missing:?} not installed (apt-get install chromium chromium-driver \
         libnss3-tools)"
    );
    false
}

/// A headless Chromium session with its own profile and NSS database. Ended when dropped.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _home: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium with `p12` (password `password`) imported, `root` trusted, and the
    /// certificate chosen by itself for `origin` (`https://127.0.0.1:PORT`).
    pub fn start(origin: &str, p12: &Path, password: &str, root: &Path) -> Self {
        let home = tempfile::tempdir().unwrap();
        let nssdb = home.path().join(".pki/nssdb");
        std::fs::create_dir_all(&nssdb).unwrap();
        let db = format!("sql:{}", nssdb.display());
        run("certutil", &["-N", "-d", &db, "--empty-password"]);
        run(
            "pk12util",
            &["-i", p12.to_str().unwrap(), "-d", &db, "-W", password],
        );
        run(
            "certutil",
            &[
                "-A",
                "-d",
                &db,
                "-n",
                "latchkey-root",
                "-t",
                "C,,",
                "-i",
                root.to_str().unwrap(),
            ],
        );
        let profile = home.path().join("profile");
        std::fs::create_dir_all(profile.join("Default")).unwrap();
        let preferences = json!({ "profile": { "content_settings": { "exceptions": {
            "auto_select_certificate": {
                format!("{origin},*"): { "setting": { "filters": [ {} ] } }
            }
        } } } });
        std::fs::write(profile.join("Default/Preferences"), preferences.to_string()).unwrap();

        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .env("HOME", home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        let ready = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(ready, "chromedriver did not listen on {port}");
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        } } });
        let mut browser = Self {
            driver,
            port,
            session: String::new(),
            _home: home,
        };
        let answer = browser.call("POST", "/session", Some(capabilities));
        browser.session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {answer}"))
            .to_owned();
        browser
    }

    /// Opens `url` and waits for the page to load.
    pub fn open(&self, url: &str) {
        self.command("POST", "url", json!({ "url": url }));
    }

    /// The page's address now.
    pub fn url(&self) -> String {
        self.command("GET", "url", Value::Null)
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The visible text of the whole page.
    pub fn text(&self) -> String {
        let body = self.find("body");
        self.element_text(&body)
    }

    /// The first element matching the CSS `selector`.
    pub fn find(&self, selector: &str) -> String {
        let found = self.command(
            "POST",
            "element",
            json!({ "using": "css selector", "value": selector }),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {selector}: {found}"))
            .to_owned()
    }

    /// The visible text of an element.
    pub fn element_text(&self, element: &str) -> String {
        self.command("GET", &format!("element/{element}/text"), Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Clicks the element matching `selector`, a link or a button that leads to another
    /// page, and waits (10 s at most) until that page has replaced this one and loaded.
    pub fn click(&self, selector: &str) {
        let element = self.find(selector);
        self.command("POST", &format!("element/{element}/click"), json!({}));
        let path = format!("/session/{}/element/{element}/name", self.session);
        let left = (0..100).any(|_| {
            let answer = self.exchange("GET", &path, None);
            if answer["value"]["error"].as_str() == Some("stale element reference") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
            false
        });
        assert!(left, "clicking {selector} led nowhere");
        let loaded = (0..100).any(|_| {
            let state = self.command(
                "POST",
                "execute/sync",
                json!({ "script": "return document.readyState", "args": [] }),
            );
            if state == "complete" {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
            false
        });
        assert!(loaded, "the page after {selector} did not load");
    }

    /// Replaces the value of the field matching `selector` with `text`.
    pub fn fill(&self, selector: &str, text: &str) {
        let element = self.find(selector);
        self.command("POST", &format!("element/{element}/clear"), json!({}));
        self.command(
            "POST",
            &format!("element/{element}/value"),
            json!({ "text": text }),
        );
    }

    /// Chooses the option `value` of the `<select>` matching `selector`.
    pub fn choose(&self, selector: &str, value: &str) {
        let option = self.find(&format!("{selector} option[value='{value}']"));
        self.command("POST", &format!("element/{option}/click"), json!({}));
    }

    /// Saves a PNG of the window to `dir/<name>.png`.
    pub fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let shot = self.command("GET", "screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let body = (method == "POST").then_some(body);
        let answer = self.call(method, &format!("/session/{}/{path}", self.session), body);
        answer["value"].clone()
    }

    /// One WebDriver request; a WebDriver error fails the test with its message.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let value = self.exchange(method, path, body);
        if let Some(error) = value["value"]["error"].as_str() {
            panic!(
                "WebDriver {method} {path}: {error}: {}",
                value["value"]["message"]
            );
        }
        value
    }

    /// One WebDriver request and its answer, error or not.
    fn exchange(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .unwrap();
        // chromedriver keeps the connection open whatever the request says: read the head,
        // then exactly the body it announces.
        let mut answer = Vec::new();
        let mut buffer = [0u8; 8192];
        let (head, mut content) = loop {
            let n = stream.read(&mut buffer).unwrap();
            assert!(n > 0, "chromedriver closed the connection mid-answer");
            answer.extend_from_slice(&buffer[..n]);
            if let Some(split) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
                break (head, answer[split + 4..].to_vec());
            }
        };
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let chunked = head.contains("transfer-encoding: chunked");
        loop {
            let complete = match length {
                Some(length) => content.len() >= length,
                None if chunked => content.windows(5).any(|w| w == b"0\r\n\r\n"),
                None => false,
            };
            if complete {
                break;
            }
            let n = stream.read(&mut buffer).unwrap();
            if n == 0 {
                break;
            }
            content.extend_from_slice(&buffer[..n]);
        }
        if chunked {
            content = unchunk(&content);
        }
        serde_json::from_slice(&content)
            .unwrap_or_else(|e| panic!("WebDriver answered {e}: {head}"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.call("DELETE", &path, None)
            }));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn unchunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&body[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[end + 2..end + 2 + size]);
        body = &body[end + 2 + size + 2..];
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
