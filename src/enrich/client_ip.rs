//! The visitor's address behind reverse proxies: the socket peer, or, when the
//! peer is one of the operator's trusted proxies (`[server] trusted_proxies`),
//! the address those proxies reported in `Forwarded` (RFC 7239) or
//! `X-Forwarded-For`.
//!
//! The enricher calls [`client_ip`] once per click, off the request's response
//! path, to feed the country lookup. It does no I/O, does not allocate and
//! never panics on any header bytes. [`TrustedProxies::parse`] runs once, when
//! the configuration is loaded.
//!
//! Only headers written by trusted proxies can be believed: a client can send
//! either header itself. Deploy so that the trusted proxy closest to this
//! server appends to the header this module reads (`Forwarded` wins when it
//! names any address) and so that a client cannot inject a `Forwarded` header
//! past a proxy that only maintains `X-Forwarded-For`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};

use super::trim_ows as trim;

/// Longest header value examined, in bytes. Proxies append on the right, so
/// a longer value is cut on the left and its first, partial element dropped.
pub const MAX_HEADER_LEN: usize = 8192;

/// Trusted proxy networks from `[server] trusted_proxies`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// The networks `[server] trusted_proxies` lists (validated by `config`). Host bits below the
    /// prefix are ignored, and IPv4-mapped IPv6 networks are treated as the IPv4 networks they map.
    pub fn new(nets: &[IpNet]) -> TrustedProxies {
        TrustedProxies {
            nets: nets.iter().map(|net| canonical_net(net.trunc())).collect(),
        }
    }

    /// Parses CIDR networks (`10.0.0.0/8`, `2001:db8::/32`) and bare addresses
    /// (`192.0.2.7`, taken as a single host). Host bits below the prefix are
    /// ignored, and IPv4-mapped IPv6 networks (`::ffff:10.0.0.0/104`) are
    /// treated as the IPv4 networks they map. Every bad entry is reported.
    pub fn parse(cidrs: &[String]) -> Result<TrustedProxies, Vec<String>> {
        let mut nets = Vec::with_capacity(cidrs.len());
        let mut errors = Vec::new();
        for entry in cidrs {
            let text = entry.trim();
            let net = match text.parse::<IpNet>() {
                Ok(net) => Some(net),
                Err(_) => text.parse::<IpAddr>().ok().map(IpNet::from),
            };
            match net {
                Some(net) => nets.push(canonical_net(net.trunc())),
                None => errors.push(format!(
                    "'{entry}' is not an IP network (CIDR like 10.0.0.0/8 or an address)"
                )),
            }
        }
        if errors.is_empty() {
            Ok(TrustedProxies { nets })
        } else {
            Err(errors)
        }
    }

    /// True when `ip` (IPv4-mapped IPv6 counts as IPv4) is in a trusted network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// True when no proxy is trusted: the socket peer is always the client.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// The client address: the socket peer, unless the peer is a trusted proxy;
/// then the rightmost address of `Forwarded` (if present, else
/// `X-Forwarded-For`) that is not itself trusted.
///
/// `forwarded` and `x_forwarded_for` are the raw header values; a header sent
/// several times is passed as its values joined with `", "` in order of
/// appearance (RFC 9110 §5.3), which is how both headers combine.
///
/// Rules, each proxy having appended the address it received from:
/// - `Forwarded` is used when at least one of its `for=` parameters names an
///   address; otherwise `X-Forwarded-For`; otherwise the peer.
/// - Elements that are not an address (`for=unknown`, obfuscated `for=_hidden`,
///   garbage) say nothing about the hop and are skipped.
/// - When every listed address is trusted (a client inside a trusted network,
///   say an internal health check), the leftmost one is the client.
/// - The result is normalized: an IPv4-mapped IPv6 address becomes IPv4.
pub fn client_ip(
    peer: IpAddr,
    forwarded: Option<&[u8]>,
    x_forwarded_for: Option<&[u8]>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    if let Some(ip) = forwarded.and_then(|value| pick(elements(value).filter_map(forwarded_for), trusted)) {
        return ip;
    }
    if let Some(ip) = x_forwarded_for.and_then(|value| pick(elements(value).filter_map(node_address), trusted)) {
        return ip;
    }
    peer
}

/// Given the listed addresses left to right, the rightmost untrusted one, or
/// else the leftmost (all trusted); `None` when there is no address at all.
fn pick(addresses: impl Iterator<Item = IpAddr>, trusted: &TrustedProxies) -> Option<IpAddr> {
    let mut leftmost = None;
    let mut rightmost_untrusted = None;
    for ip in addresses {
        leftmost.get_or_insert(ip);
        if !trusted.contains(ip) {
            rightmost_untrusted = Some(ip);
        }
    }
    rightmost_untrusted.or(leftmost)
}

