//! User agent → [`AgentInfo`]: browser, operating system, device class and
//! the bot flag of one click event.
//!
//! The enricher calls [`classify`] on a user-agent cache miss, with the
//! low-entropy client hints that came with the request and the [`BotList`]
//! it loaded at start-up ([`BotList::embedded`] or a file given to
//! [`BotList::parse`]). This module does no I/O, never panics on any input,
//! and allocates nothing beyond the short strings that make up its result
//! (woothee, the base parser, keeps its own small scratch). Work is capped:
//! only the first [`MAX_UA_BYTES`] bytes of a user agent and of each hint
//! are read.
//!
//! How a user agent is read: woothee gives the base parse (its crawler and
//! feature-phone categories, and a fallback for rare platforms); own rules
//! on top name what woothee misses — in-app browsers, tablets, the
//! Chromium family, TVs and consoles — and format versions the way the
//! click event carries them (`android-9.0-pie`, `ios-17.1.2`, `windows-10`).
//! The client hints fill what the user agent leaves open: the OS name, phone
//! versus unknown, and which Chromium-based browser it is.
//!
//! What cannot be told apart, and is therefore reported as the agent says:
//! - Windows 10 and Windows 11: both send `Windows NT 10.0`, and the
//!   platform version that would differ is a high-entropy hint we never get;
//!   both are `windows-10`.
//! - Android versions behind Chrome's frozen agent (`Android 10; K`): every
//!   Android release from 10 on reads as `android-10.0`, and the device
//!   model is gone.
//! - An iPad asking for desktop sites (the default since iPadOS 13) sends a
//!   Mac agent (`Macintosh; Intel Mac OS X 10_15_7`) and no client hints; it
//!   is `macos` and `desktop`.
//! - macOS versions after 10.15.7: Safari and Chrome freeze the Mac version.
//! - Chromium browsers that copy Chrome's agent and send no brand of their
//!   own (Vivaldi, and Brave when hints are absent) read as `chrome`.
//! - A phone browser in "desktop site" mode sends a desktop agent and is
//!   reported as that desktop.
//!
//! The rules live in four parts: `bots` (the bot token list and its
//! matcher), `browser` (browsers, in-app web views and the `Sec-CH-UA` brand
//! list), `os` (operating systems, their versions and the platform hint) and
//! `device` (the device class and the mobile hint). This file holds the
//! result type, [`classify`] that combines the parts, and the text utilities
//! they share.

mod bots;
mod browser;
mod device;
mod os;

pub use bots::{BotList, MAX_TOKEN_BYTES, MIN_TOKEN_BYTES};

use browser::{brand_from_hints, read_browser};
use device::{mobile_flag, read_device};
use os::{os_from_base, platform_slug, read_os};

/// How many leading bytes of a user agent (or a hint) are read; the rest is
/// ignored, so absurd inputs cost no more than this.
pub const MAX_UA_BYTES: usize = 1024;

// the longest version string kept; real ones are far shorter
const MAX_VERSION_BYTES: usize = 32;

/// What a user agent says about the client, as the click event reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// Lower-case slug (`chrome`, `facebook-app`, …) or "".
    pub browser_name: String,
    /// The browser version as the agent sends it, or "".
    pub browser_version: String,
    /// OS slug (`android`, `ios`, `windows`, …) or "".
    pub os_name: String,
    /// `<os>-<version>[-<codename>]` (`android-9.0-pie`) or "".
    pub os_version: String,
    /// `smartphone`, `tablet`, `desktop`, `feature-phone`, `tv`, `console`,
    /// `other`, or "" when unknown.
    pub device: &'static str,
    /// True for crawlers, previews, scanners, scripts and empty agents.
    pub bot: bool,
}

impl AgentInfo {
    /// The result for an empty user agent: a bot that says nothing else.
    pub fn empty_agent() -> AgentInfo {
        AgentInfo {
            browser_name: String::new(),
            browser_version: String::new(),
            os_name: String::new(),
            os_version: String::new(),
            device: "",
            bot: true,
        }
    }
}

/// Low-entropy client hints sent beside the UA (raw header values).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientHints<'a> {
    /// `Sec-CH-UA`, the brand list: `"Chromium";v="124", "Google Chrome";v="124"`.
    pub sec_ch_ua: Option<&'a str>,
    /// `Sec-CH-UA-Mobile`: `?1` or `?0`.
    pub mobile: Option<&'a str>,
    /// `Sec-CH-UA-Platform`, quoted: `"Android"`.
    pub platform: Option<&'a str>,
}

