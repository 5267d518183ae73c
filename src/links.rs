//! The link table: parsing the operator's CSV or JSON Lines file into the lookup structure the
//! hit path reads.
//!
//! Everything a hit needs is built here, once per load: the `Location` value, the status and its
//! `Cache-Control`, and the route data that click events carry. The hit path only looks up
//! (`O(1)`: one hash lookup for the domain, one for the slashtag), borrows, and takes one
//! reference to the link for its click.
//!
//! Loading validates every line and reports each problem as `path:line: what is wrong`; a table
//! with any error is refused whole. The table is immutable once built: reloads build a new one
//! aside and swap it in (see `reload`).
//!
//! Memory: strings that repeat across links (domains, workspaces, creators) are interned, and a
//! link's slashtag (the key), destination (sent as `Location` as it is) and id share one
//! allocation. The README states the measured cost per link.

use std::borrow::{Borrow, Cow};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::BufRead;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

/// Maps of the table use foldhash: several times faster than SipHash on short keys, still seeded
/// per process, which keeps a slashtag flood from degrading lookups.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
use http::{HeaderValue, StatusCode};
use serde::Deserialize;

use crate::config::{self, DomainConfig, ServerConfig};

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

/// The owner of a link, as click events report it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Workspace {
    /// `route.creator.workspace.id`
    pub id: Arc<str>,
    /// `route.creator.workspace.name`
    pub name: Arc<str>,
}

/// What links of the same domain, creator and workspace share (interned at load).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    /// `route.domain.raw`: the lower-case custom domain.
    pub domain: Arc<str>,
    /// `route.domain.id`
    pub domain_id: Arc<str>,
    /// `route.creator.id`
    pub creator_id: Arc<str>,
    /// `route.creator.workspace`
    pub workspace: Arc<Workspace>,
    /// The fields above as the event's `route` has them ([`crate::json::owner_json`]).
    json: Box<[u8]>,
}

impl Owner {
    /// An owner, with its part of the event's JSON.
    pub fn new(domain: Arc<str>, domain_id: Arc<str>, creator_id: Arc<str>, workspace: Arc<Workspace>) -> Owner {
        let json = crate::json::owner_json(&domain, &domain_id, &creator_id, &workspace.id, &workspace.name);
        Owner {
            domain,
            domain_id,
            creator_id,
            workspace,
            json,
        }
    }
}

/// One branded short link, ready to answer; cloning it is a reference count.
///
/// Kept small, since a table holds millions, and laid out for the redirect: the reference
/// count, the fields below, then the slashtag, the destination and the id, in one allocation,
/// so a lookup that compares the slashtag reads the link's fields and its `Location` bytes from
/// the same few cache lines. (With the text in a separate allocation, a lookup in a large table
/// waited for one more cache miss: a quarter of its time under load.) What many links have in
/// common is one shared [`Owner`].
#[derive(Debug, Clone)]
pub struct Link(triomphe::Arc<triomphe::HeaderSlice<LinkFields, str>>);

/// The fixed part of a [`Link`] (reached through it).
#[derive(Debug)]
pub struct LinkFields {
    /// Where the destination starts in the text.
    slashtag_len: u32,
    /// Where the id starts in the text.
    id_start: u32,
    /// Redirect status (the link's, else its domain's, else 301).
    pub status: StatusCode,
    /// Domain, creator and workspace.
    pub owner: Arc<Owner>,
    /// `route.destination` as JSON, made by the pipeline thread at the link's first click:
    /// parsing the URL costs more than the rest of the event, and links are clicked again and
    /// again. Lazily, so a table of millions of links pays only for those that are clicked.
    destination_json: OnceLock<Arc<str>>,
}

impl std::ops::Deref for Link {
    type Target = LinkFields;

    fn deref(&self) -> &LinkFields {
        &self.0.header
    }
}

impl Link {
    /// A link. `location` is sent as the `Location` field as it is, so it must be one: visible
    /// ASCII (the table reader percent-encodes everything else); any other is replaced by `/`.
    /// Parts longer than 1 GiB are cut, so that the offsets fit `u32` (the table reader never
    /// makes one).
    pub fn new(id: &str, slashtag: &str, status: StatusCode, location: &str, owner: Arc<Owner>) -> Link {
        let location = if is_field_value(location) { location } else { "/" };
        let (id, slashtag, location) = (cut(id), cut(slashtag), cut(location));
        let fields = LinkFields {
            slashtag_len: slashtag.len() as u32,
            id_start: (slashtag.len() + location.len()) as u32,
            status,
            owner,
            destination_json: OnceLock::new(),
        };
        Link(triomphe::Arc::from_header_and_str(
            fields,
            &[slashtag, location, id].concat(),
        ))
    }

    fn text(&self) -> &str {
        &self.0.slice
    }

    /// `route.id`
    pub fn id(&self) -> &str {
        &self.text()[self.id_start as usize..]
    }

    /// `route.slashtag`, exactly as in the table.
    pub fn slashtag(&self) -> &str {
        &self.text()[..self.slashtag_len as usize]
    }

