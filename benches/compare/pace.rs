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
//! 0.3 ms at 2,000 req/s. This probe follows wrk2's model instead: request `i` is due at
//! `start + i / rate`, so requests are evenly spaced, and goes out on connection `i mod C`; a
//! request's latency runs from the instant it was due to the end of its answer, so the probe's
//! own lateness in sending it counts too, and figures err on the high side. A request that falls
//! due while its connection still waits for an earlier answer is sent behind it (HTTP/1.1
//! pipelining): the schedule never waits for the server (no coordinated omission).
//!
//! A paced probe costs the machine more per request than wrk, which at its peak always has an
//! answer waiting: here a request wakes a sleeping thread to send it and again to read its
//! answer. So the probe batches: `--threads` threads (default 2, like wrk's), each with its share of the
//! connections, non-blocking, on one epoll set with a timerfd armed to the nanosecond (epoll's
//! own timeout has whole milliseconds), send the requests that fall due within a tick
//! (`--tick-us`, default 100) together at the tick's end. Each is still timed from its own due
//! instant, so a latency includes up to one tick of waiting in the probe. Thread `t` sends the
//! requests `i` with `i mod T = t`. At 55,000 req/s against clickstream on that machine the
//! probe used 12 to 13.5 µs of CPU per request with 100 µs ticks, 22 µs with none, and the
//! earlier probe with one blocking thread per connection 14 µs.
//!
//! Each request is `GET <path>` with `Host` and the `-H` headers, the paths taken in turn from
//! `--paths` (one per line, each starting with `/`). A 3xx answer counts as ok, anything else
//! (another status, a closed connection, no answer in 5 s) as an error; a connection that fails
//! or is closed is opened again, its unanswered requests counted as errors. `--slow-log FILE`
//! lists the requests slower than `--slow-us` (default 1000) as `due latency` lines in
//! microseconds from the start, to see when the slow ones happened. `--warmup SEC` sends load on
//! the same schedule before the measured `--duration` and leaves its latencies out, as wrk2
//! leaves out its calibration: a server's first seconds (caches filling, the first click of each
//! link) say little about its steady state. Prints one JSON line:
//! `{"rate":R,"sent":N,"ok":N,"errors":E,"seconds":S,"p50_us":..,"p90_us":..,"p99_us":..,
//! "p999_us":..,"max_us":..,"send_lag_p99_us":..,"send_lag_max_us":..,"warmup_s":..,
//! "p99_all_us":..}`: `ok`, the percentiles and `seconds` are of the measured part; the send
//! lags, how late the probe sent its requests after the end of their tick (waiting for a CPU; it
//! is included in the latencies, as the tick is); `p99_all_us`, the p99 with the warm-up's
//! requests included; `sent` and `errors`, of the whole run.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

use clap::Parser;
use rustix::event::epoll;
use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};

/// Longest answer head the probe reads.
const MAX_HEAD: usize = 16 * 1024;
/// A request still unanswered after this long is an error.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How often a thread looks for requests unanswered for longer than `TIMEOUT`.
const TIMEOUT_CHECK_NS: u64 = 100_000_000;
/// The epoll token of a thread's timer; its connections' tokens are their indexes.
const TIMER: u64 = u64::MAX;

/// Sends requests at a fixed rate, evenly spaced, and reports latency percentiles as JSON.
#[derive(Parser)]
struct Args {
    /// The server, e.g. 127.0.0.1:18080.
    #[arg(long)]
    addr: SocketAddr,
    /// Requests per second, over all connections.
    #[arg(long, value_parser = positive)]
    rate: f64,
    /// Connections, a multiple of --threads.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    connections: u16,
    /// Threads, each sending its share of the requests on its share of the connections.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
    /// Seconds of load measured, after --warmup.
    #[arg(long, default_value_t = 10.0, value_parser = positive)]
    duration: f64,
    /// Seconds of load before the measured --duration, sent on the same schedule; their
    /// latencies are left out of the percentiles but for `p99_all_us` (errors count throughout).
    #[arg(long, default_value_t = 0.0, value_parser = not_negative)]
    warmup: f64,
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
    /// The requests that fall due within a tick of this many microseconds are sent together at
    /// its end, each still timed from its own due instant (so a latency includes up to one tick
    /// of waiting in the probe); 0 sends each at its instant.
    #[arg(long, default_value_t = 100)]
    tick_us: u32,
}

