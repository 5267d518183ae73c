//! The edge: everything between a socket and the answer to a request — **the hit path**.
//!
//! - [`redirect`]: one request in, one answer out, and for a click one [`crate::click::Hit`]
//!   handed off without waiting. Its `//!` lists the hit path's invariants.
//! - [`h1`]: the plain listener's own HTTP/1.1 loop over `httparse`.
//! - [`https`]: the TLS listener's connections (hyper, HTTP/2 or HTTP/1.1 by ALPN).
//! - [`listener`]: the serving threads, per-thread sockets, accept loops, connection limits and
//!   timeouts, graceful shutdown.
//! - [`acme`]: ACME HTTP-01 challenge files.
//! - [`fd_budget`]: the open-file limit raised at start, and `max_connections` fit under it.
//! - [`tls`]: certificates per custom domain, chosen by SNI, reloaded atomically.
//!
//! Nothing here waits on I/O other than the client's socket, and nothing below this module
//! (`links`, `click`, `config`, `metrics`) knows of it.

pub mod acme;
pub mod fd_budget;
pub mod h1;
pub mod https;
pub mod listener;
pub mod redirect;
pub mod tls;

#[cfg(test)]
mod proptests;