    /// The destination URL as sent in `Location`: the table's spelling when it was visible
    /// ASCII, else its percent-encoded form.
    pub fn destination(&self) -> &str {
        &self.text()[self.slashtag_len as usize..self.id_start as usize]
    }

    /// `route.domain.raw`: the lower-case custom domain.
    pub fn domain(&self) -> &Arc<str> {
        &self.owner.domain
    }

    /// `route.domain.id`
    pub fn domain_id(&self) -> &str {
        &self.owner.domain_id
    }

    /// `route.creator.id`
    pub fn creator_id(&self) -> &str {
        &self.owner.creator_id
    }

    /// `route.creator.workspace`
    pub fn workspace(&self) -> &Workspace {
        &self.owner.workspace
    }

    /// `route.creator` and `route.domain` as JSON ([`crate::json::owner_json`]).
    pub fn owner_json(&self) -> &[u8] {
        &self.owner.json
    }

    /// `route.destination` of this link's clicks as JSON ([`crate::json::destination_json`]),
    /// made at the first call and kept.
    pub fn destination_json(&self) -> Arc<str> {
        Arc::clone(
            self.destination_json
                .get_or_init(|| crate::json::destination_json(self.destination())),
        )
    }
}

/// `s` cut to at most a quarter of 4 GiB, so that three such fit `u32` offsets.
fn cut(s: &str) -> &str {
    &s[..s.floor_char_boundary(u32::MAX as usize / 4)]
}

/// A value that can be written into a response head as it is: visible ASCII and spaces, not
/// empty. (`HeaderValue` also takes bytes above 0x7f, which no URL this server sends has.)
pub fn is_field_value(s: &str) -> bool {
    !s.is_empty() && crate::json::is_visible_ascii(s.as_bytes())
}

/// A set entry keyed by the link's slashtag, so the slashtag is stored once.
#[derive(Debug, Clone)]
struct BySlashtag(Link);

impl PartialEq for BySlashtag {
    fn eq(&self, other: &Self) -> bool {
        self.0.slashtag() == other.0.slashtag()
    }
}
impl Eq for BySlashtag {}
impl Hash for BySlashtag {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash exactly like the `str` it borrows as.
        self.0.slashtag().hash(state)
    }
}
impl Borrow<str> for BySlashtag {
    fn borrow(&self) -> &str {
        self.0.slashtag()
    }
}

/// A set entry keyed by the link's id (to find duplicate ids while building), with its line.
#[derive(Debug)]
struct ById(Link, u32);

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id() == other.0.id()
    }
}
impl Eq for ById {}
impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id().hash(state)
    }
}
impl Borrow<str> for ById {
    fn borrow(&self) -> &str {
        self.0.id()
    }
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

/// Reads a table in one pass on the calling thread: text in memory, a pipe, a device.
fn read_sequential(
    reader: &mut dyn BufRead,
    json: bool,
    origin: &str,
    server: &ServerConfig,
    domains: &BTreeMap<String, DomainConfig>,
) -> Result<LinkTable, LinkTableError> {
    let read_error = |source| LinkTableError::Read {
        path: origin.to_string(),
        source,
    };
    let mut errors = Vec::new();
    let builder = Builder::new(server, domains);
    let (index, first_line) = if json {
        (None, 1)
    } else {
        match read_header(reader, &mut errors).map_err(read_error)? {
            Header::Index { index, next_line, .. } => (Some(index), next_line),
            Header::Broken => return Err(invalid(origin, errors)),
            Header::Missing => return builder.build(Vec::new(), errors, origin),
        }
    };
    let mut parser = LineParser::new(domains);
    read_lines(reader, json, first_line, json, index.as_deref(), &mut parser).map_err(read_error)?;
    builder.build(vec![(0, parser)], errors, origin)
}

/// Tables at least this large are read by several threads.
const PARALLEL_MIN_BYTES: u64 = 4 << 20;
/// Most threads reading one table.
const MAX_LOAD_THREADS: usize = 8;

/// A byte range of the open table file, read with positioned reads so that several threads can
/// read their own ranges of one file at once.
struct Stretch<'f> {
    file: &'f std::fs::File,
    pos: u64,
    end: u64,
}

