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
