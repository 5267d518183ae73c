//! Visitor sessions: which clicks belong together, without keeping who the visitor is.
//!
//! A visitor is a keyed hash of (client IP, user agent, workspace) under a secret salt drawn at
//! random at start-up and redrawn every UTC day, so the address itself is never stored, never
//! emitted, and yesterday's keys cannot be recomputed. (A session that spans midnight UTC starts
//! anew: the price of the rotation.) A session ends after `idle_timeout` without a click.
//!
//! Called by the enricher once per click, off the response path, with the click's own time, so
//! tests drive it with explicit times.
//!
//! Memory is bounded twice: [`SessionTracker::sweep`] removes expired entries (the pipeline calls
//! it every few seconds), and `max_entries` is a hard cap: at the cap, the oldest sessions by
//! creation are looked at from a FIFO and evicted, giving one second chance to those still active
//! — at most [`EVICTION_SCAN_MAX`] entries looked at per click, never a scan of the whole map.
//! A session also keeps the country of its first click: the visitor key includes the address,
//! so a returning visitor's clicks skip the GeoIP lookup.
//!
//! One session costs about 56 bytes: the map entry (8-byte key, the start, the last click as
//! milliseconds after it, the country, hash-table control byte and slack) plus its 8-byte slot
//! in the FIFO. At worst 73 bytes: a 25-byte slot (entry and control byte) in a table just
//! doubled to 7/16 full (57 bytes an entry) and a FIFO just doubled (16); so `max_entries`
//! bounds the tracker at 73 MB at the default 1,000,000.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use dashmap::DashMap;

use super::geo::CountryCode;

/// Most FIFO entries looked at to make room for one new session.
const EVICTION_SCAN_MAX: usize = 64;
const MICROS_PER_DAY: i64 = 86_400_000_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Unix microseconds.
    started: i64,
    /// Milliseconds from `started` to the last click, rounded up (so a session may last up to a
    /// millisecond longer than `idle_timeout`, never shorter): a visitor key lives one UTC day,
    /// so this fits 32 bits, and the entry fits 16 bytes with the country.
    last_millis: u32,
    country: Option<CountryCode>,
}

impl Entry {
    fn fresh(now_micros: i64, country: Option<CountryCode>) -> Entry {
        Entry {
            started: now_micros,
            last_millis: 0,
            country,
        }
    }

    /// The last click, unix microseconds.
    fn last_seen(&self) -> i64 {
        self.started.saturating_add(i64::from(self.last_millis) * 1000)
    }

    fn seen_at(&mut self, now_micros: i64) {
        let after = u64::try_from(now_micros.saturating_sub(self.started)).unwrap_or(0);
        let millis = u32::try_from(after.div_ceil(1000)).unwrap_or(u32::MAX);
        self.last_millis = self.last_millis.max(millis);
    }
}

/// What the tracker says about one click.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionInfo {
    /// Time of the session's first click, unix microseconds.
    pub started_micros: i64,
    /// True when this click opened the session.
    pub first: bool,
}

/// Sessions keyed by a salted visitor hash.
pub struct SessionTracker {
    idle_micros: i64,
    max_entries: usize,
    /// The keys are already keyed SipHash outputs, so the map itself uses foldhash: SipHash
    /// again would only cost time.
    sessions: DashMap<u64, Entry, foldhash::fast::RandomState>,
    /// Keys in creation order, for bounded eviction at the cap. A `Mutex` because only the
    /// enrichment thread and the sweep touch it, never the request path.
    order: Mutex<VecDeque<u64>>,
    salt: Mutex<(i64, RandomState)>,
    /// Keys [`SessionTracker::agent_id`] for the process's lifetime.
    agent_key: RandomState,
}

impl SessionTracker {
    /// A tracker with the given idle timeout and hard cap.
    pub fn new(idle_timeout: Duration, max_entries: usize) -> SessionTracker {
        SessionTracker {
            idle_micros: idle_timeout.as_micros().min(i64::MAX as u128) as i64,
            max_entries: max_entries.max(1),
            sessions: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            order: Mutex::new(VecDeque::new()),
            salt: Mutex::new((i64::MIN, RandomState::new())),
            agent_key: RandomState::new(),
        }
    }

