//! Property tests of the hit path's text handling on any input: the request's query is the
//! visitor's, merged into a destination that the operator chose; whatever the query holds, the
//! `Location` must still send the visitor to the destination's host.

use proptest::prelude::*;

use super::redirect::merge_query;

/// Destinations as a link table holds them (already normalised by the url crate).
const DESTINATIONS: [&str; 6] = [
    "https://example.com/",
    "https://example.com/path?a=1&b=2",
    "https://shop.example.com/p/q?utm_source=x#frag",
    "http://127.0.0.1:8080/x?",
    "https://xn--r8jz45g.jp/%E3%83%91?q=%20",
    "https://example.com/?a=1&a=2&%41=3",
];

/// Queries a visitor can send: parameters, separators, escapes valid and not, and any
/// characters, `#`, `/`, `@` and `?` included.
fn query() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("a=9".to_string()),
        Just("&".to_string()),
        Just("=".to_string()),
        Just("%".to_string()),
        Just("%ZZ".to_string()),
        Just("%41".to_string()),
        Just("#".to_string()),
        Just("@evil.example/".to_string()),
        Just("//evil.example".to_string()),
        Just("?".to_string()),
        "[ -~]{0,12}",
        any::<String>(),
    ];
    proptest::collection::vec(piece, 0..10).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_merged_location_keeps_the_destinations_host(
        d in 0..DESTINATIONS.len(),
        q in query(),
    ) {
        let destination = DESTINATIONS[d];
        let merged = merge_query(destination, &q);
        let want = url::Url::parse(destination).unwrap();
        // The scheme, authority and path are the destination's, byte for byte.
        let prefix = &destination[..destination.find(['?', '#']).unwrap_or(destination.len())];
        prop_assert!(merged.starts_with(prefix), "{merged:?} from {destination:?} + {q:?}");
        if let Ok(got) = url::Url::parse(&merged) {
            prop_assert_eq!(got.host_str(), want.host_str(), "{} from {} + {:?}", merged, destination, q);
            prop_assert_eq!(got.port(), want.port());
        }
    }
}
