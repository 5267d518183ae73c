//! Country of a click's client address, from a MaxMind DB (`.mmdb`) file.
//!
//! The binary embeds `data/geo-whois-asn-country.mmdb` (ip-location-db's
//! country database built from the regional internet registries' data, CC BY
//! 4.0); operators may load another file, including MaxMind's GeoIP2/GeoLite2
//! Country or City databases.
//!
//! The enricher calls [`GeoDb::country`] once per click, off the request's
//! response path. A lookup reads a precomputed table, or walks the search tree
//! with the `maxminddb` crate's reader and then reads one: no I/O, no
//! decoding, no allocation, no panic.
//!
//! All the work happens in [`GeoDb::from_bytes`], once: the reader's
//! `verify()` checks the metadata, every record of the search tree and every
//! data record the tree points to (bounds, types, pointer cycles, nesting), so
//! a truncated or corrupt file is an error at load time, never a crash or a
//! wrong answer later. One walk over the networks, before it, finds each
//! distinct data record, whose country is then decoded into a table keyed by
//! the record's offset, and fills a table of the answer for every IPv4 /16
//! or /24 that a single network covers, which is nearly all of the IPv4 space,
//! so that an IPv4 lookup reads one or two entries instead of walking the tree.
//!
//! Special-purpose addresses (private, loopback, link-local, shared,
//! documentation, multicast, reserved: the IANA registries of RFC 6890) have
//! no country whatever the database says: whois-derived databases attach one
//! to some of them (192.168.0.0/16 and 2001:db8::/32, for instance).
//!
//! Two record layouts carry the country:
//! - ip-location-db: `{"country_code": "BR"}`;
//! - GeoIP2/GeoLite2: `{"country": {"iso_code": "BR"}}`, falling back to
//!   `{"registered_country": {"iso_code": "BR"}}` for networks without a
//!   located country (anycast, satellite providers).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use maxminddb::{LookupResult, MaxMindDbError, Metadata, PathElement, Reader, WithinOptions};

/// Why a database could not be loaded. Each message starts with the file's
/// path (or the origin given to [`GeoDb::from_bytes`]).
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// Path of the file.
        path: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// No usable metadata section: this is not a MaxMind DB file.
    #[error("{origin}: not a MaxMind DB file ({source})")]
    NotMaxMindDb {
        /// Path or description of the bytes.
        origin: String,
        /// What the reader found missing or wrong.
        source: MaxMindDbError,
    },
    /// The metadata is readable but the search tree or data section is not.
    #[error("{origin}: corrupt MaxMind DB file ({source})")]
    Corrupt {
        /// Path or description of the bytes.
        origin: String,
        /// What the reader found inconsistent.
        source: MaxMindDbError,
    },
    /// A valid MaxMind DB whose records name no country (an ASN or ISP database).
    #[error("{origin}: no country in any record of this '{database_type}' database")]
    NoCountries {
        /// Path or description of the bytes.
        origin: String,
        /// The database's own `database_type`.
        database_type: String,
    },
}

/// An ISO 3166-1 alpha-2 country code, stored in lower case (`br`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Parses two ASCII letters in either case; `None` for anything else.
    pub fn from_alpha2(code: &str) -> Option<CountryCode> {
        match code.as_bytes() {
            &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(CountryCode([a.to_ascii_lowercase(), b.to_ascii_lowercase()]))
            }
            _ => None,
        }
    }

    /// The code as two lower-case letters.
    pub fn as_str(&self) -> &str {
        // Only `from_alpha2` builds a code, from two ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// IPv4 answers by prefix. The crate's reader walks the tree from its top for every lookup: for
/// an address in a /24, 24 dependent reads of the search tree, where these tables take one or two.
///
/// Entries are `u16` so that the tables stay small enough for the caches: a country code as its
/// two letters ([`NO_COUNTRY`] for none), [`WALK`] where only the tree can tell, and in `by_16`,
/// `CHUNK + i` for a /16 that several networks share, whose 256 /24s are `by_24[i * 256..]`.
/// The embedded database has 9,062 such /16s: 4.6 MiB of /24 entries, and 128 KiB of /16 ones.
struct V4Table {
    by_16: Box<[u16]>,
    by_24: Box<[u16]>,
}

/// [`V4Table`]: no country.
const NO_COUNTRY: u16 = 0;
/// [`V4Table`]: walk the tree (a network smaller than a /24, or no table for this /16).
const WALK: u16 = u16::MAX;
/// [`V4Table`]: the first `by_16` entry that points to /24 entries (country codes are below).
const CHUNK: u16 = 0x8000;

impl V4Table {
    /// The answer for `ip`, or `None` when the tree must decide.
    fn get(&self, ip: Ipv4Addr) -> Option<Option<CountryCode>> {
        let bits = u32::from(ip);
        let mut entry = self.by_16.get((bits >> 16) as usize).copied()?;
        if (CHUNK..WALK).contains(&entry) {
            let at = (usize::from(entry - CHUNK) << 8) | ((bits >> 8) & 0xff) as usize;
            entry = self.by_24.get(at).copied()?;
        }
        match entry {
            WALK => None,
            NO_COUNTRY => Some(None),
            code => Some(Some(CountryCode(code.to_be_bytes()))),
        }
    }
}

/// Country lookups from a MaxMind DB file.
pub struct GeoDb {
    origin: String,
    /// The whole file: the crate's reader walks its search tree in place. The embedded database
    /// is borrowed from the binary; a file read at run time stays in memory as read.
    reader: Reader<Cow<'static, [u8]>>,
    /// The answers for nearly all IPv4 addresses, without a walk of the tree.
    v4: V4Table,
    /// Country of each data record the tree points to, by data-section offset. The offsets come
    /// from the database, not from requests, so the map uses foldhash rather than SipHash.
    countries: HashMap<usize, CountryCode, foldhash::fast::RandomState>,
}

impl fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let meta = self.reader.metadata();
        f.debug_struct("GeoDb")
            .field("origin", &self.origin)
            .field("database_type", &meta.database_type)
            .field("build_epoch", &meta.build_epoch)
            .field("ip_version", &meta.ip_version)
            .field("node_count", &meta.node_count)
            .field("record_size", &meta.record_size)
            .field("distinct_records", &self.countries.len())
            .finish_non_exhaustive()
    }
}

static EMBEDDED: &[u8] = include_bytes!("../../data/geo-whois-asn-country.mmdb");

