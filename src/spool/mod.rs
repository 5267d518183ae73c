//! The durable spool: every click event, on disk, until every sink has delivered it.
//!
//! # Design
//!
//! One writer (the pipeline thread) appends; one reader per sink follows at its own pace.
//!
//! **Files.** `spool_dir/` holds:
//! - `spool.id`: eight hex digits drawn when the spool is created (part of S3 keys and webhook ids).
//! - `<first seq, 20 digits>.seg`: segment files. A segment starts with the 8-byte magic
//!   `CLKSPL01`, then records back to back. The writer starts a new segment past
//!   `[spool] segment_max_bytes`.
//! - `<sink>.cursor`: one per sink: the next sequence number to deliver, its byte position, and
//!   the `pending` batch bounds (see below), in two checksummed slots written alternately in
//!   place (see `cursor`). A sink's cursor is saved as soon as the sink is first configured.
//! - `dead-letter/<sink>.ndjson`: events a destination rejected (written by the sink driver).
//! - `<first seq>.del`: a delivered segment being deleted (see below); one left by a stop is
//!   removed at the next open.
//!
//! **Records.** `[len: u32 LE][crc32: u32 LE][body: len bytes]`, with the body
//! `[seq: u64][click time: i64 µs][flags: u8][workspace: u16 len + bytes][domain: u16 len + bytes]
//! [event JSON]`. The CRC (crc32fast, IEEE) covers the body. Sequence numbers start at 1 and
//! grow by one per record across segments; a segment's name is its first sequence number.
//! The metadata before the JSON lets sinks filter (humans only, workspaces, domains) and
//! partition by click hour without parsing JSON.
//!
//! **Durability.** Appends are encoded into a buffer and written out in 256 KiB pieces; every
//! `[spool] flush_interval` (default 200 ms) the writer writes the rest and hands the segment to
//! the `clickstream-sync` thread, which `fdatasync`s it (and the directory, for a new
//! segment) and then publishes the new *durable sequence* ([`Spool::durable_seq`], a metric).
//! Readers never read past it. The writer does not wait for the disk, so a slow disk holds back
//! delivery, never the intake of clicks (see `sync`). So a crash (`kill -9`, power loss) loses
//! the events of the last flush interval, and those a slow disk has not synced yet; SIGTERM
//! loses none (the last flush waits for its sync).
//!
//! **Recovery.** On open, the last segment is read record by record; a torn or corrupt tail (a
//! short record or a CRC mismatch) is cut off with a warning, never a panic. A corrupt record in
//! an older segment makes readers skip the rest of that segment, with a warning.
//!
//! **Cursors and deletion.** Each sink acknowledges delivered batches ([`Spool::ack`]); a segment
//! is deleted once every configured sink's cursor is past it. Delivery is at least once: a crash
//! between a delivery and its acknowledgement redelivers that batch (receivers de-duplicate by
//! event `id`). A delivered segment is renamed to `.del` at once and then shrunk step by step
//! and removed by the `clickstream-spool-reaper` thread: one `unlink` of an 8 MiB segment took 3
//! to 5 ms in the kernel (timed with `strace -T`; freeing its pages and blocks), on the thread
//! that collected it, and a kernel that does not preempt system calls keeps that CPU meanwhile.
//!
//! **Pending batches.** Before a sink sends a batch it records the batch's sequence bounds in its
//! cursor ([`Spool::set_pending`], synced). After a crash the same bounds are replayed first, so
//! an S3 object is rebuilt under the same key and a webhook retry carries the same
//! `webhook-id`, instead of a differently cut duplicate.
//!
//! **Budgets.** Each sink has a disk budget (`spool_max_bytes`): the bytes from its cursor to the
//! head. After each flush, a sink over budget has its cursor moved to the start of its next
//! segment, dropping its *oldest* undelivered events (counted by reading the skipped range once
//! the lock is released; a skipped segment that another sink's delivery has meanwhile let go is
//! counted by its sequence numbers, filters aside), so the files can actually be deleted. The
//! granularity is one segment: keep the budget several times `segment_max_bytes`.
//!
//! **Locking.** One `std::sync::Mutex` guards the segment list and the cursors; it is taken by
//! the pipeline thread once per flush and by sink drivers once per batch, never on the request
//! path, and never held across network I/O.
//!
//! # Parts
//!
//! `record` encodes and decodes records; `writer` is the appending end ([`SpoolWriter`]); `sync`
//! the syncer thread; `reader` a sink's [`SpoolReader`]; `cursor` the cursor files; `reap` deletes
//! delivered segments. This file opens and recovers the spool and keeps the shared state: the
//! segment list and the cursors, with acknowledgements and budgets.

