//! Deleting delivered segments: once every sink's cursor is past a segment, it is renamed
//! `<first>.del` at once (out of the spool's name space) and handed to the
//! `clickstream-spool-reaper` thread, which shrinks it step by step and then unlinks it (the
//! `spool` module docs say why).
//!
//! The spool calls `collect_garbage` at open and after every acknowledgement and budget drop. It
//! never deletes the head segment, and touches no file while it holds the state lock.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use super::{DELETED_EXT, Spool, segment_path};

/// How much of a deleted segment one truncation frees (128 pages).
const REAP_STEP_BYTES: u64 = 512 * 1024;
/// Pause between two truncation steps, so the CPU goes to whoever waits for it.
const REAP_PAUSE: Duration = Duration::from_micros(500);

impl Spool {
    /// Deletes segments that every sink has passed (never the head).
    pub(super) fn collect_garbage(&self) {
        // Taken out of the map under the lock, deleted after it: deleting a large file can take
        // milliseconds, and the pipeline thread's flush and the sinks' reads wait for this lock.
        let doomed: Vec<(u64, u64)> = {
            let mut state = self.state();
            let min_next = state.sinks.iter().map(|c| c.position.next_seq).min();
            let firsts: Vec<u64> = state.segments.keys().copied().collect();
            let mut doomed = Vec::new();
            for pair in firsts.windows(2) {
                let (first, next_first) = (pair[0], pair[1]);
                // Every record of `first` is below `next_first`.
                if min_next.is_none_or(|m| m >= next_first) {
                    doomed.extend(state.segments.remove_entry(&first));
                } else {
                    break;
                }
            }
            doomed
        };
        for (first, bytes) in doomed {
            let path = segment_path(&self.shared.dir, first);
            let gone = path.with_extension(DELETED_EXT);
            match fs::rename(&path, &gone) {
                Ok(()) => match &self.shared.reaper {
                    Some(reaper) => {
                        if let Err(mpsc::SendError(gone)) = reaper.send(gone) {
                            reap(&gone, Duration::ZERO);
                        }
                    }
                    None => reap(&gone, Duration::ZERO),
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(segment = %path.display(), error = %e, "spool: cannot delete a delivered segment");
                    // Still on disk: keep counting it, and try again at the next collection.
                    self.state().segments.insert(first, bytes);
                }
            }
        }
    }
}

/// Starts the thread that removes delivered segments (see the module docs).
pub(super) fn start_reaper() -> Option<mpsc::Sender<PathBuf>> {
    let (tx, rx) = mpsc::channel::<PathBuf>();
    let started = std::thread::Builder::new()
        .name("clickstream-spool-reaper".into())
        // Ends when the spool is gone and what it was given is removed.
        .spawn(move || rx.into_iter().for_each(|path| reap(&path, REAP_PAUSE)));
    match started {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::warn!(error = %e, "spool: cannot start the reaper thread; deleting segments inline");
            None
        }
    }
}

/// Removes a delivered segment: shrunk `REAP_STEP_BYTES` at a time with `pause` between steps,
/// then unlinked, so no single call holds a CPU for long.
fn reap(path: &Path, pause: Duration) {
    let shrink_and_remove = || -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        let mut len = file.metadata()?.len();
        while len > 0 {
            len = len.saturating_sub(REAP_STEP_BYTES);
            file.set_len(len)?;
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
        drop(file);
        fs::remove_file(path)
    };
    match shrink_and_remove() {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        // Left as `.del`: the next open removes it.
        Err(e) => tracing::warn!(segment = %path.display(), error = %e, "spool: cannot delete a delivered segment"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::spool::tests::{drain, files_with, meta, spec};

    #[test]
    fn delivered_segments_leave_at_once_and_are_reaped_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (spool, mut w) = Spool::open(dir.path(), 4096, vec![spec("a", u64::MAX)]).unwrap();
            let mut r = spool.reader("a").unwrap();
            for _ in 0..200 {
                w.append(meta(false), &[b'x'; 100]).unwrap();
            }
            w.flush().unwrap();
            let segments = files_with(dir.path(), "seg");
            assert!(segments > 3, "{segments}");
            drain(&mut r, spool.durable_seq());
            assert!(spool.ack("a", r.position(), r.epoch()).unwrap());
            // Out of the spool's name space at once; the reaper removes the files.
            assert_eq!(files_with(dir.path(), "seg"), 1);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while files_with(dir.path(), "del") > 0 {
                assert!(std::time::Instant::now() < deadline, "delivered segments never removed");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // One left behind by a stop is removed at the next open, and is not taken for a segment.
        fs::write(dir.path().join("00000000000000000005.del"), b"CLKSPL01 whatever").unwrap();
        let (spool, _w) = Spool::open(dir.path(), 4096, vec![spec("a", u64::MAX)]).unwrap();
        assert_eq!(files_with(dir.path(), "del"), 0);
        assert_eq!(spool.state().segments.len(), 1);
        assert_eq!(spool.durable_seq(), 200);
    }
}