/// How a database marks the start of its metadata section (format spec).
const METADATA_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";

// Data field types (format spec, "Output Data Section").
const STRING: u8 = 2;
const UINT16: u8 = 5;
const UINT32: u8 = 6;
const MAP: u8 = 7;
const UINT64: u8 = 9;
const ARRAY: u8 = 11;

/// The largest size a field's control bytes can state (format spec, "Payload Size").
const MAX_FIELD_SIZE: usize = 65_821 + (1 << 24) - 1;

/// Networks walked at load per search-tree node, at most. A tree of `n` nodes has `n + 1`
/// leaves; each alias to the IPv4 subtree adds that subtree's again (MaxMind's files have three).
const MAX_WALK_PER_NODE: usize = 8;

/// Where each layout keeps the country, in order of preference (see the module's notes).
const COUNTRY_PATHS: [&[PathElement<'static>]; 3] = [
    &[PathElement::Key("country_code")],
    &[PathElement::Key("country"), PathElement::Key("iso_code")],
    &[PathElement::Key("registered_country"), PathElement::Key("iso_code")],
];

impl GeoDb {
    /// The database shipped with the binary (`data/geo-whois-asn-country.mmdb`).
    pub fn embedded() -> GeoDb {
        // The file is part of the source tree and a unit test loads it, so a
        // failure here is a build defect, not a run-time condition.
        match GeoDb::load(Cow::Borrowed(EMBEDDED), "embedded data/geo-whois-asn-country.mmdb") {
            Ok(db) => db,
            Err(error) => panic!("{error}"),
        }
    }

    /// Reads and checks a database file.
    pub fn open(path: &Path) -> Result<GeoDb, GeoError> {
        let bytes = std::fs::read(path).map_err(|source| GeoError::Read {
            path: path.display().to_string(),
            source,
        })?;
        GeoDb::from_bytes(bytes, &path.display().to_string())
    }

    /// Checks a database held in memory; `origin` names it in errors.
    pub fn from_bytes(bytes: Vec<u8>, origin: &str) -> Result<GeoDb, GeoError> {
        GeoDb::load(Cow::Owned(bytes), origin)
    }

    /// Lower-case ISO 3166-1 alpha-2 code, or None when unknown.
    ///
    /// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are looked up as IPv4.
    /// Special-purpose addresses (private, loopback, documentation, …) and
    /// addresses the database does not cover have no country.
    pub fn country(&self, ip: IpAddr) -> Option<CountryCode> {
        let ip = ip.to_canonical();
        if is_special_purpose(ip) {
            return None;
        }
        if let IpAddr::V4(v4) = ip
            && let Some(answer) = self.v4.get(v4)
        {
            return answer;
        }
        // An IPv6 address in an IPv4-only database is an error here: no country.
        let offset = self.reader.lookup(ip).ok()?.offset()?;
        self.countries.get(&offset).copied()
    }

    /// The database's own `database_type` (`GeoLite2-Country`, …).
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// When the database was built, in seconds since the Unix epoch.
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    /// The path or description the database was loaded from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn load(bytes: Cow<'static, [u8]>, origin: &str) -> Result<GeoDb, GeoError> {
        let not_mmdb = |source| GeoError::NotMaxMindDb {
            origin: origin.to_owned(),
            source,
        };
        let corrupt = |source| GeoError::Corrupt {
            origin: origin.to_owned(),
            source,
        };
        // The checks and tables use a reader that borrows the bytes; the one kept takes them.
        let (countries, v4) = {
            let reader = Reader::from_source(&*bytes).map_err(not_mmdb)?;
            let walk = Walk::run(&reader).map_err(corrupt)?;
            // Bounds every decode below and every lookup later: each record the tree points to
            // decodes within the data section (types, sizes, UTF-8, pointer cycles, nesting).
            verify(&reader, &bytes).map_err(corrupt)?;
            let by_record = walk
                .records
                .iter()
                .map(record_country)
                .collect::<Result<Vec<_>, _>>()
                .map_err(corrupt)?;
            let countries: HashMap<_, _, _> = (walk.records.iter().zip(&by_record))
                .filter_map(|(record, country)| Some((record.offset()?, (*country)?)))
                .collect();
            if countries.is_empty() {
                return Err(GeoError::NoCountries {
                    origin: origin.to_owned(),
                    database_type: reader.metadata().database_type.clone(),
                });
            }
            (countries, walk.v4.finish(&by_record))
        };
        Ok(GeoDb {
            origin: origin.to_owned(),
            reader: Reader::from_source(bytes).map_err(not_mmdb)?,
            v4,
            countries,
        })
    }
}

/// `reader.verify()`, for `bytes`, also when the metadata's description or database type is
/// empty. The format allows that (ip-location-db's files, the embedded one included, have no
/// description), but `verify()` rejects it before it checks anything else; such a file is
/// checked as a copy whose metadata section, re-encoded, has a placeholder in their place.
fn verify(reader: &Reader<&[u8]>, bytes: &[u8]) -> Result<(), MaxMindDbError> {
    let meta = reader.metadata();
    if !meta.description.is_empty() && !meta.database_type.is_empty() {
        return reader.verify();
    }
    // The reader found the marker: the last one in the file, as here.
    let Some(marker) = bytes
        .windows(METADATA_MARKER.len())
        .rposition(|window| window == METADATA_MARKER)
    else {
        return reader.verify();
    };
    let metadata_start = marker + METADATA_MARKER.len();
    let mut copy = Vec::with_capacity(metadata_start + 512);
    copy.extend_from_slice(&bytes[..metadata_start]);
    encode_metadata(&mut copy, meta);
    Reader::from_source(copy.as_slice())?.verify()
}

