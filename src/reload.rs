//! Hot reload of the link table (and the bot and referrer lists that travel with it).
//!
//! Triggered by SIGHUP (`main`), by a change of the file's modification time or size (polled
//! every `[server] reload_poll_interval`: polling works the same for editors that rewrite in
//! place, tools that rename a new file over the old one, and network filesystems where change
//! notifications are unreliable), or forced with SIGUSR1.
//!
//! The new table is parsed aside, on a blocking thread, and swapped in with one atomic pointer
//! store: requests see the old table or the new one, never a mix. A table with errors keeps the
//! old one; so does a valid table that would drop more than `[server] reload_max_drop` of the
//! links (a truncated export), unless the reload is forced. Either way the log says why.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::config::Config;
use crate::enrich::EnrichLists;
use crate::links::{LinkTable, LinkTableError};
use crate::metrics::Metrics;

/// Why a reload kept the old table.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file has errors.
    #[error(transparent)]
    Table(#[from] LinkTableError),
    /// The bot or referrer list has errors.
    #[error("enrichment lists: {}", .0.join("; "))]
    Lists(Vec<String>),
    /// The new table would drop too many links.
    #[error(
        "the new table has {new} links against {old} now: it would drop {dropped_pct:.0}% of them, more than the {limit_pct:.0}% allowed by [server] reload_max_drop; fix the file, or force the reload with SIGUSR1"
    )]
    TooManyDropped {
        /// Links now.
        old: usize,
        /// Links in the file.
        new: usize,
        /// Share dropped, percent.
        dropped_pct: f64,
        /// Allowed share, percent.
        limit_pct: f64,
    },
}

/// What a successful reload loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Links before.
    pub previous: usize,
    /// Links now.
    pub links: usize,
    /// Domains now.
    pub domains: usize,
}

/// Reloads the table into the shared pointer the router reads.
pub struct Reloader {
    config: Arc<Config>,
    table: Arc<ArcSwap<LinkTable>>,
    lists: Arc<ArcSwap<EnrichLists>>,
    metrics: Arc<Metrics>,
    /// One reload at a time: a signal during a slow parse waits instead of racing it.
    busy: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// A reloader for the configured link file.
    pub fn new(
        config: Arc<Config>,
        table: Arc<ArcSwap<LinkTable>>,
        lists: Arc<ArcSwap<EnrichLists>>,
        metrics: Arc<Metrics>,
    ) -> Reloader {
        Reloader {
            config,
            table,
            lists,
            metrics,
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// Parses the file aside and swaps it in; `force` skips the shrink guard.
    pub async fn reload(&self, force: bool) -> Result<ReloadSummary, ReloadError> {
        let _busy = self.busy.lock().await;
        let config = self.config.clone();
        let parsed = tokio::task::spawn_blocking(move || {
            let table = LinkTable::load(&config.server.links, &config.server, &config.domains);
            let lists = EnrichLists::load(&config.server);
            (table, lists)
        })
        .await
        .map_err(|e| ReloadError::Lists(vec![format!("reload task failed: {e}")]))?;
        let result = self.apply(parsed, force);
        match &result {
            Ok(s) => {
                self.metrics.reloads_ok.inc();
                self.metrics.links.set(s.links as u64);
                self.metrics.last_reload_unix.set(unix_now());
                tracing::info!(
                    links = s.links,
                    previous = s.previous,
                    domains = s.domains,
                    "link table reloaded"
                );
            }
            Err(e) => {
                self.metrics.reloads_failed.inc();
                tracing::error!("reload refused, keeping the current table: {e}");
            }
        }
        result
    }

    fn apply(
        &self,
        (table, lists): (Result<LinkTable, LinkTableError>, Result<EnrichLists, Vec<String>>),
        force: bool,
    ) -> Result<ReloadSummary, ReloadError> {
        let mut table = table?;
        let lists = lists.map_err(ReloadError::Lists)?;
        table.bind_metrics(&self.metrics);
        let previous = self.table.load().len();
        let dropped = previous.saturating_sub(table.len());
        let limit = self.config.server.reload_max_drop_ratio;
        if !force && previous > 0 && dropped as f64 > limit * previous as f64 {
            return Err(ReloadError::TooManyDropped {
                old: previous,
                new: table.len(),
                dropped_pct: 100.0 * dropped as f64 / previous as f64,
                limit_pct: 100.0 * limit,
            });
        }
        let summary = ReloadSummary {
            previous,
            links: table.len(),
            domains: table.domain_count(),
        };
        self.table.store(Arc::new(table));
        self.lists.store(Arc::new(lists));
        Ok(summary)
    }

    /// Polls the link file (and the configured lists) and reloads when one changes.
    pub async fn watch_files(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let interval = self.config.server.reload_poll_interval;
        if interval.is_zero() {
            return;
        }
        let paths: Vec<PathBuf> = [
            Some(self.config.server.links.clone()),
            self.config.server.bots.clone(),
            self.config.server.referrers.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let stamp = |paths: &[PathBuf]| -> Vec<Option<(SystemTime, u64)>> {
            paths
                .iter()
                .map(|p| {
                    std::fs::metadata(p)
                        .ok()
                        .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
                })
                .collect()
        };
        let mut last = stamp(&paths);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = crate::shutdown::until_true(&mut shutdown) => return,
            }
            let now = stamp(&paths);
            if now != last {
                // Let a writer that is still writing finish before reading.
                tokio::time::sleep(interval.min(Duration::from_millis(200))).await;
                last = stamp(&paths);
                tracing::info!("link table or list file changed; reloading");
                // The outcome is logged and counted by `reload`.
                let _ = self.reload(false).await;
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
