//! A small W3C WebDriver client (JSON over HTTP/1.1 to chromedriver on loopback) driving
//! Debian's headless Chromium: sessions, navigation, elements, script, screenshots. Chromium
//! runs with the flags this machine needs (no sandbox as root, no background networking) and
//! a fresh profile; both processes end with the test.

use crate::harness::*;
use serde_json::{Value as Json, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Where each test writes its screenshots: `target/screenshots/<name>.png`.
pub fn screenshots() -> PathBuf {
    let dir = std::path::Path::new(ROOT).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct Browser {
    _driver: Peer,
    port: u16,
    session: String,
    _profile: TempDir,
}

/// An element's WebDriver reference.
pub struct El(String);

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn http(port: u16, method: &str, path: &str, body: Option<&Json>) -> Result<Json, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).map_err(|e| e.to_string())?;
    let mut len = None;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).map_err(|e| e.to_string())?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse::<usize>().ok();
        }
    }
    let mut text = Vec::new();
    match len {
        Some(n) => {
            text.resize(n, 0);
            r.read_exact(&mut text).map_err(|e| e.to_string())?;
        }
        None => {
            r.read_to_end(&mut text).map_err(|e| e.to_string())?;
        }
    }
    let j: Json = serde_json::from_slice(&text).map_err(|e| format!("{e}: {status}"))?;
    if !status.contains(" 200 ") {
        return Err(format!("{method} {path}: {status} {}", j["value"]));
    }
    Ok(j["value"].clone())
}

impl Browser {
    /// chromedriver on a free port and a new headless Chromium session, `width` × `height`,
    /// preferring `lang` for Accept-Language.
    pub fn start(tag: &str, width: u32, height: u32, lang: &str) -> Browser {
        let profile = TempDir::new(&format!("chrome-{tag}"));
        let port = free_port();
        let mut cmd = Command::new("timeout");
        cmd.args(["300", "chromedriver"])
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1");
        let driver = Peer::spawn("chromedriver", cmd, profile.join("chromedriver.log"));
        let deadline = Instant::now() + WAIT;
        while http(port, "GET", "/status", None).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.join("profile").display()),
                    format!("--lang={lang}"),
                ],
                "prefs": {"intl.accept_languages": lang},
            },
        }}});
        let mut caps = caps;
        if width < 500 {
            // A phone: its real width (a window cannot be that narrow).
            caps["capabilities"]["alwaysMatch"]["goog:chromeOptions"]["mobileEmulation"] = json!({
                "deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0, "mobile": true, "touch": true},
            });
        }
        let v = http(port, "POST", "/session", Some(&caps)).unwrap_or_else(|e| panic!("{e}"));
        Browser {
            _driver: driver,
            port,
            session: v["sessionId"].as_str().unwrap().to_string(),
            _profile: profile,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Json>) -> Json {
        let path = format!("/session/{}{path}", self.session);
        http(self.port, method, &path, body.as_ref()).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap().to_string()
    }

    pub fn find(&self, css: &str) -> El {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        El(v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {v}"))
            .to_string())
    }

    pub fn exists(&self, css: &str) -> bool {
        let v = self.cmd(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        !v.as_array().unwrap().is_empty()
    }

    pub fn click(&self, el: &El) {
        self.cmd("POST", &format!("/element/{}/click", el.0), Some(json!({})));
    }

    /// Clicks the button that submits a form and waits for the next page to have loaded (a
    /// click returns as soon as it is dispatched, before the navigation it starts).
    pub fn submit(&self, css: &str) {
        self.script("window.__heraldBefore = true;");
        self.click(&self.find(css));
        let deadline = Instant::now() + WAIT;
        while self.script("return !window.__heraldBefore && document.readyState === 'complete';")
            != true
        {
            assert!(
                Instant::now() < deadline,
                "{css}: no new page after {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn clear(&self, el: &El) {
        self.cmd("POST", &format!("/element/{}/clear", el.0), Some(json!({})));
    }

    pub fn type_into(&self, el: &El, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{}/value", el.0),
            Some(json!({ "text": text })),
        );
    }

    /// Replaces a text field's value.
    pub fn fill(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.clear(&el);
        if !text.is_empty() {
            self.type_into(&el, text);
        }
    }

    pub fn text(&self, css: &str) -> String {
        let el = self.find(css);
        self.cmd("GET", &format!("/element/{}/text", el.0), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn script(&self, js: &str) -> Json {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
    }

    pub fn script_async(&self, js: &str) -> Json {
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({"script": js, "args": []})),
        )
    }

    /// The page's whole text.
    pub fn page_text(&self) -> String {
        self.script("return document.body.innerText;")
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Waits until `f` (given the page's text) holds; returns the text.
    #[track_caller]
    pub fn wait_text(&self, what: &str, within: Duration, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let t = self.page_text();
            if f(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {what}; the page says:\n{t}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A screenshot of the whole page, written as `target/screenshots/<name>.png`: through
    /// the DevTools protocol (what Puppeteer's `fullPage` does), so a phone's page is
    /// photographed whole too and the window keeps its size.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let cdp = |cmd: &str, params: Json| {
            self.cmd(
                "POST",
                "/goog/cdp/execute",
                Some(json!({"cmd": cmd, "params": params})),
            )
        };
        let metrics = cdp("Page.getLayoutMetrics", json!({}));
        let size = &metrics["cssContentSize"];
        let (w, h) = (
            size["width"].as_f64().unwrap_or(1280.0).ceil(),
            size["height"].as_f64().unwrap_or(900.0).ceil().min(8000.0),
        );
        let shot = cdp(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}}),
        );
        let path = screenshots().join(format!("{name}.png"));
        std::fs::write(&path, base64_decode(shot["data"].as_str().unwrap())).unwrap();
        path
    }

    /// Runs axe-core (npm `axe-core`, installed by scripts/test-deps.sh) on the page; the
    /// violations, as "rule: what (where)" lines.
    pub fn axe(&self) -> Vec<String> {
        let axe = std::fs::read_to_string(
            std::path::Path::new(ROOT).join("tests/browser/node_modules/axe-core/axe.min.js"),
        )
        .expect("axe-core is installed by scripts/test-deps.sh");
        self.script(&axe);
        let got = self.script_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map(v =>\
               v.id + ': ' + v.help + ' (' + v.nodes.map(n => n.target.join(' ')).join(', ') + ')')))\
               .catch(e => done(['axe failed: ' + e]));",
        );
        got.as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let Some(v) = T.iter().position(|&t| t == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
