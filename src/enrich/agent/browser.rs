//! Browser rules: which browser, or which app's web view, an agent names and
//! the version it sends; and which Chromium browser a `Sec-CH-UA` brand list
//! names when the agent hides it.
//!
//! Only [`classify`](super::classify) calls these. They are pure functions of
//! the agent's text: no I/O, no panics, no allocation (results borrow the agent
//! or the hint).

use super::{MAX_UA_BYTES, after, chrome_version, clip, first_version, lead_version, version_after};

/// Browser slug and version as sent, or ("", "").
pub(super) fn read_browser<'a>(ua: &'a str, os: &str) -> (&'static str, &'a str) {
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
pub(super) fn brand_from_hints<'h>(list: &'h str, ua_browser: &str) -> Option<(&'static str, &'h str)> {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    use crate::enrich::agent::tests::{NONE, Row, check};

    #[rustfmt::skip]
    pub(in crate::enrich::agent) const DESKTOP_BROWSERS: &[Row] = &[
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
    pub(in crate::enrich::agent) const MOBILE_BROWSERS: &[Row] = &[
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
    pub(in crate::enrich::agent) const IN_APP: &[Row] = &[
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
}
