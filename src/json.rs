//! The hand-written JSON pieces of a click event, and the visible-ASCII test for the header
//! values that go into them.
//!
//! A leaf: used by `links` (each owner's and link's JSON, made when the table loads), by the
//! event writer in `enrich::event` and by `edge` (header values). It imports nothing of the
//! crate. Everything here is escaped exactly as serde_json escapes, which the tests check.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

/// The text of a header value made only of visible ASCII and tabs, the rule of
/// `HeaderValue::to_str`; `None` otherwise.
pub fn visible_ascii(value: &[u8]) -> Option<&str> {
    if is_visible_ascii(value) {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// Whether a header value is only visible ASCII, spaces and tabs.
///
/// Tested 32 bytes at a time without an early exit inside a chunk, so that the compiler can
/// vectorize the test: a byte at a time, this was a fifth of the enrichment's own time (user
/// agents, client hints and referrers run to hundreds of bytes).
pub fn is_visible_ascii(value: &[u8]) -> bool {
    let visible = |b: u8| b == b'\t' || b.wrapping_sub(0x20) < 0x5f;
    value
        .chunks(32)
        .all(|chunk| chunk.iter().fold(true, |ok, &b| ok & visible(b)))
}

/// Appends `s` as a JSON string, escaped exactly as serde_json does it: `"`, `\` and the
/// control characters U+0000 to U+001F, with the short forms where JSON has them.
///
/// Most strings need no escape at all, so the scan skips eight bytes at a time while none of
/// them needs one ([`word_needs_escape`]), and looks at single bytes only around those that do.
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut clean_from = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            if !word_needs_escape(word) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        i += 1;
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[clean_from..i - 1]);
        out.extend_from_slice(short);
        clean_from = i;
    }
    out.extend_from_slice(&bytes[clean_from..]);
    out.push(b'"');
}

/// Whether any of the eight bytes in `word` is `"`, `\` or below 0x20. The classic "has a zero
/// byte" test, `(x - 0x01..) & !x & 0x80..`, is exact about *whether* some byte matches (a
/// borrow can only start at a matching byte), applied to `x ^ c` for the two characters and in
/// its "has a byte below n" form for the controls.
fn word_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | quote | backslash) & HIGHS != 0
}

/// The part of `route` that links of one owner share: `"creator":{…},"domain":{…}`, without
/// braces around it (see [`crate::links::Owner`]).
pub fn owner_json(
    domain: &str,
    domain_id: &str,
    creator_id: &str,
    workspace_id: &str,
    workspace_name: &str,
) -> Box<[u8]> {
    let mut out = Vec::with_capacity(96 + domain.len() + domain_id.len() + creator_id.len() + workspace_id.len());
    out.extend_from_slice(b"\"creator\":{\"id\":");
    json_str(&mut out, creator_id);
    out.extend_from_slice(b",\"workspace\":{\"id\":");
    json_str(&mut out, workspace_id);
    out.extend_from_slice(b",\"name\":");
    json_str(&mut out, workspace_name);
    out.extend_from_slice(b"}},\"domain\":{\"id\":");
    json_str(&mut out, domain_id);
    out.extend_from_slice(b",\"raw\":");
    json_str(&mut out, domain);
    out.push(b'}');
    out.into_boxed_slice()
}

/// Encodes a value once as JSON, to be shared by many events; `null` if it cannot be encoded
/// (plain strings and maps always can).
pub fn json_fragment<T: Serialize>(value: &T) -> Arc<str> {
    Arc::from(serde_json::to_string(value).unwrap_or_else(|_| "null".to_string()))
}

