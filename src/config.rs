//! Configuration: the one place that reads `clickstream.toml` and the environment.
//!
//! A raw, serde-shaped [`RawConfig`] is read section by section, so that one mistyped value does
//! not hide the others, and then validated into the typed [`Config`] the rest of the program
//! uses. Every problem is collected and reported together, each naming its key
//! (`[[sink]] #2 (name "hooks") url: ...`); `main` maps a [`ConfigError`] to exit code 64.
//!
//! Every key has a default (the `DEFAULT_*` constants below, units in their names), so an empty
//! file, or no file at all, is a valid configuration: it serves `data/links.csv` on
//! `127.0.0.1:8080` and writes click events to `events/` as NDJSON.
//!
//! Secrets (webhook keys, signing secrets, header values) may be written `"env:NAME"` to be read
//! from the environment variable `NAME` at load time; a missing variable is an error. The `Debug`
//! output of every config type that can hold a secret redacts it.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;

use crate::enrich::client_ip::TrustedProxies;

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
    pub sources: crate::tls::TlsSources,
    /// Offer HTTP/2 by ALPN (HTTP/1.1 always).
    pub http2: bool,
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
    pub trusted_proxies: TrustedProxies,
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
    /// Where a miss goes; a 404 page when unset.
    pub not_found_url: Option<String>,
    /// Where `/` goes; a 404 page when unset.
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

/// `[[sink]]`: one delivery destination.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Unique name (metrics label, spool cursor file).
    pub name: String,
    /// Limits, budget and filters every sink shares.
    pub common: SinkCommon,
    /// What kind of destination.
    pub kind: SinkKind,
}

/// The keys every sink has.
#[derive(Debug, Clone)]
pub struct SinkCommon {
    /// Most events in one batch.
    pub batch_max_events: usize,
    /// Most encoded bytes in one batch.
    pub batch_max_bytes: usize,
    /// Oldest event a batch may hold before it is sent.
    pub batch_max_age: Duration,
    /// Disk the sink's undelivered events may take before the oldest are dropped.
    pub spool_max_bytes: u64,
    /// Skip bot clicks.
    pub humans_only: bool,
    /// Only these workspace ids (empty: all).
    pub workspaces: HashSet<String>,
    /// Only these domains (empty: all).
    pub domains: HashSet<String>,
    /// First retry delay (doubles per attempt, full jitter).
    pub retry_initial: Duration,
    /// Largest retry delay.
    pub retry_max: Duration,
}

/// Per-type settings of a sink.
#[derive(Debug, Clone)]
pub enum SinkKind {
    /// Local NDJSON files, one per click hour.
    File {
        /// Output directory.
        dir: PathBuf,
    },
    /// HTTP POST/PUT of `{"data":[...],"key":"..."}`.
    Webhook(WebhookConfig),
    /// Gzip NDJSON objects in an S3 bucket.
    S3(S3Config),
}

/// Webhook settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Endpoint.
    pub url: url::Url,
    /// POST or PUT.
    pub method: http::Method,
    /// Sent as `"key"` in every body.
    pub key: Secret,
    /// Static headers (values are secrets: often an Authorization header).
    pub headers: Vec<(http::HeaderName, Secret)>,
    /// Standard Webhooks secret (`whsec_` + base64), decoded.
    pub signing_key: Option<SigningKey>,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

/// Decoded HMAC key of a Standard Webhooks signing secret.
#[derive(Clone)]
pub struct SigningKey(pub Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// S3 settings.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix, without trailing slash.
    pub prefix: String,
    /// Region (the SDK's chain when unset).
    pub region: Option<String>,
    /// Endpoint of an S3-compatible store.
    pub endpoint: Option<String>,
    /// Path-style addressing (needed by most S3-compatible stores).
    pub force_path_style: bool,
}