/// Appends `meta` as a metadata section's map (format spec, "Database Metadata"), with `-` for
/// an empty description or database type.
fn encode_metadata(out: &mut Vec<u8>, meta: &Metadata) {
    fn text(out: &mut Vec<u8>, text: &str) {
        field_head(out, STRING, text.len());
        out.extend_from_slice(text.as_bytes());
    }
    fn uint(out: &mut Vec<u8>, kind: u8, value: u64) {
        let bytes = value.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        field_head(out, kind, bytes.len() - skip);
        out.extend_from_slice(&bytes[skip..]);
    }
    let database_type = if meta.database_type.is_empty() {
        "-"
    } else {
        &meta.database_type
    };
    field_head(out, MAP, 9);
    text(out, "binary_format_major_version");
    uint(out, UINT16, u64::from(meta.binary_format_major_version));
    text(out, "binary_format_minor_version");
    uint(out, UINT16, u64::from(meta.binary_format_minor_version));
    text(out, "build_epoch");
    uint(out, UINT64, meta.build_epoch);
    text(out, "database_type");
    text(out, database_type);
    text(out, "description");
    if meta.description.is_empty() {
        field_head(out, MAP, 1);
        text(out, "en");
        text(out, "-");
    } else {
        field_head(out, MAP, meta.description.len());
        for (language, description) in &meta.description {
            text(out, language);
            text(out, description);
        }
    }
    text(out, "ip_version");
    uint(out, UINT16, u64::from(meta.ip_version));
    text(out, "languages");
    field_head(out, ARRAY, meta.languages.len());
    for language in &meta.languages {
        text(out, language);
    }
    text(out, "node_count");
    uint(out, UINT32, u64::from(meta.node_count));
    text(out, "record_size");
    uint(out, UINT16, u64::from(meta.record_size));
}

/// Appends a field's control byte, extended type byte and size bytes (format spec, "Data Field
/// Format"). Sizes past the format's largest (16,843,036) are cut to it: the reader then rejects
/// the value rather than this code panicking.
fn field_head(out: &mut Vec<u8>, kind: u8, size: usize) {
    // Below 2^25: no bits lost.
    let size = size.min(MAX_FIELD_SIZE) as u32;
    let (low, extra, extra_len) = match size {
        0..29 => (size, 0, 0),
        29..285 => (29, size - 29, 1),
        285..65_821 => (30, size - 285, 2),
        _ => (31, size - 65_821, 3),
    };
    let low = low as u8;
    if kind <= 7 {
        out.push(kind << 5 | low);
    } else {
        out.push(low);
        out.push(kind - 7);
    }
    out.extend_from_slice(&extra.to_be_bytes()[4 - extra_len..]);
}

/// What the load's one walk over the networks gathers, before anything is decoded.
struct Walk<'a, S: AsRef<[u8]>> {
    /// One network per distinct data record the tree points to, in the order first met: a
    /// record's index here is its slot in `v4`.
    records: Vec<LookupResult<'a, S>>,
    v4: V4Slots,
}

impl<'a, S: AsRef<[u8]>> Walk<'a, S> {
    /// Walks every network of the tree, including the branches that reach the IPv4 subtree again
    /// through an alias (`::ffff:0:0/96`, `2002::/16`), and stops past what a tree of this many
    /// nodes holds with a few such aliases. `verify()` does not count those branches: nodes that
    /// share children (a tree folded into a chain of a hundred nodes) would keep it busy for
    /// 2^100 steps, and walking first bounds its walk too.
    fn run(reader: &'a Reader<S>) -> Result<Walk<'a, S>, MaxMindDbError> {
        let nodes = reader.metadata().node_count as usize;
        let limit = nodes.saturating_add(1).saturating_mul(MAX_WALK_PER_NODE);
        let every = WithinOptions::default()
            .include_aliased_networks()
            .include_networks_without_data();
        let mut walk = Walk {
            records: Vec::new(),
            v4: V4Slots::new(),
        };
        let mut slots: HashMap<usize, u32, foldhash::fast::RandomState> = HashMap::default();
        let mut last = None;
        for (walked, network) in reader.networks(every)?.enumerate() {
            if walked > limit {
                return Err(MaxMindDbError::invalid_database(format!(
                    "the search tree of {nodes} nodes holds more than {limit} networks: its nodes share children"
                )));
            }
            let network = network?;
            // Networks of the IPv4 subtree come out as IPv4 networks, its aliases as IPv6 ones.
            let v4 = match network.network() {
                Ok(net) => match net.network() {
                    IpAddr::V4(start) => Some((u32::from(start), u32::from(net.prefix()))),
                    IpAddr::V6(_) => None,
                },
                Err(_) => None,
            };
            // Slot 0 is no data; neighbouring networks often share a record.
            let slot = match (network.offset(), last) {
                (None, _) => 0,
                (Some(offset), Some((last_offset, slot))) if offset == last_offset => slot,
                (Some(offset), _) => {
                    let next = u32::try_from(walk.records.len() + 1).unwrap_or(u32::MAX);
                    let slot = *slots.entry(offset).or_insert(next);
                    if slot == next {
                        walk.records.push(network);
                    }
                    last = Some((offset, slot));
                    slot
                }
            };
            if let Some((start, prefix)) = v4 {
                walk.v4.fill(start, prefix, slot);
            }
        }
        Ok(walk)
    }
}

/// [`V4Table`] while the walk fills it, with record slots (index + 1 into [`Walk::records`],
/// 0 for no data) in place of countries, which are decoded after `verify()`.
struct V4Slots {
    by_16: Vec<u32>,
    by_24: Vec<u32>,
}

/// [`V4Slots`]: walk the tree. Also what an entry no network reached keeps (a tree whose IPv4
/// addresses are not in a subtree of their own, which the walk does not report as IPv4).
const WALK_SLOT: u32 = u32::MAX;
/// [`V4Slots`]: the first `by_16` entry that points to /24 entries.
const CHUNK_SLOT: u32 = 1 << 31;

impl V4Slots {
    fn new() -> V4Slots {
        V4Slots {
            by_16: vec![WALK_SLOT; 1 << 16],
            by_24: Vec::new(),
        }
    }

    /// Notes that the IPv4 network `start`/`prefix` holds the record in `slot`.
    fn fill(&mut self, start: u32, prefix: u32, slot: u32) {
        let slot = if slot >= CHUNK_SLOT { WALK_SLOT } else { slot };
        let block = (start >> 16) as usize;
        if prefix <= 16 {
            // The start of a network has only zeros past its prefix.
            let end = block + (1 << (16 - prefix));
            if let Some(entries) = self.by_16.get_mut(block..end) {
                entries.fill(slot);
            }
            return;
        }
        let chunk = match self.by_16[block] {
            entry if (CHUNK_SLOT..WALK_SLOT).contains(&entry) => (entry - CHUNK_SLOT) as usize,
            // Networks are disjoint: a /16 that holds a longer one has no answer of its own.
            _ if self.by_24.len() / 256 < usize::from(WALK - CHUNK) => {
                self.by_16[block] = CHUNK_SLOT + (self.by_24.len() / 256) as u32;
                self.by_24.resize(self.by_24.len() + 256, WALK_SLOT);
                self.by_24.len() / 256 - 1
            }
            // No room for the /24s of this /16: the tree decides there.
            _ => return,
        };
        let first = (chunk << 8) | ((start >> 8) & 0xff) as usize;
        let (end, slot) = if prefix <= 24 {
            (first + (1 << (24 - prefix)), slot)
        } else {
            (first + 1, WALK_SLOT)
        };
        if let Some(entries) = self.by_24.get_mut(first..end) {
            entries.fill(slot);
        }
    }

