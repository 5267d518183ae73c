//! Resources an attacker would exhaust, measured on the real binary: memory under requests with
//! huge unique keys, and file descriptors under a low open-file limit (`prlimit`).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::Process;
use common::{client, metric};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LINKS: &str = "id,domain,slashtag,destination,workspace_id
l1,brand.link,a,https://shop.example.com/a?utm_source=x,w1
";

fn write_config(dir: &Path, server_extra: &str) -> PathBuf {
    std::fs::write(dir.join("links.csv"), LINKS).unwrap();
    let path = dir.join("clickstream.toml");
    std::fs::write(&path, common::config_text(dir, server_extra)).unwrap();
    path
}

/// `len` bytes: `head`, then `filler` repeated and cut.
fn padded(head: String, filler: &str, len: usize) -> String {
    let mut s = head;
    while s.len() < len {
        s.push_str(filler);
    }
    s.truncate(len);
    s
}

async fn click(c: &reqwest::Client, url: &str, query: String, agent: String, referrer: String) {
    let r = c
        .get(format!("{url}?{query}"))
        .header("host", "brand.link")
        .header("user-agent", agent)
        .header("referer", referrer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
}

/// 3,000 clicks, each with its own 7 KB query, 4 KB user agent and 4 KB referrer: what the
/// enrichment caches would keep of them (their keys come from the request) must not add up.
/// Kept, they were about 35 KB a click (the key, and the destination's or referrer's JSON made
/// from it): over 100 MB here.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unique_huge_queries_agents_and_referrers_add_under_100_mb() {
    const CLICKS: usize = 3_000;
    const WARM_UP: usize = 100;
    const TASKS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let p = Process::start(dir.path(), &config, &[]);
    let url = format!("http://{}/a", p.addr);
    let c = client();
    // Warm up: the runtimes', the allocator's and the sink's first pages.
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    for i in 0..WARM_UP {
        let (query, referrer) = (format!("utm_campaign=c{i}"), "https://www.google.com/".to_string());
        click(&c, &url, query, chrome.into(), referrer).await;
    }
    let durable = "clickstream_spool_durable_sequence";
    let delivered = "clickstream_sink_delivered_total{sink=\"events\"}";
    p.wait_for_metric(durable, WARM_UP as u64, Duration::from_secs(30))
        .await;
    p.wait_for_metric(delivered, WARM_UP as u64, Duration::from_secs(30))
        .await;
    let before = p.rss_bytes();

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (c, url) = (c.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            for i in (t..CLICKS).step_by(TASKS) {
                let query = padded(format!("click={i}&utm_source=ads"), &format!("&p{i}=v"), 7_000);
                let agent = padded(
                    format!("Mozilla/5.0 (X11; Linux x86_64; rv:{i}) "),
                    "Gecko/20100101 ",
                    4_000,
                );
                let referrer = padded(format!("https://news.example.com/{i}/"), "story/", 4_000);
                click(&c, &url, query, agent, referrer).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let all = (WARM_UP + CLICKS) as u64;
    p.wait_for_metric(durable, all, Duration::from_secs(60)).await;
    let durable_rss = p.rss_bytes();
    p.wait_for_metric(delivered, all, Duration::from_secs(60)).await;
    let after = p.rss_bytes();
    let mb = |b: u64| b as f64 / 1e6;
    eprintln!(
        "resident: {:.1} MB before, {:.1} MB once the spool held every event, {:.1} MB once delivered",
        mb(before),
        mb(durable_rss),
        mb(after)
    );
    for (when, rss) in [("once durable", durable_rss), ("once delivered", after)] {
        assert!(
            rss.saturating_sub(before) < 100_000_000,
            "{CLICKS} clicks with huge unique keys added {:.1} MB ({when}; {:.1} MB before)",
            mb(rss.saturating_sub(before)),
            mb(before)
        );
    }
}

/// `prlimit` (util-linux), which the descriptor tests run the binary under; `.ci/run` installs
/// it where it is missing. A missing `prlimit` fails these tests rather than skipping them.
fn prlimit(soft: u64, hard: u64) -> [String; 3] {
    let found = Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "these tests need prlimit (util-linux): apt-get install -y util-linux"
    );
    ["prlimit".into(), format!("--nofile={soft}:{hard}"), "--".into()]
}

/// The soft and hard `Max open files` of a process.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let mut values = line["Max open files".len()..].split_whitespace();
    (values.next().unwrap().to_string(), values.next().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "max_connections = 1000\n");
    let wrapper = prlimit(512, 4096);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let p = Process::start_under(&wrapper, dir.path(), &config);
    assert_eq!(open_file_limits(p.child.id()), ("4096".into(), "4096".into()));
    // 1,000 connections fit under 4,096 descriptors: max_connections is kept.
    assert_eq!(metric(&p.metrics().await, "clickstream_max_connections"), 1000);
}

