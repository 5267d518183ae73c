//! Enrichment: turning a [`Hit`] into a [`ClickEvent`].
//!
//! Runs on the pipeline thread (see `pipeline`), never on a request's task: the response has
//! already gone out when a hit gets here. Each part has its own module, pure and table-tested:
//!
//! - [`agent`]: user agent and client hints → browser, OS, device, bot (woothee + our rules).
//! - [`client_ip`]: the client address behind trusted proxies.
//! - [`geo`]: address → country (MaxMind DB).
//! - [`language`]: `Accept-Language` → primary subtag.
//! - [`referrer`]: `Referer` → hostname, protocol, path and traffic source.
//! - [`session`]: salted visitor hash → session start and first click.
//!
//! User agents repeat heavily in real traffic, so their classification is cached ([`UaCache`]);
//! a cache hit costs a hash of the UA bytes and a map lookup. So are the JSON of a destination
//! with the request's query merged in and of a referrer. Their keys come from requests, so each
//! cache is bounded in entries and in bytes, and keeps no key over [`MAX_CACHED_KEY_BYTES`]
//! ([`TwoGenCache`]): at most 26 MiB for agents, 18 MiB for destinations and 10 MiB for
//! referrers, besides the allocator's rounding (the README's Operations section has the
//! arithmetic).

pub mod agent;
pub mod client_ip;
pub mod event;
pub mod geo;
pub mod language;
pub mod referrer;
pub mod session;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::click::Hit;
use crate::config::ServerConfig;
use crate::json;
use crate::metrics::Metrics;
use agent::{BotList, ClientHints};
use client_ip::TrustedProxies;
use event::{ClickEvent, EncodedAgent};
use geo::GeoDb;
use referrer::ReferrerTable;
use session::SessionTracker;

/// Entries per generation of the user-agent cache (two generations are kept).
const UA_CACHE_GENERATION_ENTRIES: usize = 16_384;
/// Bytes per generation of the user-agent cache: 16,384 agents of 768 bytes (key and
/// classification: a browser's agent with its client hints weighs 450 to 560).
const UA_CACHE_GENERATION_BYTES: usize = 12 << 20;
/// Entries per generation of the cache of destinations with the request's query merged in.
const DESTINATION_CACHE_GENERATION_ENTRIES: usize = 16_384;
/// Bytes per generation of the destination cache: 16,384 locations of 512 bytes (key and JSON:
/// a destination with four `utm_` parameters weighs about 430).
const DESTINATION_CACHE_GENERATION_BYTES: usize = 8 << 20;
/// Entries per generation of the referrer cache (keyed by `Referer` and the link's domain).
const REFERRAL_CACHE_GENERATION_ENTRIES: usize = 16_384;
/// Bytes per generation of the referrer cache: 16,384 referrers of 256 bytes (key and JSON: a
/// search engine or social site weighs 150 to 200).
const REFERRAL_CACHE_GENERATION_BYTES: usize = 4 << 20;
/// Longest key a cache keeps. A longer one (a user agent padded to kilobytes, a query or a
/// `Referer` of a whole request head) is computed and used, never kept: such keys are rare in
/// real traffic and each one is usually unique, so keeping them would buy nothing. Normal agents
/// with their hints are under 512 bytes; 2,048 is the longest URL most software handles
/// (the sitemap protocol's limit).
pub const MAX_CACHED_KEY_BYTES: usize = 2048;
/// What a cache entry costs besides its key and its value: the value's `Arc` counts.
const ENTRY_OVERHEAD_BYTES: usize = 16;

/// The operator-editable lists in `data/`, reloaded with the link table.
pub struct EnrichLists {
    /// Bot tokens.
    pub bots: BotList,
    /// Referrer host table.
    pub referrers: ReferrerTable,
}

impl EnrichLists {
    /// Loads the configured files, or the embedded lists where none is configured.
    pub fn load(server: &ServerConfig) -> Result<EnrichLists, Vec<String>> {
        let mut errors = Vec::new();
        let bots = match &server.bots {
            None => Some(BotList::embedded()),
            Some(path) => read(path, &mut errors).and_then(|text| {
                BotList::parse(&text, &path.display().to_string())
                    .map_err(|e| errors.extend(e))
                    .ok()
            }),
        };
        let referrers = match &server.referrers {
            None => Some(ReferrerTable::embedded()),
            Some(path) => read(path, &mut errors).and_then(|text| {
                ReferrerTable::parse(&text, &path.display().to_string())
                    .map_err(|e| errors.extend(e))
                    .ok()
            }),
        };
        match (bots, referrers) {
            (Some(bots), Some(referrers)) if errors.is_empty() => Ok(EnrichLists { bots, referrers }),
            _ => Err(errors),
        }
    }
}

