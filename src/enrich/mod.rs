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
//! a cache hit costs a hash of the UA bytes and a map lookup.

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
/// Entries per generation of the cache of destinations with the request's query merged in.
const DESTINATION_CACHE_GENERATION_ENTRIES: usize = 16_384;
/// Entries per generation of the referrer cache (keyed by `Referer` and the link's domain).
const REFERRAL_CACHE_GENERATION_ENTRIES: usize = 16_384;

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

/// A two-generation cache: lookups hit the young map, then the old one (promoting the entry);
/// when the young map is full it becomes the old one. An LRU approximation with no per-hit
/// bookkeeping and a hard size bound of two generations.
pub struct TwoGenCache<V: ?Sized> {
    young: HashMap<Box<[u8]>, Arc<V>, foldhash::fast::RandomState>,
    old: HashMap<Box<[u8]>, Arc<V>, foldhash::fast::RandomState>,
    cap: usize,
}

/// User agent (and client hints) → classification.
pub type UaCache = TwoGenCache<EncodedAgent>;

impl<V: ?Sized> TwoGenCache<V> {
    /// A cache of at most `2 * cap` entries.
    pub fn new(cap: usize) -> TwoGenCache<V> {
        TwoGenCache {
            young: HashMap::default(),
            old: HashMap::default(),
            cap: cap.max(1),
        }
    }

    /// The cached value for `key`, or the one `compute` makes (then cached).
    pub fn get_or_insert(&mut self, key: &[u8], compute: impl FnOnce() -> Arc<V>) -> Arc<V> {
        if let Some(v) = self.young.get(key) {
            return v.clone();
        }
        let value = match self.old.remove(key) {
            Some(v) => v,
            None => compute(),
        };
        if self.young.len() >= self.cap {
            // The old generation's table becomes the young one, emptied: it keeps its capacity,
            // so the young map never grows (and rehashes) again.
            std::mem::swap(&mut self.old, &mut self.young);
            self.young.clear();
        }
        self.young.insert(key.into(), value.clone());
        value
    }

    /// Forgets everything (the bot list changed).
    pub fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
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
            ua_cache: UaCache::new(UA_CACHE_GENERATION_ENTRIES),
            destinations: TwoGenCache::new(DESTINATION_CACHE_GENERATION_ENTRIES),
            referrals: TwoGenCache::new(REFERRAL_CACHE_GENERATION_ENTRIES),
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

    #[test]
    fn ua_cache_is_bounded_and_promotes() {
        let mut c = UaCache::new(2);
        let mut computed = 0;
        let mut get = |c: &mut UaCache, k: &[u8]| {
            c.get_or_insert(k, || {
                computed += 1;
                Arc::new(EncodedAgent::new(
                    AgentInfo {
                        browser_name: String::from_utf8_lossy(k).into_owned(),
                        browser_version: String::new(),
                        os_name: String::new(),
                        os_version: String::new(),
                        device: "",
                        bot: false,
                    },
                    0,
                ))
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
}
