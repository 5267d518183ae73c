//! The syncer thread: makes written segments durable and publishes the durable sequence.
//!
//! The writer (the pipeline thread) hands it a [`SyncJob`] per flush and per closed segment and
//! goes on appending: a slow or stalled disk delays the durable sequence (and so delivery), not
//! the enrichment of new clicks. With `fdatasync` on the pipeline thread, a disk that stalled for
//! about a second would have filled the click queue and dropped clicks.
//!
//! Jobs are taken in order; of several queued jobs for one segment only the last is synced.
//! A failed sync is retried with the jobs after it (a later segment is never published before
//! an earlier one is durable), every [`RETRY_PAUSE`].

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use super::{Spool, SpoolError, segment_path, sync_dir};

/// Wait before syncing again after a failure.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// At most one sync failure logged per this interval.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What the writer's [`flush`](super::SpoolWriter::flush) waits for: the durable sequence, or
/// why the sync failed.
pub(super) type Done = SyncSender<Result<u64, SpoolError>>;

/// One request: make `file` durable up to `bytes`, then everything up to `durable` is.
pub(super) struct SyncJob {
    /// The segment's file (the writer's handle).
    pub file: Arc<File>,
    /// The segment's first sequence (its name).
    pub first: u64,
    /// Its length, all written, when the job was made.
    pub bytes: u64,
    /// Last sequence that is durable once this job is.
    pub durable: u64,
    /// The segment is new: its directory entry must be synced too.
    pub new_segment: bool,
    /// Told the outcome, if someone waits.
    pub done: Option<Done>,
}

/// Starts the syncer for `spool`; it ends when every sender is gone and its jobs are done.
pub(super) fn start(spool: Spool) -> io::Result<mpsc::Sender<SyncJob>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("clickstream-sync".into())
        .spawn(move || run(&spool, &rx))?;
    Ok(tx)
}

fn run(spool: &Spool, rx: &Receiver<SyncJob>) {
    let mut jobs: Vec<SyncJob> = Vec::new();
    let mut last_error_log: Option<Instant> = None;
    loop {
        if jobs.is_empty() {
            match rx.recv() {
                Ok(job) => jobs.push(job),
                Err(_) => return,
            }
        } else {
            // Retrying after a failure: take new jobs meanwhile, then try again.
            match rx.recv_timeout(RETRY_PAUSE) {
                Ok(job) => jobs.push(job),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // The writer is gone: one last attempt, then give up (logged).
                    if let Err((first, e)) = sync_all(spool, &mut jobs) {
                        tracing::error!(segment = %segment_path(spool.dir(), first).display(), error = %e,
                            "spool: cannot sync a segment at shutdown; its last events may not be durable");
                    }
                    return;
                }
            }
        }
        jobs.extend(rx.try_iter());
        if let Err((first, e)) = sync_all(spool, &mut jobs)
            && last_error_log.is_none_or(|t| t.elapsed() >= ERROR_LOG_INTERVAL)
        {
            tracing::error!(segment = %segment_path(spool.dir(), first).display(), error = %e,
                "spool: cannot sync a segment (will retry); delivery waits for it");
            last_error_log = Some(Instant::now());
        }
    }
}

/// Syncs and publishes the jobs in order. On a failure, the failed segment's jobs and all
/// later ones stay in `jobs` (their waiters told and dropped) and the error is returned with
/// the segment's first sequence.
fn sync_all(spool: &Spool, jobs: &mut Vec<SyncJob>) -> Result<(), (u64, io::Error)> {
    let mut start = 0;
    while start < jobs.len() {
        // The run of jobs for one segment: only its last needs syncing.
        let first = jobs[start].first;
        let end = start + jobs[start..].iter().take_while(|j| j.first == first).count();
        let last = &jobs[end - 1];
        let new_segment = jobs[start..end].iter().any(|j| j.new_segment);
        let synced = last.file.sync_data().map(|()| {
            if new_segment {
                sync_dir(spool.dir());
            }
        });
        match synced {
            Ok(()) => {
                let (bytes, durable) = (last.bytes, last.durable);
                spool.publish(first, bytes, durable);
                for job in &mut jobs[start..end] {
                    if let Some(done) = job.done.take() {
                        let _ = done.send(Ok(durable));
                    }
                }
                start = end;
            }
            Err(e) => {
                let path = segment_path(spool.dir(), first);
                for job in &mut jobs[start..] {
                    if let Some(done) = job.done.take() {
                        let _ = done.send(Err(SpoolError::Io {
                            path: path.clone(),
                            source: io::Error::new(e.kind(), e.to_string()),
                        }));
                    }
                }
                jobs.drain(..start);
                return Err((first, e));
            }
        }
    }
    jobs.clear();
    Ok(())
}
