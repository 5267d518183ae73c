//! `[[sink]]`: the delivery destinations' settings, their defaults by type and their
//! validation.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawSink;
use super::validate::{count, duration, secret, size};
use super::*;

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

/// Defaults per sink type: (events, bytes, age).
pub(super) fn batch_defaults(kind: &str) -> (usize, usize, Duration) {
    match kind {
        "webhook" => (500, 1_000_000, Duration::from_secs(1)),
        "s3" => (1_000_000, 10_000_000, Duration::from_secs(60)),
        _ => (1_000, 10_000_000, Duration::from_secs(1)),
    }
}

/// `[[sink]]`s; `segment_max_bytes` (of `[spool]`) is the smallest `spool_max_bytes`.
pub(super) fn validate_sinks(raw: Vec<RawSink>, segment_max_bytes: u64, errors: &mut Vec<String>) -> Vec<SinkConfig> {
    if raw.is_empty() {
        let (events, bytes, age) = batch_defaults("file");
        return vec![SinkConfig {
            name: "events".into(),
            common: SinkCommon {
                batch_max_events: events,
                batch_max_bytes: bytes,
                batch_max_age: age,
                spool_max_bytes: DEFAULT_SINK_SPOOL_MAX_BYTES.max(segment_max_bytes),
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
        let retry_initial = duration(
            s.retry_initial.as_deref(),
            DEFAULT_RETRY_INITIAL,
            &RETRY_INITIAL_RANGE,
            &format!("{label} retry_initial"),
            errors,
        );
        let common = SinkCommon {
            batch_max_events: count(
                s.batch_max_events,
                events,
                &BATCH_MAX_EVENTS_RANGE,
                &format!("{label} batch_max_events"),
                errors,
            ),
            batch_max_bytes: size(
                s.batch_max_bytes,
                bytes as u64,
                &BATCH_MAX_BYTES_RANGE,
                &format!("{label} batch_max_bytes"),
                errors,
            ) as usize,
            batch_max_age: duration(
                s.batch_max_age.as_deref(),
                age,
                &BATCH_MAX_AGE_RANGE,
                &format!("{label} batch_max_age"),
                errors,
            ),
            // A budget drops whole segments: under one, every undelivered segment would go.
            spool_max_bytes: size(
                s.spool_max_bytes,
                DEFAULT_SINK_SPOOL_MAX_BYTES.max(segment_max_bytes),
                &(segment_max_bytes..=SINK_SPOOL_MAX_BYTES_MAX),
                &format!("{label} spool_max_bytes"),
                errors,
            ),
            humans_only: s.humans_only,
            workspaces: s.workspaces.iter().cloned().collect(),
            domains: s.domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            retry_initial,
            retry_max: duration(
                s.retry_max.as_deref(),
                DEFAULT_RETRY_MAX.max(retry_initial),
                &(retry_initial..=RETRY_MAX_MAX),
                &format!("{label} retry_max"),
                errors,
            ),
        };
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

pub(super) fn webhook(s: &RawSink, label: &str, errors: &mut Vec<String>) -> Option<WebhookConfig> {
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
        s.timeout.as_deref(),
        DEFAULT_WEBHOOK_TIMEOUT,
        &WEBHOOK_TIMEOUT_RANGE,
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

pub(super) fn s3(s: &RawSink, label: &str, errors: &mut Vec<String>) -> Option<S3Config> {
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
