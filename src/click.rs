//! Clicks: the [`Hit`] the hit path captures and the bounded [`ClickQueue`] that carries it off
//! the response path. The event a hit becomes is [`crate::enrich::event::ClickEvent`].
//!
//! The hit path only copies the few header values enrichment reads into a `Hit` (one small
//! buffer) and offers it to the queue; `enrich` turns hits into events on its own thread. This
//! module sits below `edge` (which fills it) and `enrich` (which drains it) and knows neither.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvError, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::{self, HeaderName};

use crate::json::visible_ascii;
use crate::links::Link;
use crate::metrics::Metrics;

/// One click as the hit path saw it, before enrichment.
#[derive(Debug)]
pub struct Hit {
    /// When the request was read (it is answered microseconds later).
    pub time: SystemTime,
    /// The link that answered.
    pub link: Link,
    /// The `Location` sent when the request's query was merged into the link's destination;
    /// `None` when it was the link's own.
    pub merged_location: Option<Arc<str>>,
    /// Socket peer; the client address is resolved from it and the forwarding headers later.
    pub peer: IpAddr,
    /// A `HEAD` request (classified as a bot).
    pub head: bool,
    /// The request headers enrichment reads.
    pub headers: HitHeaders,
}

/// The request headers a click event is built from, as sent: one owned copy of their bytes.
///
/// Copied rather than kept as handles into the request: a handle would pin the connection's
/// whole read buffer (8 KiB or more) until the pipeline thread drops the hit, so hyper would
/// allocate a fresh buffer for every request, and a full click queue would hold gigabytes.
#[derive(Debug, Default, Clone)]
pub struct HitHeaders {
    /// The captured values, back to back.
    bytes: Vec<u8>,
    /// Where each of [`CAPTURED`] is in `bytes`; `None` when the request did not send it.
    spans: [Option<(u32, u32)>; CAPTURED_COUNT],
}