// ---------------------------------------------------------------------------------------------
// Raw, serde-shaped configuration.

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawServer {
    listen: Option<String>,
    admin_listen: Option<String>,
    links: Option<PathBuf>,
    default_domain: Option<String>,
    node_id: Option<String>,
    spool_dir: Option<PathBuf>,
    trusted_proxies: Vec<String>,
    geoip: Option<PathBuf>,
    bots: Option<PathBuf>,
    referrers: Option<PathBuf>,
    case_insensitive: Option<bool>,
    reload_max_drop: Option<f64>,
    reload_poll_interval: Option<String>,
    header_read_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_header_bytes: Option<ByteSize>,
    max_connections: Option<usize>,
    click_queue: Option<usize>,
    shutdown_grace: Option<String>,
    cache_control_permanent: Option<String>,
    cache_control_temporary: Option<String>,
    tls_listen: Option<String>,
    acme_challenge_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawTls {
    dir: Option<PathBuf>,
    default_domain: Option<String>,
    default_cert: Option<PathBuf>,
    default_key: Option<PathBuf>,
    http2: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSession {
    idle_timeout: Option<String>,
    max_entries: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSpool {
    flush_interval: Option<String>,
    segment_max_bytes: Option<ByteSize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawDomain {
    name: Option<String>,
    status: Option<u16>,
    cache_control: Option<String>,
    forward_query: Option<bool>,
    not_found_url: Option<String>,
    root_url: Option<String>,
    case_insensitive: Option<bool>,
    robots_txt: Option<String>,
    https_only: bool,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSink {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    batch_max_events: Option<usize>,
    batch_max_bytes: Option<ByteSize>,
    batch_max_age: Option<String>,
    spool_max_bytes: Option<ByteSize>,
    humans_only: bool,
    workspaces: Vec<String>,
    domains: Vec<String>,
    retry_initial: Option<String>,
    retry_max: Option<String>,
    // file
    dir: Option<PathBuf>,
    // webhook
    url: Option<String>,
    method: Option<String>,
    key: Option<String>,
    headers: BTreeMap<String, String>,
    signing_secret: Option<String>,
    timeout: Option<String>,
    // s3
    bucket: Option<String>,
    prefix: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    force_path_style: Option<bool>,
}

/// A byte count written as an integer or as a string with a unit (`"10MB"`, `"512KiB"`).
#[derive(Debug, Clone, Copy)]
struct ByteSize(u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Int(u64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Int(n) => Ok(ByteSize(n)),
            Either::Text(s) => parse_bytes(&s).map(ByteSize).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `"10MB"`, `"512 KiB"`, `"1048576"`. Hand-written: the format is four lines of logic and
/// the crates that do it pull in more than they save.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a size (write 1048576, \"512KB\" or \"10MB\")"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        _ => {
            return Err(format!(
                "'{text}' has an unknown size unit (use B, KB, MB, GB, KiB, MiB or GiB)"
            ));
        }
    };
    n.checked_mul(mult).ok_or_else(|| format!("'{text}' is too large"))
}

/// Parses `"200ms"`, `"1s"`, `"30m"`, `"1h 30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("'{text}' is not a duration ({e}; write it like \"200ms\", \"1s\" or \"30m\")"))
}

// ---------------------------------------------------------------------------------------------

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
        let config = Config {
            tls,
            server: validate_server(server, &mut errors),
            session: SessionConfig {
                idle_timeout: duration(
                    session.idle_timeout,
                    DEFAULT_SESSION_IDLE_TIMEOUT,
                    "[session] idle_timeout",
                    &mut errors,
                ),
                max_entries: positive(
                    session.max_entries,
                    DEFAULT_SESSION_MAX_ENTRIES,
                    "[session] max_entries",
                    &mut errors,
                ),
            },
            spool: SpoolConfig {
                flush_interval: duration(
                    spool.flush_interval,
                    DEFAULT_SPOOL_FLUSH_INTERVAL,
                    "[spool] flush_interval",
                    &mut errors,
                ),
                segment_max_bytes: spool
                    .segment_max_bytes
                    .map_or(DEFAULT_SPOOL_SEGMENT_MAX_BYTES, |b| b.0)
                    .max(4096),
            },
            domains,
            sinks: validate_sinks(sinks, &mut errors),
        };
        if config.session.idle_timeout.is_zero() {
            errors.push("[session] idle_timeout: must be more than zero".into());
        }
        if config.spool.flush_interval.is_zero() {
            errors.push("[spool] flush_interval: must be more than zero".into());
        }
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

fn section<T: serde::de::DeserializeOwned + Default>(
    table: &toml::Table,
    key: &str,
    label: &str,
    errors: &mut Vec<String>,
) -> T {
    match table.get(key) {
        None => T::default(),
        Some(toml::Value::Table(t)) => deserialize(toml::Value::Table(t.clone()), label, errors),
        Some(_) => {
            errors.push(format!("{label}: must be a table"));
            T::default()
        }
    }
}

fn array<T: serde::de::DeserializeOwned + Default>(
    table: &toml::Table,
    key: &str,
    label: &str,
    errors: &mut Vec<String>,
) -> Vec<T> {
    match table.get(key) {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| deserialize(v.clone(), &format!("{label} #{}", i + 1), errors))
            .collect(),
        Some(_) => {
            errors.push(format!("{label}: must be an array of tables (write [{label}] blocks)"));
            Vec::new()
        }
    }
}

/// Deserializes one section, reporting unknown keys and type errors with the section's label.
fn deserialize<T: serde::de::DeserializeOwned + Default>(
    value: toml::Value,
    label: &str,
    errors: &mut Vec<String>,
) -> T {
    let mut unknown = Vec::new();
    let result = serde_ignored::deserialize(value, |path| unknown.push(path.to_string()));
    for key in unknown {
        errors.push(format!("{label}: unknown key '{key}'"));
    }
    match result {
        Ok(v) => v,
        Err(e) => {
            errors.push(format!("{label}: {}", e.to_string().trim_end()));
            T::default()
        }
    }
}

fn duration(value: Option<String>, default: Duration, key: &str, errors: &mut Vec<String>) -> Duration {
    match value {
        None => default,
        Some(text) => parse_duration(&text).unwrap_or_else(|e| {
            errors.push(format!("{key}: {e}"));
            default
        }),
    }
}

fn positive(value: Option<usize>, default: usize, key: &str, errors: &mut Vec<String>) -> usize {
    match value {
        Some(0) => {
            errors.push(format!("{key}: must be more than zero"));
            default
        }
        Some(n) => n,
        None => default,
    }
}

fn socket_addr(value: Option<String>, default: &str, key: &str, errors: &mut Vec<String>) -> SocketAddr {
    let text = value.unwrap_or_else(|| default.to_string());
    text.parse().unwrap_or_else(|_| {
        errors.push(format!(
            "{key}: '{text}' is not an address (write it like \"127.0.0.1:8080\" or \"[::]:80\")"
        ));
        default.parse().expect("default address")
    })
}

/// Resolves `"env:NAME"` to the variable's value.
fn secret(value: &str, key: &str, errors: &mut Vec<String>) -> Secret {
    match value.strip_prefix("env:") {
        Some(var) => match std::env::var(var) {
            Ok(v) => Secret(v),
            Err(_) => {
                errors.push(format!("{key}: environment variable {var} is not set"));
                Secret::default()
            }
        },
        None => Secret(value.to_string()),
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_string())
}

fn validate_server(raw: RawServer, errors: &mut Vec<String>) -> ServerConfig {
    let trusted_proxies = TrustedProxies::parse(&raw.trusted_proxies).unwrap_or_else(|errs| {
        errors.extend(errs.into_iter().map(|e| format!("[server] trusted_proxies: {e}")));
        TrustedProxies::default()
    });
    let node_id = raw.node_id.unwrap_or_else(host_name);
    if node_id.is_empty() || !node_id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        errors.push(format!(
            "[server] node_id: '{node_id}' may hold only letters, digits, '-', '_' and '.' (it is part of S3 keys)"
        ));
    }
    let reload_max_drop_ratio = raw.reload_max_drop.unwrap_or(DEFAULT_RELOAD_MAX_DROP_RATIO);
    if !(0.0..=1.0).contains(&reload_max_drop_ratio) {
        errors.push(format!(
            "[server] reload_max_drop: {reload_max_drop_ratio} is not a share between 0.0 and 1.0"
        ));
    }
    let default_domain = match raw.default_domain {
        None => Some(DEFAULT_DEFAULT_DOMAIN.to_string()),
        Some(d) if d.trim().is_empty() => None,
        Some(d) => Some(d.trim().to_ascii_lowercase()),
    };
    let cache_permanent = raw
        .cache_control_permanent
        .unwrap_or_else(|| DEFAULT_CACHE_CONTROL_PERMANENT.to_string());
    let cache_temporary = raw
        .cache_control_temporary
        .unwrap_or_else(|| DEFAULT_CACHE_CONTROL_TEMPORARY.to_string());
    for (key, v) in [
        ("cache_control_permanent", &cache_permanent),
        ("cache_control_temporary", &cache_temporary),
    ] {
        if http::HeaderValue::from_str(v).is_err() {
            errors.push(format!("[server] {key}: '{v}' is not a valid header value"));
        }
    }
    ServerConfig {
        listen: socket_addr(raw.listen, DEFAULT_LISTEN, "[server] listen", errors),
        admin_listen: socket_addr(raw.admin_listen, DEFAULT_ADMIN_LISTEN, "[server] admin_listen", errors),
        links: raw.links.unwrap_or_else(|| PathBuf::from(DEFAULT_LINKS)),
        default_domain,
        node_id,
        spool_dir: raw.spool_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_SPOOL_DIR)),
        trusted_proxies,
        geoip: raw.geoip.filter(|p| !p.as_os_str().is_empty()),
        bots: raw.bots.filter(|p| !p.as_os_str().is_empty()),
        referrers: raw.referrers.filter(|p| !p.as_os_str().is_empty()),
        case_insensitive: raw.case_insensitive.unwrap_or(true),
        reload_max_drop_ratio,
        reload_poll_interval: duration(
            raw.reload_poll_interval,
            DEFAULT_RELOAD_POLL_INTERVAL,
            "[server] reload_poll_interval",
            errors,
        ),
        header_read_timeout: duration(
            raw.header_read_timeout,
            DEFAULT_HEADER_READ_TIMEOUT,
            "[server] header_read_timeout",
            errors,
        ),
        idle_timeout: duration(raw.idle_timeout, DEFAULT_IDLE_TIMEOUT, "[server] idle_timeout", errors),
        max_header_bytes: raw.max_header_bytes.map_or(DEFAULT_MAX_HEADER_BYTES, |b| b.0 as usize),
        max_connections: positive(
            raw.max_connections,
            DEFAULT_MAX_CONNECTIONS,
            "[server] max_connections",
            errors,
        ),
        click_queue_events: positive(
            raw.click_queue,
            DEFAULT_CLICK_QUEUE_EVENTS,
            "[server] click_queue",
            errors,
        ),
        shutdown_grace: duration(
            raw.shutdown_grace,
            DEFAULT_SHUTDOWN_GRACE,
            "[server] shutdown_grace",
            errors,
        ),
        cache_control_permanent: cache_permanent,
        cache_control_temporary: cache_temporary,
        acme_challenge_dir: raw.acme_challenge_dir.filter(|p| !p.as_os_str().is_empty()),
    }
}