/// The comma-separated elements of a header value, after the length cap.
///
/// Commas always separate: no node identifier can hold one (RFC 7239 §6), so
/// a quoted parameter value with a comma breaks only its own element, and an
/// unbalanced quote sent by a client cannot hide the elements proxies append.
fn elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let value = if value.len() > MAX_HEADER_LEN {
        let tail = &value[value.len() - MAX_HEADER_LEN..];
        match tail.iter().position(|&b| b == b',') {
            Some(comma) => &tail[comma + 1..],
            None => &[][..],
        }
    } else {
        value
    };
    value.split(|&b| b == b',')
}

/// The address in a `Forwarded` element's `for=` parameter (RFC 7239 §4),
/// e.g. `for=192.0.2.60;proto=http;by=203.0.113.43`.
fn forwarded_for(element: &[u8]) -> Option<IpAddr> {
    element.split(|&b| b == b';').find_map(|pair| {
        let pair = trim(pair);
        let eq = pair.iter().position(|&b| b == b'=')?;
        if !trim(&pair[..eq]).eq_ignore_ascii_case(b"for") {
            return None;
        }
        node_address(&pair[eq + 1..])
    })
}

/// Parses a node (RFC 7239 §6) or an `X-Forwarded-For` entry: an IPv4 address
/// with an optional `:port`, an IPv6 address bracketed with an optional
/// `:port` or bare, optionally in double quotes. `None` for `unknown`,
/// obfuscated identifiers and anything else.
fn node_address(node: &[u8]) -> Option<IpAddr> {
    let mut node = trim(node);
    if let [b'"', inner @ .., b'"'] = node {
        node = inner;
    }
    let ip = if let [b'[', rest @ ..] = node {
        let close = rest.iter().position(|&b| b == b']')?;
        let after = &rest[close + 1..];
        if !(after.is_empty() || after.first() == Some(&b':')) {
            return None;
        }
        IpAddr::V6(parse_ascii::<Ipv6Addr>(&rest[..close])?)
    } else if let Some(ip) = parse_ascii::<IpAddr>(node) {
        ip
    } else {
        // An IPv4 address with a port: exactly one colon.
        let colon = node.iter().position(|&b| b == b':')?;
        if node[colon + 1..].contains(&b':') {
            return None;
        }
        IpAddr::V4(parse_ascii::<Ipv4Addr>(&node[..colon])?)
    };
    Some(ip.to_canonical())
}

