//! Clicks: the [`Hit`] the hit path captures, the bounded [`ClickQueue`] that carries it off the
//! response path, and the [`ClickEvent`] it becomes — the product's payload, in exactly the shape
//! of the Clickstream example (`data` items of a webhook body, lines of S3 and file objects).
//!
//! The hit path only copies the few header values enrichment reads into a `Hit` (one small
//! buffer) and offers it to the queue; `enrich` turns hits into events on its own thread.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::SystemTime;

use http::header::{self, HeaderName};
use serde::Serialize;

use crate::enrich::agent::AgentInfo;
use crate::enrich::geo::CountryCode;
use crate::enrich::session::SessionInfo;
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
    /// Copies the values of the headers enrichment needs.
    pub fn capture(headers: &crate::redirect::Headers<'_>) -> HitHeaders {
        let mut captured = HitHeaders {
            bytes: Vec::with_capacity(512),
            spans: Default::default(),
        };
        match headers {
            crate::redirect::Headers::List(list) => captured.capture_list(list),
            crate::redirect::Headers::Map(_) => {
                for (i, (name, all)) in CAPTURED.iter().enumerate() {
                    let start = captured.bytes.len();
                    let mut found = false;
                    let mut add = |v: &[u8]| {
                        if found {
                            captured.bytes.extend_from_slice(b", ");
                        }
                        captured.bytes.extend_from_slice(v);
                        found = true;
                    };
                    if *all {
                        headers.each(name, add);
                    } else if let Some(v) = headers.get(name) {
                        add(v);
                    }
                    if found {
                        captured.set_span(i, start);
                    }
                }
            }
        }
        captured
    }

    /// [`HitHeaders::capture`] from the plain listener's field list: one pass to find the
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

/// The text of a header value made only of visible ASCII and tabs, the rule of
/// `HeaderValue::to_str`; `None` otherwise.
pub(crate) fn visible_ascii(value: &[u8]) -> Option<&str> {
    if is_visible_ascii(value) {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// Whether a header value is only visible ASCII, spaces and tabs.
///
/// Tested 32 bytes at a time without an early exit inside a chunk, so that the compiler can
/// vectorize the test: a byte at a time, this was a fifth of the enrichment's own time (user
/// agents, client hints and referrers run to hundreds of bytes).
pub(crate) fn is_visible_ascii(value: &[u8]) -> bool {
    let visible = |b: u8| b == b'\t' || b.wrapping_sub(0x20) < 0x5f;
    value
        .chunks(32)
        .all(|chunk| chunk.iter().fold(true, |ok, &b| ok & visible(b)))
}

/// The sending half of the hit → enrichment hand-off: bounded, never blocking.
///
/// A `std::sync::mpsc::sync_channel`: its `try_send` is lock-free on the fast path, and the one
/// consumer is a plain thread, so no async runtime is involved on either side.
#[derive(Clone)]
pub struct ClickQueue {
    tx: SyncSender<Hit>,
    metrics: Arc<Metrics>,
}

impl ClickQueue {
    /// A queue holding at most `capacity` hits, and its receiving end.
    pub fn bounded(capacity: usize, metrics: Arc<Metrics>) -> (ClickQueue, Receiver<Hit>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        (ClickQueue { tx, metrics }, rx)
    }

    /// Hands a hit on, or drops it (counted) when the queue is full or closed.
    pub fn offer(&self, hit: Hit) {
        match self.tx.try_send(hit) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.metrics.clicks_dropped_queue_full.inc(),
            Err(TrySendError::Disconnected(_)) => self.metrics.clicks_dropped_shutdown.inc(),
        }
    }
}

/// One click event: what enrichment found for a hit; [`ClickEvent::write_json`] writes it as
/// the Clickstream payload's `data` items.
///
/// Nothing in it is allocated per click: the link's strings are borrowed, the user-agent
/// classification is shared with the enricher's cache, and the referral and destination, which
/// depend only on the `Referer` and the `Location`, are shared as JSON that was encoded once.
#[derive(Debug, Clone)]
pub struct ClickEvent<'a> {
    /// UUIDv7; receivers de-duplicate on it.
    pub id: uuid::Uuid,
    /// When the hit was answered, unix microseconds.
    pub time_micros: i64,
    /// Primary language subtag, or "".
    pub language: Cow<'a, str>,
    /// Country of the client address, when the GeoIP database knows it.
    pub country: Option<CountryCode>,
    /// Browser, OS and device of the user agent, with their JSON.
    pub agent: Arc<EncodedAgent>,
    /// A bot (by its agent, or a `HEAD` request).
    pub bot: bool,
    /// The visitor's session.
    pub session: SessionInfo,
    /// `referral`, as JSON text.
    pub referral: Arc<str>,
    /// The link that answered.
    pub link: &'a Link,
    /// `route.destination`, as JSON text ([`destination_json`]).
    pub destination: Arc<str>,
}

