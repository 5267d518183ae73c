//! The fixed-rate latency probe of `benches/compare.sh`: requests sent on an even schedule, each
//! timed from the instant it was due.
//!
//! ```text
//! cargo run --release --example compare-pace -- --addr 127.0.0.1:18080 --rate 30000 \
//!     --connections 64 --duration 10 --paths paths.txt --host brand.link -H 'User-Agent: ...'
//! ```
//!
//! Why not `oha -q`: oha releases its fixed-rate requests from a tokio timer, which fires on
//! whole milliseconds, so at 30,000 req/s it sends bursts of about 30 requests at once, and its
//! latency correction starts each clock when the burst is released. The burst's queue (in oha
//! and in the server) then dominates the percentiles of any server: measured with oha, nginx
//! answering `return 301` has a p99 of 1.7–1.9 ms at 32,000 req/s on a 2-core machine, and
//! 0.3 ms at 2,000 req/s. This probe follows wrk2's model instead: connection `k` of `C` sends its `j`-th
//! request at `start + (j·C + k) / rate`, so the requests of all connections are evenly spaced,
//! one blocking thread per connection sleeps until its next one is due, and a request's latency
//! runs from the instant it was due to the end of its answer. A late answer delays the
//! connection's next request, and that delay is counted in the next latency (no coordinated
//! omission); the probe's own wake-up lateness is counted too, so figures err on the high side.
//!
//! Each request is `GET <path>` with `Host` and the `-H` headers, the paths taken in turn from
//! `--paths` (one per line, each starting with `/`). A 3xx answer counts as ok, anything else
//! (another status, a closed connection, a timeout) as an error, after which the connection is
//! opened again. `--slow-log FILE` lists the requests slower than `--slow-us` (default 1000) as
//! `due latency` lines in microseconds from the start, to see when the slow ones happened.
//! Prints one JSON line:
//! `{"rate":R,"sent":N,"ok":N,"errors":E,"seconds":S,"p50_us":..,"p90_us":..,"p99_us":..,"p999_us":..,"max_us":..}`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::Parser;

/// Longest answer head the probe reads.
const MAX_HEAD: usize = 16 * 1024;
/// A request still unanswered after this long is an error.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Sends requests at a fixed rate, evenly spaced, and reports latency percentiles as JSON.
#[derive(Parser)]
struct Args {
    /// The server, e.g. 127.0.0.1:18080.
    #[arg(long)]
    addr: SocketAddr,
    /// Requests per second, over all connections.
    #[arg(long, value_parser = positive)]
    rate: f64,
    /// Connections, a thread each.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    connections: u16,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0, value_parser = positive)]
    duration: f64,
    /// File of request paths, one per line, each starting with `/`; taken in turn.
    #[arg(long)]
    paths: PathBuf,
    /// The `Host` header.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// One more header line, `Name: value` (repeatable).
    #[arg(short = 'H', value_parser = header_line)]
    headers: Vec<String>,
    /// Where to list the requests slower than --slow-us (`due latency`, in µs from the start).
    #[arg(long)]
    slow_log: Option<PathBuf>,
    /// See --slow-log.
    #[arg(long, default_value_t = 1000)]
    slow_us: u32,
}

/// The arguments, with the paths read.
struct Options {
    addr: SocketAddr,
    rate: f64,
    connections: usize,
    duration: Duration,
    paths: Vec<String>,
    host: String,
    headers: Vec<String>,
    slow_log: Option<PathBuf>,
    slow_us: u32,
}

/// What one connection's thread saw.
#[derive(Default)]
struct Tally {
    /// Latency of every answered request, in microseconds.
    latencies: Vec<u32>,
    sent: u64,
    errors: u64,
    /// The first error, for the report.
    first_error: Option<String>,
    /// `(due, latency)` in microseconds from the start, of requests slower than `--slow-us`.
    slow: Vec<(u64, u32)>,
}

fn main() {
    let options = match options(Args::parse()) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("compare-pace: {e}");
            std::process::exit(2);
        }
    };
    let options = Arc::new(options);
    // Every connection is opened before the clock starts.
    let barrier = Arc::new(Barrier::new(options.connections + 1));
    let start_at = Arc::new(std::sync::OnceLock::<Instant>::new());
    let threads: Vec<_> = (0..options.connections)
        .map(|k| {
            let (options, barrier, start_at) = (options.clone(), barrier.clone(), start_at.clone());
            std::thread::Builder::new()
                .name(format!("pace-{k}"))
                .stack_size(256 * 1024)
                .spawn(move || {
                    let stream = connect(&options);
                    barrier.wait();
                    let start = *start_at.get().expect("the start is set before the barrier opens");
                    run_connection(&options, k, start, stream)
                })
                .expect("spawning a probe thread")
        })
        .collect();
    // A moment after every thread is ready, so the first requests are not late from the start.
    start_at
        .set(Instant::now() + Duration::from_millis(20))
        .expect("set once");
    barrier.wait();
    let mut total = Tally::default();
    for thread in threads {
        let tally = thread.join().expect("a probe thread panicked");
        total.latencies.extend_from_slice(&tally.latencies);
        total.sent += tally.sent;
        total.errors += tally.errors;
        if total.first_error.is_none() {
            total.first_error = tally.first_error;
        }
        total.slow.extend_from_slice(&tally.slow);
    }
    if let Some(path) = &options.slow_log {
        total.slow.sort_unstable();
        let lines: String = total.slow.iter().map(|(due, us)| format!("{due} {us}\n")).collect();
        if let Err(e) = std::fs::write(path, lines) {
            eprintln!("compare-pace: --slow-log {}: {e}", path.display());
        }
    }
    if let Some(e) = &total.first_error {
        eprintln!("compare-pace: first error: {e}");
    }
    let mut latencies = total.latencies;
    latencies.sort_unstable();
    let pct = |p: f64| -> u32 {
        if latencies.is_empty() {
            return 0;
        }
        let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1]
    };
    let report = serde_json::json!({
        "rate": options.rate,
        "sent": total.sent,
        "ok": latencies.len(),
        "errors": total.errors,
        "seconds": options.duration.as_secs_f64(),
        "p50_us": pct(0.50),
        "p90_us": pct(0.90),
        "p99_us": pct(0.99),
        "p999_us": pct(0.999),
        "max_us": latencies.last().copied().unwrap_or(0),
    });
    println!("{report}");
}

