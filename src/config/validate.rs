//! Validation of `[server]`, `[tls]` and `[[domain]]`: raw values in, typed settings out, every
//! problem pushed to the error list with its key. Nothing here builds a runtime object: the
//! owners of listeners, certificates and enrichment build theirs from the validated data.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use http::StatusCode;

use super::raw::{ByteSize, RawDomain, RawServer, RawSession, RawSpool, RawTls, parse_duration};
use super::*;

/// A duration key: `default` when unset; an error naming `key` and `range` when it does not
/// parse or is outside `range` (then `default`, so that validation goes on).
pub(super) fn duration(
    value: Option<&str>,
    default: Duration,
    range: &RangeInclusive<Duration>,
    key: &str,
    errors: &mut Vec<String>,
) -> Duration {
    let Some(text) = value else { return default };
    match parse_duration(text) {
        Ok(d) if range.contains(&d) => d,
        Ok(_) => {
            errors.push(format!(
                "{key}: '{text}' is out of range: write a duration from {} to {}",
                show_duration(*range.start()),
                show_duration(*range.end())
            ));
            default
        }
        Err(e) => {
            errors.push(format!("{key}: {e}"));
            default
        }
    }
}

/// A duration as the config file writes it (`100ms`, `1h`, `1day`).
pub(super) fn show_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A count key (connections, events, entries): `default` when unset; an error naming `key`
/// and `range` when it is outside `range`.
pub(super) fn count(
    value: Option<usize>,
    default: usize,
    range: &RangeInclusive<usize>,
    key: &str,
    errors: &mut Vec<String>,
) -> usize {
    match value {
        None => default,
        Some(n) if range.contains(&n) => n,
        Some(n) => {
            errors.push(format!(
                "{key}: {n} is out of range: write a number from {} to {}",
                range.start(),
                range.end()
            ));
            default
        }
    }
}

/// A size key: `default` when unset; an error naming `key` and `range` when it is outside
/// `range`.
pub(super) fn size(
    value: Option<ByteSize>,
    default: u64,
    range: &RangeInclusive<u64>,
    key: &str,
    errors: &mut Vec<String>,
) -> u64 {
    match value {
        None => default,
        Some(ByteSize(n)) if range.contains(&n) => n,
        Some(ByteSize(n)) => {
            errors.push(format!(
                "{key}: {n} bytes is out of range: write a size from {} to {}",
                show_size(*range.start()),
                show_size(*range.end())
            ));
            default
        }
    }
}

/// A size as the config file may write it: in the largest binary unit that divides it.
pub(super) fn show_size(n: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if n != 0 && n.trailing_zeros() >= shift {
            return format!("{}{unit}", n >> shift);
        }
    }
    format!("{n}B")
}

pub(super) fn socket_addr(value: Option<String>, default: &str, key: &str, errors: &mut Vec<String>) -> SocketAddr {
    let text = value.unwrap_or_else(|| default.to_string());
    text.parse().unwrap_or_else(|_| {
        errors.push(format!(
            "{key}: '{text}' is not an address (write it like \"127.0.0.1:8080\" or \"[::]:80\")"
        ));
        default.parse().expect("default address")
    })
}

/// Resolves `"env:NAME"` to the variable's value.
pub(super) fn secret(value: &str, key: &str, errors: &mut Vec<String>) -> Secret {
    match value.strip_prefix("env:") {
        Some(var) => match std::env::var(var) {
            Ok(v) => Secret(v),
            Err(_) => {
                errors.push(format!("{key}: environment variable {var} is not set"));
                Secret::default()
            }
        },
        None => Secret(value.to_string()),
    }
}

pub(super) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_string())
}