/// Strips optional whitespace (RFC 9110 §5.6.3: spaces and tabs) from a header value part.
pub(crate) fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

fn read(path: &std::path::Path, errors: &mut Vec<String>) -> Option<String> {
    std::fs::read_to_string(path)
        .map_err(|e| errors.push(format!("{}: cannot read: {e}", path.display())))
        .ok()
}

/// A value's size for a cache's byte budget: the bytes it holds, itself and what it owns.
pub trait Weigh {
    /// Bytes held, `size_of_val(self)` included.
    fn weight(&self) -> usize;
}

impl Weigh for str {
    fn weight(&self) -> usize {
        self.len()
    }
}

/// A two-generation cache: lookups hit the young map, then the old one (promoting the entry);
/// when the young map is full it becomes the old one. An LRU approximation with no per-hit
/// bookkeeping.
///
/// Bounded twice, because its keys come from requests: a generation is full at `cap` entries or
/// at `generation_bytes` of keys and values ([`Weigh`], plus [`ENTRY_OVERHEAD_BYTES`]), and a key
/// over [`MAX_CACHED_KEY_BYTES`] is never kept. So it holds at most `2 * generation_bytes` of
/// keys and values (plus the allocator's rounding, under an eighth with mimalloc's size
/// classes), and two hash tables sized for `cap` entries: `2 * 2^⌈log2(cap * 8/7)⌉` slots of
/// `size_of::<(Box<[u8]>, Arc<V>)>() + 1` bytes (for 16,384 entries, 65,536 slots of 25 or 33
/// bytes: 1.6 or 2.1 MiB).
pub struct TwoGenCache<V: ?Sized> {
    young: HashMap<Box<[u8]>, Arc<V>, foldhash::fast::RandomState>,
    old: HashMap<Box<[u8]>, Arc<V>, foldhash::fast::RandomState>,
    /// Bytes of `young`'s and `old`'s entries, as [`TwoGenCache::entry_bytes`] counts them.
    young_bytes: usize,
    old_bytes: usize,
    cap: usize,
    generation_bytes: usize,
}

/// User agent (and client hints) → classification.
pub type UaCache = TwoGenCache<EncodedAgent>;

impl<V: ?Sized + Weigh> TwoGenCache<V> {
    /// A cache of at most `2 * cap` entries and `2 * generation_bytes` of keys and values.
    pub fn new(cap: usize, generation_bytes: usize) -> TwoGenCache<V> {
        TwoGenCache {
            young: HashMap::default(),
            old: HashMap::default(),
            young_bytes: 0,
            old_bytes: 0,
            cap: cap.max(1),
            generation_bytes,
        }
    }

    /// What an entry counts against the byte budget.
    fn entry_bytes(key: &[u8], value: &V) -> usize {
        key.len() + value.weight() + ENTRY_OVERHEAD_BYTES
    }

    /// The cached value for `key`, or the one `compute` makes (then cached, unless the key is
    /// over [`MAX_CACHED_KEY_BYTES`] or the entry alone is over a generation's budget).
    pub fn get_or_insert(&mut self, key: &[u8], compute: impl FnOnce() -> Arc<V>) -> Arc<V> {
        if key.len() > MAX_CACHED_KEY_BYTES {
            return compute();
        }
        if let Some(v) = self.young.get(key) {
            return v.clone();
        }
        let value = match self.old.remove(key) {
            Some(v) => {
                self.old_bytes -= Self::entry_bytes(key, &v);
                v
            }
            None => compute(),
        };
        let bytes = Self::entry_bytes(key, &value);
        if bytes > self.generation_bytes {
            return value;
        }
        if self.young.len() >= self.cap || self.young_bytes + bytes > self.generation_bytes {
            // The old generation's table becomes the young one, emptied: it keeps its capacity,
            // so the young map never grows (and rehashes) again.
            std::mem::swap(&mut self.old, &mut self.young);
            self.young.clear();
            self.old_bytes = self.young_bytes;
            self.young_bytes = 0;
        }
        self.young.insert(key.into(), value.clone());
        self.young_bytes += bytes;
        value
    }