fn validate_tls(
    listen: Option<String>,
    raw: RawTls,
    domains: &BTreeMap<String, DomainConfig>,
    errors: &mut Vec<String>,
) -> Option<TlsConfig> {
    let Some(listen) = listen.filter(|l| !l.is_empty()) else {
        if raw.dir.is_some() || raw.default_cert.is_some() {
            errors.push("[tls]: certificates are configured but [server] tls_listen is not set".into());
        }
        return None;
    };
    let listen = socket_addr(Some(listen), "127.0.0.1:8443", "[server] tls_listen", errors);
    let mut sources = crate::tls::TlsSources {
        dir: raw.dir,
        default_domain: raw.default_domain.map(|d| d.trim().to_ascii_lowercase()),
        ..Default::default()
    };
    match (raw.default_cert, raw.default_key) {
        (Some(cert), Some(key)) => sources.default_cert = Some(crate::tls::CertFiles { cert, key }),
        (None, None) => {}
        _ => errors.push("[tls]: default_cert and default_key go together".into()),
    }
    for d in domains.values() {
        match (&d.cert, &d.key) {
            (Some(cert), Some(key)) => sources.domains.push(crate::tls::DomainCert {
                name: d.name.clone(),
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => {}
            _ => errors.push(format!("[[domain]] ({}): cert and key go together", d.name)),
        }
    }
    if sources.dir.is_none() && sources.domains.is_empty() && sources.default_cert.is_none() {
        errors.push(
            "[server] tls_listen: no certificate configured (set [tls] dir, [tls] default_cert/default_key, or cert/key in a [[domain]])"
                .into(),
        );
    }
    Some(TlsConfig {
        listen,
        sources,
        http2: raw.http2.unwrap_or(true),
    })
}

/// Checks that `text` is an absolute http(s) URL usable as a `Location` value.
pub fn check_redirect_url(text: &str) -> Result<url::Url, String> {
    if text.chars().any(|c| c.is_control()) {
        return Err(format!("{text:?} contains control characters"));
    }
    match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) => Ok(u),
        Ok(_) => Err(format!("'{text}' is not an http(s) URL")),
        Err(e) => Err(format!("'{text}' is not an absolute http(s) URL ({e})")),
    }
}

