//! Listeners and connections: accepting, limits, timeouts and graceful shutdown.
//!
//! The accept loop is small on purpose. It takes a permit (the connection limit), accepts, and
//! spawns one task per connection. On the plain listener that task is our own HTTP/1.1 loop
//! (`h1`, which says why); on the TLS listener it wraps the socket and runs hyper
//! ([`super::https::serve_connection`]) with [`Router::handle`] as the service. Nothing here looks at a request.
//!
//! Both listeners are served by the [`ServingThreads`], one per CPU, each a single-threaded
//! runtime with its own epoll, timers and tasks, the way nginx's worker processes each serve
//! their own connections. Each thread accepts on a socket of its own ([`bind_per_thread`]: one
//! `SO_REUSEPORT` group per listener, socket `i` taking the connections whose handshake came in
//! on CPU `i`), so a connection stays on the thread of the CPU that took its packets, unless
//! that thread is far busier than another ([`pick_thread`]). On the shared multi-threaded
//! runtime (where the admin listener and reloads run) a ready connection was often picked up by
//! one worker while another was woken to look for work, and a connection's task moved between
//! workers; dealt out in turn by one accept loop, each client's connections were spread over
//! all the threads and every request woke a thread on another CPU.
//!
//! Limits and why they exist:
//! - `max_connections`: a semaphore permit per open connection; at the limit each accept loop
//!   holds the one connection it took last unserved and stops accepting, and new connections
//!   wait in the kernel's backlog instead of exhausting descriptors.
//! - `header_read_timeout`: an HTTP/1.1 connection must complete a request head within this time
//!   of opening and of its previous request head, which also closes a keep-alive connection idle
//!   that long between requests and one that dribbles a head byte by byte (slowloris guard). An
//!   HTTP/2 connection (by ALPN) is bounded by `idle_timeout` and hyper's pings instead.
//! - `idle_timeout`: no byte read or written for that long closes the connection, whatever state
//!   it is in (a client that stops reading its response, for instance).
//!
//! Both are watched by one timer per connection ([`Activity::expired`]) that the requests only
//! stamp with an atomic store. hyper's own header timer would create and cancel a timer for
//! every request, which cost up to a tenth of the server's CPU per request under load.
//! - `max_header_bytes`: the read buffer's limit (`h1`'s, or hyper's on TLS); a larger head is
//!   answered 431.
//!
//! The TLS listener ([`super::https::serve_tls`]) runs the handshake (bounded by `header_read_timeout`) and
//! then serves HTTP/2 or HTTP/1.1 by ALPN with hyper-util's auto builder; the certificate is
//! picked by SNI in `tls`. Both listeners serve `/.well-known/acme-challenge/<token>` from
//! `[server] acme_challenge_dir` when it is set (read asynchronously, off the hit path), so an
//! operator's ACME client can renew certificates over plain HTTP.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::redirect::Router;
use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::shutdown::until_true;

/// hyper refuses read buffers smaller than this; `check` refuses a smaller `max_header_bytes`.
pub const MIN_MAX_HEADER_BYTES: usize = *crate::config::MAX_HEADER_BYTES_RANGE.start() as usize;

/// Connection limits, timeouts and the ACME folder, from `[server]`.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Folder served at `/.well-known/acme-challenge/`.
    pub acme_challenge_dir: Option<std::path::PathBuf>,
    /// See the module docs.
    pub header_read_timeout: Duration,
    /// See the module docs.
    pub idle_timeout: Duration,
    /// See the module docs.
    pub max_header_bytes: usize,
    /// See the module docs.
    pub max_connections: usize,
}

impl ConnLimits {
    /// Limits from the server config.
    pub fn from_config(c: &ServerConfig) -> ConnLimits {
        ConnLimits {
            acme_challenge_dir: c.acme_challenge_dir.clone(),
            header_read_timeout: c.header_read_timeout,
            idle_timeout: c.idle_timeout,
            max_header_bytes: c.max_header_bytes.max(MIN_MAX_HEADER_BYTES),
            max_connections: c.max_connections,
        }
    }
}

