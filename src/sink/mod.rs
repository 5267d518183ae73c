//! Delivery, written once: batching, retries with backoff, acknowledgement, dead letters and
//! counters live in [`run`]; a destination supplies only what differs through [`Sink`] — how to
//! send a batch and what its answers mean.
//!
//! One driver task per `[[sink]]`, each with its own spool reader and cursor, so a dead webhook
//! never holds back S3 and never touches the hit path (which only ever writes to the spool).
//!
//! A batch closes at `batch_max_events`, at `batch_max_bytes`, when its first event has waited
//! `batch_max_age`, or when the next event belongs to another UTC hour (file and S3 objects are
//! named by click hour, so a batch never crosses one). Before it is sent its sequence bounds are
//! recorded in the spool, so a restart replays exactly the same batch.
//!
//! A failed attempt is retried with exponential backoff and full jitter, capped at `retry_max`,
//! honouring `Retry-After`, for as long as the spool budget keeps the batch (the budget can drop
//! it: the driver notices and moves on). A rejected batch (400, 422, or 413 at one event) goes to
//! `dead-letter/<sink>.ndjson` beside the spool. 410 disables the sink until restart.

pub mod file;
pub mod s3;
pub mod webhook;

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use crate::config::SinkCommon;
use crate::metrics::SinkMetrics;
use crate::spool::{Position, Record, Spool, SpoolReader};

/// Microseconds in an hour, for the hour a click falls in.
const MICROS_PER_HOUR: i64 = 3_600_000_000;
/// Most bytes reserved up front for a batch; a larger one grows as it fills.
const MAX_BATCH_RESERVE: usize = 4 << 20;
/// Longest `Retry-After` honoured; a larger value is clamped to it.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// At most one retry warning per sink per this interval (the rest are counted).
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// A batch of events for one destination, all in one UTC hour.
///
/// The events lie in one buffer as NDJSON (each followed by `\n`), the form the file and S3
/// sinks write, copied there straight from the spool reader's buffer: no allocation per event.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Sequence of the first event.
    pub first_seq: u64,
    /// Sequence of the last event.
    pub last_seq: u64,
    /// Hours since the Unix epoch of the events' click time.
    pub hour: i64,
    /// The events, each followed by `\n`.
    data: Vec<u8>,
    /// Where each event's `\n` is in `data`.
    ends: Vec<usize>,
}

impl Batch {
    /// An empty batch starting at `first_seq`, in the hour of `time_micros`, with room for
    /// `events` events of `bytes` bytes in all (a batch is usually filled to its limits, so
    /// sized once, it is not copied as it grows).
    pub fn new(first_seq: u64, time_micros: i64, events: usize, bytes: usize) -> Batch {
        Batch {
            first_seq,
            last_seq: first_seq,
            hour: time_micros.div_euclid(MICROS_PER_HOUR),
            data: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(events),
        }
    }