/// Parses an address from ASCII bytes without allocating.
fn parse_ascii<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// IPv4-mapped IPv6 networks (`::ffff:0:0/96` and narrower) as IPv4 networks.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && let Ok(mapped) = Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(mapped);
    }
    net
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        let owned: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        TrustedProxies::parse(&owned).unwrap()
    }

    #[test]
    fn parses_networks_and_addresses() {
        let trusted = proxies(&[
            "10.0.0.0/8",
            " 192.0.2.7 ",
            "2001:db8::/32",
            "172.16.0.1/12",
            "::ffff:198.51.100.0/120",
            "::1",
        ]);
        let cases = [
            ("10.1.2.3", true),
            ("11.0.0.1", false),
            ("192.0.2.7", true),
            ("192.0.2.8", false),
            ("2001:db8:cafe::17", true),
            ("2001:db9::1", false),
            ("172.31.255.255", true),
            ("172.32.0.0", false),
            ("198.51.100.9", true),
            ("::ffff:10.9.9.9", true),
            ("::1", true),
            ("127.0.0.1", false),
        ];
        for (addr, expected) in cases {
            assert_eq!(trusted.contains(ip(addr)), expected, "{addr}");
        }
        assert!(!trusted.is_empty());
        assert!(TrustedProxies::parse(&[]).unwrap().is_empty());
        assert!(!TrustedProxies::default().contains(ip("10.0.0.1")));
    }

    #[test]
    fn reports_every_bad_entry() {
        let entries: Vec<String> = ["10.0.0.0/33", "10.0.0.0/8", "", "example.com", "1.2.3.4:80", "::/129"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let errors = TrustedProxies::parse(&entries).unwrap_err();
        assert_eq!(
            errors,
            [
                "'10.0.0.0/33' is not an IP network (CIDR like 10.0.0.0/8 or an address)",
                "'' is not an IP network (CIDR like 10.0.0.0/8 or an address)",
                "'example.com' is not an IP network (CIDR like 10.0.0.0/8 or an address)",
                "'1.2.3.4:80' is not an IP network (CIDR like 10.0.0.0/8 or an address)",
                "'::/129' is not an IP network (CIDR like 10.0.0.0/8 or an address)",
            ]
        );
    }

    #[test]
    fn resolves_the_client_address() {
        let trusted = proxies(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a str);
        let cases: &[Case] = &[
            // Untrusted peers are the client, whatever they claim.
            (
                "203.0.113.9",
                Some("for=198.51.100.1"),
                Some("198.51.100.2"),
                "203.0.113.9",
            ),
            ("::ffff:203.0.113.9", None, Some("198.51.100.2"), "203.0.113.9"),
            // Trusted peer without headers.
            ("10.0.0.1", None, None, "10.0.0.1"),
            ("10.0.0.1", Some(""), Some(""), "10.0.0.1"),
            // X-Forwarded-For, with a client-forged entry on the left.
            ("10.0.0.1", None, Some("6.6.6.6, 198.51.100.2"), "198.51.100.2"),
            (
                "10.0.0.1",
                None,
                Some("198.51.100.2, 10.0.0.5, 10.0.0.6"),
                "198.51.100.2",
            ),
            ("10.0.0.1", None, Some("198.51.100.2:5678"), "198.51.100.2"),
            ("10.0.0.1", None, Some("[2001:db8:cafe::17]:443"), "2001:db8:cafe::17"),
            ("10.0.0.1", None, Some("2001:db8:cafe::17"), "2001:db8:cafe::17"),
            ("10.0.0.1", None, Some("::ffff:198.51.100.2"), "198.51.100.2"),
            ("10.0.0.1", None, Some("198.51.100.2,unknown"), "198.51.100.2"),
            // Forwarded wins over X-Forwarded-For.
            (
                "10.0.0.1",
                Some("for=192.0.2.60;proto=http;by=203.0.113.43"),
                Some("198.51.100.2"),
                "192.0.2.60",
            ),
            (
                "10.0.0.1",
                Some("for=\"[2001:db8:cafe::17]:4711\""),
                None,
                "2001:db8:cafe::17",
            ),
            (
                "10.0.0.1",
                Some("for=192.0.2.43, for=198.51.100.17"),
                None,
                "198.51.100.17",
            ),
            (
                "10.0.0.1",
                Some("For=\"192.0.2.43:80\" ; proto=https"),
                None,
                "192.0.2.43",
            ),
            ("10.0.0.1", Some("proto=https;for=192.0.2.43"), None, "192.0.2.43"),
            (
                "10.0.0.1",
                Some("for=192.0.2.43, for=10.0.0.7;by=10.0.0.1"),
                None,
                "192.0.2.43",
            ),
            (
                "10.0.0.1",
                Some("for=192.0.2.43, for=\"[2001:db8:ffff::1]\""),
                None,
                "192.0.2.43",
            ),
            // Unknown and obfuscated identifiers are skipped.
            ("10.0.0.1", Some("for=192.0.2.43, for=unknown"), None, "192.0.2.43"),
            ("10.0.0.1", Some("for=_hidden, for=10.0.0.9"), None, "10.0.0.9"),
            // Forwarded without any address falls back to X-Forwarded-For.
            (
                "10.0.0.1",
                Some("for=unknown;proto=https"),
                Some("198.51.100.2"),
                "198.51.100.2",
            ),
            ("10.0.0.1", Some("proto=https"), None, "10.0.0.1"),
            // Every listed address trusted: the leftmost.
            ("10.0.0.1", None, Some("10.0.0.3, 10.0.0.2"), "10.0.0.3"),
            ("10.0.0.1", Some("for=10.9.9.9, for=10.0.0.2"), None, "10.9.9.9"),
            // Garbage never wins and never panics.
            ("10.0.0.1", Some("for=\"[::1"), Some(",,, ,"), "10.0.0.1"),
            (
                "10.0.0.1",
                Some("for=\"192.0.2.1, for=198.51.100.4"),
                None,
                "198.51.100.4",
            ),
            (
                "10.0.0.1",
                Some("for=[2001:db8::1]x"),
                Some("1.2.3.4:5:6, 999.1.1.1"),
                "10.0.0.1",
            ),
            ("10.0.0.1", Some("for=fe80::1%eth0"), Some("not-an-ip"), "10.0.0.1"),
            ("::ffff:10.0.0.1", None, Some("198.51.100.2"), "198.51.100.2"),
        ];
        for &(peer, fwd, xff, expected) in cases {
            let got = client_ip(ip(peer), fwd.map(str::as_bytes), xff.map(str::as_bytes), &trusted);
            assert_eq!(
                got,
                ip(expected),
                "peer {peer}, Forwarded {fwd:?}, X-Forwarded-For {xff:?}"
            );
        }
    }

    #[test]
    fn survives_arbitrary_bytes() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        let samples: [&[u8]; 6] = [
            b"\xff\xfe\x00for=1.2.3.4",
            b"for=\xc3\x281.2.3.4",
            b"\"",
            b"[",
            b"for=\"\"",
            b";;;===,,,\"[]",
        ];
        for sample in samples {
            assert_eq!(client_ip(peer, Some(sample), Some(sample), &trusted), peer);
        }
        let mut all = Vec::new();
        for b in 0..=255u8 {
            all.push(b);
            let _ = client_ip(peer, Some(&all), Some(&all), &trusted);
        }
    }

    #[test]
    fn absurd_headers_keep_their_right_end() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        let forged = format!("{}, 198.51.100.2", "6.6.6.6, ".repeat(10_000));
        assert_eq!(
            client_ip(peer, None, Some(forged.as_bytes()), &trusted),
            ip("198.51.100.2")
        );
        let one_huge = "x".repeat(MAX_HEADER_LEN * 2);
        assert_eq!(client_ip(peer, Some(one_huge.as_bytes()), None, &trusted), peer);
    }
}
