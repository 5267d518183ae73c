//! The hit path: one request in, one response out, and for a click a [`Hit`] handed to delivery.
//!
//! Called by `h1` and `https` for every request on every listener, once per request, on the connection's
//! task. Invariants, in order of importance:
//!
//! - **No await, no I/O.** [`Router::handle`] is a plain function; everything slow (user-agent
//!   parsing, GeoIP, sessions, JSON, disk) happens after the response, on the enrichment thread.
//! - **No lock.** The table is read through an `ArcSwap` (a wait-free load); the click hand-off is
//!   a `try_send` on a bounded queue that never blocks: a full queue drops the click and counts it.
//! - **No avoidable allocation, no shared write.** `Location`, `Cache-Control` and the robots
//!   body are made when the table loads, and an [`Answer`] borrows them from the table (hyper's
//!   response, on the TLS listener, copies the `Location`). Only a request that carries a query
//!   to merge builds a new `Location`, and only a slashtag with `%` escapes or upper case is
//!   copied. The per-request counters are striped per thread ([`crate::metrics::Striped`]).
//!
//! The seam for later stages is [`Hit`]: what the request said, captured without parsing.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;

use crate::click::{ClickQueue, Hit, HitHeaders};
use crate::links::{Domain, Link, LinkTable};
use crate::metrics::Metrics;
pub use crate::metrics::Outcome;

/// The body type of every response this server writes.
pub type Body = Full<Bytes>;

const NOT_FOUND_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Link not found</title>\
<h1>Link not found</h1><p>This short link does not exist or is no longer active.</p>\n";
pub(crate) const BAD_REQUEST_PAGE: &str = "bad request\n";
/// The methods every path answers, for `Allow`.
pub(crate) const ALLOWED_METHODS: &str = "GET, HEAD";
const METHOD_NOT_ALLOWED_PAGE: &str = "method not allowed: use GET or HEAD\n";

/// Answers requests from the current link table.
pub struct Router {
    table: Arc<ArcSwap<LinkTable>>,
    clicks: ClickQueue,
    metrics: Arc<Metrics>,
}

/// What the router reads of a request: the method, the target and the headers, as hyper or the
/// plain listener's own parser (`h1`) found them.
pub struct Head<'a> {
    /// The method, as sent (methods are case-sensitive).
    pub method: &'a [u8],
    /// The host of an absolute-form target (`GET http://brand.link/x`); it wins over `Host`.
    pub target_host: Option<&'a str>,
    /// The path, still percent-encoded.
    pub path: &'a str,
    /// The query, without its `?`.
    pub query: Option<&'a str>,
    /// The header fields.
    pub headers: Headers<'a>,
    /// When the head was read: the click's time, and the answer's `Date` on the plain listener
    /// (one clock reading for both).
    pub time: SystemTime,
}

/// A request's header fields, in hyper's map or as the list `httparse` returns.
#[derive(Clone, Copy)]
pub enum Headers<'a> {
    /// hyper's parsed map.
    Map(&'a HeaderMap),
    /// Fields in the order sent; names compare case-insensitively.
    List(&'a [httparse::Header<'a>]),
}

impl<'a> Headers<'a> {
    /// Copies the values a click event is built from into a [`HitHeaders`].
    pub fn capture(&self) -> HitHeaders {
        match self {
            Headers::Map(map) => HitHeaders::from_map(map),
            Headers::List(list) => HitHeaders::from_list(list),
        }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&'a [u8]> {
        match self {
            Headers::Map(map) => map.get(name).map(HeaderValue::as_bytes),
            Headers::List(list) => list.iter().find(|h| is(h, name)).map(|h| h.value),
        }
    }