mod cursor;
mod reader;
mod reap;
mod record;
mod sync;
mod writer;

pub use reader::SpoolReader;
pub use record::{Decoded, Record, RecordMeta, RecordRef, decode_record, encode_record};
pub use writer::SpoolWriter;

use cursor::{CursorFile, Found, Saved};
use reap::start_reaper;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::metrics::SinkMetrics;

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: &[u8; 8] = b"CLKSPL01";
/// The extension a delivered segment is renamed to until the reaper has removed it.
const DELETED_EXT: &str = "del";
/// Encoded records the writer gathers before it writes them to the segment file.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// Why the spool could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation failed; the message names the path.
    #[error("{path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A sink's filters: which events it takes.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Skip bots.
    pub humans_only: bool,
    /// Only these workspaces (empty: all).
    pub workspaces: HashSet<String>,
    /// Only these domains (empty: all).
    pub domains: HashSet<String>,
}

impl Filter {
    /// True when the sink takes an event with this metadata.
    pub fn matches(&self, bot: bool, workspace: &str, domain: &str) -> bool {
        !(self.humans_only && bot)
            && (self.workspaces.is_empty() || self.workspaces.contains(workspace))
            && (self.domains.is_empty() || self.domains.contains(domain))
    }
}

/// A sink as the spool knows it.
#[derive(Debug, Clone)]
pub struct SinkSpec {
    /// Name (cursor file name).
    pub name: String,
    /// Disk budget in bytes.
    pub budget_bytes: u64,
    /// Filters.
    pub filter: Filter,
    /// Counters.
    pub metrics: Arc<SinkMetrics>,
}

/// Where a reader stands: the next sequence number and its byte position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Next sequence number to read.
    pub next_seq: u64,
    /// First sequence of the segment holding it.
    pub segment: u64,
    /// Byte offset of it in that segment.
    pub offset: u64,
}

#[derive(Debug)]
struct SinkCursor {
    spec: SinkSpec,
    position: Position,
    pending: Option<(u64, u64)>,
    /// Bumped (under the state lock) when the budget moves the cursor under the reader's feet;
    /// shared with the sink's reader, so that a sink notices without taking the lock.
    epoch: Arc<AtomicU64>,
    /// Its file; locked while the state lock is held (never the other way round), then
    /// written after the state lock is released.
    file: Arc<Mutex<CursorFile>>,
}

#[derive(Debug)]
struct State {
    /// First sequence → size in bytes, for every segment on disk; the last is the head.
    segments: BTreeMap<u64, u64>,
    sinks: Vec<SinkCursor>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    id: String,
    state: Mutex<State>,
    durable: watch::Sender<u64>,
    /// Delivered segments (already renamed `.del`) to the reaper thread; `None` if it could not
    /// be started, and then they are removed where they are collected.
    reaper: Option<mpsc::Sender<PathBuf>>,
}

/// Handle to an open spool, shared by the writer and every sink driver.
#[derive(Debug, Clone)]
pub struct Spool {
    shared: Arc<Shared>,
}

/// Bytes of the durable segments from `p` to the head: a sink's share of the disk.
fn bytes_from(segments: &BTreeMap<u64, u64>, p: &Position) -> u64 {
    segments
        .range(p.segment..)
        .map(|(_, b)| *b)
        .sum::<u64>()
        .saturating_sub(p.offset)
}

/// Locks a mutex; a panic elsewhere while it was held leaves plain data that is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

fn cursor_path(dir: &Path, sink: &str) -> PathBuf {
    dir.join(format!("{sink}.cursor"))
}

fn write_atomically(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_data()?;
        }
    }
    fs::rename(&tmp, path)
}

fn sync_dir(dir: &Path) {
    // Makes a new or renamed file's directory entry durable; failure only weakens crash safety
    // on exotic filesystems, so it is logged, not fatal.
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "directory sync failed");
    }
}

