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

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, Anchored, Input, MatchKind, StartKind};

/// How many leading bytes of a user agent (or a hint) are read; the rest is
/// ignored, so absurd inputs cost no more than this.
pub const MAX_UA_BYTES: usize = 1024;

/// The shortest bot token accepted in a bot list, in bytes.
pub const MIN_TOKEN_BYTES: usize = 3;

/// The longest bot token accepted in a bot list, in bytes.
pub const MAX_TOKEN_BYTES: usize = 128;

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

/// Case-insensitive bot token list, loaded from data/bots.txt.
///
/// Tokens match anywhere in the agent, or only at its start when written
/// with a leading `^`. Both sets are compiled once into Aho-Corasick
/// automatons; matching reads at most [`MAX_UA_BYTES`].
#[derive(Debug, Clone)]
pub struct BotList {
    anywhere: Option<AhoCorasick>,
    at_start: Option<AhoCorasick>,
    len: usize,
}

impl BotList {
    /// The list shipped in the binary (data/bots.txt). Never fails: a line
    /// that would not parse is skipped (a unit test keeps the file clean).
    pub fn embedded() -> BotList {
        Self::build(include_str!("../../../data/bots.txt"), "data/bots.txt").0
    }

    /// Parses a bot list. On failure returns every bad line, each as
    /// `origin:LINE: what is wrong`.
    pub fn parse(text: &str, origin: &str) -> Result<BotList, Vec<String>> {
        let (list, errors) = Self::build(text, origin);
        if errors.is_empty() { Ok(list) } else { Err(errors) }
    }

    /// How many tokens the list holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the list holds no token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the user agent contains one of the tokens (ignoring ASCII
    /// case), or starts with one of the `^` tokens.
    pub fn matches(&self, ua: &str) -> bool {
        let ua = clip(ua.trim_start(), MAX_UA_BYTES);
        let found = |ac: &AhoCorasick, input: Input<'_>| matches!(ac.try_find(input), Ok(Some(_)));
        self.anywhere.as_ref().is_some_and(|ac| found(ac, Input::new(ua)))
            || self
                .at_start
                .as_ref()
                .is_some_and(|ac| found(ac, Input::new(ua).anchored(Anchored::Yes)))
    }

    fn build(text: &str, origin: &str) -> (BotList, Vec<String>) {
        let mut anywhere: Vec<&str> = Vec::new();
        let mut at_start: Vec<&str> = Vec::new();
        let mut errors = Vec::new();
        let mut seen: HashMap<(bool, String), usize> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (anchored, token) = match line.strip_prefix('^') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let key = (anchored, token.to_ascii_lowercase());
            let problem = if token.is_empty() {
                Some("a lone ^ names no token".to_string())
            } else if token.chars().any(char::is_control) {
                Some(format!("token {token:?} holds a control character"))
            } else if token.trim_start() != token {
                Some(format!("blank after ^ in {line:?}"))
            } else if token.len() < MIN_TOKEN_BYTES {
                Some(format!(
                    "token {token:?} is shorter than {MIN_TOKEN_BYTES} bytes and would match too much"
                ))
            } else if token.len() > MAX_TOKEN_BYTES {
                Some(format!("token is longer than {MAX_TOKEN_BYTES} bytes"))
            } else {
                seen.get(&key)
                    .map(|first| format!("token {token:?} repeats line {first}"))
            };
            match problem {
                Some(what) => errors.push(format!("{origin}:{line_no}: {what}")),
                None => {
                    seen.insert(key, line_no);
                    if anchored {
                        at_start.push(token);
                    } else {
                        anywhere.push(token);
                    }
                }
            }
        }
        let anywhere_ac = compile(&anywhere, StartKind::Unanchored, origin, &mut errors);
        let at_start_ac = compile(&at_start, StartKind::Anchored, origin, &mut errors);
        let len =
            anywhere_ac.as_ref().map_or(0, |_| anywhere.len()) + at_start_ac.as_ref().map_or(0, |_| at_start.len());
        let list = BotList {
            anywhere: anywhere_ac,
            at_start: at_start_ac,
            len,
        };
        (list, errors)
    }
}

fn compile(tokens: &[&str], start: StartKind, origin: &str, errors: &mut Vec<String>) -> Option<AhoCorasick> {
    if tokens.is_empty() {
        return None;
    }
    let built = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .start_kind(start)
        .build(tokens);
    match built {
        Ok(ac) => Some(ac),
        Err(e) => {
            errors.push(format!("{origin}: cannot build the matcher: {e}"));
            None
        }
    }
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

// ---------------------------------------------------------------- browser

/// Browser slug and version as sent, or ("", "").
fn read_browser<'a>(ua: &'a str, os: &str) -> (&'static str, &'a str) {
    if let Some(found) = in_app_browser(ua) {
        return found;
    }
    if let Some(found) = named_browser(ua) {
        return found;
    }
    let has = |t: &str| ua.contains(t);
    if has("Safari/") && !has("Chrome") {
        let v = version_after(ua, "Version/").unwrap_or("");
        match os {
            "android" => return ("android-browser", v),
            "ios" | "macos" => return ("safari", v),
            "" if !v.is_empty() => return ("safari", v),
            _ => {}
        }
    }
    // an iOS app's web view: WebKit without the Safari token
    if os == "ios" && has("AppleWebKit") && !has("Safari/") {
        return ("webview", version_after(ua, "Version/").unwrap_or(""));
    }
    if let Some(v) = version_after(ua, "Lynx/") {
        return ("lynx", v);
    }
    if let Some(v) = version_after(ua, "w3m/") {
        return ("w3m", v);
    }
    ("", "")
}

