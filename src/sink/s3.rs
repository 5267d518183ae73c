//! The S3 sink: gzip NDJSON objects in a bucket, keyed by click hour:
//! `<prefix>/dt=YYYY-MM-DD/hour=HH/<node_id>-<spool id>-<first seq>-<last seq>.ndjson.gz`.
//!
//! The key is a function of the batch's bounds, which the spool records before the upload, so a
//! replay after a crash rebuilds the same object under the same key (an overwrite, not a
//! duplicate). Credentials come from the standard AWS chain (environment, profile, SSO, instance
//! role). The SDK's own retries are off: the shared driver retries every error with its backoff,
//! for as long as the spool budget lasts — a missing bucket or a denied key loses nothing that
//! fits in it.

use std::io::Write as _;

use aws_sdk_s3::primitives::ByteStream;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::{Batch, SendError, Sink};
use crate::config::S3Config;

/// Uploads batches to one bucket.
pub struct S3Sink {
    client: aws_sdk_s3::Client,
    config: S3Config,
    node_id: String,
    spool_id: String,
}

impl S3Sink {
    /// Builds the client from the standard AWS configuration chain plus the sink's overrides.
    pub async fn new(config: S3Config, node_id: String, spool_id: String) -> S3Sink {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::disabled());
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared).force_path_style(config.force_path_style);
        if shared.region().is_none() {
            // S3-compatible stores ignore the region, but the SDK insists on one.
            builder = builder.region(aws_config::Region::new("us-east-1"));
        }
        S3Sink {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            config,
            node_id,
            spool_id,
        }
    }

    /// The object key of a batch.
    pub fn key(&self, batch: &Batch) -> String {
        object_key(&self.config.prefix, &self.node_id, &self.spool_id, batch)
    }
}

/// `<prefix>/dt=YYYY-MM-DD/hour=HH/<node>-<spool>-<first>-<last>.ndjson.gz` (no leading `/`
/// when the prefix is empty).
pub fn object_key(prefix: &str, node_id: &str, spool_id: &str, batch: &Batch) -> String {
    let (date, hour) = batch.date_hour();
    let name = format!(
        "dt={date}/hour={hour}/{node_id}-{spool_id}-{}-{}.ndjson.gz",
        batch.first_seq, batch.last_seq
    );
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// Gzips a batch's NDJSON.
pub fn gzip(batch: &Batch) -> std::io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::with_capacity(batch.bytes() / 4 + 64), Compression::default());
    enc.write_all(batch.ndjson())?;
    enc.finish()
}

impl Sink for S3Sink {
    async fn send(&self, batch: &Batch) -> Result<(), SendError> {
        let key = self.key(batch);
        let owned = batch.clone();
        let body = tokio::task::spawn_blocking(move || gzip(&owned))
            .await
            .map_err(|e| SendError::Retry {
                reason: format!("gzip task failed: {e}"),
                after: None,
            })?
            .map_err(|e| SendError::Retry {
                reason: format!("gzip failed: {e}"),
                after: None,
            })?;
        self.client
            .put_object()
            .bucket(&self.config.bucket)
            .key(&key)
            .content_type("application/x-ndjson")
            .content_encoding("gzip")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| SendError::Retry {
                reason: format!(
                    "s3://{}/{key}: {}",
                    self.config.bucket,
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ),
                after: None,
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        let mut b = Batch::of(17, 1_562_076_426_000_000, [&b"{}"[..]]);
        b.last_seq = 42;
        assert_eq!(
            object_key("clicks/v1", "edge-1", "0a1b2c3d", &b),
            "clicks/v1/dt=2019-07-02/hour=14/edge-1-0a1b2c3d-17-42.ndjson.gz"
        );
        assert_eq!(
            object_key("", "n", "s", &b),
            "dt=2019-07-02/hour=14/n-s-17-42.ndjson.gz"
        );
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let b = Batch::of(1, 0, [&b"{\"a\":1}"[..], b"{\"b\":2}"]);
        let mut out = String::new();
        flate2::read::GzDecoder::new(&gzip(&b).unwrap()[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "{\"a\":1}\n{\"b\":2}\n");
    }
}
