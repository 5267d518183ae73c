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
//! It shares the machine with the servers under test, so it does as little as it can while the load
//! runs: the body is scanned as its pieces arrive, without being gathered into one buffer, with one
//! search for `","timestamp":"`, which each event has once, after its id: an event starts with
//! `{"id":"<uuid>","timestamp":"` (the other objects with an `id` first, such as `route`, are not
//! followed by `"timestamp"`), so an event whose start is damaged is not counted, and the delivered
//! count falls short of the redirects served. Ids are only appended while the load runs (to a list
//! sized for `--expect` events up front, default 1,000,000: a 10 s run at 100,000 req/s, so it does
//! not grow under load); they are sorted and deduplicated when the counts are read, after the load:
//! a hash set insert per event cost this receiver more than its scan, in cache misses. Every
//! `--verify-every`-th body is also kept and parsed in full with serde_json when the counts are
//! next read (after the load): its `data` must hold the same ids in the same order, or it counts as
//! bad. One thread, on 127.0.0.1 only, keep-alive connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use memchr::memmem;

const BODY_START: &[u8] = br#"{"data":["#;
const EVENT_START: &[u8] = br#"{"id":""#;
/// What follows an event's id: the closing quote and the `timestamp` key.
const AFTER_ID: &[u8] = br#"","timestamp":""#;
/// Length of a hyphenated UUID.
const UUID_LEN: usize = 36;
/// Bytes from the start of an event to the end of what [`Scan`] checks of it.
const EVENT_HEAD_LEN: usize = EVENT_START.len() + UUID_LEN + AFTER_ID.len();

#[derive(Default)]
struct Counts {
    events: u64,
    requests: u64,
    bad: u64,
    /// Every id received; sorted and without duplicates after [`Receiver::count`].
    ids: Vec<u128>,
    /// Bodies still to be checked by a full parse, with the ids the fast count found.
    to_verify: Vec<(Bytes, Vec<u128>)>,
}

struct Receiver {
    counts: Mutex<Counts>,
    verify_every: u64,
    /// Bodies begun.
    started: AtomicU64,
}

impl Receiver {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a whole body (the tests' way in; the server scans bodies in pieces).
    #[cfg(test)]
    fn post(&self, body: Bytes) -> StatusCode {
        let sample = self.sample_next().then(|| body.clone());
        self.take(event_ids(&body), sample)
    }

    /// Counts a body's ids (`None`: not a payload); `sample` is the whole body when it was
    /// picked for the full parse.
    fn take(&self, ids: Option<Vec<u128>>, sample: Option<Bytes>) -> StatusCode {
        let mut c = self.counts();
        c.requests += 1;
        let Some(ids) = ids else {
            c.bad += 1;
            return StatusCode::BAD_REQUEST;
        };
        if let Some(body) = sample {
            c.to_verify.push((body, ids.clone()));
        }
        c.events += ids.len() as u64;
        c.ids.extend(ids);
        StatusCode::OK
    }

    /// Whether the body now starting is one of the every `verify_every`-th kept for the full
    /// parse.
    fn sample_next(&self) -> bool {
        self.started
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(self.verify_every)
    }

    fn count(&self) -> String {
        let pending = std::mem::take(&mut self.counts().to_verify);
        let bad = pending
            .iter()
            .filter(|(body, ids)| full_parse_ids(body).as_ref() != Some(ids))
            .count() as u64;
        let mut c = self.counts();
        c.bad += bad;
        c.ids.sort_unstable();
        c.ids.dedup();
        format!(
            r#"{{"events":{},"unique":{},"requests":{},"bad":{}}}"#,
            c.events,
            c.ids.len(),
            c.requests,
            c.bad
        )
    }
}

/// The event ids of a whole webhook body, or `None` when it is not a clickstream payload.
#[cfg(test)]
fn event_ids(body: &[u8]) -> Option<Vec<u128>> {
    let mut scan = Scan::default();
    scan.feed(body);
    scan.finish()
}

/// Finds the event ids of a body that arrives in pieces. An event head cut by a piece boundary
/// is found in `tail`: the last bytes of the previous pieces, joined with the start of the next.
#[derive(Default)]
struct Scan {
    ids: Vec<u128>,
    /// Bytes of the body seen so far.
    seen: usize,
    /// The body's last `EVENT_HEAD_LEN - 1` bytes so far (or fewer).
    tail: Vec<u8>,
    /// The body does not start as a payload.
    bad: bool,
}

impl Scan {
    fn feed(&mut self, piece: &[u8]) {
        if self.bad || piece.is_empty() {
            return;
        }
        if self.seen < BODY_START.len() {
            let want = &BODY_START[self.seen..];
            let n = want.len().min(piece.len());
            if piece[..n] != want[..n] {
                self.bad = true;
                return;
            }
        }
        // Each event has one `","timestamp":"`, right after its id (the session's time is
        // `"started"`), where `{"id":"` also starts `route`, `creator`, `workspace` and
        // `domain`: searching for the marker finds each event once. A head is taken where it
        // starts: in the previous pieces' tail (joined with this piece's start) or in this piece.
        const MARK_AT: usize = EVENT_START.len() + UUID_LEN;
        if !self.tail.is_empty() {
            let mut joined = std::mem::take(&mut self.tail);
            let from_tail = joined.len();
            joined.extend_from_slice(&piece[..piece.len().min(EVENT_HEAD_LEN - 1)]);
            for at in memmem::find_iter(&joined, AFTER_ID) {
                match at.checked_sub(MARK_AT) {
                    Some(start) if start < from_tail => self.head(&joined[start..at + AFTER_ID.len()]),
                    Some(_) => break,
                    None => {}
                }
            }
            joined.truncate(from_tail);
            self.tail = joined;
        }
        for at in memmem::find_iter(piece, AFTER_ID) {
            if let Some(start) = at.checked_sub(MARK_AT) {
                self.head(&piece[start..at + AFTER_ID.len()]);
            }
        }
        self.seen += piece.len();
        let keep = EVENT_HEAD_LEN - 1;
        if piece.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&piece[piece.len() - keep..]);
        } else {
            self.tail.extend_from_slice(piece);
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
    }

