//! The appending end: [`SpoolWriter`] encodes events into a write buffer, writes it to the head
//! segment, starts a new segment past `segment_max_bytes`, and hands what it wrote to the syncer
//! (`sync`) to be made durable.
//!
//! Owned by the pipeline thread. It never syncs: the `clickstream-sync` thread does, and only
//! [`SpoolWriter::flush`] waits for it, so a slow disk holds back delivery, never the intake of
//! clicks. It takes the state lock only to add a new segment.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::{Arc, mpsc};

use super::record::encode_record_with;
use super::{Filter, RecordMeta, SEGMENT_MAGIC, Spool, SpoolError, WRITE_BUFFER_BYTES, io_err, segment_path, sync};
use crate::metrics::SinkMetrics;

/// The appending end; owned by the pipeline thread.
pub struct SpoolWriter {
    pub(super) spool: Spool,
    pub(super) segment_max_bytes: u64,
    /// The head segment, shared with the syncer.
    pub(super) file: Arc<File>,
    /// Records encoded in place (see [`SpoolWriter::append_with`]) and not yet written.
    pub(super) pending: Vec<u8>,
    pub(super) segment_first: u64,
    /// Length of the head segment, `pending` included.
    pub(super) segment_bytes: u64,
    /// The head segment was created and no sync job has carried it yet (its directory entry).
    pub(super) segment_is_new: bool,
    pub(super) next_seq: u64,
    /// Last sequence handed to the syncer.
    pub(super) requested: u64,
    pub(super) syncer: mpsc::Sender<sync::SyncJob>,
    /// Each sink's filter and counters (the sinks are fixed when the spool opens), so that an
    /// append counts without taking the state lock the sinks' readers use.
    pub(super) filters: Vec<(Filter, Arc<SinkMetrics>)>,
}

impl SpoolWriter {
    /// The shared handle.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Appends one event and returns its sequence number. Not durable until the next
    /// [`flush`](Self::flush) or [`flush_in_background`](Self::flush_in_background) is done.
    pub fn append(&mut self, meta: RecordMeta<'_>, json: &[u8]) -> Result<u64, SpoolError> {
        self.append_with(meta, |out| out.extend_from_slice(json))
    }

    /// Like [`append`](Self::append), with the event's JSON written by `write_json` straight
    /// into the write buffer (no copy of it on the way).
    pub fn append_with(
        &mut self,
        meta: RecordMeta<'_>,
        write_json: impl FnOnce(&mut Vec<u8>),
    ) -> Result<u64, SpoolError> {
        if self.segment_bytes >= self.segment_max_bytes {
            self.roll()?;
        }
        if self.pending.len() >= WRITE_BUFFER_BYTES {
            // On failure the event is not taken (the caller counts it) and the buffer is kept
            // for the next attempt, so it stays bounded.
            self.write_pending()?;
        }
        let seq = self.next_seq;
        let before = self.pending.len();
        encode_record_with(&mut self.pending, seq, meta, write_json);
        self.segment_bytes += (self.pending.len() - before) as u64;
        self.next_seq += 1;
        for (filter, metrics) in &self.filters {
            if filter.matches(meta.bot, meta.workspace, meta.domain) {
                metrics.appended.inc();
            }
        }
        Ok(seq)
    }

    /// Writes the buffered records to the head segment. What was written leaves the buffer even
    /// on an error, so a retry goes on where this stopped.
    fn write_pending(&mut self) -> Result<(), SpoolError> {
        let mut written = 0;
        let result = loop {
            if written == self.pending.len() {
                break Ok(());
            }
            match (&*self.file).write(&self.pending[written..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.pending.drain(..written);
        result.map_err(io_err(&segment_path(&self.spool.shared.dir, self.segment_first)))
    }

    /// Hands the head segment, as written so far, to the syncer.
    fn request_sync(&mut self, done: Option<sync::Done>) -> Result<(), SpoolError> {
        let durable = self.next_seq - 1;
        let job = sync::SyncJob {
            file: self.file.clone(),
            first: self.segment_first,
            bytes: self.segment_bytes,
            durable,
            new_segment: self.segment_is_new,
            done,
        };
        if self.syncer.send(job).is_err() {
            return Err(self.syncer_stopped());
        }
        self.requested = durable;
        self.segment_is_new = false;
        Ok(())
    }

    /// Writes the buffer out and asks the syncer to make it durable, without waiting: the
    /// syncer publishes the new durable sequence and applies the sinks' budgets when done.
    pub fn flush_in_background(&mut self) -> Result<(), SpoolError> {
        self.write_pending()?;
        if self.next_seq - 1 == self.requested && !self.segment_is_new {
            return Ok(());
        }
        self.request_sync(None)
    }

    /// Writes the buffer out, syncs it and returns the durable sequence, once published.
    pub fn flush(&mut self) -> Result<u64, SpoolError> {
        self.write_pending()?;
        let durable = self.next_seq - 1;
        if durable <= self.spool.durable_seq() && !self.segment_is_new {
            return Ok(durable);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.request_sync(Some(tx))?;
        rx.recv().unwrap_or_else(|_| Err(self.syncer_stopped()))
    }

    /// The error for a sync that cannot be asked for or answered: the syncer is gone.
    fn syncer_stopped(&self) -> SpoolError {
        SpoolError::Io {
            path: segment_path(&self.spool.shared.dir, self.segment_first),
            source: io::Error::other("the spool's sync thread has stopped"),
        }
    }

    /// Starts a new head segment. The closed one is synced by the syncer, in order, before
    /// anything of the new one is published.
    fn roll(&mut self) -> Result<(), SpoolError> {
        self.write_pending()?;
        if self.next_seq - 1 != self.requested || self.segment_is_new {
            self.request_sync(None)?;
        }
        let first = self.next_seq;
        let path = segment_path(&self.spool.shared.dir, first);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        self.file = Arc::new(file);
        self.pending.extend_from_slice(SEGMENT_MAGIC);
        self.segment_first = first;
        self.segment_bytes = SEGMENT_MAGIC.len() as u64;
        self.segment_is_new = true;
        self.spool.state().segments.insert(first, self.segment_bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::spool::tests::{drain, meta, spec, wait_durable};

    #[test]
    fn background_flushes_become_durable_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (spool, mut w) = Spool::open(dir.path(), 4096, vec![spec("a", u64::MAX)]).unwrap();
            for i in 0..250 {
                w.append(meta(false), &[b'q'; 100]).unwrap();
                if i % 50 == 49 {
                    w.flush_in_background().unwrap();
                }
            }
            assert_eq!(wait_durable(&spool, 250), 250);
            let mut r = spool.reader("a").unwrap();
            assert_eq!(drain(&mut r, spool.durable_seq()), (1..=250).collect::<Vec<_>>());
        }
        let (spool, _w) = Spool::open(dir.path(), 4096, vec![spec("a", u64::MAX)]).unwrap();
        assert_eq!(spool.durable_seq(), 250);
        let mut r = spool.reader("a").unwrap();
        assert_eq!(drain(&mut r, 250), (1..=250).collect::<Vec<_>>());
    }
}