/// `route.destination` for the `Location` that was sent, as JSON text: `raw`, and the URL's
/// `protocol`, `hostname`, `path` and `params.query` (its decoded query pairs grouped by name, in
/// order of first appearance). A location that does not parse as a URL keeps `raw` and leaves
/// the other parts empty.
///
/// Written directly rather than through a struct and serde: with a large link table most clicks
/// miss the enricher's cache and come here, and the intermediate strings cost as much as the
/// URL parse.
pub fn destination_json(raw: &str) -> Arc<str> {
    let url = url::Url::parse(raw).ok();
    let mut out = Vec::with_capacity(2 * raw.len() + 80);
    out.extend_from_slice(b"{\"raw\":");
    json_str(&mut out, raw);
    out.extend_from_slice(b",\"protocol\":");
    json_str(&mut out, url.as_ref().map_or("", |u| u.scheme()));
    out.extend_from_slice(b",\"hostname\":");
    json_str(&mut out, url.as_ref().and_then(|u| u.host_str()).unwrap_or(""));
    out.extend_from_slice(b",\"path\":");
    json_str(&mut out, url.as_ref().map_or("", |u| u.path()));
    out.extend_from_slice(b",\"params\":{\"query\":{");
    if let Some(url) = &url {
        write_query_groups(&mut out, url.query_pairs());
    }
    out.extend_from_slice(b"}}}");
    // Only `&str` pieces and ASCII were written, so this never fails.
    Arc::from(String::from_utf8(out).unwrap_or_else(|_| "null".to_string()))
}

