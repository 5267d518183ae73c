//! The link table: parsing the operator's CSV or JSON Lines file into the lookup structure the
//! hit path reads.
//!
//! Everything a hit needs is built here, once per load: the `Location` value, the status and its
//! `Cache-Control`, and the route data that click events carry. The hit path only looks up
//! (`O(1)`: one hash lookup for the domain, one for the slashtag), borrows, and takes one
//! reference to the link for its click.
//!
//! Loading validates every line and reports each problem as `path:line: what is wrong`; a table
//! with any error is refused whole. Destinations are normalised to the `url` crate's
//! serialization, and refused where URL readers could disagree on their host
//! ([`config::check_destination`]). The table is immutable once built: reloads build a new one
//! aside and swap it in (see `reload`).
//!
//! Memory: strings that repeat across links (domains, workspaces, creators) are interned, and a
//! link's slashtag (the key), destination (sent as `Location` as it is) and id share one
//! allocation. The README states the measured cost per link.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

/// Maps of the table use foldhash: several times faster than SipHash on short keys, still seeded
/// per process, which keeps a slashtag flood from degrading lookups.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
use http::{HeaderValue, StatusCode};

use crate::config::{self, DomainConfig, ServerConfig};

mod link;
mod load;
mod parse;

use link::BySlashtag;
pub use link::{Link, LinkFields, Owner, Workspace, is_field_value};
use load::*;
use parse::*;

/// Most errors listed for one file; past it, a count of the rest.
const MAX_REPORTED_ERRORS: usize = 1_000;
/// The default `/robots.txt`: short links are not pages to index.
const DEFAULT_ROBOTS_TXT: &str = "User-agent: *\nDisallow: /\n";

/// Why a link table could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LinkTableError {
    /// The file could not be read.
    #[error("{path}: cannot read link table: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Lines with errors, each `path:line: what is wrong`.
    #[error("{} error(s) in the link table:\n  {}", .total, .errors.join("\n  "))]
    Invalid {
        /// The first [`MAX_REPORTED_ERRORS`] problems.
        errors: Vec<String>,
        /// How many problems there were.
        total: usize,
    },
}

/// How one domain answers, resolved from `[[domain]]` and `[server]` at load.
#[derive(Debug)]
pub struct Domain {
    /// Lower-case host name.
    pub name: Arc<str>,
    /// Merge the request's query into destinations.
    pub forward_query: bool,
    /// On the plain listener, redirect everything to https (308).
    pub https_only: bool,
    /// Redirect for slashtags that are not in the table.
    pub not_found: Option<HeaderValue>,
    /// Redirect for `/`.
    pub root: Option<HeaderValue>,
    /// Body of `/robots.txt`.
    pub robots_txt: Bytes,
    /// Redirect counters of this domain (see [`LinkTable::bind_metrics`]).
    pub counters: Arc<crate::metrics::DomainCounters>,
    cache_control: Option<HeaderValue>,
    cache_control_permanent: HeaderValue,
    cache_control_temporary: HeaderValue,
    links: HashSet<BySlashtag>,
    /// Lower-cased slashtag → link, for the case-insensitive fallback; `None` when it is off.
    /// See [`fold`].
    folded: Option<HashMap<Box<str>, Option<Link>>>,
}

impl Domain {
    /// The link for a (percent-decoded) slashtag: exact match, then the case-insensitive fallback.
    pub fn lookup(&self, slashtag: &str) -> Option<&Link> {
        if let Some(entry) = self.links.get(slashtag) {
            return Some(&entry.0);
        }
        let folded = self.folded.as_ref()?;
        let lower: Cow<'_, str> = if slashtag.bytes().any(|b| b.is_ascii_uppercase()) || !slashtag.is_ascii() {
            Cow::Owned(slashtag.to_lowercase())
        } else {
            Cow::Borrowed(slashtag)
        };
        match folded.get(&*lower) {
            Some(slot) => slot.as_ref(),
            None if *lower != *slashtag => self.links.get(&*lower).map(|e| &e.0),
            None => None,
        }
    }

    /// The `Cache-Control` value for a redirect with this status.
    pub fn cache_control(&self, status: StatusCode) -> &HeaderValue {
        if let Some(cc) = &self.cache_control {
            return cc;
        }
        match status {
            StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT => &self.cache_control_permanent,
            _ => &self.cache_control_temporary,
        }
    }

    /// Number of links on this domain.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// True when the domain has no links (only `[[domain]]` settings).
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Iterates the links of this domain (no particular order).
    pub fn links(&self) -> impl Iterator<Item = &Link> {
        self.links.iter().map(|e| &e.0)
    }
}

/// Every domain and link, immutable once built.
#[derive(Debug)]
pub struct LinkTable {
    domains: HashMap<Arc<str>, Domain>,
    default_domain: Option<Arc<str>>,
    links: usize,
}

impl LinkTable {
    /// The domain answering for a lower-case host without port: its own, else the default domain.
    pub fn domain_for_host(&self, host: &str) -> Option<&Domain> {
        self.domains.get(host).or_else(|| {
            let default = self.default_domain.as_deref()?;
            self.domains.get(default)
        })
    }

