//! Configuration: the one place that reads `clickstream.toml` and the environment.
//!
//! A raw, serde-shaped configuration (`raw`) is read section by section, so that one mistyped value does
//! not hide the others, and then validated into the typed [`Config`] the rest of the program
//! uses. Every problem is collected and reported together, each naming its key
//! (`[[sink]] #2 (name "hooks") url: ...`); `main` maps a [`ConfigError`] to exit code 64.
//!
//! Every key has a default (the `DEFAULT_*` constants below, units in their names), so an empty
//! file, or no file at all, is a valid configuration: it serves `data/links.csv` on
//! `127.0.0.1:8080` and writes click events to `events/` as NDJSON. Every number, size and
//! duration has an allowed range (the `*_RANGE` constants, each saying why its ends are where
//! they are); a value outside it is an error naming the key and the range, never clamped.
//!
//! The parts: `raw` (the serde shapes and the section readers), `validate` (`[server]`,
//! `[tls]`, `[[domain]]`), `sink` (`[[sink]]`). The result is plain data: the owners of
//! listeners, certificates and enrichment build their runtime objects from it, so this module
//! imports nothing of the crate.
//!
//! Secrets (webhook keys, signing secrets, header values) may be written `"env:NAME"` to be read
//! from the environment variable `NAME` at load time; a missing variable is an error. The `Debug`
//! output of every config type that can hold a secret redacts it.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::StatusCode;

mod raw;
mod sink;
mod validate;

pub use raw::{parse_bytes, parse_duration};
pub use sink::{S3Config, SigningKey, SinkCommon, SinkConfig, SinkKind, WebhookConfig, decode_signing_secret};
pub use validate::{check_destination, check_redirect_url, check_status};

use raw::{RawDomain, RawServer, RawSession, RawSink, RawSpool, RawTls, array, section};
use sink::validate_sinks;
use validate::{validate_domains, validate_server, validate_session, validate_spool, validate_tls};

/// Address the redirect listener binds when nothing else is said.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Address of the admin listener (metrics, health); never the public port.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// The sample link table shipped in `data/`.
pub const DEFAULT_LINKS: &str = "data/links.csv";
/// The sample table's primary domain: unknown hosts (such as `127.0.0.1:8080`) are served as this
/// domain, so a plain `curl 127.0.0.1:8080/<slashtag>` redirects. Set `default_domain = ""` to
/// answer unknown hosts with 404 instead.
pub const DEFAULT_DEFAULT_DOMAIN: &str = "brand.link";
/// Where the durable event spool lives.
pub const DEFAULT_SPOOL_DIR: &str = "spool";
/// Where the embedded default file sink writes NDJSON.
pub const DEFAULT_FILE_SINK_DIR: &str = "events";
/// Cache-Control sent with 301 and 308 redirects.
pub const DEFAULT_CACHE_CONTROL_PERMANENT: &str = "private, max-age=90";
/// Cache-Control sent with 302 and 307 redirects.
pub const DEFAULT_CACHE_CONTROL_TEMPORARY: &str = "no-store";
/// A reload that would drop more than this share of the links is refused unless forced.
pub const DEFAULT_RELOAD_MAX_DROP_RATIO: f64 = 0.5;
/// How often the link table file is checked for changes.
pub const DEFAULT_RELOAD_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Time allowed for a request's headers to arrive (also bounds keep-alive idle time, see README).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that moves no byte in either direction for this long is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request head (request line and headers) accepted.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Open connections beyond this wait in the kernel's accept queue.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Hits waiting for enrichment; beyond it a click is dropped and counted, never the redirect slowed.
pub const DEFAULT_CLICK_QUEUE_EVENTS: usize = 65_536;
/// How long in-flight requests and sinks get to finish after SIGTERM.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// A visitor's session ends after this long without a click.
pub const DEFAULT_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Hard cap on tracked sessions.
pub const DEFAULT_SESSION_MAX_ENTRIES: usize = 1_000_000;
/// How often the spool is written through to disk (what a crash can lose at most).
pub const DEFAULT_SPOOL_FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// Size at which the spool starts a new segment file.
pub const DEFAULT_SPOOL_SEGMENT_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// First delay before a failed batch is retried (it doubles per attempt, with full jitter).
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_millis(250);
/// Longest delay between two attempts.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(60);
/// Spool disk budget of one sink when it does not set its own.
pub const DEFAULT_SINK_SPOOL_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// Per-attempt timeout of a webhook sink when it does not set its own.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