impl ClickEvent<'_> {
    /// Appends the event to `out` as one JSON object (no newline), in exactly the Clickstream
    /// shape and key order (`tests/fixtures/seed-example.json`, with our `id` first).
    ///
    /// Written by hand rather than through `serde::Serialize`: the structure is fixed, so the
    /// keys and punctuation are constant byte strings and only the values are escaped, in one
    /// pass. This is the server's hottest output; the tests check it against serde_json.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let link = self.link;
        let started = if self.session.first {
            self.time_micros
        } else {
            self.session.started_micros
        };
        let mut id = uuid::Uuid::encode_buffer();
        out.extend_from_slice(b"{\"id\":\"");
        out.extend_from_slice(self.id.hyphenated().encode_lower(&mut id).as_bytes());
        out.extend_from_slice(b"\",\"timestamp\":\"");
        out.extend_from_slice(&Timestamp(self.time_micros).to_bytes());
        out.extend_from_slice(b"\",\"client\":{\"language\":");
        json_str(out, &self.language);
        out.extend_from_slice(b",\"location\":{\"country\":");
        json_str(out, self.country.as_ref().map_or("", CountryCode::as_str));
        out.extend_from_slice(b"},\"agent\":");
        out.extend_from_slice(&self.agent.json_head);
        let kind: &[u8] = if self.bot { b"\"bot\"" } else { b"\"human\"" };
        out.extend_from_slice(kind);
        out.extend_from_slice(b"},\"session\":{\"started\":\"");
        out.extend_from_slice(&Timestamp(started).to_bytes());
        out.extend_from_slice(b"\",\"first\":");
        out.extend_from_slice(if self.session.first { b"true" } else { b"false" });
        out.extend_from_slice(b"}},\"referral\":");
        out.extend_from_slice(self.referral.as_bytes());
        out.extend_from_slice(b",\"route\":{\"id\":");
        json_str(out, link.id());
        out.extend_from_slice(b",\"slashtag\":");
        json_str(out, link.slashtag());
        out.push(b',');
        out.extend_from_slice(link.owner_json());
        out.extend_from_slice(b",\"destination\":");
        out.extend_from_slice(self.destination.as_bytes());
        out.extend_from_slice(b"}}");
    }
}

/// Appends `s` as a JSON string, escaped exactly as serde_json does it: `"`, `\` and the
/// control characters U+0000 to U+001F, with the short forms where JSON has them.
///
/// Most strings need no escape at all, so the scan skips eight bytes at a time while none of
/// them needs one ([`word_needs_escape`]), and looks at single bytes only around those that do.
fn json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut clean_from = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            if !word_needs_escape(word) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        i += 1;
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[clean_from..i - 1]);
        out.extend_from_slice(short);
        clean_from = i;
    }
    out.extend_from_slice(&bytes[clean_from..]);
    out.push(b'"');
}

/// Whether any of the eight bytes in `word` is `"`, `\` or below 0x20. The classic "has a zero
/// byte" test, `(x - 0x01..) & !x & 0x80..`, is exact about *whether* some byte matches (a
/// borrow can only start at a matching byte), applied to `x ^ c` for the two characters and in
/// its "has a byte below n" form for the controls.
fn word_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | quote | backslash) & HIGHS != 0
}

