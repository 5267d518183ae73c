//! Preferred language of a click: the primary subtag of the visitor's most
//! preferred `Accept-Language` range (RFC 9110 §12.5.4, ranges per RFC 4647).
//!
//! The enricher calls [`primary_language`] once per click, off the request's
//! response path. It allocates only when the subtag must be lower-cased, reads at most
//! [`MAX_HEADER_LEN`] bytes and never panics, whatever the client sent.

use std::borrow::Cow;

use super::trim_ows as trim;

/// Longest prefix of an `Accept-Language` value that is examined, in bytes.
pub const MAX_HEADER_LEN: usize = 1024;

/// Most ranges examined in one header.
pub const MAX_RANGES: usize = 64;

/// Weights are kept in thousandths (q=0.001 is 1). A range whose `q` cannot
/// be read gets this one, below every readable positive weight, so it only
/// wins when nothing better is offered.
const UNREADABLE_WEIGHT: u16 = 0;

/// Primary subtag of the highest-q Accept-Language range, lower case; "" when none.
///
/// Ranges with equal weight keep header order. `*` and `q=0` ranges are
/// ignored, as are ranges whose primary subtag is not 1 to 8 ASCII letters.
/// A range with an unreadable weight (`q=abc`, `q=2`) still counts, ranked
/// below every range with a readable one.
pub fn primary_language(accept_language: &str) -> Cow<'_, str> {
    let mut bytes = accept_language.as_bytes();
    if bytes.len() > MAX_HEADER_LEN {
        // Keep whole ranges only: a cut one could pass for another language.
        let window = &bytes[..MAX_HEADER_LEN];
        bytes = &window[..window.iter().rposition(|&b| b == b',').unwrap_or(0)];
    }
    let mut best: Option<(&[u8], u16)> = None;
    'ranges: for range in bytes.split(|&b| b == b',').take(MAX_RANGES) {
        let mut parts = range.split(|&b| b == b';');
        let Some(primary) = primary_subtag(trim(parts.next().unwrap_or_default())) else {
            continue;
        };
        let mut weight = 1000;
        for param in parts {
            let param = trim(param);
            let Some(eq) = param.iter().position(|&b| b == b'=') else {
                continue;
            };
            if !trim(&param[..eq]).eq_ignore_ascii_case(b"q") {
                continue;
            }
            weight = match qvalue(trim(&param[eq + 1..])) {
                // q=0 means "not acceptable" (RFC 9110 §12.4.2).
                Some(0) => continue 'ranges,
                Some(q) => q,
                None => UNREADABLE_WEIGHT,
            };
        }
        if best.is_none_or(|(_, top)| weight > top) {
            best = Some((primary, weight));
        }
    }
    let Some((primary, _)) = best else {
        return Cow::Borrowed("");
    };
    // `primary_subtag` admits ASCII letters only.
    let primary = std::str::from_utf8(primary).unwrap_or_default();
    if primary.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(primary.to_ascii_lowercase())
    } else {
        Cow::Borrowed(primary)
    }
}

/// The primary subtag of a language range, when it is 1 to 8 ASCII letters.
/// `_` is accepted as a subtag separator too, as some clients send `en_US`.
fn primary_subtag(tag: &[u8]) -> Option<&[u8]> {
    let end = tag.iter().position(|&b| b == b'-' || b == b'_').unwrap_or(tag.len());
    let primary = &tag[..end];
    let valid = (1..=8).contains(&primary.len()) && primary.iter().all(u8::is_ascii_alphabetic);
    valid.then_some(primary)
}

/// Parses a qvalue (RFC 9110 §12.4.2) into thousandths: `0`, `0.5`, `1.000`.
/// Extra decimals beyond three are tolerated and dropped; anything else,
/// including values above 1, is unreadable.
fn qvalue(value: &[u8]) -> Option<u16> {
    let (int, frac) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &[][..]),
    };
    if int.len() != 1 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for i in 0..3 {
        let digit = frac.get(i).map_or(0, |b| u16::from(b - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    match int[0] {
        b'0' => Some(thousandths),
        b'1' if thousandths == 0 && frac.iter().all(|&b| b == b'0') => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_preferred_primary_subtag() {
        let cases = [
            ("pt-BR,pt;q=0.9,en;q=0.8", "pt"),
            ("en-US;q=0.5, fr;q=0.9", "fr"),
            ("en-US,en;q=0.9", "en"),
            ("de", "de"),
            ("DE-de", "de"),
            ("zh-Hant-TW;q=0.8, ja;q=0.8", "zh"),
            ("fr;q=0.5, es;q=0.5, it;q=0.4", "fr"),
            ("*, en;q=0.1", "en"),
            ("*", ""),
            ("en;q=0, fr;q=0.001", "fr"),
            ("en;q=0.000", ""),
            ("en;q=0", ""),
            ("en_US", "en"),
            ("x-klingon, de;q=0.5", "x"),
            ("i-default", "i"),
            ("  es-419 ;  Q = 0.7 , ca ; q=0.6", "es"),
            ("en;q=1.0, fr;q=1", "en"),
            ("en;q=0.5, fr;q=1.000", "fr"),
            ("en;q=0.8888, fr;q=0.888", "en"),
            ("en;level=1;q=0.4, fr;q=0.3", "en"),
            ("en;q=", "en"),
            ("en;q", "en"),
            ("", ""),
            ("   ", ""),
            (",,,;;;", ""),
            ("garbage text here", ""),
            ("123, 1en, en-1", "en"),
            ("toolongtag-x, ab", "ab"),
            ("abcdefgh", "abcdefgh"),
            ("é-fr, fr-CA", "fr"),
            ("\u{0}en", ""),
        ];
        for (header, expected) in cases {
            assert_eq!(primary_language(header), expected, "{header:?}");
        }
    }

    #[test]
    fn unreadable_weights_rank_last_but_count() {
        let cases = [
            ("en;q=abc", "en"),
            ("en;q=abc, fr;q=0.001", "fr"),
            ("en;q=2, fr;q=0.1", "fr"),
            ("en;q=1.5", "en"),
            ("en;q=.5, de;q=0.2", "de"),
            ("en;q=-1, de;q=0.2", "de"),
            ("en;q=0x1, de;q=abc", "en"),
        ];
        for (header, expected) in cases {
            assert_eq!(primary_language(header), expected, "{header:?}");
        }
    }

    #[test]
    fn absurd_headers_are_bounded() {
        let long_tag = format!("{},fr", "a".repeat(1_000_000));
        assert_eq!(primary_language(&long_tag), "");
        let many = format!("{}de", "xx;q=0,".repeat(100));
        assert_eq!(primary_language(&many), "");
        let late = format!("{}de", " ".repeat(MAX_HEADER_LEN));
        assert_eq!(primary_language(&late), "");
        let cut_in_char = format!("{}é", "a".repeat(MAX_HEADER_LEN - 1));
        assert_eq!(primary_language(&cut_in_char), "");
        // The cap falls inside "fr-CA": the "f" left over must not count.
        let mut cut_in_range = String::from("de;q=0.1");
        while cut_in_range.len() < MAX_HEADER_LEN - 20 {
            cut_in_range.push_str(", x;q=0");
        }
        while cut_in_range.len() < MAX_HEADER_LEN - 1 {
            cut_in_range.push(' ');
        }
        cut_in_range.push_str(",fr-CA");
        assert_eq!(&cut_in_range[MAX_HEADER_LEN - 1..MAX_HEADER_LEN + 1], ",f");
        assert_eq!(primary_language(&cut_in_range), "de");
    }
}