// Allowed ranges. Every number and duration of the file is checked against one of these, so
// that no value `check` accepts can make a component panic or stop serving: an `Instant` plus
// a huge duration overflows, tokio's semaphore panics above `usize::MAX >> 3` permits, a huge
// queue or batch is allocated up front, and a zero timer fires at once. A value outside its
// range is an error naming the key and the range, never silently clamped.

const MILLISECOND: Duration = Duration::from_millis(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// `[server] reload_max_drop`: a share.
pub const RELOAD_MAX_DROP_RATIO_RANGE: RangeInclusive<f64> = 0.0..=1.0;
/// `[server] reload_poll_interval` when it is not zero (zero: the file is never polled, only
/// SIGHUP reloads). Under 10 ms polling is a busy loop of `stat` calls; a day bounds the timer.
pub const RELOAD_POLL_INTERVAL_RANGE: RangeInclusive<Duration> = Duration::from_millis(10)..=DAY;
/// `[server] header_read_timeout`. Under 100 ms no client across a network completes a head
/// (the TLS handshake has the same limit); over an hour a slowloris keeps its slot for hours.
pub const HEADER_READ_TIMEOUT_RANGE: RangeInclusive<Duration> = Duration::from_millis(100)..=HOUR;
/// `[server] idle_timeout`. Under 100 ms a connection is closed between a client's reads; a day
/// bounds the per-connection timer (an `Instant` plus a huge duration overflows).
pub const IDLE_TIMEOUT_RANGE: RangeInclusive<Duration> = Duration::from_millis(100)..=DAY;
/// `[server] max_header_bytes`. hyper refuses a read buffer under 8 KiB, and HTTP/2 takes the
/// limit as a `u32`; a head over 1 MiB is no browser's, and each connection may buffer one.
pub const MAX_HEADER_BYTES_RANGE: RangeInclusive<u64> = 8 * KIB..=MIB;
/// `[server] max_connections`. A million open connections is past what one process has
/// descriptors and memory for (tokio's semaphore itself panics above `usize::MAX >> 3`).
pub const MAX_CONNECTIONS_RANGE: RangeInclusive<usize> = 1..=1_000_000;
/// `[server] click_queue`. The queue's slots are allocated at start, about 200 bytes each: the
/// largest queue (2^24 hits) takes about 3.4 GB.
pub const CLICK_QUEUE_EVENTS_RANGE: RangeInclusive<usize> = 1..=1 << 24;
/// `[server] shutdown_grace`. Over an hour is past any service manager's stop timeout
/// (systemd's default is 90 s); what the sinks cannot deliver in time stays in the spool.
pub const SHUTDOWN_GRACE_RANGE: RangeInclusive<Duration> = MILLISECOND..=HOUR;
/// `[session] idle_timeout`. A visitor's key changes with the UTC day, so no session outlives a
/// day; under a second every click is a session of its own.
pub const SESSION_IDLE_TIMEOUT_RANGE: RangeInclusive<Duration> = Duration::from_secs(1)..=DAY;
/// `[session] max_entries`. A hundred million sessions take about 6 GB; past it the cap no
/// longer bounds memory on any real machine.
pub const SESSION_MAX_ENTRIES_RANGE: RangeInclusive<usize> = 1..=100_000_000;
/// `[spool] flush_interval`: what a crash can lose at most. Over an hour the spool is hardly
/// durable (and sinks see nothing meanwhile: they only read synced events).
pub const SPOOL_FLUSH_INTERVAL_RANGE: RangeInclusive<Duration> = MILLISECOND..=HOUR;
/// `[spool] segment_max_bytes`. A segment is read whole when the spool opens and when a budget
/// drop is counted, so 1 GiB bounds that memory; under 4 KiB a segment holds a few events.
pub const SPOOL_SEGMENT_MAX_BYTES_RANGE: RangeInclusive<u64> = 4 * KIB..=GIB;
/// `[[sink]] batch_max_events`. Room for every event's offset is reserved when a batch starts
/// (8 bytes each, 80 MB at the most).
pub const BATCH_MAX_EVENTS_RANGE: RangeInclusive<usize> = 1..=10_000_000;
/// `[[sink]] batch_max_bytes`. A batch is reserved whole in memory when it starts (and an S3
/// batch is gzipped in memory too); under 1 KiB most events go alone.
pub const BATCH_MAX_BYTES_RANGE: RangeInclusive<u64> = KIB..=256 * MIB;
/// `[[sink]] batch_max_age`. A batch never crosses a UTC hour, so an older limit means
/// nothing (and bounds the sink's timer).
pub const BATCH_MAX_AGE_RANGE: RangeInclusive<Duration> = MILLISECOND..=HOUR;
/// `[[sink]] spool_max_bytes`, beside its lower bound, `[spool] segment_max_bytes`: a budget
/// drops whole segments, so a smaller one would drop every undelivered segment at once. 1 PiB
/// (a trillion events of about a kilobyte) is more than any disk holds.
pub const SINK_SPOOL_MAX_BYTES_MAX: u64 = 1024 * TIB;
/// `[[sink]] retry_initial`. Past an hour a failed batch waits longer than most outages last.
pub const RETRY_INITIAL_RANGE: RangeInclusive<Duration> = MILLISECOND..=HOUR;
/// `[[sink]] retry_max`, beside its lower bound, `retry_initial`: a day between attempts is
/// already a destination given up on.
pub const RETRY_MAX_MAX: Duration = DAY;
/// `timeout` of a webhook sink. Under 100 ms a TLS handshake across a network does not finish;
/// over an hour a stuck connection holds delivery back for that long.
pub const WEBHOOK_TIMEOUT_RANGE: RangeInclusive<Duration> = Duration::from_millis(100)..=HOUR;

/// A configuration problem, or all of them.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read config file: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// One or more keys are wrong; each line names its key.
    #[error("{origin}: invalid configuration:\n  {}", .errors.join("\n  "))]
    Invalid {
        /// The config file, or `defaults`.
        origin: String,
        /// Every problem found.
        errors: Vec<String>,
    },
}

