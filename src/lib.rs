//! clickstream: a redirect edge server for branded short links, with an integrated clickstream.
//!
//! # Layout
//!
//! - [`config`]: the TOML file and environment, validated into typed settings.
//! - [`links`]: the link table (CSV / JSON Lines) and its `O(1)` lookup structure.
//! - [`server`]: listeners (plain HTTP/1.1; TLS with HTTP/2 by ALPN), connection limits and
//!   timeouts, ACME challenge files, graceful shutdown.
//! - [`h1`]: the plain listener's HTTP/1.1 connections, parsed with `httparse` and answered
//!   without hyper (hyper serves TLS and the admin listener).
//! - [`tls`]: certificates per custom domain, chosen by SNI, reloaded atomically.
//! - [`redirect`]: **the hit path** — one request in, one redirect out, one [`click::Hit`] handed
//!   off without waiting.
//! - [`click`]: the hit, the bounded click queue, and the click event's exact JSON shape.
//! - [`pipeline`]: the thread that enriches hits into events and appends them to the spool.
//! - [`enrich`]: user agent, bots, GeoIP, client IP, language, referrer, sessions.
//! - [`spool`]: the durable on-disk queue, one cursor per sink.
//! - [`sink`]: delivery written once (batching, retries, dead letters) and the file, webhook and
//!   S3 destinations.
//! - [`reload`]: hot reload of the link table.
//! - [`metrics`], [`admin`]: counters and the admin listener.
//! - [`app`]: a running node, wired together, and its orderly shutdown.
//!
//! # Data flow
//!
//! ```text
//!  request ──▶ server / h1 ──▶ redirect::Router::answer ──▶ 30x response
//!                              │ try_send (bounded; full = counted drop)
//!                              ▼
//!                         click queue ──▶ pipeline thread: enrich ─▶ JSON ─▶ spool (fsync / 200 ms)
//!                                                                              │ one cursor each
//!                                              ┌───────────────┬───────────────┤
//!                                              ▼               ▼               ▼
//!                                         file sink      webhook sink      S3 sink
//! ```
//!
//! # Threads
//!
//! - `clickstream-serve`, one per CPU: the plain listener's connections, dealt in turn, each
//!   thread a single-threaded runtime with its own epoll (see [`server`]).
//! - `clickstream-worker`: the multi-threaded runtime for the accept loops, TLS connections, the
//!   admin listener, reloads and certificate watching.
//! - `clickstream-pipeline`: enrichment and spool appends.
//! - `clickstream-sink`: the sinks, on a runtime of their own (one worker and its blocking pool
//!   for spool reads, cursor saves and gzip), so a delivery burst never holds up a request.
//! - `clickstream-spool-reaper`: removes delivered spool segments (see [`spool`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod app;
pub mod click;
pub mod config;
pub mod edge;
pub mod enrich;
pub mod json;
pub mod links;
pub mod metrics;
pub mod pipeline;
pub mod reload;
pub mod shutdown;
pub mod sink;
pub mod spool;
pub mod tls;

/// An error and its causes, `message: cause: cause`, leaving out a cause the text before already
/// says (most of this crate's errors put their source in their own message).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_chain_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let outer = crate::links::LinkTableError::Read {
            path: "links.csv".into(),
            source: io,
        };
        assert_eq!(
            super::error_chain(&outer),
            "links.csv: cannot read link table: no such file"
        );
        let wrapped = anyhow::Error::new(std::io::Error::other("disk full")).context("cannot write the spool");
        assert_eq!(super::error_chain(&*wrapped), "cannot write the spool: disk full");
    }
}
