//! Country of a click's client address, from a MaxMind DB (`.mmdb`) file.
//!
//! The binary embeds `data/geo-whois-asn-country.mmdb` (ip-location-db's
//! country database built from the regional internet registries' data, CC BY
//! 4.0); operators may load another file, including MaxMind's GeoIP2/GeoLite2
//! Country or City databases.
//!
//! The enricher calls [`GeoDb::country`] once per click, off the request's
//! response path. A lookup walks the search tree in memory and reads a
//! precomputed table: no I/O, no decoding, no allocation, no panic.
//!
//! All the work happens in [`GeoDb::from_bytes`], once: it reads the metadata,
//! checks every record of the search tree and decodes every data record the
//! tree points to, so a truncated or corrupt file is an error at load time,
//! never a crash or a wrong answer later. The reader is written against the
//! MaxMind DB format specification, version 2.0
//! (<https://maxmind.github.io/MaxMind-DB/>), and bounds every read and every
//! level of nesting itself.
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
use std::cell::Cell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

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
    #[error("{origin}: not a MaxMind DB file ({reason})")]
    NotMaxMindDb {
        /// Path or description of the bytes.
        origin: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// The metadata is readable but the search tree or data section is not.
    #[error("{origin}: corrupt MaxMind DB file ({reason})")]
    Corrupt {
        /// Path or description of the bytes.
        origin: String,
        /// What is inconsistent.
        reason: String,
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

/// Country lookups from a MaxMind DB file.
pub struct GeoDb {
    origin: String,
    /// The file (only its search tree, when it was read at run time).
    bytes: Cow<'static, [u8]>,
    node_count: usize,
    record_size: usize,
    ip_version: u16,
    /// Node where IPv4 lookups start (the node reached by 96 zero bits in an
    /// IPv6 tree, RFC 4291 §2.5.5.1 style `::a.b.c.d` placement).
    ipv4_start: usize,
    /// For each IPv4 prefix of [`V4_PREFIX_BITS`], the node (or the final record) reached after
    /// its bits: an IPv4 lookup starts that far down the tree. Every click looks up an address.
    v4_prefix: Box<[u32]>,
    /// Country of each data record the tree points to, by data-section offset. The offsets come
    /// from the database, not from requests, so the map uses foldhash rather than SipHash.
    countries: HashMap<u32, CountryCode, foldhash::fast::RandomState>,
    database_type: String,
    build_epoch: u64,
}

impl fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoDb")
            .field("origin", &self.origin)
            .field("database_type", &self.database_type)
            .field("build_epoch", &self.build_epoch)
            .field("ip_version", &self.ip_version)
            .field("node_count", &self.node_count)
            .field("record_size", &self.record_size)
            .field("distinct_records", &self.countries.len())
            .finish_non_exhaustive()
    }
}

static EMBEDDED: &[u8] = include_bytes!("../../data/geo-whois-asn-country.mmdb");

/// How a database marks the start of its metadata section.
const METADATA_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";

/// The metadata section sits in the last 128 KiB of a file (format spec).
const METADATA_MAX_LEN: usize = 128 * 1024;

/// Zero bytes between the search tree and the data section.
const DATA_SEPARATOR_LEN: usize = 16;

/// Deepest nesting of maps and arrays accepted in a record.
const MAX_DEPTH: u32 = 32;

