//! HTTP/1.1 on the plain listener, parsed with `httparse` and answered without hyper.
//!
//! Why not hyper here: a redirect is a request head in and about 150 bytes out, and under load
//! hyper's general machinery (a header map filled for every request, a `Uri`, a response map
//! encoded field by field, the dispatcher's state machine) cost about a tenth of the server's
//! CPU per request, as much as the rest of the hit path. hyper still serves the TLS listener
//! (HTTP/2 and HTTP/1.1) and the admin listener. `httparse` is hyper's own parser, so requests
//! are read by the same rules.
//!
//! One connection at a time, in order:
//! - Every complete head in the read buffer is answered before the next read (pipelining), and
//!   the answers go out in one write. Once the answers waiting reach `OUT_LIMIT`, they are
//!   written before the next head is parsed, waiting for the socket when it is full: a client
//!   that sends many heads and never reads holds that much of this process, not an answer for
//!   every head it sent.
//! - Keep-alive as HTTP/1.1 says: on unless the request says `Connection: close`; an HTTP/1.0
//!   request keeps the connection only with `Connection: keep-alive`.
//! - A body announced by `Content-Length` is read and discarded (requests are answered from the
//!   head alone); a chunked body, or one the client waits to send (`Expect: 100-continue`), is
//!   not read: the answer says `Connection: close` and the connection closes.
//! - A head that does not parse gets 400, one over `max_header_bytes` or with more than 100
//!   fields 431, conflicting `Content-Length`s 400; each closes the connection. So does every
//!   other 400 (a missing, repeated or malformed `Host`, a target that does not parse), as in
//!   nginx: what follows a request that broke the rules is not trusted to be framed as we read it.
//! - Closing writes the last answer, shuts the sending side, then reads and drops what the client
//!   still sends for a moment (nginx's lingering close), so the answer is not lost to a reset.
//! - At shutdown an idle connection closes at once; a request being read is answered first.
//!
//! Timeouts are the caller's (`listener`): this loop stamps the connection's [`Activity`].

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::acme::{acme_answer, acme_path};
use super::listener::Activity;
use super::redirect::{ALLOWED_METHODS, Answer, BAD_REQUEST_PAGE, Head, Headers, Router, plain};
use crate::shutdown::until_true;

/// Most header fields in one request head (hyper's limit as well).
const MAX_HEADERS: usize = 100;
/// The read buffer a connection starts with; it grows up to `max_header_bytes` for a large head.
const INITIAL_BUFFER: usize = 4096;
/// How long a closing connection keeps reading (and dropping) what the client still sends.
const LINGER: Duration = Duration::from_secs(1);
/// How much a closing connection reads and drops at most.
const LINGER_BYTES: usize = 256 * 1024;
/// Answers waiting to be written past which no further pipelined head is parsed until they are
/// sent. A head of 26 bytes can ask for an answer of a few KB (a long `root_url`), so without
/// a bound one 4 KB read could queue hundreds of KB for a client that never reads; this is a few
/// dozen typical answers, so pipelining still writes many at once.
const OUT_LIMIT: usize = 8 * 1024;

/// How one connection is served.
pub(crate) struct Conn<'a> {
    /// Answers the requests.
    pub router: &'a Router,
    /// The client's address (IPv4-mapped addresses as IPv4).
    pub peer: IpAddr,
    /// Largest request head.
    pub max_head: usize,
    /// `[server] acme_challenge_dir`.
    pub acme_dir: Option<&'a Path>,
    /// Stamped on every read, write and complete head.
    pub activity: &'a Activity,
}

/// What a request head asks of the connection after its answer.
struct Framing {
    /// Keep the connection open for another request.
    keep_alive: bool,
    /// Body bytes that follow the head and are to be dropped.
    body: u64,
}