/// The arguments, with the paths read.
struct Options {
    addr: SocketAddr,
    rate: f64,
    connections: usize,
    threads: usize,
    /// Requests in the whole run: those due before the warm-up and the duration end.
    requests: u64,
    /// The warm-up, in nanoseconds: requests due before it are not measured.
    warmup_ns: u64,
    /// The measured part of the run, in seconds.
    duration: f64,
    paths: Vec<String>,
    /// What follows a request's first line: `Host`, the `-H` headers and the blank line.
    head_rest: Vec<u8>,
    slow_log: Option<PathBuf>,
    slow_us: u32,
    /// --tick-us in nanoseconds, at least 1.
    tick_ns: u64,
}

impl Options {
    /// When request `i` is due, in nanoseconds after `start`.
    fn due(&self, i: u64) -> u64 {
        (i as f64 * 1e9 / self.rate) as u64
    }

    /// When the probe means to send request `i`: the end of the tick it falls due in.
    fn send_at(&self, i: u64) -> u64 {
        self.due(i).div_ceil(self.tick_ns) * self.tick_ns
    }
}

/// What one thread saw.
#[derive(Default)]
struct Tally {
    /// Latency of every answered request after the warm-up, in microseconds.
    latencies: Vec<u32>,
    /// Latency of every answered request of the warm-up.
    warmup_latencies: Vec<u32>,
    /// How late each request was sent, in microseconds.
    lags: Vec<u32>,
    sent: u64,
    errors: u64,
    /// The first error, for the report.
    first_error: Option<String>,
    /// `(due, latency)` in microseconds from the start, of requests slower than `--slow-us`.
    slow: Vec<(u64, u32)>,
}

impl Tally {
    fn error(&mut self, count: u64, what: impl FnOnce() -> String) {
        self.errors += count;
        if count > 0 && self.first_error.is_none() {
            self.first_error = Some(what());
        }
    }
}

/// One connection of a thread.
struct Conn {
    /// `None` after a failed reconnect; the requests sent on it then count as errors.
    stream: Option<TcpStream>,
    /// When the requests written and not yet answered were due (ns after the start), oldest first.
    waiting: VecDeque<u64>,
    /// Bytes read and not yet parsed.
    input: Vec<u8>,
    /// Bytes of requests the socket did not take yet.
    output: Vec<u8>,
}

