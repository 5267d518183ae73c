//! The webhook sink: `POST` (or `PUT`) of `{"data":[event, ...],"key":"<key>"}` to an HTTP
//! endpoint, exactly the Clickstream webhook body, `Content-Type: application/json`.
//!
//! Redirects are never followed (a 3xx is retried: the endpoint is misconfigured, and following
//! it could leak the events elsewhere). With a signing secret, each request carries the Standard
//! Webhooks headers: `webhook-id` (per batch, the same on every retry and after a restart),
//! `webhook-timestamp` (of each attempt) and `webhook-signature` (`v1,` + base64 of
//! HMAC-SHA256 over `id.timestamp.body`, re-signed per attempt).

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::StatusCode;
use sha2::Sha256;

use super::{Batch, SendError, Sink};
use crate::config::{SigningKey, WebhookConfig};

/// Delivers batches to one HTTP endpoint.
pub struct WebhookSink {
    client: reqwest::Client,
    config: WebhookConfig,
    /// JSON string literal of the key, encoded once.
    key_json: String,
    /// Prefix of batch ids (`msg_<node>_<spool id>`).
    id_prefix: String,
}

impl WebhookSink {
    /// A sink for `config`; `id_prefix` makes batch ids unique across nodes and spools.
    pub fn new(config: WebhookConfig, id_prefix: String) -> Result<WebhookSink, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("clickstream/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let key_json = serde_json::to_string(&config.key.0).unwrap_or_else(|_| "\"\"".into());
        Ok(WebhookSink {
            client,
            config,
            key_json,
            id_prefix,
        })
    }

    /// The request body for a batch: the events are already JSON and are not parsed again. The
    /// batch's NDJSON is copied whole and its newlines turned into the array's commas.
    pub fn body(&self, batch: &Batch) -> Vec<u8> {
        const START: &[u8] = b"{\"data\":[";
        let events = batch.ndjson();
        let mut body = Vec::with_capacity(START.len() + events.len() + self.key_json.len() + 10);
        body.extend_from_slice(START);
        body.extend_from_slice(events.strip_suffix(b"\n").unwrap_or(events));
        if let Some((_, between)) = batch.newlines().split_last() {
            for &at in between {
                body[START.len() + at] = b',';
            }
        }
        body.extend_from_slice(b"],\"key\":");
        body.extend_from_slice(self.key_json.as_bytes());
        body.push(b'}');
        body
    }
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`: the Standard Webhooks signature.
pub fn sign(key: &SigningKey, id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// What an HTTP status means for a batch.
pub fn classify(status: StatusCode, retry_after: Option<Duration>) -> Result<(), SendError> {
    let code = status.as_u16();
    let reason = format!("endpoint answered {status}");
    match code {
        200..=299 => Ok(()),
        410 => Err(SendError::Disable { reason }),
        413 => Err(SendError::TooLarge { reason }),
        400 | 422 => Err(SendError::Reject { reason }),
        // 3xx, 401/403/404 (misconfiguration), 408, 429, 5xx, and anything else: the content may
        // be fine and the endpoint not; keep it and retry.
        _ => Err(SendError::Retry {
            reason,
            after: retry_after,
        }),
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

impl Sink for WebhookSink {
    async fn send(&self, batch: &Batch) -> Result<(), SendError> {
        let body = self.body(batch);
        let mut request = self
            .client
            .request(self.config.method.clone(), self.config.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json");
        for (name, value) in &self.config.headers {
            request = request.header(name, value.0.as_str());
        }
        if let Some(key) = &self.config.signing_key {
            let id = format!("{}_{}_{}", self.id_prefix, batch.first_seq, batch.last_seq);
            let timestamp = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let signature = sign(key, &id, timestamp, &body);
            request = request
                .header("webhook-id", id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature);
        }
        let response = request.body(body).send().await.map_err(|e| SendError::Retry {
            reason: format!("{}: {}", self.config.url, crate::error_chain(&e)),
            after: None,
        })?;
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        classify(response.status(), retry_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::decode_signing_secret;

    #[test]
    fn standard_webhooks_test_vector() {
        let key = decode_signing_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn statuses_map_to_retry_reject_split_or_disable() {
        let table: &[(u16, &str)] = &[
            (200, "ok"),
            (204, "ok"),
            (301, "retry"),
            (308, "retry"),
            (400, "reject"),
            (401, "retry"),
            (403, "retry"),
            (404, "retry"),
            (408, "retry"),
            (410, "disable"),
            (413, "split"),
            (422, "reject"),
            (429, "retry"),
            (500, "retry"),
            (503, "retry"),
        ];
        for (code, want) in table {
            let got = match classify(StatusCode::from_u16(*code).unwrap(), None) {
                Ok(()) => "ok",
                Err(SendError::Retry { .. }) => "retry",
                Err(SendError::Reject { .. }) => "reject",
                Err(SendError::TooLarge { .. }) => "split",
                Err(SendError::Disable { .. }) => "disable",
            };
            assert_eq!(got, *want, "status {code}");
        }
    }

    #[test]
    fn bodies_are_the_clickstream_payload() {
        let sink = WebhookSink::new(
            WebhookConfig {
                url: "http://127.0.0.1:9/clicks".parse().unwrap(),
                method: http::Method::POST,
                key: crate::config::Secret("k\"1".into()),
                headers: Vec::new(),
                signing_key: None,
                timeout: Duration::from_secs(1),
            },
            "msg_n_s".into(),
        )
        .unwrap();
        let events: [&[u8]; 3] = [br#"{"id":"a"}"#, br#"{"id":"b","x":[1,2]}"#, br#"{"id":"c"}"#];
        for n in 1..=3 {
            let body = sink.body(&Batch::of(1, 0, events[..n].iter().copied()));
            let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let want: Vec<serde_json::Value> = events[..n].iter().map(|e| serde_json::from_slice(e).unwrap()).collect();
            assert_eq!(
                parsed,
                serde_json::json!({"data": want, "key": "k\"1"}),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
        assert_eq!(
            sink.body(&Batch::of(1, 0, events[..2].iter().copied())),
            br#"{"data":[{"id":"a"},{"id":"b","x":[1,2]}],"key":"k\"1"}"#
        );
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