/// The validated configuration of one `clickstream` process.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`
    pub server: ServerConfig,
    /// `[session]`
    pub session: SessionConfig,
    /// `[spool]`
    pub spool: SpoolConfig,
    /// `[[domain]]`, by lower-case name.
    pub domains: BTreeMap<String, DomainConfig>,
    /// `[[sink]]`; the embedded file sink when none is configured.
    pub sinks: Vec<SinkConfig>,
    /// TLS listener and certificates; `None` unless `[server] tls_listen` is set.
    pub tls: Option<TlsConfig>,
}

/// `[server] tls_listen` with `[tls]` and the `cert`/`key` of `[[domain]]`s.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Address of the TLS listener.
    pub listen: SocketAddr,
    /// Where certificates come from.
    pub sources: TlsSources,
    /// Offer HTTP/2 by ALPN (HTTP/1.1 always).
    pub http2: bool,
}

/// Where certificates come from: `[tls]` and the `cert`/`key` of `[[domain]]`s. The certificate
/// store of `edge::tls` loads them.
#[derive(Debug, Clone, Default)]
pub struct TlsSources {
    /// Directory of `<name>.crt` / `<name>.key` pairs (`_wildcard.<suffix>` or
    /// `*.<suffix>` for wildcards). Re-scanned on every reload, so adding a
    /// pair and reloading serves a new domain.
    pub dir: Option<PathBuf>,
    /// Explicitly listed certificates.
    pub domains: Vec<DomainCert>,
    /// Name (exact or `*.` wildcard) of a loaded certificate served to clients
    /// without SNI or with an unknown name. Exclusive with `default_cert`.
    pub default_domain: Option<String>,
    /// Files of a certificate served to clients without SNI or with an unknown
    /// name; it is not checked against any name. Exclusive with `default_domain`.
    pub default_cert: Option<CertFiles>,
}

/// A certificate served for one name (exact, or `*.suffix` for a wildcard).
#[derive(Debug, Clone)]
pub struct DomainCert {
    /// The name clients send as SNI, or `*.suffix`.
    pub name: String,
    /// PEM file: the leaf certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM file: the private key (PKCS#8, PKCS#1 RSA or SEC1 EC, unencrypted).
    pub key: PathBuf,
}

/// A certificate/key file pair not bound to a name (the default certificate).
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// PEM file: the leaf certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM file: the private key.
    pub key: PathBuf,
}