    /// The value of `name` when the request sends that field at most once.
    pub fn only(&self, name: &HeaderName) -> Result<Option<&'a [u8]>, Repeated> {
        match self {
            Headers::Map(map) => {
                let mut all = map.get_all(name).iter();
                let first = all.next().map(HeaderValue::as_bytes);
                if all.next().is_some() { Err(Repeated) } else { Ok(first) }
            }
            Headers::List(list) => {
                let mut found = None;
                for field in list.iter().filter(|h| is(h, name)) {
                    if found.is_some() {
                        return Err(Repeated);
                    }
                    found = Some(field.value);
                }
                Ok(found)
            }
        }
    }

    /// Calls `f` with every value of `name`, in the order sent.
    pub fn each(&self, name: &HeaderName, mut f: impl FnMut(&'a [u8])) {
        match self {
            Headers::Map(map) => map.get_all(name).iter().for_each(|v| f(v.as_bytes())),
            Headers::List(list) => list.iter().filter(|h| is(h, name)).for_each(|h| f(h.value)),
        }
    }
}

/// A field that a request may send once was sent several times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeated;

/// Whether a listed field is `name` (which `http` keeps in lower case).
fn is(field: &httparse::Header<'_>, name: &HeaderName) -> bool {
    field.name.len() == name.as_str().len() && field.name.eq_ignore_ascii_case(name.as_str())
}

/// A response as the router makes it. Every answer of this server has this shape, so the hit
/// path fills no header map: [`Answer::to_response`] makes hyper's `Response`, and `h1` writes
/// the fields directly. It borrows from the link table, so that answering a link touches no
/// reference count: [`Router::answer`] hands it to a closure while the table is held.
#[derive(Debug, Clone)]
pub struct Answer<'a> {
    /// Status code.
    pub status: StatusCode,
    /// `Location`, for redirects.
    pub location: Option<Location<'a>>,
    /// `Cache-Control`.
    pub cache_control: &'a HeaderValue,
    /// `Content-Type`, for answers with a body.
    pub content_type: Option<&'static str>,
    /// `Allow: GET, HEAD` (405).
    pub allow: bool,
    /// The body (empty for redirects).
    pub body: Bytes,
}

/// The `Location` of a redirect: borrowed from the table, or made for this request.
#[derive(Debug, Clone)]
pub enum Location<'a> {
    /// A link's destination or a domain's fallback URL, already a valid field value.
    Table(&'a [u8]),
    /// A destination with the request's query merged in, or an https redirect (shared with the
    /// click's [`Hit`]).
    Built(Arc<str>),
}

impl Location<'_> {
    /// The field value.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Location::Table(b) => b,
            Location::Built(s) => s.as_bytes(),
        }
    }
}

/// `Cache-Control` of answers that must not be cached.
static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

impl Answer<'_> {
    /// The same answer as hyper's response.
    pub fn to_response(&self) -> Response<Body> {
        let mut response = Response::new(Body::new(self.body.clone()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        // Every `Location` was checked to be a valid field value when it was made.
        if let Some(Ok(location)) = self.location.as_ref().map(|l| HeaderValue::from_bytes(l.as_bytes())) {
            headers.insert(header::LOCATION, location);
        }
        headers.insert(header::CACHE_CONTROL, self.cache_control.clone());
        if let Some(content_type) = self.content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        if self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
        }
        response
    }
}

impl Router {
    /// A router over a shared, swappable table.
    pub fn new(table: Arc<ArcSwap<LinkTable>>, clicks: ClickQueue, metrics: Arc<Metrics>) -> Router {
        Router { table, clicks, metrics }
    }

    /// Answers one request that hyper parsed. `peer` is the socket's remote address; `tls` says
    /// whether it came over the TLS listener.
    pub fn handle<B>(&self, req: &Request<B>, peer: IpAddr, tls: bool) -> Response<Body> {
        let head = Head {
            method: req.method().as_str().as_bytes(),
            target_host: req.uri().host(),
            path: req.uri().path(),
            query: req.uri().query(),
            headers: Headers::Map(req.headers()),
            time: SystemTime::now(),
        };
        self.answer(&head, peer, tls, |answer| answer.to_response())
    }