impl Conn<'_> {
    /// Serves the connection until the client closes it, an answer closes it, an I/O error, or
    /// `shutdown` turns true while no request is pending. `Err` says why it ended early.
    pub async fn serve(&self, mut stream: TcpStream, shutdown: &watch::Receiver<bool>) -> Result<(), String> {
        let mut buf = vec![0u8; INITIAL_BUFFER.min(self.max_head.max(1))];
        let (mut start, mut end) = (0usize, 0usize);
        let mut out: Vec<u8> = Vec::with_capacity(1024);
        // Body bytes still to drop before the next head.
        let mut skip: u64 = 0;
        // When the last read completed (the clock read once per read, not per use).
        let mut read_time = SystemTime::now();
        // One wait for the shutdown flag for the whole connection, polled between requests:
        // a fresh wait per read would register and unregister a waiter every request.
        let mut flag = shutdown.clone();
        let stop = until_true(&mut flag);
        tokio::pin!(stop);
        loop {
            drop_body(&mut start, end, &mut skip);
            // Answer the complete heads already read, until the answers reach OUT_LIMIT.
            let mut full = false;
            while skip == 0 && start < end {
                if out.len() >= OUT_LIMIT {
                    full = true;
                    break;
                }
                // Left uninitialized: httparse writes the fields it finds (3 KiB not cleared per request).
                let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
                let mut req = httparse::Request::new(&mut []);
                let len = match req.parse_with_uninit_headers(&buf[start..end], &mut fields) {
                    Ok(httparse::Status::Complete(len)) => len,
                    Ok(httparse::Status::Partial) => break,
                    Err(e) => {
                        let status = match e {
                            httparse::Error::TooManyHeaders => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                            _ => StatusCode::BAD_REQUEST,
                        };
                        write_error(&mut out, status);
                        return self.close(stream, &out, &format!("unreadable request head: {e}")).await;
                    }
                };
                let shutting_down = *shutdown.borrow();
                let Some(framing) = framing(&req) else {
                    write_error(&mut out, StatusCode::BAD_REQUEST);
                    return self.close(stream, &out, "conflicting Content-Length").await;
                };
                let keep_alive = framing.keep_alive && !shutting_down;
                let form = Form {
                    head_only: req.method == Some("HEAD"),
                    keep_alive,
                    http10: req.version == Some(0),
                };
                if !self.respond(&req, &mut out, form, read_time).await {
                    return self.close(stream, &out, "").await;
                }
                start += len;
                skip = framing.body;
                drop_body(&mut start, end, &mut skip);
            }
            if !out.is_empty() {
                // The answers usually fit the socket's buffer at once: the read's stamp is then
                // recent enough for the idle timer, and the clock is not read again.
                let sent = match stream.try_write(&out) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                    Err(e) => return Err(format!("write: {e}")),
                };
                if sent < out.len() {
                    stream
                        .write_all(&out[sent..])
                        .await
                        .map_err(|e| format!("write: {e}"))?;
                    self.activity.touch();
                }
                out.clear();
            }
            if full {
                // The answers are sent: on to the heads still waiting in the buffer.
                continue;
            }
            // Make room: what is left is the start of the next head.
            if start == end {
                (start, end) = (0, 0);
            } else if start > 0 {
                buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            }
            if end == buf.len() {
                if buf.len() >= self.max_head {
                    write_error(&mut out, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
                    return self.close(stream, &out, "request head over max_header_bytes").await;
                }
                buf.resize((buf.len() * 2).min(self.max_head), 0);
            }
            let idle = end == 0 && skip == 0;
            // The read first: when a request is already waiting, the shutdown wait is not
            // polled (each poll of it takes its waiter list's lock); a request read during
            // shutdown is answered with `Connection: close`.
            let n = tokio::select! {
                biased;
                r = stream.read(&mut buf[end..]) => r.map_err(|e| format!("read: {e}"))?,
                _ = &mut stop, if idle => return Ok(()),
            };
            if n == 0 {
                return Ok(());
            }
            self.activity.touch_read();
            read_time = SystemTime::now();
            end += n;
        }
    }

    /// Appends the answer to one parsed head, read at `time`, to `out`; stamps the head on the
    /// connection's clock and observes the request's latency. Returns whether the connection
    /// stays open: as `form` says, unless the answer is a 400.
    async fn respond(&self, req: &httparse::Request<'_, '_>, out: &mut Vec<u8>, form: Form, time: SystemTime) -> bool {
        let answered = self.answer(req, out, form, time).await;
        let latency = self.activity.head_done();
        if answered.routed {
            self.router.metrics().request_latency.observe(latency);
        }
        answered.keep_alive
    }

    /// Appends the answer to one parsed head to `out`.
    async fn answer(
        &self,
        req: &httparse::Request<'_, '_>,
        out: &mut Vec<u8>,
        form: Form,
        time: SystemTime,
    ) -> Answered {
        let target = req.path.unwrap_or("");
        // `http::Uri` (what hyper checks with) takes visible ASCII only.
        if !target.is_ascii() {
            let answer = plain(StatusCode::BAD_REQUEST, BAD_REQUEST_PAGE);
            return Answered::unrouted(write_closing_on_400(out, &answer, form, time));
        }
        let parsed: http::Uri;
        let (target_host, path, query) = if target.starts_with('/') {
            match target.bytes().position(|b| b == b'?' || b == b'#') {
                None => (None, target, None),
                Some(at) if target.as_bytes()[at] == b'#' => (None, &target[..at], None),
                Some(at) => {
                    let rest = &target[at + 1..];
                    (None, &target[..at], Some(rest.split('#').next().unwrap_or(rest)))
                }
            }
        } else {
            // Absolute form (`http://brand.link/x`), `*` or an authority: rare, so parsed in full.
            match target.parse::<http::Uri>() {
                Ok(uri) => {
                    parsed = uri;
                    (parsed.host(), parsed.path(), parsed.query())
                }
                Err(_) => {
                    let answer = plain(StatusCode::BAD_REQUEST, BAD_REQUEST_PAGE);
                    return Answered::unrouted(write_closing_on_400(out, &answer, form, time));
                }
            }
        };
        if let Some(file) = self.acme_dir.and_then(|dir| acme_path(dir, path)) {
            let answer = acme_answer(&file, self.router).await;
            return Answered::routed(write_closing_on_400(out, &answer, form, time));
        }
        let head = Head {
            method: req.method.unwrap_or("").as_bytes(),
            target_host,
            path,
            query,
            headers: Headers::List(req.headers),
            time,
        };
        let keep_alive = self.router.answer(&head, self.peer, false, |answer| {
            write_closing_on_400(out, answer, form, time)
        });
        Answered::routed(keep_alive)
    }

    /// Sends `out` (the last answers), ends the sending side, and drops what the client still
    /// sends for up to [`LINGER`], so that the answer is not lost to a reset.
    async fn close(&self, mut stream: TcpStream, out: &[u8], why: &str) -> Result<(), String> {
        if !out.is_empty() {
            stream.write_all(out).await.map_err(|e| format!("write: {e}"))?;
            self.activity.touch();
        }
        let _ = stream.shutdown().await; // the peer may be gone already
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(LINGER, async {
            let mut dropped = 0;
            while dropped < LINGER_BYTES {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => dropped += n,
                }
            }
        })
        .await;
        if why.is_empty() { Ok(()) } else { Err(why.to_string()) }
    }
}