    /// A batch of the given events (sequences `first_seq..`), in the hour of `time_micros`.
    pub fn of<'a>(first_seq: u64, time_micros: i64, events: impl IntoIterator<Item = &'a [u8]>) -> Batch {
        let mut b = Batch::new(first_seq, time_micros, 0, 0);
        for (seq, e) in (first_seq..).zip(events) {
            b.push(seq, e);
        }
        b
    }

    /// Adds the event with sequence `seq` (one JSON object, no newline in it).
    pub fn push(&mut self, seq: u64, json: &[u8]) {
        self.data.extend_from_slice(json);
        self.ends.push(self.data.len());
        self.data.push(b'\n');
        self.last_seq = seq;
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True without events.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Sum of the events' lengths (without the newlines).
    pub fn bytes(&self) -> usize {
        self.data.len() - self.ends.len()
    }

    /// The events, one JSON object each.
    pub fn events(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|e| e + 1));
        starts.zip(&self.ends).map(|(start, &end)| &self.data[start..end])
    }

    /// The batch's events as NDJSON (one event per line), as they are held.
    pub fn ndjson(&self) -> &[u8] {
        &self.data
    }

    /// Where each event's newline is in [`Batch::ndjson`].
    pub fn newlines(&self) -> &[usize] {
        &self.ends
    }

    /// `{node}-{spool id}-{first}-{last}`-style identity of the batch, stable across retries and
    /// restarts.
    pub fn id(&self, spool_id: &str) -> String {
        format!("{spool_id}-{}-{}", self.first_seq, self.last_seq)
    }

    /// `YYYY-MM-DD` and `HH` of the batch's hour (UTC).
    pub fn date_hour(&self) -> (String, String) {
        let t = time::OffsetDateTime::from_unix_timestamp(self.hour * 3600).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        (
            format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
            format!("{:02}", t.hour()),
        )
    }

    fn split(&self) -> (Batch, Batch) {
        let mid = self.len() / 2;
        let cut = self.ends[mid - 1] + 1;
        let part = |data: &[u8], ends: Vec<usize>, first: u64, last: u64| Batch {
            first_seq: first,
            last_seq: last,
            hour: self.hour,
            data: data.to_vec(),
            ends,
        };
        // Sequence numbers of a filtered batch are not contiguous; the halves keep the outer
        // bounds so that their ids stay distinct and stable.
        let left_last = (self.first_seq + mid as u64 - 1).min(self.last_seq);
        let left = part(&self.data[..cut], self.ends[..mid].to_vec(), self.first_seq, left_last);
        let right_ends = self.ends[mid..].iter().map(|e| e - cut).collect();
        let right = part(
            &self.data[cut..],
            right_ends,
            self.first_seq + mid as u64,
            self.last_seq,
        );
        (left, right)
    }
}

/// What a destination said about one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Try again later (after the given delay, if the destination said).
    Retry {
        /// What went wrong, for the log.
        reason: String,
        /// `Retry-After`, when sent.
        after: Option<Duration>,
    },
    /// The batch is too large: split it (at one event, a rejection).
    TooLarge {
        /// For the log.
        reason: String,
    },
    /// The destination refuses the content: dead-letter it.
    Reject {
        /// For the log and the dead-letter file.
        reason: String,
    },
    /// The destination is gone (HTTP 410): stop sending until restart.
    Disable {
        /// For the log.
        reason: String,
    },
}

/// A destination: how to send one batch.
pub trait Sink: Send + Sync + 'static {
    /// Sends a batch; `Ok` means the destination has it.
    fn send(&self, batch: &Batch) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// Exponential backoff with full jitter: attempt `n` waits a uniform random time in
/// `[0, min(max, initial * 2^n))` (the "full jitter" of the AWS architecture blog), so that
/// many nodes retrying one endpoint spread out instead of marching in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `initial`, capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The ceiling of the next delay (before jitter).
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The next delay: uniform in `[0, ceiling)`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(rand::random::<f64>())
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// What a driver needs besides its sink.
pub struct DriverContext {
    /// Sink name.
    pub name: String,
    /// The spool.
    pub spool: Spool,
    /// Batch limits and retry settings.
    pub common: SinkCommon,
    /// Counters.
    pub metrics: Arc<SinkMetrics>,
    /// True once no more events will be appended: deliver what is there, then stop.
    pub drain: watch::Receiver<bool>,
}

struct Reading {
    reader: SpoolReader,
    /// A record read but not placed in the batch (it belongs to the next one), with the reader
    /// position before it: the batch is acknowledged up to there.
    carry: Option<(Record, Position)>,
}

impl Reading {
    /// Where the current batch ends: before the carried record, else where the reader stands.
    fn ack_position(&self) -> Position {
        self.carry
            .as_ref()
            .map_or(self.reader.position(), |(_, before)| *before)
    }
}