    /// Answers one request head, from hyper or from the plain listener's own parser (`h1`):
    /// `respond` gets the answer while it can still borrow from the table.
    pub fn answer<R>(&self, head: &Head<'_>, peer: IpAddr, tls: bool, respond: impl FnOnce(&Answer<'_>) -> R) -> R {
        let table = self.table.load();
        let (answer, outcome) = self.route(&table, head, peer, tls);
        self.metrics.record_outcome(outcome, answer.status);
        respond(&answer)
    }

    /// The counters this router writes.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn route<'t>(&self, table: &'t LinkTable, req: &Head<'_>, peer: IpAddr, tls: bool) -> (Answer<'t>, Outcome) {
        // The host first: a request with a broken `Host` is a 400 whatever its method.
        let Some(host) = request_host(req) else {
            return (plain(StatusCode::BAD_REQUEST, BAD_REQUEST_PAGE), Outcome::BadRequest);
        };
        let head = match req.method {
            b"GET" => false,
            b"HEAD" => true,
            _ => return (method_not_allowed(), Outcome::MethodNotAllowed),
        };
        let Some(domain) = table.domain_for_host(&host) else {
            return (not_found(), Outcome::NotFound);
        };
        let path = req.path;
        if domain.https_only && !tls {
            // The domain's own name, never the request's: an unknown host served as the default
            // domain must not be sent back to itself (`Host: evil.example`).
            return (https_redirect(&domain.name, path, req.query), Outcome::HttpsRedirect);
        }
        if path == "/robots.txt" {
            return (robots(domain), Outcome::Robots);
        }
        let raw = path.strip_prefix('/').unwrap_or(path);
        if raw.is_empty() {
            return fallback(domain.root.as_ref());
        }
        let Some(slashtag) = decode_slashtag(raw) else {
            return (plain(StatusCode::BAD_REQUEST, BAD_REQUEST_PAGE), Outcome::BadRequest);
        };
        let Some(link) = domain.lookup(&slashtag) else {
            return fallback(domain.not_found.as_ref());
        };
        let merged = match req.query {
            Some(q) if domain.forward_query && !q.is_empty() => merged_location(link, q),
            _ => None,
        };
        let location = match &merged {
            Some(m) => Location::Built(Arc::clone(m)),
            None => Location::Table(link.destination().as_bytes()),
        };
        let response = redirect(link.status, location, domain.cache_control(link.status));
        domain.counters.redirect(link.status);
        if is_prefetch(&req.headers) {
            return (response, Outcome::Prefetch);
        }
        self.clicks.offer(Hit {
            time: req.time,
            link: link.clone(),
            merged_location: merged,
            peer,
            head,
            headers: req.headers.capture(),
        });
        (response, Outcome::Click)
    }
}

/// The host a request is routed by, lower case, without port, brackets or trailing dot: from an
/// absolute-form target (RFC 9112 §3.2.2: it wins over `Host`), else from `Host`. `None`, a 400,
/// when `Host` is sent more than once or is not an authority (RFC 9112 §3.2, checked even when
/// the target names the host, as nginx does), or when neither names a host.
fn request_host<'a>(req: &Head<'a>) -> Option<Cow<'a, str>> {
    let field = match req.headers.only(&header::HOST).ok()? {
        Some(value) => Some(authority_host(value)?),
        None => None,
    };
    let host = match req.target_host {
        Some(target) => authority_host(target.as_bytes())?,
        None => field?,
    };
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

/// The host of an authority, `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): a
/// reg-name (IPv4 addresses included) or an `[IPv6]` literal, then an optional port of digits.
/// Returned without port and brackets, and a name without one trailing dot (`brand.link.` is the
/// fully qualified `brand.link`, as nginx reads it). `None` for any other text, an empty host,
/// or an empty label (`a..b`, refused by nginx too).
fn authority_host(raw: &[u8]) -> Option<&str> {
    let raw = raw.trim_ascii();
    let (host, port) = match raw.strip_prefix(b"[") {
        Some(literal) => {
            let close = literal.iter().position(|&b| b == b']')?;
            let address = &literal[..close];
            std::str::from_utf8(address).ok()?.parse::<std::net::Ipv6Addr>().ok()?;
            (address, &literal[close + 1..])
        }
        None => {
            let end = raw.iter().position(|&b| b == b':').unwrap_or(raw.len());
            let name = &raw[..end];
            if !is_reg_name(name) {
                return None;
            }
            (name.strip_suffix(b".").unwrap_or(name), &raw[end..])
        }
    };
    match port {
        [] => {}
        [b':', digits @ ..] if digits.iter().all(u8::is_ascii_digit) => {}
        _ => return None,
    }
    if host.is_empty() {
        return None;
    }
    std::str::from_utf8(host).ok()
}