/// What became of one request head.
struct Answered {
    /// The router or the ACME folder answered it (not a malformed target): its latency counts.
    routed: bool,
    /// The connection stays open after the answer.
    keep_alive: bool,
}

impl Answered {
    fn routed(keep_alive: bool) -> Answered {
        Answered {
            routed: true,
            keep_alive,
        }
    }

    fn unrouted(keep_alive: bool) -> Answered {
        Answered {
            routed: false,
            keep_alive,
        }
    }
}

/// Appends `answer` in `form`, except that a 400 closes the connection; returns whether the
/// connection stays open.
fn write_closing_on_400(out: &mut Vec<u8>, answer: &Answer<'_>, form: Form, time: SystemTime) -> bool {
    let form = if answer.status == StatusCode::BAD_REQUEST {
        Form {
            keep_alive: false,
            ..form
        }
    } else {
        form
    };
    write_answer(out, answer, form, time);
    form.keep_alive
}

/// Drops what of the `skip` body bytes still owed is in `start..end` (before the next head, or
/// before compacting the buffer, which would otherwise move body bytes along).
fn drop_body(start: &mut usize, end: usize, skip: &mut u64) {
    let n = (end - *start).min(usize::try_from(*skip).unwrap_or(usize::MAX));
    *start += n;
    *skip -= n as u64;
}