impl Conn {
    /// A new connection to the server (or none, if it cannot be opened).
    fn open(options: &Options) -> Conn {
        Conn {
            stream: connect(options),
            waiting: VecDeque::new(),
            input: Vec::new(),
            output: Vec::new(),
        }
    }
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
    let barrier = Arc::new(Barrier::new(options.threads + 1));
    let start_at = Arc::new(OnceLock::<u64>::new());
    let threads: Vec<_> = (0..options.threads)
        .map(|t| {
            let (options, barrier, start_at) = (options.clone(), barrier.clone(), start_at.clone());
            std::thread::Builder::new()
                .name(format!("pace-{t}"))
                .spawn(move || {
                    let conns = (t..options.connections)
                        .step_by(options.threads)
                        .map(|_| Conn::open(&options))
                        .collect();
                    barrier.wait();
                    let start = *start_at.get().expect("the start is set before the barrier opens");
                    run_thread(&options, t, start, conns)
                })
                .expect("spawning a probe thread")
        })
        .collect();
    // A moment after every thread is ready, so the first requests are not late from the start.
    start_at.set(now_ns() + 20_000_000).expect("set once");
    barrier.wait();
    let mut total = Tally::default();
    for thread in threads {
        let tally = match thread.join().expect("a probe thread panicked") {
            Ok(tally) => tally,
            Err(e) => {
                eprintln!("compare-pace: {e}");
                std::process::exit(1);
            }
        };
        total.latencies.extend_from_slice(&tally.latencies);
        total.warmup_latencies.extend_from_slice(&tally.warmup_latencies);
        total.lags.extend_from_slice(&tally.lags);
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
    let mut all = total.warmup_latencies;
    all.extend_from_slice(&total.latencies);
    let (latencies, all, lags) = (sorted(total.latencies), sorted(all), sorted(total.lags));
    let report = serde_json::json!({
        "rate": options.rate,
        "sent": total.sent,
        "ok": latencies.len(),
        "errors": total.errors,
        "seconds": options.duration,
        "warmup_s": options.warmup_ns as f64 / 1e9,
        "p50_us": percentile(&latencies, 0.50),
        "p90_us": percentile(&latencies, 0.90),
        "p99_us": percentile(&latencies, 0.99),
        "p999_us": percentile(&latencies, 0.999),
        "max_us": latencies.last().copied().unwrap_or(0),
        "send_lag_p99_us": percentile(&lags, 0.99),
        "send_lag_max_us": lags.last().copied().unwrap_or(0),
        "p99_all_us": percentile(&all, 0.99),
    });
    println!("{report}");
}

fn sorted(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v
}

/// The nearest-rank percentile of sorted values; 0 for none.
fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `CLOCK_MONOTONIC` in nanoseconds, the clock the timers run on.
fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn micros(ns: u64) -> u32 {
    u32::try_from(ns / 1000).unwrap_or(u32::MAX)
}

/// Thread `t`'s part of the run: sends its requests when due and times their answers.
fn run_thread(options: &Options, t: usize, start: u64, mut conns: Vec<Conn>) -> Result<Tally, String> {
    let os = |what: &str, e: rustix::io::Errno| format!("thread {t}: {what}: {e}");
    let poll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| os("epoll_create", e))?;
    let timer = rustix::time::timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
    )
    .map_err(|e| os("timerfd_create", e))?;
    epoll::add(&poll, &timer, epoll::EventData::new_u64(TIMER), epoll::EventFlags::IN)
        .map_err(|e| os("epoll_ctl", e))?;
    for (n, conn) in conns.iter().enumerate() {
        if let Some(stream) = &conn.stream {
            watch(&poll, stream, n).map_err(|e| os("epoll_ctl", e))?;
        }
    }
    let mut tally = Tally::default();
    let mut request = Vec::with_capacity(1024);
    let mut events = Vec::with_capacity(64);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut next = t as u64;
    let mut armed = None;
    let mut last_check = 0;
    loop {
        let now = now_ns().saturating_sub(start);
        while next < options.requests && options.due(next) <= now {
            let due = options.due(next);
            let path = &options.paths[(next % options.paths.len() as u64) as usize];
            request.clear();
            request.extend_from_slice(b"GET ");
            request.extend_from_slice(path.as_bytes());
            request.extend_from_slice(b" HTTP/1.1\r\n");
            request.extend_from_slice(&options.head_rest);
            let n = (next % options.connections as u64) as usize / options.threads;
            tally.sent += 1;
            if due >= options.warmup_ns {
                let late = now_ns().saturating_sub(start).saturating_sub(options.send_at(next));
                tally.lags.push(micros(late));
            }
            send(options, &poll, &mut conns, n, due, &request, &mut tally);
            next += options.threads as u64;
        }
        if next >= options.requests && conns.iter().all(|c| c.waiting.is_empty()) {
            return Ok(tally);
        }
        if now >= last_check + TIMEOUT_CHECK_NS {
            last_check = now;
            for n in 0..conns.len() {
                if conns[n]
                    .waiting
                    .front()
                    .is_some_and(|&due| now.saturating_sub(due) > TIMEOUT.as_nanos() as u64)
                {
                    fail(options, &poll, &mut conns, n, &mut tally, || {
                        format!("no answer in {TIMEOUT:?}")
                    });
                }
            }
        }
        // Wake for the next request, or, once all are sent, to look for timeouts.
        let wake = if next < options.requests {
            options.send_at(next)
        } else {
            now + TIMEOUT_CHECK_NS
        };
        if armed != Some(wake) {
            let at = start + wake;
            let spec = Itimerspec {
                it_interval: Timespec { tv_sec: 0, tv_nsec: 0 },
                it_value: Timespec {
                    tv_sec: (at / 1_000_000_000) as i64,
                    tv_nsec: (at % 1_000_000_000) as i64,
                },
            };
            rustix::time::timerfd_settime(&timer, TimerfdTimerFlags::ABSTIME, &spec)
                .map_err(|e| os("timerfd_settime", e))?;
            armed = Some(wake);
        }
        events.clear();
        match epoll::wait(&poll, rustix::buffer::spare_capacity(&mut events), None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(os("epoll_wait", e)),
        }
        for event in &events {
            let (token, flags) = (event.data.u64(), event.flags);
            if token == TIMER {
                // Only to clear it; it is armed again for the next due instant.
                let _ = rustix::io::read(&timer, &mut [0u8; 8]);
                armed = None;
                continue;
            }
            let n = token as usize;
            if flags.contains(epoll::EventFlags::OUT) {
                flush(options, &poll, &mut conns, n, &mut tally);
            }
            if flags.intersects(epoll::EventFlags::IN | epoll::EventFlags::HUP | epoll::EventFlags::ERR) {
                receive(options, &poll, &mut conns, n, start, &mut scratch, &mut tally);
            }
        }
    }
}