impl<'f> Stretch<'f> {
    fn new(file: &'f std::fs::File, pos: u64, end: u64) -> Stretch<'f> {
        Stretch { file, pos, end }
    }
}

impl std::io::Read for Stretch<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let left = usize::try_from(self.end.saturating_sub(self.pos)).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Where the stretches of `[start, end)` begin and end: `parts` ranges of about equal size, each
/// starting at the beginning of a line.
fn stretch_bounds(file: &std::fs::File, start: u64, end: u64, parts: usize) -> std::io::Result<Vec<(u64, u64)>> {
    use std::os::unix::fs::FileExt;
    let mut cuts = vec![start];
    for i in 1..parts {
        let target = start + (end - start) * i as u64 / parts as u64;
        // The first line start at or after `target`: just past the first newline from target - 1.
        let mut at = target.max(start + 1) - 1;
        let mut buf = [0u8; 4096];
        let cut = loop {
            let n = file.read_at(&mut buf, at)?;
            if n == 0 {
                break end;
            }
            if let Some(i) = buf[..n].iter().position(|&b| b == b'\n') {
                break (at + i as u64 + 1).min(end);
            }
            at += n as u64;
        };
        cuts.push(cut.max(*cuts.last().expect("starts with `start`")));
    }
    cuts.push(end);
    cuts.dedup();
    Ok(if cuts.len() < 2 {
        vec![(start, end)]
    } else {
        cuts.windows(2).map(|w| (w[0], w[1])).collect()
    })
}

fn invalid(origin: &str, mut numbered: Vec<(usize, String)>) -> LinkTableError {
    // Report in file order, whichever stage found the problem.
    numbered.sort_by_key(|(line, _)| *line);
    let mut errors: Vec<String> = numbered
        .into_iter()
        .map(|(n, e)| format!("{origin}:{n}: {e}"))
        .collect();
    let total = errors.len();
    if total > MAX_REPORTED_ERRORS {
        errors.truncate(MAX_REPORTED_ERRORS);
        errors.push(format!("... and {} more", total - MAX_REPORTED_ERRORS));
    }
    LinkTableError::Invalid { errors, total }
}

fn is_json_lines(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("jsonl" | "ndjson" | "json")
    )
}

/// One JSON Lines object before validation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow {
    id: Option<String>,
    domain: Option<String>,
    slashtag: Option<String>,
    destination: Option<String>,
    #[serde(default, deserialize_with = "status_field")]
    status: Option<String>,
    creator_id: Option<String>,
    workspace_id: Option<String>,
    workspace_name: Option<String>,
    domain_id: Option<String>,
}

/// JSON Lines may carry the status as a number or a string.
fn status_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// Column names, in the order of [`Fields`]' slots.
const COLUMNS: &[&str] = &[
    "id",
    "domain",
    "slashtag",
    "destination",
    "status",
    "creator_id",
    "workspace_id",
    "workspace_name",
    "domain_id",
];
const REQUIRED: &[&str] = &["id", "domain", "slashtag", "destination"];

/// The values of one line, by column (see [`COLUMNS`]), borrowed from the line where possible.
type Fields<'a> = [Option<Cow<'a, str>>; 9];

/// Splits one CSV record (RFC 4180: quoted fields, doubled quotes). Written here rather than with
/// the `csv` crate because the table is one flat record per line, errors must carry the line,
/// and the common unquoted line is split without allocating. Quoted fields may not span lines
/// (a destination never holds a newline).
fn split_csv_line<'a>(line: &'a str, out: &mut Vec<Cow<'a, str>>) -> Result<(), &'static str> {
    out.clear();
    if !line.contains('"') {
        out.extend(line.split(',').map(Cow::Borrowed));
        return Ok(());
    }
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut at_start = true;
    loop {
        if at_start && chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed"),
                }
            }
            match chars.next() {
                None => {
                    out.push(Cow::Owned(std::mem::take(&mut field)));
                    return Ok(());
                }
                Some(',') => {
                    out.push(Cow::Owned(std::mem::take(&mut field)));
                    at_start = true;
                    continue;
                }
                Some(_) => return Err("text after a closing quote (double a quote inside a quoted field)"),
            }
        }
        at_start = false;
        match chars.next() {
            None => {
                out.push(Cow::Owned(field));
                return Ok(());
            }
            Some(',') => {
                out.push(Cow::Owned(std::mem::take(&mut field)));
                at_start = true;
            }
            Some('"') => return Err("a quote inside an unquoted field (quote the whole field)"),
            Some(c) => field.push(c),
        }
    }
}

/// What the start of a CSV table held.
enum Header {
    /// The column index, the number of the line after the header, and the bytes up to there.
    Index {
        index: Vec<Option<usize>>,
        next_line: usize,
        bytes: u64,
    },
    /// The header has errors (reported): nothing below it can be read.
    Broken,
    /// No line but blank ones.
    Missing,
}

/// Reads a CSV table up to and including its header, the first line that is not blank.
fn read_header(reader: &mut dyn BufRead, errors: &mut Vec<(usize, String)>) -> std::io::Result<Header> {
    let mut buf = Vec::with_capacity(1024);
    let mut n = 0usize;
    let mut bytes = 0u64;
    loop {
        buf.clear();
        let read = reader.read_until(b'\n', &mut buf)?;
        if read == 0 {
            return Ok(Header::Missing);
        }
        bytes += read as u64;
        n += 1;
        let Some(raw) = trim_line(&buf, n == 1) else { continue };
        let Ok(line) = std::str::from_utf8(raw) else {
            errors.push((n, "not UTF-8".into()));
            return Ok(Header::Broken);
        };
        let mut split = Vec::with_capacity(COLUMNS.len());
        if let Err(e) = split_csv_line(line, &mut split) {
            errors.push((n, e.into()));
            return Ok(Header::Broken);
        }
        let before = errors.len();
        let index = header_index(&split, n, errors);
        return Ok(if errors.len() > before {
            Header::Broken
        } else {
            Header::Index {
                index,
                next_line: n + 1,
                bytes,
            }
        });
    }
}