/// How many leading bits of an IPv4 address [`GeoDb`]'s prefix table resolves (a 256 KiB table).
const V4_PREFIX_BITS: u32 = 16;

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
        let node = match ip {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let prefix = self.v4_prefix.get((bits >> (32 - V4_PREFIX_BITS)) as usize).copied()?;
                self.walk(prefix as usize, u128::from(bits), 32 - V4_PREFIX_BITS)?
            }
            IpAddr::V6(_) if self.ip_version == 4 => return None,
            IpAddr::V6(v6) => self.walk(0, u128::from(v6), 128)?,
        };
        let offset = node.checked_sub(self.node_count + DATA_SEPARATOR_LEN)?;
        self.countries.get(&u32::try_from(offset).ok()?).copied()
    }

    /// The database's own `database_type` (`GeoLite2-Country`, …).
    pub fn database_type(&self) -> &str {
        &self.database_type
    }

    /// When the database was built, in seconds since the Unix epoch.
    pub fn build_epoch(&self) -> u64 {
        self.build_epoch
    }

    /// The path or description the database was loaded from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn load(bytes: Cow<'static, [u8]>, origin: &str) -> Result<GeoDb, GeoError> {
        let not_mmdb = |reason: String| GeoError::NotMaxMindDb {
            origin: origin.to_owned(),
            reason,
        };
        let corrupt = |reason: String| GeoError::Corrupt {
            origin: origin.to_owned(),
            reason,
        };

        let search_from = bytes.len().saturating_sub(METADATA_MAX_LEN);
        let marker = bytes[search_from..]
            .windows(METADATA_MARKER.len())
            .rposition(|window| window == METADATA_MARKER)
            .map(|at| search_from + at)
            .ok_or_else(|| not_mmdb("no metadata marker".to_owned()))?;
        let meta = Metadata::decode(&bytes[marker + METADATA_MARKER.len()..]).map_err(not_mmdb)?;

        let tree_len = meta
            .node_count
            .checked_mul(meta.record_size * 2 / 8)
            .filter(|len| len + DATA_SEPARATOR_LEN <= marker)
            .ok_or_else(|| {
                corrupt(format!(
                    "search tree of {} nodes does not fit in the file",
                    meta.node_count
                ))
            })?;
        let separator = &bytes[tree_len..tree_len + DATA_SEPARATOR_LEN];
        if separator.iter().any(|&b| b != 0) {
            return Err(corrupt("no zeroed separator after the search tree".to_owned()));
        }

        let mut db = GeoDb {
            origin: origin.to_owned(),
            bytes,
            node_count: meta.node_count,
            record_size: meta.record_size,
            ip_version: meta.ip_version,
            ipv4_start: 0,
            v4_prefix: Box::default(),
            countries: HashMap::default(),
            database_type: meta.database_type,
            build_epoch: meta.build_epoch,
        };
        let data = Section::new(&db.bytes[tree_len + DATA_SEPARATOR_LEN..marker]);

        // Check every record once, and decode each data record it points to.
        let mut decoded: HashMap<usize, Option<CountryCode>> = HashMap::new();
        let mut last_offset = None;
        for node in 0..db.node_count {
            for side in 0..2 {
                let value = db
                    .record(node, side)
                    .ok_or_else(|| corrupt(format!("node {node} is unreadable")))?;
                if value <= db.node_count {
                    continue;
                }
                let offset = value
                    .checked_sub(db.node_count + DATA_SEPARATOR_LEN)
                    .filter(|offset| *offset < data.bytes.len())
                    .ok_or_else(|| corrupt(format!("node {node} points outside the data section")))?;
                if last_offset == Some(offset) {
                    continue;
                }
                last_offset = Some(offset);
                if let Entry::Vacant(slot) = decoded.entry(offset) {
                    let country = record_country(&data, offset)
                        .map_err(|reason| corrupt(format!("data record at offset {offset}: {reason}")))?;
                    slot.insert(country);
                }
            }
        }
        db.countries = decoded
            .into_iter()
            .filter_map(|(offset, country)| Some((u32::try_from(offset).ok()?, country?)))
            .collect();
        if db.countries.is_empty() {
            return Err(GeoError::NoCountries {
                origin: origin.to_owned(),
                database_type: db.database_type,
            });
        }

        if db.ip_version == 6 {
            let mut node = 0;
            for _ in 0..96 {
                if node >= db.node_count {
                    break;
                }
                node = db.record(node, 0).unwrap_or(db.node_count);
            }
            db.ipv4_start = node;
        }
        let mut v4_prefix = vec![0u32; 1 << V4_PREFIX_BITS];
        db.fill_prefixes(&mut v4_prefix, db.ipv4_start, 0);
        db.v4_prefix = v4_prefix.into_boxed_slice();
        // Lookups read only the search tree: drop the rest of a loaded file.
        if let Cow::Owned(bytes) = &mut db.bytes {
            bytes.truncate(tree_len);
            bytes.shrink_to_fit();
        }
        Ok(db)
    }

    /// Follows the tree from `node` along the low `bits` bits of `address`, highest first, until
    /// a record that is not a node.
    fn walk(&self, mut node: usize, address: u128, bits: u32) -> Option<usize> {
        for i in (0..bits).rev() {
            if node >= self.node_count {
                break;
            }
            node = self.record(node, ((address >> i) & 1) as usize)?;
        }
        Some(node)
    }

    /// Fills `table`, the prefixes that pass through `node` (reached after `depth` bits), with
    /// the node or record each prefix reaches after [`V4_PREFIX_BITS`] bits: one visit per tree
    /// node above that depth, and a whole range at once where the tree ends sooner.
    fn fill_prefixes(&self, table: &mut [u32], node: usize, depth: u32) {
        if node >= self.node_count || depth == V4_PREFIX_BITS {
            // Records were checked at load to fit their size (at most 32 bits).
            table.fill(u32::try_from(node).unwrap_or(u32::MAX));
            return;
        }
        let (left, right) = table.split_at_mut(table.len() / 2);
        match (self.record(node, 0), self.record(node, 1)) {
            (Some(l), Some(r)) => {
                self.fill_prefixes(left, l, depth + 1);
                self.fill_prefixes(right, r, depth + 1);
            }
            // Not reached: load checked every node. No data, as a walk would find.
            _ => table.fill(u32::try_from(self.node_count).unwrap_or(u32::MAX)),
        }
    }

    /// One record of a search-tree node (`side` 0 = left, 1 = right).
    fn record(&self, node: usize, side: usize) -> Option<usize> {
        let width = self.record_size * 2 / 8;
        let start = node.checked_mul(width)?;
        let n = self.bytes.get(start..start.checked_add(width)?)?;
        let be = |b: &[u8]| b.iter().fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
        Some(match (self.record_size, side) {
            (24, 0) => be(&n[0..3]),
            (24, _) => be(&n[3..6]),
            // 28-bit records share the middle byte: high nibble left, low right.
            (28, 0) => (usize::from(n[3] >> 4) << 24) | be(&n[0..3]),
            (28, _) => (usize::from(n[3] & 0x0f) << 24) | be(&n[4..7]),
            (_, 0) => be(&n[0..4]),
            (_, _) => be(&n[4..8]),
        })
    }
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