/// Registers connection `n`'s socket for reading.
fn watch(poll: &OwnedFd, stream: &TcpStream, n: usize) -> rustix::io::Result<()> {
    epoll::add(poll, stream, epoll::EventData::new_u64(n as u64), epoll::EventFlags::IN)
}

/// Watches connection `n`'s socket for writing as well as reading while requests wait to be
/// written (`writing`), and for reading only once they are.
fn rewatch(poll: &OwnedFd, stream: &TcpStream, n: usize, writing: bool) {
    let flags = if writing {
        epoll::EventFlags::IN | epoll::EventFlags::OUT
    } else {
        epoll::EventFlags::IN
    };
    // Cannot fail for a registered socket.
    let _ = epoll::modify(poll, stream, epoll::EventData::new_u64(n as u64), flags);
}

/// Writes a request due at `due` on connection `n`, behind any it has not written yet.
fn send(options: &Options, poll: &OwnedFd, conns: &mut [Conn], n: usize, due: u64, request: &[u8], tally: &mut Tally) {
    let conn = &mut conns[n];
    conn.waiting.push_back(due);
    let Some(stream) = &conn.stream else {
        fail(options, poll, conns, n, tally, || "not connected".into());
        return;
    };
    if !conn.output.is_empty() {
        conn.output.extend_from_slice(request);
        return;
    }
    let written = match (&*stream).write(request) {
        Ok(written) => written,
        Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
        Err(e) => {
            fail(options, poll, conns, n, tally, || format!("write: {e}"));
            return;
        }
    };
    if written < request.len() {
        conn.output.extend_from_slice(&request[written..]);
        rewatch(poll, stream, n, true);
    }
}

/// Writes what connection `n` could not write before.
fn flush(options: &Options, poll: &OwnedFd, conns: &mut [Conn], n: usize, tally: &mut Tally) {
    let conn = &mut conns[n];
    let Some(stream) = &conn.stream else { return };
    while !conn.output.is_empty() {
        match (&*stream).write(&conn.output) {
            Ok(written) => {
                conn.output.drain(..written);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => {
                fail(options, poll, conns, n, tally, || format!("write: {e}"));
                return;
            }
        }
    }
    rewatch(poll, stream, n, false);
}

/// Reads what connection `n` has and times each whole answer in it.
fn receive(
    options: &Options,
    poll: &OwnedFd,
    conns: &mut [Conn],
    n: usize,
    start: u64,
    scratch: &mut [u8],
    tally: &mut Tally,
) {
    let conn = &mut conns[n];
    let Some(stream) = &conn.stream else { return };
    let mut closed = false;
    // One read per readiness unless it fills the scratch buffer: epoll (level-triggered) reports
    // the socket again if more is waiting, which saves the read that would only say "nothing".
    loop {
        match (&*stream).read(scratch) {
            Ok(0) => closed = true,
            Ok(read) => {
                conn.input.extend_from_slice(&scratch[..read]);
                if read == scratch.len() {
                    continue;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                fail(options, poll, conns, n, tally, || format!("read: {e}"));
                return;
            }
        }
        break;
    }
    let now = now_ns().saturating_sub(start);
    let mut used = 0;
    let mut keep = true;
    while keep && used < conn.input.len() {
        let answer = match parse_answer(&conn.input[used..]) {
            Ok(Some(answer)) => answer,
            Ok(None) => break,
            Err(e) => {
                fail(options, poll, conns, n, tally, || e);
                return;
            }
        };
        used += answer.len;
        keep = answer.keep;
        let Some(due) = conn.waiting.pop_front() else {
            fail(options, poll, conns, n, tally, || "an answer to no request".into());
            return;
        };
        if !(300..400).contains(&answer.code) {
            tally.error(1, || format!("connection {n}: status {}", answer.code));
            continue;
        }
        let latency = micros(now.saturating_sub(due));
        if due >= options.warmup_ns {
            tally.latencies.push(latency);
        } else {
            tally.warmup_latencies.push(latency);
        }
        if latency > options.slow_us {
            tally.slow.push((due / 1000, latency));
        }
    }
    conn.input.drain(..used);
    if !keep || closed {
        if conn.waiting.is_empty() && conn.output.is_empty() {
            // Closed between requests: open it again for the next one.
            reconnect(options, poll, conns, n);
        } else {
            fail(options, poll, conns, n, tally, || {
                "the server closed the connection".into()
            });
        }
    }
}

/// One answer at the start of a buffer.
struct Answer {
    /// Its bytes, head and body.
    len: usize,
    code: u16,
    keep: bool,
}

/// The answer at the start of `buf`; `None` until all of it has arrived.
fn parse_answer(buf: &[u8]) -> Result<Option<Answer>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(buf) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) => return Err(format!("answer head over {MAX_HEAD} bytes")),
        Err(e) => return Err(format!("unreadable answer head: {e}")),
    };
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
    if buf.len() < head + length {
        return Ok(None);
    }
    Ok(Some(Answer {
        len: head + length,
        code: response.code.unwrap_or(0),
        keep,
    }))
}