/// Threads that serve connections, each running a single-threaded tokio runtime (see the module
/// docs). Dropping it tells the threads to stop; tasks still on them are dropped.
pub struct ServingThreads {
    handles: Vec<tokio::runtime::Handle>,
    /// Dropped to stop the threads.
    _stop: watch::Sender<()>,
}

impl ServingThreads {
    /// Starts `n` threads (at least one), named `clickstream-serve`.
    pub fn start(n: usize) -> io::Result<ServingThreads> {
        let (stop, _) = watch::channel(());
        let mut handles = Vec::new();
        for _ in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            handles.push(runtime.handle().clone());
            let mut stopped = stop.subscribe();
            std::thread::Builder::new()
                .name("clickstream-serve".into())
                .spawn(move || {
                    // Ends when the sender is dropped; the runtime and what is left on it go
                    // with the thread.
                    runtime.block_on(async move { while stopped.changed().await.is_ok() {} });
                })?;
        }
        Ok(ServingThreads { handles, _stop: stop })
    }

    /// One thread per CPU.
    pub fn per_cpu() -> io::Result<ServingThreads> {
        ServingThreads::start(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// How many threads there are.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Always false: there is at least one thread.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }
}

/// Binds a listener (the plain or the TLS one) as `n` sockets on `addr`, one per serving thread,
/// in one `SO_REUSEPORT` group; on Linux socket `i` also asks for the connections whose
/// handshake the kernel handled on the `i`-th CPU this process may run on (`SO_INCOMING_CPU`,
/// honoured by the group's choice since Linux 6.2).
///
/// Why: a connection then stays with the thread on the CPU that took its packets, as nginx's
/// workers end up when they race for `accept`. Dealt out in turn, every client's connections
/// were spread over all the threads, so each request woke a thread on the other CPU (an
/// inter-processor interrupt, which a virtual machine pays dearly for). See the README's
/// comparison for the measurements.
///
/// The address is first bound once without `SO_REUSEPORT`, so that a port already in use (by
/// anyone, including another clickstream) is still refused rather than shared; `addr` with
/// port 0 picks the port there.
pub fn bind_per_thread(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = |reuse_port: bool| -> io::Result<Socket> {
        let s = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        // As tokio's and std's listeners: a restart can bind while old connections linger.
        s.set_reuse_address(true)?;
        if reuse_port {
            s.set_reuse_port(true)?;
        }
        Ok(s)
    };
    let probe = socket(false)?;
    probe.bind(&addr.into())?;
    let addr = probe
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("the bound address is not an IP address"))?;
    if n <= 1 {
        probe.listen(LISTEN_BACKLOG)?;
        return Ok(vec![probe.into()]);
    }
    drop(probe);
    // The CPUs this process may run on, when there is one for each socket (a process confined to
    // CPUs 4 and 5 takes the handshakes handled there); else CPUs 0 to n - 1.
    let cpus = allowed_cpus()
        .filter(|cpus| cpus.len() == n)
        .unwrap_or_else(|| (0..n).collect());
    cpus.into_iter()
        .map(|cpu| {
            let s = socket(true)?;
            // Best effort: without it (a kernel before 3.19) the group picks by a hash instead.
            #[cfg(target_os = "linux")]
            if let Err(e) = s.set_cpu_affinity(cpu) {
                tracing::debug!(cpu, error = %e, "cannot set SO_INCOMING_CPU");
            }
            #[cfg(not(target_os = "linux"))]
            let _ = cpu;
            s.bind(&addr.into())?;
            s.listen(LISTEN_BACKLOG)?;
            Ok(s.into())
        })
        .collect()
}

/// The CPUs this process may run on (`Cpus_allowed_list` in `/proc/self/status`), `None` where
/// that cannot be read. Read from the file rather than asked of the kernel (`sched_getaffinity`)
/// because that call has no safe wrapper in the standard library.
fn allowed_cpus() -> Option<Vec<usize>> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    parse_cpu_list(list.trim())
}

/// `0-3,8,10-11` → `[0, 1, 2, 3, 8, 10, 11]`; `None` for anything else.
fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',') {
        let (first, last): (usize, usize) = match part.split_once('-') {
            Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
            None => {
                let cpu = part.parse().ok()?;
                (cpu, cpu)
            }
        };
        if first > last || last - first > 65_536 {
            return None;
        }
        cpus.extend(first..=last);
    }
    Some(cpus)
}

