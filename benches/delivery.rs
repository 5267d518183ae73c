//! End-to-end delivery figures with a local webhook receiver (a real HTTP server in this
//! process), through the real server and spool:
//!
//! 1. click-to-receipt latency: clicks at a steady rate, each event's receipt time minus its
//!    `timestamp` (same clock), p50 / p99 / max;
//! 2. delivery throughput: N clicks spooled while the receiver is down, then the receiver comes
//!    up and the time to deliver all of them gives events per second.
//!
//! Run: `cargo bench --bench delivery` (env `CLICKS` = N for step 2, default 100000;
//! `RATE` = clicks/s for step 1, default 1000).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use clickstream::app::Node;
use clickstream::config::Config;

#[derive(Default)]
struct Received {
    events: usize,
    latencies_us: Vec<i64>,
    last: Option<Instant>,
}

async fn receiver(listener: tokio::net::TcpListener, state: Arc<Mutex<Received>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let state = state.clone();
                async move {
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let now = clickstream::enrich::event::unix_micros(SystemTime::now());
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let mut s = state.lock().unwrap();
                    for e in v["data"].as_array().into_iter().flatten() {
                        s.events += 1;
                        if let Some(t) = e["timestamp"].as_str().and_then(parse_ts) {
                            s.latencies_us.push(now - t);
                        }
                    }
                    s.last = Some(Instant::now());
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn parse_ts(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1000) as i64)
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn start_node(dir: &std::path::Path, hook: SocketAddr) -> Node {
    let mut csv = String::from("id,domain,slashtag,destination\n");
    for i in 0..1000 {
        csv.push_str(&format!(
            "l{i},brand.link,t{i},https://www.example.com/p/{i}?utm_source=bench\n"
        ));
    }
    std::fs::write(dir.join("links.csv"), csv).unwrap();
    let d = dir.display();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nlinks = \"{d}/links.csv\"\nspool_dir = \"{d}/spool\"\nclick_queue = 1000000\n\
         [[sink]]\ntype = \"webhook\"\nname = \"hook\"\nurl = \"http://{hook}/in\"\nkey = \"k\"\nretry_initial = \"50ms\"\nretry_max = \"200ms\"\n"
    );
    let config = Config::from_toml_str(&toml, "bench.toml").unwrap();
    Node::start(config).await.unwrap().0
}

const UAS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 9; SM-G960F Build/PPR1.180610.011; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/74.0.3729.157 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/227.0.0.43.158;]",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
];

/// One keep-alive connection sending clicks and reading the (bodiless) redirects.
struct Sender {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Sender {
    async fn connect(addr: SocketAddr) -> Sender {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Sender {
            stream,
            buf: vec![0; 4096],
        }
    }

    async fn click(&mut self, i: usize) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let req = format!(
            "GET /t{} HTTP/1.1\r\nHost: brand.link\r\nUser-Agent: {}\r\nReferer: https://www.google.com/\r\n\r\n",
            i % 1000,
            UAS[i % UAS.len()]
        );
        self.stream.write_all(req.as_bytes()).await.unwrap();
        let mut have = 0;
        loop {
            let n = self.stream.read(&mut self.buf[have..]).await.unwrap();
            assert!(n > 0, "server closed the connection");
            have += n;
            if self.buf[..have].windows(4).any(|w| w == b"\r\n\r\n") {
                assert!(self.buf.starts_with(b"HTTP/1.1 301"));
                return;
            }
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let rate: u64 = std::env::var("RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
        let clicks: usize = std::env::var("CLICKS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);

        // 1. Latency at a steady rate.
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hook = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(Received::default()));
        tokio::spawn(receiver(listener, state.clone()));
        let node = start_node(dir.path(), hook).await;
        let total = (rate * 5) as usize;
        // 16 paced senders, each on its own keep-alive connection.
        const SENDERS: usize = 16;
        let mut tasks = Vec::new();
        for w in 0..SENDERS {
            let addr = node.addr;
            tasks.push(tokio::spawn(async move {
                let mut sender = Sender::connect(addr).await;
                let period = Duration::from_micros(1_000_000 * SENDERS as u64 / rate);
                let mut tick = tokio::time::interval(period);
                for i in (w..total).step_by(SENDERS) {
                    tick.tick().await;
                    sender.click(i).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while state.lock().unwrap().events < total && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut lat = std::mem::take(&mut state.lock().unwrap().latencies_us);
        lat.sort_unstable();
        println!(
            "click-to-receipt at {rate} clicks/s for 5 s ({} events): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            lat.len(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0)
        );
        node.shutdown().await;

        // 2. Throughput: spool N clicks with the receiver down, then bring it up.
        let dir = tempfile::tempdir().unwrap();
        let hook = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let node = start_node(dir.path(), hook).await;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..32 {
            let addr = node.addr;
            tasks.push(tokio::spawn(async move {
                let mut sender = Sender::connect(addr).await;
                for i in (w..clicks).step_by(32) {
                    sender.click(i).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let sent = started.elapsed();
        while node.spool.durable_seq() < clicks as u64 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let state = Arc::new(Mutex::new(Received::default()));
        let listener = loop {
            match tokio::net::TcpListener::bind(hook).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let up = Instant::now();
        tokio::spawn(receiver(listener, state.clone()));
        let deadline = Instant::now() + Duration::from_secs(300);
        while state.lock().unwrap().events < clicks && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (events, last) = {
            let s = state.lock().unwrap();
            (s.events, s.last)
        };
        let took = last.unwrap_or_else(Instant::now) - up;
        println!(
            "redirects: {clicks} clicks from 32 connections in {:.2} s ({:.0}/s, load generator in the same process)",
            sent.as_secs_f64(),
            clicks as f64 / sent.as_secs_f64()
        );
        println!(
            "delivery: {} spooled events delivered in {:.2} s after the receiver came up: {:.0} events/s (batches of 500)",
            events,
            took.as_secs_f64(),
            events as f64 / took.as_secs_f64()
        );
        node.shutdown().await;
    });
}