/// Reads a user agent and its client hints into an [`AgentInfo`].
///
/// Only the first [`MAX_UA_BYTES`] bytes of the agent are read. An empty
/// agent (or `-`) is a bot and nothing else.
pub fn classify(ua: &str, hints: ClientHints<'_>, bots: &BotList) -> AgentInfo {
    let ua = clip(ua.trim(), MAX_UA_BYTES);
    if ua.is_empty() || ua == "-" {
        return AgentInfo::empty_agent();
    }
    let base = woothee::parser::Parser::new().parse(ua);
    let (base_category, base_os, base_name) = match &base {
        Some(r) => (r.category, r.os, r.name),
        None => ("", "", ""),
    };
    let bot = base_category == "crawler" || bots.matches(ua);

    let (mut os_name, os_version) = match read_os(ua) {
        Some(found) => found,
        None => (os_from_base(base_os), String::new()),
    };
    let platform = hints.platform.and_then(platform_slug);
    if os_name.is_empty() {
        os_name = platform.unwrap_or("");
    }

    let (mut browser, ua_version) = read_browser(ua, os_name);
    let mut version = ua_version.to_string();
    if browser.is_empty() && base_name == "Sleipnir" {
        browser = "sleipnir";
    }
    // a brand list can name the Chromium browser the agent hides; the agent's
    // full version is kept when its major agrees with the brand's
    if let Some(list) = hints.sec_ch_ua
        && let Some((brand, brand_version)) = brand_from_hints(list, browser)
    {
        let ua_chrome = chrome_version(ua);
        let agrees = !ua_chrome.is_empty() && major(ua_chrome) == major(brand_version);
        browser = brand;
        version = if agrees {
            ua_chrome.to_string()
        } else {
            brand_version.to_string()
        };
    }

    let mobile = hints.mobile.and_then(mobile_flag);
    let device = read_device(ua, os_name, base_category, base_os, mobile);

    AgentInfo {
        browser_name: browser.to_string(),
        browser_version: version,
        os_name: os_name.to_string(),
        os_version,
        device,
        bot,
    }
}

// ---------------------------------------------------------------- text utilities

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The text right after the first `token` in `hay`.
fn after<'a>(hay: &'a str, token: &str) -> Option<&'a str> {
    hay.find(token).map(|at| &hay[at + token.len()..])
}

/// The leading `digits[.digits]*` of `s`, or "".
fn lead_version(s: &str) -> &str {
    if !s.starts_with(|c: char| c.is_ascii_digit()) {
        return "";
    }
    let end = s
        .bytes()
        .take(MAX_VERSION_BYTES)
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    s[..end].trim_end_matches('.')
}

/// The version right after `token`, if the token is there.
fn version_after<'a>(ua: &'a str, token: &str) -> Option<&'a str> {
    after(ua, token).map(lead_version)
}

/// The first non-empty version after any of the tokens.
fn first_version<'a>(ua: &'a str, tokens: &[&str]) -> &'a str {
    tokens
        .iter()
        .filter_map(|t| version_after(ua, t))
        .find(|v| !v.is_empty())
        .unwrap_or("")
}

/// An OS version written with dots or underscores (`17_1_2`), as dots.
fn lead_os_version(s: &str) -> String {
    if !s.starts_with(|c: char| c.is_ascii_digit()) {
        return String::new();
    }
    let raw: String = s
        .chars()
        .take(MAX_VERSION_BYTES)
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '_')
        .map(|c| if c == '_' { '.' } else { c })
        .collect();
    raw.trim_end_matches('.').to_string()
}

fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or("")
}

fn chrome_version(ua: &str) -> &str {
    version_after(ua, "Chrome/").unwrap_or("")
}

// ---------------------------------------------------------------- tests

#[cfg(test)]
mod tests {
    use super::*;

    use super::device::is_fire_tv;
    use super::os::android_version;