/// `[server]`: listeners, files and limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Redirect listener.
    pub listen: SocketAddr,
    /// Admin listener (metrics, health, link debugging).
    pub admin_listen: SocketAddr,
    /// Link table, CSV or JSON Lines (by extension `.jsonl`/`.ndjson`, else CSV).
    pub links: PathBuf,
    /// Domain that serves requests for hosts with no link and no `[[domain]]`.
    pub default_domain: Option<String>,
    /// Node name used in S3 object keys; defaults to the host name.
    pub node_id: String,
    /// Durable spool directory.
    pub spool_dir: PathBuf,
    /// Proxies whose `Forwarded`/`X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Operator GeoIP database; `None` uses the embedded one.
    pub geoip: Option<PathBuf>,
    /// Operator bot token list; `None` uses the embedded one.
    pub bots: Option<PathBuf>,
    /// Operator referrer host table; `None` uses the embedded one.
    pub referrers: Option<PathBuf>,
    /// Case-insensitive slashtag fallback for domains that do not say.
    pub case_insensitive: bool,
    /// Largest share of links a reload may drop without being forced.
    pub reload_max_drop_ratio: f64,
    /// How often the link table file is checked for changes (zero: never).
    pub reload_poll_interval: Duration,
    /// Time for a request head to arrive.
    pub header_read_timeout: Duration,
    /// Time a connection may stay silent.
    pub idle_timeout: Duration,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Concurrent connections.
    pub max_connections: usize,
    /// Capacity of the hit-to-enrichment queue.
    pub click_queue_events: usize,
    /// Grace period after SIGTERM.
    pub shutdown_grace: Duration,
    /// Cache-Control for 301/308.
    pub cache_control_permanent: String,
    /// Cache-Control for 302/307.
    pub cache_control_temporary: String,
    /// Folder served at `/.well-known/acme-challenge/` (HTTP-01 renewals).
    pub acme_challenge_dir: Option<PathBuf>,
}

/// `[session]`
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Idle time that ends a session.
    pub idle_timeout: Duration,
    /// Hard cap on tracked sessions.
    pub max_entries: usize,
}

/// `[spool]`
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Write-through interval.
    pub flush_interval: Duration,
    /// Segment file size.
    pub segment_max_bytes: u64,
}

/// `[[domain]]`: how one custom domain answers.
#[derive(Debug, Clone, Default)]
pub struct DomainConfig {
    /// Lower-case host name.
    pub name: String,
    /// Redirect status for links that do not set one.
    pub status: Option<StatusCode>,
    /// Cache-Control for every redirect of this domain.
    pub cache_control: Option<String>,
    /// Merge the request's query into the destination (default true).
    pub forward_query: bool,
    /// Where a miss goes, normalised ([`check_destination`]); a 404 page when unset.
    pub not_found_url: Option<String>,
    /// Where `/` goes, normalised ([`check_destination`]); a 404 page when unset.
    pub root_url: Option<String>,
    /// Case-insensitive slashtag fallback; `None` follows `[server]`.
    pub case_insensitive: Option<bool>,
    /// Body of `/robots.txt`; disallow-all when unset.
    pub robots_txt: Option<String>,
    /// On the plain listener, answer every request with a 308 to the same URL on https.
    pub https_only: bool,
    /// PEM certificate for the TLS listener.
    pub cert: Option<PathBuf>,
    /// PEM private key for the TLS listener.
    pub key: Option<PathBuf>,
}

/// A value read from the config that must never be printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("\"<redacted>\"")
        }
    }
}

impl Config {
    /// The configuration when no file is given: every key at its default.
    pub fn embedded_default() -> Config {
        Config::from_toml_str("", "defaults").expect("the embedded defaults are valid")
    }

    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut errors = Vec::new();
        let table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => {
                return Err(ConfigError::Invalid {
                    origin: origin.to_string(),
                    errors: vec![e.to_string().trim_end().replace('\n', "\n  ")],
                });
            }
        };
        for key in table.keys() {
            if !matches!(key.as_str(), "server" | "session" | "spool" | "domain" | "sink" | "tls") {
                errors.push(format!(
                    "unknown section [{key}] (known: [server], [session], [spool], [tls], [[domain]], [[sink]])"
                ));
            }
        }
        let server: RawServer = section(&table, "server", "[server]", &mut errors);
        let tls: RawTls = section(&table, "tls", "[tls]", &mut errors);
        let tls_listen = server.tls_listen.clone();
        let session: RawSession = section(&table, "session", "[session]", &mut errors);
        let spool: RawSpool = section(&table, "spool", "[spool]", &mut errors);
        let domains: Vec<RawDomain> = array(&table, "domain", "[[domain]]", &mut errors);
        let sinks: Vec<RawSink> = array(&table, "sink", "[[sink]]", &mut errors);

        let domains = validate_domains(domains, &mut errors);
        let tls = validate_tls(tls_listen, tls, &domains, &mut errors);
        let spool = validate_spool(spool, &mut errors);
        let config = Config {
            tls,
            server: validate_server(server, &mut errors),
            session: validate_session(session, &mut errors),
            sinks: validate_sinks(sinks, spool.segment_max_bytes, &mut errors),
            spool,
            domains,
        };
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                origin: origin.to_string(),
                errors,
            })
        }
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