/// RFC 3986 §3.2.2 `reg-name`: unreserved characters, sub-delims and `%XX` escapes, with no empty
/// label inside (`a..b`).
fn is_reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'%' => {
                let hex = |at: usize| name.get(at).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 2;
            }
            b'.' if name.get(i + 1) == Some(&b'.') => return false,
            b if b.is_ascii_alphanumeric() => {}
            b'-' | b'.' | b'_' | b'~' => {}
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// Percent-decodes a slashtag; `None` when the result is not UTF-8.
fn decode_slashtag(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('%') {
        return Some(Cow::Borrowed(raw));
    }
    percent_encoding::percent_decode_str(raw).decode_utf8().ok()
}

/// `Sec-Purpose: prefetch` (Fetch spec) and the older `Purpose: prefetch` / `X-Moz: prefetch`.
fn is_prefetch(headers: &Headers<'_>) -> bool {
    const PURPOSE: HeaderName = HeaderName::from_static("purpose");
    const SEC_PURPOSE: HeaderName = HeaderName::from_static("sec-purpose");
    const X_MOZ: HeaderName = HeaderName::from_static("x-moz");
    [SEC_PURPOSE, PURPOSE, X_MOZ].iter().any(|name| {
        headers.get(name).is_some_and(|v| {
            v.split(|&b| b == b';' || b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"prefetch"))
        })
    })
}

/// The link's destination with `query` merged in; `None` (the plain destination is sent) in the
/// case that cannot happen of a result that is not a valid field value: the destination is one,
/// and the query came from a request line that was visible ASCII.
fn merged_location(link: &Link, query: &str) -> Option<Arc<str>> {
    let merged = merge_query(link.destination(), query);
    crate::links::is_field_value(&merged).then(|| Arc::from(merged))
}

/// Merges a request's query into a destination URL: the destination's parameters keep their
/// order, a name the request also carries takes the request's value(s) in its place, and names
/// only the request has are appended in request order. Names compare after percent-decoding;
/// every parameter keeps the spelling it arrived with. A fragment stays at the end.
pub fn merge_query(destination: &str, request_query: &str) -> String {
    let (before_fragment, fragment) = match destination.find('#') {
        Some(i) => destination.split_at(i),
        None => (destination, ""),
    };
    let (base, dest_query) = match before_fragment.find('?') {
        Some(i) => (&before_fragment[..i], &before_fragment[i + 1..]),
        None => (before_fragment, ""),
    };
    let request: Vec<(Cow<'_, str>, &str)> = pairs(request_query).collect();
    let mut out = String::with_capacity(destination.len() + request_query.len() + 1);
    out.push_str(base);
    let mut used = vec![false; request.len()];
    let mut first = true;
    let mut push = |out: &mut String, pair: &str| {
        out.push(if first { '?' } else { '&' });
        first = false;
        out.push_str(pair);
    };
    for (name, pair) in pairs(dest_query) {
        let mut replaced = false;
        for (i, (rname, rpair)) in request.iter().enumerate() {
            if *rname == name {
                replaced = true;
                if !used[i] {
                    used[i] = true;
                    push(&mut out, rpair);
                }
            }
        }
        if !replaced {
            push(&mut out, pair);
        }
    }
    for (i, (_, rpair)) in request.iter().enumerate() {
        if !used[i] {
            push(&mut out, rpair);
        }
    }
    out.push_str(fragment);
    out
}

/// `name=value` pairs of a query with their decoded names; empty pieces skipped.
fn pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, &str)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let raw_name = pair.split('=').next().unwrap_or(pair);
        let name = if raw_name.contains(['%', '+']) {
            let spaced = raw_name.replace('+', " ");
            Cow::Owned(
                percent_encoding::percent_decode_str(&spaced)
                    .decode_utf8_lossy()
                    .into_owned(),
            )
        } else {
            Cow::Borrowed(raw_name)
        };
        (name, pair)
    })
}