/// Apps that open links in their own web view and name themselves in it.
fn in_app_browser(ua: &str) -> Option<(&'static str, &str)> {
    let has = |t: &str| ua.contains(t);
    let digit_after = |t: &str| after(ua, t).is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()));

    if digit_after("Instagram ") {
        return Some(("instagram-app", version_after(ua, "Instagram ").unwrap_or("")));
    }
    if digit_after("Barcelona ") {
        return Some(("threads-app", version_after(ua, "Barcelona ").unwrap_or("")));
    }
    if has("FBAN/") || has("FBAV/") || has("FB_IAB/") || has("FBIOS") {
        let v = version_after(ua, "FBAV/").unwrap_or("");
        let messenger = has("FBAN/Messenger") || has("FB_IAB/MESSENGER") || has("FB_IAB/Orca-Android");
        return Some((if messenger { "messenger-app" } else { "facebook-app" }, v));
    }
    if has("LinkedInApp") {
        return Some(("linkedin-app", first_version(ua, &["LinkedInApp]/", "LinkedInApp/"])));
    }
    if (has("musical_ly") || has("BytedanceWebview") || has("TikTok")) && !has("TikTokSpider") {
        return Some((
            "tiktok-app",
            first_version(ua, &["app_version/", "musical_ly_", "TikTok "]),
        ));
    }
    // Snapchat/13.10.0.42 on iOS, Snapchat11.4.5.67 on older Android builds
    if let Some(rest) = after(ua, "Snapchat") {
        return Some(("snapchat-app", lead_version(rest.strip_prefix('/').unwrap_or(rest))));
    }
    if has("[Pinterest/") {
        return Some(("pinterest-app", ""));
    }
    if has("Twitter for iPhone") || has("Twitter for iPad") || has("TwitterAndroid") {
        return Some((
            "twitter-app",
            first_version(ua, &["Twitter for iPhone/", "Twitter for iPad/"]),
        ));
    }
    if has(" Line/") {
        return Some(("line-app", version_after(ua, " Line/").unwrap_or("")));
    }
    if has("MicroMessenger/") {
        return Some(("wechat-app", version_after(ua, "MicroMessenger/").unwrap_or("")));
    }
    // the bare WhatsApp/ and Viber/ agents are the preview fetchers, not a web view
    if ua.starts_with("Mozilla/") {
        if let Some(v) = version_after(ua, "WhatsApp/") {
            return Some(("whatsapp-app", v));
        }
        if let Some(v) = version_after(ua, "Viber/") {
            return Some(("viber-app", v));
        }
    }
    if has("Telegram-Android/") || has("Telegram-iOS/") {
        return Some((
            "telegram-app",
            first_version(ua, &["Telegram-Android/", "Telegram-iOS/"]),
        ));
    }
    if has("KAKAOTALK") {
        return Some(("kakaotalk-app", first_version(ua, &["KAKAOTALK ", "KAKAOTALK/"])));
    }
    if has("NAVER(inapp") {
        return Some(("naver-app", ""));
    }
    if has("Zalo iOS") || has("Zalo android") || has("ZaloTheme") {
        return Some(("zalo-app", ""));
    }
    if has("YaApp_") || has("YaSearchBrowser/") {
        return Some((
            "yandex-app",
            first_version(ua, &["YaSearchBrowser/", "YaApp_Android/", "YaApp_iOS/"]),
        ));
    }
    if let Some(v) = version_after(ua, "GSA/") {
        return Some(("google-app", v));
    }
    None
}

/// Browsers that name themselves, most specific first: every Chromium
/// browser also says Chrome/ and Safari/.
fn named_browser(ua: &str) -> Option<(&'static str, &str)> {
    const OWN_TOKENS: &[(&str, &str)] = &[
        ("NintendoBrowser/", "nintendo-browser"),
        ("OculusBrowser/", "oculus-browser"),
        ("SamsungBrowser/", "samsung-internet"),
        ("EdgA/", "edge"),
        ("EdgiOS/", "edge"),
        ("Edg/", "edge"),
        ("Edge/", "edge"),
    ];
    for &(token, name) in OWN_TOKENS {
        if let Some(v) = version_after(ua, token) {
            return Some((name, v));
        }
    }
    let has = |t: &str| ua.contains(t);
    if has("MSIE ") || has("Trident/") || has("IEMobile") {
        let v = first_version(ua, &["MSIE ", "rv:", "IEMobile/"]);
        return Some(("internet-explorer", v));
    }
    if let Some(v) = version_after(ua, "Opera Mini/") {
        return Some(("opera-mini", v));
    }
    for token in ["OPR/", "OPiOS/", "OPT/"] {
        if let Some(v) = version_after(ua, token) {
            return Some(("opera", v));
        }
    }
    if ua.starts_with("Opera") || has(" Opera ") || has("Opera Mobi") {
        return Some(("opera", first_version(ua, &["Version/", "Opera/", "Opera "])));
    }
    const CHROMIUM_FAMILY: &[(&str, &str)] = &[
        ("YaBrowser/", "yandex"),
        ("Vivaldi/", "vivaldi"),
        ("Brave/", "brave"),
        ("UCBrowser/", "uc-browser"),
        ("HuaweiBrowser/", "huawei-browser"),
        ("MiuiBrowser/", "miui-browser"),
        ("DuckDuckGo/", "duckduckgo"),
        ("Ddg/", "duckduckgo"),
        ("Whale/", "whale"),
        ("Silk/", "silk"),
        ("coc_coc_browser/", "coc-coc"),
        ("Electron/", "electron"),
        ("HeadlessChrome/", "headless-chrome"),
        ("FxiOS/", "firefox"),
        ("Firefox/", "firefox"),
        ("CriOS/", "chrome"),
        ("Chromium/", "chromium"),
    ];
    for &(token, name) in CHROMIUM_FAMILY {
        if let Some(v) = version_after(ua, token) {
            return Some((name, v));
        }
    }
    if has(" Brave ") || ua.ends_with(" Brave") {
        return Some(("brave", chrome_version(ua)));
    }
    if let Some(v) = version_after(ua, "Chrome/") {
        // an Android app's web view marks itself with "; wv)"
        let webview = has("; wv)") || has(";wv)");
        return Some((if webview { "webview" } else { "chrome" }, v));
    }
    None
}

/// The brand the client hints name, when it should replace what the agent
/// said: only agents that read as plain Chrome, Chromium or nothing.
fn brand_from_hints<'h>(list: &'h str, ua_browser: &str) -> Option<(&'static str, &'h str)> {
    if !matches!(ua_browser, "" | "chrome" | "chromium") {
        return None;
    }
    let mut chromium = None;
    for (brand, version) in brands(list) {
        let slug = match brand {
            "Google Chrome" => "chrome",
            "Microsoft Edge" => "edge",
            "Opera" | "Opera GX" | "Opera Air" => "opera",
            "Brave" => "brave",
            "YaBrowser" | "Yandex" => "yandex",
            "Samsung Internet" => "samsung-internet",
            "Vivaldi" => "vivaldi",
            "DuckDuckGo" => "duckduckgo",
            "Whale" | "NAVER Whale" => "whale",
            "HuaweiBrowser" => "huawei-browser",
            "MiuiBrowser" => "miui-browser",
            "UCBrowser" => "uc-browser",
            "Android WebView" => "webview",
            "HeadlessChrome" => "headless-chrome",
            "Chromium" => {
                chromium = Some(("chromium", version));
                continue;
            }
            _ => continue,
        };
        if slug == ua_browser {
            return None;
        }
        return Some((slug, version));
    }
    // only Chromium and grease: a Chromium build that does not say which
    chromium.filter(|_| ua_browser != "chromium")
}

/// The (brand, version) pairs of a `Sec-CH-UA` list, GREASE included.
fn brands(list: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = clip(list, MAX_UA_BYTES);
    std::iter::from_fn(move || {
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                return None;
            }
            let Some(quoted) = rest.strip_prefix('"') else {
                // not a brand: skip to the next item
                rest = rest.find(',').map_or("", |at| &rest[at + 1..]);
                continue;
            };
            let Some(close) = quoted.find('"') else {
                rest = "";
                return None;
            };
            let brand = &quoted[..close];
            rest = &quoted[close + 1..];
            let mut version = "";
            loop {
                rest = rest.trim_start_matches([' ', '\t']);
                let Some(param) = rest.strip_prefix(';') else { break };
                let param = param.trim_start_matches([' ', '\t']);
                if let Some(value) = param.strip_prefix("v=\"") {
                    let end = value.find('"').unwrap_or(value.len());
                    version = lead_version(&value[..end]);
                    rest = value.get(end + 1..).unwrap_or("");
                } else {
                    let end = param.find([';', ',']).unwrap_or(param.len());
                    rest = &param[end..];
                }
            }
            return Some((brand, version));
        }
    })
}

