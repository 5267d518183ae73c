//! Parsing link table lines: the CSV header and fields, JSON Lines rows, and each field's
//! check (slashtag, domain, destination, status, no control characters in the id and owner
//! fields), every problem with its line number.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde::Deserialize;

use super::link::*;
use super::*;

pub(super) fn is_json_lines(path: &Path) -> bool {
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
pub(super) struct JsonRow {
    pub(super) id: Option<String>,
    pub(super) domain: Option<String>,
    pub(super) slashtag: Option<String>,
    pub(super) destination: Option<String>,
    #[serde(default, deserialize_with = "status_field")]
    pub(super) status: Option<String>,
    pub(super) creator_id: Option<String>,
    pub(super) workspace_id: Option<String>,
    pub(super) workspace_name: Option<String>,
    pub(super) domain_id: Option<String>,
}

/// JSON Lines may carry the status as a number or a string.
pub(super) fn status_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

/// Column names, in the order of [`Fields`]' slots.
pub(super) const COLUMNS: &[&str] = &[
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
pub(super) const REQUIRED: &[&str] = &["id", "domain", "slashtag", "destination"];

/// The values of one line, by column (see [`COLUMNS`]), borrowed from the line where possible.
pub(super) type Fields<'a> = [Option<Cow<'a, str>>; 9];

/// Splits one CSV record (RFC 4180: quoted fields, doubled quotes). Written here rather than with
/// the `csv` crate because the table is one flat record per line, errors must carry the line,
/// and the common unquoted line is split without allocating. Quoted fields may not span lines
/// (a destination never holds a newline).
pub(super) fn split_csv_line<'a>(line: &'a str, out: &mut Vec<Cow<'a, str>>) -> Result<(), &'static str> {
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
pub(super) enum Header {
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
pub(super) fn read_header(reader: &mut dyn BufRead, errors: &mut Vec<(usize, String)>) -> std::io::Result<Header> {
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
pub(super) fn trim_line(buf: &[u8], first: bool) -> Option<&[u8]> {
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
pub(super) fn read_lines(
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
pub(super) fn header_index(header: &[Cow<'_, str>], n: usize, errors: &mut Vec<(usize, String)>) -> Vec<Option<usize>> {
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
pub(super) struct Interner {
    pub(super) strings: HashSet<Arc<str>>,
    pub(super) workspaces: HashSet<Arc<Workspace>>,
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

pub(super) fn header_value(url: &str) -> HeaderValue {
    // `check_destination` refused whitespace and control characters, and the value is `Url`'s
    // serialization, which percent-encodes the rest, so it is always valid;
    // `from_maybe_shared` keeps the one copy of the bytes.
    HeaderValue::from_maybe_shared(Bytes::copy_from_slice(url.as_bytes()))
        .unwrap_or_else(|_| HeaderValue::from_static("/"))
}

/// Validates a slashtag: not empty, no `/`-only path, no control characters.
pub(super) fn check_slashtag(s: &str) -> Result<(), String> {
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
pub(super) fn check_domain(d: &str) -> Result<Cow<'_, str>, String> {
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

/// Writes the interning key of an owner's fields into `out`: each field as its length in bytes,
/// `:`, and its text. Unambiguous whatever the fields hold, as no separator is: fields joined
/// with NUL made creator `x\0y` with workspace `z` one owner with creator `x` and workspace `y\0z`.
pub(super) fn owner_key(out: &mut String, fields: &[&str]) {
    out.clear();
    let mut len = itoa::Buffer::new();
    for field in fields {
        out.push_str(len.format(field.len()));
        out.push(':');
        out.push_str(field);
    }
}

/// Validates lines and makes their links, collecting every error. One per stretch of the file,
/// so that stretches can be read in parallel; [`Builder::build`] then files the links.
pub(super) struct LineParser<'c> {
    pub(super) domain_configs: &'c BTreeMap<String, DomainConfig>,
    /// Strings and owners are interned per stretch: a table read in stretches holds a few
    /// copies of each (one per stretch), which costs nothing next to the links.
    pub(super) interner: Interner,
    /// Owners by their raw fields (see [`owner_key`]).
    pub(super) owners: HashMap<Box<str>, Arc<Owner>>,
    pub(super) owner_key: String,
    /// The links made, with their lines, in line order.
    pub(super) links: Vec<(usize, Link)>,
    /// Links per domain, to size each domain's map once.
    pub(super) per_domain: HashMap<Arc<str>, usize>,
    /// Problems, as (line, message).
    pub(super) errors: Vec<(usize, String)>,
}

impl<'c> LineParser<'c> {
    pub(super) fn new(domain_configs: &'c BTreeMap<String, DomainConfig>) -> LineParser<'c> {
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
        // Control characters have no place in an id or a name, and reach the event JSON and
        // logs: refused in the id and every owner field.
        for (name, value) in [
            ("id", Some(&id)),
            ("creator_id", creator_id.as_ref()),
            ("workspace_id", workspace_id.as_ref()),
            ("workspace_name", workspace_name.as_ref()),
            ("domain_id", domain_id.as_ref()),
        ] {
            if let Some(value) = value
                && value.chars().any(char::is_control)
            {
                self.error(n, format!("{name} {value:?} contains control characters (remove them)"));
            }
        }
        let domain = check_domain(domain.as_deref().unwrap_or(""))
            .map_err(|e| self.errors.push((n, e)))
            .ok();
        let slashtag = slashtag.unwrap_or_default();
        if let Err(e) = check_slashtag(&slashtag) {
            self.error(n, e);
        }
        let destination = destination.unwrap_or_default();
        let url = config::check_destination(destination.trim())
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
        // `Url`'s serialization is sent, not the table's spelling, so that every client reads
        // the URL the way it was checked (see `check_destination`).
        let location = url.as_str();
        // Most lines repeat an owner seen before: one lookup of the raw fields finds it.
        let fields = [
            &*domain_name,
            domain_id.as_deref().unwrap_or(""),
            creator_id.as_deref().unwrap_or(""),
            workspace_id.as_deref().unwrap_or(""),
            workspace_name.as_deref().unwrap_or(""),
        ];
        owner_key(&mut self.owner_key, &fields);
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