/// Checks a redirect status code: 301, 302, 307 or 308.
pub fn check_status(code: u16) -> Result<StatusCode, String> {
    match code {
        301 | 302 | 307 | 308 => Ok(StatusCode::from_u16(code).expect("valid status")),
        _ => Err(format!(
            "status {code} is not a redirect status (use 301, 302, 307 or 308)"
        )),
    }
}

fn validate_domains(raw: Vec<RawDomain>, errors: &mut Vec<String>) -> BTreeMap<String, DomainConfig> {
    let mut out = BTreeMap::new();
    for (i, d) in raw.into_iter().enumerate() {
        let label = format!("[[domain]] #{}", i + 1);
        let Some(name) = d.name.map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()) else {
            errors.push(format!("{label}: 'name' is required"));
            continue;
        };
        let label = format!("{label} ({name})");
        let status = d.status.and_then(|s| {
            check_status(s)
                .map_err(|e| errors.push(format!("{label} status: {e}")))
                .ok()
        });
        if let Some(cc) = &d.cache_control
            && http::HeaderValue::from_str(cc).is_err()
        {
            errors.push(format!("{label} cache_control: '{cc}' is not a valid header value"));
        }
        for (key, value) in [("not_found_url", &d.not_found_url), ("root_url", &d.root_url)] {
            if let Some(v) = value
                && let Err(e) = check_redirect_url(v)
            {
                errors.push(format!("{label} {key}: {e}"));
            }
        }
        let config = DomainConfig {
            name: name.clone(),
            status,
            cache_control: d.cache_control,
            forward_query: d.forward_query.unwrap_or(true),
            not_found_url: d.not_found_url,
            root_url: d.root_url,
            case_insensitive: d.case_insensitive,
            robots_txt: d.robots_txt,
            https_only: d.https_only,
            cert: d.cert,
            key: d.key,
        };
        if out.insert(name.clone(), config).is_some() {
            errors.push(format!("{label}: domain '{name}' is configured twice"));
        }
    }
    out
}