/// A user agent's classification and its part of the event, `client.agent` up to the value of
/// its `type` (a `HEAD` request makes any agent a bot), encoded once per agent the enricher
/// caches rather than for every click.
#[derive(Debug)]
pub struct EncodedAgent {
    /// The classification.
    pub info: AgentInfo,
    /// The agent's part of its visitors' session keys
    /// ([`crate::enrich::session::SessionTracker::agent_id`]).
    pub agent_id: u64,
    json_head: Box<[u8]>,
}

impl EncodedAgent {
    /// Encodes `info`, the classification of an agent whose session key part is `agent_id`.
    pub fn new(info: AgentInfo, agent_id: u64) -> EncodedAgent {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(b"{\"browser\":{\"name\":");
        json_str(&mut out, &info.browser_name);
        out.extend_from_slice(b",\"version\":");
        json_str(&mut out, &info.browser_version);
        out.extend_from_slice(b"},\"os\":{\"name\":");
        json_str(&mut out, &info.os_name);
        out.extend_from_slice(b",\"version\":");
        json_str(&mut out, &info.os_version);
        out.extend_from_slice(b"},\"device\":{\"name\":");
        json_str(&mut out, info.device);
        out.extend_from_slice(b"},\"type\":");
        EncodedAgent {
            info,
            agent_id,
            json_head: out.into_boxed_slice(),
        }
    }
}

/// The part of `route` that links of one owner share: `"creator":{…},"domain":{…}`, without
/// braces around it (see [`crate::links::Owner`]).
pub fn owner_json(
    domain: &str,
    domain_id: &str,
    creator_id: &str,
    workspace_id: &str,
    workspace_name: &str,
) -> Box<[u8]> {
    let mut out = Vec::with_capacity(96 + domain.len() + domain_id.len() + creator_id.len() + workspace_id.len());
    out.extend_from_slice(b"\"creator\":{\"id\":");
    json_str(&mut out, creator_id);
    out.extend_from_slice(b",\"workspace\":{\"id\":");
    json_str(&mut out, workspace_id);
    out.extend_from_slice(b",\"name\":");
    json_str(&mut out, workspace_name);
    out.extend_from_slice(b"}},\"domain\":{\"id\":");
    json_str(&mut out, domain_id);
    out.extend_from_slice(b",\"raw\":");
    json_str(&mut out, domain);
    out.push(b'}');
    out.into_boxed_slice()
}

/// Encodes a value once as JSON, to be shared by many events; `null` if it cannot be encoded
/// (plain strings and maps always can).
pub fn json_fragment<T: Serialize>(value: &T) -> Arc<str> {
    Arc::from(serde_json::to_string(value).unwrap_or_else(|_| "null".to_string()))
}

/// `route.destination` for the `Location` that was sent, as JSON text: `raw`, and the URL's
/// `protocol`, `hostname`, `path` and `params.query` (its decoded query pairs grouped by name, in
/// order of first appearance). A location that does not parse as a URL keeps `raw` and leaves
/// the other parts empty.
///
/// Written directly rather than through a struct and serde: with a large link table most clicks
/// miss the enricher's cache and come here, and the intermediate strings cost as much as the
/// URL parse.
pub fn destination_json(raw: &str) -> Arc<str> {
    let url = url::Url::parse(raw).ok();
    let mut out = Vec::with_capacity(2 * raw.len() + 80);
    out.extend_from_slice(b"{\"raw\":");
    json_str(&mut out, raw);
    out.extend_from_slice(b",\"protocol\":");
    json_str(&mut out, url.as_ref().map_or("", |u| u.scheme()));
    out.extend_from_slice(b",\"hostname\":");
    json_str(&mut out, url.as_ref().and_then(|u| u.host_str()).unwrap_or(""));
    out.extend_from_slice(b",\"path\":");
    json_str(&mut out, url.as_ref().map_or("", |u| u.path()));
    out.extend_from_slice(b",\"params\":{\"query\":{");
    if let Some(url) = &url {
        write_query_groups(&mut out, url.query_pairs());
    }
    out.extend_from_slice(b"}}}");
    // Only `&str` pieces and ASCII were written, so this never fails.
    Arc::from(String::from_utf8(out).unwrap_or_else(|_| "null".to_string()))
}

