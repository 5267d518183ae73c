//! Shared test scaffolding: a real node on 127.0.0.1:0 over files in a temporary directory, an
//! HTTP client that never follows redirects, and small helpers to wait for events on disk.
#![allow(dead_code)]

pub mod process;
pub mod receiver;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clickstream::app::Node;
use clickstream::config::Config;

/// A running node and the directory its files live in.
pub struct TestNode {
    pub node: Node,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub admin: String,
}

impl TestNode {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Events written by the default file sink (`events/`), in file order.
    pub fn file_events(&self) -> Vec<serde_json::Value> {
        read_ndjson_dir(&self.path("events"))
    }

    /// Waits until the file sink holds at least `n` events.
    pub async fn wait_for_events(&self, n: usize) -> Vec<serde_json::Value> {
        wait_for(Duration::from_secs(15), || {
            let e = self.file_events();
            (e.len() >= n).then_some(e)
        })
        .await
        .unwrap_or_else(|| panic!("expected {n} events, have {}", self.file_events().len()))
    }

    /// Waits until the counter `name` (a full series, labels included) reaches `value`, and
    /// fails with the value it had when it does not within a few seconds.
    pub async fn wait_for_metric(&self, name: &str, value: u64) {
        let url = format!("{}/metrics", self.admin);
        wait_for_sample(&url, name, |now| now == value, Duration::from_secs(10)).await;
    }

    pub async fn metrics(&self) -> String {
        client()
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Starts a node serving `links_csv`, with `extra` TOML appended to a test configuration
/// (listeners on port 0, files in a temporary directory, short timers).
pub async fn start(links_csv: &str, extra: &str) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    start_in(dir, links_csv, extra).await
}

pub async fn start_in(dir: tempfile::TempDir, links_csv: &str, extra: &str) -> TestNode {
    if !links_csv.is_empty() {
        std::fs::write(dir.path().join("links.csv"), links_csv).unwrap();
    }
    let config = config_text(dir.path(), extra);
    let config = Config::from_toml_str(&config, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    let (node, _) = Node::start(config).await.unwrap_or_else(|e| panic!("{e}"));
    let base = format!("http://{}", node.addr);
    let admin = format!("http://{}", node.admin_addr);
    TestNode { node, dir, base, admin }
}

/// The test configuration: `extra` may add keys to `[server]` (it is placed right after it)
/// and any other section.
pub fn config_text(dir: &Path, extra: &str) -> String {
    let d = dir.display();
    let (server_extra, rest) = match extra.split_once("\n[") {
        Some((s, r)) => (s.to_string(), format!("[{r}")),
        None if extra.trim_start().starts_with('[') => (String::new(), extra.to_string()),
        None => (extra.to_string(), String::new()),
    };
    let has_sink = rest.contains("[[sink]]");
    let sink = if has_sink {
        String::new()
    } else {
        format!("[[sink]]\ntype = \"file\"\nname = \"events\"\ndir = \"{d}/events\"\nbatch_max_age = \"100ms\"\n")
    };
    let poll = if server_extra.contains("reload_poll_interval") {
        ""
    } else {
        "reload_poll_interval = \"100ms\"\n"
    };
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nlinks = \"{d}/links.csv\"\nspool_dir = \"{d}/spool\"\n{poll}shutdown_grace = \"5s\"\n{server_extra}\n[spool]\nflush_interval = \"20ms\"\n{rest}\n{sink}"
    )
}

/// An HTTP client that reports redirects instead of following them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub fn read_ndjson_dir(dir: &Path) -> Vec<serde_json::Value> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for line in text.lines().filter(|l| !l.is_empty()) {
            out.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}: {line}", f.display())));
        }
    }
    out
}

/// Polls `f` every 20 ms until it returns `Some`, or `limit` passes.
pub async fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends raw bytes on a new connection and returns everything the server answers until it
/// closes (or 5 s pass).
pub async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls the metrics page at `url` until the sample `name` passes `done`; fails with the value
/// it had after `limit`.
pub async fn wait_for_sample(url: &str, name: &str, done: impl Fn(u64) -> bool, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let text = client().get(url).send().await.unwrap().text().await.unwrap();
        let now = metric(&text, name);
        if done(now) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{name} is {now} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The value of a Prometheus sample line (`name{labels} value`), 0 when absent.
pub fn metric(text: &str, sample: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