// ---------------------------------------------------------------- os

/// OS slug and formatted version from the agent's own words.
fn read_os(ua: &str) -> Option<(&'static str, String)> {
    let has = |t: &str| ua.contains(t);
    if has("Windows Phone") {
        let v = first_version(ua, &["Windows Phone OS ", "Windows Phone "]);
        return Some(("windows-phone", format_version("windows-phone", v)));
    }
    if has("Xbox") {
        return Some(("xbox", String::new()));
    }
    if has("PlayStation") || has("PLAYSTATION") {
        let v = first_version(
            ua,
            &[
                "PlayStation 5/",
                "PlayStation 4 ",
                "PLAYSTATION 3 ",
                "PLAYSTATION 3; ",
                "PlayStation Vita ",
                "PlayStation Portable); ",
            ],
        );
        return Some(("playstation", format_version("playstation", v)));
    }
    if has("Nintendo") {
        return Some(("nintendo", String::new()));
    }
    if has("Roku") {
        return Some(("roku", String::new()));
    }
    if has("KAIOS") || has("KaiOS") {
        let v = first_version(ua, &["KAIOS/", "KaiOS/"]);
        return Some(("kaios", format_version("kaios", v)));
    }
    if has("Tizen") {
        let v = first_version(ua, &["Tizen ", "Tizen/"]);
        return Some(("tizen", format_version("tizen", v)));
    }
    if has("Web0S") || has("webOS") || has("WebOS") || has("hpwOS") {
        let v = first_version(ua, &["webOS/", "WebOS/", "hpwOS/"]);
        return Some(("webos", format_version("webos", v)));
    }
    if has("OpenHarmony") {
        let v = version_after(ua, "OpenHarmony ").unwrap_or("");
        return Some(("harmonyos", format_version("harmonyos", v)));
    }
    if has("AppleTV") || has("Apple TV") || has("tvOS") {
        let v = after(ua, "tvOS ").or_else(|| after(ua, "CPU OS ")).map(lead_os_version);
        return Some(("tvos", format_version("tvos", &v.unwrap_or_default())));
    }
    if has("watchOS") || has("Watch OS") {
        let v = after(ua, "watchOS ")
            .or_else(|| after(ua, "Watch OS "))
            .map(lead_os_version);
        return Some(("watchos", format_version("watchos", &v.unwrap_or_default())));
    }
    if let Some(rest) = after(ua, "CrOS ") {
        // "CrOS x86_64 14541.0.0": the architecture comes first
        let v = rest.find(' ').map_or("", |at| lead_version(&rest[at + 1..]));
        return Some(("chromeos", format_version("chromeos", v)));
    }
    if let Some(v) = android_version(ua) {
        return Some(("android", format_version("android", v)));
    }
    if has("iPhone") || has("iPad") || has("iPod") || has("like Mac OS X") {
        let v = ["iPhone OS ", "CPU OS ", "; iOS ", "iPadOS "]
            .iter()
            .filter_map(|t| after(ua, t))
            .map(lead_os_version)
            .find(|v| !v.is_empty())
            .unwrap_or_default();
        return Some(("ios", format_version("ios", &v)));
    }
    if has("Macintosh") || has("Mac OS X") || has("Mac_PowerPC") {
        let v = after(ua, "Mac OS X ").map(lead_os_version).unwrap_or_default();
        return Some(("macos", format_version("macos", &v)));
    }
    if has("Windows") || has("Win98") || has("Win95") || has("Win 9x") {
        return Some(("windows", windows_version(ua)));
    }
    if has("Symbian") || has("SymbOS") || has("Series60") {
        return Some(("symbian", String::new()));
    }
    if has("BlackBerry") || has("BB10") || has("RIM Tablet OS") {
        return Some(("blackberry", String::new()));
    }
    for (token, slug) in [("FreeBSD", "freebsd"), ("OpenBSD", "openbsd"), ("NetBSD", "netbsd")] {
        if has(token) {
            return Some((slug, String::new()));
        }
    }
    if has("Linux") || has("X11") || has("Ubuntu") || has("Fedora") {
        let v = version_after(ua, "Linux ").unwrap_or("");
        return Some(("linux", format_version("linux", v)));
    }
    None
}

/// The version of the first `Android` that names the platform, if any
/// (`Some("")` when it carries none). Tokens such as `TwitterAndroid`,
/// `Telegram-Android/` and `like Android` do not count.
fn android_version(ua: &str) -> Option<&str> {
    for (at, _) in ua.match_indices("Android") {
        let before = &ua[..at];
        if before.ends_with("like ") {
            continue;
        }
        if !(before.is_empty() || before.ends_with([' ', '(', ';'])) {
            continue;
        }
        let rest = &ua[at + "Android".len()..];
        match rest.as_bytes().first() {
            None | Some(b';') | Some(b')') => return Some(""),
            Some(b' ') | Some(b'-') | Some(b'/') => return Some(lead_version(&rest[1..])),
            _ => continue,
        }
    }
    None
}

fn windows_version(ua: &str) -> String {
    let name = if let Some(nt) = version_after(ua, "Windows NT ") {
        match nt {
            "10.0" | "6.4" => "10",
            "6.3" => "8.1",
            "6.2" => "8",
            "6.1" => "7",
            "6.0" => "vista",
            "5.1" | "5.2" => "xp",
            "5.0" => "2000",
            "4.0" => "nt-4.0",
            _ => "",
        }
    } else if ua.contains("Windows 98") || ua.contains("Win98") {
        "98"
    } else if ua.contains("Windows 95") || ua.contains("Win95") {
        "95"
    } else if ua.contains("Win 9x 4.90") || ua.contains("Windows ME") {
        "me"
    } else {
        ""
    };
    if name.is_empty() {
        String::new()
    } else {
        format!("windows-{name}")
    }
}

/// `<os>-<version>[-<codename>]`; a bare major is written `N.0`.
fn format_version(os: &str, version: &str) -> String {
    if version.is_empty() {
        return String::new();
    }
    let dotted = if version.contains('.') { "" } else { ".0" };
    match android_codename(version).filter(|_| os == "android") {
        Some(name) => format!("{os}-{version}{dotted}-{name}"),
        None => format!("{os}-{version}{dotted}"),
    }
}

/// Android's dessert names, which ended with 9.
fn android_codename(version: &str) -> Option<&'static str> {
    let mut parts = version.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some(match (major, minor) {
        (1, 5) => "cupcake",
        (1, 6) => "donut",
        (2, 0) | (2, 1) => "eclair",
        (2, 2) => "froyo",
        (2, 3) => "gingerbread",
        (3, _) => "honeycomb",
        (4, 0) => "ice-cream-sandwich",
        (4, 1..=3) => "jelly-bean",
        (4, 4) => "kitkat",
        (5, _) => "lollipop",
        (6, _) => "marshmallow",
        (7, _) => "nougat",
        (8, _) => "oreo",
        (9, _) => "pie",
        _ => return None,
    })
}