/// Writes `"name":["value",...]` members, one per distinct name in order of first appearance.
fn write_query_groups<'a>(out: &mut Vec<u8>, pairs: impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)>) {
    let mut groups: Vec<(Cow<'a, str>, Vec<Cow<'a, str>>)> = Vec::new();
    // A query can hold thousands of pairs (a request's own query is merged in): past a few
    // names, find groups through a map rather than by scanning.
    let mut index: HashMap<Cow<'a, str>, usize> = HashMap::new();
    for (name, value) in pairs {
        let found = if groups.len() <= 16 {
            groups.iter().position(|(n, _)| *n == name)
        } else {
            if index.is_empty() {
                index.extend(groups.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)));
            }
            index.get(&name).copied()
        };
        match found {
            Some(i) => groups[i].1.push(value),
            None => {
                if !index.is_empty() {
                    index.insert(name.clone(), groups.len());
                }
                groups.push((name, vec![value]));
            }
        }
    }
    for (i, (name, values)) in groups.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, name);
        out.push(b':');
        out.push(b'[');
        for (j, value) in values.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            json_str(out, value);
        }
        out.push(b']');
    }
}

/// `referral`
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Referral {
    /// Referring host.
    pub hostname: String,
    /// Referring scheme, without colon.
    pub protocol: String,
    /// Referring path.
    pub path: String,
    /// `origin`
    pub origin: Origin,
}

/// `referral.origin`
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Origin {
    /// `social`, `search`, `email`, `direct`, `internal`, `other`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// `facebook`, `google`, ...
    pub name: String,
}

/// An event timestamp in unix microseconds; written as UTC, RFC 3339, microseconds, `Z`
/// (`2019-07-02T14:07:06.981094Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The RFC 3339 text, without allocating.
    ///
    /// Hand-written because it runs twice per click and `time`'s general-purpose formatter
    /// costs about ten times as much; the calendar conversion is the days-to-civil algorithm of
    /// Howard Hinnant's "chrono-compatible low-level date algorithms". Checked against `time`
    /// in the tests.
    pub fn to_bytes(self) -> [u8; 27] {
        let (secs, micro) = (self.0.div_euclid(1_000_000), self.0.rem_euclid(1_000_000));
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let mut out = [0u8; 27];
        let mut put = |at: usize, value: i64, width: usize| {
            let mut v = value;
            for k in (0..width).rev() {
                out[at + k] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, year.clamp(0, 9999), 4);
        put(5, month, 2);
        put(8, day, 2);
        put(11, sod / 3600, 2);
        put(14, sod / 60 % 60, 2);
        put(17, sod % 60, 2);
        put(20, micro, 6);
        for (at, c) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (26, b'Z'),
        ] {
            out[at] = c;
        }
        out
    }
}

/// Formats a time as the event's timestamps (see [`Timestamp`]).
pub fn format_timestamp(t: SystemTime) -> String {
    String::from_utf8_lossy(&Timestamp(unix_micros(t)).to_bytes()).into_owned()
}

