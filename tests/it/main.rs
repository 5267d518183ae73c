//! The integration tests: one binary (each test binary links the whole crate, which is slow to
//! build), one module per area, all against the real server or binary on `127.0.0.1:0`.

mod common;

mod cli;
mod clicks;
mod durability;
mod framing;
mod layout;
mod operations;
mod redirect;
mod resources;
mod s3;
mod tls;
mod webhook;