/// How delivering one batch ended.
enum Delivery {
    /// Delivered, or dead-lettered: acknowledge it.
    Done,
    /// The spool budget dropped it while it was failing (already counted).
    Dropped,
    /// 410: stop.
    Disabled,
    /// Shutdown came while retrying: leave it in the spool.
    Interrupted,
}

/// One sink's delivery loop.
struct Driver<S> {
    sink: S,
    ctx: DriverContext,
    reading: Option<Reading>,
    backoff: Backoff,
    last_warn: Option<Instant>,
    suppressed: u64,
}

/// Runs one sink until it has drained (delivered everything durable after the drain signal).
pub async fn run<S: Sink>(sink: S, ctx: DriverContext) {
    let Some(reader) = ctx.spool.reader(&ctx.name) else {
        tracing::error!(sink = %ctx.name, "sink has no cursor in the spool");
        return;
    };
    let backoff = Backoff::new(ctx.common.retry_initial, ctx.common.retry_max);
    let mut driver = Driver {
        sink,
        ctx,
        reading: Some(Reading { reader, carry: None }),
        backoff,
        last_warn: None,
        suppressed: 0,
    };
    driver.run().await;
}

impl<S: Sink> Driver<S> {
    async fn run(&mut self) {
        // A batch recorded before a restart is replayed first, with the same bounds.
        let mut replay = self.ctx.spool.pending(&self.ctx.name);
        loop {
            let batch = match replay.take() {
                Some(bounds) => self.read(move |r, _| fill_exact(r, bounds)).await.0,
                None => match self.collect().await {
                    Some(b) => Some(b),
                    None => return, // drained
                },
            };
            let Some(batch) = batch else { continue };
            let reading = self.reading.as_ref().expect("reader present between steps");
            let end = reading.ack_position();
            let epoch = reading.reader.epoch();
            let (spool, name, bounds) = (
                self.ctx.spool.clone(),
                self.ctx.name.clone(),
                (batch.first_seq, batch.last_seq),
            );
            match tokio::task::spawn_blocking(move || spool.set_pending(&name, bounds)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(sink = %self.ctx.name, error = %e, "cannot record the pending batch; sending anyway")
                }
                Err(e) => {
                    tracing::warn!(sink = %self.ctx.name, error = %e, "pending-batch task failed; sending anyway")
                }
            }
            match self.deliver(batch, epoch).await {
                Delivery::Done => {
                    self.ctx.metrics.oldest_undelivered_unix.set(0);
                    let (spool, name) = (self.ctx.spool.clone(), self.ctx.name.clone());
                    match tokio::task::spawn_blocking(move || spool.ack(&name, end, epoch)).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(sink = %self.ctx.name, error = %e, "cannot save the sink cursor (events may be sent again after a restart)")
                        }
                        Err(e) => tracing::warn!(sink = %self.ctx.name, error = %e, "cursor task failed"),
                    }
                }
                Delivery::Dropped => {}
                Delivery::Disabled => {
                    // Nothing more to do until restart; the spool budget keeps the disk bounded.
                    crate::shutdown::until_true(&mut self.ctx.drain).await;
                    return;
                }
                Delivery::Interrupted => return,
            }
            if let Some(r) = self.reading.as_mut()
                && r.reader.follow_cursor()
            {
                r.carry = None;
            }
        }
    }

    /// Runs a blocking read step on the reader, off the async workers.
    async fn read<T: Send + 'static>(
        &mut self,
        step: impl FnOnce(&mut Reading, u64) -> T + Send + 'static,
    ) -> (T, u64) {
        let mut r = self.reading.take().expect("reader present between steps");
        let durable = self.ctx.spool.durable_seq();
        let (r, out) = tokio::task::spawn_blocking(move || {
            let out = step(&mut r, durable);
            (r, out)
        })
        .await
        .expect("spool read step panicked");
        self.reading = Some(r);
        (out, durable)
    }

    /// Collects the next batch: waits for events, then until the batch is full, its first event
    /// is `batch_max_age` old, or the drain begins. `None` once drained.
    async fn collect(&mut self) -> Option<Batch> {
        let limits = (self.ctx.common.batch_max_events, self.ctx.common.batch_max_bytes);
        let mut durable_rx = self.ctx.spool.subscribe();
        let mut batch: Option<Batch> = None;
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            durable_rx.borrow_and_update();
            let taken = batch.take();
            let ((b, full), durable) = self.read(move |r, durable| top_up(r, taken, limits, durable)).await;
            if let Some(b) = &b {
                self.ctx.metrics.oldest_undelivered_unix.set((b.hour as u64) * 3600);
            }
            batch = b;
            let draining = *self.ctx.drain.borrow();
            if full || (draining && batch.is_some()) {
                return batch;
            }
            if draining && self.ctx.spool.durable_seq() <= durable {
                // Everything durable has been read and nothing more will come.
                return None;
            }
            if batch.is_some() && deadline.is_none() {
                deadline = Some(tokio::time::Instant::now() + self.ctx.common.batch_max_age);
            }
            tokio::select! {
                _ = durable_rx.changed() => {}
                _ = sleep_until_opt(deadline) => return batch,
                _ = crate::shutdown::until_true(&mut self.ctx.drain) => {}
            }
        }
    }

    /// Sends one batch until it is delivered, rejected, dropped or the sink disabled.
    async fn deliver(&mut self, batch: Batch, epoch: u64) -> Delivery {
        let mut queue = vec![batch];
        while let Some(part) = queue.pop() {
            loop {
                if self.reading.as_ref().is_some_and(|r| r.reader.cursor_epoch() != epoch) {
                    return Delivery::Dropped;
                }
                match self.sink.send(&part).await {
                    Ok(()) => {
                        self.ctx.metrics.delivered.add(part.len() as u64);
                        self.ctx.metrics.last_success_unix.set(unix_now());
                        self.backoff.reset();
                        break;
                    }
                    Err(SendError::TooLarge { reason }) if part.len() > 1 => {
                        tracing::info!(sink = %self.ctx.name, events = part.len(), %reason, "batch too large; splitting it");
                        let (a, b) = part.split();
                        queue.push(b);
                        queue.push(a);
                        break;
                    }
                    Err(SendError::TooLarge { reason } | SendError::Reject { reason }) => {
                        dead_letter(&self.ctx, &part, &reason);
                        break;
                    }
                    Err(SendError::Disable { reason }) => {
                        tracing::error!(sink = %self.ctx.name, %reason, "destination is gone (410): sink disabled until restart; its events stay in the spool within its budget");
                        self.ctx.metrics.disabled.set(1);
                        return Delivery::Disabled;
                    }
                    Err(SendError::Retry { reason, after }) => {
                        self.ctx.metrics.retries.inc();
                        let delay = match after {
                            Some(a) => a.min(MAX_RETRY_AFTER),
                            None => self.backoff.next_delay(),
                        };
                        if self.last_warn.is_none_or(|t| t.elapsed() >= WARN_INTERVAL) {
                            tracing::warn!(sink = %self.ctx.name, %reason, retry_in = ?delay, suppressed = self.suppressed, "delivery failed; retrying");
                            self.last_warn = Some(Instant::now());
                            self.suppressed = 0;
                        } else {
                            self.suppressed += 1;
                        }
                        if *self.ctx.drain.borrow() {
                            // Shutting down: leave the batch in the spool for the next start.
                            return Delivery::Interrupted;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            // Shutdown began: one more attempt now, then leave it in the spool.
                            _ = crate::shutdown::until_true(&mut self.ctx.drain) => {}
                        }
                    }
                }
            }
        }
        Delivery::Done
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads exactly the events of a replayed batch (`first..=last`).
fn fill_exact(r: &mut Reading, (first, last): (u64, u64)) -> Option<Batch> {
    r.carry = None;
    r.reader.seek_seq(first);
    let mut batch: Option<Batch> = None;
    loop {
        match r
            .reader
            .next_with(last, |rec| push(&mut batch, rec.seq, rec.time_micros, rec.json, (0, 0)))
        {
            Ok(Some(())) => {}
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a pending batch from the spool; skipping it");
                break;
            }
        }
    }
    if let Some(b) = batch.as_mut() {
        // Keep the recorded bounds even when filters left gaps: they name the batch.
        b.first_seq = first;
        b.last_seq = last;
    }
    batch
}