    /// The bytes up to an event's `","timestamp":"`: an event when they are `{"id":"<uuid>`.
    fn head(&mut self, head: &[u8]) {
        if head[..EVENT_START.len()] == *EVENT_START
            && let Some(id) = uuid(&head[EVENT_START.len()..EVENT_START.len() + UUID_LEN])
        {
            self.ids.push(id);
        }
    }

    fn finish(self) -> Option<Vec<u128>> {
        (!self.bad && self.seen >= BODY_START.len()).then_some(self.ids)
    }
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

/// Scans a body's pieces as they arrive; keeps them only when the body is sampled.
async fn take_body(receiver: &Receiver, mut body: Incoming) -> Result<StatusCode, hyper::Error> {
    let sampled = receiver.sample_next();
    let mut scan = Scan::default();
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            scan.feed(&data);
            if sampled {
                kept.extend_from_slice(&data);
            }
        }
    }
    Ok(receiver.take(scan.finish(), sampled.then(|| Bytes::from(kept))))
}

async fn serve(receiver: Arc<Receiver>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match *req.method() {
        Method::GET if req.uri().path() == "/count" => (StatusCode::OK, receiver.count()),
        Method::POST | Method::PUT => match take_body(&receiver, req.into_body()).await {
            Ok(status) => (status, String::new()),
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
    let (mut port, mut verify_every, mut expect) = (None, 20u64, 1_000_000u64);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--port" => port = Some(u16::try_from(value("--port")?).map_err(|_| "--port: not a port")?),
            "--verify-every" => verify_every = value("--verify-every")?.max(1),
            "--expect" => expect = value("--expect")?,
            _ => {
                return Err(format!(
                    "unknown argument {arg:?}; usage: --port N [--verify-every N] [--expect EVENTS]"
                ));
            }
        }
    }
    let port = port.ok_or("--port is required")?;
    if expect > 1_000_000_000 {
        return Err(format!("--expect {expect}: at most 1000000000 events"));
    }
    let expect = usize::try_from(expect).map_err(|_| "--expect: too large for this machine")?;
    let receiver = Arc::new(Receiver {
        counts: Mutex::new(Counts {
            ids: Vec::with_capacity(expect),
            ..Counts::default()
        }),
        verify_every,
        started: AtomicU64::new(0),
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
        // An event whose start is damaged is not counted.
        let torn = String::from_utf8(body(&[ID1]))
            .unwrap()
            .replace(r#""timestamp""#, r#""time""#);
        assert_eq!(event_ids(torn.as_bytes()), Some(vec![]));
        assert_eq!(
            event_ids(&body(&["0190F3A0-0000-7000-8000-000000000001"])),
            Some(vec![])
        );
    }

    #[test]
    fn bodies_in_pieces_give_the_same_ids() {
        let b = body(&[ID1, ID2, ID1, ID2, ID1]);
        let whole = event_ids(&b).unwrap();
        assert_eq!(whole.len(), 5);
        for size in 1..=b.len() {
            let mut scan = Scan::default();
            b.chunks(size).for_each(|piece| scan.feed(piece));
            assert_eq!(scan.finish().as_ref(), Some(&whole), "pieces of {size} bytes");
        }
        let mut torn = Scan::default();
        let bad = String::from_utf8(b.clone())
            .unwrap()
            .replacen(r#""timestamp""#, r#""tim""#, 1);
        bad.as_bytes().chunks(7).for_each(|piece| torn.feed(piece));
        assert_eq!(torn.finish().as_deref(), Some(&whole[1..]));
        let mut other = Scan::default();
        br#"{"nope":["#.chunks(3).for_each(|piece| other.feed(piece));
        assert!(other.finish().is_none());
    }

    #[test]
    fn counts_are_unique_and_sampled_bodies_are_verified() {
        let r = Receiver {
            counts: Mutex::default(),
            verify_every: 1,
            started: AtomicU64::new(0),
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