    /// A domain by exact name.
    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains.get(name)
    }

    /// Number of links.
    pub fn len(&self) -> usize {
        self.links
    }

    /// Points every domain at the process's counters for it, so counts survive reloads.
    pub fn bind_metrics(&mut self, metrics: &crate::metrics::Metrics) {
        for (name, domain) in &mut self.domains {
            domain.counters = metrics.domain(name);
        }
    }

    /// An empty table (before the first load).
    pub fn empty() -> LinkTable {
        LinkTable {
            domains: HashMap::default(),
            default_domain: None,
            links: 0,
        }
    }

    /// True when there are no links.
    pub fn is_empty(&self) -> bool {
        self.links == 0
    }

    /// Number of domains with links or settings.
    pub fn domain_count(&self) -> usize {
        self.domains.len()
    }

    /// Reads and builds the table from a file (`.jsonl`/`.ndjson`: JSON Lines, else CSV).
    ///
    /// A large file is read by several threads, each validating a stretch of whole lines and
    /// making its links; the links then go into the table in file order, so duplicates are
    /// reported against their first line exactly as a single pass would.
    pub fn load(
        path: &Path,
        server: &ServerConfig,
        domains: &BTreeMap<String, DomainConfig>,
    ) -> Result<LinkTable, LinkTableError> {
        LinkTable::load_in(path, server, domains, None)
    }

    /// [`load`](Self::load) in `stretches` parts (`None`: by the file's size and the CPUs).
    fn load_in(
        path: &Path,
        server: &ServerConfig,
        domains: &BTreeMap<String, DomainConfig>,
        stretches: Option<usize>,
    ) -> Result<LinkTable, LinkTableError> {
        let origin = path.display().to_string();
        let read_error = |source| LinkTableError::Read {
            path: origin.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let metadata = file.metadata().map_err(read_error)?;
        let json = is_json_lines(path);
        if !metadata.is_file() {
            // A named pipe or a device: no size to split by and no positions to read at.
            let mut reader = std::io::BufReader::with_capacity(1 << 20, &file);
            return read_sequential(&mut reader, json, &origin, server, domains);
        }
        let size = metadata.len();
        let mut errors = Vec::new();
        // CSV: the header first, since every stretch needs its column index.
        let (index, first_line, body_start) = if json {
            (None, 1, 0)
        } else {
            let mut reader = std::io::BufReader::with_capacity(64 * 1024, Stretch::new(&file, 0, size));
            match read_header(&mut reader, &mut errors).map_err(read_error)? {
                Header::Index {
                    index,
                    next_line,
                    bytes,
                } => (Some(index), next_line, bytes),
                Header::Broken => return Err(invalid(&origin, errors)),
                Header::Missing => return Builder::new(server, domains).build(Vec::new(), errors, &origin),
            }
        };
        let threads = stretches.unwrap_or(if size >= PARALLEL_MIN_BYTES {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_LOAD_THREADS))
        } else {
            1
        });
        let bounds = stretch_bounds(&file, body_start, size, threads).map_err(read_error)?;
        let read = |i: usize, range: (u64, u64)| {
            let mut parser = LineParser::new(domains);
            let mut reader = std::io::BufReader::with_capacity(1 << 20, Stretch::new(&file, range.0, range.1));
            // The first stretch knows its line numbers; the others count from 1 and are moved
            // once the lines before them are counted.
            let start = if i == 0 { first_line } else { 1 };
            let next = read_lines(&mut reader, json, start, range.0 == 0, index.as_deref(), &mut parser)?;
            Ok::<_, std::io::Error>((parser, next - start))
        };
        let results: Vec<std::io::Result<(LineParser<'_>, usize)>> = if bounds.len() == 1 {
            vec![read(0, bounds[0])]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = bounds
                    .iter()
                    .enumerate()
                    .map(|(i, range)| {
                        let range = *range;
                        std::thread::Builder::new()
                            .name("clickstream-load".into())
                            .spawn_scoped(scope, move || read(i, range))
                    })
                    .collect();
                handles
                    .into_iter()
                    .zip(bounds.iter().enumerate())
                    .map(|(handle, (i, range))| match handle {
                        Ok(h) => h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                        // No thread to be had: read that stretch here.
                        Err(_) => read(i, *range),
                    })
                    .collect()
            })
        };
        let mut stretches = Vec::with_capacity(results.len());
        let mut offset = 0;
        for (i, result) in results.into_iter().enumerate() {
            let (parser, lines) = result.map_err(read_error)?;
            stretches.push((offset, parser));
            offset += if i == 0 { first_line - 1 + lines } else { lines };
        }
        Builder::new(server, domains).build(stretches, errors, &origin)
    }

    /// Builds a table from CSV text (tests and benchmarks).
    pub fn from_csv(
        text: &str,
        server: &ServerConfig,
        domains: &BTreeMap<String, DomainConfig>,
    ) -> Result<LinkTable, LinkTableError> {
        read_sequential(&mut text.as_bytes(), false, "links.csv", server, domains)
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