    /// Bytes of the keys and values held (see the type's docs).
    pub fn bytes(&self) -> usize {
        self.young_bytes + self.old_bytes
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything (the bot list changed).
    pub fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
        self.young_bytes = 0;
        self.old_bytes = 0;
    }
}

/// Builds click events. Owned by the pipeline thread (`&mut self`: the caches need no lock).
pub struct Enricher {
    lists: Arc<ArcSwap<EnrichLists>>,
    /// The lists the UA cache was filled with; a swap clears the cache.
    lists_seen: Option<Arc<EnrichLists>>,
    geo: Arc<GeoDb>,
    trusted: TrustedProxies,
    sessions: Arc<SessionTracker>,
    ua_cache: UaCache,
    /// Merged `Location` → `route.destination` as JSON (a link's own is kept by the link).
    destinations: TwoGenCache<str>,
    /// `Referer` and link domain → `referral` as JSON.
    referrals: TwoGenCache<str>,
    key_buf: Vec<u8>,
    /// Orders the event ids this thread draws: the clock is the click's own time (already read
    /// on the hit path), so no clock read and no lock per event, as `Uuid::now_v7` would take.
    ids: uuid::ContextV7,
    metrics: Arc<Metrics>,
}

impl Enricher {
    /// An enricher over shared lists, a GeoIP database and a session tracker.
    pub fn new(
        lists: Arc<ArcSwap<EnrichLists>>,
        geo: Arc<GeoDb>,
        trusted: TrustedProxies,
        sessions: Arc<SessionTracker>,
        metrics: Arc<Metrics>,
    ) -> Enricher {
        Enricher {
            lists,
            lists_seen: None,
            geo,
            trusted,
            sessions,
            ua_cache: UaCache::new(UA_CACHE_GENERATION_ENTRIES, UA_CACHE_GENERATION_BYTES),
            destinations: TwoGenCache::new(DESTINATION_CACHE_GENERATION_ENTRIES, DESTINATION_CACHE_GENERATION_BYTES),
            referrals: TwoGenCache::new(REFERRAL_CACHE_GENERATION_ENTRIES, REFERRAL_CACHE_GENERATION_BYTES),
            key_buf: Vec::with_capacity(512),
            ids: uuid::ContextV7::new(),
            metrics,
        }
    }

