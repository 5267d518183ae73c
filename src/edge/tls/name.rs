//! Server names: the rules a configured or file-derived name must follow,
//! whether a certificate's DNS name covers it, and the lookup of a
//! handshake's SNI (exact name first, then a wildcard), after RFC 6125
//! section 6.4.3.
//!
//! `load` checks names here; the resolver runs the lookup once per handshake,
//! so the lookup must stay free of I/O and locks, and allocates only for an
//! SNI with upper-case letters.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::sign::CertifiedKey;

use super::CertSet;

impl CertSet {
    pub(super) fn resolve(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        sni.and_then(|name| self.find(name)).or(self.default.as_ref())
    }

    /// Exact name first, then a wildcard covering exactly the leftmost label.
    fn find(&self, sni: &str) -> Option<&Arc<CertifiedKey>> {
        let sni = sni.strip_suffix('.').unwrap_or(sni);
        // SNI is almost always lower case already: allocate only when needed.
        let name: Cow<'_, str> = if sni.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(sni.to_ascii_lowercase())
        } else {
            Cow::Borrowed(sni)
        };
        if let Some(key) = self.exact.get(name.as_ref()) {
            return Some(key);
        }
        let (first, rest) = name.split_once('.')?;
        if first.is_empty() || first == "*" {
            return None;
        }
        self.wildcard.get(rest)
    }
}

/// Lower-cases and checks a host name or `*.suffix` wildcard.
pub(super) fn normalize_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if name.is_empty() {
        return Err("empty");
    }
    if !name.is_ascii() {
        return Err("not ASCII; write internationalised names in their xn-- form");
    }
    if name.len() > 253 {
        return Err("longer than 253 characters");
    }
    // RFC 6066 section 3: SNI never carries an IP address.
    if name.parse::<IpAddr>().is_ok() {
        return Err("an IP address cannot be sent as SNI");
    }
    let (labels, wildcard) = match name.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (name.as_str(), false),
    };
    // RFC 6125 section 7.2 advises against wildcards directly under a public suffix.
    if wildcard && !labels.contains('.') {
        return Err("a wildcard needs at least two labels after `*.`");
    }
    for label in labels.split('.') {
        if label.is_empty() {
            return Err("empty label");
        }
        if label.len() > 63 {
            return Err("label longer than 63 characters");
        }
        if label.contains('*') {
            // RFC 6125 section 6.4.3: only a whole leftmost `*` is supported.
            return Err("`*` is only allowed as the whole leftmost label");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("labels may only hold letters, digits, `-` and `_`");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label may not start or end with `-`");
        }
    }
    Ok(name)
}

/// Whether a certificate's DNS name `pattern` covers the configured `name`
/// (which may itself be a wildcard, covered only by the same wildcard).
/// RFC 6125 section 6.4.3: `*` is the whole leftmost label, matching one label.
pub(super) fn covers(pattern: &str, name: &str) -> bool {
    if pattern == name {
        return true;
    }
    match (pattern.strip_prefix("*."), name.split_once('.')) {
        (Some(suffix), Some((first, rest))) => first != "*" && !first.is_empty() && rest == suffix,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::edge::tls::tests::{Fixture, cert_for, serve, served, write_pair};
    use crate::edge::tls::{CertStore, TlsSources};

    #[tokio::test]
    async fn handshake_picks_certificate_by_sni() {
        let f = Fixture::new();
        let store = f.store();
        let addr = serve(store.server_config(true)).await;

        assert_eq!(served(addr, Some("a.test")).await, f.a.der);
        assert_eq!(served(addr, Some("b.test")).await, f.b.der);
        assert_eq!(served(addr, Some("A.Test")).await, f.a.der);
        assert_eq!(served(addr, Some("x.wild.test")).await, f.wild.der);
        assert_eq!(served(addr, Some("Y.WILD.test")).await, f.wild.der);
        // One label only, and not the bare suffix.
        assert_eq!(served(addr, Some("x.y.wild.test")).await, f.fallback.der);
        assert_eq!(served(addr, Some("wild.test")).await, f.fallback.der);
        assert_eq!(served(addr, Some("unknown.test")).await, f.fallback.der);
        assert_eq!(served(addr, None).await, f.fallback.der);

        assert_eq!(store.names(), ["*.wild.test", "a.test", "b.test", "default.test"]);
    }

    #[test]
    fn exact_name_beats_wildcard_and_matching_rules() {
        let root = tempfile::tempdir().unwrap();
        let exact = cert_for(&["a.wild.test"]);
        let wild = cert_for(&["*.wild.test"]);
        // The `*.` spelling of a wildcard file name.
        write_pair(root.path(), "*.wild.test", &wild);
        write_pair(root.path(), "a.wild.test", &exact);
        let store = CertStore::load(TlsSources {
            dir: Some(root.path().to_owned()),
            ..TlsSources::default()
        })
        .unwrap();
        let set = store.current.load();
        let served = |sni: &str| set.find(sni).map(|key| key.cert[0].to_vec());

        assert_eq!(served("a.wild.test"), Some(exact.der.clone()));
        assert_eq!(served("A.WILD.TEST."), Some(exact.der.clone()));
        assert_eq!(served("b.wild.test"), Some(wild.der.clone()));
        assert_eq!(served("B.Wild.Test."), Some(wild.der.clone()));
        assert_eq!(served("wild.test"), None);
        assert_eq!(served("x.b.wild.test"), None);
        assert_eq!(served(".wild.test"), None);
        assert_eq!(served("*.wild.test"), None);
        assert_eq!(served("other.test"), None);
        // No default configured: unknown names and no SNI resolve to nothing.
        assert!(set.resolve(None).is_none());
        assert!(set.resolve(Some("other.test")).is_none());
    }

    #[test]
    fn names_are_normalized_and_checked() {
        assert_eq!(normalize_name("A.Test.").unwrap(), "a.test");
        assert_eq!(normalize_name("*.Brand.Link").unwrap(), "*.brand.link");
        assert_eq!(
            normalize_name("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        for bad in [
            "",
            "*.link",
            "a.*.link",
            "f*.brand.link",
            "a..test",
            "-a.test",
            "a b.test",
            "bücher.example",
            "127.0.0.1",
            "::1",
        ] {
            assert!(normalize_name(bad).is_err(), "{bad:?} accepted");
        }

        assert!(covers("a.test", "a.test"));
        assert!(covers("*.brand.link", "a.brand.link"));
        assert!(covers("*.brand.link", "*.brand.link"));
        assert!(!covers("*.brand.link", "brand.link"));
        assert!(!covers("*.brand.link", "x.a.brand.link"));
        assert!(!covers("a.brand.link", "*.brand.link"));
    }
}
