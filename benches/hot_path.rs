//! Micro-benchmarks of the per-request and per-click work:
//!
//! - `lookup/<n>`: host + slashtag lookup in a table of 1k, 100k and 1M links;
//! - `handle/redirect`: `Router::handle` for a hit, response and click hand-off included;
//! - `handle/plain_http1_parse_route_write`: the plain listener's work for one request: parse
//!   the head with `httparse`, route, hand off, write the response bytes;
//! - `enrich/cached_ua` and `enrich/cold_ua`: building one click event (UA cache hit / miss);
//! - `encode/json`: serializing one event;
//! - `metrics/*`: what counting a redirect and a latency observation cost;
//! - `spool/append`: appending one encoded event to the spool (buffered; synced every 100,000);
//! - `geo/lookup`: one country lookup in the embedded database, round-robin over 1,024 public
//!   addresses (7 in 8 IPv4, the rest IPv6 in 2000::/4), the same every run;
//! - `geo/load_embedded`: loading and checking the embedded database, as the server does at start.
//!
//! Run: `cargo bench --bench hot_path` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, StatusCode};

use clickstream::click::{ClickQueue, Hit, HitHeaders};
use clickstream::config::Config;
use clickstream::edge::redirect::{Head, Headers, Outcome, Router};
use clickstream::enrich::geo::GeoDb;
use clickstream::enrich::session::SessionTracker;
use clickstream::enrich::{EnrichLists, Enricher};
use clickstream::links::LinkTable;
use clickstream::metrics::Metrics;
use clickstream::spool::{RecordMeta, Spool};

const CHROME: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

fn table(n: usize) -> LinkTable {
    let mut csv = String::from("id,domain,slashtag,destination,workspace_id\n");
    for i in 0..n {
        let domain = ["brand.link", "go.northwind.shop", "rbl.ink"][i % 3];
        csv.push_str(&format!(
            "{i:032x},{domain},tag-{i:x},https://www.example.com/p/{i}?utm_source=bench&utm_medium=email,w{}\n",
            i % 50
        ));
    }
    let c = Config::embedded_default();
    LinkTable::from_csv(&csv, &c.server, &c.domains).unwrap()
}

fn lookups(c: &mut Criterion) {
    for n in [1_000usize, 100_000, 1_000_000] {
        let t = table(n);
        let keys: Vec<(String, &str)> = (0..1024)
            .map(|i| {
                let i = (i * 7919) % n;
                (
                    format!("tag-{i:x}"),
                    ["brand.link", "go.northwind.shop", "rbl.ink"][i % 3],
                )
            })
            .collect();
        let mut k = 0;
        c.bench_function(&format!("lookup/{n}"), |b| {
            b.iter(|| {
                let (tag, host) = &keys[k & 1023];
                k += 1;
                black_box(t.domain_for_host(host).and_then(|d| d.lookup(tag)).is_some())
            })
        });
    }
}

fn handle(c: &mut Criterion) {
    let metrics = Arc::new(Metrics::default());
    let (queue, rx) = ClickQueue::bounded(1 << 16, metrics.clone());
    // A consumer keeps the queue from filling up, as the pipeline thread does.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    let router = Router::new(Arc::new(ArcSwap::from_pointee(table(100_000))), queue, metrics);
    let req = Request::get("/tag-1f")
        .header("host", "brand.link")
        .header("user-agent", CHROME)
        .header("accept-language", "en-US,en;q=0.9")
        .header("referer", "https://www.google.com/")
        .body(())
        .unwrap();
    let peer = "127.0.0.1".parse().unwrap();
    c.bench_function("handle/redirect", |b| {
        b.iter(|| black_box(router.handle(&req, peer, false).status()))
    });
    let with_query = Request::get("/tag-1f?utm_source=override&x=1")
        .header("host", "brand.link")
        .body(())
        .unwrap();
    c.bench_function("handle/redirect_with_query", |b| {
        b.iter(|| black_box(router.handle(&with_query, peer, false).status()))
    });
    // The plain listener's path: parse the head, route, hand off, write the response bytes.
    let raw = format!(
        "GET /tag-1f HTTP/1.1\r\nHost: brand.link\r\nUser-Agent: {CHROME}\r\n\
         Accept-Language: en-US,en;q=0.9\r\nReferer: https://www.google.com/\r\n\r\n"
    );
    let mut out = Vec::with_capacity(1024);
    c.bench_function("handle/plain_http1_parse_route_write", |b| {
        b.iter(|| {
            let mut fields = [httparse::EMPTY_HEADER; 16];
            let mut req = httparse::Request::new(&mut fields);
            req.parse(raw.as_bytes()).unwrap();
            let head = Head {
                method: req.method.unwrap().as_bytes(),
                target_host: None,
                path: req.path.unwrap(),
                query: None,
                headers: Headers::List(req.headers),
                time: std::time::SystemTime::now(),
            };
            out.clear();
            router.answer(&head, peer, false, |answer| {
                clickstream::edge::h1::write_answer(&mut out, answer, clickstream::edge::h1::Form::KEEP, head.time)
            });
            black_box(out.len())
        })
    });
}

fn enricher() -> Enricher {
    let c = Config::embedded_default();
    Enricher::new(
        Arc::new(ArcSwap::from_pointee(EnrichLists::load(&c.server).unwrap())),
        Arc::new(GeoDb::embedded()),
        Default::default(),
        Arc::new(SessionTracker::new(c.session.idle_timeout, c.session.max_entries)),
        Arc::new(Metrics::default()),
    )
}

