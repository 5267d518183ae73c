//! File descriptors: the process's open-file limit (`RLIMIT_NOFILE`) raised to its hard limit at
//! start, and `max_connections` lowered, with a warning, to what that limit leaves once the
//! descriptors the rest of the process needs are set aside.
//!
//! Why: every connection is a descriptor, and so is everything else the process opens. With
//! `max_connections` above the limit, the listeners took the last descriptors and everything
//! else then failed with "Too many open files": ACME challenge files (a certificate renewal
//! fails), spool segments (no click delivered), the accept loops themselves. systemd's default
//! soft limit is 1,024 (hard 524,288) and the default `max_connections` is 10,000.
//!
//! The reserve, each part and why ([`Reserve`], counted for the actual configuration):
//! - 3 for standard input, output and error;
//! - 4 per tokio runtime (two epoll instances, its waker's eventfd and its copy of the signal
//!   socket, as `/proc/<pid>/fd` shows them): one per serving thread, the worker runtime and the
//!   delivery runtime; 2 for the signal socket pair;
//! - the listening sockets (one per serving thread per listener, and the admin listener) and,
//!   per listener, the one accepted connection each accept loop may hold over the limit
//!   (`listener`);
//! - 16 admin connections (the admin listener has no limit of its own: a scraper, a probe and
//!   an operator's curl);
//! - 16 ACME challenge files read at once, when `acme_challenge_dir` is set;
//! - 4 for the spool: the head segment, the directory synced after a rename, a segment being
//!   deleted by the reaper, a new segment while the old one closes;
//! - 8 per sink: its spool reader's segment, its cursor file and directory while saved, its
//!   dead-letter file, and its destination (the file sink's hour file; a webhook's or S3's
//!   connection, one being opened, a DNS lookup's socket, the credential chain's files);
//! - 12 for reloads: the link table read by up to 8 threads, the bot, referrer and GeoIP files,
//!   certificate files;
//! - 32 of margin for libraries' own (`/dev/urandom`, `/proc` reads, DNS configuration files).
//!
//! With two CPUs, no TLS and the default file sink that is 98 descriptors (at rest such a
//! process has 27 open); each CPU adds 6, each sink 8, TLS 2 a CPU. With both listeners each
//! allowed `max_connections`, what is left after the reserve is split between them: under a
//! limit of 1,024, 926 connections, or 461 a listener with TLS. `app` raises the limit before it
//! opens anything and fits `max_connections` before it binds the listeners.

use crate::config::Config;

/// Standard input, output and error.
const STDIO_FDS: usize = 3;
/// A tokio runtime's descriptors (see the module docs).
const RUNTIME_FDS: usize = 4;
/// Runtimes besides the serving threads': the worker runtime and the delivery runtime.
const OTHER_RUNTIMES: usize = 2;
/// tokio's signal socket pair.
const SIGNAL_FDS: usize = 2;
/// Admin connections served at once.
const ADMIN_CONNECTION_FDS: usize = 16;
/// ACME challenge files open at once.
const ACME_FILE_FDS: usize = 16;
/// The spool's own files (see the module docs).
const SPOOL_FDS: usize = 4;
/// Files and connections of one sink (see the module docs).
const PER_SINK_FDS: usize = 8;
/// Files read by a reload.
const RELOAD_FDS: usize = 12;
/// Libraries' own descriptors.
const MARGIN_FDS: usize = 32;

/// The process's open-file limit after [`raise_nofile_limit`]: the soft limit and the hard one
/// (`None`: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The limit in force.
    pub soft: Option<u64>,
    /// What the soft limit may be raised to.
    pub hard: Option<u64>,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the limit then in force. A
/// refusal (a hard limit of "unlimited", which Linux does not take as a soft one) is logged and
/// the soft limit kept.
pub fn raise_nofile_limit() -> NofileLimit {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(
                soft = ?limit.current,
                hard = ?limit.maximum,
                error = %e,
                "cannot raise the open-file limit (RLIMIT_NOFILE) to its hard limit; keeping the soft one"
            );
        }
    }
    let now = getrlimit(Resource::Nofile);
    NofileLimit {
        soft: now.current,
        hard: now.maximum,
    }
}

/// The descriptors set aside for everything but client connections (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserve {
    /// Descriptors set aside.
    pub fds: usize,
    /// Listeners that each take up to `max_connections` (plain, and TLS when configured).
    pub listeners: usize,
}