    /// The table of countries, from the country of each record, by slot - 1.
    fn finish(self, by_record: &[Option<CountryCode>]) -> V4Table {
        let answer = |slot: u32| match slot {
            0 => NO_COUNTRY,
            WALK_SLOT => WALK,
            CHUNK_SLOT.. => CHUNK + (slot - CHUNK_SLOT) as u16,
            _ => match by_record.get(slot as usize - 1) {
                Some(Some(country)) => u16::from_be_bytes(country.0),
                Some(None) => NO_COUNTRY,
                None => WALK,
            },
        };
        V4Table {
            by_16: self.by_16.into_iter().map(answer).collect(),
            by_24: self.by_24.into_iter().map(answer).collect(),
        }
    }
}

/// Country of a data record, in either layout; `None` when no field of the expected shape holds
/// two letters. Only a record the reader cannot decode at all is an error.
fn record_country<S: AsRef<[u8]>>(record: &LookupResult<'_, S>) -> Result<Option<CountryCode>, MaxMindDbError> {
    for path in COUNTRY_PATHS {
        match record.decode_path::<&str>(path) {
            Ok(Some(code)) => {
                if let Some(country) = CountryCode::from_alpha2(code) {
                    return Ok(Some(country));
                }
            }
            // Absent, or of another type (a number, a map where text is expected): no country.
            Ok(None) | Err(MaxMindDbError::Decoding { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(None)
}

/// IPv4 special-purpose blocks that never reach the public internet as a
/// client address (IANA IPv4 Special-Purpose Address Registry, RFC 6890).
const SPECIAL_V4: [(Ipv4Addr, u32); 14] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network" (RFC 791)
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private (RFC 1918)
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space, CGN (RFC 6598)
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback (RFC 1122)
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local (RFC 3927)
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private (RFC 1918)
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments (RFC 6890)
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (RFC 5737)
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private (RFC 1918)
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking (RFC 2544)
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (RFC 5737)
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (RFC 5737)
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast (RFC 5771)
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved and broadcast (RFC 1112, RFC 919)
];

/// IPv6 counterparts (IANA IPv6 Special-Purpose Address Registry).
const SPECIAL_V6: [(Ipv6Addr, u32); 9] = [
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 128), // unspecified (RFC 4291)
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1), 128), // loopback (RFC 4291)
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // local-use translation (RFC 8215)
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64), // discard-only (RFC 6666)
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation (RFC 3849)
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation (RFC 9637)
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), // unique local (RFC 4193)
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link-local (RFC 4291)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8), // multicast (RFC 4291)
];