/// woothee's OS names, for platforms the own rules do not know.
fn os_from_base(base_os: &str) -> &'static str {
    match base_os {
        "iPhone" | "iPad" | "iPod" | "iOS" => "ios",
        "Android" => "android",
        "Windows Phone OS" => "windows-phone",
        "BlackBerry" | "BlackBerry 10" => "blackberry",
        "Firefox OS" => "firefoxos",
        "Mac OSX" | "Mac OS Classic" => "macos",
        "ChromeOS" => "chromeos",
        "Linux" => "linux",
        "BSD" => "bsd",
        "SymbianOS" => "symbian",
        _ if base_os.starts_with("Windows") => "windows",
        _ if base_os.starts_with("PlayStation") => "playstation",
        _ if base_os.starts_with("Nintendo") => "nintendo",
        _ if base_os.starts_with("Xbox") => "xbox",
        _ => "",
    }
}

fn platform_slug(raw: &str) -> Option<&'static str> {
    let value = clip(raw, 64).trim().trim_matches('"');
    Some(match value {
        "Android" => "android",
        "Chrome OS" | "Chromium OS" | "ChromeOS" => "chromeos",
        "iOS" => "ios",
        "Linux" => "linux",
        "macOS" => "macos",
        "Windows" => "windows",
        _ => return None,
    })
}

fn mobile_flag(raw: &str) -> Option<bool> {
    match clip(raw, 8).trim() {
        "?1" => Some(true),
        "?0" => Some(false),
        _ => None,
    }
}

// ---------------------------------------------------------------- device

const TV_MARKS: &[&str] = &[
    "SmartTV",
    "SMART-TV",
    "Smart-TV",
    "SmartTv",
    "SMARTTV",
    "Smart TV",
    "GoogleTV",
    "Google TV",
    "Android TV",
    "AndroidTV",
    "BRAVIA",
    "HbbTV",
    "CrKey",
    "NetCast",
    "Viera",
    "PhilipsTV",
    "InettvBrowser",
    "Opera TV",
    "TV Safari",
    "MiTV",
];

fn read_device(ua: &str, os: &str, base_category: &str, base_os: &str, mobile: Option<bool>) -> &'static str {
    let has = |t: &str| ua.contains(t);
    if matches!(os, "tvos" | "roku")
        || TV_MARKS.iter().any(|m| has(m))
        || is_fire_tv(ua)
        || (os == "webos" && has("Web0S"))
        || (os == "tizen" && has("TV"))
        || base_os == "DigitalTV"
    {
        return "tv";
    }
    if matches!(os, "playstation" | "xbox" | "nintendo") {
        return "console";
    }
    if os == "kaios"
        || base_category == "mobilephone"
        || has("MIDP")
        || has("J2ME")
        || has("Series40")
        || has("Series 40")
    {
        return "feature-phone";
    }
    if os == "watchos"
        || has("OculusBrowser")
        || has("Quest")
        || has("Kobo")
        || has("Tesla/")
        || (has("Kindle/") && !has("Silk") && os != "android")
    {
        return "other";
    }
    if has("iPad") || has("PlayBook") || (has("Tablet") && os != "windows") {
        return "tablet";
    }
    let found = match os {
        "ios" if has("iPhone") || has("iPod") => "smartphone",
        "android" | "harmonyos" => {
            if has("Mobile") || has("Phone;") {
                "smartphone"
            } else if has("AppleWebKit") || has("Gecko/") {
                // a browser on Android that does not say Mobile is on a tablet
                "tablet"
            } else {
                match mobile {
                    Some(true) => "smartphone",
                    Some(false) => "tablet",
                    None => "",
                }
            }
        }
        "windows-phone" | "blackberry" | "symbian" | "firefoxos" => "smartphone",
        "windows" | "macos" | "linux" | "chromeos" | "freebsd" | "openbsd" | "netbsd" | "bsd" => "desktop",
        _ => "",
    };
    if !found.is_empty() {
        return found;
    }
    match base_category {
        "pc" => return "desktop",
        "smartphone" => return "smartphone",
        "appliance" => return "console",
        _ => {}
    }
    match mobile {
        Some(true) => "smartphone",
        _ => "",
    }
}

/// Fire TV sticks name their model `AFT` + capitals (`AFTKA`, `AFTMM`).
fn is_fire_tv(ua: &str) -> bool {
    ua.match_indices("; AFT")
        .any(|(at, m)| ua.as_bytes().get(at + m.len()).is_some_and(|b| b.is_ascii_uppercase()))
}

// ---------------------------------------------------------------- tests

#[cfg(test)]
mod tests {
    use super::*;