/// Pending connections per listening socket (tokio's default).
const LISTEN_BACKLOG: i32 = 1024;

/// Runs the plain-HTTP accept loops, one per serving thread on its own socket of `listeners`
/// ([`bind_per_thread`]), until `shutdown` turns true, then waits (up to `grace`) for open
/// connections to finish their in-flight requests.
pub async fn serve_plain(
    listeners: Vec<std::net::TcpListener>,
    threads: Arc<ServingThreads>,
    router: Arc<Router>,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let limits = Arc::new(limits);
    let max_connections = limits.max_connections;
    let serve = move |stream: tokio::net::TcpStream, peer: SocketAddr, shutdown: watch::Receiver<bool>| {
        let (router, limits) = (router.clone(), limits.clone());
        async move {
            let activity = Activity::new();
            let conn = super::h1::Conn {
                router: &router,
                // A dual-stack socket reports IPv4 clients as `::ffff:a.b.c.d`.
                peer: peer.ip().to_canonical(),
                max_head: limits.max_header_bytes,
                acme_dir: limits.acme_challenge_dir.as_deref(),
                activity: &activity,
            };
            let result = tokio::select! {
                r = conn.serve(stream, &shutdown) => r,
                why = activity.expired(limits.idle_timeout, Some(limits.header_read_timeout)) => Err(why.to_string()),
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        }
    };
    serve_on_threads(listeners, &threads, max_connections, metrics, shutdown, grace, serve).await
}

/// Runs an accept loop for each socket of `listeners` on the serving threads (socket `i` on
/// thread `i`), each connection served by `serve` on the thread that accepted it, until
/// `shutdown` turns true; then waits (up to `grace`) for every connection task to end. `serve`
/// is given the shutdown flag, at which a connection finishes its request in flight and closes.
pub(super) async fn serve_on_threads<F, Fut>(
    listeners: Vec<std::net::TcpListener>,
    threads: &ServingThreads,
    max_connections: usize,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
    serve: F,
) where
    F: Fn(tokio::net::TcpStream, SocketAddr, watch::Receiver<bool>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    // Every connection task holds a sender; `recv` ends once all of them are gone.
    let (running, mut all_ended) = tokio::sync::mpsc::channel::<()>(1);
    let shared = Arc::new(Accepting {
        permits: Arc::new(Semaphore::new(max_connections)),
        running,
        metrics,
        threads: threads.handles.clone(),
        live: threads.handles.iter().map(|_| AtomicUsize::new(0)).collect(),
    });
    let mut loops = Vec::new();
    for (own, listener) in listeners.into_iter().enumerate() {
        let (shared, shutdown, serve) = (shared.clone(), shutdown.clone(), serve.clone());
        let own = own % shared.threads.len();
        loops.push(shared.threads[own].clone().spawn(async move {
            // Registered with the epoll of this thread, which serves what it accepts.
            match TcpListener::from_std(listener) {
                Ok(listener) => accept_loop(&listener, own, &shared, shutdown, serve).await,
                Err(e) => tracing::error!(error = %e, "cannot register a listening socket"),
            }
        }));
    }
    for l in loops {
        let _ = l.await; // ends at shutdown; a panic there has been reported by the runtime
    }
    drop(shared);
    if tokio::time::timeout(grace, all_ended.recv()).await.is_err() {
        tracing::warn!("connections still open after the {grace:?} grace period; closing them");
    }
}

/// What the accept loops of one listener share.
struct Accepting {
    /// The connection limit.
    permits: Arc<Semaphore>,
    /// Cloned into every connection task (see [`serve_on_threads`]).
    running: tokio::sync::mpsc::Sender<()>,
    metrics: Arc<Metrics>,
    /// The serving threads' runtimes.
    threads: Vec<tokio::runtime::Handle>,
    /// Connections each serving thread serves.
    live: Arc<[AtomicUsize]>,
}

/// How many more connections than the least busy serving thread a thread keeps at least before
/// it hands new ones over ([`pick_thread`]). Large enough for a burst of connections from one
/// client process to stay together: a load generator's thread opens its connections in one go,
/// before its peers have opened theirs (with 8, wrk's 2 threads of 32 connections each were
/// split up and the rate fell back to what dealing the connections out gave).
const MOVE_SLACK: usize = 32;

/// The serving thread for a connection that thread `own` accepted: its own, unless it serves
/// more than a quarter (and at least [`MOVE_SLACK`]) more connections than the least busy
/// thread, which then gets it. The kernel hands each thread the connections whose handshake came
/// in on its CPU; where one CPU takes every packet (a network card with one queue, for
/// instance), this keeps the other threads from standing idle, at the price of that locality.
fn pick_thread(live: &[AtomicUsize], own: usize) -> usize {
    let load = |i: usize| live[i].load(Ordering::Relaxed);
    let least = (0..live.len()).min_by_key(|&i| load(i)).unwrap_or(own);
    let (mine, fewest) = (load(own), load(least));
    if mine > fewest + (fewest / 4).max(MOVE_SLACK) {
        least
    } else {
        own
    }
}

/// Held by a connection's task while it lives: counts the connection (the gauge and its
/// thread's load), holds its permit and its `running` sender.
struct Open {
    metrics: Arc<Metrics>,
    live: Arc<[AtomicUsize]>,
    thread: usize,
    _permit: tokio::sync::OwnedSemaphorePermit,
    _running: tokio::sync::mpsc::Sender<()>,
}

impl Open {
    fn new(shared: &Accepting, thread: usize, permit: tokio::sync::OwnedSemaphorePermit) -> Open {
        shared.metrics.connections.inc();
        shared.live[thread].fetch_add(1, Ordering::Relaxed);
        Open {
            metrics: shared.metrics.clone(),
            live: shared.live.clone(),
            thread,
            _permit: permit,
            _running: shared.running.clone(),
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.metrics.connections.dec();
        self.live[self.thread].fetch_sub(1, Ordering::Relaxed);
    }
}

/// The accept loop of one serving thread (`own`): a permit per connection (the connection
/// limit; see inside for the one connection a loop may hold over it) and a task per connection
/// running `serve`, on this thread or the one [`pick_thread`] names; returns once `shutdown`
/// turns true.
async fn accept_loop<F, Fut>(
    listener: &TcpListener,
    own: usize,
    shared: &Accepting,
    mut shutdown: watch::Receiver<bool>,
    serve: F,
) where
    F: Fn(tokio::net::TcpStream, SocketAddr, watch::Receiver<bool>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed; retrying in 50ms");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = until_true(&mut shutdown) => break,
        };
        // Accepted first, then held until a permit is free: several loops share the permits, and
        // a loop waiting in `accept` with a permit in hand would keep it from the one whose
        // socket got the connection. So each loop holds at most one connection over the limit.
        let permit = tokio::select! {
            p = shared.permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = until_true(&mut shutdown) => break,
        };
        // Redirect responses are tiny: send them without waiting for more to batch.
        let _ = stream.set_nodelay(true); // an error here only costs latency
        let thread = pick_thread(&shared.live, own);
        let open = Open::new(shared, thread, permit);
        if thread == own {
            let connection = serve(stream, peer, shutdown.clone());
            tokio::spawn(async move {
                connection.await;
                drop(open);
            });
            continue;
        }
        // Registered again with the epoll of the thread that will serve it.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "cannot move the connection to another thread");
                continue;
            }
        };
        let (serve, shutdown) = (serve.clone(), shutdown.clone());
        shared.threads[thread].spawn(async move {
            match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => serve(stream, peer, shutdown).await,
                Err(e) => tracing::debug!(%peer, error = %e, "cannot move the connection to another thread"),
            }
            drop(open);
        });
    }
}