/// Counts connection `n`'s unanswered requests as errors and opens it again.
fn fail(
    options: &Options,
    poll: &OwnedFd,
    conns: &mut [Conn],
    n: usize,
    tally: &mut Tally,
    what: impl FnOnce() -> String,
) {
    let lost = conns[n].waiting.len() as u64;
    tally.error(lost, || format!("connection {n}: {}", what()));
    reconnect(options, poll, conns, n);
}

/// Replaces connection `n` with a new one (or none, if it cannot be opened).
fn reconnect(options: &Options, poll: &OwnedFd, conns: &mut [Conn], n: usize) {
    let conn = &mut conns[n];
    if let Some(old) = conn.stream.take() {
        let _ = epoll::delete(poll, &old);
    }
    conn.waiting.clear();
    conn.input.clear();
    conn.output.clear();
    conn.stream = connect(options).filter(|stream| watch(poll, stream, n).is_ok());
}

/// Opens a non-blocking connection; `None` when it cannot (its requests then count as errors).
fn connect(options: &Options) -> Option<TcpStream> {
    let stream = TcpStream::connect_timeout(&options.addr, TIMEOUT).ok()?;
    stream.set_nodelay(true).ok()?;
    stream.set_nonblocking(true).ok()?;
    Some(stream)
}

fn positive(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("expected a positive number, not {v:?}")),
    }
}