pub(super) fn validate_server(raw: RawServer, errors: &mut Vec<String>) -> ServerConfig {
    let trusted_proxies = networks(&raw.trusted_proxies, "[server] trusted_proxies", errors);
    let node_id = raw.node_id.unwrap_or_else(host_name);
    if node_id.is_empty() || !node_id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        errors.push(format!(
            "[server] node_id: '{node_id}' may hold only letters, digits, '-', '_' and '.' (it is part of S3 keys)"
        ));
    }
    let reload_max_drop_ratio = raw.reload_max_drop.unwrap_or(DEFAULT_RELOAD_MAX_DROP_RATIO);
    if !RELOAD_MAX_DROP_RATIO_RANGE.contains(&reload_max_drop_ratio) {
        errors.push(format!(
            "[server] reload_max_drop: {reload_max_drop_ratio} is out of range: write a share from {:.1} to {:.1}",
            RELOAD_MAX_DROP_RATIO_RANGE.start(),
            RELOAD_MAX_DROP_RATIO_RANGE.end()
        ));
    }
    let default_domain = match raw.default_domain {
        None => Some(DEFAULT_DEFAULT_DOMAIN.to_string()),
        Some(d) if d.trim().is_empty() => None,
        Some(d) => Some(d.trim().to_ascii_lowercase()),
    };
    let cache_permanent = raw
        .cache_control_permanent
        .unwrap_or_else(|| DEFAULT_CACHE_CONTROL_PERMANENT.to_string());
    let cache_temporary = raw
        .cache_control_temporary
        .unwrap_or_else(|| DEFAULT_CACHE_CONTROL_TEMPORARY.to_string());
    for (key, v) in [
        ("cache_control_permanent", &cache_permanent),
        ("cache_control_temporary", &cache_temporary),
    ] {
        if http::HeaderValue::from_str(v).is_err() {
            errors.push(format!("[server] {key}: '{v}' is not a valid header value"));
        }
    }
    ServerConfig {
        listen: socket_addr(raw.listen, DEFAULT_LISTEN, "[server] listen", errors),
        admin_listen: socket_addr(raw.admin_listen, DEFAULT_ADMIN_LISTEN, "[server] admin_listen", errors),
        links: raw.links.unwrap_or_else(|| PathBuf::from(DEFAULT_LINKS)),
        default_domain,
        node_id,
        spool_dir: raw.spool_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_SPOOL_DIR)),
        trusted_proxies,
        geoip: raw.geoip.filter(|p| !p.as_os_str().is_empty()),
        bots: raw.bots.filter(|p| !p.as_os_str().is_empty()),
        referrers: raw.referrers.filter(|p| !p.as_os_str().is_empty()),
        case_insensitive: raw.case_insensitive.unwrap_or(true),
        reload_max_drop_ratio,
        reload_poll_interval: reload_poll_interval(raw.reload_poll_interval.as_deref(), errors),
        header_read_timeout: duration(
            raw.header_read_timeout.as_deref(),
            DEFAULT_HEADER_READ_TIMEOUT,
            &HEADER_READ_TIMEOUT_RANGE,
            "[server] header_read_timeout",
            errors,
        ),
        idle_timeout: duration(
            raw.idle_timeout.as_deref(),
            DEFAULT_IDLE_TIMEOUT,
            &IDLE_TIMEOUT_RANGE,
            "[server] idle_timeout",
            errors,
        ),
        max_header_bytes: size(
            raw.max_header_bytes,
            DEFAULT_MAX_HEADER_BYTES as u64,
            &MAX_HEADER_BYTES_RANGE,
            "[server] max_header_bytes",
            errors,
        ) as usize,
        max_connections: count(
            raw.max_connections,
            DEFAULT_MAX_CONNECTIONS,
            &MAX_CONNECTIONS_RANGE,
            "[server] max_connections",
            errors,
        ),
        click_queue_events: count(
            raw.click_queue,
            DEFAULT_CLICK_QUEUE_EVENTS,
            &CLICK_QUEUE_EVENTS_RANGE,
            "[server] click_queue",
            errors,
        ),
        shutdown_grace: duration(
            raw.shutdown_grace.as_deref(),
            DEFAULT_SHUTDOWN_GRACE,
            &SHUTDOWN_GRACE_RANGE,
            "[server] shutdown_grace",
            errors,
        ),
        cache_control_permanent: cache_permanent,
        cache_control_temporary: cache_temporary,
        acme_challenge_dir: raw.acme_challenge_dir.filter(|p| !p.as_os_str().is_empty()),
    }
}

/// `[server] reload_poll_interval`: zero (never polled) or within [`RELOAD_POLL_INTERVAL_RANGE`].
fn reload_poll_interval(value: Option<&str>, errors: &mut Vec<String>) -> Duration {
    let key = "[server] reload_poll_interval";
    let range = &RELOAD_POLL_INTERVAL_RANGE;
    match value.map(parse_duration) {
        None => DEFAULT_RELOAD_POLL_INTERVAL,
        Some(Ok(d)) if d.is_zero() || range.contains(&d) => d,
        Some(Ok(_)) => {
            errors.push(format!(
                "{key}: '{}' is out of range: write \"0s\" (never: only SIGHUP reloads) or a duration from {} to {}",
                value.unwrap_or_default(),
                show_duration(*range.start()),
                show_duration(*range.end())
            ));
            DEFAULT_RELOAD_POLL_INTERVAL
        }
        Some(Err(e)) => {
            errors.push(format!("{key}: {e}"));
            DEFAULT_RELOAD_POLL_INTERVAL
        }
    }
}

