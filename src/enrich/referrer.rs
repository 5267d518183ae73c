//! Referrer classification: turns a request's `Referer` header into the
//! `referral` part of a click event (hostname, protocol, path and the origin
//! type/name of the traffic source).
//!
//! The enricher calls [`ReferrerTable::classify`] once per click, off the
//! request's response path. The table of known sources is parsed once at
//! start-up (from the embedded `data/referrers.tsv` or an operator's file);
//! a lookup does no I/O, compiles nothing and never panics, whatever bytes
//! the client sent.
//!
//! Classification rules, in order:
//!
//! 1. No `Referer`, or an empty one: origin `direct`, name `""`, and empty
//!    hostname/protocol/path.
//! 2. A referrer that is not an absolute URL with a host (garbage, `about:blank`,
//!    a relative reference): empty hostname/protocol/path, origin `other`,
//!    name `""`.
//! 3. The referrer's host equals the clicked link's own domain, where a leading
//!    `www.` and a trailing dot on either side are ignored: origin `internal`,
//!    name the link domain. Other subdomains of the link domain are not internal:
//!    a short-link domain and its parent site are separate sources.
//! 4. `android-app://<package>/…` referrers (sent by Android apps, see
//!    <https://developer.android.com/reference/android/content/Intent#EXTRA_REFERRER>):
//!    the package is looked up among the table's `android-app://` rows, most
//!    specific first by dropping trailing labels (`com.whatsapp.w4b` can match a
//!    `com.whatsapp` row).
//! 5. Any other host is looked up by label-boundary suffix, most specific first:
//!    `lm.facebook.com` tries `lm.facebook.com`, then `facebook.com`, then `com`;
//!    `notfacebook.com` never matches `facebook.com`.
//! 6. Nothing matched: origin `other`, name the referrer's hostname (so unknown
//!    sources can still be told apart in reports).
//!
//! Only the path of the referrer is kept: its query (which can carry personal
//! data) and userinfo are dropped, and so is a port.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// Longest `Referer` value examined, in bytes. Longer values are cut (on a
/// character boundary) before parsing; host and scheme sit at the front, so
/// only the tail of an absurd path is lost.
pub const MAX_REFERER_LEN: usize = 4096;

/// The source types a row of the table may name, in the order documented in
/// `data/referrers.tsv`. `direct` and `internal` are assigned by the
/// classifier itself and cannot appear in the table.
pub const SOURCE_TYPES: [&str; 9] = [
    "social",
    "messaging",
    "search",
    "email",
    "news",
    "video",
    "shopping",
    "ai",
    "other",
];

/// Scheme of Android app referrers.
const ANDROID_APP: &str = "android-app";

/// The referral part of a click event; serialized as the event's `referral`
/// (`{"hostname","protocol","path","origin":{"type","name"}}`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Referral {
    /// Host of the referring page, lower case; `""` when there is none.
    pub hostname: String,
    /// Scheme of the referring URL without the colon (`https`); `""` when none.
    pub protocol: String,
    /// Path of the referring URL (`/` when the URL has none); `""` when none.
    pub path: String,
    /// `direct`, `internal`, `other`, or one of [`SOURCE_TYPES`].
    pub origin_type: String,
    /// Canonical source name (`facebook`), the link domain for `internal`,
    /// the hostname for unknown sources, `""` for `direct`.
    pub origin_name: String,
}

impl serde::Serialize for Referral {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        /// `referral.origin`.
        #[derive(serde::Serialize)]
        struct Origin<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            name: &'a str,
        }
        let mut out = s.serialize_struct("Referral", 4)?;
        out.serialize_field("hostname", &self.hostname)?;
        out.serialize_field("protocol", &self.protocol)?;
        out.serialize_field("path", &self.path)?;
        let origin = Origin {
            kind: &self.origin_type,
            name: &self.origin_name,
        };
        out.serialize_field("origin", &origin)?;
        out.end()
    }
}

/// One known traffic source: its type (one of [`SOURCE_TYPES`]) and name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    kind: &'static str,
    name: Box<str>,
}

