//! A real browser for the dashboard tests: headless Chromium (Debian's `chromium`) driven by
//! `chromedriver` over the W3C WebDriver protocol, spoken directly with the test's HTTP
//! client. Both are installed with apt-get when missing (`packages.rs`).

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::net::free_port;
use super::packages::ensure_packages;
use super::wait::{wait_for, WAIT};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Installs Chromium and its driver unless both are there; panics with the reason if not.
fn ensure_installed() {
    ensure_packages(
        "the dashboard test",
        &["chromium", "chromium-driver"],
        || Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
    );
}

/// One browser session; dropping it ends the session and the driver.
pub struct Browser {
    driver: Child,
    url: String,
    session: String,
    http: reqwest::blocking::Client,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium with a fresh
    /// profile that reaches out to nothing on its own.
    pub fn start() -> Browser {
        ensure_installed();
        let profile = tempfile::Builder::new()
            .prefix("helix-ui-browser-")
            .tempdir()
            .expect("tempdir");
        let port = free_port(Ipv4Addr::LOCALHOST);
        let log = File::create(profile.path().join("chromedriver.log")).expect("driver log");
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let url = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            driver,
            url,
            session: String::new(),
            http,
            profile,
        };
        wait_for(WAIT, "chromedriver answers /status", || {
            let status = browser.call("GET", "/status", None)?;
            match status["ready"].as_bool() {
                Some(true) => Ok(()),
                _ => Err(status.to_string()),
            }
        });
        let user_data = browser.profile.path().join("profile");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
            &format!("--user-data-dir={}", user_data.display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let session = browser
            .call("POST", "/session", Some(capabilities))
            .unwrap_or_else(|e| panic!("start a Chromium session: {e}"));
        browser.session = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {session}"))
            .to_string();
        browser
    }

    /// One WebDriver command; the `value` of its answer, or the driver's error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .and_then(|r| r.json())
            .map_err(|e| format!("{path}: {e}"))?;
        let value = answer["value"].clone();
        match value.get("error") {
            Some(error) => Err(format!("{path}: {error}: {}", value["message"])),
            None => Ok(value),
        }
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })))
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The element `css` selects, or why not (not there yet).
    fn find(&self, css: &str) -> Result<String, String> {
        let found = self.session_call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        found[ELEMENT]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no element reference in {found}"))
    }

    fn on_element(
        &self,
        css: &str,
        method: &str,
        what: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let id = self.find(css)?;
        self.session_call(method, &format!("/element/{id}{what}"), body)
    }

    /// The rendered text of `css` (empty when hidden), or why not.
    pub fn try_text(&self, css: &str) -> Result<String, String> {
        self.on_element(css, "GET", "/text", None)
            .map(|v| v.as_str().unwrap_or_default().to_string())
    }

    /// Waits until `css` shows text for which `pred` holds; returns that text.
    pub fn wait_text(&self, css: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
        wait_for(WAIT, &format!("the page shows {what} ({css})"), || {
            let text = self.try_text(css)?;
            if pred(&text) {
                Ok(text)
            } else {
                Err(format!("text {text:?}"))
            }
        })
    }

    /// Waits until `css` shows `needle` somewhere in its text.
    pub fn wait_contains(&self, css: &str, needle: &str) -> String {
        self.wait_text(css, &format!("{needle:?}"), |t| t.contains(needle))
    }

    /// Waits until nothing matches `css`.
    pub fn wait_gone(&self, css: &str) {
        wait_for(WAIT, &format!("{css} is gone"), || match self.find(css) {
            Err(e) if e.contains("no such element") => Ok(()),
            Err(e) => Err(e),
            Ok(_) => Err("still there".into()),
        })
    }

    /// Clicks `css` as soon as it is there and clickable (a redraw may replace it meanwhile).
    pub fn click(&self, css: &str) {
        wait_for(WAIT, &format!("click {css}"), || {
            self.on_element(css, "POST", "/click", Some(json!({})))
        });
    }

    /// Replaces the text of the input `css` with `text`.
    pub fn type_into(&self, css: &str, text: &str) {
        wait_for(WAIT, &format!("type into {css}"), || {
            self.on_element(css, "POST", "/clear", Some(json!({})))?;
            self.on_element(css, "POST", "/value", Some(json!({ "text": text })))
        });
    }

    /// Picks the option with value `value` of the select `css`.
    pub fn select(&self, css: &str, value: &str) {
        self.click(&format!("{css} option[value=\"{value}\"]"));
    }

    /// Runs `script` in the page (a function body) and returns what it returns.
    pub fn eval(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .unwrap_or_else(|e| panic!("run {script:?}: {e}"))
    }

    /// The page's markup as it is now (the DOM, with what scripts added).
    pub fn source(&self) -> String {
        self.session_call("GET", "/source", None)
            .unwrap_or_else(|e| panic!("page source: {e}"))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Accepts the confirmation dialog the page opened, once it is open.
    pub fn accept_dialog(&self) {
        wait_for(WAIT, "a confirmation dialog to accept", || {
            self.session_call("POST", "/alert/accept", Some(json!({})))
        });
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