/// `[session]`: every key within its range.
pub(super) fn validate_session(raw: RawSession, errors: &mut Vec<String>) -> SessionConfig {
    SessionConfig {
        idle_timeout: duration(
            raw.idle_timeout.as_deref(),
            DEFAULT_SESSION_IDLE_TIMEOUT,
            &SESSION_IDLE_TIMEOUT_RANGE,
            "[session] idle_timeout",
            errors,
        ),
        max_entries: count(
            raw.max_entries,
            DEFAULT_SESSION_MAX_ENTRIES,
            &SESSION_MAX_ENTRIES_RANGE,
            "[session] max_entries",
            errors,
        ),
    }
}

/// `[spool]`: every key within its range.
pub(super) fn validate_spool(raw: RawSpool, errors: &mut Vec<String>) -> SpoolConfig {
    SpoolConfig {
        flush_interval: duration(
            raw.flush_interval.as_deref(),
            DEFAULT_SPOOL_FLUSH_INTERVAL,
            &SPOOL_FLUSH_INTERVAL_RANGE,
            "[spool] flush_interval",
            errors,
        ),
        segment_max_bytes: size(
            raw.segment_max_bytes,
            DEFAULT_SPOOL_SEGMENT_MAX_BYTES,
            &SPOOL_SEGMENT_MAX_BYTES_RANGE,
            "[spool] segment_max_bytes",
            errors,
        ),
    }
}

pub(super) fn validate_tls(
    listen: Option<String>,
    raw: RawTls,
    domains: &BTreeMap<String, DomainConfig>,
    errors: &mut Vec<String>,
) -> Option<TlsConfig> {
    let Some(listen) = listen.filter(|l| !l.is_empty()) else {
        if raw.dir.is_some() || raw.default_cert.is_some() {
            errors.push("[tls]: certificates are configured but [server] tls_listen is not set".into());
        }
        return None;
    };
    let listen = socket_addr(Some(listen), "127.0.0.1:8443", "[server] tls_listen", errors);
    let mut sources = TlsSources {
        dir: raw.dir,
        default_domain: raw.default_domain.map(|d| d.trim().to_ascii_lowercase()),
        ..Default::default()
    };
    match (raw.default_cert, raw.default_key) {
        (Some(cert), Some(key)) => sources.default_cert = Some(CertFiles { cert, key }),
        (None, None) => {}
        _ => errors.push("[tls]: default_cert and default_key go together".into()),
    }
    for d in domains.values() {
        match (&d.cert, &d.key) {
            (Some(cert), Some(key)) => sources.domains.push(DomainCert {
                name: d.name.clone(),
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => {}
            _ => errors.push(format!("[[domain]] ({}): cert and key go together", d.name)),
        }
    }
    if sources.dir.is_none() && sources.domains.is_empty() && sources.default_cert.is_none() {
        errors.push(
            "[server] tls_listen: no certificate configured (set [tls] dir, [tls] default_cert/default_key, or cert/key in a [[domain]])"
                .into(),
        );
    }
    Some(TlsConfig {
        listen,
        sources,
        http2: raw.http2.unwrap_or(true),
    })
}

/// Checks that `text` is an absolute http(s) URL usable as a `Location` value.
pub fn check_redirect_url(text: &str) -> Result<url::Url, String> {
    if text.chars().any(|c| c.is_control()) {
        return Err(format!("{text:?} contains control characters"));
    }
    match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) => Ok(u),
        Ok(_) => Err(format!("'{text}' is not an http(s) URL")),
        Err(e) => Err(format!("'{text}' is not an absolute http(s) URL ({e})")),
    }
}