const SEC_CH_UA: HeaderName = HeaderName::from_static("sec-ch-ua");
const SEC_CH_UA_MOBILE: HeaderName = HeaderName::from_static("sec-ch-ua-mobile");
const SEC_CH_UA_PLATFORM: HeaderName = HeaderName::from_static("sec-ch-ua-platform");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The headers a hit keeps, and whether every occurrence is kept (joined with `, `, RFC 9110
/// §5.3) or only the first. The accessors of [`HitHeaders`] index this list.
const CAPTURED_COUNT: usize = 8;
static CAPTURED: [(HeaderName, bool); CAPTURED_COUNT] = [
    (header::USER_AGENT, false),
    (header::REFERER, false),
    (header::ACCEPT_LANGUAGE, false),
    (SEC_CH_UA, false),
    (SEC_CH_UA_MOBILE, false),
    (SEC_CH_UA_PLATFORM, false),
    (header::FORWARDED, true),
    (X_FORWARDED_FOR, true),
];

/// The index in [`CAPTURED`] of a field name in any case. Dispatched on the length first: most
/// fields of a request are none of these, and this runs for every field of every hit.
fn captured_index(name: &str) -> Option<usize> {
    let candidates: &[usize] = match name.len() {
        7 => &[1],
        9 => &[3, 6],
        10 => &[0],
        15 => &[2, 7],
        16 => &[4],
        18 => &[5],
        _ => return None,
    };
    candidates
        .iter()
        .copied()
        .find(|&i| name.eq_ignore_ascii_case(CAPTURED[i].0.as_str()))
}

impl HitHeaders {
    /// Copies the values of the headers enrichment needs from hyper's map.
    pub fn from_map(map: &HeaderMap) -> HitHeaders {
        let mut captured = HitHeaders::empty();
        for (i, (name, all)) in CAPTURED.iter().enumerate() {
            let start = captured.bytes.len();
            let mut values = map.get_all(name).iter();
            let Some(first) = values.next() else { continue };
            captured.bytes.extend_from_slice(first.as_bytes());
            if *all {
                for v in values {
                    captured.bytes.extend_from_slice(b", ");
                    captured.bytes.extend_from_slice(v.as_bytes());
                }
            }
            captured.set_span(i, start);
        }
        captured
    }

    /// Copies the values of the headers enrichment needs from the plain listener's field list.
    pub fn from_list(list: &[httparse::Header<'_>]) -> HitHeaders {
        let mut captured = HitHeaders::empty();
        captured.capture_list(list);
        captured
    }

    fn empty() -> HitHeaders {
        HitHeaders {
            bytes: Vec::with_capacity(512),
            spans: Default::default(),
        }
    }

    /// [`HitHeaders::from_list`]'s work: one pass to find the
    /// fields, then their values copied in [`CAPTURED`]'s order. A list header sent more than
    /// once (rare) is joined by a second look at the fields after its first.
    fn capture_list(&mut self, list: &[httparse::Header<'_>]) {
        // For each captured header, its first field and how many fields it has.
        let mut first = [(0usize, 0u32); CAPTURED_COUNT];
        for (at, field) in list.iter().enumerate() {
            if let Some(i) = captured_index(field.name) {
                if first[i].1 == 0 {
                    first[i].0 = at;
                }
                first[i].1 += 1;
            }
        }
        for (i, &(at, count)) in first.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let start = self.bytes.len();
            self.bytes.extend_from_slice(list[at].value);
            if count > 1 && CAPTURED[i].1 {
                for field in &list[at + 1..] {
                    if captured_index(field.name) == Some(i) {
                        self.bytes.extend_from_slice(b", ");
                        self.bytes.extend_from_slice(field.value);
                    }
                }
            }
            self.set_span(i, start);
        }
    }

    /// Marks `bytes[start..]` as the value of captured header `i`. Request heads are bounded
    /// (`max_header_bytes`) far below 4 GiB; a span that did not fit is left out, not wrapped.
    fn set_span(&mut self, i: usize, start: usize) {
        if let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(self.bytes.len())) {
            self.spans[i] = Some((start, end));
        }
    }

    fn get(&self, i: usize) -> Option<&[u8]> {
        let (start, end) = self.spans[i]?;
        self.bytes.get(start as usize..end as usize)
    }

    /// `User-Agent`, as sent.
    pub fn user_agent(&self) -> Option<&[u8]> {
        self.get(0)
    }

    /// `Referer`, when it is visible ASCII (as `HeaderValue::to_str` requires).
    pub fn referer(&self) -> Option<&str> {
        self.get(1).and_then(visible_ascii)
    }

    /// `Accept-Language`, when it is visible ASCII.
    pub fn accept_language(&self) -> Option<&str> {
        self.get(2).and_then(visible_ascii)
    }

    /// `Sec-CH-UA`, when it is visible ASCII.
    pub fn sec_ch_ua(&self) -> Option<&str> {
        self.get(3).and_then(visible_ascii)
    }

    /// `Sec-CH-UA-Mobile`, when it is visible ASCII.
    pub fn sec_ch_ua_mobile(&self) -> Option<&str> {
        self.get(4).and_then(visible_ascii)
    }

    /// `Sec-CH-UA-Platform`, when it is visible ASCII.
    pub fn sec_ch_ua_platform(&self) -> Option<&str> {
        self.get(5).and_then(visible_ascii)
    }

    /// `Forwarded`, every occurrence joined with `, `.
    pub fn forwarded(&self) -> Option<&[u8]> {
        self.get(6)
    }

    /// `X-Forwarded-For`, every occurrence joined with `, `.
    pub fn x_forwarded_for(&self) -> Option<&[u8]> {
        self.get(7)
    }
}

/// The sending half of the hit → enrichment hand-off: bounded, never blocking.
///
/// A `std::sync::mpsc::sync_channel`: its `try_send` is lock-free on the fast path, and the one
/// consumer is a plain thread, so no async runtime is involved on either side.
///
/// Memory: the channel allocates its `capacity` slots up front, 200 bytes each (a [`Hit`] and
/// a stamp; 12.5 MiB at the default 65,536). A waiting hit also holds its copy of the captured
/// headers (at least 512 bytes, less than twice their length) and, when the query was merged,
/// the `Location` it was sent (the destination and the query). The captured headers and the
/// query come from one request head, at most `max_header_bytes`, so a hit holds at most about
/// twice that plus its destination: 32 KiB at the default 16 KiB. A browser's hit holds the
/// 512 bytes.
///
/// Hits that hold more than [`SMALL_HIT_BYTES`] (a huge head, a long merged query) are also
/// counted in bytes, and one that would take them over [`CLICK_QUEUE_MAX_BYTES`] is dropped and
/// counted as a full queue: a flood of huge heads can then hold that much, not 2 GiB. A
/// browser's hit (512 bytes) is not counted, so the hit path pays only a comparison for it; all
/// such hits together hold at most `capacity` × [`SMALL_HIT_BYTES`] (64 MiB at the default).
#[derive(Clone)]
pub struct ClickQueue {
    tx: SyncSender<Hit>,
    metrics: Arc<Metrics>,
    /// Bytes the waiting large hits hold beyond their slots ([`Hit::held_bytes`]).
    held: Arc<AtomicUsize>,
}

/// Most bytes the large hits waiting in the click queue may hold beyond their slots: 128 MiB,
/// 4,096 hits of 32 KiB.
pub const CLICK_QUEUE_MAX_BYTES: usize = 128 << 20;

/// Hits holding at most this many bytes beyond their slot are not counted against
/// [`CLICK_QUEUE_MAX_BYTES`].
pub const SMALL_HIT_BYTES: usize = 1024;

/// The receiving half of the click queue, for the pipeline thread: it gives each large hit's
/// bytes back to the queue's budget as it takes the hit.
pub struct ClickReceiver {
    rx: Receiver<Hit>,
    held: Arc<AtomicUsize>,
}

impl ClickReceiver {
    fn took(&self, hit: Hit) -> Hit {
        let size = hit.held_bytes();
        if size > SMALL_HIT_BYTES {
            self.held.fetch_sub(size, Ordering::Relaxed);
        }
        hit
    }

    /// A waiting hit, if there is one.
    pub fn try_recv(&self) -> Result<Hit, TryRecvError> {
        self.rx.try_recv().map(|hit| self.took(hit))
    }

    /// The next hit, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Hit, RecvTimeoutError> {
        self.rx.recv_timeout(timeout).map(|hit| self.took(hit))
    }

    /// The next hit, waiting as long as it takes; an error once every sender is gone.
    pub fn recv(&self) -> Result<Hit, RecvError> {
        self.rx.recv().map(|hit| self.took(hit))
    }
}

