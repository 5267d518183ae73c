//! Operating system rules: the OS slug and its version as the click event
//! carries it (`android-9.0-pie`, `ios-17.1.2`, `windows-10`), read from the
//! agent's own words, with woothee's OS name and the `Sec-CH-UA-Platform` hint
//! as fallbacks.
//!
//! Only [`classify`](super::classify) calls these. They are pure functions: no
//! I/O, no panics; the only allocation is the short version string.

use super::{after, clip, first_version, lead_os_version, lead_version, version_after};

/// OS slug and formatted version from the agent's own words.
pub(super) fn read_os(ua: &str) -> Option<(&'static str, String)> {
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
pub(super) fn android_version(ua: &str) -> Option<&str> {
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
pub(super) fn os_from_base(base_os: &str) -> &'static str {
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

pub(super) fn platform_slug(raw: &str) -> Option<&'static str> {
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

#[cfg(test)]
mod tests {
    use crate::enrich::agent::classify;
    use crate::enrich::agent::tests::{NONE, bots};

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
}