fn redirect<'a>(status: StatusCode, location: Location<'a>, cache_control: &'a HeaderValue) -> Answer<'a> {
    Answer {
        status,
        location: Some(location),
        cache_control,
        content_type: None,
        allow: false,
        body: Bytes::new(),
    }
}

/// 308 to the same URL on https (RFC 9110 §15.4.9: the method and body are kept).
fn https_redirect(host: &str, path: &str, query: Option<&str>) -> Answer<'static> {
    let path = if path.is_empty() { "/" } else { path };
    let location = match query {
        Some(q) => format!("https://{host}{path}?{q}"),
        None => format!("https://{host}{path}"),
    };
    if crate::links::is_field_value(&location) {
        redirect(
            StatusCode::PERMANENT_REDIRECT,
            Location::Built(location.into()),
            &NO_STORE,
        )
    } else {
        plain(StatusCode::BAD_REQUEST, BAD_REQUEST_PAGE)
    }
}

fn fallback(target: Option<&HeaderValue>) -> (Answer<'_>, Outcome) {
    match target {
        Some(location) => (
            redirect(StatusCode::FOUND, Location::Table(location.as_bytes()), &NO_STORE),
            Outcome::FallbackRedirect,
        ),
        None => (not_found(), Outcome::NotFound),
    }
}

/// A short text answer that is not cached.
pub(crate) fn plain(status: StatusCode, body: &'static str) -> Answer<'static> {
    Answer {
        status,
        location: None,
        cache_control: &NO_STORE,
        content_type: Some("text/plain; charset=utf-8"),
        allow: false,
        body: Bytes::from_static(body.as_bytes()),
    }
}

fn not_found() -> Answer<'static> {
    Answer {
        content_type: Some("text/html; charset=utf-8"),
        body: Bytes::from_static(NOT_FOUND_PAGE.as_bytes()),
        ..plain(StatusCode::NOT_FOUND, "")
    }
}

fn method_not_allowed() -> Answer<'static> {
    Answer {
        allow: true,
        ..plain(StatusCode::METHOD_NOT_ALLOWED, METHOD_NOT_ALLOWED_PAGE)
    }
}

