//! A running node: everything `clickstream serve` starts, wired together, and its orderly stop.
//!
//! Start-up raises the open-file limit, loads the lists, GeoIP and link table, opens the spool,
//! starts the pipeline thread, fits `max_connections` under the open-file limit
//! ([`fd_budget`]), binds the listeners and starts one driver per sink. [`Node::shutdown`] stops in the order that
//! loses nothing: not ready → stop accepting and finish in-flight requests → the pipeline drains
//! the click queue into the spool and syncs it → sinks deliver what they can within the grace
//! period → whatever is left stays in the spool for the next start.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState};
use crate::click::ClickQueue;
use crate::config::{Config, SinkKind};
use crate::edge::fd_budget;
use crate::edge::https;
use crate::edge::listener::{self, ConnLimits};
use crate::edge::redirect::Router;
use crate::enrich::geo::GeoDb;
use crate::enrich::session::SessionTracker;
use crate::enrich::{EnrichLists, Enricher};
use crate::links::{LinkTable, LinkTableError};
use crate::metrics::Metrics;
use crate::reload::{ReloadError, ReloadSummary, Reloader};
use crate::sink::file::FileSink;
use crate::sink::s3::S3Sink;
use crate::sink::webhook::WebhookSink;
use crate::sink::{self, DriverContext};
use crate::spool::{Filter, SinkSpec, Spool, SpoolError};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The link table has errors (exit code 1).
    #[error(transparent)]
    Links(#[from] LinkTableError),
    /// A list, database or sink setting is unusable (exit code 64).
    #[error("{0}")]
    Setup(String),
    /// The spool cannot be opened.
    #[error("spool: {0}")]
    Spool(#[from] SpoolError),
    /// A listener cannot bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running node.
pub struct Node {
    /// Where the redirect listener is bound.
    pub addr: SocketAddr,
    /// Where the admin listener is bound.
    pub admin_addr: SocketAddr,
    /// Where the TLS listener is bound, when configured.
    pub tls_addr: Option<SocketAddr>,
    /// Connections each listener takes at most: `[server] max_connections`, or less to fit the
    /// open-file limit ([`fd_budget`]).
    pub max_connections: usize,
    certs: Option<Arc<crate::edge::tls::CertStore>>,
    tls_task: Option<JoinHandle<()>>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The spool.
    pub spool: Spool,
    reloader: Arc<Reloader>,
    admin: Arc<AdminState>,
    shutdown: watch::Sender<bool>,
    drain: watch::Sender<bool>,
    stop_pipeline: Arc<AtomicBool>,
    router: Option<Arc<Router>>,
    server_task: JoinHandle<()>,
    pipeline: std::thread::JoinHandle<()>,
    sinks: Vec<JoinHandle<()>>,
    delivery: DeliveryRuntime,
    grace: Duration,
}

/// The runtime the sinks deliver on: one worker thread (`clickstream-sink`) and its own blocking
/// pool, apart from the threads that answer requests. A sink's work comes in bursts (a spool
/// read, a body of up to a few MB encoded and written to a socket, whose loopback delivery the
/// kernel runs in the writing thread); on a request worker such a burst ran ahead of every
/// connection queued on that worker. On its own thread it is one more thread for the kernel to
/// schedule (back to back under the webhook load: 2% more requests/s, median of six pairs).
struct DeliveryRuntime(Option<tokio::runtime::Runtime>);

impl DeliveryRuntime {
    fn start() -> Result<DeliveryRuntime, StartError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("clickstream-sink")
            .enable_all()
            .build()
            .map(|rt| DeliveryRuntime(Some(rt)))
            .map_err(|e| StartError::Setup(format!("cannot start the delivery runtime: {e}")))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("present until stopped").handle()
    }

    /// Stops the runtime's threads without waiting for them: dropping a runtime blocks until its
    /// tasks end, which is not allowed on an async worker. Called once the sinks have stopped
    /// (or been aborted), so nothing is left to wait for.
    fn stop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for DeliveryRuntime {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What was loaded, for the start-up log line.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Links.
    pub links: usize,
    /// Domains.
    pub domains: usize,
    /// GeoIP database type and build time.
    pub geoip: String,
}

/// Loads GeoIP from the configured path or the embedded copy.
pub fn load_geo(config: &Config) -> Result<GeoDb, StartError> {
    match &config.server.geoip {
        Some(path) => GeoDb::open(path).map_err(|e| StartError::Setup(e.to_string())),
        None => Ok(GeoDb::embedded()),
    }
}

impl Node {
    /// Starts a node; `listen`/`admin_listen` of the config may use port 0 (tests).
    pub async fn start(config: Config) -> Result<(Node, Loaded), StartError> {
        let config = Arc::new(config);
        let metrics = Arc::new(Metrics::default());
        let server_config = &config.server;
        // Before anything is opened: every descriptor counts against this limit.
        let nofile = fd_budget::raise_nofile_limit();

        // The admin listener comes first, so that /healthz answers and /readyz says "not ready"
        // while a large table loads.
        let admin_listener =
            TcpListener::bind(server_config.admin_listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: server_config.admin_listen,
                    source,
                })?;
        let admin_addr = admin_listener.local_addr().map_err(|source| StartError::Bind {
            addr: server_config.admin_listen,
            source,
        })?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let table = Arc::new(ArcSwap::from_pointee(LinkTable::empty()));
        let admin = Arc::new(AdminState {
            metrics: metrics.clone(),
            table: table.clone(),
            ready: AtomicBool::new(false),
        });
        tokio::spawn(admin::serve(admin_listener, admin.clone(), shutdown_rx.clone()));
        tracing::info!(admin = %admin_addr, "admin listener up; loading");

        let setup = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || {
                let lists = EnrichLists::load(&config.server).map_err(|e| StartError::Setup(e.join("\n")))?;
                let geo = load_geo(&config)?;
                let table = LinkTable::load(&config.server.links, &config.server, &config.domains)?;
                Ok::<_, StartError>((lists, geo, table))
            })
            .await
            .map_err(|e| StartError::Setup(format!("start-up task failed: {e}")))??
        };
        let (lists, geo, mut loaded_table) = setup;
        loaded_table.bind_metrics(&metrics);
        let loaded = Loaded {
            links: loaded_table.len(),
            domains: loaded_table.domain_count(),
            geoip: format!(
                "{} (built {})",
                geo.database_type(),
                crate::enrich::event::format_timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(geo.build_epoch()))
            ),
        };
        metrics.links.set(loaded_table.len() as u64);
        metrics.last_reload_unix.set(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        table.store(Arc::new(loaded_table));
        let lists = Arc::new(ArcSwap::from_pointee(lists));

        // Spool, with one cursor per sink.
        let specs: Vec<SinkSpec> = config
            .sinks
            .iter()
            .map(|s| SinkSpec {
                name: s.name.clone(),
                budget_bytes: s.common.spool_max_bytes,
                filter: Filter {
                    humans_only: s.common.humans_only,
                    workspaces: s.common.workspaces.clone(),
                    domains: s.common.domains.clone(),
                },
                metrics: metrics.sink(&s.name),
            })
            .collect();
        let (spool, writer) = {
            let dir = server_config.spool_dir.clone();
            let seg = config.spool.segment_max_bytes;
            tokio::task::spawn_blocking(move || Spool::open(&dir, seg, specs))
                .await
                .map_err(|e| StartError::Setup(format!("spool task failed: {e}")))??
        };
        metrics.spool_durable_seq.set(spool.durable_seq());
        // The gauge follows the durable sequence as the spool's sync thread publishes it.
        {
            let (mut durable, metrics) = (spool.subscribe(), metrics.clone());
            tokio::spawn(async move {
                while durable.changed().await.is_ok() {
                    metrics.spool_durable_seq.set(*durable.borrow_and_update());
                }
            });
        }

        // Pipeline thread.
        let (queue, rx) = ClickQueue::bounded(server_config.click_queue_events, metrics.clone());
        let sessions = Arc::new(SessionTracker::new(
            config.session.idle_timeout,
            config.session.max_entries,
        ));
        let enricher = Enricher::new(
            lists.clone(),
            Arc::new(geo),
            crate::enrich::client_ip::TrustedProxies::new(&server_config.trusted_proxies),
            sessions,
            metrics.clone(),
        );
        let stop_pipeline = Arc::new(AtomicBool::new(false));
        let pipeline = crate::pipeline::spawn(
            rx,
            enricher,
            writer,
            config.spool.flush_interval,
            metrics.clone(),
            stop_pipeline.clone(),
        )
        .map_err(|e| StartError::Setup(format!("cannot start the pipeline thread: {e}")))?;

        // Listeners.
        let threads = Arc::new(
            listener::ServingThreads::per_cpu()
                .map_err(|e| StartError::Setup(format!("cannot start the serving threads: {e}")))?,
        );
        let reserve = fd_budget::Reserve::of(&config, threads.len());
        let max_connections = fd_budget::fit_max_connections(server_config.max_connections, nofile, reserve)
            .map_err(StartError::Setup)?;
        metrics.max_connections.set(max_connections as u64);
        let limits = ConnLimits {
            max_connections,
            ..ConnLimits::from_config(server_config)
        };
        let bind_error = |source| StartError::Bind {
            addr: server_config.listen,
            source,
        };
        let listeners = listener::bind_per_thread(server_config.listen, threads.len()).map_err(bind_error)?;
        let addr = listeners[0].local_addr().map_err(bind_error)?;
        let (drain, drain_rx) = watch::channel(false);
        let router = Arc::new(Router::new(table.clone(), queue, metrics.clone()));
        let server_task = tokio::spawn(listener::serve_plain(
            listeners,
            threads.clone(),
            router.clone(),
            limits.clone(),
            metrics.clone(),
            shutdown_rx.clone(),
            server_config.shutdown_grace,
        ));
        // Sinks, on their own runtime.
        let delivery = DeliveryRuntime::start()?;
        let mut sinks = Vec::new();
        for s in &config.sinks {
            let ctx = DriverContext {
                name: s.name.clone(),
                spool: spool.clone(),
                common: s.common.clone(),
                metrics: metrics.sink(&s.name),
                drain: drain_rx.clone(),
            };
            let handle = match &s.kind {
                SinkKind::File { dir } => delivery.handle().spawn(sink::run(FileSink::new(dir.clone()), ctx)),
                SinkKind::Webhook(w) => {
                    let prefix = format!("msg_{}_{}", server_config.node_id, spool.id());
                    let hook = WebhookSink::new(w.clone(), prefix).map_err(|e| {
                        StartError::Setup(format!("[[sink]] {}: cannot build the HTTP client: {e}", s.name))
                    })?;
                    delivery.handle().spawn(sink::run(hook, ctx))
                }
                SinkKind::S3(c) => {
                    // Built on the delivery runtime, so the SDK's client lives there too.
                    let (c, node, spool_id) = (c.clone(), server_config.node_id.clone(), spool.id().to_string());
                    delivery
                        .handle()
                        .spawn(async move { sink::run(S3Sink::new(c, node, spool_id).await, ctx).await })
                }
            };
            sinks.push(handle);
        }

        // TLS listener, with certificates picked by SNI.
        let (mut tls_addr, mut certs, mut tls_task) = (None, None, None);
        if let Some(tls) = &config.tls {
            let sources = tls.sources.clone();
            let store = tokio::task::spawn_blocking(move || crate::edge::tls::CertStore::load(sources))
                .await
                .map_err(|e| StartError::Setup(format!("certificate task failed: {e}")))?
                .map_err(|errors| StartError::Setup(format!("TLS certificates:\n  {}", errors.join("\n  "))))?;
            let store = Arc::new(store);
            let acceptor = tokio_rustls::TlsAcceptor::from(store.server_config(tls.http2));
            let bind_error = |source| StartError::Bind {
                addr: tls.listen,
                source,
            };
            let listeners = listener::bind_per_thread(tls.listen, threads.len()).map_err(bind_error)?;
            tls_addr = Some(listeners[0].local_addr().map_err(bind_error)?);
            tls_task = Some(tokio::spawn(https::serve_tls(
                listeners,
                threads.clone(),
                acceptor,
                router.clone(),
                limits,
                metrics.clone(),
                shutdown_rx.clone(),
                server_config.shutdown_grace,
            )));
            tokio::spawn(watch_certificates(
                store.clone(),
                tls.sources.clone(),
                server_config.reload_poll_interval,
                shutdown_rx.clone(),
            ));
            tracing::info!(tls = ?tls_addr, certificates = ?store.names(), "TLS listener up");
            certs = Some(store);
        }

        let reloader = Arc::new(Reloader::new(config.clone(), table, lists, metrics.clone()));
        tokio::spawn(reloader.clone().watch_files(shutdown_rx));
        admin.ready.store(true, Ordering::Relaxed);
        Ok((
            Node {
                addr,
                admin_addr,
                tls_addr,
                max_connections,
                certs,
                tls_task,
                metrics,
                spool,
                reloader,
                admin,
                shutdown,
                drain,
                stop_pipeline,
                router: Some(router),
                server_task,
                pipeline,
                sinks,
                delivery,
                grace: server_config.shutdown_grace,
            },
            loaded,
        ))
    }

    /// Reloads the link table now (as SIGHUP does; `force` as SIGUSR1).
    pub async fn reload(&self, force: bool) -> Result<ReloadSummary, ReloadError> {
        self.reloader.reload(force).await
    }

    /// Re-reads the TLS certificates (as SIGHUP does); the old ones stay on any error.
    pub async fn reload_certificates(&self) -> Option<Result<usize, Vec<String>>> {
        let store = self.certs.clone()?;
        let result = tokio::task::spawn_blocking(move || store.reload())
            .await
            .unwrap_or_else(|e| Err(vec![format!("certificate reload task failed: {e}")]));
        match &result {
            Ok(n) => tracing::info!(certificates = n, "TLS certificates reloaded"),
            Err(errors) => tracing::error!(
                "TLS certificates refused, keeping the current ones: {}",
                errors.join("; ")
            ),
        }
        Some(result)
    }

    /// Stops the node without losing an answered click (see the module docs).
    pub async fn shutdown(mut self) {
        self.admin.ready.store(false, Ordering::Relaxed);
        // The send only fails when every receiver is gone, which means they have stopped.
        let _ = self.shutdown.send(true);
        if let Err(e) = (&mut self.server_task).await {
            tracing::warn!(error = %e, "listener task failed");
        }
        if let Some(task) = self.tls_task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "TLS listener task failed");
        }
        // In-flight requests are done (or past the grace period): no more clicks can arrive.
        self.router.take();
        self.stop_pipeline.store(true, Ordering::Relaxed);
        let pipeline = self.pipeline;
        if tokio::task::spawn_blocking(move || pipeline.join()).await.is_err() {
            tracing::error!("pipeline thread failed; unflushed clicks may be lost");
        }
        let _ = self.drain.send(true); // receivers gone means the sinks already stopped
        let deadline = tokio::time::Instant::now() + self.grace;
        for task in &mut self.sinks {
            if tokio::time::timeout_at(deadline, &mut *task).await.is_err() {
                task.abort();
            }
        }
        self.delivery.stop();
        let left: u64 = self.spool.durable_seq();
        tracing::info!(
            durable_seq = left,
            "stopped; undelivered events stay in the spool for the next start"
        );
    }
}

