//! A headless Chromium driven over W3C WebDriver, for the console's browser test: starts
//! Debian's `chromedriver` (installed by `scripts/ensure-chromium.sh`) on a free port and speaks
//! the protocol's JSON over HTTP with reqwest: the handful of commands a test needs (open a
//! page, find, type, click, read text and attributes, take a screenshot), nothing more.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    client: reqwest::Client,
}

/// An element on the current page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port()
}

impl Browser {
    /// Whether `chromedriver` and `chromium` are installed (the test says so and fails if not).
    pub fn available() -> bool {
        let found = |bin: &str| Command::new(bin).arg("--version").output().is_ok_and(|o| o.status.success());
        found("chromedriver") && found("chromium")
    }

    /// Starts chromedriver and one headless Chromium session.
    pub async fn start() -> anyhow::Result<Browser> {
        let port = free_port();
        // Its own process group, so the browsers it starts are stopped with it even when a
        // failing test never reaches `close` (see `Drop`).
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver (scripts/ensure-chromium.sh installs it)")?;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser { driver, base, client };
        let ready = format!("{}/status", browser.base);
        crate::wait::until(Duration::from_secs(30), "chromedriver answers", || {
            let (client, url) = (browser.client.clone(), ready.clone());
            async move { client.get(&url).send().await.is_ok() }
        })
        .await;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"]
            }
        }}});
        let session = browser.post_raw("/session", capabilities).await?;
        let id = session["sessionId"].as_str().context("no session id")?.to_owned();
        browser.base = format!("{}/session/{id}", browser.base);
        Ok(browser)
    }

    async fn post_raw(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let answer: Value = self.client.post(format!("{}{path}", self.base)).json(&body).send().await?.json().await?;
        if let Some(error) = answer["value"]["error"].as_str() {
            bail!("webdriver {path}: {error}: {}", answer["value"]["message"]);
        }
        Ok(answer["value"].clone())
    }

    async fn get_raw(&self, path: &str) -> anyhow::Result<Value> {
        let answer: Value = self.client.get(format!("{}{path}", self.base)).send().await?.json().await?;
        if let Some(error) = answer["value"]["error"].as_str() {
            bail!("webdriver {path}: {error}: {}", answer["value"]["message"]);
        }
        Ok(answer["value"].clone())
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.post_raw("/url", json!({"url": url})).await.map(|_| ())
    }

    pub async fn current_url(&self) -> anyhow::Result<String> {
        Ok(self.get_raw("/url").await?.as_str().unwrap_or_default().to_owned())
    }

    /// The page's HTML as the browser holds it (after parsing: escaped text stays escaped).
    pub async fn source(&self) -> anyhow::Result<String> {
        Ok(self.get_raw("/source").await?.as_str().unwrap_or_default().to_owned())
    }

    pub async fn find(&self, css: &str) -> anyhow::Result<Element<'_>> {
        let found = self.post_raw("/element", json!({"using": "css selector", "value": css})).await?;
        let id = found[ELEMENT].as_str().with_context(|| format!("no element {css}"))?.to_owned();
        Ok(Element { browser: self, id })
    }

    /// The element once it is there (a page is still loading after a click), within `timeout`.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> anyhow::Result<Element<'_>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.find(css).await {
                Ok(e) => return Ok(e),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Waits until the element's text is `expected` (the page after a click replaced the old
    /// one); `Err` with the last text seen after `timeout`.
    pub async fn wait_for_text(&self, css: &str, expected: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            // A stale element (the page changed between find and read) is just another try.
            if let Ok(e) = self.find(css).await {
                if let Ok(text) = e.text().await {
                    if text == expected {
                        return Ok(());
                    }
                    last = text;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{css} still reads {last:?}, not {expected:?}")
    }

    pub async fn find_all(&self, css: &str) -> anyhow::Result<Vec<Element<'_>>> {
        let found = self.post_raw("/elements", json!({"using": "css selector", "value": css})).await?;
        Ok(found
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str())
                    .map(|id| Element { browser: self, id: id.to_owned() })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Whether the page's script-created global `name` exists (an injected script would set it).
    pub async fn script_global_set(&self, name: &str) -> anyhow::Result<bool> {
        let v = self
            .post_raw(
                "/execute/sync",
                json!({"script": format!("return typeof window.{name} !== 'undefined';"), "args": []}),
            )
            .await?;
        Ok(v.as_bool().unwrap_or(false))
    }

    /// Scrolls the first element matching `css` to the top of the viewport (for a screenshot).
    pub async fn scroll_to(&self, css: &str) -> anyhow::Result<()> {
        let script = "document.querySelector(arguments[0]).scrollIntoView();";
        self.post_raw("/execute/sync", json!({"script": script, "args": [css]})).await.map(|_| ())
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        use base64::Engine as _;
        let b64 = self.get_raw("/screenshot").await?;
        Ok(base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap_or_default())?)
    }

    /// With `CONSOLE_SCREENSHOTS_DIR` set, saves a PNG of the viewport there as `<name>.png`
    /// (the README's screenshots); a relative directory is taken from the workspace root, not
    /// from the test's own directory, so `CONSOLE_SCREENSHOTS_DIR=docs/screenshots` means that.
    pub async fn save_screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("CONSOLE_SCREENSHOTS_DIR") else { return };
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
        let png = self.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
    }

    /// Ends the session; dropping then stops chromedriver and its browsers.
    pub async fn close(self) {
        let _ = self.client.delete(&self.base).send().await;
    }
}

impl Element<'_> {
    pub async fn text(&self) -> anyhow::Result<String> {
        Ok(self.browser.get_raw(&format!("/element/{}/text", self.id)).await?.as_str().unwrap_or_default().to_owned())
    }

    /// An attribute as written in the page (`data-count`, say); `None` when it has none.
    pub async fn attribute(&self, name: &str) -> anyhow::Result<Option<String>> {
        let v = self.browser.get_raw(&format!("/element/{}/attribute/{name}", self.id)).await?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// A DOM property (`textContent` reads what `text` does not: an SVG `<title>`, a closed
    /// `<details>`).
    pub async fn property(&self, name: &str) -> anyhow::Result<String> {
        let v = self.browser.get_raw(&format!("/element/{}/property/{name}", self.id)).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    pub async fn click(&self) -> anyhow::Result<()> {
        self.browser.post_raw(&format!("/element/{}/click", self.id), json!({})).await.map(|_| ())
    }

    pub async fn clear(&self) -> anyhow::Result<()> {
        self.browser.post_raw(&format!("/element/{}/clear", self.id), json!({})).await.map(|_| ())
    }

    pub async fn send_keys(&self, text: &str) -> anyhow::Result<()> {
        self.browser.post_raw(&format!("/element/{}/value", self.id), json!({"text": text})).await.map(|_| ())
    }

    /// The first descendant matching `css`.
    pub async fn find(&self, css: &str) -> anyhow::Result<Element<'_>> {
        let path = format!("/element/{}/element", self.id);
        let found = self.browser.post_raw(&path, json!({"using": "css selector", "value": css})).await?;
        let id = found[ELEMENT].as_str().with_context(|| format!("no element {css}"))?.to_owned();
        Ok(Element { browser: self.browser, id })
    }
}

impl Drop for Browser {
    /// Stops chromedriver's whole group (it and the Chromium it started), by its id.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
