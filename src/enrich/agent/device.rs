//! Device class rules: `smartphone`, `tablet`, `desktop`, `feature-phone`,
//! `tv`, `console` or `other`, from the agent, the OS already read from it,
//! woothee's category and the `Sec-CH-UA-Mobile` hint.
//!
//! Only [`classify`](super::classify) calls these. They are pure functions
//! that return static strings: no I/O, no panics, no allocation.

use super::clip;

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

pub(super) fn read_device(
    ua: &str,
    os: &str,
    base_category: &str,
    base_os: &str,
    mobile: Option<bool>,
) -> &'static str {
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
pub(super) fn is_fire_tv(ua: &str) -> bool {
    ua.match_indices("; AFT")
        .any(|(at, m)| ua.as_bytes().get(at + m.len()).is_some_and(|b| b.is_ascii_uppercase()))
}

pub(super) fn mobile_flag(raw: &str) -> Option<bool> {
    match clip(raw, 8).trim() {
        "?1" => Some(true),
        "?0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use crate::enrich::agent::tests::{NONE, Row, check};

    #[rustfmt::skip]
    pub(in crate::enrich::agent) const TABLETS: &[Row] = &[
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
    pub(in crate::enrich::agent) const TV_CONSOLE_AND_OTHER: &[Row] = &[
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
}