/// A line without its end of line (and, on the file's first line, a byte order mark); `None`
/// when it is blank.
fn trim_line(buf: &[u8], first: bool) -> Option<&[u8]> {
    let mut raw = buf;
    raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    if first {
        raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    }
    (!raw.iter().all(u8::is_ascii_whitespace)).then_some(raw)
}

/// Reads lines, numbered from `first_line`, and feeds them to the parser; nothing but the
/// current line is held. `index` is the CSV header's column index (`None`: JSON Lines).
/// Returns the number the next line would have.
fn read_lines(
    reader: &mut dyn BufRead,
    json: bool,
    first_line: usize,
    file_start: bool,
    index: Option<&[Option<usize>]>,
    parser: &mut LineParser<'_>,
) -> std::io::Result<usize> {
    let mut buf = Vec::with_capacity(1024);
    let mut n = first_line - 1;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(n + 1);
        }
        n += 1;
        let Some(raw) = trim_line(&buf, file_start && n == first_line) else {
            continue;
        };
        if json {
            match serde_json::from_slice::<JsonRow>(raw) {
                Ok(r) => {
                    let fields: Fields<'_> = [
                        r.id.map(Cow::Owned),
                        r.domain.map(Cow::Owned),
                        r.slashtag.map(Cow::Owned),
                        r.destination.map(Cow::Owned),
                        r.status.map(Cow::Owned),
                        r.creator_id.map(Cow::Owned),
                        r.workspace_id.map(Cow::Owned),
                        r.workspace_name.map(Cow::Owned),
                        r.domain_id.map(Cow::Owned),
                    ];
                    let missing: Vec<&str> = REQUIRED
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| fields[*i].is_none())
                        .map(|(_, k)| *k)
                        .collect();
                    if missing.is_empty() {
                        parser.add(n, fields);
                    } else {
                        parser.error(n, format!("missing key(s) {}", missing.join(", ")));
                    }
                }
                Err(e) => parser.error(n, format!("not a link object: {e}")),
            }
            continue;
        }
        let Some(index) = index else { continue };
        let Ok(line) = std::str::from_utf8(raw) else {
            parser.error(n, "not UTF-8".into());
            continue;
        };
        let mut split = Vec::with_capacity(COLUMNS.len());
        if let Err(e) = split_csv_line(line, &mut split) {
            parser.error(n, e.into());
            continue;
        }
        if split.len() != index.len() {
            parser.error(n, format!("{} field(s), the header has {}", split.len(), index.len()));
            continue;
        }
        let mut fields: Fields<'_> = Default::default();
        for (value, col) in split.drain(..).zip(index) {
            if let Some(c) = col {
                fields[*c] = Some(value);
            }
        }
        parser.add(n, fields);
    }
}

/// Maps header columns to field slots; reports unknown, repeated and missing columns.
fn header_index(header: &[Cow<'_, str>], n: usize, errors: &mut Vec<(usize, String)>) -> Vec<Option<usize>> {
    let mut index: Vec<Option<usize>> = Vec::with_capacity(header.len());
    for name in header {
        let name = name.trim().to_ascii_lowercase();
        match COLUMNS.iter().position(|c| *c == name) {
            Some(pos) if index.contains(&Some(pos)) => {
                errors.push((n, format!("column '{name}' appears twice")));
                index.push(None);
            }
            Some(pos) => index.push(Some(pos)),
            None => {
                errors.push((n, format!("unknown column '{name}' (known: {})", COLUMNS.join(", "))));
                index.push(None);
            }
        }
    }
    for (pos, required) in REQUIRED.iter().enumerate() {
        if !index.contains(&Some(pos)) {
            errors.push((n, format!("missing column '{required}'")));
        }
    }
    index
}

/// Interns repeated strings so a million links share one copy of each workspace and domain.
#[derive(Default)]
struct Interner {
    strings: HashSet<Arc<str>>,
    workspaces: HashSet<Arc<Workspace>>,
}

impl Interner {
    fn str(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.strings.insert(a.clone());
        a
    }

    fn workspace(&mut self, id: &str, name: &str) -> Arc<Workspace> {
        let w = Workspace {
            id: self.str(id),
            name: self.str(name),
        };
        if let Some(a) = self.workspaces.get(&w) {
            return a.clone();
        }
        let a = Arc::new(w);
        self.workspaces.insert(a.clone());
        a
    }
}

fn header_value(url: &str) -> HeaderValue {
    // `check_redirect_url` refused control characters, and `Url` percent-encodes the rest, so the
    // value is always valid; `from_maybe_shared` keeps the one copy of the bytes.
    HeaderValue::from_maybe_shared(Bytes::copy_from_slice(url.as_bytes()))
        .unwrap_or_else(|_| HeaderValue::from_static("/"))
}

/// Validates a slashtag: not empty, no `/`-only path, no control characters.
fn check_slashtag(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("slashtag is empty (the root of a domain is set with root_url)".into());
    }
    if s.chars().any(char::is_control) {
        return Err(format!("slashtag {s:?} contains control characters"));
    }
    if s.starts_with('/') {
        return Err(format!(
            "slashtag '{s}' starts with '/' (write it without the leading slash)"
        ));
    }
    if s == "robots.txt" {
        return Err("slashtag 'robots.txt' is reserved for /robots.txt".into());
    }
    Ok(())
}