fn robots(domain: &Domain) -> Answer<'static> {
    static ROBOTS_CACHE_CONTROL: HeaderValue = HeaderValue::from_static("public, max-age=3600");
    Answer {
        cache_control: &ROBOTS_CACHE_CONTROL,
        body: domain.robots_txt.clone(),
        ..plain(StatusCode::OK, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_merge_rules() {
        let cases = [
            // (destination, request query, expected)
            ("https://d.test/p", "a=1", "https://d.test/p?a=1"),
            ("https://d.test/p?x=1&y=2", "y=9&z=3", "https://d.test/p?x=1&y=9&z=3"),
            ("https://d.test/p?x=1&y=2", "x=7&x=8", "https://d.test/p?x=7&x=8&y=2"),
            ("https://d.test/p?x=1&x=2&y=2", "x=7", "https://d.test/p?x=7&y=2"),
            (
                "https://d.test/p?utm_source=a#frag",
                "utm_source=b&q",
                "https://d.test/p?utm_source=b&q#frag",
            ),
            ("https://d.test/p?a%20b=1", "a+b=2", "https://d.test/p?a+b=2"),
            ("https://d.test/p?", "a=1", "https://d.test/p?a=1"),
            ("https://d.test/p?a=1", "&&", "https://d.test/p?a=1"),
            ("https://d.test/p?flag", "flag=on", "https://d.test/p?flag=on"),
        ];
        for (dest, q, want) in cases {
            assert_eq!(merge_query(dest, q), want, "{dest} + {q}");
        }
    }

    #[test]
    fn authorities_parse_as_rfc_3986_has_them() {
        for (raw, want) in [
            ("brand.link", Some("brand.link")),
            ("brand.link:8080", Some("brand.link")),
            ("brand.link:", Some("brand.link")),
            ("brand.link.", Some("brand.link")),
            ("brand.link.:443", Some("brand.link")),
            (" brand.link\t", Some("brand.link")),
            ("[::1]:8080", Some("::1")),
            ("[::1]", Some("::1")),
            ("[2001:DB8::a]", Some("2001:DB8::a")),
            ("127.0.0.1:80", Some("127.0.0.1")),
            ("xn--caf-dma.test", Some("xn--caf-dma.test")),
            ("a%2Db.test", Some("a%2Db.test")),
            ("!$&'()*+,;=-._~", Some("!$&'()*+,;=-._~")),
            ("host:notaport", None),
            ("brand.link:80:80", None),
            ("brand.link/x", None),
            ("a@b", None),
            ("[brand.link]garbage", None),
            ("[brand.link]", None),
            ("[::1]garbage", None),
            ("[::1]:x", None),
            ("[::1", None),
            ("[]", None),
            ("::1", None),
            ("a..b", None),
            ("brand.link..", None),
            (".", None),
            ("", None),
            (":80", None),
            ("a b", None),
            ("a%zz", None),
            ("a%2", None),
            ("a\\b", None),
            ("café.test", None),
        ] {
            assert_eq!(authority_host(raw.as_bytes()), want, "{raw:?}");
        }
    }

    #[test]
    fn one_host_field_at_most() {
        let field = |name, value| httparse::Header { name, value };
        let one = [field("Host", &b"a"[..]), field("Accept", b"*/*")];
        assert_eq!(Headers::List(&one).only(&header::HOST), Ok(Some(&b"a"[..])));
        assert_eq!(Headers::List(&one[1..]).only(&header::HOST), Ok(None));
        let two = [field("Host", &b"a"[..]), field("Accept", b"*/*"), field("HOST", b"a")];
        assert_eq!(Headers::List(&two).only(&header::HOST), Err(Repeated));
        let mut map = HeaderMap::new();
        map.append(header::HOST, HeaderValue::from_static("a"));
        assert_eq!(Headers::Map(&map).only(&header::HOST), Ok(Some(&b"a"[..])));
        map.append(header::HOST, HeaderValue::from_static("b"));
        assert_eq!(Headers::Map(&map).only(&header::HOST), Err(Repeated));
    }

    #[test]
    fn slashtags_decode_or_refuse() {
        assert_eq!(decode_slashtag("plain").as_deref(), Some("plain"));
        assert_eq!(decode_slashtag("caf%C3%A9").as_deref(), Some("café"));
        assert_eq!(decode_slashtag("100%25").as_deref(), Some("100%"));
        assert_eq!(decode_slashtag("bad%zz").as_deref(), Some("bad%zz"));
        assert_eq!(decode_slashtag("%FF%FE"), None);
    }

    #[test]
    fn prefetch_headers() {
        let mut h = HeaderMap::new();
        assert!(!is_prefetch(&Headers::Map(&h)));
        h.insert("sec-purpose", HeaderValue::from_static("prefetch;prerender"));
        assert!(is_prefetch(&Headers::Map(&h)));
        let mut h = HeaderMap::new();
        h.insert("purpose", HeaderValue::from_static("Prefetch"));
        assert!(is_prefetch(&Headers::Map(&h)));
        let mut h = HeaderMap::new();
        h.insert("sec-purpose", HeaderValue::from_static("prerender"));
        assert!(!is_prefetch(&Headers::Map(&h)));
        let list = [
            httparse::Header {
                name: "Host",
                value: b"brand.link",
            },
            httparse::Header {
                name: "SEC-PURPOSE",
                value: b"prefetch",
            },
        ];
        assert!(is_prefetch(&Headers::List(&list)));
        assert!(!is_prefetch(&Headers::List(&list[..1])));
    }
}
