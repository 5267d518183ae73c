use super::*;

fn errors_of(text: &str) -> Vec<String> {
    match Config::from_toml_str(text, "t.toml") {
        Ok(_) => vec![],
        Err(ConfigError::Invalid { errors, .. }) => errors,
        Err(e) => vec![e.to_string()],
    }
}

#[test]
fn defaults_are_valid_and_documented_values() {
    let c = Config::embedded_default();
    assert_eq!(c.server.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(c.server.default_domain.as_deref(), Some(DEFAULT_DEFAULT_DOMAIN));
    assert_eq!(c.spool.flush_interval, Duration::from_millis(200));
    assert_eq!(c.sinks.len(), 1);
    assert!(matches!(c.sinks[0].kind, SinkKind::File { .. }));
}

#[test]
fn every_error_is_reported_at_once() {
    let errs = errors_of(
        r#"
        [server]
        listen = "nowhere"
        trusted_proxies = ["10.0.0.0/33"]
        bogus = 1
        [session]
        idle_timeout = "soon"
        [[domain]]
        name = "a.test"
        status = 200
        not_found_url = "ftp://x"
        [[sink]]
        type = "webhook"
        [[sink]]
        type = "carrier-pigeon"
        "#,
    );
    let joined = errs.join("\n");
    for needle in [
        "[server] listen",
        "[server] trusted_proxies",
        "unknown key 'bogus'",
        "[session] idle_timeout",
        "status 200",
        "not_found_url",
        "'url' is required",
        "carrier-pigeon",
    ] {
        assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
    }
}

#[test]
fn sizes_and_durations() {
    let cases: &[(&str, Result<u64, ()>)] = &[
        ("1048576", Ok(1_048_576)),
        ("10MB", Ok(10_000_000)),
        ("512 KiB", Ok(524_288)),
        ("1GiB", Ok(1 << 30)),
        ("ten", Err(())),
        ("5 parsecs", Err(())),
        ("99999999999999999999GB", Err(())),
    ];
    for (text, want) in cases {
        assert_eq!(parse_bytes(text).map_err(|_| ()), *want, "{text}");
    }
    assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
    assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
    assert!(parse_duration("1 fortnightish").is_err());
}

#[test]
fn secrets_from_env_and_redacted_in_debug() {
    // set_var is unsafe in edition 2024: read a variable every environment has instead.
    let path = std::env::var("PATH").unwrap();
    let c = Config::from_toml_str(
        r#"
        [[sink]]
        type = "webhook"
        name = "hook"
        url = "https://example.test/in"
        key = "env:PATH"
        headers = { Authorization = "Bearer hunter2" }
        signing_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        "#,
        "t.toml",
    )
    .unwrap();
    let SinkKind::Webhook(w) = &c.sinks[0].kind else {
        panic!()
    };
    assert_eq!(w.key.0, path);
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!debug.contains(&path), "{debug}");
    assert!(!debug.contains("MfKQ9r8"), "{debug}");
    let errs = errors_of(
        r#"
        [[sink]]
        type = "webhook"
        url = "https://example.test/in"
        key = "env:CLICKSTREAM_SURELY_UNSET_VARIABLE"
        "#,
    );
    assert!(errs[0].contains("CLICKSTREAM_SURELY_UNSET_VARIABLE"), "{errs:?}");
}

#[test]
fn redirect_urls() {
    assert!(check_redirect_url("https://example.com/x?y=1").is_ok());
    for bad in [
        "htp://x",
        "/relative",
        "mailto:a@b.c",
        "https://exa\nmple.com/",
        "javascript:alert(1)",
        "",
    ] {
        assert!(check_redirect_url(bad).is_err(), "{bad:?}");
    }
}