    /// A UUIDv7 for a click at `time`: its millisecond, then a counter that keeps the ids this
    /// enricher draws in order within a millisecond, then random bits.
    fn event_id(&self, time: std::time::SystemTime) -> uuid::Uuid {
        let since = time
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            &self.ids,
            since.as_secs(),
            since.subsec_nanos(),
        ))
    }

    /// The session tracker (for sweeping and metrics).
    pub fn sessions(&self) -> &Arc<SessionTracker> {
        &self.sessions
    }

    /// Builds the event for one hit.
    pub fn enrich<'a>(&mut self, hit: &'a Hit) -> ClickEvent<'a> {
        let lists = self.lists.load_full();
        if !self.lists_seen.as_ref().is_some_and(|seen| Arc::ptr_eq(seen, &lists)) {
            self.ua_cache.clear();
            self.referrals.clear();
            self.lists_seen = Some(lists.clone());
        }
        let h = &hit.headers;
        let ua = h.user_agent().unwrap_or_default();
        let hints = ClientHints {
            sec_ch_ua: h.sec_ch_ua(),
            mobile: h.sec_ch_ua_mobile(),
            platform: h.sec_ch_ua_platform(),
        };
        self.key_buf.clear();
        self.key_buf.extend_from_slice(ua);
        for hint in [hints.sec_ch_ua, hints.mobile, hints.platform] {
            self.key_buf.push(0);
            self.key_buf.extend_from_slice(hint.unwrap_or("").as_bytes());
        }
        let bots = &lists.bots;
        let sessions = &self.sessions;
        let agent = self.ua_cache.get_or_insert(&self.key_buf, || {
            let info = agent::classify(&String::from_utf8_lossy(ua), hints, bots);
            Arc::new(EncodedAgent::new(info, sessions.agent_id(ua)))
        });
        let bot = agent.info.bot || hit.head;

        let ip = client_ip::client_ip(hit.peer, h.forwarded(), h.x_forwarded_for(), &self.trusted);
        let link = &hit.link;
        let now = event::unix_micros(hit.time);
        let visitor = self.sessions.visitor_key(ip, agent.agent_id, &link.workspace().id, now);
        let geo = &self.geo;
        let (session, country) = self.sessions.touch(visitor, now, || geo.country(ip));
        if country.is_none() {
            self.metrics.geoip_misses.inc();
        }
        let referer = h.referer();
        self.key_buf.clear();
        self.key_buf.extend_from_slice(referer.unwrap_or("").as_bytes());
        self.key_buf.push(0);
        self.key_buf.extend_from_slice(link.domain().as_bytes());
        let referral = self.referrals.get_or_insert(&self.key_buf, || {
            json::json_fragment(&lists.referrers.classify(referer, link.domain()))
        });
        let destination = match &hit.merged_location {
            None => link.destination_json(),
            Some(location) => self
                .destinations
                .get_or_insert(location.as_bytes(), || json::destination_json(location)),
        };
        let language = h.accept_language().map(language::primary_language).unwrap_or_default();
        ClickEvent {
            id: self.event_id(hit.time),
            time_micros: now,
            language,
            country,
            agent,
            bot,
            session,
            referral,
            link,
            destination,
        }
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::agent::AgentInfo;
    use super::*;

    fn agent(name: &[u8]) -> Arc<EncodedAgent> {
        Arc::new(EncodedAgent::new(
            AgentInfo {
                browser_name: String::from_utf8_lossy(name).into_owned(),
                browser_version: String::new(),
                os_name: String::new(),
                os_version: String::new(),
                device: "",
                bot: false,
            },
            0,
        ))
    }

    #[test]
    fn ua_cache_is_bounded_and_promotes() {
        let mut c = UaCache::new(2, 1 << 20);
        let mut computed = 0;
        let mut get = |c: &mut UaCache, k: &[u8]| {
            c.get_or_insert(k, || {
                computed += 1;
                agent(k)
            });
        };
        get(&mut c, b"a");
        get(&mut c, b"b");
        get(&mut c, b"a");
        get(&mut c, b"c"); // young {a,b} full: becomes old
        get(&mut c, b"a"); // promoted from old
        get(&mut c, b"d");
        get(&mut c, b"e");
        assert!(c.young.len() + c.old.len() <= 4);
        assert_eq!(computed, 5);
    }

    /// Keys of every size up to ten times the longest kept, each unique: the bytes held never
    /// pass the two generations' budget, and a key that fits is still served from the cache.
    #[test]
    fn cache_bytes_stay_under_the_budget_with_huge_unique_keys() {
        const BUDGET: usize = 64 * 1024;
        let mut c: TwoGenCache<str> = TwoGenCache::new(1_000, BUDGET);
        let mut most = 0;
        for i in 0..5_000usize {
            let len = (i * 7_919) % (10 * MAX_CACHED_KEY_BYTES) + 8;
            let key = format!("{i:08}{}", "q".repeat(len - 8)).into_bytes();
            // The value is as large again as the key (a destination's JSON is about twice).
            let value: Arc<str> = Arc::from("v".repeat(2 * len));
            let got = c.get_or_insert(&key, || value.clone());
            assert_eq!(got.len(), 2 * len);
            let held: usize = [&c.young, &c.old]
                .iter()
                .flat_map(|m| m.iter())
                .map(|(k, v)| k.len() + v.len() + ENTRY_OVERHEAD_BYTES)
                .sum();
            assert_eq!(held, c.bytes(), "the accounting is exact");
            assert!(c.bytes() <= 2 * BUDGET, "{} bytes held after {i} keys", c.bytes());
            assert!(
                c.young
                    .keys()
                    .chain(c.old.keys())
                    .all(|k| k.len() <= MAX_CACHED_KEY_BYTES)
            );
            most = most.max(c.bytes());
        }
        assert!(most > BUDGET, "the budget was reached ({most} bytes at most)");

        // A normal agent is classified once however often it comes, between huge ones.
        let mut c = UaCache::new(16, 8 * 1024);
        let chrome = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                       Chrome/131.0.0.0 Safari/537.36\0\"Chromium\";v=\"131\"\0?0\0\"Windows\"";
        let mut classified = 0;
        for i in 0..100u32 {
            c.get_or_insert(chrome, || {
                classified += 1;
                agent(b"chrome")
            });
            let huge = format!("{i}{}", "x".repeat(4096));
            c.get_or_insert(huge.as_bytes(), || agent(b"huge"));
        }
        assert_eq!(classified, 1);
        assert_eq!(c.len(), 1, "no huge agent is kept");
    }
}