/// True for an address in one of the special-purpose blocks above.
fn is_special_purpose(ip: IpAddr) -> bool {
    // Two addresses share a /len prefix when their XOR has no bit set above it.
    match ip {
        IpAddr::V4(v4) => SPECIAL_V4
            .iter()
            .any(|&(net, len)| (u32::from(v4) ^ u32::from(net)).checked_shr(32 - len) == Some(0)),
        IpAddr::V6(v6) => SPECIAL_V6
            .iter()
            .any(|&(net, len)| (u128::from(v6) ^ u128::from(net)).checked_shr(128 - len) == Some(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    fn embedded() -> &'static GeoDb {
        static DB: OnceLock<GeoDb> = OnceLock::new();
        DB.get_or_init(GeoDb::embedded)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn country(db: &GeoDb, addr: &str) -> Option<String> {
        db.country(ip(addr)).map(|code| code.to_string())
    }

    #[test]
    fn embedded_database_loads() {
        let db = embedded();
        assert_eq!(db.database_type(), "country ipvAll");
        assert!(db.build_epoch() > 1_700_000_000, "{}", db.build_epoch());
        assert!(db.countries.len() > 200, "{} distinct records", db.countries.len());
        // Addresses the IPv4 table answers without a walk: nearly all of them.
        let by_16 = db.v4.by_16.iter().filter(|&&e| e < CHUNK).count() << 16;
        let by_24 = db.v4.by_24.iter().filter(|&&e| e != WALK).count() << 8;
        let share = (by_16 + by_24) as f64 / f64::from(u32::MAX);
        assert!(share > 0.99, "{share}");
        assert!(format!("{db:?}").len() < 500);
    }

    /// Loading is part of the server's start: keep an eye on it (debug builds are far slower).
    #[test]
    fn embedded_database_loads_in_reasonable_time() {
        let start = Instant::now();
        let db = GeoDb::embedded();
        let took = start.elapsed();
        assert_eq!(db.countries.len(), embedded().countries.len());
        assert!(took < Duration::from_secs(20), "{took:?}");
    }

    #[test]
    fn embedded_database_answers_well_known_allocations() {
        let cases = [
            ("200.147.67.142", Some("br")),
            ("177.71.128.1", Some("br")),
            ("8.8.8.8", Some("us")),
            ("193.99.144.80", Some("de")),
            ("133.242.0.1", Some("jp")),
            ("::ffff:200.147.67.142", Some("br")),
            ("::ffff:8.8.8.8", Some("us")),
            ("2001:4860:4860::8888", Some("us")),
            ("2804:14c::1", Some("br")),
            ("2a00:1450:4001::1", Some("ie")),
            ("2001:240::1", Some("jp")),
            ("2a01:4f8::1", Some("de")),
            ("10.1.2.3", None),
            ("192.168.0.1", None),
            ("172.16.5.4", None),
            ("127.0.0.1", None),
            ("0.0.0.0", None),
            ("255.255.255.255", None),
            ("::1", None),
            ("::", None),
            ("fe80::1", None),
            ("fd00::1", None),
            ("2001:db8::1", None),
            ("::ffff:192.168.1.1", None),
            ("100.64.1.1", None),
            ("169.254.1.1", None),
            ("224.0.0.1", None),
            ("ff02::1", None),
        ];
        for (addr, expected) in cases {
            assert_eq!(country(embedded(), addr).as_deref(), expected, "{addr}");
        }
    }

    /// The record, decoded whole by the crate's serde decoder: what the tables must agree with.
    #[derive(serde::Deserialize)]
    struct Record<'a> {
        country_code: Option<&'a str>,
        #[serde(borrow)]
        country: Option<Names<'a>>,
        #[serde(borrow)]
        registered_country: Option<Names<'a>>,
    }

    #[derive(serde::Deserialize)]
    struct Names<'a> {
        iso_code: Option<&'a str>,
    }

    /// The country a plain lookup from the top of the tree and a full decode of the record give.
    fn reference_country(reader: &Reader<&[u8]>, addr: IpAddr) -> Option<CountryCode> {
        let addr = addr.to_canonical();
        let record = match reader.lookup(addr) {
            Ok(found) => found.decode::<Record>().unwrap()?,
            Err(_) => return None, // IPv6 in an IPv4 tree
        };
        let nested = |names: Option<Names<'_>>| names.and_then(|n| n.iso_code).and_then(CountryCode::from_alpha2);
        record
            .country_code
            .and_then(CountryCode::from_alpha2)
            .or_else(|| nested(record.country))
            .or_else(|| nested(record.registered_country))
            .filter(|_| !is_special_purpose(addr))
    }

    /// Addresses spread over both families: `random` IPv4 and IPv6 ones (in 2000::/4), and the
    /// first address, one in a /24 that varies and the last one of every `block_step`th IPv4 /16
    /// (the units of the IPv4 table).
    fn sample_addresses(random: usize, block_step: usize) -> Vec<IpAddr> {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut out = Vec::new();
        for i in 0..random {
            out.push(if i % 2 == 0 {
                IpAddr::V4(Ipv4Addr::from(next() as u32))
            } else {
                // 2000::/4 holds the allocated global unicast space.
                let high = (0x2000u128 << 112) | ((u128::from(next()) << 64) >> 4);
                IpAddr::V6(Ipv6Addr::from(high | u128::from(next())))
            });
        }
        for block in (0u32..1 << 16).step_by(block_step) {
            for low in [0, (block * 37 % 256) << 8 | 1, 0xffff] {
                out.push(IpAddr::V4(Ipv4Addr::from(block << 16 | low)));
            }
        }
        out
    }

    /// The precomputed tables (per-record countries, per-/16 answers) give what a lookup from
    /// the top of the tree and a full serde decode of its record give.
    #[test]
    fn embedded_database_tables_agree_with_full_decoding() {
        let reference = Reader::from_source(EMBEDDED).unwrap();
        let mut found = 0;
        for addr in sample_addresses(4000, 1) {
            let got = embedded().country(addr);
            assert_eq!(got, reference_country(&reference, addr), "{addr}");
            found += usize::from(got.is_some());
        }
        assert!(found > 100_000, "only {found} addresses had a country");
    }

    #[test]
    fn special_purpose_blocks_have_no_country() {
        let cases = [
            ("0.1.2.3", true),
            ("1.0.0.0", false),
            ("9.255.255.255", false),
            ("10.0.0.0", true),
            ("10.255.255.255", true),
            ("11.0.0.0", false),
            ("100.63.255.255", false),
            ("100.64.0.0", true),
            ("100.127.255.255", true),
            ("100.128.0.0", false),
            ("172.15.255.255", false),
            ("172.31.255.255", true),
            ("172.32.0.0", false),
            ("192.0.1.1", false),
            ("192.0.0.9", true),
            ("198.17.255.255", false),
            ("198.19.255.255", true),
            ("223.255.255.255", false),
            ("239.1.1.1", true),
            ("255.255.255.255", true),
            ("::", true),
            ("::2", false),
            ("2001:db8:ffff::1", true),
            ("2001:db9::1", false),
            ("3fff:0fff::1", true),
            ("3fff:1000::1", false),
            ("fbff::1", false),
            ("fc00::1", true),
            ("fdff::1", true),
            ("febf::1", true),
            ("fec0::1", false),
            ("ff00::1", true),
            ("2606:4700::1", false),
        ];
        for (addr, expected) in cases {
            assert_eq!(is_special_purpose(ip(addr)), expected, "{addr}");
        }
    }

    #[test]
    fn country_codes_are_two_letters() {
        let cases = [
            ("BR", Some("br")),
            ("us", Some("us")),
            ("Gb", Some("gb")),
            ("", None),
            ("B", None),
            ("BRA", None),
            ("1A", None),
            ("é", None),
        ];
        for (text, expected) in cases {
            let code = CountryCode::from_alpha2(text);
            assert_eq!(code.as_ref().map(CountryCode::as_str), expected, "{text:?}");
        }
        assert_eq!(CountryCode::from_alpha2("DE").unwrap().to_string(), "de");
    }

    // --- A tiny MaxMind DB writer for the tests below -----------------------

    const POINTER: u8 = 1;
    const BOOLEAN: u8 = 14;

    fn ctrl(kind: u8, size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        field_head(&mut out, kind, size);
        out
    }

    fn s(text: &str) -> Vec<u8> {
        let mut out = ctrl(STRING, text.len());
        out.extend(text.as_bytes());
        out
    }

    fn uint(kind: u8, value: u64) -> Vec<u8> {
        let bytes: Vec<u8> = value.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
        let mut out = ctrl(kind, bytes.len());
        out.extend(bytes);
        out
    }

    fn map(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut out = ctrl(MAP, entries.len());
        for (key, value) in entries {
            out.extend(s(key));
            out.extend(value);
        }
        out
    }

    fn pointer(target: usize) -> Vec<u8> {
        assert!(target < 2048);
        vec![POINTER << 5 | ((target >> 8) as u8 & 0x7), target as u8]
    }

    struct Tiny {
        ip_version: u16,
        record_size: u16,
        /// (network bits, walked from the top bit; prefix length in this
        /// tree's width; data record offset).
        networks: Vec<(u128, u32, usize)>,
        data: Vec<u8>,
        database_type: &'static str,
    }

    impl Tiny {
        fn build(&self) -> Vec<u8> {
            self.build_described(&[("en", s("test"))])
        }

        /// The database, with `description` as the metadata's description.
        fn build_described(&self, description: &[(&str, Vec<u8>)]) -> Vec<u8> {
            #[derive(Clone, Copy)]
            enum Child {
                Node(usize),
                Empty,
                Data(usize),
            }
            let width = if self.ip_version == 6 { 128 } else { 32 };
            let mut nodes = vec![[Child::Empty; 2]];
            for &(bits, prefix, offset) in &self.networks {
                let mut node = 0;
                for i in 0..prefix {
                    let side = ((bits >> (127 - i)) & 1) as usize;
                    if i + 1 == prefix {
                        nodes[node][side] = Child::Data(offset);
                    } else {
                        node = match nodes[node][side] {
                            Child::Node(n) => n,
                            _ => {
                                nodes.push([Child::Empty; 2]);
                                nodes[node][side] = Child::Node(nodes.len() - 1);
                                nodes.len() - 1
                            }
                        };
                    }
                }
                assert!(prefix <= width);
            }
            let count = nodes.len();
            let mut out = Vec::new();
            for [left, right] in &nodes {
                let value = |child: &Child| match *child {
                    Child::Node(n) => n,
                    Child::Empty => count,
                    Child::Data(off) => count + 16 + off,
                };
                let (l, r) = (value(left) as u32, value(right) as u32);
                match self.record_size {
                    24 => {
                        out.extend(&l.to_be_bytes()[1..]);
                        out.extend(&r.to_be_bytes()[1..]);
                    }
                    28 => {
                        out.extend(&l.to_be_bytes()[1..]);
                        out.push(((l >> 24) as u8) << 4 | (r >> 24) as u8);
                        out.extend(&r.to_be_bytes()[1..]);
                    }
                    _ => {
                        out.extend(l.to_be_bytes());
                        out.extend(r.to_be_bytes());
                    }
                }
            }
            out.extend([0u8; 16]);
            out.extend(&self.data);
            out.extend(METADATA_MARKER);
            out.extend(map(&[
                ("binary_format_major_version", uint(UINT16, 2)),
                ("binary_format_minor_version", uint(UINT16, 0)),
                ("build_epoch", uint(UINT64, 1_700_000_123)),
                ("database_type", s(self.database_type)),
                ("description", map(description)),
                ("ip_version", uint(UINT16, u64::from(self.ip_version))),
                ("languages", ctrl(ARRAY, 0)),
                ("node_count", uint(UINT32, count as u64)),
                ("record_size", uint(UINT16, u64::from(self.record_size))),
            ]));
            out
        }
    }

    /// An IPv4 network's bits as placed in an IPv6 tree (`::a.b.c.d`).
    fn v4_bits(text: &str) -> u128 {
        u128::from(u32::from(text.parse::<Ipv4Addr>().unwrap()))
    }

    fn v6_bits(text: &str) -> u128 {
        u128::from(text.parse::<Ipv6Addr>().unwrap())
    }

    /// GeoIP2-style records: nested maps, a shared string behind a pointer,
    /// a registered-country-only network, and unrelated fields to skip.
    fn geoip2_tiny(ip_version: u16, record_size: u16) -> Tiny {
        let mut data = Vec::new();
        let de_at = data.len();
        data.extend(s("DE"));
        let germany = data.len();
        data.extend(map(&[
            (
                "continent",
                map(&[("code", s("EU")), ("geoname_id", uint(UINT32, 6_255_148))]),
            ),
            (
                "country",
                map(&[("geoname_id", uint(UINT32, 2_921_044)), ("iso_code", pointer(de_at))]),
            ),
            ("registered_country", map(&[("iso_code", s("NL"))])),
            ("location", map(&[("accuracy_radius", uint(UINT16, 100))])),
        ]));
        let anycast = data.len();
        data.extend(map(&[
            ("registered_country", map(&[("iso_code", s("US"))])),
            ("traits", map(&[("is_anycast", ctrl(BOOLEAN, 1))])),
        ]));
        let asn_only = data.len();
        data.extend(map(&[("autonomous_system_number", uint(UINT32, 64_496))]));
        let flat = data.len();
        data.extend(map(&[("country_code", s("BR"))]));
        let shared_ref = data.len();
        data.extend(pointer(germany));
        let mut networks = vec![
            (v4_bits("81.0.0.0"), 96 + 8, germany),
            (v4_bits("1.1.1.0"), 96 + 24, anycast),
            (v4_bits("5.5.5.0"), 96 + 24, asn_only),
            (v4_bits("200.0.0.0"), 96 + 8, flat),
            (v4_bits("82.0.0.0"), 96 + 8, shared_ref),
        ];
        if ip_version == 6 {
            networks.push((v6_bits("2a01::"), 16, germany));
            networks.push((v6_bits("2804::"), 16, flat));
        } else {
            for network in &mut networks {
                network.0 <<= 96;
                network.1 -= 96;
            }
        }
        Tiny {
            ip_version,
            record_size,
            networks,
            data,
            database_type: "GeoIP2-Country",
        }
    }

    #[test]
    fn reads_both_layouts_in_every_record_size() {
        let cases = [
            ("81.2.3.4", Some("de")),
            ("82.2.3.4", Some("de")),
            ("::ffff:81.2.3.4", Some("de")),
            ("1.1.1.1", Some("us")),
            ("5.5.5.1", None),
            ("200.1.2.3", Some("br")),
            ("9.9.9.9", None),
            ("2a01:4f8::1", Some("de")),
            ("2804:14c::1", Some("br")),
            ("2001:db8::1", None),
        ];
        for ip_version in [4, 6] {
            for record_size in [24, 28, 32] {
                let bytes = geoip2_tiny(ip_version, record_size).build();
                let db = GeoDb::from_bytes(bytes, "tiny.mmdb").unwrap();
                assert_eq!(db.database_type(), "GeoIP2-Country");
                assert_eq!(db.build_epoch(), 1_700_000_123);
                for (addr, expected) in cases {
                    let expected = if ip_version == 4 && addr.contains("::") && !addr.starts_with("::ffff:") {
                        None
                    } else {
                        expected
                    };
                    let got = db.country(ip(addr));
                    assert_eq!(
                        got.as_ref().map(CountryCode::as_str),
                        expected,
                        "{addr} in IPv{ip_version} tree, {record_size}-bit records"
                    );
                }
            }
        }
    }

    #[test]
    fn tiny_databases_agree_with_full_decoding() {
        for ip_version in [4, 6] {
            for record_size in [24, 28, 32] {
                let bytes = geoip2_tiny(ip_version, record_size).build();
                let reference = Reader::from_source(bytes.as_slice()).unwrap();
                let db = GeoDb::from_bytes(bytes.clone(), "tiny.mmdb").unwrap();
                for addr in sample_addresses(200, 97) {
                    assert_eq!(db.country(addr), reference_country(&reference, addr), "{addr}");
                }
            }
        }
    }

    #[test]
    fn ipv4_table_answers_by_16_and_by_24() {
        let [br, de] = ["BR", "DE"].map(|code| CountryCode::from_alpha2(code).unwrap());
        let mut slots = V4Slots::new();
        let v4 = |text: &str| u32::from(text.parse::<Ipv4Addr>().unwrap());
        slots.fill(v4("8.0.0.0"), 8, 1);
        slots.fill(v4("9.0.0.0"), 16, 0);
        slots.fill(v4("9.1.0.0"), 20, 2);
        slots.fill(v4("9.1.16.0"), 24, 1);
        slots.fill(v4("9.1.17.0"), 28, 2);
        slots.fill(v4("9.2.0.0"), 17, 3);
        let table = slots.finish(&[Some(br), Some(de), None]);
        let cases = [
            ("8.0.0.0", Some(Some(br))),
            ("8.255.255.255", Some(Some(br))),
            ("9.0.1.1", Some(None)),
            ("9.1.0.1", Some(Some(de))),
            ("9.1.15.255", Some(Some(de))),
            ("9.1.16.7", Some(Some(br))),
            ("9.1.17.7", None),
            ("9.1.18.0", None),
            ("9.2.100.1", Some(None)),
            ("9.2.200.1", None),
            ("10.0.0.0", None),
        ];
        for (addr, expected) in cases {
            assert_eq!(table.get(addr.parse().unwrap()), expected, "{addr}");
        }

        // Past 32,767 shared /16s, the tree decides for the others.
        let mut slots = V4Slots::new();
        for block in 0..1u32 << 16 {
            slots.fill(block << 16, 17, 1);
        }
        let table = slots.finish(&[Some(br)]);
        assert_eq!(table.get(Ipv4Addr::new(127, 254, 0, 1)), Some(Some(br)));
        assert_eq!(table.get(Ipv4Addr::new(127, 255, 0, 1)), None);
        assert_eq!(table.get(Ipv4Addr::new(255, 255, 0, 1)), None);
    }

    #[test]
    fn large_record_values_use_every_bit() {
        // Data beyond 2^24 bytes: 28-bit records need their shared nibble.
        let mut data = vec![0u8; 1 << 24];
        let flat = data.len();
        data.extend(map(&[("country_code", s("JP"))]));
        let tiny = Tiny {
            ip_version: 6,
            record_size: 28,
            networks: vec![(v6_bits("2001:200::"), 23, flat)],
            data,
            database_type: "big",
        };
        let db = GeoDb::from_bytes(tiny.build(), "big.mmdb").unwrap();
        assert_eq!(country(&db, "2001:200::1").as_deref(), Some("jp"));
        assert_eq!(country(&db, "2001:400::1"), None);
    }

    fn load_error(bytes: Vec<u8>) -> String {
        match GeoDb::from_bytes(bytes, "data/x.mmdb") {
            Ok(_) => "loaded".to_owned(),
            Err(error) => error.to_string(),
        }
    }

    /// Overwrites one record of a built database's search tree.
    fn set_record(bytes: &mut [u8], record_size: u16, node: usize, side: usize, value: u32) {
        let width = usize::from(record_size) / 4;
        let n = &mut bytes[node * width..(node + 1) * width];
        match (record_size, side) {
            (24, 0) => n[0..3].copy_from_slice(&value.to_be_bytes()[1..]),
            (24, _) => n[3..6].copy_from_slice(&value.to_be_bytes()[1..]),
            (28, 0) => {
                n[0..3].copy_from_slice(&value.to_be_bytes()[1..]);
                n[3] = (n[3] & 0x0f) | ((value >> 20) as u8 & 0xf0);
            }
            (28, _) => {
                n[4..7].copy_from_slice(&value.to_be_bytes()[1..]);
                n[3] = (n[3] & 0xf0) | (value >> 24) as u8;
            }
            (_, 0) => n[0..4].copy_from_slice(&value.to_be_bytes()),
            (_, _) => n[4..8].copy_from_slice(&value.to_be_bytes()),
        }
    }

    /// A chain of `depth` nodes down the all-zero path to one `country_code` record.
    fn chain(ip_version: u16, record_size: u16, depth: u32) -> Tiny {
        Tiny {
            ip_version,
            record_size,
            networks: vec![(0, depth, 0)],
            data: map(&[("country_code", s("FR"))]),
            database_type: "chain",
        }
    }

    #[test]
    fn rejects_bad_files_with_the_path_in_the_message() {
        let good = geoip2_tiny(6, 24).build();
        let metadata_at = good
            .windows(METADATA_MARKER.len())
            .rposition(|w| w == METADATA_MARKER)
            .unwrap();

        let mut bad_pointer = geoip2_tiny(6, 24);
        bad_pointer
            .networks
            .push((v6_bits("3000::"), 8, bad_pointer.data.len() + 50));
        let mut pointer_loop = geoip2_tiny(4, 24);
        let looped = pointer_loop.data.len();
        pointer_loop.data.extend(map(&[("country_code", pointer(looped + 16))]));
        pointer_loop.data.extend(pointer(looped + 18));
        pointer_loop.data.extend(pointer(looped + 16));
        pointer_loop.networks.push((v4_bits("5.0.0.0") << 96, 8, looped));
        let mut deep = geoip2_tiny(4, 24);
        let nested = deep.data.len();
        let mut value = s("x");
        for _ in 0..600 {
            value = map(&[("k", value)]);
        }
        deep.data.extend(map(&[("country_code", s("FR")), ("deep", value)]));
        deep.networks.push((v4_bits("6.0.0.0") << 96, 8, nested));
        let asn = Tiny {
            ip_version: 6,
            record_size: 24,
            networks: vec![(v6_bits("2001:db8::"), 32, 0)],
            data: map(&[("autonomous_system_number", uint(UINT32, 64_496))]),
            database_type: "GeoLite2-ASN",
        };
        let mut bad_version = geoip2_tiny(4, 24);
        bad_version.record_size = 20;

        let mut nonzero_separator = good.clone();
        let tree_len = metadata_at - 16 - geoip2_tiny(6, 24).data.len();
        nonzero_separator[tree_len] = 1;

        // Node 5 of the chain (bit 5 of the path) leads back to node 2 on its empty side.
        let mut cyclic = chain(4, 24, 8).build();
        set_record(&mut cyclic, 24, 5, 1, 2);

        let not_mmdb = "data/x.mmdb: not a MaxMind DB file (invalid database";
        let corrupt = "data/x.mmdb: corrupt MaxMind DB file (invalid database";
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (vec![], not_mmdb, ": could not find MaxMind DB metadata in file)"),
            (
                b"hello world".to_vec(),
                not_mmdb,
                ": could not find MaxMind DB metadata in file)",
            ),
            (
                good[..metadata_at].to_vec(),
                not_mmdb,
                ": could not find MaxMind DB metadata",
            ),
            (
                good[..metadata_at + METADATA_MARKER.len() + 5].to_vec(),
                not_mmdb,
                " at offset ",
            ),
            (
                good[metadata_at..].to_vec(),
                not_mmdb,
                "search tree extends beyond the metadata section",
            ),
            (
                bad_pointer.build(),
                corrupt,
                "data pointer resolves to an invalid location",
            ),
            (pointer_loop.build(), corrupt, "cyclic data pointer references offset"),
            (deep.build(), corrupt, "exceeded maximum data structure depth"),
            (
                asn.build(),
                "data/x.mmdb: no country in any record of this 'GeoLite2-ASN' database",
                "",
            ),
            (
                bad_version.build(),
                not_mmdb,
                "record_size - Expected: 24, 28, or 32 Actual: 20",
            ),
            (nonzero_separator, corrupt, "unexpected byte in data separator"),
            (cyclic, corrupt, "search tree appears to have a cycle"),
        ];
        for (i, (bytes, start, detail)) in cases.into_iter().enumerate() {
            let message = load_error(bytes);
            assert!(
                message.starts_with(start) && message.contains(detail),
                "case {i}: {message:?} lacks {start:?} or {detail:?}"
            );
        }
    }

    /// Search trees whose nodes lead back up or share children: an error, and soon. A chain of
    /// nodes whose two sides both lead to the next one spans 2^depth networks.
    #[test]
    fn cyclic_and_folded_trees_are_errors_not_hangs() {
        for ip_version in [4, 6] {
            for record_size in [24, 28, 32] {
                let depth = if ip_version == 4 { 30 } else { 120 };
                for variant in 0..4 {
                    let mut bytes = chain(ip_version, record_size, depth).build();
                    let mut set =
                        |node: u32, side, value| set_record(&mut bytes, record_size, node as usize, side, value);
                    match variant {
                        // Back to the root from the end of the chain.
                        0 => set(depth - 1, 1, 0),
                        // A node that is its own child.
                        1 => set(7, 1, 7),
                        // Both sides of every node lead to the next node; then also both sides of
                        // the last one to the record (in an IPv6 tree, the record that the path
                        // of the IPv4 subtree ends at).
                        _ => {
                            for node in 0..depth - 1 {
                                set(node, 1, node + 1);
                            }
                            if variant == 3 {
                                set(depth - 1, 1, depth + 16);
                            }
                        }
                    }
                    let start = Instant::now();
                    let message = load_error(bytes);
                    assert!(
                        message.starts_with("data/x.mmdb: corrupt MaxMind DB file (invalid database: ")
                            && (message.contains("search tree appears to have a cycle")
                                || message.contains("nodes share children")),
                        "IPv{ip_version}, {record_size} bits, variant {variant}: {message}"
                    );
                    assert!(
                        start.elapsed() < Duration::from_secs(5),
                        "variant {variant}: {:?}",
                        start.elapsed()
                    );
                }
            }
        }
    }

    /// `verify()` rejects an empty description before checking anything else: such a file (the
    /// embedded one is one) is still checked whole. The bad string is in a field no lookup reads.
    #[test]
    fn files_without_description_are_verified_too() {
        assert!(embedded().reader.metadata().description.is_empty());
        let mut tiny = geoip2_tiny(6, 28);
        let odd = tiny.data.len();
        let mut bad_text = ctrl(STRING, 2);
        bad_text.extend([0xff, 0xfe]);
        tiny.data.extend(map(&[("country_code", s("NO")), ("note", bad_text)]));
        tiny.networks.push((v6_bits("2a02::"), 16, odd));
        for description in [&[("en", s("test"))][..], &[]] {
            let good = geoip2_tiny(6, 28).build_described(description);
            let db = GeoDb::from_bytes(good, "tiny.mmdb").unwrap();
            assert_eq!(country(&db, "2a01::1").as_deref(), Some("de"));
            let message = load_error(tiny.build_described(description));
            assert!(
                message.starts_with("data/x.mmdb: corrupt MaxMind DB file (") && message.contains("UTF-8"),
                "{message}"
            );
        }
    }

    #[test]
    fn open_names_the_path() {
        let error = GeoDb::open(Path::new("/nonexistent/geo.mmdb")).unwrap_err();
        assert!(
            error.to_string().starts_with("/nonexistent/geo.mmdb: cannot read: "),
            "{error}"
        );
        let dir = std::env::temp_dir().join(format!("geo-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tiny.mmdb");
        std::fs::write(&path, geoip2_tiny(4, 32).build()).unwrap();
        let db = GeoDb::open(&path).unwrap();
        assert_eq!(db.origin(), path.display().to_string());
        assert_eq!(country(&db, "200.9.9.9").as_deref(), Some("br"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Every single-byte corruption of a small database either loads or is
    /// rejected; none panics, and lookups on whatever loads stay in bounds.
    #[test]
    fn corrupted_bytes_never_panic() {
        let probes = [
            "81.2.3.4",
            "1.1.1.1",
            "200.1.2.3",
            "2a01::1",
            "2804::1",
            "::1",
            "8.8.8.8",
        ]
        .map(ip);
        for ip_version in [4, 6] {
            for record_size in [24, 28, 32] {
                let good = geoip2_tiny(ip_version, record_size).build();
                for at in 0..good.len() {
                    for value in [0x00, 0x01, 0x1f, 0x20, 0x7f, 0x80, 0xe0, 0xff] {
                        let mut bytes = good.clone();
                        bytes[at] = value;
                        if let Ok(db) = GeoDb::from_bytes(bytes, "fuzz") {
                            for probe in probes {
                                let _ = db.country(probe);
                            }
                        }
                    }
                }
                for len in 0..good.len() {
                    let _ = GeoDb::from_bytes(good[..len].to_vec(), "cut");
                }
            }
        }
    }
}