/// Sends connection `k`'s share of the schedule and times the answers.
fn run_connection(options: &Options, k: usize, start: Instant, mut stream: Option<TcpStream>) -> Tally {
    let mut tally = Tally::default();
    let mut request = Vec::with_capacity(1024);
    let mut buf = vec![0u8; MAX_HEAD];
    let connections = options.connections as u64;
    for j in 0u64.. {
        let index = j * connections + k as u64;
        let due = start + Duration::from_secs_f64(index as f64 / options.rate);
        if due.duration_since(start) >= options.duration {
            break;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let path = &options.paths[index as usize % options.paths.len()];
        request.clear();
        write!(request, "GET {path} HTTP/1.1\r\nHost: {}\r\n", options.host).expect("writing to a Vec");
        for header in &options.headers {
            request.extend_from_slice(header.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        tally.sent += 1;
        let outcome = match stream.as_mut() {
            Some(s) => exchange(s, &request, &mut buf),
            None => Err("not connected".to_string()),
        };
        match outcome {
            Ok(keep) => {
                let micros = u32::try_from(due.elapsed().as_micros()).unwrap_or(u32::MAX);
                tally.latencies.push(micros);
                if micros > options.slow_us {
                    let at = u64::try_from(due.duration_since(start).as_micros()).unwrap_or(u64::MAX);
                    tally.slow.push((at, micros));
                }
                if !keep {
                    stream = connect(options);
                }
            }
            Err(e) => {
                tally.errors += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(format!("connection {k}, request {j} ({path}): {e}"));
                }
                stream = connect(options);
            }
        }
    }
    tally
}

/// Opens a connection; `None` when it cannot (the next request counts as an error).
fn connect(options: &Options) -> Option<TcpStream> {
    let stream = TcpStream::connect_timeout(&options.addr, TIMEOUT).ok()?;
    stream.set_nodelay(true).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).ok()?;
    Some(stream)
}

/// Writes one request and reads its whole answer. `Ok(keep_alive)` for a 3xx answer.
fn exchange(stream: &mut TcpStream, request: &[u8], buf: &mut [u8]) -> Result<bool, String> {
    stream.write_all(request).map_err(|e| format!("write: {e}"))?;
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf[..filled]) {
            Ok(httparse::Status::Complete(head)) => {
                let code = response.code.unwrap_or(0);
                let mut length = 0usize;
                let mut keep = response.version == Some(1);
                for h in response.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        length = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                            .ok_or("unreadable Content-Length")?;
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        keep = !h.value.eq_ignore_ascii_case(b"close");
                    }
                }
                // The rest of the body (pipelining is not used, so nothing follows it).
                let mut body = filled - head;
                while body < length {
                    let n = stream
                        .read(&mut buf[..(length - body).min(MAX_HEAD)])
                        .map_err(|e| format!("read body: {e}"))?;
                    if n == 0 {
                        return Err("the server closed the connection in a body".into());
                    }
                    body += n;
                }
                if !(300..400).contains(&code) {
                    return Err(format!("status {code}"));
                }
                return Ok(keep);
            }
            Ok(httparse::Status::Partial) if filled < buf.len() => continue,
            Ok(httparse::Status::Partial) => return Err(format!("answer head over {MAX_HEAD} bytes")),
            Err(e) => return Err(format!("unreadable answer head: {e}")),
        }
    }
}

fn positive(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("expected a positive number, not {v:?}")),
    }
}

fn header_line(v: &str) -> Result<String, String> {
    if !v.contains(':') || v.contains('\r') || v.contains('\n') {
        return Err(format!("expected one 'Name: value' line, not {v:?}"));
    }
    Ok(v.to_string())
}

/// Reads the paths file into the options.
fn options(args: Args) -> Result<Options, String> {
    let name = args.paths.display();
    let file = std::fs::File::open(&args.paths).map_err(|e| format!("--paths {name}: {e}"))?;
    let mut paths = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{name}:{}: {e}", n + 1))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('/') || line.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(format!("{name}:{}: {line:?} is not a request path", n + 1));
        }
        paths.push(line.to_string());
    }
    if paths.is_empty() {
        return Err(format!("--paths {name}: no paths"));
    }
    Ok(Options {
        addr: args.addr,
        rate: args.rate,
        connections: usize::from(args.connections),
        duration: Duration::try_from_secs_f64(args.duration).map_err(|e| format!("--duration: {e}"))?,
        paths,
        host: args.host,
        headers: args.headers,
        slow_log: args.slow_log,
        slow_us: args.slow_us,
    })
}