/// Sends `request` on `stream` and reads one answer (its head, and a body of `Content-Length`).
async fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    return text;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s")
}

/// Under a hard limit of 256 descriptors and `max_connections = 10000`, the limit is lowered
/// (logged, and shown by `clickstream_max_connections`), and with more idle connections than
/// that open, an ACME challenge file is still served and a click still reaches its sink. With
/// 10,000 allowed, the connections took every descriptor: ACME answered 404, the sink could not
/// read the spool and the admin listener could not accept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_is_lowered_below_the_open_file_limit() {
    const CONNECTIONS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let acme = dir.path().join("acme");
    std::fs::create_dir(&acme).unwrap();
    std::fs::write(acme.join("tok3n"), "tok3n.account-key").unwrap();
    let extra = format!(
        "max_connections = 10000\nacme_challenge_dir = \"{}\"\nheader_read_timeout = \"60s\"\nidle_timeout = \"60s\"\n",
        acme.display()
    );
    let config = write_config(dir.path(), &extra);
    let wrapper = prlimit(256, 256);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let p = Process::start_under(&wrapper, dir.path(), &config);
    assert_eq!(open_file_limits(p.child.id()), ("256".into(), "256".into()));

    let effective = metric(&p.metrics().await, "clickstream_max_connections");
    assert!(
        effective > 0 && effective < 256,
        "clickstream_max_connections is {effective}"
    );
    let warned = p.logs.lock().unwrap().iter().any(|line| {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        v["level"] == "WARN" && v["fields"]["configured"] == 10000 && v["fields"]["effective"] == effective
    });
    assert!(
        warned,
        "no warning that max_connections was lowered: {:?}",
        p.logs.lock().unwrap()
    );

    // Two connections served first, then enough idle ones to pass the limit.
    let click = "GET /a HTTP/1.1\r\nHost: brand.link\r\nUser-Agent: Mozilla/5.0\r\n\r\n";
    let mut first = TcpStream::connect(p.addr).await.unwrap();
    let mut second = TcpStream::connect(p.addr).await.unwrap();
    for s in [&mut first, &mut second] {
        assert!(exchange(s, click).await.starts_with("HTTP/1.1 301"));
    }
    let mut idle = Vec::new();
    for _ in 0..CONNECTIONS {
        idle.push(TcpStream::connect(p.addr).await.unwrap());
    }
    // Until the server has taken all it will (the rest wait in the kernel's backlog).
    let mut last = (0, std::time::Instant::now());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let open = metric(&p.metrics().await, "clickstream_connections");
        if open >= effective || (open == last.0 && last.1.elapsed() > Duration::from_millis(500)) {
            break;
        }
        if open != last.0 {
            last = (open, std::time::Instant::now());
        }
        assert!(std::time::Instant::now() < deadline, "{open} connections open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&p.metrics().await, "clickstream_connections"), effective);

    let challenge = exchange(
        &mut first,
        "GET /.well-known/acme-challenge/tok3n HTTP/1.1\r\nHost: brand.link\r\n\r\n",
    )
    .await;
    assert!(challenge.starts_with("HTTP/1.1 200"), "{challenge}");
    assert!(challenge.ends_with("tok3n.account-key"), "{challenge}");
    assert!(exchange(&mut second, click).await.starts_with("HTTP/1.1 301"));
    p.wait_for_metric(
        "clickstream_sink_delivered_total{sink=\"events\"}",
        3,
        Duration::from_secs(20),
    )
    .await;
    drop(idle);
}