/// Defaults per sink type: (events, bytes, age).
fn batch_defaults(kind: &str) -> (usize, usize, Duration) {
    match kind {
        "webhook" => (500, 1_000_000, Duration::from_secs(1)),
        "s3" => (1_000_000, 10_000_000, Duration::from_secs(60)),
        _ => (1_000, 10_000_000, Duration::from_secs(1)),
    }
}

fn validate_sinks(raw: Vec<RawSink>, errors: &mut Vec<String>) -> Vec<SinkConfig> {
    if raw.is_empty() {
        let (events, bytes, age) = batch_defaults("file");
        return vec![SinkConfig {
            name: "events".into(),
            common: SinkCommon {
                batch_max_events: events,
                batch_max_bytes: bytes,
                batch_max_age: age,
                spool_max_bytes: DEFAULT_SINK_SPOOL_MAX_BYTES,
                humans_only: false,
                workspaces: HashSet::new(),
                domains: HashSet::new(),
                retry_initial: DEFAULT_RETRY_INITIAL,
                retry_max: DEFAULT_RETRY_MAX,
            },
            kind: SinkKind::File {
                dir: PathBuf::from(DEFAULT_FILE_SINK_DIR),
            },
        }];
    }
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        let mut label = format!("[[sink]] #{}", i + 1);
        let name = s.name.clone().unwrap_or_else(|| format!("sink{}", i + 1));
        if let Some(n) = &s.name {
            label = format!("{label} (name \"{n}\")");
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
            errors.push(format!(
                "{label} name: '{name}' may hold only letters, digits, '-' and '_' (it names spool files)"
            ));
        }
        if !names.insert(name.clone()) {
            errors.push(format!("{label} name: '{name}' is used by another sink"));
        }
        let type_name = s.kind.clone().unwrap_or_default();
        let (events, bytes, age) = batch_defaults(&type_name);
        let common = SinkCommon {
            batch_max_events: positive(s.batch_max_events, events, &format!("{label} batch_max_events"), errors),
            batch_max_bytes: s.batch_max_bytes.map_or(bytes, |b| b.0 as usize).max(1),
            batch_max_age: duration(s.batch_max_age.clone(), age, &format!("{label} batch_max_age"), errors),
            spool_max_bytes: s.spool_max_bytes.map_or(DEFAULT_SINK_SPOOL_MAX_BYTES, |b| b.0),
            humans_only: s.humans_only,
            workspaces: s.workspaces.iter().cloned().collect(),
            domains: s.domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            retry_initial: duration(
                s.retry_initial.clone(),
                DEFAULT_RETRY_INITIAL,
                &format!("{label} retry_initial"),
                errors,
            ),
            retry_max: duration(
                s.retry_max.clone(),
                DEFAULT_RETRY_MAX,
                &format!("{label} retry_max"),
                errors,
            ),
        };
        if common.retry_initial.is_zero() || common.retry_max < common.retry_initial {
            errors.push(format!(
                "{label} retry_initial: must be more than zero and at most retry_max"
            ));
        }
        let kind = match type_name.as_str() {
            "file" => Some(SinkKind::File {
                dir: s.dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_FILE_SINK_DIR)),
            }),
            "webhook" => webhook(&s, &label, errors).map(SinkKind::Webhook),
            "s3" => s3(&s, &label, errors).map(SinkKind::S3),
            "" => {
                errors.push(format!("{label}: 'type' is required (\"file\", \"webhook\" or \"s3\")"));
                None
            }
            other => {
                errors.push(format!(
                    "{label} type: '{other}' is not a sink type (\"file\", \"webhook\" or \"s3\")"
                ));
                None
            }
        };
        // Keys of another type are almost always a typo or a copy-paste slip: say so.
        let foreign: &[(&str, bool)] = &[
            ("dir", s.dir.is_some() && type_name != "file"),
            ("url", s.url.is_some() && type_name != "webhook"),
            ("bucket", s.bucket.is_some() && type_name != "s3"),
        ];
        for (key, present) in foreign {
            if *present && !type_name.is_empty() {
                errors.push(format!("{label} {key}: not a key of a {type_name} sink"));
            }
        }
        if let Some(kind) = kind {
            out.push(SinkConfig { name, common, kind });
        }
    }
    out
}