/// The metadata fields this module needs.
struct Metadata {
    node_count: usize,
    record_size: usize,
    ip_version: u16,
    database_type: String,
    build_epoch: u64,
}

impl Metadata {
    fn decode(bytes: &[u8]) -> Result<Metadata, String> {
        let section = Section::new(bytes);
        let mut node_count = None;
        let mut record_size = None;
        let mut ip_version = None;
        let mut major = None;
        let mut database_type = String::new();
        let mut build_epoch = 0;
        section
            .for_each_entry(0, |key, value| {
                match key {
                    "node_count" => node_count = section.uint_at(value)?,
                    "record_size" => record_size = section.uint_at(value)?,
                    "ip_version" => ip_version = section.uint_at(value)?,
                    "binary_format_major_version" => major = section.uint_at(value)?,
                    "database_type" => database_type = section.str_at(value)?.unwrap_or_default().to_owned(),
                    "build_epoch" => build_epoch = section.uint_at(value)?.unwrap_or(0),
                    _ => {}
                }
                Ok(())
            })
            .map_err(|reason| format!("unreadable metadata: {reason}"))?;

        let shown = |value: Option<u64>| value.map_or_else(|| "missing".to_owned(), |v| v.to_string());
        if major != Some(2) {
            return Err(format!("binary format major version {} is not 2", shown(major)));
        }
        let record_size = match record_size {
            Some(size @ (24 | 28 | 32)) => size as usize,
            other => return Err(format!("record size {} is not 24, 28 or 32", shown(other))),
        };
        let ip_version = match ip_version {
            Some(4) => 4,
            Some(6) => 6,
            other => return Err(format!("IP version {} is not 4 or 6", shown(other))),
        };
        // Record values up to the node count point at nodes, so it must fit a record.
        let node_count = node_count
            .filter(|&n| n > 0 && n < (1u64 << record_size))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("node count {} is not between 1 and 2^{record_size}", shown(node_count)))?;
        Ok(Metadata {
            node_count,
            record_size,
            ip_version,
            database_type,
            build_epoch,
        })
    }
}