/// Reads a segment and returns the byte length of its valid prefix and the last valid sequence.
fn scan_segment(path: &Path) -> Result<(u64, Option<u64>, Option<&'static str>), SpoolError> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(io_err(path))?;
    if data.len() < SEGMENT_MAGIC.len() || &data[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
        return Ok((0, None, Some("missing segment header")));
    }
    let mut at = SEGMENT_MAGIC.len();
    let mut last = None;
    loop {
        match decode_record(&data[at..]) {
            Decoded::Record(r, n) => {
                last = Some(r.seq);
                at += n;
            }
            Decoded::Incomplete if at == data.len() => return Ok((at as u64, last, None)),
            Decoded::Incomplete => return Ok((at as u64, last, Some("torn record at the end"))),
            Decoded::Corrupt(why) => return Ok((at as u64, last, Some(why))),
        }
    }
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, recovering from a crash, and returns the shared
    /// handle and the writer.
    pub fn open(dir: &Path, segment_max_bytes: u64, sinks: Vec<SinkSpec>) -> Result<(Spool, SpoolWriter), SpoolError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let id_path = dir.join("spool.id");
        let id = match fs::read_to_string(&id_path) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                let id = format!("{:08x}", rand::random::<u32>());
                write_atomically(&id_path, id.as_bytes(), true).map_err(io_err(&id_path))?;
                sync_dir(dir);
                id
            }
        };
        let mut segments = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name();
            if Path::new(&name).extension().is_some_and(|x| x == DELETED_EXT) {
                // A delivered segment whose deletion a stop interrupted.
                let path = entry.path();
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(segment = %path.display(), error = %e, "spool: cannot delete a delivered segment");
                }
                continue;
            }
            let Some(first) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let len = entry.metadata().map_err(io_err(&entry.path()))?.len();
            segments.insert(first, len);
        }
        // Recover the head: cut a torn or corrupt tail.
        let mut next_seq = 1;
        if let Some((&first, _)) = segments.iter().next_back() {
            let path = segment_path(dir, first);
            let (valid, last, problem) = scan_segment(&path)?;
            if let Some(why) = problem {
                tracing::warn!(segment = %path.display(), valid_bytes = valid, "spool: {why}; cutting the segment there");
                let f = OpenOptions::new().write(true).open(&path).map_err(io_err(&path))?;
                let keep = valid.max(SEGMENT_MAGIC.len() as u64);
                if valid < SEGMENT_MAGIC.len() as u64 {
                    f.set_len(0).map_err(io_err(&path))?;
                    (&f).write_all(SEGMENT_MAGIC).map_err(io_err(&path))?;
                } else {
                    f.set_len(keep).map_err(io_err(&path))?;
                }
                f.sync_all().map_err(io_err(&path))?;
            }
            let len = valid.max(SEGMENT_MAGIC.len() as u64);
            segments.insert(first, len);
            next_seq = last.map_or(first, |l| l + 1);
        }
        let head_first = match segments.iter().next_back() {
            Some((&first, _)) => first,
            None => {
                let path = segment_path(dir, next_seq);
                write_atomically(&path, SEGMENT_MAGIC, true).map_err(io_err(&path))?;
                sync_dir(dir);
                segments.insert(next_seq, SEGMENT_MAGIC.len() as u64);
                next_seq
            }
        };
        let oldest = *segments.keys().next().expect("at least the head segment");
        let mut cursors = Vec::new();
        let mut created = false;
        for spec in sinks {
            let path = cursor_path(dir, &spec.name);
            let (mut file, found) = CursorFile::open(&path).map_err(io_err(&path))?;
            let (mut position, pending) = match found {
                Found::Saved(saved) => (saved.position, saved.pending),
                // A new sink starts with the events that arrive from now on, and says so on
                // disk at once: a crash before its first delivery must not move its start.
                Found::Missing => {
                    let start = Saved {
                        position: Position {
                            next_seq,
                            segment: head_first,
                            offset: segments[&head_first],
                        },
                        pending: None,
                    };
                    file.save(&start, true).map_err(io_err(&path))?;
                    created = true;
                    (start.position, None)
                }
                // Better twice than never: start again from the oldest event on disk.
                Found::Unreadable => {
                    tracing::warn!(cursor = %path.display(), "spool: unreadable cursor; redelivering from the oldest segment");
                    let position = Position {
                        next_seq: oldest,
                        segment: oldest,
                        offset: 0, // the reader scans from the segment start
                    };
                    (position, None)
                }
            };
            // A cursor pointing at a segment that is gone (or beyond the head after a lost tail)
            // restarts at the oldest segment still on disk that can hold it.
            if !segments.contains_key(&position.segment) || position.next_seq > next_seq {
                let seq = position.next_seq.clamp(oldest, next_seq);
                let seg = *segments.range(..=seq).next_back().map(|(k, _)| k).unwrap_or(&oldest);
                position = Position {
                    next_seq: seq.max(seg),
                    segment: seg,
                    offset: 0, // unknown: the reader scans from the segment start
                };
            }
            cursors.push(SinkCursor {
                spec,
                position,
                pending,
                epoch: Arc::default(),
                file: Arc::new(Mutex::new(file)),
            });
        }
        if created {
            sync_dir(dir);
        }
        let head_path = segment_path(dir, head_first);
        let file = OpenOptions::new()
            .append(true)
            .open(&head_path)
            .map_err(io_err(&head_path))?;
        let durable_at_open = next_seq - 1;
        let head_bytes = segments[&head_first];
        let (durable, _) = watch::channel(durable_at_open);
        let spool = Spool {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                id,
                state: Mutex::new(State {
                    segments,
                    sinks: cursors,
                }),
                durable,
                reaper: start_reaper(),
            }),
        };
        spool.collect_garbage();
        let filters = spool
            .state()
            .sinks
            .iter()
            .map(|c| (c.spec.filter.clone(), c.spec.metrics.clone()))
            .collect();
        let syncer = sync::start(spool.clone()).map_err(io_err(dir))?;
        let writer = SpoolWriter {
            spool: spool.clone(),
            segment_max_bytes,
            file: Arc::new(file),
            pending: Vec::with_capacity(WRITE_BUFFER_BYTES + 64 * 1024),
            segment_first: head_first,
            segment_bytes: head_bytes,
            segment_is_new: false,
            next_seq,
            requested: durable_at_open,
            syncer,
            filters,
        };
        Ok((spool, writer))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    /// The spool's id (eight hex digits, made with the spool).
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The last sequence number written through to disk.
    pub fn durable_seq(&self) -> u64 {
        *self.shared.durable.borrow()
    }

    /// Notified on every flush with the new durable sequence.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.durable.subscribe()
    }

    /// A reader for a sink, at its saved position.
    pub fn reader(&self, sink: &str) -> Option<SpoolReader> {
        let state = self.state();
        let c = state.sinks.iter().find(|c| c.spec.name == sink)?;
        Some(SpoolReader::new(
            self.clone(),
            c.spec.clone(),
            c.position,
            c.epoch.clone(),
        ))
    }

    /// The batch a sink recorded before sending, if it was not acknowledged.
    pub fn pending(&self, sink: &str) -> Option<(u64, u64)> {
        self.state().sinks.iter().find(|c| c.spec.name == sink)?.pending
    }

    /// Records (durably) the bounds of the batch a sink is about to send.
    pub fn set_pending(&self, sink: &str, bounds: (u64, u64)) -> io::Result<()> {
        let mut state = self.state();
        let Some(c) = state.sinks.iter_mut().find(|c| c.spec.name == sink) else {
            return Ok(());
        };
        c.pending = Some(bounds);
        let saved = Saved {
            position: c.position,
            pending: c.pending,
        };
        let file = c.file.clone();
        let mut file = lock(&file);
        drop(state);
        file.save(&saved, true)
    }

    /// Acknowledges delivery up to (excluding) `position`: the cursor moves, the pending batch
    /// is cleared, and segments every sink has passed are deleted. Returns false when the
    /// budget had already moved the cursor past this batch (its events were counted as dropped).
    pub fn ack(&self, sink: &str, position: Position, epoch: u64) -> io::Result<bool> {
        let mut state = self.state();
        let State { segments, sinks } = &mut *state;
        let Some(c) = sinks.iter_mut().find(|c| c.spec.name == sink) else {
            return Ok(false);
        };
        if c.epoch.load(Ordering::Relaxed) != epoch {
            return Ok(false);
        }
        c.position = position;
        c.pending = None;
        c.spec.metrics.spool_bytes.set(bytes_from(segments, &position));
        let file = c.file.clone();
        let mut file = lock(&file);
        drop(state);
        file.save(
            &Saved {
                position,
                pending: None,
            },
            false,
        )?;
        drop(file);
        self.collect_garbage();
        Ok(true)
    }

    /// The sink's current cursor epoch and position (the reader compares epochs to notice
    /// budget drops).
    pub fn cursor(&self, sink: &str) -> Option<(u64, Position)> {
        let state = self.state();
        let c = state.sinks.iter().find(|c| c.spec.name == sink)?;
        Some((c.epoch.load(Ordering::Relaxed), c.position))
    }

    /// Records that segment `first` is durable up to `bytes` and everything up to `durable`
    /// with it (by the syncer), and applies the budgets.
    fn publish(&self, first: u64, bytes: u64, durable: u64) {
        self.state().segments.insert(first, bytes);
        self.shared.durable.send_if_modified(|d| {
            let newer = durable > *d;
            *d = (*d).max(durable);
            newer
        });
        self.enforce_budgets();
    }

    /// Applies every sink's disk budget; returns the events dropped per sink.
    ///
    /// The cursors move under the state lock; the dropped events are counted (which reads
    /// their segments) and the cursors saved after it is released, with only those sinks'
    /// cursor files locked, so a budget drop does not hold up the writer or the other sinks.
    pub fn enforce_budgets(&self) -> Vec<(String, u64)> {
        struct Dropping {
            spec: SinkSpec,
            /// The skipped stretches: from a position to the segment starting at a sequence.
            skipped: Vec<(Position, u64)>,
            saved: Saved,
            file: Arc<Mutex<CursorFile>>,
        }
        let mut drops = Vec::new();
        let mut state = self.state();
        let State { segments, sinks } = &mut *state;
        let Some((&head, _)) = segments.iter().next_back() else {
            return Vec::new();
        };
        for c in sinks.iter_mut() {
            let undelivered = |p: &Position| bytes_from(segments, p);
            let mut bytes = undelivered(&c.position);
            let mut skipped = Vec::new();
            while bytes > c.spec.budget_bytes && c.position.segment != head {
                let Some((&next, _)) = segments.range(c.position.segment + 1..).next() else {
                    break;
                };
                skipped.push((c.position, next));
                c.position = Position {
                    next_seq: next,
                    segment: next,
                    offset: SEGMENT_MAGIC.len() as u64,
                };
                c.pending = None;
                c.epoch.fetch_add(1, Ordering::Relaxed);
                bytes = undelivered(&c.position);
            }
            c.spec.metrics.spool_bytes.set(bytes);
            if !skipped.is_empty() {
                drops.push(Dropping {
                    spec: c.spec.clone(),
                    skipped,
                    saved: Saved {
                        position: c.position,
                        pending: None,
                    },
                    file: c.file.clone(),
                });
            }
        }
        // Cursor files are locked while the state lock is held (the order everywhere), so no
        // older save of these cursors can come after the ones below.
        let files: Vec<_> = drops.iter().map(|d| lock(&d.file)).collect();
        drop(state);
        let mut dropped = Vec::new();
        for (d, mut file) in drops.iter().zip(files) {
            let lost: u64 = d
                .skipped
                .iter()
                .map(|&(from, until)| count_matching(&self.shared.dir, from, until, &d.spec.filter))
                .sum();
            if lost == 0 {
                continue; // only events this sink's filters skip
            }
            d.spec.metrics.dropped.add(lost);
            tracing::warn!(sink = %d.spec.name, events = lost, budget_bytes = d.spec.budget_bytes,
                "spool budget full: dropped the sink's oldest undelivered events");
            if let Err(e) = file.save(&d.saved, false) {
                tracing::warn!(error = %e, "spool: cannot save cursor");
            }
            dropped.push((d.spec.name.clone(), lost));
        }
        self.collect_garbage();
        dropped
    }
}

/// Counts the events a sink would have taken from `from` up to the segment starting at `until`;
/// every sequence number in the range when the segment cannot be read (gone already).
fn count_matching(dir: &Path, from: Position, until: u64, filter: &Filter) -> u64 {
    let path = segment_path(dir, from.segment);
    let mut data = Vec::new();
    if File::open(&path).and_then(|mut f| f.read_to_end(&mut data)).is_err() {
        return until.saturating_sub(from.next_seq);
    }
    let mut at = SEGMENT_MAGIC.len().min(data.len());
    let mut n = 0;
    while let Decoded::Record(r, len) = decode_record(&data[at..]) {
        at += len;
        if r.seq >= from.next_seq && r.seq < until && filter.matches(r.bot, &r.workspace, &r.domain) {
            n += 1;
        }
    }
    n
}

/// Per-sink undelivered bytes (for tests and the admin listener).
pub fn undelivered_bytes(spool: &Spool) -> HashMap<String, u64> {
    let state = spool.state();
    state
        .sinks
        .iter()
        .map(|c| (c.spec.name.clone(), bytes_from(&state.segments, &c.position)))
        .collect()
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