    /// One expected reading: ua, browser, version, os, os version, device, bot.
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        bool,
    );

    fn bots() -> BotList {
        BotList::embedded()
    }

    fn check(rows: &[Row], hints: ClientHints<'_>) {
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

    const NONE: ClientHints<'static> = ClientHints {
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
    const DESKTOP_BROWSERS: &[Row] = &[
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Safari/537.36",
            "chrome", "124.0.6367.82", "windows", "windows-10", "desktop", false),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",
            "chrome", "129.0.0.0", "macos", "macos-10.15.7", "desktop", false),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            "chrome", "124.0.0.0", "linux", "", "desktop", false),
        ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",
            "chrome", "129.0.0.0", "chromeos", "chromeos-14541.0.0", "desktop", false),
        ("Mozilla/5.0 (X11; CrOS aarch64 15633.69.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.6045.212 Safari/537.36",
            "chrome", "119.0.6045.212", "chromeos", "chromeos-15633.69.0", "desktop", false),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
            "safari", "17.4.1", "macos", "macos-10.15.7", "desktop", false),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "firefox", "128.0", "windows", "windows-10", "desktop", false),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:125.0) Gecko/20100101 Firefox/125.0",
            "firefox", "125.0", "macos", "macos-10.15", "desktop", false),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
            "firefox", "131.0", "linux", "", "desktop", false),
        ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            "firefox", "125.0", "linux", "", "desktop", false),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
            "edge", "124.0.2478.67", "windows", "windows-10", "desktop", false),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
            "edge", "124.0.2478.80", "macos", "macos-10.15.7", "desktop", false),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36 OPR/114.0.0.0",
            "opera", "114.0.0.0", "windows", "windows-10", "desktop", false),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 YaBrowser/24.10.0 Safari/537.36",
            "yandex", "24.10.0", "windows", "windows-10", "desktop", false),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Vivaldi/6.5.3206.55",
            "vivaldi", "6.5.3206.55", "windows", "windows-10", "desktop", false),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Ubuntu Chromium/59.0.3071.109 Chrome/59.0.3071.109 Safari/537.36",
            "chromium", "59.0.3071.109", "linux", "", "desktop", false),
        ("Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko",
            "internet-explorer", "11.0", "windows", "windows-10", "desktop", false),
        ("Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0)",
            "internet-explorer", "8.0", "windows", "windows-7", "desktop", false),
        ("Mozilla/5.0 (Windows NT 6.3; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
            "chrome", "109.0.0.0", "windows", "windows-8.1", "desktop", false),
        ("Mozilla/5.0 (Windows NT 6.2; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/49.0.2623.112 Safari/537.36",
            "chrome", "49.0.2623.112", "windows", "windows-8", "desktop", false),
        ("Mozilla/5.0 (Windows NT 6.0; rv:52.0) Gecko/20100101 Firefox/52.0",
            "firefox", "52.0", "windows", "windows-vista", "desktop", false),
        ("Mozilla/5.0 (Windows NT 5.1; rv:52.0) Gecko/20100101 Firefox/52.0",
            "firefox", "52.0", "windows", "windows-xp", "desktop", false),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.36.140 Chrome/120.0.6099.291 Electron/28.2.5 Safari/537.36 Sonic Slack_SSB/4.36.140",
            "electron", "28.2.5", "windows", "windows-10", "desktop", false),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:102.0) Gecko/20100101 Goanna/6.6 Firefox/102.0 PaleMoon/33.0.0",
            "firefox", "102.0", "windows", "windows-10", "desktop", false),
        ("Lynx/2.9.0dev.10 libwww-FM/2.14 SSL-MM/1.4.1 OpenSSL/1.1.1n",
            "lynx", "2.9.0", "", "", "", false),
    ];

    #[test]
    fn desktop_browsers() {
        check(DESKTOP_BROWSERS, NONE);
    }

    #[rustfmt::skip]
    const MOBILE_BROWSERS: &[Row] = &[
        ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
            "chrome", "124.0.6367.82", "android", "android-10.0", "smartphone", false),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/TQ3A.230805.001) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Mobile Safari/537.36",
            "chrome", "125.0.0.0", "android", "android-14.0", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.108 Mobile/15E148 Safari/604.1",
            "chrome", "126.0.6478.108", "ios", "ios-17.5", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
            "safari", "17.1", "ios", "ios-17.1", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
            "safari", "17.1.2", "ios", "ios-17.1.2", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.0 Mobile/15E148 Safari/604.1",
            "safari", "26.0", "ios", "ios-18.6", "smartphone", false),
        ("Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0",
            "firefox", "128.0", "android", "android-14.0", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/128.0 Mobile/15E148 Safari/605.1.15",
            "firefox", "128.0", "ios", "ios-17.5", "smartphone", false),
        ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36 EdgA/124.0.2478.64",
            "edge", "124.0.2478.64", "android", "android-10.0", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/124.2478.50 Mobile/15E148 Safari/605.1.15",
            "edge", "124.2478.50", "ios", "ios-17.4.1", "smartphone", false),
        ("Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
            "samsung-internet", "26.0", "android", "android-14.0", "smartphone", false),
        ("Mozilla/5.0 (Linux; arm_64; Android 13; SM-A536E) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 YaBrowser/24.10.5.53.00 SA/3 Mobile Safari/537.36",
            "yandex", "24.10.5.53.00", "android", "android-13.0", "smartphone", false),
        ("Mozilla/5.0 (Linux; U; Android 12; ru; SM-A125F Build/SP1A.210812.016) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/100.0.4896.58 UCBrowser/15.5.0.1200 Mobile Safari/537.36",
            "uc-browser", "15.5.0.1200", "android", "android-12.0", "smartphone", false),
        ("Mozilla/5.0 (Linux; Android 10; HarmonyOS; ELS-NX9; HMSCore 6.13.0.302) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/114.0.0.0 HuaweiBrowser/14.0.5.301 Mobile Safari/537.36",
            "huawei-browser", "14.0.5.301", "android", "android-10.0", "smartphone", false),
        ("Mozilla/5.0 (Linux; U; Android 13; ru-ru; Redmi Note 12 Build/TP1A.220624.014) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/112.0.5615.136 Mobile Safari/537.36 XiaoMi/MiuiBrowser/14.10.0-gn",
            "miui-browser", "14.10.0", "android", "android-13.0", "smartphone", false),
        ("Mozilla/5.0 (Linux; U; Android 10; ru-RU; SM-A505F Build/QP1A.190711.020) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/78.0.3904.108 OPR/57.0.2830.0 Mobile Safari/537.36",
            "opera", "57.0.2830.0", "android", "android-10.0", "smartphone", false),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/129.0.6668.81 Mobile Safari/537.36",
            "webview", "129.0.6668.81", "android", "android-14.0", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
            "webview", "", "ios", "ios-17.2", "smartphone", false),
        ("Mozilla/5.0 (Linux; U; Android 4.4; en-us; GT-I9300 Build/KOT49H) AppleWebKit/534.30 (KHTML, like Gecko) Version/4.0 Mobile Safari/534.30",
            "android-browser", "4.0", "android", "android-4.4-kitkat", "smartphone", false),
        ("Mozilla/5.0 (Mobile; Windows Phone 8.1; Android 4.0; ARM; Trident/7.0; Touch; rv:11.0; IEMobile/11.0; NOKIA; Lumia 635) like iPhone OS 7_0_3 Mac OS X AppleWebKit/537 (KHTML, like Gecko) Mobile Safari/537",
            "internet-explorer", "11.0", "windows-phone", "windows-phone-8.1", "smartphone", false),
        ("Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 Edge/15.14977",
            "edge", "15.14977", "windows-phone", "windows-phone-10.0", "smartphone", false),
        ("Mozilla/5.0 (Phone; OpenHarmony 4.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/114.0.0.0 Safari/537.36 ArkWeb/4.1.6.1 Mobile HuaweiBrowser/5.0.4.300",
            "huawei-browser", "5.0.4.300", "harmonyos", "harmonyos-4.1", "smartphone", false),
    ];

    #[test]
    fn mobile_browsers() {
        check(MOBILE_BROWSERS, NONE);
    }

    #[rustfmt::skip]
    const TABLETS: &[Row] = &[
        ("Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
            "safari", "17.6", "ios", "ios-17.6", "tablet", false),
        ("Mozilla/5.0 (iPad; CPU OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
            "chrome", "124.0.6367.88", "ios", "ios-17.4.1", "tablet", false),
        ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",
            "chrome", "129.0.0.0", "android", "android-10.0", "tablet", false),
        ("Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Safari/537.36",
            "samsung-internet", "24.0", "android", "android-13.0", "tablet", false),
        ("Mozilla/5.0 (Android 13; Tablet; rv:125.0) Gecko/125.0 Firefox/125.0",
            "firefox", "125.0", "android", "android-13.0", "tablet", false),
        ("Mozilla/5.0 (Linux; Android 9; KFMAWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/124.2.1 like Chrome/124.0.6367.179 Safari/537.36",
            "silk", "124.2.1", "android", "android-9.0-pie", "tablet", false),
        ("Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/444.0.0.35.111;FBBV/538011131;FBDV/iPad13,1;FBMD/iPad;FBSN/iPadOS;FBSV/17.1;FBSS/2;FBID/tablet;FBLC/en_US;FBOP/5]",
            "facebook-app", "444.0.0.35.111", "ios", "ios-17.1", "tablet", false),
        // iPad Safari asking for the desktop site: indistinguishable from a Mac
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
            "safari", "17.6", "macos", "macos-10.15.7", "desktop", false),
    ];

    #[test]
    fn tablets() {
        check(TABLETS, NONE);
    }

    #[rustfmt::skip]
    const IN_APP: &[Row] = &[
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 346.0.0.29.92 (iPhone15,2; iOS 17_6; fr_FR; fr; scale=3.00; 1179x2556; 634826386)",
            "instagram-app", "346.0.0.29.92", "ios", "ios-17.6", "smartphone", false),
        ("Mozilla/5.0 (Linux; Android 14; SM-S911B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/129.0.6668.81 Mobile Safari/537.36 Instagram 349.0.0.39.105 Android (34/14; 480dpi; 1080x2340; samsung; SM-S911B; dm1q; qcom; fr_FR; 634826385)",
            "instagram-app", "349.0.0.39.105", "android", "android-14.0", "smartphone", false),
        // a Xiaomi codename ("ruby") and Google/google must not read as bots
        ("Mozilla/5.0 (Linux; Android 13; 22101316G Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.0.6422.165 Mobile Safari/537.36 Instagram 333.0.0.42.91 Android (33/13; 440dpi; 1080x2400; Xiaomi/Redmi; 22101316G; ruby; mt6877; en_US; 606558400)",
            "instagram-app", "333.0.0.42.91", "android", "android-13.0", "smartphone", false),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.0.0.0 Mobile Safari/537.36 Instagram 300.0.0.32.100 Google/google",
            "instagram-app", "300.0.0.32.100", "android", "android-14.0", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Barcelona 349.0.0.21.106 (iPhone15,2; iOS 17_6; fr_FR; fr; scale=3.00; 1179x2556; 635000000)",
            "threads-app", "349.0.0.21.106", "ios", "ios-17.6", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/450.0.0.38.108;FBBV/567289435;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.2;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/80]",
            "facebook-app", "450.0.0.38.108", "ios", "ios-17.2", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/MessengerForiOS;FBAV/442.0.0.42.110;FBBV/556001370;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.2;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]",
            "messenger-app", "442.0.0.42.110", "ios", "ios-17.2", "smartphone", false),
        ("Mozilla/5.0 (Linux; Android 13; SM-G991B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.0.0 Mobile Safari/537.36 [FB_IAB/Orca-Android;FBAV/440.0.0.31.105;]",
            "messenger-app", "440.0.0.31.105", "android", "android-13.0", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [LinkedInApp]/9.30.1563",
            "linkedin-app", "9.30.1563", "ios", "ios-17.6", "smartphone", false),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/129.0.6668.81 Mobile Safari/537.36 [LinkedInApp]/4.1.1010",
            "linkedin-app", "4.1.1010", "android", "android-14.0", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [LinkedInApp]",
            "linkedin-app", "", "ios", "ios-17.1", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 musical_ly_36.5.0 JsSdk/2.0 NetType/WIFI Channel/App Store ByteLocale/fr Region/FR ByteFullLocale/fr",
            "tiktok-app", "36.5.0", "ios", "ios-17.6", "smartphone", false),
        ("Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230901.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/129.0.6668.81 Mobile Safari/537.36 trill_360504 JsSdk/1.0 NetType/WIFI Channel/googleplay AppName/musical_ly app_version/36.5.4 ByteLocale/fr ByteFullLocale/fr Region/FR BytedanceWebview/d8a21c6",
            "tiktok-app", "36.5.4", "android", "android-13.0", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Snapchat/13.10.0.42 (like Safari/8618.3.11.10.5, panda)",
            "snapchat-app", "13.10.0.42", "ios", "ios-17.6", "smartphone", false),
        ("Mozilla/5.0 (Linux; Android 11; SM-G970U Build/RP1A.200720.012; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/88.0.4324.93 Mobile Safari/537.36Snapchat11.4.5.67 Beta (SM-G970U; Android 11#G970USQS4FUA1#30; gzip)",
            "snapchat-app", "11.4.5.67", "android", "android-11.0", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [Pinterest/iOS]",
            "pinterest-app", "", "ios", "ios-17.6", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Twitter for iPhone/10.50",
            "twitter-app", "10.50", "ios", "ios-17.2", "smartphone", false),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.0.0.0 Mobile Safari/537.36 TwitterAndroid",
            "twitter-app", "", "android", "android-14.0", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Safari Line/14.14.0",
            "line-app", "14.14.0", "ios", "ios-17.6", "smartphone", false),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.0.0.0 Mobile Safari/537.36 Line/13.20.0/IAB",
            "line-app", "13.20.0", "android", "android-14.0", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50(0x1800323c) NetType/WIFI Language/zh_CN",
            "wechat-app", "8.0.50", "ios", "ios-17.6", "smartphone", false),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.0.0.0 Mobile Safari/537.36 Telegram-Android/10.14.5",
            "telegram-app", "10.14.5", "android", "android-14.0", "smartphone", false),
        ("Mozilla/5.0 (Linux; Android 13; SM-A536E) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36 WhatsApp/2.24.10.85",
            "whatsapp-app", "2.24.10.85", "android", "android-13.0", "smartphone", false),
        ("Mozilla/5.0 (Linux; Android 9; CPH1951 Build/PPR1.180610.011; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/83.0.4103.101 Mobile Safari/537.36 Viber/13.2.0.8",
            "viber-app", "13.2.0.8", "android", "android-9.0-pie", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 KAKAOTALK 10.9.5",
            "kakaotalk-app", "10.9.5", "ios", "ios-17.5", "smartphone", false),
        ("Mozilla/5.0 (Linux; Android 13; SM-A536E Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.0.0 Mobile Safari/537.36 Zalo android/12100656 ZaloTheme/light ZaloLanguage/vi",
            "zalo-app", "", "android", "android-13.0", "smartphone", false),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/333.0.676775632 Mobile/15E148 Safari/604.1",
            "google-app", "333.0.676775632", "ios", "ios-17.6", "smartphone", false),
        ("Mozilla/5.0 (Linux; arm_64; Android 12; SM-A125F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 YaApp_Android/24.66.1 YaSearchBrowser/24.66.1 BroPP/1.0 SA/3 Mobile Safari/537.36",
            "yandex-app", "24.66.1", "android", "android-12.0", "smartphone", false),
    ];

    #[test]
    fn in_app_browsers() {
        check(IN_APP, NONE);
    }

    #[rustfmt::skip]
    const TV_CONSOLE_AND_OTHER: &[Row] = &[
        ("Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36",
            "", "", "tizen", "tizen-6.0", "tv", false),
        ("Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 Safari/537.36 WebAppManager",
            "chrome", "79.0.3945.79", "webos", "", "tv", false),
        ("Mozilla/5.0 (Linux; Android 9; BRAVIA 4K UR2 Build/PTT1.190515.001.S52) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/111.0.5563.116 Safari/537.36",
            "chrome", "111.0.5563.116", "android", "android-9.0-pie", "tv", false),
        ("Mozilla/5.0 (Linux; Android 9; AFTKA) AppleWebKit/537.36 (KHTML, like Gecko) Silk/124.2.1 like Chrome/124.0.6367.179 Safari/537.36",
            "silk", "124.2.1", "android", "android-9.0-pie", "tv", false),
        ("Roku/DVP-9.10 (519.10E04111A)",
            "", "", "roku", "", "tv", false),
        ("Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15",
            "", "", "playstation", "playstation-2.26", "console", false),
        ("Mozilla/5.0 (PlayStation 4 5.55) AppleWebKit/601.2 (KHTML, like Gecko)",
            "", "", "playstation", "playstation-5.55", "console", false),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36 Edge/18.19041",
            "edge", "18.19041", "xbox", "", "console", false),
        ("Mozilla/5.0 (Nintendo Switch; WifiWebAuthApplet) AppleWebKit/606.4 (KHTML, like Gecko) NF/6.0.1.15.4 NintendoBrowser/5.1.0.20393",
            "nintendo-browser", "5.1.0.20393", "nintendo", "", "console", false),
        ("Mozilla/5.0 (Mobile; Nokia 8110 4G; rv:48.0) Gecko/48.0 Firefox/48.0 KAIOS/2.5",
            "firefox", "48.0", "kaios", "kaios-2.5", "feature-phone", false),
        ("Opera/9.80 (J2ME/MIDP; Opera Mini/9.80 (S60; SymbOS; Opera Mobi/23.348; U; en) Presto/2.5.25 Version/10.54",
            "opera-mini", "9.80", "symbian", "", "feature-phone", false),
        ("DoCoMo/2.0 P903i(c100;TB;W24H12)",
            "", "", "", "", "feature-phone", false),
        ("Mozilla/5.0 (X11; Linux x86_64; Quest 3) AppleWebKit/537.36 (KHTML, like Gecko) OculusBrowser/31.0.0.7.38 SamsungBrowser/4.0 Chrome/120.0.6099.283 VR Safari/537.36",
            "oculus-browser", "31.0.0.7.38", "linux", "", "other", false),
        ("Mozilla/5.0 (X11; U; Linux armv7l like Android; en-us) AppleWebKit/531.2+ (KHTML, like Gecko) Version/5.0 Safari/533.2+ Kindle/3.0+",
            "", "", "linux", "", "other", false),
    ];

    #[test]
    fn tv_console_and_other_devices() {
        check(TV_CONSOLE_AND_OTHER, NONE);
    }

    const ANDROID_VERSIONS: &[(&str, &str)] = &[
        ("1.5", "android-1.5-cupcake"),
        ("1.6", "android-1.6-donut"),
        ("2.1", "android-2.1-eclair"),
        ("2.2.1", "android-2.2.1-froyo"),
        ("2.3.6", "android-2.3.6-gingerbread"),
        ("3.2", "android-3.2-honeycomb"),
        ("4.0.4", "android-4.0.4-ice-cream-sandwich"),
        ("4.1.2", "android-4.1.2-jelly-bean"),
        ("4.3", "android-4.3-jelly-bean"),
        ("4.4.2", "android-4.4.2-kitkat"),
        ("5.1.1", "android-5.1.1-lollipop"),
        ("6.0.1", "android-6.0.1-marshmallow"),
        ("7.0", "android-7.0-nougat"),
        ("8.1", "android-8.1-oreo"),
        ("8.1.0", "android-8.1.0-oreo"),
        ("9", "android-9.0-pie"),
        ("10", "android-10.0"),
        ("12.1", "android-12.1"),
        ("14", "android-14.0"),
    ];

    #[test]
    fn android_versions_and_codenames() {
        for (version, want) in ANDROID_VERSIONS {
            let ua = format!(
                "Mozilla/5.0 (Linux; Android {version}; Pixel) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/90.0.0.0 Mobile Safari/537.36"
            );
            let got = classify(&ua, NONE, &bots());
            assert_eq!(got.os_version, *want, "{ua}");
            assert_eq!(got.os_name, "android");
        }
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
    fn brand_lists_parse_with_grease() {
        let got: Vec<_> = brands(r#""Not;A=Brand";v="8", "Chromium";v="130" , "Google Chrome";v="130""#).collect();
        assert_eq!(
            got,
            vec![("Not;A=Brand", "8"), ("Chromium", "130"), ("Google Chrome", "130")]
        );
        assert_eq!(brands("").count(), 0);
        assert_eq!(brands("garbage, \"x\"").collect::<Vec<_>>(), vec![("x", "")]);
    }

    /// Preview fetchers, scanners, crawlers and scripts, with real agents.
    const BOT_AGENTS: &[&str] = &[
        // link previews
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "facebookcatalog/1.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0",
        "meta-externalagent/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)",
        "Twitterbot/1.0",
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        "Mozilla/5.0 (compatible; Pinterestbot/1.0; +http://www.pinterest.com/bot.html)",
        "Pinterest/0.2 (+https://www.pinterest.com/bot.html)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Slackbot 1.0 (+https://api.slack.com/robots)",
        "Slack-ImgProxy (+https://api.slack.com/robots)",
        "WhatsApp/2.23.20.0 A",
        "WhatsApp/2.19.92 i",
        "TelegramBot (like TwitterBot)",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "http.rb/5.1.1 (Mastodon/4.2.10; +https://mastodon.social/)",
        "Mozilla/5.0 (compatible; Bluesky Cardyb/1.1; +mailto:support@bsky.app)",
        "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; MicrosoftPreview/2.0; +https://aka.ms/MicrosoftPreview) Chrome/116.0.1938.76 Safari/537.36",
        "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/534+ (KHTML, like Gecko) BingPreview/1.0b",
        "Mozilla/5.0 (compatible; redditbot/1.0; +http://www.reddit.com/feedback)",
        "Mozilla/5.0 (compatible; Embedly/0.2; +http://support.embed.ly/)",
        "Iframely/1.3.1 (+https://iframely.com/docs/about)",
        "Mozilla/5.0 (compatible; Snap URL Preview Service; bot; snapchat; https://developers.snap.com/robots)",
        "Viber/20.3.0.0 CFNetwork/1410.0.3 Darwin/22.6.0",
        "Mozilla/5.0 (compatible; vkShare; +http://vk.com/dev/Share)",
        "Mozilla/5.0 (compatible; OdklBot/1.0 like Linux; klass@odnoklassniki.ru)",
        "Mozilla/5.0 (compatible; Yahoo Link Preview; https://help.yahoo.com/kb/mail/yahoo-link-preview-SLN23615.html)",
        // mail and office scanners
        "Microsoft Office Existence Discovery",
        "Mozilla/5.0 (Windows NT 10.0; Microsoft Outlook 16.0.1; ms-office; MSOffice 16)",
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "Mozilla/5.0 (compatible; Barracuda Sentinel)",
        // search engines
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.6422.175 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; Google-InspectionTool/1.0;)",
        "Mozilla/5.0 (compatible; GoogleOther)",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36 (compatible; Google-Read-Aloud; +https://support.google.com/webmasters/answer/1061943)",
        "AdsBot-Google (+http://www.google.com/adsbot.html)",
        "FeedFetcher-Google; (+http://www.google.com/feedfetcher.html)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        "Mozilla/5.0 (compatible; YandexMetrika/2.0; +http://yandex.com/bots yabs01)",
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
        "Mozilla/5.0 (compatible; DuckAssistBot/1.0; +http://duckduckgo.com/duckassistbot.html)",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
        "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
        "ia_archiver (+http://www.alexa.com/site/help/webmasters; crawler@alexa.com)",
        "Mozilla/5.0 (compatible; archive.org_bot +http://archive.org/details/archive.org_bot)",
        "Mozilla/5.0 (compatible; Yeti/1.1; +https://naver.me/spd)",
        "Mozilla/5.0 (compatible; SeznamBot/3.2; +http://napoveda.seznam.cz/en/seznambot-intro/)",
        "Mozilla/5.0 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
        // ai crawlers
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; OAI-SearchBot/1.0; +https://openai.com/searchbot",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; Claude-User/1.0; +Claude-User@anthropic.com",
        "Mozilla/5.0 (compatible; PerplexityBot/1.0; +https://perplexity.ai/perplexitybot)",
        "Mozilla/5.0 (compatible; Perplexity-User/1.0; +https://perplexity.ai/perplexity-user)",
        "CCBot/2.0 (https://commoncrawl.org/faq/)",
        "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Amazonbot/0.1; +https://developer.amazon.com/support/amazonbot) Chrome/119.0.6045.214 Safari/537.36",
        // seo and monitoring
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
        "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
        "Mozilla/5.0 (compatible; DotBot/1.2; +https://opensiteexplorer.org/dotbot; help@moz.com)",
        "Screaming Frog SEO Spider/19.4",
        "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
        "Mozilla/5.0 (compatible; pingbot/2.0; +http://www.pingdom.com/)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36 PTST/240301.000000",
        "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
        // headless browsers
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/141.0.7390.37 Safari/537.36",
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
        // libraries and tools
        "curl/8.4.0",
        "curl",
        "Wget/1.21.4",
        "python-requests/2.31.0",
        "Python-urllib/3.11",
        "python-httpx/0.27.0",
        "Python/3.11 aiohttp/3.9.1",
        "Go-http-client/2.0",
        "okhttp/4.12.0",
        "Java/17.0.2",
        "Apache-HttpClient/4.5.13 (Java/11.0.19)",
        "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
        "axios/1.7.2",
        "undici",
        "libwww-perl/6.72",
        "Ruby",
        "Faraday v2.9.0",
        "PostmanRuntime/7.37.3",
        "insomnia/2023.5.8",
        "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 7 Build/UQ1A.240205.004)",
        "MyApp/1 CFNetwork/1490.0.4 Darwin/23.5.0",
        "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
        "Mozilla/5.0 (Windows; U; Windows NT 5.1; en-US) Speedy Spider (http://www.entireweb.com/about/search_tech/speedy_spider/)",
    ];

    #[test]
    fn every_kind_of_bot_is_flagged() {
        let list = bots();
        let missed: Vec<_> = BOT_AGENTS.iter().filter(|ua| !classify(ua, NONE, &list).bot).collect();
        assert!(missed.is_empty(), "not flagged: {missed:#?}");
    }

    #[rustfmt::skip]
    #[test]
    fn bots_still_report_what_they_claim() {
        check(
            &[
                ("curl/8.4.0", "", "", "", "", "", true),
                ("WhatsApp/2.23.20.0 A", "", "", "", "", "", true),
                ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.6422.175 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                    "chrome", "125.0.6422.175", "android", "android-6.0.1-marshmallow", "smartphone", true),
                ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.28 Safari/537.36",
                    "headless-chrome", "120.0.6099.28", "linux", "", "desktop", true),
                ("AppleCoreMedia/1.0.0.19J346 (Apple TV; U; CPU OS 15_0 like Mac OS X; en_us)",
                    "", "", "tvos", "tvos-15.0", "tv", true),
            ],
            NONE,
        );
    }

    #[test]
    fn no_real_browser_is_flagged() {
        let list = bots();
        let rows = DESKTOP_BROWSERS
            .iter()
            .chain(MOBILE_BROWSERS)
            .chain(TABLETS)
            .chain(IN_APP)
            .chain(TV_CONSOLE_AND_OTHER);
        let flagged: Vec<_> = rows.filter(|row| list.matches(row.0)).map(|row| row.0).collect();
        assert!(flagged.is_empty(), "flagged: {flagged:#?}");
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
    fn embedded_list_parses_cleanly() {
        let text = include_str!("../../../data/bots.txt");
        let list = match BotList::parse(text, "data/bots.txt") {
            Ok(list) => list,
            Err(errors) => panic!("data/bots.txt has bad lines:\n{}", errors.join("\n")),
        };
        assert!(list.len() >= 300, "only {} tokens", list.len());
        assert_eq!(BotList::embedded().len(), list.len());
        assert!(!list.is_empty());
    }

    #[test]
    fn anchored_tokens_match_only_at_the_start() {
        let list = BotList::parse("^WhatsApp/\nSlackbot\n", "test").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(list.len(), 2);
        assert!(list.matches("WhatsApp/2.23.20.0 A"));
        assert!(list.matches("  whatsapp/2.23.20.0 A"));
        assert!(
            !list.matches("Mozilla/5.0 (Linux; Android 13) Chrome/126.0.0.0 Mobile Safari/537.36 WhatsApp/2.24.10.85")
        );
        assert!(list.matches("SLACKBOT-LinkExpanding 1.0"));
        assert!(!list.matches("Mozilla/5.0 Slack/4.36 Electron/28"));
    }

    #[test]
    fn parse_reports_every_bad_line_with_its_number() {
        let text = "# header\n\ncurl/\nab\n^\n^ spaced\nCURL/\ntab\there\nok-token\n^curl/\n";
        let errors = match BotList::parse(text, "bots.txt") {
            Ok(_) => panic!("should fail"),
            Err(errors) => errors,
        };
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(errors[0].starts_with("bots.txt:4: "), "{}", errors[0]);
        assert!(errors[0].contains("shorter than 3"));
        assert!(errors[1].starts_with("bots.txt:5: "), "{}", errors[1]);
        assert!(errors[2].starts_with("bots.txt:6: "), "{}", errors[2]);
        assert!(errors[3].starts_with("bots.txt:7: "), "{}", errors[3]);
        assert!(errors[3].contains("repeats line 3"));
        assert!(errors[4].starts_with("bots.txt:8: "), "{}", errors[4]);
        assert!(errors[4].contains("control character"));

        let long = format!("{}\n", "x".repeat(MAX_TOKEN_BYTES + 1));
        let errors = BotList::parse(&long, "o").err().unwrap_or_default();
        assert_eq!(
            errors,
            vec![format!("o:1: token is longer than {MAX_TOKEN_BYTES} bytes")]
        );

        // an anchored and a plain token of the same text are different tokens
        let list = BotList::parse("curl/\n^curl/\r\n", "o").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(list.len(), 2);
        let empty = BotList::parse("# nothing\n\n", "o").unwrap_or_else(|e| panic!("{e:?}"));
        assert!(empty.is_empty());
        assert!(!empty.matches("curl/8"));
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