/// Reloads the certificates when a certificate or key file (or the `[tls] dir` listing) changes.
async fn watch_certificates(
    store: Arc<crate::edge::tls::CertStore>,
    sources: crate::edge::tls::TlsSources,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    if interval.is_zero() {
        return;
    }
    let stamp = move || -> Vec<(std::path::PathBuf, Option<(SystemTime, u64)>)> {
        let mut paths: Vec<std::path::PathBuf> = sources
            .domains
            .iter()
            .flat_map(|d| [d.cert.clone(), d.key.clone()])
            .chain(
                sources
                    .default_cert
                    .iter()
                    .flat_map(|c| [c.cert.clone(), c.key.clone()]),
            )
            .collect();
        if let Some(dir) = &sources.dir
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            paths.extend(entries.flatten().map(|e| e.path()));
        }
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let m = std::fs::metadata(&p)
                    .ok()
                    .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
                (p, m)
            })
            .collect()
    };
    let stamp = Arc::new(stamp);
    let s = stamp.clone();
    let mut last = tokio::task::spawn_blocking(move || s()).await.unwrap_or_default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = crate::shutdown::until_true(&mut shutdown) => return,
        }
        let s = stamp.clone();
        let now = tokio::task::spawn_blocking(move || s()).await.unwrap_or_default();
        if now != last {
            last = now;
            let store = store.clone();
            match tokio::task::spawn_blocking(move || store.reload()).await {
                Ok(Ok(n)) => tracing::info!(certificates = n, "certificate files changed; reloaded"),
                Ok(Err(errors)) => tracing::error!(
                    "certificate files changed but were refused, keeping the current ones: {}",
                    errors.join("; ")
                ),
                Err(e) => tracing::error!(error = %e, "certificate reload task failed"),
            }
        }
    }
}
