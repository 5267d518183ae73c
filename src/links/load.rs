//! Reading a link table file: sequentially, or in parallel stretches for a large CSV, and
//! building the table's domains and indexes from the parsed lines.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;

use super::link::*;
use super::parse::*;
use super::*;

/// Reads a table in one pass on the calling thread: text in memory, a pipe, a device.
pub(super) fn read_sequential(
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
pub(super) const PARALLEL_MIN_BYTES: u64 = 4 << 20;
/// Most threads reading one table.
pub(super) const MAX_LOAD_THREADS: usize = 8;

/// A byte range of the open table file, read with positioned reads so that several threads can
/// read their own ranges of one file at once.
pub(super) struct Stretch<'f> {
    pub(super) file: &'f std::fs::File,
    pub(super) pos: u64,
    pub(super) end: u64,
}

impl<'f> Stretch<'f> {
    pub(super) fn new(file: &'f std::fs::File, pos: u64, end: u64) -> Stretch<'f> {
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
pub(super) fn stretch_bounds(
    file: &std::fs::File,
    start: u64,
    end: u64,
    parts: usize,
) -> std::io::Result<Vec<(u64, u64)>> {
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

pub(super) fn invalid(origin: &str, mut numbered: Vec<(usize, String)>) -> LinkTableError {
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

/// Files the links of every stretch into the table, in file order, and reports duplicates.
pub(super) struct Builder<'c> {
    pub(super) server: &'c ServerConfig,
    pub(super) domain_configs: &'c BTreeMap<String, DomainConfig>,
    pub(super) permanent: HeaderValue,
    pub(super) temporary: HeaderValue,
}

impl<'c> Builder<'c> {
    pub(super) fn new(server: &'c ServerConfig, domain_configs: &'c BTreeMap<String, DomainConfig>) -> Builder<'c> {
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
    pub(super) fn build(
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
pub(super) fn fold(links: &HashSet<BySlashtag>) -> HashMap<Box<str>, Option<Link>> {
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