/// Checks a URL that is sent as `Location` (a link's destination, a domain's `not_found_url` or
/// `root_url`) and returns it parsed: its serialization (`Url::as_str`, with the host
/// lower-cased and in punycode, and everything else percent-encoded) is what is sent, so that
/// every client reads the same URL. Refused, because readers disagree on where it goes:
/// - a backslash (WHATWG parsers, browsers among them, read it as `/`, RFC 3986 ones do not:
///   `https://good.example\@evil.example/` is one host to some and another to others),
///   whitespace or a control character anywhere (WHATWG parsers drop tabs and newlines);
/// - anything but `http://` or `https://` then the host (`https:evil.example` is read as a
///   host by browsers and as a path by others);
/// - a user name or password (`https://good.example@evil.example/` reads as `good.example` to
///   a person and goes to `evil.example`);
/// - a host that browsers rewrite into another (`evil%2Eexample`, `0x7f.1`): the host as
///   written must be the one the serialization has, but for case and punycode.
pub fn check_destination(text: &str) -> Result<url::Url, String> {
    if let Some(c) = text.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "{text:?} contains {c:?}: percent-encode whitespace and control characters (a space is %20)"
        ));
    }
    if text.contains('\\') {
        return Err(format!(
            "'{text}' contains a backslash, which browsers read as '/' and other parsers do not: percent-encode it as %5C"
        ));
    }
    let url = check_redirect_url(text)?;
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    let Some(rest) = ["http://", "https://"]
        .iter()
        .find(|p| lower.starts_with(**p))
        .map(|p| &text[p.len()..])
        .filter(|r| !r.starts_with('/'))
    else {
        return Err(format!("'{text}' must start with http:// or https:// and the host"));
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err(format!(
            "'{text}' has a user name or password before '@', which hides where it goes: leave it out"
        ));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => &authority[..v6.find(']').map_or(authority.len(), |i| i + 2)],
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let parsed = url.host_str().unwrap_or("");
    let same = if host.is_ascii() {
        host.eq_ignore_ascii_case(parsed)
    } else {
        // An international name: the same once in punycode.
        !host.contains('%') && url::Host::parse(host).is_ok_and(|h| h.to_string() == parsed)
    };
    if !same {
        return Err(format!(
            "'{text}': its host '{host}' is read as '{parsed}' by browsers: write '{parsed}'"
        ));
    }
    Ok(url)
}

/// Checks a redirect status code: 301, 302, 307 or 308.
pub fn check_status(code: u16) -> Result<StatusCode, String> {
    match code {
        301 | 302 | 307 | 308 => Ok(StatusCode::from_u16(code).expect("valid status")),
        _ => Err(format!(
            "status {code} is not a redirect status (use 301, 302, 307 or 308)"
        )),
    }
}

pub(super) fn validate_domains(raw: Vec<RawDomain>, errors: &mut Vec<String>) -> BTreeMap<String, DomainConfig> {
    let mut out = BTreeMap::new();
    for (i, d) in raw.into_iter().enumerate() {
        let label = format!("[[domain]] #{}", i + 1);
        let Some(name) = d.name.map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()) else {
            errors.push(format!("{label}: 'name' is required"));
            continue;
        };
        let label = format!("{label} ({name})");
        let status = d.status.and_then(|s| {
            check_status(s)
                .map_err(|e| errors.push(format!("{label} status: {e}")))
                .ok()
        });
        if let Some(cc) = &d.cache_control
            && http::HeaderValue::from_str(cc).is_err()
        {
            errors.push(format!("{label} cache_control: '{cc}' is not a valid header value"));
        }
        // Sent as `Location`: normalised like a link's destination.
        let [not_found_url, root_url] =
            [("not_found_url", d.not_found_url), ("root_url", d.root_url)].map(|(key, value)| {
                value.and_then(|v| match check_destination(&v) {
                    Ok(url) => Some(String::from(url)),
                    Err(e) => {
                        errors.push(format!("{label} {key}: {e}"));
                        None
                    }
                })
            });
        let config = DomainConfig {
            name: name.clone(),
            status,
            cache_control: d.cache_control,
            forward_query: d.forward_query.unwrap_or(true),
            not_found_url,
            root_url,
            case_insensitive: d.case_insensitive,
            robots_txt: d.robots_txt,
            https_only: d.https_only,
            cert: d.cert,
            key: d.key,
        };
        if out.insert(name.clone(), config).is_some() {
            errors.push(format!("{label}: domain '{name}' is configured twice"));
        }
    }
    out
}

/// Parses CIDR networks (`10.0.0.0/8`, `2001:db8::/32`) and bare addresses (`192.0.2.7`, taken
/// as a single host); every bad entry is reported under `key`.
pub(super) fn networks(entries: &[String], key: &str, errors: &mut Vec<String>) -> Vec<ipnet::IpNet> {
    let mut nets = Vec::with_capacity(entries.len());
    for entry in entries {
        let text = entry.trim();
        match text.parse::<ipnet::IpNet>() {
            Ok(net) => nets.push(net),
            Err(_) => match text.parse::<std::net::IpAddr>() {
                Ok(ip) => nets.push(ipnet::IpNet::from(ip)),
                Err(_) => errors.push(format!(
                    "{key}: '{entry}' is not an IP network (CIDR like 10.0.0.0/8 or an address)"
                )),
            },
        }
    }
    nets
}
