//! The `clickstream` binary: `check`, exit codes, config errors, `--help`, and `serve` stopping
//! cleanly on SIGTERM.

use crate::common;

use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_clickstream");

fn run(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).current_dir(dir).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_counts_the_sample_table_and_the_documented_config() {
    let (code, out, err) = run(&["check"], &repo());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3000 links on 3 domains"), "{out}");
    let (code, out, err) = run(&["check", "--config", "data/clickstream.toml"], &repo());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3000 links on 3 domains"), "{out}");
}

#[test]
fn check_reports_every_bad_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.csv"),
        "id,domain,slashtag,destination\n1,a.test,ok,https://e.example/\n2,a.test,x,notaurl\n3,a.test,ok,https://e.example/2\n",
    )
    .unwrap();
    let (code, _, err) = run(&["check", "--links", "bad.csv"], dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bad.csv:3: destination 'notaurl'"), "{err}");
    assert!(err.contains("bad.csv:4: duplicate link a.test/ok"), "{err}");
    let (code, _, err) = run(&["check", "--links", "missing.csv"], dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("missing.csv: cannot read link table"), "{err}");
}

#[test]
fn bad_config_and_usage_exit_64_with_every_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[server]\nlisten = \"nope\"\n[spool]\nflush_interval = \"often\"\n[[sink]]\ntype = \"webhook\"\n",
    )
    .unwrap();
    for cmd in ["check", "serve"] {
        let (code, _, err) = run(&[cmd, "--config", "c.toml"], dir.path());
        assert_eq!(code, 64, "{cmd}: {err}");
        assert!(err.contains("c.toml: invalid configuration"), "{err}");
        assert!(err.contains("[server] listen"), "{err}");
        assert!(err.contains("[spool] flush_interval"), "{err}");
        assert!(err.contains("'url' is required"), "{err}");
    }
    std::fs::write(dir.path().join("broken.toml"), "[server\nlisten=").unwrap();
    let (code, _, err) = run(&["check", "--config", "broken.toml"], dir.path());
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("broken.toml"), "{err}");
    let (code, _, _) = run(&["serve", "--no-such-flag"], dir.path());
    assert_eq!(code, 64);
    let (code, _, _) = run(&["frobnicate"], dir.path());
    assert_eq!(code, 64);
    let (code, out, _) = run(&["--help"], dir.path());
    assert_eq!(code, 0);
    for needle in ["serve", "check", "Exit codes", "SIGHUP"] {
        assert!(out.contains(needle), "--help lacks {needle}: {out}");
    }
}

#[test]
fn check_refuses_numbers_out_of_range_with_exit_64() {
    // Each of these, accepted, made the server panic or stop serving once started.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[server]\nmax_connections = 9223372036854775807\nmax_header_bytes = 4294967296\n\
         idle_timeout = \"0s\"\nheader_read_timeout = \"500000000000y\"\n\
         [spool]\nflush_interval = \"500000000000y\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&["check", "--config", "c.toml"], dir.path());
    assert_eq!(code, 64, "{err}");
    for needle in [
        "[server] max_connections: 9223372036854775807 is out of range: write a number from 1 to 1000000",
        "[server] max_header_bytes: 4294967296 bytes is out of range: write a size from 8KiB to 1MiB",
        "[server] idle_timeout: '0s' is out of range: write a duration from 100ms to 1day",
        "[server] header_read_timeout: '500000000000y' is out of range",
        "[spool] flush_interval: '500000000000y' is out of range",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("links.csv"),
        "id,domain,slashtag,destination\n1,a.test,x,https://e.example/\n",
    )
    .unwrap();
    let config = common::config_text(dir.path(), "");
    std::fs::write(dir.path().join("c.toml"), config).unwrap();
    let mut p = common::process::Process::start(dir.path(), &dir.path().join("c.toml"), &[]);
    p.signal("TERM");
    assert_eq!(p.wait(Duration::from_secs(10)), Some(0), "serve must exit 0 on SIGTERM");
}
