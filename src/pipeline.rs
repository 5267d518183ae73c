//! The pipeline thread: the serving threads' encoded events in, numbered and written to the spool.
//!
//! One dedicated OS thread owns the [`SpoolWriter`]. While clicks arrive it takes every serving
//! thread's batch about once a millisecond (see `handoff`), appends the records, and every
//! `flush_interval` hands the spool to its syncer to be made durable (the durability promise;
//! see `spool`). Every few seconds it sweeps expired sessions.
//!
//! It stops when the stop flag is raised or no server holds the queue any more: it then closes
//! the queue, takes what is left, flushes, and returns, so SIGTERM loses no click that was
//! answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::click;
use crate::enrich::session::SessionTracker;
use crate::handoff::ClickQueue;
use crate::metrics::Metrics;
use crate::spool::{SpoolWriter, UnsequencedBatch};

/// How often expired sessions are swept.
const SESSION_SWEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Longest park before checking the stop flag.
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Pause between takes while clicks are arriving.
const BUSY_NAP: Duration = Duration::from_millis(1);
/// Without a click for this long, the thread parks until a serving thread wakes it.
const IDLE_AFTER: Duration = Duration::from_millis(50);
/// At most one spool error logged per this interval.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Starts the pipeline thread.
pub fn spawn(
    queue: ClickQueue,
    sessions: Arc<SessionTracker>,
    writer: SpoolWriter,
    flush_interval: Duration,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let handle = std::thread::Builder::new().name("clickstream-pipeline".into()).spawn({
        let queue = queue.clone();
        move || {
            Pipeline {
                sessions,
                writer,
                metrics,
                last_error_log: None,
                spare: UnsequencedBatch::default(),
            }
            .run(&queue, flush_interval, &stop)
        }
    })?;
    queue.set_consumer(handle.thread().clone());
    Ok(handle)
}

struct Pipeline {
    sessions: Arc<SessionTracker>,
    writer: SpoolWriter,
    metrics: Arc<Metrics>,
    last_error_log: Option<Instant>,
    /// Swapped with each serving thread's batch in turn.
    spare: UnsequencedBatch,
}

impl Pipeline {
    fn run(mut self, queue: &ClickQueue, flush_interval: Duration, stop: &AtomicBool) {
        let mut next_flush = Instant::now() + flush_interval;
        let mut next_sweep = Instant::now() + SESSION_SWEEP_INTERVAL;
        let mut last_busy = Instant::now() - IDLE_AFTER;
        loop {
            let now = Instant::now();
            if now >= next_flush {
                self.flush();
                next_flush = now + flush_interval;
            }
            if now >= next_sweep {
                let live = self.sessions.sweep(click::unix_micros(std::time::SystemTime::now()));
                self.metrics.sessions.set(live as u64);
                next_sweep = now + SESSION_SWEEP_INTERVAL;
            }
            if stop.load(Ordering::Relaxed) || queue.abandoned() {
                queue.close();
                self.take(queue);
                break;
            }
            // Busy: take everything, then nap. Being woken per click would cost the serving
            // threads a futex call each; napping costs BUSY_NAP of extra event latency. After
            // IDLE_AFTER of empty naps, park until a serving thread adds a record.
            if self.take(queue) > 0 {
                last_busy = Instant::now();
                std::thread::sleep(BUSY_NAP);
                continue;
            }
            if last_busy.elapsed() < IDLE_AFTER {
                std::thread::sleep(BUSY_NAP);
                continue;
            }
            queue.will_park();
            if self.take(queue) == 0 {
                let wait = next_flush
                    .saturating_duration_since(Instant::now())
                    .min(STOP_POLL_INTERVAL);
                std::thread::park_timeout(wait);
            } else {
                last_busy = Instant::now();
            }
            queue.awake();
        }
        self.flush_and_wait();
    }

    /// Appends every serving thread's batch; returns the events taken.
    fn take(&mut self, queue: &ClickQueue) -> usize {
        let mut spare = std::mem::take(&mut self.spare);
        let taken = queue.take(&mut spare, |batch| self.append(batch));
        self.spare = spare;
        taken
    }

    fn append(&mut self, batch: &UnsequencedBatch) {
        let metrics = self.metrics.clone();
        let mut failed = None;
        self.writer.append_batch(batch, |bot, result| match result {
            Ok(_) => {
                metrics.clicks_emitted.inc();
                if bot {
                    metrics.clicks_bot.inc();
                } else {
                    metrics.clicks_human.inc();
                }
            }
            Err(e) => {
                metrics.clicks_dropped_spool_error.inc();
                failed.get_or_insert(e);
            }
        });
        if let Some(e) = failed {
            self.log_error(&format!("cannot append a click event to the spool: {e}"));
        }
    }

    /// The periodic flush: the spool's syncer makes it durable while clicks go on.
    fn flush(&mut self) {
        // Here rather than per click: counting the session map takes each of its shard locks.
        self.metrics.sessions.set(self.sessions.len() as u64);
        if let Err(e) = self.writer.flush_in_background() {
            self.log_error(&format!("cannot write the spool (will retry): {e}"));
        }
    }

    /// The last flush: waits until everything taken is durable.
    fn flush_and_wait(&mut self) {
        self.metrics.sessions.set(self.sessions.len() as u64);
        match self.writer.flush() {
            Ok(seq) => self.metrics.spool_durable_seq.set(seq),
            Err(e) => self.log_error(&format!("cannot flush the spool at stop: {e}")),
        }
    }

    fn log_error(&mut self, message: &str) {
        if self.last_error_log.is_none_or(|t| t.elapsed() >= ERROR_LOG_INTERVAL) {
            tracing::error!("{message}");
            self.last_error_log = Some(Instant::now());
        }
    }
}
