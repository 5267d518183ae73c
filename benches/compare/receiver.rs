//! The webhook receiver of `benches/compare.sh`: counts the click events clickstream delivers.
//!
//! ```text
//! cargo run --release --example compare-receiver -- --port 18092
//! ```
//!
//! - `POST` or `PUT` to any path: the body is clickstream's webhook payload,
//!   `{"data":[event, ...],"key":"..."}`. The receiver adds its events to the count, remembers
//!   each event `id` (delivery is at least once, so unique ids are counted too) and answers 200.
//!   A body that is not such a payload answers 400 and counts as bad.
//! - `GET /count` answers `{"events":N,"unique":U,"requests":R,"bad":B}`.
//!
//! It shares the machine with the servers under test, so it does as little as it can while the
//! load runs: the ids are found by searching for the `{"id":"` that starts every event (an
//! event's other `id` fields are not at the start of an object) and cross-checked against the
//! number of `"timestamp":"` keys. Every `--verify-every`-th body is also kept and parsed in
//! full with serde_json when the counts are next read (after the load): its `data` must hold
//! the same ids in the same order, or it counts as bad. One thread, on 127.0.0.1 only,
//! keep-alive connections.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use memchr::memmem;

const EVENT_START: &[u8] = br#"{"id":""#;
const TIMESTAMP_KEY: &[u8] = br#""timestamp":""#;

#[derive(Default)]
struct Counts {
    events: u64,
    requests: u64,
    bad: u64,
    ids: HashSet<u128, foldhash::fast::RandomState>,
    /// Bodies still to be checked by a full parse, with the ids the fast count found.
    to_verify: Vec<(Bytes, Vec<u128>)>,
}

struct Receiver {
    counts: Mutex<Counts>,
    verify_every: u64,
}

impl Receiver {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn post(&self, body: Bytes) -> StatusCode {
        let ids = event_ids(&body);
        let mut c = self.counts();
        c.requests += 1;
        let Some(ids) = ids else {
            c.bad += 1;
            return StatusCode::BAD_REQUEST;
        };
        if (c.requests - 1).is_multiple_of(self.verify_every) {
            c.to_verify.push((body, ids.clone()));
        }
        c.events += ids.len() as u64;
        c.ids.extend(ids);
        StatusCode::OK
    }

    fn count(&self) -> String {
        let pending = std::mem::take(&mut self.counts().to_verify);
        let bad = pending
            .iter()
            .filter(|(body, ids)| full_parse_ids(body).as_ref() != Some(ids))
            .count() as u64;
        let mut c = self.counts();
        c.bad += bad;
        format!(
            r#"{{"events":{},"unique":{},"requests":{},"bad":{}}}"#,
            c.events,
            c.ids.len(),
            c.requests,
            c.bad
        )
    }
}

/// The event ids of a webhook body, or `None` when it is not a clickstream payload.
fn event_ids(body: &[u8]) -> Option<Vec<u128>> {
    if !body.starts_with(br#"{"data":["#) {
        return None;
    }
    let ids: Vec<u128> = memmem::find_iter(body, EVENT_START)
        .filter_map(|at| {
            let start = at + EVENT_START.len();
            let text = body.get(start..start + 36)?;
            (body.get(start + 36) == Some(&b'"')).then_some(())?;
            uuid(text)
        })
        .collect();
    // Every event has exactly one "timestamp" key: a cheap cross-check of the count.
    (ids.len() == memmem::find_iter(body, TIMESTAMP_KEY).count()).then_some(ids)
}

/// A hyphenated lower-case UUID as a number.
fn uuid(text: &[u8]) -> Option<u128> {
    let mut n = 0u128;
    for (i, &b) in text.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if b != b'-' {
                return None;
            }
            continue;
        }
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        n = n << 4 | u128::from(digit);
    }
    Some(n)
}

/// The event ids of a webhook body by a full JSON parse, or `None` when it does not parse.
fn full_parse_ids(body: &[u8]) -> Option<Vec<u128>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value
        .get("data")?
        .as_array()?
        .iter()
        .map(|event| uuid(event.get("id")?.as_str()?.as_bytes()))
        .collect()
}

async fn serve(receiver: Arc<Receiver>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match *req.method() {
        Method::GET if req.uri().path() == "/count" => (StatusCode::OK, receiver.count()),
        Method::POST | Method::PUT => match req.into_body().collect().await {
            Ok(body) => (receiver.post(body.to_bytes()), String::new()),
            Err(_) => (StatusCode::BAD_REQUEST, String::new()),
        },
        _ => (StatusCode::NOT_FOUND, String::new()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut port, mut verify_every) = (None, 20u64);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--port" => port = Some(u16::try_from(value("--port")?).map_err(|_| "--port: not a port")?),
            "--verify-every" => verify_every = value("--verify-every")?.max(1),
            _ => return Err(format!("unknown argument {arg:?}; usage: --port N [--verify-every N]")),
        }
    }
    let port = port.ok_or("--port is required")?;
    let receiver = Arc::new(Receiver {
        counts: Mutex::default(),
        verify_every,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let receiver = receiver.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| serve(receiver.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID1: &str = "0190f3a0-0000-7000-8000-000000000001";
    const ID2: &str = "0190f3a0-0000-7000-8000-0000000000ff";

    fn body(ids: &[&str]) -> Vec<u8> {
        let events: Vec<String> = ids
            .iter()
            .map(|id| format!(r#"{{"id":"{id}","timestamp":"t","route":{{"id":"x"}}}}"#))
            .collect();
        format!(r#"{{"data":[{}],"key":"k"}}"#, events.join(",")).into_bytes()
    }

    #[test]
    fn ids_are_found_and_checked() {
        let b = body(&[ID1, ID2]);
        let ids = event_ids(&b).unwrap();
        let prefix = 0x0190_f3a0_0000_7000_8000_u128 << 48;
        assert_eq!(ids, vec![prefix | 1, prefix | 0xff]);
        assert_eq!(full_parse_ids(&b), Some(ids));
        assert!(event_ids(br#"{"other":1}"#).is_none());
        let torn = String::from_utf8(body(&[ID1]))
            .unwrap()
            .replace(r#""timestamp""#, r#""time""#);
        assert!(event_ids(torn.as_bytes()).is_none());
        assert!(event_ids(&body(&["0190F3A0-0000-7000-8000-000000000001"])).is_none());
    }

    #[test]
    fn counts_are_unique_and_sampled_bodies_are_verified() {
        let r = Receiver {
            counts: Mutex::default(),
            verify_every: 1,
        };
        assert_eq!(r.post(Bytes::from(body(&[ID1, ID2]))), StatusCode::OK);
        assert_eq!(r.post(Bytes::from(body(&[ID2]))), StatusCode::OK);
        assert_eq!(r.post(Bytes::from_static(b"nope")), StatusCode::BAD_REQUEST);
        assert_eq!(r.count(), r#"{"events":3,"unique":2,"requests":3,"bad":1}"#);
        // The fast count takes a torn body; the full parse of the sample does not.
        let mut torn = body(&[ID1]);
        torn.pop();
        assert_eq!(r.post(Bytes::from(torn)), StatusCode::OK);
        assert_eq!(r.count(), r#"{"events":4,"unique":2,"requests":4,"bad":2}"#);
    }
}