/// Every number and duration key, each with a value under its range and one over it, and the
/// message fragment that names the range. Each would, unchecked, panic somewhere, stop serving,
/// allocate gigabytes or fire a timer at once.
#[test]
fn every_number_and_duration_is_range_checked() {
    let huge = "9223372036854775807";
    let forever = "\"500000000000y\"";
    // (section, key, too small, too large, range as the message says it)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        ("server", "reload_max_drop", "-0.1", "1.5", "from 0.0 to 1.0"),
        (
            "server",
            "reload_poll_interval",
            "\"5ms\"",
            forever,
            "or a duration from 10ms to 1day",
        ),
        ("server", "header_read_timeout", "\"0s\"", forever, "from 100ms to 1h"),
        ("server", "idle_timeout", "\"0s\"", forever, "from 100ms to 1day"),
        ("server", "max_header_bytes", "4096", "4294967296", "from 8KiB to 1MiB"),
        ("server", "max_connections", "0", huge, "from 1 to 1000000"),
        ("server", "click_queue", "0", huge, "from 1 to 16777216"),
        ("server", "shutdown_grace", "\"0s\"", forever, "from 1ms to 1h"),
        ("session", "idle_timeout", "\"0s\"", forever, "from 1s to 1day"),
        ("session", "max_entries", "0", huge, "from 1 to 100000000"),
        ("spool", "flush_interval", "\"0s\"", forever, "from 1ms to 1h"),
        ("spool", "segment_max_bytes", "1024", "\"2GiB\"", "from 4KiB to 1GiB"),
        ("[sink", "batch_max_events", "0", huge, "from 1 to 10000000"),
        ("[sink", "batch_max_bytes", "1", "\"1GiB\"", "from 1KiB to 256MiB"),
        ("[sink", "batch_max_age", "\"0s\"", forever, "from 1ms to 1h"),
        (
            "[sink",
            "spool_max_bytes",
            "\"1MiB\"",
            "\"2048TiB\"",
            "from 8MiB to 1024TiB",
        ),
        ("[sink", "retry_initial", "\"0s\"", forever, "from 1ms to 1h"),
        ("[sink", "retry_max", "\"100ms\"", forever, "from 250ms to 1day"),
        ("[sink", "timeout", "\"0s\"", forever, "from 100ms to 1h"),
    ];
    for (section, key, small, large, range) in cases {
        for value in [small, large] {
            let text = if *section == "[sink" {
                format!("[[sink]]\ntype = \"webhook\"\nurl = \"https://e.test/\"\n{key} = {value}\n")
            } else {
                format!("[{section}]\n{key} = {value}\n")
            };
            let errs = errors_of(&text);
            let label = if *section == "[sink" {
                format!("[[sink]] #1 {key}:")
            } else {
                format!("[{section}] {key}:")
            };
            assert!(
                errs.len() == 1 && errs[0].starts_with(&label) && errs[0].ends_with(range),
                "{section} {key} = {value}: want one error naming {label:?} and {range:?}, got {errs:?}"
            );
        }
    }
}

#[test]
fn the_ends_of_every_range_are_accepted() {
    let c = Config::from_toml_str(
        r#"
        [server]
        reload_max_drop = 1.0
        reload_poll_interval = "0s"
        header_read_timeout = "100ms"
        idle_timeout = "1day"
        max_header_bytes = "1MiB"
        max_connections = 1000000
        click_queue = 1
        shutdown_grace = "1h"
        [session]
        idle_timeout = "1s"
        max_entries = 100000000
        [spool]
        flush_interval = "1ms"
        segment_max_bytes = "1GiB"
        [[sink]]
        type = "webhook"
        url = "https://e.test/"
        batch_max_events = 10000000
        batch_max_bytes = "1KiB"
        batch_max_age = "1h"
        spool_max_bytes = "1GiB"
        retry_initial = "1h"
        retry_max = "1h"
        timeout = "100ms"
        "#,
        "t.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.server.reload_poll_interval.is_zero());
    assert_eq!(c.server.max_connections, 1_000_000);
    assert_eq!(c.server.max_header_bytes, 1 << 20);
    assert_eq!(c.sinks[0].common.spool_max_bytes, 1 << 30);
    assert_eq!(c.sinks[0].common.retry_max, Duration::from_secs(3600));
}

#[test]
fn domain_fallback_urls_are_normalised_or_refused_like_destinations() {
    let c = Config::from_toml_str(
        "[[domain]]\nname = \"a.test\"\nroot_url = \"HTTPS://Brand.Example:443/caf\u{e9}\"\n",
        "t.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.domains["a.test"].root_url.as_deref(),
        Some("https://brand.example/caf%C3%A9")
    );
    let errs = errors_of(
        r#"
        [[domain]]
        name = "a.test"
        root_url = "https://good.example\\@evil.example/"
        not_found_url = "https://brand.example/not found"
        "#,
    );
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].starts_with("[[domain]] #1 (a.test) not_found_url:"), "{errs:?}");
    assert!(errs[0].contains("percent-encode"), "{errs:?}");
    assert!(errs[1].starts_with("[[domain]] #1 (a.test) root_url:"), "{errs:?}");
    assert!(errs[1].contains("backslash"), "{errs:?}");
}