/// Keep-alive and body length of a request; `None` for conflicting or unreadable
/// `Content-Length` fields (RFC 9112 §6.3: an error the connection cannot recover from).
fn framing(req: &httparse::Request<'_, '_>) -> Option<Framing> {
    let http10 = req.version == Some(0);
    let (mut close, mut keep) = (false, false);
    let mut length: Option<u64> = None;
    let (mut chunked, mut expect) = (false, false);
    for field in req.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("connection") {
            for token in field.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            for value in field.value.split(|&b| b == b',') {
                let value = value.trim_ascii();
                if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                let n: u64 = std::str::from_utf8(value).ok()?.parse().ok()?;
                if length.is_some_and(|l| l != n) {
                    return None;
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("expect") {
            expect = true;
        }
    }
    let body = if chunked { 0 } else { length.unwrap_or(0) };
    let unread_body = chunked || (expect && body > 0);
    Some(Framing {
        keep_alive: !close && (!http10 || keep) && !unread_body,
        body,
    })
}

/// How an answer is written, from its request.
#[derive(Debug, Clone, Copy)]
pub struct Form {
    /// A `HEAD` request: no body.
    pub head_only: bool,
    /// The connection stays open; else `Connection: close`.
    pub keep_alive: bool,
    /// An HTTP/1.0 request: a kept connection says `Connection: keep-alive`.
    pub http10: bool,
}

impl Form {
    /// An answer with a body that closes the connection.
    pub const CLOSE: Form = Form {
        head_only: false,
        keep_alive: false,
        http10: false,
    };
    /// An answer with a body on a kept HTTP/1.1 connection.
    pub const KEEP: Form = Form {
        keep_alive: true,
        ..Form::CLOSE
    };
}

/// Appends `answer` as an HTTP/1.1 response in the `form` its request asks for, dated `date`.
pub fn write_answer(out: &mut Vec<u8>, answer: &Answer<'_>, form: Form, date: SystemTime) {
    let Form {
        head_only,
        keep_alive,
        http10,
    } = form;
    let status = answer.status;
    // Pieces rather than `write!`: the formatting machinery costs more than the copies.
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(location) = &answer.location {
        field(out, b"location", location.as_bytes());
    }
    field(out, b"cache-control", answer.cache_control.as_bytes());
    if let Some(content_type) = answer.content_type {
        field(out, b"content-type", content_type.as_bytes());
    }
    if answer.allow {
        field(out, b"allow", ALLOWED_METHODS.as_bytes());
    }
    field(
        out,
        b"content-length",
        itoa::Buffer::new().format(answer.body.len()).as_bytes(),
    );
    DATE.with(|cache| field(out, b"date", cache.borrow_mut().at(date)));
    if !keep_alive {
        field(out, b"connection", b"close");
    } else if http10 {
        field(out, b"connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(&answer.body);
    }
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The answer to a head that cannot be served, which closes the connection.
fn write_error(out: &mut Vec<u8>, status: StatusCode) {
    let body = if status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE {
        "request header fields too large\n"
    } else {
        BAD_REQUEST_PAGE
    };
    write_answer(out, &plain(status, body), Form::CLOSE, SystemTime::now());
}

thread_local! {
    /// The `Date` field, formatted once per second per thread.
    static DATE: RefCell<Date> = const { RefCell::new(Date { second: u64::MAX, text: Vec::new() }) };
}

struct Date {
    second: u64,
    text: Vec<u8>,
}

impl Date {
    fn at(&mut self, now: SystemTime) -> &[u8] {
        let second = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second {
            self.second = second;
            self.text = httpdate::fmt_http_date(now).into_bytes();
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing_of(head: &[u8]) -> Option<Framing> {
        let mut fields = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut fields);
        assert!(req.parse(head).unwrap().is_complete());
        framing(&req)
    }

    #[test]
    fn keep_alive_and_bodies() {
        let f = framing_of(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert!(f.keep_alive && f.body == 0);
        let f = framing_of(b"GET / HTTP/1.1\r\nConnection: Keep-Alive, CLOSE\r\n\r\n").unwrap();
        assert!(!f.keep_alive);
        let f = framing_of(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!f.keep_alive);
        let f = framing_of(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        assert!(f.keep_alive);
        let f = framing_of(b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert!(f.keep_alive && f.body == 12);
        let f = framing_of(b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(f.body, 5);
        let f = framing_of(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert!(!f.keep_alive);
        let f = framing_of(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n").unwrap();
        assert!(!f.keep_alive);
        for bad in [
            &b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        ] {
            assert!(framing_of(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn answers_are_written_like_hyper_writes_them() {
        let answer = Answer {
            status: StatusCode::MOVED_PERMANENTLY,
            location: Some(crate::edge::redirect::Location::Table(b"https://d.test/")),
            cache_control: &http::HeaderValue::from_static("max-age=90"),
            content_type: None,
            allow: false,
            body: bytes::Bytes::new(),
        };
        let mut out = Vec::new();
        write_answer(&mut out, &answer, Form::KEEP, SystemTime::now());
        let text = String::from_utf8(out).unwrap();
        let date = text.lines().find_map(|l| l.strip_prefix("date: ")).unwrap();
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
        assert_eq!(
            text.replace(date, "D"),
            "HTTP/1.1 301 Moved Permanently\r\nlocation: https://d.test/\r\ncache-control: max-age=90\r\n\
             content-length: 0\r\ndate: D\r\n\r\n"
        );
        let mut out = Vec::new();
        let form = Form {
            head_only: true,
            ..Form::CLOSE
        };
        write_answer(
            &mut out,
            &plain(StatusCode::NOT_FOUND, "gone\n"),
            form,
            SystemTime::now(),
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("content-length: 5\r\n"), "{text}");
        assert!(text.ends_with("connection: close\r\n\r\n"), "HEAD has no body: {text}");
    }
}
