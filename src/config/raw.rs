//! The raw, serde-shaped configuration: what the TOML says, section by section, before any
//! check. Read by [`super::Config::from_toml_str`]; validated in [`super::validate`] and
//! [`super::sink`]. Unknown keys and type errors are collected with their section's label.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawServer {
    pub(super) listen: Option<String>,
    pub(super) admin_listen: Option<String>,
    pub(super) links: Option<PathBuf>,
    pub(super) default_domain: Option<String>,
    pub(super) node_id: Option<String>,
    pub(super) spool_dir: Option<PathBuf>,
    pub(super) trusted_proxies: Vec<String>,
    pub(super) geoip: Option<PathBuf>,
    pub(super) bots: Option<PathBuf>,
    pub(super) referrers: Option<PathBuf>,
    pub(super) case_insensitive: Option<bool>,
    pub(super) reload_max_drop: Option<f64>,
    pub(super) reload_poll_interval: Option<String>,
    pub(super) header_read_timeout: Option<String>,
    pub(super) idle_timeout: Option<String>,
    pub(super) max_header_bytes: Option<ByteSize>,
    pub(super) max_connections: Option<usize>,
    pub(super) click_queue: Option<usize>,
    pub(super) shutdown_grace: Option<String>,
    pub(super) cache_control_permanent: Option<String>,
    pub(super) cache_control_temporary: Option<String>,
    pub(super) tls_listen: Option<String>,
    pub(super) acme_challenge_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawTls {
    pub(super) dir: Option<PathBuf>,
    pub(super) default_domain: Option<String>,
    pub(super) default_cert: Option<PathBuf>,
    pub(super) default_key: Option<PathBuf>,
    pub(super) http2: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawSession {
    pub(super) idle_timeout: Option<String>,
    pub(super) max_entries: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawSpool {
    pub(super) flush_interval: Option<String>,
    pub(super) segment_max_bytes: Option<ByteSize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawDomain {
    pub(super) name: Option<String>,
    pub(super) status: Option<u16>,
    pub(super) cache_control: Option<String>,
    pub(super) forward_query: Option<bool>,
    pub(super) not_found_url: Option<String>,
    pub(super) root_url: Option<String>,
    pub(super) case_insensitive: Option<bool>,
    pub(super) robots_txt: Option<String>,
    pub(super) https_only: bool,
    pub(super) cert: Option<PathBuf>,
    pub(super) key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawSink {
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) name: Option<String>,
    pub(super) batch_max_events: Option<usize>,
    pub(super) batch_max_bytes: Option<ByteSize>,
    pub(super) batch_max_age: Option<String>,
    pub(super) spool_max_bytes: Option<ByteSize>,
    pub(super) humans_only: bool,
    pub(super) workspaces: Vec<String>,
    pub(super) domains: Vec<String>,
    pub(super) retry_initial: Option<String>,
    pub(super) retry_max: Option<String>,
    // file
    pub(super) dir: Option<PathBuf>,
    // webhook
    pub(super) url: Option<String>,
    pub(super) method: Option<String>,
    pub(super) key: Option<String>,
    pub(super) headers: BTreeMap<String, String>,
    pub(super) signing_secret: Option<String>,
    pub(super) timeout: Option<String>,
    // s3
    pub(super) bucket: Option<String>,
    pub(super) prefix: Option<String>,
    pub(super) region: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) force_path_style: Option<bool>,
}

/// A byte count written as an integer or as a string with a unit (`"10MB"`, `"512KiB"`).
#[derive(Debug, Clone, Copy)]
pub(super) struct ByteSize(pub(super) u64);

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

/// Parses `"10MB"`, `"512 KiB"`, `"1048576"` (units up to `TB` and `TiB`). Hand-written: the
/// format is four lines of logic and the crates that do it pull in more than they save.
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
        "tb" => 1_000_000_000_000,
        "tib" | "t" => 1 << 40,
        _ => {
            return Err(format!(
                "'{text}' has an unknown size unit (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
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

pub(super) fn section<T: serde::de::DeserializeOwned + Default>(
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

pub(super) fn array<T: serde::de::DeserializeOwned + Default>(
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
pub(super) fn deserialize<T: serde::de::DeserializeOwned + Default>(
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