/// Adds waiting events to a batch; also returns whether it must close now (full, or the next
/// event belongs to another hour or would pass the byte limit).
fn top_up(
    r: &mut Reading,
    mut batch: Option<Batch>,
    (max_events, max_bytes): (usize, usize),
    durable: u64,
) -> (Option<Batch>, bool) {
    // Whether an event of this time and length may join the batch.
    let fits = |batch: &Option<Batch>, time_micros: i64, len: usize| {
        batch
            .as_ref()
            .is_none_or(|b| time_micros.div_euclid(MICROS_PER_HOUR) == b.hour && b.bytes() + len <= max_bytes)
    };
    // Room for a new batch: its limits, as if every event were the size of its first.
    let room = |first_len: usize| {
        let events = max_events.min(MAX_BATCH_RESERVE / 64);
        let bytes = (first_len + 1).saturating_mul(events).min(max_bytes + events);
        (events, bytes.min(MAX_BATCH_RESERVE))
    };
    loop {
        if batch.as_ref().is_some_and(|b| b.len() >= max_events) {
            return (batch, true);
        }
        if let Some((rec, before)) = r.carry.take() {
            if !fits(&batch, rec.time_micros, rec.json.len()) {
                r.carry = Some((rec, before));
                return (batch, true);
            }
            push(&mut batch, rec.seq, rec.time_micros, &rec.json, room(rec.json.len()));
            continue;
        }
        let before = r.reader.position();
        let carry = &mut r.carry;
        // The event is copied from the reader's buffer into the batch, or kept for the next
        // batch when it does not fit this one (then the batch is closed).
        let read = r.reader.next_with(durable, |rec| {
            if fits(&batch, rec.time_micros, rec.json.len()) {
                push(&mut batch, rec.seq, rec.time_micros, rec.json, room(rec.json.len()));
                false
            } else {
                *carry = Some((rec.to_record(), before));
                true
            }
        });
        match read {
            Ok(Some(false)) => {}
            Ok(Some(true)) => return (batch, true),
            Ok(None) => return (batch, false),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the spool; will retry");
                return (batch, false);
            }
        }
    }
}

/// Adds an event to the batch, starting one with room for `(events, bytes)` if there is none.
fn push(batch: &mut Option<Batch>, seq: u64, time_micros: i64, json: &[u8], (events, bytes): (usize, usize)) {
    batch
        .get_or_insert_with(|| Batch::new(seq, time_micros, events, bytes))
        .push(seq, json);
}

/// Appends a rejected batch to `dead-letter/<sink>.ndjson` beside the spool, and counts it.
fn dead_letter(ctx: &DriverContext, batch: &Batch, reason: &str) {
    ctx.metrics.rejected.add(batch.len() as u64);
    let dir: PathBuf = ctx.spool.dir().join("dead-letter");
    let path = dir.join(format!("{}.ndjson", ctx.name));
    tracing::warn!(sink = %ctx.name, events = batch.len(), %reason, file = %path.display(), "destination rejected a batch; written to the dead-letter file");
    let result = std::fs::create_dir_all(&dir).and_then(|_| {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        f.write_all(batch.ndjson())?;
        f.sync_data()
    });
    if let Err(e) = result {
        tracing::error!(sink = %ctx.name, file = %path.display(), error = %e, "cannot write the dead-letter file; the rejected events are lost");
    }
}

#[cfg(test)]
mod tests;