fn webhook(s: &RawSink, label: &str, errors: &mut Vec<String>) -> Option<WebhookConfig> {
    let url = match s.url.as_deref() {
        None => {
            errors.push(format!("{label}: 'url' is required for a webhook sink"));
            None
        }
        Some(u) => check_redirect_url(u)
            .map_err(|e| errors.push(format!("{label} url: {e}")))
            .ok(),
    };
    let method = match s.method.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("POST") => http::Method::POST,
        Some("PUT") => http::Method::PUT,
        Some(other) => {
            errors.push(format!("{label} method: '{other}' is not POST or PUT"));
            http::Method::POST
        }
    };
    let mut headers = Vec::new();
    for (name, value) in &s.headers {
        let value = secret(value, &format!("{label} headers.{name}"), errors);
        match (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(&value.0),
        ) {
            (Ok(n), Ok(_)) => headers.push((n, value)),
            (Err(_), _) => errors.push(format!("{label} headers: '{name}' is not a header name")),
            (_, Err(_)) => errors.push(format!("{label} headers.{name}: the value is not a valid header value")),
        }
    }
    let signing_key = s.signing_secret.as_deref().and_then(|raw| {
        let value = secret(raw, &format!("{label} signing_secret"), errors);
        if value.0.is_empty() {
            return None;
        }
        decode_signing_secret(&value.0)
            .map_err(|e| errors.push(format!("{label} signing_secret: {e}")))
            .ok()
    });
    let key = secret(s.key.as_deref().unwrap_or(""), &format!("{label} key"), errors);
    let timeout = duration(
        s.timeout.clone(),
        Duration::from_secs(10),
        &format!("{label} timeout"),
        errors,
    );
    Some(WebhookConfig {
        url: url?,
        method,
        key,
        headers,
        signing_key,
        timeout,
    })
}

