//! Property tests of the config loader on any input: whatever a file says, loading it gives a
//! configuration or a list of errors naming the file, never a panic.

use proptest::prelude::*;

use super::*;

/// TOML-like text: section headers and keys this loader knows, values of every shape.
fn toml_like() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("listen"),
        Just("max_connections"),
        Just("click_queue"),
        Just("header_read_timeout"),
        Just("idle_timeout"),
        Just("max_header_bytes"),
        Just("flush_interval"),
        Just("batch_max_age"),
        Just("batch_max_bytes"),
        Just("trusted_proxies"),
        Just("type"),
        Just("url"),
        Just("name"),
        Just("cert"),
    ];
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        "[0-9]{1,20}(ms|s|m|h|d|y|KB|MiB|GB)?".prop_map(|v| format!("\"{v}\"")),
        "[ -~]{0,20}".prop_map(|v| format!("{v:?}")),
        Just("[\"10.0.0.0/8\", \"x\"]".to_string()),
        Just("true".to_string()),
    ];
    let line = prop_oneof![
        prop_oneof![
            Just("[server]"),
            Just("[session]"),
            Just("[spool]"),
            Just("[tls]"),
            Just("[[domain]]"),
            Just("[[sink]]"),
        ]
        .prop_map(String::from),
        (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        "[ -~]{0,30}",
    ];
    proptest::collection::vec(line, 0..16).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_file_loads_or_is_refused_naming_it(text in toml_like()) {
        match Config::from_toml_str(&text, "t.toml") {
            Ok(_) => {}
            Err(e) => prop_assert!(e.to_string().starts_with("t.toml: "), "{e}"),
        }
    }
}