fn hit(t: &LinkTable, ua: &str, peer: &str) -> Hit {
    let link = t
        .domain_for_host("brand.link")
        .unwrap()
        .lookup("tag-0")
        .unwrap()
        .clone();
    let mut headers = http::HeaderMap::new();
    headers.insert("user-agent", ua.parse().unwrap());
    headers.insert("accept-language", "pt-BR,pt;q=0.9".parse().unwrap());
    headers.insert("referer", "http://m.facebook.com/".parse().unwrap());
    Hit {
        time: SystemTime::now(),
        link,
        merged_location: None,
        peer: peer.parse().unwrap(),
        head: false,
        headers: HitHeaders::from_map(&headers),
    }
}

fn enrich(c: &mut Criterion) {
    let t = table(1_000);
    let mut e = enricher();
    let cached = hit(&t, CHROME, "200.147.67.142");
    c.bench_function("enrich/cached_ua", |b| b.iter(|| black_box(e.enrich(&cached))));
    // A distinct user agent per iteration: always a cache miss.
    let uas: Vec<String> = (0..4096).map(|i| format!("{CHROME} Bench/{i}")).collect();
    let hits: Vec<Hit> = uas.iter().map(|ua| hit(&t, ua, "200.147.67.142")).collect();
    let mut e = enricher();
    let mut i = 0usize;
    c.bench_function("enrich/cold_ua", |b| {
        b.iter(|| {
            i += 1;
            if i.is_multiple_of(4096) {
                e = enricher(); // start cold again
            }
            black_box(e.enrich(&hits[i % 4096]))
        })
    });
    let event = enricher().enrich(&cached);
    let mut buf = Vec::with_capacity(2048);
    c.bench_function("encode/json", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&event).write_json(&mut buf);
            black_box(buf.len())
        })
    });
}

fn spool(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (_spool, mut w) = Spool::open(dir.path(), 8 << 20, Vec::new()).unwrap();
    let mut json = Vec::new();
    enricher()
        .enrich(&hit(&table(10), CHROME, "200.147.67.142"))
        .write_json(&mut json);
    let meta = RecordMeta {
        time_micros: 1_700_000_000_000_000,
        bot: false,
        workspace: "w1",
        domain: "brand.link",
    };
    let mut n = 0u64;
    c.bench_function("spool/append", |b| {
        b.iter(|| {
            n += 1;
            w.append(meta, &json).unwrap();
            if n.is_multiple_of(100_000) {
                w.flush().unwrap();
            }
        })
    });
}

/// `n` public addresses spread over the address space: 7 in 8 IPv4 (no private, shared,
/// loopback, link-local, documentation, benchmarking, multicast or reserved block), the rest
/// IPv6 from the global unicast 2000::/4 (no documentation block). Fixed seed: the same every run.
fn public_addresses(n: usize) -> Vec<IpAddr> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let ip = if out.len() % 8 == 7 {
            let bits = (0x2000u128 << 112) | ((u128::from(next()) << 64) >> 4) | u128::from(next());
            let v6 = Ipv6Addr::from(bits);
            if v6.segments()[..2] == [0x2001, 0xdb8] || v6.segments()[0] == 0x3fff {
                continue;
            }
            IpAddr::V6(v6)
        } else {
            let v4 = Ipv4Addr::from(next() as u32);
            let [a, b, c, _] = v4.octets();
            let special = matches!(a, 0 | 10 | 127 | 224..)
                || (a == 100 && (64..128).contains(&b))
                || (a == 169 && b == 254)
                || (a == 172 && (16..32).contains(&b))
                || (a == 192 && b == 168)
                || (a == 192 && b == 0 && (c == 0 || c == 2))
                || (a == 198 && (b == 18 || b == 19))
                || (a == 198 && b == 51 && c == 100)
                || (a == 203 && b == 0 && c == 113);
            if special {
                continue;
            }
            IpAddr::V4(v4)
        };
        out.push(ip);
    }
    out
}

fn geo(c: &mut Criterion) {
    let db = GeoDb::embedded();
    let addresses = public_addresses(1024);
    let mut i = 0usize;
    c.bench_function("geo/lookup", |b| {
        b.iter(|| {
            i += 1;
            black_box(db.country(black_box(addresses[i & 1023])))
        })
    });
    let mut group = c.benchmark_group("geo");
    group.sample_size(10);
    group.bench_function("load_embedded", |b| b.iter(|| black_box(GeoDb::embedded())));
    group.finish();
}

/// Not a timing: the resident memory one tracked session costs, printed once.
fn session_memory(_: &mut Criterion) {
    fn rss_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u64>().ok())
            .unwrap_or(0)
            * 4096
    }
    const N: u64 = 1_000_000;
    let before = rss_bytes();
    let t = SessionTracker::new(std::time::Duration::from_secs(1800), N as usize);
    for k in 0..N {
        t.touch(k.wrapping_mul(0x9E37_79B9_7F4A_7C15), 1_700_000_000_000_000, || None);
    }
    let after = rss_bytes();
    println!(
        "sessions/memory: {} bytes per session ({N} sessions)",
        (after - before) / N
    );
    black_box(&t);
}

/// What the metrics add per request: the counters `Router::handle` bumps are inside
/// `handle/redirect`; the latency histogram costs one clock read and one bucket increment.
fn metrics_cost(c: &mut Criterion) {
    let m = Metrics::default();
    let since = std::time::Instant::now();
    c.bench_function("metrics/latency_observe", |b| {
        b.iter(|| m.request_latency.observe(black_box(since).elapsed()))
    });
    c.bench_function("metrics/redirect_count", |b| {
        b.iter(|| m.record_outcome(black_box(Outcome::Click), black_box(StatusCode::MOVED_PERMANENTLY)))
    });
}

criterion_group!(
    benches,
    session_memory,
    lookups,
    handle,
    metrics_cost,
    enrich,
    spool,
    geo
);
criterion_main!(benches);