fn not_negative(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("expected a number of 0 or more, not {v:?}")),
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
    if !args.connections.is_multiple_of(args.threads) {
        return Err(format!(
            "--connections {} is not a multiple of --threads {}",
            args.connections, args.threads
        ));
    }
    let requests = ((args.warmup + args.duration) * args.rate).ceil();
    if requests > 1e9 {
        return Err(format!(
            "--rate times --warmup and --duration is {requests} requests, over a billion"
        ));
    }
    let mut head_rest = format!("Host: {}\r\n", args.host).into_bytes();
    for header in &args.headers {
        head_rest.extend_from_slice(header.as_bytes());
        head_rest.extend_from_slice(b"\r\n");
    }
    head_rest.extend_from_slice(b"\r\n");
    Ok(Options {
        addr: args.addr,
        rate: args.rate,
        connections: usize::from(args.connections),
        threads: usize::from(args.threads),
        requests: requests as u64,
        warmup_ns: (args.warmup * 1e9) as u64,
        duration: args.duration,
        paths,
        head_rest,
        slow_log: args.slow_log,
        slow_us: args.slow_us,
        tick_ns: (u64::from(args.tick_us) * 1000).max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(rate: f64, tick_us: u64) -> Options {
        Options {
            addr: "127.0.0.1:1".parse().unwrap(),
            rate,
            connections: 4,
            threads: 2,
            requests: 100,
            warmup_ns: 0,
            duration: 1.0,
            paths: vec!["/a".into()],
            head_rest: b"\r\n".to_vec(),
            slow_log: None,
            slow_us: 1000,
            tick_ns: (tick_us * 1000).max(1),
        }
    }

    #[test]
    fn requests_go_at_the_end_of_the_tick_they_fall_due_in() {
        let o = options(30_000.0, 100);
        // Due every 33.3 µs: the first four (0, 33, 66, 100 µs) go at 0 and 100 µs.
        assert_eq!(
            (0..5).map(|i| o.send_at(i)).collect::<Vec<_>>(),
            [0, 100_000, 100_000, 100_000, 200_000]
        );
        let exact = options(30_000.0, 0);
        assert_eq!(exact.send_at(2), exact.due(2));
        assert_eq!(exact.due(2), 66_666);
    }

    #[test]
    fn answers_are_taken_whole_one_at_a_time() {
        let one = b"HTTP/1.1 301 Moved Permanently\r\nLocation: /x\r\nContent-Length: 5\r\n\r\nhello";
        let mut two = one.to_vec();
        two.extend_from_slice(b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        let first = parse_answer(&two).unwrap().unwrap();
        assert_eq!((first.len, first.code, first.keep), (one.len(), 301, true));
        let second = parse_answer(&two[first.len..]).unwrap().unwrap();
        assert_eq!(
            (second.len, second.code, second.keep),
            (two.len() - one.len(), 404, false)
        );
        // Not all of the body yet, not all of the head yet.
        assert!(parse_answer(&one[..one.len() - 1]).unwrap().is_none());
        assert!(parse_answer(b"HTTP/1.1 301 Moved").unwrap().is_none());
        assert!(parse_answer(b"HTTP/1.1 301 Moved\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse_answer(b"garbage\r\n\r\n").is_err());
    }

    /// A server on 127.0.0.1:0 that answers every request it reads with `answer`, on a thread
    /// per connection; with `close`, it closes each connection after its first answer.
    fn server(answer: &'static [u8], close: bool) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut pending = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        pending.extend_from_slice(&buf[..n]);
                        // Answer each whole request (pipelined ones too).
                        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            pending.drain(..end + 4);
                            if stream.write_all(answer).is_err() || close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// Runs one probe thread over 2 connections, 200 requests at 4,000 req/s.
    fn probe(addr: SocketAddr) -> Tally {
        let options = Options {
            addr,
            connections: 2,
            threads: 1,
            requests: 200,
            head_rest: b"Host: brand.link\r\n\r\n".to_vec(),
            ..options(4_000.0, 100)
        };
        let conns = (0..2).map(|_| Conn::open(&options)).collect();
        run_thread(&options, 0, now_ns(), conns).unwrap()
    }

    #[test]
    fn every_request_is_sent_and_its_answer_timed() {
        let addr = server(
            b"HTTP/1.1 301 Moved Permanently\r\nLocation: /x\r\nContent-Length: 2\r\n\r\nok",
            false,
        );
        let tally = probe(addr);
        assert_eq!((tally.sent, tally.errors, tally.latencies.len()), (200, 0, 200));
        assert_eq!(tally.lags.len(), 200);
        assert!(tally.first_error.is_none());
    }

    #[test]
    fn connections_the_server_closes_are_opened_again() {
        let addr = server(
            b"HTTP/1.1 302 Found\r\nLocation: /x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            true,
        );
        let tally = probe(addr);
        assert_eq!(tally.sent, 200);
        assert_eq!(tally.errors + tally.latencies.len() as u64, 200);
        // A request written before the probe saw the close is lost with the connection (an
        // error); without the reconnection every request after the first two would be.
        assert!(tally.latencies.len() >= 150, "{} answered", tally.latencies.len());
    }

    #[test]
    fn answers_other_than_redirects_are_errors() {
        let addr = server(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false);
        let tally = probe(addr);
        assert_eq!((tally.sent, tally.errors, tally.latencies.len()), (200, 200, 0));
        assert!(tally.first_error.unwrap().contains("status 404"));
    }
}