/// Host-suffix table of known traffic sources, from data/referrers.tsv.
#[derive(Debug, Clone, Default)]
pub struct ReferrerTable {
    /// Web hosts, matched by label-boundary suffix.
    hosts: HashMap<Box<str>, Source>,
    /// Android package names, matched by label-boundary prefix.
    apps: HashMap<Box<str>, Source>,
}

impl ReferrerTable {
    /// The table shipped with the binary (`data/referrers.tsv`).
    pub fn embedded() -> ReferrerTable {
        // The file is part of the source tree and a unit test parses it, so a
        // failure here is a build defect, not a run-time condition.
        match ReferrerTable::parse(EMBEDDED, "data/referrers.tsv") {
            Ok(table) => table,
            Err(errors) => panic!("embedded data/referrers.tsv is invalid: {}", errors.join("; ")),
        }
    }

    /// Parses the table format described at the top of `data/referrers.tsv`.
    ///
    /// `origin` names the text in error messages. On failure every bad line is
    /// reported as `origin:LINE: what is wrong`; a host listed twice is an error.
    pub fn parse(text: &str, origin: &str) -> Result<ReferrerTable, Vec<String>> {
        let mut table = ReferrerTable::default();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        let mut errors = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let line = raw.trim_end();
            let content = line.trim_start();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            match parse_row(line) {
                Err(what) => errors.push(format!("{origin}:{number}: {what}")),
                Ok((key, source)) => {
                    let (map, name) = match key.strip_prefix("android-app://") {
                        Some(package) => (&mut table.apps, package),
                        None => (&mut table.hosts, key),
                    };
                    match map.entry(name.into()) {
                        Entry::Vacant(slot) => {
                            slot.insert(source);
                            first_line.insert(key.to_owned(), number);
                        }
                        Entry::Occupied(_) => {
                            let first = first_line.get(key).copied().unwrap_or(0);
                            errors.push(format!(
                                "{origin}:{number}: duplicate host '{key}' (first on line {first})"
                            ));
                        }
                    }
                }
            }
        }
        if errors.is_empty() { Ok(table) } else { Err(errors) }
    }

    /// Number of rows (hosts and app packages).
    pub fn len(&self) -> usize {
        self.hosts.len() + self.apps.len()
    }

    /// True when the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Classifies a click's referrer; see the module documentation for the rules.
    ///
    /// `referer`: raw Referer header (None/empty = no referrer). `link_domain`:
    /// the custom domain of the clicked link (lower case).
    pub fn classify(&self, referer: Option<&str>, link_domain: &str) -> Referral {
        let raw = referer.map(str::trim).unwrap_or("");
        if raw.is_empty() {
            return Referral {
                origin_type: "direct".to_owned(),
                ..Referral::default()
            };
        }
        let Some(parsed) = parse_referer(raw) else {
            return Referral {
                origin_type: "other".to_owned(),
                ..Referral::default()
            };
        };

        let (origin_type, origin_name) = if parsed.protocol == ANDROID_APP {
            match lookup_app(&self.apps, &parsed.hostname) {
                Some(source) => (source.kind.to_owned(), source.name.to_string()),
                None => ("other".to_owned(), parsed.hostname.clone()),
            }
        } else if same_site(&parsed.hostname, link_domain) {
            ("internal".to_owned(), link_domain.to_owned())
        } else {
            match lookup_host(&self.hosts, &parsed.hostname) {
                Some(source) => (source.kind.to_owned(), source.name.to_string()),
                None => ("other".to_owned(), parsed.hostname.clone()),
            }
        };
        Referral {
            hostname: parsed.hostname,
            protocol: parsed.protocol,
            path: parsed.path,
            origin_type,
            origin_name,
        }
    }
}

static EMBEDDED: &str = include_str!("../../data/referrers.tsv");

/// Hostname, scheme and path of a referrer URL.
struct ParsedReferer {
    hostname: String,
    protocol: String,
    path: String,
}

