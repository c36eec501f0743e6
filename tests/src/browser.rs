//! A real headless Chromium (Debian's chromium and chromium-driver), driven
//! over the W3C WebDriver protocol: the pages are loaded, filled in and
//! clicked as a person would, and photographed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{free_port, wait_for};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    port: u16,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// One HTTP exchange with chromedriver: (status, JSON body).
fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to chromedriver");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(payload.as_bytes()).unwrap();
    // chromedriver may keep the connection open: read the head, then
    // exactly Content-Length bytes.
    let mut response = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).expect("read from chromedriver");
        assert!(n > 0, "chromedriver closed the connection");
        response.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&response[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while response.len() < head_end + length {
        let n = stream.read(&mut chunk).expect("read from chromedriver");
        assert!(n > 0, "chromedriver closed the connection");
        response.extend_from_slice(&chunk[..n]);
    }
    let body = &response[head_end..head_end + length];
    (status, serde_json::from_slice(body).unwrap_or(Value::Null))
}

impl Browser {
    /// chromedriver on a free port and a fresh Chromium profile, headless.
    pub fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) must be installed");
        wait_for("chromedriver to listen", || {
            TcpStream::connect(("127.0.0.1", port)).ok()?;
            let (status, _) = request(port, "GET", "/status", None);
            (status == 200).then_some(())
        });
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,1000".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "acceptInsecureCerts": true,
                "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
            }}
        });
        let (status, reply) = request(port, "POST", "/session", Some(&capabilities));
        assert_eq!(status, 200, "new WebDriver session: {reply}");
        let session = reply["value"]["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        Browser {
            port,
            session,
            driver,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let (status, reply) = request(self.port, method, &path, body.as_ref());
        assert_eq!(status, 200, "{method} {path}: {reply}");
        reply["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.call("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Every cookie the browser holds for the page, HttpOnly ones too.
    pub fn cookies(&self) -> Value {
        self.call("GET", "/cookie", None)
    }

    pub fn source(&self) -> String {
        self.call("GET", "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn element(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css} in {}:\n{}", self.url(), self.source()))
            .to_string()
    }

    pub fn exists(&self, css: &str) -> bool {
        let path = format!("/session/{}/elements", self.session);
        let (_, reply) = request(
            self.port,
            "POST",
            &path,
            Some(&json!({"using": "css selector", "value": css})),
        );
        reply["value"].as_array().is_some_and(|a| !a.is_empty())
    }

    /// Waits until the page has an element (after a click that navigates).
    pub fn wait_for(&self, css: &str) {
        wait_for(&format!("an element {css} in the page"), || {
            self.exists(css).then_some(())
        });
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// The element's text, or None when the page (perhaps still loading)
    /// has no such element.
    pub fn try_text(&self, css: &str) -> Option<String> {
        let base = format!("/session/{}", self.session);
        let find = json!({"using": "css selector", "value": css});
        let (status, found) = request(self.port, "POST", &format!("{base}/element"), Some(&find));
        let id = found["value"][ELEMENT].as_str().filter(|_| status == 200)?;
        let (status, text) = request(self.port, "GET", &format!("{base}/element/{id}/text"), None);
        (status == 200).then(|| text["value"].as_str().unwrap_or_default().to_string())
    }

    /// Waits until an element shows a text (the page after a click).
    pub fn wait_for_text(&self, css: &str, expected: impl Fn(&str) -> bool) -> String {
        wait_for(&format!("the expected text in {css}"), || {
            self.try_text(css).filter(|t| expected(t))
        })
    }

    pub fn text(&self, css: &str) -> String {
        let id = self.element(css);
        self.call("GET", &format!("/element/{id}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs a script in the page (the test's own doing: the pages have none).
    pub fn script(&self, code: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": code, "args": []})),
        )
    }

    /// A PNG of the window, written to `path`.
    pub fn screenshot(&self, path: &Path) {
        let encoded = self.call("GET", "/screenshot", None);
        let png = base64_decode(encoded.as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = request(self.port, "DELETE", &path, None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter_map(value) {
        buffer = (buffer << 6) | u32::from(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}