impl Hit {
    /// The bytes this hit holds beyond its slot in the queue: its captured headers and, when the
    /// query was merged, the `Location` it was sent.
    pub fn held_bytes(&self) -> usize {
        self.headers.bytes.capacity() + self.merged_location.as_ref().map_or(0, |l| l.len())
    }
}

impl ClickQueue {
    /// A queue holding at most `capacity` hits, and its receiving end.
    pub fn bounded(capacity: usize, metrics: Arc<Metrics>) -> (ClickQueue, ClickReceiver) {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        let held = Arc::new(AtomicUsize::new(0));
        (
            ClickQueue {
                tx,
                metrics,
                held: held.clone(),
            },
            ClickReceiver { rx, held },
        )
    }

    /// Hands a hit on, or drops it (counted) when the queue is full, in slots or in bytes, or
    /// closed.
    pub fn offer(&self, hit: Hit) {
        let size = hit.held_bytes();
        let large = size > SMALL_HIT_BYTES;
        if large && self.held.fetch_add(size, Ordering::Relaxed) + size > CLICK_QUEUE_MAX_BYTES {
            self.held.fetch_sub(size, Ordering::Relaxed);
            self.metrics.clicks_dropped_queue_full.inc();
            return;
        }
        let dropped = match self.tx.try_send(hit) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => &self.metrics.clicks_dropped_queue_full,
            Err(TrySendError::Disconnected(_)) => &self.metrics.clicks_dropped_shutdown,
        };
        if large {
            self.held.fetch_sub(size, Ordering::Relaxed);
        }
        dropped.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// The README's memory bounds count a click queue slot as 200 bytes: the hit and the
    /// channel's stamp.
    #[test]
    fn a_queue_slot_is_200_bytes() {
        assert_eq!(std::mem::size_of::<Hit>() + std::mem::size_of::<usize>(), 200);
    }