/// Validates a domain name: a bare host name, returned lower-cased.
fn check_domain(d: &str) -> Result<Cow<'_, str>, String> {
    let d = d.trim();
    if d.is_empty() {
        return Err("domain is empty".into());
    }
    if d.contains("://") || d.contains(['/', ':', ' ']) {
        return Err(format!(
            "domain '{d}' must be a bare host name (no scheme, port or path)"
        ));
    }
    if !d
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        return Err(format!(
            "domain '{d}' is not a host name (use its punycode form for non-ASCII names)"
        ));
    }
    Ok(if d.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(d.to_ascii_lowercase())
    } else {
        Cow::Borrowed(d)
    })
}

/// Validates lines and makes their links, collecting every error. One per stretch of the file,
/// so that stretches can be read in parallel; [`Builder::build`] then files the links.
struct LineParser<'c> {
    domain_configs: &'c BTreeMap<String, DomainConfig>,
    /// Strings and owners are interned per stretch: a table read in stretches holds a few
    /// copies of each (one per stretch), which costs nothing next to the links.
    interner: Interner,
    /// Owners by their raw fields, each followed by a NUL.
    owners: HashMap<Box<str>, Arc<Owner>>,
    owner_key: String,
    /// The links made, with their lines, in line order.
    links: Vec<(usize, Link)>,
    /// Links per domain, to size each domain's map once.
    per_domain: HashMap<Arc<str>, usize>,
    /// Problems, as (line, message).
    errors: Vec<(usize, String)>,
}

impl<'c> LineParser<'c> {
    fn new(domain_configs: &'c BTreeMap<String, DomainConfig>) -> LineParser<'c> {
        LineParser {
            domain_configs,
            interner: Interner::default(),
            owners: HashMap::default(),
            owner_key: String::new(),
            links: Vec::new(),
            per_domain: HashMap::default(),
            errors: Vec::new(),
        }
    }

    fn error(&mut self, line: usize, message: String) {
        self.errors.push((line, message));
    }

    /// Validates one line and makes its link.
    fn add(&mut self, n: usize, fields: Fields<'_>) {
        let [
            id,
            domain,
            slashtag,
            destination,
            status,
            creator_id,
            workspace_id,
            workspace_name,
            domain_id,
        ] = fields;
        let errors_before = self.errors.len();
        let id = id.unwrap_or_default();
        if id.trim().is_empty() {
            self.error(n, "id is empty".to_string());
        }
        let domain = check_domain(domain.as_deref().unwrap_or(""))
            .map_err(|e| self.errors.push((n, e)))
            .ok();
        let slashtag = slashtag.unwrap_or_default();
        if let Err(e) = check_slashtag(&slashtag) {
            self.error(n, e);
        }
        let destination = destination.unwrap_or_default();
        let url = config::check_redirect_url(destination.trim())
            .map_err(|e| self.errors.push((n, format!("destination {e}"))))
            .ok();
        let status = match status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => s
                .parse::<u16>()
                .map_err(|_| format!("status '{s}' is not a number"))
                .and_then(config::check_status)
                .map_err(|e| self.errors.push((n, e)))
                .ok(),
        };
        if self.errors.len() > errors_before {
            return;
        }
        let (Some(domain), Some(url)) = (domain, url) else {
            return;
        };
        let domain_name = self.interner.str(&domain);
        let status = status
            .or_else(|| self.domain_configs.get(&*domain).and_then(|c| c.status))
            .unwrap_or(StatusCode::MOVED_PERMANENTLY);
        // The table's own spelling is sent when it is already a valid header value; `Url`'s
        // serialization (which percent-encodes) only when the raw text needs it.
        let raw = destination.trim();
        let location = if is_field_value(raw) { raw } else { url.as_str() };
        // Most lines repeat an owner seen before: one lookup of the raw fields finds it.
        let fields = [
            &*domain_name,
            domain_id.as_deref().unwrap_or(""),
            creator_id.as_deref().unwrap_or(""),
            workspace_id.as_deref().unwrap_or(""),
            workspace_name.as_deref().unwrap_or(""),
        ];
        self.owner_key.clear();
        for field in fields {
            self.owner_key.push_str(field);
            self.owner_key.push('\0');
        }
        let owner = match self.owners.get(self.owner_key.as_str()) {
            Some(owner) => owner.clone(),
            None => {
                let owner = Arc::new(Owner::new(
                    domain_name.clone(),
                    self.interner.str(fields[1]),
                    self.interner.str(fields[2]),
                    self.interner.workspace(fields[3], fields[4]),
                ));
                self.owners.insert(self.owner_key.as_str().into(), owner.clone());
                owner
            }
        };
        *self.per_domain.entry(domain_name).or_default() += 1;
        self.links.push((n, Link::new(&id, &slashtag, status, location, owner)));
    }
}

/// Files the links of every stretch into the table, in file order, and reports duplicates.
struct Builder<'c> {
    server: &'c ServerConfig,
    domain_configs: &'c BTreeMap<String, DomainConfig>,
    permanent: HeaderValue,
    temporary: HeaderValue,
}