impl Reserve {
    /// The reserve of a process serving `config` on `serving_threads` threads.
    pub fn of(config: &Config, serving_threads: usize) -> Reserve {
        let listeners = 1 + usize::from(config.tls.is_some());
        let acme = if config.server.acme_challenge_dir.is_some() {
            ACME_FILE_FDS
        } else {
            0
        };
        let sinks = config.sinks.len() * PER_SINK_FDS;
        let fds = STDIO_FDS
            + RUNTIME_FDS * (serving_threads + OTHER_RUNTIMES)
            + SIGNAL_FDS
            // Listening sockets, and the connection each accept loop may hold over the limit.
            + listeners * 2 * serving_threads
            // The admin listener and its connections.
            + 1
            + ADMIN_CONNECTION_FDS
            + acme
            + SPOOL_FDS
            + sinks
            + RELOAD_FDS
            + MARGIN_FDS;
        Reserve { fds, listeners }
    }

    /// The most connections each listener may take under an open-file limit of `soft`
    /// descriptors: what the reserve leaves, split between the listeners; `None` when it leaves
    /// nothing. Unlimited (`None`) leaves `usize::MAX`.
    pub fn connections_under(&self, soft: Option<u64>) -> Option<usize> {
        let Some(soft) = soft else {
            return Some(usize::MAX);
        };
        let soft = usize::try_from(soft).unwrap_or(usize::MAX);
        let per_listener = soft.checked_sub(self.fds)? / self.listeners.max(1);
        (per_listener > 0).then_some(per_listener)
    }
}

/// `max_connections` as configured, or lowered to fit `limit` (with a warning); `Err` with a
/// message when the limit leaves no descriptor for connections at all.
pub fn fit_max_connections(configured: usize, limit: NofileLimit, reserve: Reserve) -> Result<usize, String> {
    // What `configured` connections on every listener would need.
    let needed = reserve.fds.saturating_add(reserve.listeners.saturating_mul(configured));
    let Some(fits) = reserve.connections_under(limit.soft) else {
        return Err(format!(
            "the open-file limit (RLIMIT_NOFILE) of {} leaves no descriptor for connections once {} are set \
             aside for the rest of the process: raise it (ulimit -Hn, systemd LimitNOFILE=) to {needed} for \
             [server] max_connections = {configured}",
            limit.soft.unwrap_or(0),
            reserve.fds,
        ));
    };
    if configured <= fits {
        return Ok(configured);
    }
    tracing::warn!(
        configured,
        effective = fits,
        nofile = limit.soft.unwrap_or(u64::MAX),
        reserved = reserve.fds,
        listeners = reserve.listeners,
        "[server] max_connections lowered from {configured} to {fits} per listener: the open-file limit \
         (RLIMIT_NOFILE, raised to its hard limit) is {}, and {} descriptors are set aside for the rest of the \
         process; raise the hard limit (ulimit -Hn, systemd LimitNOFILE=) to {needed} to serve {configured}",
        limit.soft.unwrap_or(0),
        reserve.fds,
    );
    Ok(fits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reserve(fds: usize, listeners: usize) -> Reserve {
        Reserve { fds, listeners }
    }

    #[test]
    fn connections_fit_under_the_limit_after_the_reserve() {
        let limit = |soft: Option<u64>| NofileLimit { soft, hard: soft };
        // (soft limit, reserve, listeners, configured) → effective
        let cases = [
            (Some(1_048_576u64), 100, 1, 10_000, Some(10_000)),
            (None, 100, 2, 10_000, Some(10_000)),
            (Some(1024), 100, 1, 10_000, Some(924)),
            (Some(1024), 100, 2, 10_000, Some(462)),
            (Some(1024), 100, 2, 300, Some(300)),
            (Some(100), 100, 1, 10, None),
            (Some(50), 100, 1, 10, None),
        ];
        for (soft, fds, listeners, configured, want) in cases {
            let got = fit_max_connections(configured, limit(soft), reserve(fds, listeners)).ok();
            assert_eq!(
                got, want,
                "soft {soft:?}, reserve {fds}, {listeners} listeners, {configured}"
            );
        }
    }

    #[test]
    fn the_reserve_counts_what_the_configuration_opens() {
        let plain = Config::embedded_default();
        let r = Reserve::of(&plain, 2);
        // 3 + 4 * (2 + 2) + 2 + 1 * 2 * 2 + 1 + 16 + 0 + 4 + 8 (one file sink) + 12 + 32
        assert_eq!(r, reserve(98, 1));
        let mut acme = plain.clone();
        acme.server.acme_challenge_dir = Some("acme".into());
        assert_eq!(Reserve::of(&acme, 2).fds, 98 + ACME_FILE_FDS);
        assert_eq!(Reserve::of(&plain, 8).fds, 98 + 6 * RUNTIME_FDS + 6 * 2);
    }
}