    /// A user agent's part of its visitors' keys: a keyed hash of the agent, the same for the
    /// process's lifetime, so the enricher computes it once per agent it caches instead of
    /// hashing the agent's hundred-odd bytes again for every click.
    pub fn agent_id(&self, user_agent: &[u8]) -> u64 {
        self.agent_key.hash_one(user_agent)
    }

    /// The salted visitor key of an address, a user agent ([`SessionTracker::agent_id`]) and a
    /// workspace; the salt is redrawn when the UTC day of `now` changes.
    pub fn visitor_key(&self, ip: IpAddr, agent_id: u64, workspace: &str, now_micros: i64) -> u64 {
        let day = now_micros.div_euclid(MICROS_PER_DAY);
        let mut salt = self.salt.lock().unwrap_or_else(|e| e.into_inner());
        if salt.0 != day {
            *salt = (day, RandomState::new());
        }
        // `RandomState` is SipHash-1-3 under 128 random key bits: a keyed hash, which is what
        // keeps the visitor's address out of reach.
        let mut h = salt.1.build_hasher();
        drop(salt);
        ip.hash(&mut h);
        agent_id.hash(&mut h);
        workspace.hash(&mut h);
        h.finish()
    }

    /// Records a click of visitor `key` at `now_micros`; returns the session and its country,
    /// which `locate` finds when the click opens the session (and only then).
    ///
    /// Most clicks of a large audience are a visitor's first, so the map is probed once for both
    /// the lookup and the insert (an entry), with the cap checked before: making room takes other
    /// shards' locks, which must not be taken while this key's shard is held, so at the cap the
    /// entry is let go first.
    pub fn touch(
        &self,
        key: u64,
        now_micros: i64,
        locate: impl FnOnce() -> Option<CountryCode>,
    ) -> (SessionInfo, Option<CountryCode>) {
        let fresh = |country| Entry::fresh(now_micros, country);
        let first = SessionInfo {
            started_micros: now_micros,
            first: true,
        };
        // The FIFO holds every live key once (insertions, evictions and sweeps change both), so
        // its length is the map's: `DashMap::len` would take every shard's lock. Held from here
        // on; the FIFO's lock before a shard's is the order `make_room` and `sweep` take them in.
        let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        let at_cap = order.len() >= self.max_entries;
        // The entry holds its shard's lock until the end of this statement.
        let locate = match self.sessions.entry(key) {
            dashmap::Entry::Occupied(mut held) => {
                let e = held.get_mut();
                if now_micros.saturating_sub(e.last_seen()) <= self.idle_micros {
                    e.seen_at(now_micros);
                    let session = SessionInfo {
                        started_micros: e.started,
                        first: false,
                    };
                    return (session, e.country);
                }
                // Idle too long: the same visitor starts a new session.
                let country = locate();
                *e = fresh(country);
                return (first, country);
            }
            dashmap::Entry::Vacant(vacant) if !at_cap => {
                let country = locate();
                vacant.insert(fresh(country));
                order.push_back(key);
                return (first, country);
            }
            dashmap::Entry::Vacant(_) => locate,
        };
        let country = locate();
        self.make_room(&mut order, now_micros);
        self.sessions.insert(key, fresh(country));
        order.push_back(key);
        (first, country)
    }

    /// Evicts at least one session, oldest by creation first; an active one gets a second chance.
    fn make_room(&self, order: &mut VecDeque<u64>, now_micros: i64) {
        let mut fallback = None;
        for _ in 0..EVICTION_SCAN_MAX.min(order.len()) {
            let Some(key) = order.pop_front() else { break };
            let Some(entry) = self.sessions.get(&key).map(|e| *e) else {
                continue; // already swept
            };
            if now_micros.saturating_sub(entry.last_seen()) > self.idle_micros {
                self.sessions.remove(&key);
                return;
            }
            order.push_back(key);
            fallback.get_or_insert(key);
        }
        // Every session looked at is active: evict the oldest of them anyway; the cap is hard.
        if let Some(key) = fallback {
            self.sessions.remove(&key);
            if let Some(pos) = order.iter().rposition(|k| *k == key) {
                order.remove(pos);
            }
        }
    }