    fn hit_with_headers(bytes: usize) -> Hit {
        let table = crate::links::LinkTable::from_csv(
            "id,domain,slashtag,destination\nl1,brand.link,a,https://example.com/\n",
            &crate::config::Config::embedded_default().server,
            &Default::default(),
        )
        .unwrap();
        let link = table.domain("brand.link").unwrap().lookup("a").unwrap().clone();
        let mut headers = HitHeaders::empty();
        headers.bytes.reserve_exact(bytes);
        Hit {
            time: SystemTime::now(),
            link,
            merged_location: None,
            peer: IpAddr::from([192, 0, 2, 1]),
            head: false,
            headers,
        }
    }

    #[test]
    fn the_queue_drops_large_hits_past_its_byte_budget_and_gets_bytes_back_as_they_are_taken() {
        let metrics = Arc::new(Metrics::default());
        let (queue, rx) = ClickQueue::bounded(1 << 20, metrics.clone());
        // Small hits are not counted against the budget.
        for _ in 0..1000 {
            queue.offer(hit_with_headers(0));
        }
        assert_eq!(queue.held.load(Ordering::Relaxed), 0);
        let big = CLICK_QUEUE_MAX_BYTES / 4 + 1;
        for _ in 0..4 {
            queue.offer(hit_with_headers(big));
        }
        // The fourth would pass the budget.
        assert_eq!(metrics.clicks_dropped_queue_full.get(), 1);
        for _ in 0..1003 {
            rx.try_recv().unwrap();
        }
        assert_eq!(queue.held.load(Ordering::Relaxed), 0);
        queue.offer(hit_with_headers(big));
        assert_eq!(metrics.clicks_dropped_queue_full.get(), 1);
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn every_captured_name_is_found_in_any_case() {
        for (i, (name, _)) in CAPTURED.iter().enumerate() {
            assert_eq!(captured_index(name.as_str()), Some(i), "{name}");
            assert_eq!(captured_index(&name.as_str().to_uppercase()), Some(i), "{name}");
        }
        for other in [
            "host",
            "accept",
            "cookie",
            "forwarded-",
            "user-agents",
            "x-forwarded-fox",
            "sec-ch-ub",
        ] {
            assert_eq!(captured_index(other), None, "{other}");
        }
    }

    #[test]
    fn captured_headers_are_copied_and_forwarding_lists_joined() {
        let mut h = http::HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("2.2.2.2, 3.3.3.3"));
        h.append("user-agent", HeaderValue::from_static("first"));
        h.append("user-agent", HeaderValue::from_static("second"));
        h.append(
            "referer",
            HeaderValue::from_bytes(b"https://example.com/\xc3\xa9").unwrap(),
        );
        h.append("accept-language", HeaderValue::from_static(""));
        // The same fields as the plain listener's parser lists them, names in any case.
        let list = [
            httparse::Header {
                name: "X-Forwarded-For",
                value: b"1.1.1.1",
            },
            httparse::Header {
                name: "user-agent",
                value: b"first",
            },
            httparse::Header {
                name: "x-forwarded-FOR",
                value: b"2.2.2.2, 3.3.3.3",
            },
            httparse::Header {
                name: "User-Agent",
                value: b"second",
            },
            httparse::Header {
                name: "Referer",
                value: b"https://example.com/\xc3\xa9",
            },
            httparse::Header {
                name: "Accept-Language",
                value: b"",
            },
        ];
        for c in [HitHeaders::from_map(&h), HitHeaders::from_list(&list)] {
            assert_eq!(c.x_forwarded_for().unwrap(), b"1.1.1.1, 2.2.2.2, 3.3.3.3");
            assert!(c.forwarded().is_none());
            // Headers that are not lists keep their first occurrence.
            assert_eq!(c.user_agent().unwrap(), b"first");
            // Not visible ASCII: unreadable as text, as with `HeaderValue::to_str`.
            assert_eq!(c.referer(), None);
            assert_eq!(c.accept_language(), Some(""));
            assert_eq!(c.sec_ch_ua(), None);
        }
    }
}
