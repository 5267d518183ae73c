//! A sink's reader: follows the segments from the sink's cursor, never past the durable
//! sequence, skipping events the sink's filters exclude.
//!
//! Blocking file I/O: sink drivers call it from `spawn_blocking`. Reads are sequential and come
//! from the page cache in the common case (the writer just wrote them).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Decoded, Position, Record, RecordRef, SEGMENT_MAGIC, SinkSpec, Spool, decode_record, segment_path};

const READ_CHUNK_BYTES: usize = 256 * 1024;

/// Reads one sink's events in sequence order.
pub struct SpoolReader {
    spool: Spool,
    spec: SinkSpec,
    position: Position,
    /// The cursor epoch this reader's position belongs to.
    epoch: u64,
    /// The cursor's current epoch (see [`SpoolReader::cursor_epoch`]).
    cursor_epoch: Arc<AtomicU64>,
    file: Option<File>,
    /// Bytes read from the file at `position.offset` and not yet decoded.
    buf: Vec<u8>,
    /// Start of undecoded data in `buf`.
    at: usize,
}

impl SpoolReader {
    pub(super) fn new(spool: Spool, spec: SinkSpec, position: Position, cursor_epoch: Arc<AtomicU64>) -> SpoolReader {
        SpoolReader {
            spool,
            spec,
            position,
            epoch: cursor_epoch.load(Ordering::Relaxed),
            cursor_epoch,
            file: None,
            buf: Vec::new(),
            at: 0,
        }
    }

    /// Position after the last record returned.
    pub fn position(&self) -> Position {
        self.position
    }

    /// The cursor epoch this reader follows (see [`Spool::ack`]).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The sink cursor's current epoch: when it differs from the epoch a batch was read at,
    /// the budget has moved the cursor past that batch, which is being dropped. One atomic
    /// load, no lock, so a sink can ask before every attempt from the async runtime.
    pub fn cursor_epoch(&self) -> u64 {
        self.cursor_epoch.load(Ordering::Relaxed)
    }

    /// Moves to the sink's saved cursor if the budget moved it; true when it did.
    pub fn follow_cursor(&mut self) -> bool {
        if self.cursor_epoch() == self.epoch {
            return false;
        }
        match self.spool.cursor(&self.spec.name) {
            Some((epoch, position)) if epoch != self.epoch => {
                self.epoch = epoch;
                self.jump(position);
                true
            }
            _ => false,
        }
    }

    /// Positions the reader at sequence `seq` (for replaying a pending batch).
    pub fn seek_seq(&mut self, seq: u64) {
        let segment = {
            let state = self.spool.state();
            state
                .segments
                .range(..=seq)
                .next_back()
                .map(|(k, _)| *k)
                .or_else(|| state.segments.keys().next().copied())
                .unwrap_or(seq)
        };
        self.jump(Position {
            next_seq: seq.max(segment),
            segment,
            offset: 0,
        });
    }

    fn jump(&mut self, position: Position) {
        self.position = position;
        self.file = None;
        self.buf.clear();
        self.at = 0;
    }

    /// The next event for this sink with a sequence at most `durable`, or `None` when there is
    /// none yet. Events the filters exclude are skipped (and counted as filtered).
    pub fn next(&mut self, durable: u64) -> io::Result<Option<Record>> {
        self.next_with(durable, |r| r.to_record())
    }

    /// Like [`SpoolReader::next`], but hands the event to `take` where it lies in the read
    /// buffer, and returns what `take` returns: a batch copies it once, into its own buffer.
    pub fn next_with<T>(&mut self, durable: u64, take: impl FnOnce(RecordRef<'_>) -> T) -> io::Result<Option<T>> {
        loop {
            if self.position.next_seq > durable {
                return Ok(None);
            }
            if self.file.is_none() && !self.open_segment()? {
                return Ok(None);
            }
            match decode_record(&self.buf[self.at..]) {
                Decoded::Record(record, len) => {
                    self.at += len;
                    if record.seq < self.position.next_seq {
                        // Scanning from a segment start to a known sequence.
                        self.position.offset += len as u64;
                        continue;
                    }
                    if record.seq > durable {
                        self.at -= len;
                        return Ok(None);
                    }
                    self.position.offset += len as u64;
                    self.position.next_seq = record.seq + 1;
                    if self.spec.filter.matches(record.bot, &record.workspace, &record.domain) {
                        return Ok(Some(take(record)));
                    }
                    self.spec.metrics.filtered.inc();
                }
                Decoded::Incomplete => {
                    if self.fill()? > 0 {
                        continue;
                    }
                    // End of this file. A later segment means this one is closed; read again
                    // once in case it was completed between our read and the roll.
                    let Some(next) = self.next_segment() else {
                        return Ok(None);
                    };
                    if self.position.next_seq < next && self.fill()? > 0 {
                        continue;
                    }
                    self.advance_segment(self.position.next_seq < next);
                }
                Decoded::Corrupt(why) => {
                    tracing::warn!(
                        segment = %segment_path(self.spool.dir(), self.position.segment).display(),
                        offset = self.position.offset,
                        "spool: {why}; skipping the rest of the segment"
                    );
                    if !self.advance_segment(false) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Opens the current segment at the current offset; false when it does not exist.
    fn open_segment(&mut self) -> io::Result<bool> {
        let path = segment_path(self.spool.dir(), self.position.segment);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Deleted under us (budget drop): go on with the next one that exists.
                return if self.advance_segment(false) {
                    self.open_segment()
                } else {
                    Ok(false)
                };
            }
            Err(e) => return Err(e),
        };
        if self.position.offset < SEGMENT_MAGIC.len() as u64 {
            self.position.offset = SEGMENT_MAGIC.len() as u64;
        }
        file.seek(SeekFrom::Start(self.position.offset))?;
        self.file = Some(file);
        self.buf.clear();
        self.at = 0;
        Ok(true)
    }

    /// Reads more bytes of the current segment; returns how many.
    fn fill(&mut self) -> io::Result<usize> {
        if self.at > 0 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        let Some(file) = self.file.as_mut() else { return Ok(0) };
        // `read_to_end` through `take` reads into the spare capacity without zeroing it first.
        file.take(READ_CHUNK_BYTES as u64).read_to_end(&mut self.buf)
    }

    fn next_segment(&self) -> Option<u64> {
        let state = self.spool.state();
        state
            .segments
            .range(self.position.segment + 1..)
            .next()
            .map(|(k, _)| *k)
    }

    /// Moves to the next segment on disk; false when there is none yet. `incomplete` says the
    /// current one ended before its last sequence (a torn or corrupt end), which is logged.
    fn advance_segment(&mut self, incomplete: bool) -> bool {
        let Some(next) = self.next_segment() else { return false };
        if incomplete {
            tracing::warn!(
                segment = %segment_path(self.spool.dir(), self.position.segment).display(),
                missing_from = self.position.next_seq,
                missing_to = next - 1,
                "spool: a closed segment ends early; skipping to the next one"
            );
        }
        self.jump(Position {
            next_seq: self.position.next_seq.max(next),
            segment: next,
            offset: SEGMENT_MAGIC.len() as u64,
        });
        // Open lazily on the next call.
        true
    }
}
