//! Property tests of the classifiers on any input: a user agent, its client hints and a
//! `Referer` come from the request, so whatever their bytes, classification must not panic and
//! must answer within the event's vocabulary.

use proptest::prelude::*;

use super::agent::{self, BotList, ClientHints};
use super::referrer::{ReferrerTable, SOURCE_TYPES};

/// The device slugs an event may carry (DESIGN: `client.agent.device.name`).
const DEVICES: [&str; 8] = [
    "",
    "smartphone",
    "tablet",
    "desktop",
    "feature-phone",
    "tv",
    "console",
    "other",
];

/// Strings that look like the inputs: printable ASCII with the separators agents use, some
/// tokens real agents carry, and any Unicode now and then.
fn agent_like() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("Mozilla/5.0 ".to_string()),
        Just("(Linux; Android 14; Pixel 8) ".to_string()),
        Just("(iPhone; CPU iPhone OS 17_5 like Mac OS X) ".to_string()),
        Just("(Windows NT 10.0; Win64; x64) ".to_string()),
        Just("AppleWebKit/537.36 (KHTML, like Gecko) ".to_string()),
        Just("Chrome/126.0.0.0 Mobile Safari/537.36".to_string()),
        Just("compatible; ".to_string()),
        Just("bot".to_string()),
        Just("[FBAN/FBIOS;FBAV/1.0]".to_string()),
        "[ -~]{0,24}",
        any::<String>(),
    ];
    proptest::collection::vec(token, 0..12).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_agent_and_hints_classify_within_the_vocabulary(
        ua in agent_like(),
        brands in proptest::option::of("[ -~]{0,64}"),
        mobile in proptest::option::of("[ -~]{0,4}"),
        platform in proptest::option::of("[ -~]{0,16}"),
    ) {
        static BOTS: std::sync::OnceLock<BotList> = std::sync::OnceLock::new();
        let bots = BOTS.get_or_init(BotList::embedded);
        let hints = ClientHints {
            sec_ch_ua: brands.as_deref(),
            mobile: mobile.as_deref(),
            platform: platform.as_deref(),
        };
        let info = agent::classify(&ua, hints, bots);
        prop_assert!(DEVICES.contains(&info.device), "device {:?} for {ua:?}", info.device);
        for field in [&info.browser_name, &info.browser_version, &info.os_name, &info.os_version] {
            prop_assert!(field.len() <= 256, "{field:?} for {ua:?}");
        }
    }

    #[test]
    fn any_referer_classifies_within_the_vocabulary(referer in agent_like(), domain in "[a-z.]{0,20}") {
        static TABLE: std::sync::OnceLock<ReferrerTable> = std::sync::OnceLock::new();
        let table = TABLE.get_or_init(ReferrerTable::embedded);
        let r = table.classify(Some(&referer), &domain);
        let kind = r.origin_type.as_str();
        prop_assert!(
            ["direct", "internal", "other"].contains(&kind) || SOURCE_TYPES.contains(&kind),
            "type {kind:?} for {referer:?}"
        );
        // The referral always serializes (it goes into every event).
        prop_assert!(serde_json::to_string(&r).is_ok());
    }
}