/// Decodes a Standard Webhooks secret: `whsec_` followed by base64 of the HMAC key.
pub fn decode_signing_secret(text: &str) -> Result<SigningKey, String> {
    use base64::Engine as _;
    let b64 = text.strip_prefix("whsec_").unwrap_or(text);
    match base64::engine::general_purpose::STANDARD.decode(b64) {
        Ok(k) if !k.is_empty() => Ok(SigningKey(k)),
        _ => Err("not a signing secret (expected 'whsec_' followed by base64)".into()),
    }
}

fn s3(s: &RawSink, label: &str, errors: &mut Vec<String>) -> Option<S3Config> {
    let Some(bucket) = s.bucket.clone().filter(|b| !b.is_empty()) else {
        errors.push(format!("{label}: 'bucket' is required for an s3 sink"));
        return None;
    };
    if let Some(e) = &s.endpoint
        && let Err(err) = check_redirect_url(e)
    {
        errors.push(format!("{label} endpoint: {err}"));
    }
    Some(S3Config {
        bucket,
        prefix: s.prefix.clone().unwrap_or_default().trim_matches('/').to_string(),
        region: s.region.clone(),
        endpoint: s.endpoint.clone(),
        force_path_style: s.force_path_style.unwrap_or(s.endpoint.is_some()),
    })
}

#[cfg(test)]
mod tests {
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
}