/// Country of the data record at `offset`, in either layout.
fn record_country(data: &Section<'_>, offset: usize) -> Result<Option<CountryCode>, String> {
    if data.value_at(offset)?.0 != MAP {
        return Ok(None);
    }
    let mut flat = None;
    let mut located = None;
    let mut registered = None;
    data.for_each_entry(offset, |key, value| {
        match key {
            "country_code" => flat = data.str_at(value)?.and_then(CountryCode::from_alpha2),
            "country" => located = iso_code(data, value)?,
            "registered_country" => registered = iso_code(data, value)?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(flat.or(located).or(registered))
}

/// `iso_code` of a GeoIP2 country map.
fn iso_code(data: &Section<'_>, at: usize) -> Result<Option<CountryCode>, String> {
    let mut code = None;
    if data.value_at(at)?.0 == MAP {
        data.for_each_entry(at, |key, value| {
            if key == "iso_code" {
                code = data.str_at(value)?.and_then(CountryCode::from_alpha2);
            }
            Ok(())
        })?;
    }
    Ok(code)
}

// Data field types (format spec, "Output Data Section").
const POINTER: u8 = 1;
const STRING: u8 = 2;
const DOUBLE: u8 = 3;
const BYTES: u8 = 4;
const UINT16: u8 = 5;
const UINT32: u8 = 6;
const MAP: u8 = 7;
const INT32: u8 = 8;
const UINT64: u8 = 9;
const UINT128: u8 = 10;
const ARRAY: u8 = 11;
const BOOLEAN: u8 = 14;
const FLOAT: u8 = 15;

/// A decoded control byte: a pointer, or a value's type, size and payload start.
enum Field {
    Pointer { target: usize, end: usize },
    Value { kind: u8, size: usize, body: usize },
}

/// A metadata or data section, decoded with bounds checks everywhere and a
/// budget of fields, so that even a file crafted to make records share and
/// re-read each other loads in time linear in its size.
struct Section<'a> {
    bytes: &'a [u8],
    fuel: Cell<usize>,
}

impl<'a> Section<'a> {
    fn new(bytes: &'a [u8]) -> Section<'a> {
        let fuel = bytes.len().saturating_mul(64).saturating_add(1 << 20);
        Section {
            bytes,
            fuel: Cell::new(fuel),
        }
    }

    fn byte(&self, at: usize) -> Result<u8, String> {
        self.bytes
            .get(at)
            .copied()
            .ok_or_else(|| format!("truncated at offset {at}"))
    }

    fn slice(&self, at: usize, len: usize) -> Result<&'a [u8], String> {
        at.checked_add(len)
            .and_then(|end| self.bytes.get(at..end))
            .ok_or_else(|| format!("{len} bytes at offset {at} run past the end"))
    }

    /// Reads the control byte(s) at `at`.
    fn field(&self, at: usize) -> Result<Field, String> {
        let fuel = self
            .fuel
            .get()
            .checked_sub(1)
            .ok_or("records reference each other too often")?;
        self.fuel.set(fuel);
        let control = self.byte(at)?;
        let mut kind = control >> 5;
        let mut next = at + 1;
        if kind == POINTER {
            let len = usize::from((control >> 3) & 0x3) + 1;
            let tail = usize::from(control & 0x7);
            let bytes = big_endian(self.slice(next, len)?);
            let target = match len {
                1 => (tail << 8) | bytes,
                2 => 2048 + ((tail << 16) | bytes),
                3 => 526_336 + ((tail << 24) | bytes),
                _ => bytes,
            };
            return Ok(Field::Pointer {
                target,
                end: next + len,
            });
        }
        if kind == 0 {
            kind = self.byte(next)?.saturating_add(7);
            next += 1;
            if !(8..=15).contains(&kind) {
                return Err(format!("bad extended type at offset {at}"));
            }
        }
        let mut size = usize::from(control & 0x1f);
        if size >= 29 {
            let len = size - 28;
            let extra = big_endian(self.slice(next, len)?);
            size = [29, 285, 65_821][len - 1] + extra;
            next += len;
        }
        Ok(Field::Value { kind, size, body: next })
    }

    /// Type, size and payload start of the value at `at`, following one
    /// pointer (a pointer to a pointer is invalid per the spec, which also
    /// rules out cycles).
    fn value_at(&self, at: usize) -> Result<(u8, usize, usize), String> {
        match self.field(at)? {
            Field::Value { kind, size, body } => Ok((kind, size, body)),
            Field::Pointer { target, .. } => match self.field(target)? {
                Field::Value { kind, size, body } => Ok((kind, size, body)),
                Field::Pointer { .. } => Err(format!("pointer to a pointer at offset {at}")),
            },
        }
    }

    /// Offset just past the field at `at`, without following pointers.
    fn skip(&self, at: usize, depth: u32) -> Result<usize, String> {
        let (kind, size, body) = match self.field(at)? {
            Field::Pointer { end, .. } => return Ok(end),
            Field::Value { kind, size, body } => (kind, size, body),
        };
        let fixed = |max: usize| {
            if size > max {
                return Err(format!("type {kind} of size {size} at offset {at}"));
            }
            self.slice(body, size).map(|_| body + size)
        };
        match kind {
            STRING | BYTES => fixed(usize::MAX),
            DOUBLE => fixed(8),
            FLOAT => fixed(4),
            UINT16 => fixed(2),
            UINT32 | INT32 => fixed(4),
            UINT64 => fixed(8),
            UINT128 => fixed(16),
            BOOLEAN => Ok(body),
            MAP | ARRAY => {
                if depth >= MAX_DEPTH {
                    return Err(format!("nesting deeper than {MAX_DEPTH} at offset {at}"));
                }
                let items = if kind == MAP { 2 } else { 1 };
                let mut next = body;
                for _ in 0..size {
                    for _ in 0..items {
                        next = self.skip(next, depth + 1)?;
                    }
                }
                Ok(next)
            }
            other => Err(format!("unexpected type {other} at offset {at}")),
        }
    }

    /// Calls `visit(key, value_offset)` for each entry of the map at `at`.
    fn for_each_entry(
        &self,
        at: usize,
        mut visit: impl FnMut(&'a str, usize) -> Result<(), String>,
    ) -> Result<(), String> {
        let (kind, size, body) = self.value_at(at)?;
        if kind != MAP {
            return Err(format!("expected a map at offset {at}"));
        }
        let mut next = body;
        for _ in 0..size {
            let key = self
                .str_at(next)?
                .ok_or_else(|| format!("map key at offset {next} is not a string"))?;
            let value = self.skip(next, 0)?;
            visit(key, value)?;
            next = self.skip(value, 0)?;
        }
        Ok(())
    }

    /// The string at `at`; `None` when the value is of another type.
    fn str_at(&self, at: usize) -> Result<Option<&'a str>, String> {
        let (kind, size, body) = self.value_at(at)?;
        if kind != STRING {
            return Ok(None);
        }
        std::str::from_utf8(self.slice(body, size)?)
            .map(Some)
            .map_err(|_| format!("string at offset {at} is not UTF-8"))
    }

    /// The unsigned integer at `at`; `None` when the value is of another type.
    fn uint_at(&self, at: usize) -> Result<Option<u64>, String> {
        let (kind, size, body) = self.value_at(at)?;
        let max = match kind {
            UINT16 => 2,
            UINT32 => 4,
            UINT64 => 8,
            _ => return Ok(None),
        };
        if size > max {
            return Err(format!("type {kind} of size {size} at offset {at}"));
        }
        let bytes = self.slice(body, size)?;
        Ok(Some(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))))
    }
}