impl<'c> Builder<'c> {
    fn new(server: &'c ServerConfig, domain_configs: &'c BTreeMap<String, DomainConfig>) -> Builder<'c> {
        Builder {
            server,
            domain_configs,
            permanent: HeaderValue::from_str(&server.cache_control_permanent)
                .unwrap_or_else(|_| HeaderValue::from_static(config::DEFAULT_CACHE_CONTROL_PERMANENT)),
            temporary: HeaderValue::from_str(&server.cache_control_temporary)
                .unwrap_or_else(|_| HeaderValue::from_static(config::DEFAULT_CACHE_CONTROL_TEMPORARY)),
        }
    }

    fn new_domain(&self, name: Arc<str>) -> Domain {
        let default_config = DomainConfig {
            forward_query: true,
            ..DomainConfig::default()
        };
        let c = self.domain_configs.get(&*name).unwrap_or(&default_config);
        Domain {
            name,
            forward_query: c.forward_query,
            https_only: c.https_only,
            not_found: c.not_found_url.as_deref().map(header_value),
            root: c.root_url.as_deref().map(header_value),
            robots_txt: Bytes::from(c.robots_txt.clone().unwrap_or_else(|| DEFAULT_ROBOTS_TXT.to_string())),
            counters: Arc::default(),
            cache_control: c.cache_control.as_deref().and_then(|v| HeaderValue::from_str(v).ok()),
            cache_control_permanent: self.permanent.clone(),
            cache_control_temporary: self.temporary.clone(),
            links: HashSet::default(),
            folded: None,
        }
    }

    /// The table from the stretches, each with the number of lines before it; `errors` are
    /// those found before (the header's).
    fn build(
        self,
        stretches: Vec<(usize, LineParser<'_>)>,
        mut errors: Vec<(usize, String)>,
        origin: &str,
    ) -> Result<LinkTable, LinkTableError> {
        let mut domains: HashMap<Arc<str>, Domain> = HashMap::default();
        for name in self.domain_configs.keys() {
            let name: Arc<str> = Arc::from(name.as_str());
            domains.insert(name.clone(), self.new_domain(name));
        }
        let mut total = 0;
        for (_, stretch) in &stretches {
            for (name, count) in &stretch.per_domain {
                let domain = match domains.get_mut(&**name) {
                    Some(d) => d,
                    None => domains.entry(name.clone()).or_insert(self.new_domain(name.clone())),
                };
                domain.links.reserve(*count);
                total += count;
            }
        }
        // Every link by id, with its line, to report duplicate ids; dropped once the table is
        // built. Sized once, like the domains' maps: growing them would hash every link again.
        let mut ids: HashSet<ById> = HashSet::with_capacity_and_hasher(total, Default::default());
        let mut count = 0;
        for (offset, stretch) in stretches {
            errors.extend(stretch.errors.into_iter().map(|(n, e)| (n + offset, e)));
            for (n, link) in stretch.links {
                let n = n + offset;
                if let Some(ById(_, first)) = ids.get(link.id()) {
                    errors.push((n, format!("id '{}' is already used on line {first}", link.id())));
                    continue;
                }
                let domain = domains
                    .get_mut(&**link.domain())
                    .expect("every link's domain was added above");
                if let Some(existing) = domain.links.get(link.slashtag()) {
                    errors.push((
                        n,
                        format!(
                            "duplicate link {}/{} (first defined as id '{}')",
                            link.domain(),
                            link.slashtag(),
                            existing.0.id()
                        ),
                    ));
                    continue;
                }
                ids.insert(ById(link.clone(), n as u32));
                domain.links.insert(BySlashtag(link));
                count += 1;
            }
        }
        drop(ids);
        if !errors.is_empty() {
            return Err(invalid(origin, errors));
        }
        for domain in domains.values_mut() {
            let enabled = self
                .domain_configs
                .get(&*domain.name)
                .and_then(|c| c.case_insensitive)
                .unwrap_or(self.server.case_insensitive);
            if enabled {
                domain.folded = Some(fold(&domain.links));
            }
        }
        Ok(LinkTable {
            domains,
            default_domain: self.server.default_domain.as_deref().map(Arc::from),
            links: count,
        })
    }
}

