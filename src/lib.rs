//! clickstream: a redirect edge server for branded short links, with an integrated clickstream.
//!
//! # Layout
//!
//! Bottom up; a module imports only from the layers below it (a test in `tests/it/layout.rs`
//! fails on an import cycle among these).
//!
//! - Leaves: [`metrics`] (counters), [`json`] (the hand-written JSON pieces of an event),
//!   [`shutdown`] (the flag every task watches).
//! - [`config`]: the TOML file and environment, validated into plain typed settings
//!   (`raw`, `validate`, `sink`); the owners build their runtime objects from them.
//! - [`links`]: the link table (`link`, `parse`, `load`) and its `O(1)` lookup structure.
//! - [`click`]: the [`click::Hit`] a request leaves behind and the bounded queue it goes into.
//! - [`edge`]: **the hit path** — [`edge::redirect`] (one request in, one answer out, one hit
//!   handed off without waiting), [`edge::h1`] (the plain listener's own HTTP/1.1 loop),
//!   [`edge::https`] (hyper on TLS), [`edge::listener`] (serving threads, accept loops, limits),
//!   [`edge::acme`], and [`edge::tls`] (certificates by SNI).
//! - [`enrich`]: user agent and bots, GeoIP, client IP, language, referrer, sessions, and
//!   [`enrich::event`], the click event's exact JSON.
//! - [`pipeline`]: the thread that enriches hits into events and appends them to the spool.
//! - [`spool`]: the durable on-disk queue, one cursor per sink.
//! - [`sink`]: delivery written once (batching, retries, dead letters) and the file, webhook and
//!   S3 destinations.
//! - [`reload`], [`admin`]: hot reload of the table; counters, health and link debugging.
//! - [`app`]: a running node, wired together, and its orderly shutdown.
//!
//! # Data flow
//!
//! ```text
//!  request ──▶ edge::listener / h1 / https ──▶ edge::redirect::Router::answer ──▶ 30x response
//!                              │ click::ClickQueue::offer (bounded; full = counted drop)
//!                              ▼
//!                         click queue ──▶ pipeline thread: enrich ─▶ event JSON ─▶ spool
//!                                                                   (fsync / 200 ms) │
//!                                                                      one cursor each
//!                                              ┌───────────────┬───────────────┤
//!                                              ▼               ▼               ▼
//!                                         file sink      webhook sink      S3 sink
//! ```
//!
//! # Threads
//!
//! - `clickstream-serve`, one per CPU: the plain listener's connections, dealt in turn, each
//!   thread a single-threaded runtime with its own epoll (see [`edge::listener`]).
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