/// Writes `"name":["value",...]` members, one per distinct name in order of first appearance.
fn write_query_groups<'a>(out: &mut Vec<u8>, pairs: impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)>) {
    let mut groups: Vec<(Cow<'a, str>, Vec<Cow<'a, str>>)> = Vec::new();
    // A query can hold thousands of pairs (a request's own query is merged in): past a few
    // names, find groups through a map rather than by scanning.
    let mut index: HashMap<Cow<'a, str>, usize> = HashMap::new();
    for (name, value) in pairs {
        let found = if groups.len() <= 16 {
            groups.iter().position(|(n, _)| *n == name)
        } else {
            if index.is_empty() {
                index.extend(groups.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)));
            }
            index.get(&name).copied()
        };
        match found {
            Some(i) => groups[i].1.push(value),
            None => {
                if !index.is_empty() {
                    index.insert(name.clone(), groups.len());
                }
                groups.push((name, vec![value]));
            }
        }
    }
    for (i, (name, values)) in groups.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, name);
        out.push(b':');
        out.push(b'[');
        for (j, value) in values.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            json_str(out, value);
        }
        out.push(b']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::ser::SerializeMap;

    /// The straightforward serde model of `route.destination`: the reference `destination_json`
    /// must match byte for byte.
    #[derive(Debug, Clone, Serialize, PartialEq, Eq)]
    struct Destination {
        /// Full URL as redirected to.
        raw: String,
        /// Scheme.
        protocol: String,
        /// Host.
        hostname: String,
        /// Path.
        path: String,
        /// `params`
        params: Params,
    }

    /// `route.destination.params`
    #[derive(Debug, Clone, Serialize, PartialEq, Eq)]
    struct Params {
        /// `{name: [values...]}`, names in order of first appearance.
        query: QueryParams,
    }

    /// Query parameters as an ordered JSON object of arrays.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    struct QueryParams(pub Vec<(String, Vec<String>)>);

    impl QueryParams {
        /// Groups a URL's decoded query pairs by name, in order of first appearance.
        fn from_url(url: &url::Url) -> QueryParams {
            let mut out: Vec<(String, Vec<String>)> = Vec::new();
            for (name, value) in url.query_pairs() {
                match out.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, values)) => values.push(value.into_owned()),
                    None => out.push((name.into_owned(), vec![value.into_owned()])),
                }
            }
            QueryParams(out)
        }
    }

    impl Serialize for QueryParams {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(self.0.len()))?;
            for (name, values) in &self.0 {
                map.serialize_entry(name, values)?;
            }
            map.end()
        }
    }

    impl Destination {
        /// Splits the URL that was redirected to into the event's parts.
        fn from_location(raw: &str) -> Destination {
            match url::Url::parse(raw) {
                Ok(url) => Destination {
                    raw: raw.to_string(),
                    protocol: url.scheme().to_string(),
                    hostname: url.host_str().unwrap_or("").to_string(),
                    path: url.path().to_string(),
                    params: Params {
                        query: QueryParams::from_url(&url),
                    },
                },
                Err(_) => Destination {
                    raw: raw.to_string(),
                    protocol: String::new(),
                    hostname: String::new(),
                    path: String::new(),
                    params: Params {
                        query: QueryParams::default(),
                    },
                },
            }
        }
    }

    #[test]
    fn json_strings_are_escaped_like_serde_json() {
        let mut samples: Vec<String> = (0u8..=0x7f).map(|b| format!("a{}b", char::from(b))).collect();
        samples.extend(
            [
                "",
                "plain",
                "ação \u{2028} 日本 😀",
                "\"quoted\" \\ back\\slash",
                "\u{7f}\u{0}\u{1f}",
            ]
            .map(String::from),
        );
        // Every special byte at every position of a string long enough for the eight-byte scan,
        // next to high bytes (which must not be mistaken for controls).
        for special in ['"', '\\', '\n', '\u{0}', '\u{1f}', '\u{8}', 'ÿ', '😀'] {
            for at in 0..24 {
                let mut sample: String = "abcdefghijklmnopqrstuvwxyzé".chars().take(at).collect();
                sample.push(special);
                sample.push_str("0123456789ABCDEFGHIJ ~\u{7f}");
                samples.push(sample);
            }
        }
        for sample in samples {
            let mut out = Vec::new();
            json_str(&mut out, &sample);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&sample).unwrap(),
                "{sample:?}"
            );
        }
    }

    #[test]
    fn destination_parts_and_ordered_query() {
        let json = destination_json(
            "https://www.yourdestination.com/?utm_source=cs_facebook_post&utm_medium=customersuccess&utm_source=x",
        );
        assert_eq!(
            &*json,
            concat!(
                r#"{"raw":"https://www.yourdestination.com/?utm_source=cs_facebook_post&utm_medium=customersuccess&utm_source=x","#,
                r#""protocol":"https","hostname":"www.yourdestination.com","path":"/","#,
                r#""params":{"query":{"utm_source":["cs_facebook_post","x"],"utm_medium":["customersuccess"]}}}"#
            )
        );
    }

    #[test]
    fn destination_json_matches_the_serde_model_byte_for_byte() {
        let many: String = (0..200).map(|i| format!("k{}={i}&", i % 37)).collect();
        let samples = [
            "https://example.com".to_string(),
            "https://example.com/a/b?x=1&y=2&x=3#frag".into(),
            "HTTPS://User:Pw@Example.COM:8443/./a/../b%20c?q=a+b&e=&n&=v&%ZZ=%41".into(),
            "https://例え.jp/パス?名前=値".into(),
            "http://[::1]:8080/p?\"quote\"=\\back\u{1}".into(),
            "mailto:someone@example.com?subject=hi".into(),
            "not a url".into(),
            "".into(),
            format!("https://example.com/many?{many}"),
        ];
        for raw in &samples {
            let want = serde_json::to_string(&Destination::from_location(raw)).unwrap();
            assert_eq!(&*destination_json(raw), want, "{raw}");
        }
    }

    #[test]
    fn visible_ascii_is_checked_at_every_position() {
        let simple = |v: &[u8]| v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
        for b in 0..=255u8 {
            for len in [1, 31, 32, 33, 70] {
                for at in [0, len / 2, len - 1] {
                    let mut v = vec![b'a'; len];
                    v[at] = b;
                    assert_eq!(is_visible_ascii(&v), simple(&v), "byte {b:#x} at {at} of {len}");
                }
            }
        }
        assert!(is_visible_ascii(b""));
    }
}