fn big_endian(bytes: &[u8]) -> usize {
    bytes.iter().fold(0, |acc, &b| (acc << 8) | usize::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

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
        assert!(format!("{db:?}").len() < 500);
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

    /// The lookups agree with the maxminddb crate's reader on a spread of
    /// addresses across both address families.
    #[test]
    fn embedded_database_matches_reference_reader() {
        #[derive(serde::Deserialize)]
        struct Record<'a> {
            country_code: Option<&'a str>,
        }
        let reference = maxminddb::Reader::from_source(EMBEDDED).unwrap();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut found = 0;
        for i in 0..4000 {
            let addr = if i % 2 == 0 {
                IpAddr::V4(Ipv4Addr::from(next() as u32))
            } else {
                // 2000::/4 holds the allocated global unicast space.
                let high = (0x2000u128 << 112) | ((u128::from(next()) << 64) >> 4);
                IpAddr::V6(Ipv6Addr::from(high | u128::from(next())))
            };
            let expected = reference
                .lookup::<Record>(addr)
                .unwrap()
                .and_then(|record| record.country_code)
                .and_then(CountryCode::from_alpha2)
                .filter(|_| !is_special_purpose(addr));
            let got = embedded().country(addr);
            assert_eq!(got, expected, "{addr}");
            found += usize::from(got.is_some());
        }
        assert!(found > 1000, "only {found} addresses had a country");
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

    fn ctrl(kind: u8, size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let (bits, extra): (u8, Vec<u8>) = match size {
            0..=28 => (size as u8, vec![]),
            29..=284 => (29, vec![(size - 29) as u8]),
            285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
            _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
        };
        if kind <= 7 {
            out.push(kind << 5 | bits);
        } else {
            out.push(bits);
            out.push(kind - 7);
        }
        out.extend(extra);
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
                ("description", map(&[("en", s("test"))])),
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
        pointer_loop.data.extend(pointer(looped + 2));
        pointer_loop.data.extend(pointer(looped));
        pointer_loop.networks.push((v4_bits("5.0.0.0") << 96, 8, looped));
        let mut deep = geoip2_tiny(4, 24);
        let nested = deep.data.len();
        let mut value = s("x");
        for _ in 0..40 {
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

        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "data/x.mmdb: not a MaxMind DB file (no metadata marker)"),
            (
                b"hello world".to_vec(),
                "data/x.mmdb: not a MaxMind DB file (no metadata marker)",
            ),
            (
                good[..metadata_at].to_vec(),
                "data/x.mmdb: not a MaxMind DB file (no metadata marker)",
            ),
            (
                good[..metadata_at + METADATA_MARKER.len() + 5].to_vec(),
                "data/x.mmdb: not a MaxMind DB file (unreadable metadata: ",
            ),
            (
                good[metadata_at..].to_vec(),
                "data/x.mmdb: corrupt MaxMind DB file (search tree of ",
            ),
            (bad_pointer.build(), "data/x.mmdb: corrupt MaxMind DB file (node "),
            (pointer_loop.build(), "pointer to a pointer at offset"),
            (deep.build(), "nesting deeper than 32"),
            (
                asn.build(),
                "data/x.mmdb: no country in any record of this 'GeoLite2-ASN' database",
            ),
            (
                bad_version.build(),
                "data/x.mmdb: not a MaxMind DB file (record size 20 is not 24, 28 or 32)",
            ),
            (nonzero_separator, "no zeroed separator after the search tree"),
        ];
        for (i, (bytes, expected)) in cases.into_iter().enumerate() {
            let message = load_error(bytes);
            assert!(message.contains(expected), "case {i}: {message:?} lacks {expected:?}");
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