/// When a connection last read, last moved a byte and last completed a request head, in
/// nanoseconds since it opened.
pub(crate) struct Activity {
    opened: Instant,
    last_ns: AtomicU64,
    last_read_ns: AtomicU64,
    last_head_ns: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            last_ns: AtomicU64::new(0),
            last_read_ns: AtomicU64::new(0),
            last_head_ns: AtomicU64::new(0),
        }
    }

    fn now_ns(&self) -> u64 {
        self.opened.elapsed().as_nanos() as u64
    }

    pub(crate) fn touch(&self) {
        self.last_ns.store(self.now_ns(), Ordering::Relaxed);
    }

    pub(crate) fn touch_read(&self) {
        let now = self.now_ns();
        self.last_ns.store(now, Ordering::Relaxed);
        self.last_read_ns.store(now, Ordering::Relaxed);
    }

    /// Records a complete request head, once it is answered; returns the time since the read
    /// that completed it (the request's latency).
    pub(crate) fn head_done(&self) -> Duration {
        let now = self.now_ns();
        self.last_head_ns.store(now, Ordering::Relaxed);
        Duration::from_nanos(now.saturating_sub(self.last_read_ns.load(Ordering::Relaxed)))
    }

    /// Resolves, with the reason, once the connection has been silent for `idle`, or, given a
    /// `head` limit, has gone that long since it opened or since its last request head without
    /// completing another. One sleep per connection, rearmed only when it fires early.
    pub(crate) async fn expired(&self, idle: Duration, head: Option<Duration>) -> &'static str {
        let at =
            |ns: &AtomicU64, limit: Duration| self.opened + Duration::from_nanos(ns.load(Ordering::Relaxed)) + limit;
        loop {
            let idle_deadline = at(&self.last_ns, idle);
            let head_deadline = head.map(|limit| at(&self.last_head_ns, limit));
            let now = Instant::now();
            if now >= idle_deadline {
                return "idle";
            }
            if head_deadline.is_some_and(|d| now >= d) {
                return "no request head in time";
            }
            let deadline = head_deadline.map_or(idle_deadline, |d| d.min(idle_deadline));
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_keeps_its_connections_unless_it_has_far_more_than_another() {
        let live = |counts: &[usize]| counts.iter().map(|&n| AtomicUsize::new(n)).collect::<Vec<_>>();
        assert_eq!(pick_thread(&live(&[0, 0]), 1), 1);
        assert_eq!(pick_thread(&live(&[40, 32]), 0), 0);
        assert_eq!(pick_thread(&live(&[32, 0]), 0), 0);
        assert_eq!(pick_thread(&live(&[33, 0]), 0), 1);
        assert_eq!(pick_thread(&live(&[998, 801, 799]), 0), 0);
        assert_eq!(pick_thread(&live(&[999, 801, 799]), 0), 2);
        // Every handshake on one CPU: the connections still end up spread.
        let counts = live(&[0, 0, 0]);
        for _ in 0..3000 {
            counts[pick_thread(&counts, 0)].fetch_add(1, Ordering::Relaxed);
        }
        let served: Vec<usize> = counts.iter().map(|n| n.load(Ordering::Relaxed)).collect();
        assert_eq!(served, [1154, 923, 923]);
    }

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0-1"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("4"), Some(vec![4]));
        assert_eq!(parse_cpu_list("0-2,8,10-11"), Some(vec![0, 1, 2, 8, 10, 11]));
        for bad in ["", "a", "3-1", "1-", "0-1,,2", "0-99999999"] {
            assert_eq!(parse_cpu_list(bad), None, "{bad:?}");
        }
        // This process's own list, on Linux, has at least the CPU running this test.
        if cfg!(target_os = "linux") {
            assert!(!allowed_cpus().unwrap().is_empty());
        }
    }

    #[test]
    fn plain_sockets_share_one_port_and_a_taken_port_is_refused() {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let sockets = bind_per_thread(any, 3).unwrap();
        let addr = sockets[0].local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        assert_eq!(sockets.len(), 3);
        for s in &sockets {
            assert_eq!(s.local_addr().unwrap(), addr);
        }
        // Not shared with another group, nor with a plain listener.
        let e = bind_per_thread(addr, 2).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        let e = bind_per_thread(addr, 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        let plain = std::net::TcpListener::bind(any).unwrap();
        let e = bind_per_thread(plain.local_addr().unwrap(), 2).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");

        // Every connection is accepted by one of the sockets.
        for s in &sockets {
            s.set_nonblocking(true).unwrap();
        }
        let clients: Vec<_> = (0..8).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        let mut accepted = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while accepted < clients.len() && Instant::now() < deadline {
            for s in &sockets {
                if s.accept().is_ok() {
                    accepted += 1;
                }
            }
        }
        assert_eq!(accepted, clients.len());
    }
}