/// Microseconds since the Unix epoch (0 for times before it).
pub fn unix_micros(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde::ser::SerializeMap;

    /// The straightforward serde model of `route.destination`: the reference `destination_json`
    /// must match byte for byte.
    #[derive(Debug, Clone, Serialize, PartialEq, Eq)]
    struct Destination {
        /// Full URL as redirected to.
        raw: String,
        /// Scheme.
        protocol: String,
        /// Host.
        hostname: String,
        /// Path.
        path: String,
        /// `params`
        params: Params,
    }

    /// `route.destination.params`
    #[derive(Debug, Clone, Serialize, PartialEq, Eq)]
    struct Params {
        /// `{name: [values...]}`, names in order of first appearance.
        query: QueryParams,
    }

    /// Query parameters as an ordered JSON object of arrays.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    struct QueryParams(pub Vec<(String, Vec<String>)>);

    impl QueryParams {
        /// Groups a URL's decoded query pairs by name, in order of first appearance.
        fn from_url(url: &url::Url) -> QueryParams {
            let mut out: Vec<(String, Vec<String>)> = Vec::new();
            for (name, value) in url.query_pairs() {
                match out.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, values)) => values.push(value.into_owned()),
                    None => out.push((name.into_owned(), vec![value.into_owned()])),
                }
            }
            QueryParams(out)
        }
    }

    impl Serialize for QueryParams {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(self.0.len()))?;
            for (name, values) in &self.0 {
                map.serialize_entry(name, values)?;
            }
            map.end()
        }
    }

    impl Destination {
        /// Splits the URL that was redirected to into the event's parts.
        fn from_location(raw: &str) -> Destination {
            match url::Url::parse(raw) {
                Ok(url) => Destination {
                    raw: raw.to_string(),
                    protocol: url.scheme().to_string(),
                    hostname: url.host_str().unwrap_or("").to_string(),
                    path: url.path().to_string(),
                    params: Params {
                        query: QueryParams::from_url(&url),
                    },
                },
                Err(_) => Destination {
                    raw: raw.to_string(),
                    protocol: String::new(),
                    hostname: String::new(),
                    path: String::new(),
                    params: Params {
                        query: QueryParams::default(),
                    },
                },
            }
        }
    }
    use std::time::Duration;

    #[test]
    fn timestamps_have_microseconds_and_z() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_562_076_426_981_094);
        assert_eq!(format_timestamp(t), "2019-07-02T14:07:06.981094Z");
        assert_eq!(format_timestamp(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn timestamps_agree_with_the_time_crate() {
        const FORMAT: &[time::format_description::FormatItem<'static>] =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
        // Leap days, century years, ends of months and years, from 1970 to 2199.
        let mut micros: u64 = 7;
        while micros < 7_258_118_400_000_000 {
            let t = SystemTime::UNIX_EPOCH + Duration::from_micros(micros);
            assert_eq!(
                format_timestamp(t),
                time::OffsetDateTime::from(t).format(FORMAT).unwrap(),
                "{micros}"
            );
            micros += 86_399_999_937; // about a day, drifting through every second of the day
        }
    }

    #[test]
    fn json_strings_are_escaped_like_serde_json() {
        let mut samples: Vec<String> = (0u8..=0x7f).map(|b| format!("a{}b", char::from(b))).collect();
        samples.extend(
            [
                "",
                "plain",
                "ação \u{2028} 日本 😀",
                "\"quoted\" \\ back\\slash",
                "\u{7f}\u{0}\u{1f}",
            ]
            .map(String::from),
        );
        // Every special byte at every position of a string long enough for the eight-byte scan,
        // next to high bytes (which must not be mistaken for controls).
        for special in ['"', '\\', '\n', '\u{0}', '\u{1f}', '\u{8}', 'ÿ', '😀'] {
            for at in 0..24 {
                let mut sample: String = "abcdefghijklmnopqrstuvwxyzé".chars().take(at).collect();
                sample.push(special);
                sample.push_str("0123456789ABCDEFGHIJ ~\u{7f}");
                samples.push(sample);
            }
        }
        for sample in samples {
            let mut out = Vec::new();
            json_str(&mut out, &sample);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&sample).unwrap(),
                "{sample:?}"
            );
        }
    }

    #[test]
    fn event_json_has_the_clickstream_shape() {
        let owner = crate::links::Owner::new(
            "brand.link".into(),
            "d1".into(),
            "c1".into(),
            Arc::new(crate::links::Workspace {
                id: "w1".into(),
                name: "Tab\there".into(),
            }),
        );
        let link = Link::new(
            "l\"1",
            "spring-sale",
            http::StatusCode::MOVED_PERMANENTLY,
            "https://example.com/?a=1",
            Arc::new(owner),
        );
        let event = ClickEvent {
            id: uuid::Uuid::from_u128(0x0190_1234_5678_7abc_8def_0123_4567_89ab),
            time_micros: 1_562_076_426_981_094,
            language: Cow::Borrowed("pt"),
            country: CountryCode::from_alpha2("BR"),
            agent: Arc::new(EncodedAgent::new(
                AgentInfo {
                    browser_name: "facebook-app".into(),
                    browser_version: "227.0".into(),
                    os_name: "android".into(),
                    os_version: "android-9.0-pie".into(),
                    device: "smartphone",
                    bot: false,
                },
                0,
            )),
            bot: true,
            session: SessionInfo {
                started_micros: 1_562_076_000_000_000,
                first: false,
            },
            referral: json_fragment(&serde_json::json!({"hostname": "m.facebook.com"})),
            link: &link,
            destination: destination_json("https://example.com/?a=1"),
        };
        let mut out = Vec::new();
        event.write_json(&mut out);
        let expected = concat!(
            r#"{"id":"01901234-5678-7abc-8def-0123456789ab","timestamp":"2019-07-02T14:07:06.981094Z","#,
            r#""client":{"language":"pt","location":{"country":"br"},"agent":{"browser":{"name":"facebook-app","#,
            r#""version":"227.0"},"os":{"name":"android","version":"android-9.0-pie"},"device":{"name":"smartphone"},"#,
            r#""type":"bot"},"session":{"started":"2019-07-02T14:00:00.000000Z","first":false}},"#,
            r#""referral":{"hostname":"m.facebook.com"},"route":{"id":"l\"1","slashtag":"spring-sale","#,
            r#""creator":{"id":"c1","workspace":{"id":"w1","name":"Tab\there"}},"domain":{"id":"d1","raw":"brand.link"},"#,
            r#""destination":{"raw":"https://example.com/?a=1","protocol":"https","hostname":"example.com","#,
            r#""path":"/","params":{"query":{"a":["1"]}}}}}"#
        );
        assert_eq!(String::from_utf8(out.clone()).unwrap(), expected);
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed["client"]["agent"]["type"], "bot");
        assert_eq!(parsed["route"]["creator"]["workspace"]["name"], "Tab\there");
    }

    #[test]
    fn destination_parts_and_ordered_query() {
        let json = destination_json(
            "https://www.yourdestination.com/?utm_source=cs_facebook_post&utm_medium=customersuccess&utm_source=x",
        );
        assert_eq!(
            &*json,
            concat!(
                r#"{"raw":"https://www.yourdestination.com/?utm_source=cs_facebook_post&utm_medium=customersuccess&utm_source=x","#,
                r#""protocol":"https","hostname":"www.yourdestination.com","path":"/","#,
                r#""params":{"query":{"utm_source":["cs_facebook_post","x"],"utm_medium":["customersuccess"]}}}"#
            )
        );
    }

    #[test]
    fn destination_json_matches_the_serde_model_byte_for_byte() {
        let many: String = (0..200).map(|i| format!("k{}={i}&", i % 37)).collect();
        let samples = [
            "https://example.com".to_string(),
            "https://example.com/a/b?x=1&y=2&x=3#frag".into(),
            "HTTPS://User:Pw@Example.COM:8443/./a/../b%20c?q=a+b&e=&n&=v&%ZZ=%41".into(),
            "https://例え.jp/パス?名前=値".into(),
            "http://[::1]:8080/p?\"quote\"=\\back\u{1}".into(),
            "mailto:someone@example.com?subject=hi".into(),
            "not a url".into(),
            "".into(),
            format!("https://example.com/many?{many}"),
        ];
        for raw in &samples {
            let want = serde_json::to_string(&Destination::from_location(raw)).unwrap();
            assert_eq!(&*destination_json(raw), want, "{raw}");
        }
    }

    #[test]
    fn visible_ascii_is_checked_at_every_position() {
        let simple = |v: &[u8]| v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
        for b in 0..=255u8 {
            for len in [1, 31, 32, 33, 70] {
                for at in [0, len / 2, len - 1] {
                    let mut v = vec![b'a'; len];
                    v[at] = b;
                    assert_eq!(is_visible_ascii(&v), simple(&v), "byte {b:#x} at {at} of {len}");
                }
            }
        }
        assert!(is_visible_ascii(b""));
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
        use crate::redirect::Headers;
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
        for headers in [Headers::Map(&h), Headers::List(&list)] {
            let c = HitHeaders::capture(&headers);
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