    /// Removes every expired session; returns how many remain.
    pub fn sweep(&self, now_micros: i64) -> usize {
        let idle = self.idle_micros;
        self.sessions
            .retain(|_, e| now_micros.saturating_sub(e.last_seen()) <= idle);
        let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        order.retain(|k| self.sessions.contains_key(k));
        self.sessions.len()
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when no session is tracked.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    #[test]
    fn start_first_and_idle_expiry() {
        let t = SessionTracker::new(Duration::from_secs(30 * 60), 100);
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let t0 = 1_700_000_000_000_000;
        let k = t.visitor_key(ip, t.agent_id(b"UA"), "w1", t0);
        // (offset in minutes, expected first, expected start offset)
        let steps = [
            (0, true, 0),
            (10, false, 0),
            (39, false, 0),
            (69, false, 0),
            (100, true, 100),
            (101, false, 100),
        ];
        for (at, first, start) in steps {
            let (s, _) = t.touch(k, t0 + at * MIN, || None);
            assert_eq!((s.first, s.started_micros), (first, t0 + start * MIN), "at +{at}m");
        }
    }

    #[test]
    fn a_session_keeps_the_country_of_its_first_click() {
        let t = SessionTracker::new(Duration::from_secs(60), 100);
        let t0 = 1_700_000_000_000_000;
        let br = CountryCode::from_alpha2("BR");
        let (s, c) = t.touch(7, t0, || br);
        assert!(s.first);
        assert_eq!(c, br);
        // A returning visitor: no lookup.
        let (s, c) = t.touch(7, t0 + MIN / 2, || panic!("looked up again"));
        assert!(!s.first);
        assert_eq!(c, br);
        // A new session looks up again.
        let (s, c) = t.touch(7, t0 + 3 * MIN, || None);
        assert!(s.first);
        assert_eq!(c, None);
        // So does a visitor let in at the cap.
        let small = SessionTracker::new(Duration::from_secs(60), 1);
        small.touch(1, t0, || None);
        assert_eq!(small.touch(2, t0, || br).1, br);
        assert_eq!(small.touch(2, t0 + 1, || None).1, br);
    }

    #[test]
    fn the_last_click_is_kept_to_the_millisecond_rounded_up() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        let t = SessionTracker::new(Duration::from_millis(10), 100);
        let t0 = 1_700_000_000_000_000;
        t.touch(1, t0, || None);
        // 1.5 ms later: the last click counts as 2 ms after the start.
        assert!(!t.touch(1, t0 + 1_500, || None).0.first);
        assert!(!t.touch(1, t0 + 12_000, || None).0.first);
        assert!(t.touch(1, t0 + 22_001, || None).0.first);
        // A clock that steps back does not move the last click back.
        t.touch(2, t0, || None);
        t.touch(2, t0 + 9_000, || None);
        t.touch(2, t0 - 5_000, || None);
        assert!(!t.touch(2, t0 + 19_000, || None).0.first);
    }

    #[test]
    fn visitors_differ_by_ip_ua_and_workspace_and_salt_rotates_daily() {
        let t = SessionTracker::new(Duration::from_secs(60), 100);
        let a: IpAddr = "203.0.113.9".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let now = 1_700_000_000_000_000;
        let k = t.visitor_key(a, t.agent_id(b"UA"), "w1", now);
        assert_eq!(k, t.visitor_key(a, t.agent_id(b"UA"), "w1", now + 1));
        assert_ne!(k, t.visitor_key(b, t.agent_id(b"UA"), "w1", now));
        assert_ne!(k, t.visitor_key(a, t.agent_id(b"UA2"), "w1", now));
        assert_ne!(k, t.visitor_key(a, t.agent_id(b"UA"), "w2", now));
        let tomorrow = now + MICROS_PER_DAY;
        assert_ne!(k, t.visitor_key(a, t.agent_id(b"UA"), "w1", tomorrow));
    }

    #[test]
    fn sweep_and_hard_cap() {
        let t = SessionTracker::new(Duration::from_secs(60), 3);
        let now = 1_000 * MIN;
        for k in 0..3 {
            t.touch(k, now, || None);
        }
        assert_eq!(t.len(), 3);
        // At the cap, all active: the oldest is evicted to make room.
        t.touch(10, now + 1, || None);
        assert_eq!(t.len(), 3);
        assert!(t.touch(0, now + 2, || None).0.first, "evicted session starts anew");
        // Expired sessions go first.
        let later = now + 2 * MIN;
        t.touch(10, later, || None);
        t.touch(11, later, || None);
        assert_eq!(t.len(), 3);
        assert_eq!(t.sweep(later), 2);
        assert_eq!(t.sweep(later + 5 * MIN), 0);
        assert!(t.order.lock().unwrap().is_empty());
    }
}