/// Splits an absolute referrer URL; `None` when it has no usable host.
fn parse_referer(raw: &str) -> Option<ParsedReferer> {
    let mut end = raw.len().min(MAX_REFERER_LEN);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    let url = url::Url::parse(&raw[..end]).ok()?;
    // Hosts of non-special schemes (android-app) keep their case in `url`.
    let hostname = url.host_str()?.to_ascii_lowercase();
    if hostname.is_empty() {
        return None;
    }
    let path = match url.path() {
        "" => "/".to_owned(),
        path => path.to_owned(),
    };
    Some(ParsedReferer {
        hostname,
        protocol: url.scheme().to_owned(),
        path,
    })
}

/// Strips the parts that do not distinguish one site from another here.
fn site_key(host: &str) -> &str {
    let host = host.strip_suffix('.').unwrap_or(host);
    host.strip_prefix("www.").unwrap_or(host)
}

/// The internal rule: equal hosts, ignoring `www.` and a trailing dot.
fn same_site(referrer_host: &str, link_domain: &str) -> bool {
    let link = site_key(link_domain.trim());
    !link.is_empty() && site_key(referrer_host).eq_ignore_ascii_case(link)
}

/// Most specific label-boundary suffix of `host` present in `hosts`.
fn lookup_host<'t>(hosts: &'t HashMap<Box<str>, Source>, host: &str) -> Option<&'t Source> {
    let mut candidate = host.strip_suffix('.').unwrap_or(host);
    loop {
        if let Some(source) = hosts.get(candidate) {
            return Some(source);
        }
        candidate = &candidate[candidate.find('.')? + 1..];
    }
}

/// Most specific label-boundary prefix of `package` present in `apps`.
fn lookup_app<'t>(apps: &'t HashMap<Box<str>, Source>, package: &str) -> Option<&'t Source> {
    let mut candidate = package;
    loop {
        if let Some(source) = apps.get(candidate) {
            return Some(source);
        }
        candidate = &candidate[..candidate.rfind('.')?];
    }
}

/// Parses one `host<TAB>type<TAB>name` row; the error says what is wrong.
fn parse_row(line: &str) -> Result<(&str, Source), String> {
    let fields: Vec<&str> = line.split('\t').collect();
    let [host, kind, name] = fields[..] else {
        return Err(format!(
            "expected 3 tab-separated fields (host, type, name), found {}",
            fields.len()
        ));
    };
    match host.strip_prefix("android-app://") {
        Some(package) => check_labels(package, "package")?,
        None => check_labels(host, "host")?,
    }
    let Some(kind) = SOURCE_TYPES.iter().copied().find(|known| *known == kind) else {
        return Err(format!(
            "unknown type '{kind}' (expected one of: {})",
            SOURCE_TYPES.join(", ")
        ));
    };
    let name_ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !name_ok {
        return Err(format!(
            "invalid name '{name}' (lower-case letters, digits, '-' and '.', starting with a letter or digit)"
        ));
    }
    Ok((
        host,
        Source {
            kind,
            name: name.into(),
        },
    ))
}