/// Builds the case-insensitive index. Only slashtags with upper-case letters get an entry (a
/// lower-case request for a lower-case slashtag is answered by the exact map); an entry is
/// `None` when several slashtags fold to the same text, including a lower-case one that exists
/// as such: the fallback never guesses.
fn fold(links: &HashSet<BySlashtag>) -> HashMap<Box<str>, Option<Link>> {
    let mut folded: HashMap<Box<str>, Option<Link>> = HashMap::default();
    for BySlashtag(link) in links {
        let lower = link.slashtag().to_lowercase();
        if lower == link.slashtag() {
            continue;
        }
        let ambiguous = links.contains(lower.as_str());
        folded
            .entry(lower.into_boxed_str())
            .and_modify(|slot| *slot = None)
            .or_insert_with(|| (!ambiguous).then(|| link.clone()));
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn table(csv: &str) -> Result<LinkTable, LinkTableError> {
        let c = Config::embedded_default();
        LinkTable::from_csv(csv, &c.server, &c.domains)
    }

    fn errors(csv: &str) -> Vec<String> {
        match table(csv) {
            Err(LinkTableError::Invalid { errors, .. }) => errors,
            Err(e) => vec![e.to_string()],
            Ok(_) => vec![],
        }
    }

    #[test]
    fn csv_lines_split_like_rfc4180() {
        let cases: &[(&str, Result<&[&str], ()>)] = &[
            ("a,b,c", Ok(&["a", "b", "c"])),
            ("a,,c", Ok(&["a", "", "c"])),
            (r#""a,b",c"#, Ok(&["a,b", "c"])),
            (r#""say ""hi""",x"#, Ok(&[r#"say "hi""#, "x"])),
            ("a,", Ok(&["a", ""])),
            (r#""open,b"#, Err(())),
            (r#"a"b,c"#, Err(())),
            (r#""a"b,c"#, Err(())),
        ];
        for (line, want) in cases {
            let mut out = Vec::new();
            let got = split_csv_line(line, &mut out)
                .map(|()| out.iter().map(|c| c.to_string()).collect::<Vec<_>>())
                .map_err(|_| ());
            let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "{line}");
        }
    }

    #[test]
    fn loads_and_looks_up() {
        let t = table(
            "id,domain,slashtag,destination,status,workspace_id\n\
             1,Brand.Link,spring,https://example.com/a?x=1,,w1\n\
             2,brand.link,Summer,https://example.com/b,302,w1\n\
             3,other.test,spring,https://example.com/c,,w2\n",
        )
        .unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.domain_count(), 2);
        let d = t.domain_for_host("brand.link").unwrap();
        assert_eq!(d.lookup("spring").unwrap().id(), "1");
        assert_eq!(d.lookup("summer").unwrap().status, StatusCode::FOUND);
        assert_eq!(d.lookup("SPRING").unwrap().id(), "1");
        assert!(d.lookup("nope").is_none());
        assert_eq!(
            t.domain_for_host("other.test").unwrap().lookup("spring").unwrap().id(),
            "3"
        );
        // Unknown hosts fall back to the embedded default domain.
        assert_eq!(t.domain_for_host("127.0.0.1").unwrap().name.as_ref(), "brand.link");
        let link = d.lookup("spring").unwrap();
        assert_eq!(link.destination(), "https://example.com/a?x=1");
        assert!(Arc::ptr_eq(&link.owner, &d.lookup("Summer").unwrap().owner));
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let errs = errors(
            "id,domain,slashtag,destination,status\n\
             1,a.test,ok,https://example.com/,\n\
             2,a.test,bad-url,htp://x,\n\
             3,a.test,ok,https://example.com/dup,\n\
             4,a.test,st,https://example.com/,200\n\
             5,a.test,,https://example.com/,\n\
             6,a b,x,https://example.com/,\n\
             7,a.test,ctl,\"https://exa\tmple.com/\",\n\
             1,a.test,again,https://example.com/,\n\
             9,a.test,few\n",
        );
        let want = [
            "links.csv:3: destination 'htp://x'",
            "links.csv:4: duplicate link a.test/ok",
            "links.csv:5: status 200",
            "links.csv:6: slashtag is empty",
            "links.csv:7: domain 'a b'",
            "links.csv:8: destination",
            "links.csv:9: id '1' is already used on line 2",
            "links.csv:10: 3 field(s), the header has 5",
        ];
        let joined = errs.join("\n");
        for w in want {
            assert!(joined.contains(w), "missing {w:?} in\n{joined}");
        }
    }

    #[test]
    fn header_problems() {
        assert!(errors("id,domain,destination\n1,a.test,https://x.test/\n")[0].contains("missing column 'slashtag'"));
        assert!(errors("id,domain,slashtag,destination,colour\n")[0].contains("unknown column 'colour'"));
        assert!(table("").unwrap().is_empty());
    }

    fn load_file(name: &str, text: &[u8], stretches: usize) -> Result<LinkTable, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let c = Config::embedded_default();
        LinkTable::load_in(&path, &c.server, &c.domains, Some(stretches)).map_err(|e| match e {
            LinkTableError::Invalid { errors, .. } => errors
                .into_iter()
                .map(|e| e.strip_prefix(&format!("{}:", path.display())).unwrap().to_string())
                .collect(),
            e => vec![e.to_string()],
        })
    }

    #[test]
    fn json_lines() {
        let text = br#"{"id":"1","domain":"a.test","slashtag":"x","destination":"https://e.test/","status":302}

{"id":"2","domain":"a.test","destination":"https://e.test/"}
not json
{"id":"3","domain":"a.test","slashtag":"y","destination":"https://e.test/","color":"red"}"#;
        for stretches in [1, 2, 4] {
            let errs = load_file("l.jsonl", text, stretches).err().unwrap();
            assert_eq!(errs.len(), 3, "{errs:?}");
            assert!(errs[0].starts_with("3: missing key(s) slashtag"), "{errs:?}");
            assert!(errs[1].starts_with("4: not a link object"), "{errs:?}");
            assert!(errs[2].starts_with("5:"), "{errs:?}");
        }
        let first = &text[..text.iter().position(|&x| x == b'\n').unwrap()];
        let t = load_file("l.jsonl", first, 1).unwrap();
        assert_eq!(
            t.domain("a.test").unwrap().lookup("x").unwrap().status,
            StatusCode::FOUND
        );
    }

    #[test]
    fn a_file_read_in_stretches_gives_the_same_table_and_errors() {
        let mut good = String::from("\u{feff}\r\nid,domain,slashtag,destination\r\n");
        for i in 0..500 {
            good.push_str(&format!("{i},d{}.test,s{i},https://e.test/{i}\r\n", i % 3));
            if i % 97 == 0 {
                good.push_str("\r\n");
            }
        }
        for stretches in [1, 2, 3, 7, 64] {
            let t = load_file("l.csv", good.as_bytes(), stretches).unwrap();
            assert_eq!(t.len(), 500);
            assert_eq!(t.domain("d2.test").unwrap().lookup("s500").map(|l| l.id()), None);
            assert_eq!(t.domain("d1.test").unwrap().lookup("s499").unwrap().id(), "499");
            assert_eq!(t.domain("d0.test").unwrap().lookup("s0").unwrap().id(), "0");
        }
        // Errors anywhere keep their absolute line numbers; duplicates name the first line.
        let mut bad = String::from("id,domain,slashtag,destination\n");
        for i in 0..300 {
            match i {
                10 => bad.push_str("dup,a.test,x,https://e.test/\n"),
                250 => bad.push_str("dup,a.test,y,https://e.test/\n"),
                260 => bad.push_str("z,a.test,x,https://e.test/\n"),
                270 => bad.push_str("w,a.test,q,ftp://e.test/\n"),
                _ => bad.push_str(&format!("{i},a.test,s{i},https://e.test/\n")),
            }
        }
        let single = load_file("l.csv", bad.as_bytes(), 1).err().unwrap();
        assert_eq!(single.len(), 3, "{single:?}");
        assert!(
            single[0].starts_with("252: id 'dup' is already used on line 12"),
            "{single:?}"
        );
        assert!(
            single[1].starts_with("262: duplicate link a.test/x (first defined as id 'dup')"),
            "{single:?}"
        );
        assert!(single[2].starts_with("272: destination"), "{single:?}");
        for stretches in [2, 3, 5, 16] {
            assert_eq!(load_file("l.csv", bad.as_bytes(), stretches).err().unwrap(), single);
        }
    }

    #[test]
    fn case_insensitive_fallback_never_guesses() {
        let t = table(
            "id,domain,slashtag,destination\n\
             1,a.test,Promo,https://e.test/1\n\
             2,a.test,PROMO,https://e.test/2\n\
             3,a.test,Deal,https://e.test/3\n",
        )
        .unwrap();
        let d = t.domain("a.test").unwrap();
        assert_eq!(d.lookup("PROMO").unwrap().id(), "2");
        assert!(d.lookup("promo").is_none(), "ambiguous fold must not resolve");
        assert_eq!(d.lookup("deal").unwrap().id(), "3");
        assert_eq!(d.lookup("DEAL").unwrap().id(), "3");
        let t = table(
            "id,domain,slashtag,destination\n\
             1,a.test,sale,https://e.test/1\n\
             2,a.test,Sale,https://e.test/2\n\
             3,a.test,news,https://e.test/3\n",
        )
        .unwrap();
        let d = t.domain("a.test").unwrap();
        assert_eq!(d.lookup("Sale").unwrap().id(), "2");
        assert_eq!(d.lookup("sale").unwrap().id(), "1");
        assert!(d.lookup("SALE").is_none(), "'sale' and 'Sale' both fold to it");
        assert_eq!(d.lookup("NEWS").unwrap().id(), "3");
    }

    #[test]
    fn a_link_is_small() {
        // A handle is a pointer and the text's length; the allocation is the reference count,
        // these fields and the text.
        assert_eq!(std::mem::size_of::<Link>(), 16);
        assert_eq!(std::mem::size_of::<LinkFields>(), 48);
    }

    #[test]
    fn a_link_keeps_its_three_strings_apart() {
        let owner = Arc::new(Owner::new(
            "a.test".into(),
            "".into(),
            "".into(),
            Arc::new(Workspace {
                id: "".into(),
                name: "".into(),
            }),
        ));
        let link = Link::new("ïd", "Tag", StatusCode::FOUND, "https://e.test/?q=1", owner.clone());
        assert_eq!(
            (link.id(), link.slashtag(), link.destination()),
            ("ïd", "Tag", "https://e.test/?q=1")
        );
        let link = Link::new("", "", StatusCode::FOUND, "https://e.test/", owner.clone());
        assert_eq!(
            (link.id(), link.slashtag(), link.destination()),
            ("", "", "https://e.test/")
        );
        // A value that would break the response head is never sent.
        for bad in ["https://e.test/\r\nset-cookie: x=1", "", "https://e.test/é"] {
            assert_eq!(
                Link::new("1", "t", StatusCode::FOUND, bad, owner.clone()).destination(),
                "/"
            );
        }
    }
}
