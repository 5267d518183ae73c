//! The file sink: newline-delimited JSON files in a local directory, one file per click hour
//! (`2026-11-26T17.ndjson`, UTC). The embedded default sink, so `serve` with no configuration
//! shows events on disk.
//!
//! Each batch is appended and synced before it is acknowledged; a crash between the two writes
//! the batch again after restart (receivers de-duplicate by event `id`).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use super::{Batch, SendError, Sink};

/// Appends batches to hourly NDJSON files.
pub struct FileSink {
    dir: PathBuf,
}

impl FileSink {
    /// A sink writing into `dir` (created when missing).
    pub fn new(dir: PathBuf) -> FileSink {
        FileSink { dir }
    }

    /// The file a batch goes to.
    pub fn path_for(&self, batch: &Batch) -> PathBuf {
        let (date, hour) = batch.date_hour();
        self.dir.join(format!("{date}T{hour}.ndjson"))
    }
}

impl Sink for FileSink {
    async fn send(&self, batch: &Batch) -> Result<(), SendError> {
        let path = self.path_for(batch);
        let dir = self.dir.clone();
        let body = batch.ndjson().to_vec();
        let result = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
            f.write_all(&body)?;
            f.sync_data()
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            // A full or read-only disk may recover: retry, never drop.
            Ok(Err(e)) => Err(SendError::Retry {
                reason: format!("{}: {e}", self.dir.display()),
                after: None,
            }),
            Err(e) => Err(SendError::Retry {
                reason: format!("file write task failed: {e}"),
                after: None,
            }),
        }
    }
}