/// Validates a lower-case dotted name (a host or an Android package).
fn check_labels(value: &str, what: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("empty {what}"));
    }
    if value.len() > 253 {
        return Err(format!("{what} '{value}' is longer than 253 bytes"));
    }
    for label in value.split('.') {
        if label.is_empty() {
            return Err(format!("{what} '{value}' has an empty label"));
        }
        let ok = label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!(
                "{what} '{value}' may only hold lower-case letters, digits, '-', '_' and dots"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn table() -> &'static ReferrerTable {
        static TABLE: OnceLock<ReferrerTable> = OnceLock::new();
        TABLE.get_or_init(ReferrerTable::embedded)
    }

    fn referral(hostname: &str, protocol: &str, path: &str, kind: &str, name: &str) -> Referral {
        Referral {
            hostname: hostname.to_owned(),
            protocol: protocol.to_owned(),
            path: path.to_owned(),
            origin_type: kind.to_owned(),
            origin_name: name.to_owned(),
        }
    }

    #[test]
    fn embedded_table_parses_and_is_large() {
        let parsed = ReferrerTable::parse(EMBEDDED, "data/referrers.tsv");
        assert!(parsed.is_ok(), "{:?}", parsed.err());
        let table = table();
        assert!(table.len() >= 300, "only {} rows", table.len());
        assert!(!table.is_empty());
    }

    #[test]
    fn classifies_full_referrals() {
        let cases: &[(Option<&str>, &str, Referral)] = &[
            // The product example.
            (
                Some("http://m.facebook.com/"),
                "rebrand.ly",
                referral("m.facebook.com", "http", "/", "social", "facebook"),
            ),
            (
                Some("https://WWW.Google.COM:443/search?q=secret#frag"),
                "rebrand.ly",
                referral("www.google.com", "https", "/search", "search", "google"),
            ),
            (None, "rebrand.ly", referral("", "", "", "direct", "")),
            (Some(""), "rebrand.ly", referral("", "", "", "direct", "")),
            (Some("   "), "rebrand.ly", referral("", "", "", "direct", "")),
            (
                Some("https://rebrand.ly/abc"),
                "rebrand.ly",
                referral("rebrand.ly", "https", "/abc", "internal", "rebrand.ly"),
            ),
            (
                Some("https://www.rebrand.ly/"),
                "rebrand.ly",
                referral("www.rebrand.ly", "https", "/", "internal", "rebrand.ly"),
            ),
            (
                Some("https://example.com./"),
                "www.example.com",
                referral("example.com.", "https", "/", "internal", "www.example.com"),
            ),
            (
                Some("https://blog.example.org/post/1?utm=x"),
                "go.example.org",
                referral("blog.example.org", "https", "/post/1", "other", "blog.example.org"),
            ),
            (
                Some("android-app://com.google.android.gm/"),
                "rebrand.ly",
                referral("com.google.android.gm", "android-app", "/", "email", "gmail"),
            ),
            (
                Some("android-app://com.google.android.googlequicksearchbox/https/www.google.com"),
                "rebrand.ly",
                referral(
                    "com.google.android.googlequicksearchbox",
                    "android-app",
                    "/https/www.google.com",
                    "search",
                    "google",
                ),
            ),
            (
                Some("android-app://com.example.unknown"),
                "rebrand.ly",
                referral(
                    "com.example.unknown",
                    "android-app",
                    "/",
                    "other",
                    "com.example.unknown",
                ),
            ),
            (
                Some("http://[2001:db8::1]:8080/x"),
                "rebrand.ly",
                referral("[2001:db8::1]", "http", "/x", "other", "[2001:db8::1]"),
            ),
            (
                Some("http://bücher.example/p"),
                "rebrand.ly",
                referral("xn--bcher-kva.example", "http", "/p", "other", "xn--bcher-kva.example"),
            ),
        ];
        for (referer, domain, expected) in cases {
            assert_eq!(&table().classify(*referer, domain), expected, "{referer:?}");
        }
    }

    #[test]
    fn classifies_known_sources() {
        let cases = [
            ("https://facebook.com/", "social", "facebook"),
            ("https://l.facebook.com/l.php?u=x", "social", "facebook"),
            ("https://lm.facebook.com/", "social", "facebook"),
            ("https://notfacebook.com/", "other", "notfacebook.com"),
            (
                "https://facebook.com.evil.example/",
                "other",
                "facebook.com.evil.example",
            ),
            ("https://m.me/someone", "messaging", "messenger"),
            ("https://l.instagram.com/", "social", "instagram"),
            ("https://t.co/abc", "social", "twitter"),
            ("https://x.com/", "social", "twitter"),
            ("https://www.linkedin.com/feed/", "social", "linkedin"),
            ("https://lnkd.in/xyz", "social", "linkedin"),
            ("https://out.reddit.com/", "social", "reddit"),
            ("https://uk.pinterest.com/", "social", "pinterest"),
            ("https://www.pinterest.co.uk/", "social", "pinterest"),
            ("https://pin.it/abc", "social", "pinterest"),
            ("https://www.youtube.com/", "video", "youtube"),
            ("https://youtu.be/x", "video", "youtube"),
            ("https://www.tiktok.com/", "social", "tiktok"),
            ("https://bsky.app/", "social", "bluesky"),
            ("https://web.whatsapp.com/", "messaging", "whatsapp"),
            ("https://wa.me/123", "messaging", "whatsapp"),
            ("https://t.me/channel", "messaging", "telegram"),
            ("https://web.telegram.org/k/", "messaging", "telegram"),
            ("https://app.slack.com/", "messaging", "slack"),
            ("https://teams.microsoft.com/", "messaging", "teams"),
            ("https://www.google.co.uk/", "search", "google"),
            ("https://www.google.com.br/", "search", "google"),
            ("https://www.google.de/", "search", "google"),
            ("https://mail.google.com/mail/u/0/", "email", "gmail"),
            ("https://news.google.com/", "news", "google-news"),
            ("https://gemini.google.com/app", "ai", "gemini"),
            ("https://docs.google.com/", "other", "google-docs"),
            ("https://www.bing.com/", "search", "bing"),
            ("https://duckduckgo.com/", "search", "duckduckgo"),
            ("https://search.brave.com/", "search", "brave"),
            ("https://yandex.ru/", "search", "yandex"),
            ("https://mail.yandex.ru/", "email", "yandex-mail"),
            ("https://www.seznam.cz/", "search", "seznam"),
            ("https://email.seznam.cz/", "email", "seznam-email"),
            ("https://outlook.live.com/", "email", "outlook"),
            ("https://outlook.office365.com/", "email", "outlook"),
            ("https://eur01.safelinks.protection.outlook.com/", "email", "outlook"),
            ("https://mail.proton.me/", "email", "proton-mail"),
            ("https://news.ycombinator.com/", "news", "hacker-news"),
            ("https://chatgpt.com/", "ai", "chatgpt"),
            ("https://chat.openai.com/", "ai", "chatgpt"),
            ("https://www.perplexity.ai/", "ai", "perplexity"),
            ("https://claude.ai/", "ai", "claude"),
            ("https://copilot.microsoft.com/", "ai", "copilot"),
            ("https://www.amazon.de/", "shopping", "amazon"),
        ];
        for (referer, kind, name) in cases {
            let got = table().classify(Some(referer), "rebrand.ly");
            assert_eq!(
                (got.origin_type.as_str(), got.origin_name.as_str()),
                (kind, name),
                "{referer}"
            );
        }
    }

    #[test]
    fn classifies_app_referrers() {
        let cases = [
            ("android-app://com.facebook.katana/", "social", "facebook"),
            ("android-app://com.facebook.orca", "messaging", "messenger"),
            ("android-app://com.linkedin.android/", "social", "linkedin"),
            ("android-app://org.telegram.messenger/", "messaging", "telegram"),
            ("android-app://com.Slack/", "messaging", "slack"),
            ("android-app://com.whatsapp.w4b/", "messaging", "whatsapp"),
            ("ANDROID-APP://com.instagram.android/", "social", "instagram"),
            (
                "android-app://com.google.android.apps.docs/",
                "other",
                "com.google.android.apps.docs",
            ),
        ];
        for (referer, kind, name) in cases {
            let got = table().classify(Some(referer), "rebrand.ly");
            assert_eq!(got.protocol, "android-app", "{referer}");
            assert_eq!(
                (got.origin_type.as_str(), got.origin_name.as_str()),
                (kind, name),
                "{referer}"
            );
        }
    }

    #[test]
    fn unparsable_referrers_are_other_without_parts() {
        let cases = [
            "garbage",
            "not a url",
            "www.facebook.com/page",
            "/relative/path",
            "about:blank",
            "javascript:alert(1)",
            "http://",
            "https://exa mple.com/",
            "\u{0}\u{1}\u{fffd}",
        ];
        for referer in cases {
            let got = table().classify(Some(referer), "rebrand.ly");
            assert_eq!(got, referral("", "", "", "other", ""), "{referer:?}");
        }
    }

    #[test]
    fn absurd_hosts_are_bounded() {
        let referer = format!("https://{}.example/", "a".repeat(100_000));
        let got = table().classify(Some(&referer), "rebrand.ly");
        assert!(got.hostname.len() <= MAX_REFERER_LEN, "{}", got.hostname.len());
        assert_eq!(got.origin_type, "other");
    }

    #[test]
    fn absurd_paths_are_cut_not_rejected() {
        let referer = format!("https://www.facebook.com/{}", "é".repeat(10_000));
        let got = table().classify(Some(&referer), "rebrand.ly");
        assert_eq!(
            (got.origin_type.as_str(), got.origin_name.as_str()),
            ("social", "facebook")
        );
        assert!(got.path.len() <= 3 * MAX_REFERER_LEN, "{}", got.path.len());
    }

    #[test]
    fn internal_rule_needs_a_link_domain_and_exact_site() {
        let cases = [
            ("https://rebrand.ly/", "", "other"),
            ("https://app.rebrand.ly/", "rebrand.ly", "other"),
            ("https://rebrand.ly/", "app.rebrand.ly", "other"),
            ("https://www.rebrand.ly/", "www.rebrand.ly", "internal"),
            ("https://REBRAND.LY/", "rebrand.ly", "internal"),
        ];
        for (referer, domain, kind) in cases {
            let got = table().classify(Some(referer), domain);
            assert_eq!(got.origin_type, kind, "{referer} on {domain:?}");
        }
    }

    #[test]
    fn most_specific_suffix_wins_in_any_row_order() {
        let text = "mail.example.com\temail\texample-mail\nexample.com\tsearch\texample\n";
        let table = ReferrerTable::parse(text, "t").unwrap();
        let cases = [
            ("https://mail.example.com/", "email"),
            ("https://a.mail.example.com/", "email"),
            ("https://example.com/", "search"),
            ("https://webmail.example.com/", "search"),
            ("https://example.com.au/", "other"),
        ];
        for (referer, kind) in cases {
            assert_eq!(table.classify(Some(referer), "x.y").origin_type, kind, "{referer}");
        }
    }

    #[test]
    fn parse_reports_every_bad_line() {
        let text = "# comment\n\
                    \n\
                    good.com\tsocial\tgood\n\
                    bad.com\tsocial\n\
                    Upper.com\tsocial\tupper\n\
                    x.com\tfriends\tx\n\
                    y.com\tsocial\tY Name\n\
                    good.com\tnews\tgood\n\
                    a..b\tsocial\tab\n\
                    android-app://com.x\tsocial\tx\n\
                    android-app://\tsocial\tx\n\
                    z.com\tdirect\tz\n\
                    w.com\tsocial\tw\textra\n";
        let errors = ReferrerTable::parse(text, "refs.tsv").unwrap_err();
        let expected = [
            "refs.tsv:4: expected 3 tab-separated fields (host, type, name), found 2",
            "refs.tsv:5: host 'Upper.com' may only hold lower-case letters, digits, '-', '_' and dots",
            "refs.tsv:6: unknown type 'friends' (expected one of: social, messaging, search, email, news, video, shopping, ai, other)",
            "refs.tsv:7: invalid name 'Y Name' (lower-case letters, digits, '-' and '.', starting with a letter or digit)",
            "refs.tsv:8: duplicate host 'good.com' (first on line 3)",
            "refs.tsv:9: host 'a..b' has an empty label",
            "refs.tsv:11: empty package",
            "refs.tsv:12: unknown type 'direct' (expected one of: social, messaging, search, email, news, video, shopping, ai, other)",
            "refs.tsv:13: expected 3 tab-separated fields (host, type, name), found 4",
        ];
        assert_eq!(errors, expected);
    }

    #[test]
    fn parse_accepts_crlf_and_indented_comments() {
        let text = "  # note\r\na.com\tnews\ta\r\n\r\nandroid-app://com.a\tnews\ta\r\n";
        let table = ReferrerTable::parse(text, "t").unwrap();
        assert_eq!(table.len(), 2);
        assert!(ReferrerTable::parse("", "t").unwrap().is_empty());
    }
}