    /// One expected reading: ua, browser, version, os, os version, device, bot.
    pub(super) type Row = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        bool,
    );

    pub(super) fn bots() -> BotList {
        BotList::embedded()
    }

    pub(super) fn check(rows: &[Row], hints: ClientHints<'_>) {
        let list = bots();
        let mut failures = Vec::new();
        for &(ua, browser, version, os, os_version, device, bot) in rows {
            let want = AgentInfo {
                browser_name: browser.to_string(),
                browser_version: version.to_string(),
                os_name: os.to_string(),
                os_version: os_version.to_string(),
                device,
                bot,
            };
            let got = classify(ua, hints, &list);
            if got != want {
                failures.push(format!("{ua}\n   want {want:?}\n    got {got:?}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} mismatches:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    pub(super) const NONE: ClientHints<'static> = ClientHints {
        sec_ch_ua: None,
        mobile: None,
        platform: None,
    };

    #[test]
    fn product_example_facebook_in_app_on_android_9() {
        let ua = "Mozilla/5.0 (Linux; Android 9; SM-G960F Build/PPR1.180610.011; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/74.0.3729.157 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/227.0.0.43.158;]";
        let got = classify(ua, NONE, &bots());
        assert_eq!(
            got,
            AgentInfo {
                browser_name: "facebook-app".into(),
                browser_version: "227.0.0.43.158".into(),
                os_name: "android".into(),
                os_version: "android-9.0-pie".into(),
                device: "smartphone",
                bot: false,
            }
        );
    }

    #[rustfmt::skip]
    #[test]
    fn frozen_agents_with_client_hints() {
        let frozen_phone = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36";
        let hints = ClientHints {
            sec_ch_ua: Some(r#""Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99""#),
            mobile: Some("?1"),
            platform: Some(r#""Android""#),
        };
        check(
            &[(frozen_phone, "chrome", "124.0.6367.82", "android", "android-10.0", "smartphone", false)],
            hints,
        );

        // Windows 11 sends the Windows 10 agent: reported as windows-10
        let windows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36";
        let brave = ClientHints {
            sec_ch_ua: Some(r#""Chromium";v="130", "Brave";v="130", "Not?A_Brand";v="99""#),
            mobile: Some("?0"),
            platform: Some(r#""Windows""#),
        };
        check(&[(windows, "brave", "130.0.0.0", "windows", "windows-10", "desktop", false)], brave);

        // a brand whose major differs from the agent's Chrome keeps the brand's major
        let opera = ClientHints {
            sec_ch_ua: Some(r#""Chromium";v="130", "Opera";v="115", "Not?A_Brand";v="99""#),
            ..NONE
        };
        check(&[(windows, "opera", "115", "windows", "windows-10", "desktop", false)], opera);

        // only Chromium and grease: a Chromium build
        let chromium = ClientHints {
            sec_ch_ua: Some(r#""Not/A)Brand";v="8", "Chromium";v="130""#),
            ..NONE
        };
        check(&[(windows, "chromium", "130.0.0.0", "windows", "windows-10", "desktop", false)], chromium);

        // the agent names Edge already: hints do not override
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.2849.80";
        let edge_hints = ClientHints {
            sec_ch_ua: Some(r#""Chromium";v="130", "Microsoft Edge";v="130", "Not?A_Brand";v="99""#),
            ..NONE
        };
        check(&[(edge, "edge", "130.0.2849.80", "windows", "windows-10", "desktop", false)], edge_hints);

        // an agent that names no platform: the hints give OS and device
        let app = ClientHints {
            sec_ch_ua: Some(r#""Google Chrome";v="124", "Chromium";v="124", "Not-A.Brand";v="99""#),
            mobile: Some("?1"),
            platform: Some(r#""Android""#),
        };
        check(&[("SomeShell/2.1", "chrome", "124", "android", "", "smartphone", false)], app);
        let desk = ClientHints { mobile: Some("?0"), platform: Some("\"macOS\""), ..NONE };
        check(&[("SomeShell/2.1", "", "", "macos", "", "desktop", false)], desk);
        let chromebook = ClientHints { platform: Some("\"Chrome OS\""), ..NONE };
        check(&[("SomeShell/2.1", "", "", "chromeos", "", "desktop", false)], chromebook);

        // the agent's own platform wins over a hint
        let linux = ClientHints { platform: Some("\"Linux\""), ..NONE };
        check(&[(windows, "chrome", "130.0.0.0", "windows", "windows-10", "desktop", false)], linux);

        // unknown or malformed hints are ignored
        let junk = ClientHints {
            sec_ch_ua: Some("\"unterminated;v=\"1"),
            mobile: Some("yes"),
            platform: Some("\"Plan 9\""),
        };
        check(&[(windows, "chrome", "130.0.0.0", "windows", "windows-10", "desktop", false)], junk);
    }

    #[test]
    fn empty_and_placeholder_agents_are_bots() {
        for ua in ["", "   ", "-", "\t\r\n"] {
            assert_eq!(classify(ua, NONE, &bots()), AgentInfo::empty_agent(), "{ua:?}");
        }
        // hints alone do not make an empty agent a person
        let hints = ClientHints {
            mobile: Some("?1"),
            platform: Some("\"Android\""),
            ..NONE
        };
        assert_eq!(classify("", hints, &bots()), AgentInfo::empty_agent());
    }

    /// A small deterministic generator, so the garbage is the same every run.
    struct Noise(u64);
    impl Noise {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn absurd_input_never_panics() {
        let list = bots();
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        // 10 KB of bytes made into text
        let bytes: Vec<u8> = (0..10_240).map(|_| (noise.next() & 0xff) as u8).collect();
        let garbage = String::from_utf8_lossy(&bytes).into_owned();
        let info = classify(&garbage, NONE, &list);
        assert!(info.browser_version.len() <= MAX_VERSION_BYTES);

        // fragments of real agents, shuffled and cut at every kind of place
        let pieces = [
            "Mozilla/5.0 (",
            "Linux; Android ",
            "9",
            ";",
            " wv)",
            "Chrome/",
            "1.2.3",
            "Version/",
            "CPU iPhone OS ",
            "17_",
            "_",
            " like Mac OS X",
            "FBAV/",
            "[FB_IAB/",
            "Instagram ",
            "Windows NT ",
            "10.0",
            "CrOS ",
            "x86_64 ",
            "Snapchat",
            "/",
            "Opera",
            "MSIE ",
            "rv:",
            "PlayStation ",
            "Tizen",
            "KAIOS/",
            "Mac OS X ",
            "Android",
            "é",
            "日本",
            "\u{0}",
            "; AFT",
            "Edg/",
            "OPR/",
            "SamsungBrowser/",
            "Line/",
            " Line/",
            "WhatsApp/",
            "Viber/",
            "Safari/",
            "iPad",
            "Mobile",
            "musical_ly_",
            "app_version/",
            ".",
            "..",
            "999999999999999",
        ];
        let brand_pieces = [
            "\"",
            "Chromium",
            ";v=",
            "\"1",
            ",",
            " ",
            "Brave",
            "Google Chrome",
            ";",
            "é",
        ];
        for _ in 0..3_000 {
            let mut ua = String::new();
            for _ in 0..(noise.next() % 12) {
                ua.push_str(pieces[(noise.next() % pieces.len() as u64) as usize]);
            }
            let mut brand_list = String::new();
            for _ in 0..(noise.next() % 8) {
                brand_list.push_str(brand_pieces[(noise.next() % brand_pieces.len() as u64) as usize]);
            }
            let hints = ClientHints {
                sec_ch_ua: Some(&brand_list),
                mobile: Some(&brand_list),
                platform: Some(&brand_list),
            };
            let info = classify(&ua, hints, &list);
            assert!(info.browser_version.len() <= MAX_VERSION_BYTES);
            assert!(info.os_version.len() <= 2 * MAX_VERSION_BYTES + 32);
            let _ = list.matches(&ua);
        }

        // huge and non-ASCII: the cap lands inside a multi-byte char without harm
        let wide = "日本語".repeat(5_000);
        let info = classify(&wide, NONE, &list);
        assert_eq!(info.browser_name, "");
        let long_chrome = format!(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 {}",
            "é".repeat(100_000)
        );
        let info = classify(&long_chrome, NONE, &list);
        assert_eq!((info.browser_name.as_str(), info.bot), ("chrome", false));
        // a bot token past the cap is not seen: documented behaviour
        let late = format!("{} Googlebot/2.1", "x".repeat(MAX_UA_BYTES));
        assert!(!list.matches(&late));
    }

    #[test]
    fn text_utilities_respect_char_boundaries() {
        assert_eq!(clip("é", 1), "");
        assert_eq!(clip("aé", 2), "a");
        assert_eq!(lead_version("1.2.3x"), "1.2.3");
        assert_eq!(lead_version("1.2."), "1.2");
        assert_eq!(lead_version(".5"), "");
        assert_eq!(lead_os_version("17_1_2 like"), "17.1.2");
        assert_eq!(android_version("Mozilla/5.0 (Linux; Android; wv)"), Some(""));
        assert_eq!(android_version("Mozilla/5.0 TwitterAndroid"), None);
        assert!(is_fire_tv("(Linux; Android 9; AFTKA)"));
        assert!(!is_fire_tv("(Linux; Android 9; AFt)"));
    }
}
