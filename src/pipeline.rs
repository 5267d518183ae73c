//! The pipeline thread: hits in, click events out to the spool.
//!
//! One dedicated OS thread owns the [`Enricher`] (and so its caches, without locks) and the
//! [`SpoolWriter`]. It takes hits from the bounded click queue, builds and serializes each event,
//! appends it, and every `flush_interval` hands the spool to its syncer to be made durable (the
//! durability promise; see `spool`). Every few seconds it sweeps expired sessions.
//!
//! It stops when every queue sender is gone or the stop flag is raised: it then takes what is
//! left in the queue, flushes, and returns, so SIGTERM loses no click that was answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::click::{ClickReceiver, Hit};
use crate::enrich::Enricher;
use crate::enrich::event;
use crate::metrics::Metrics;
use crate::spool::{RecordMeta, SpoolWriter};

/// How often expired sessions are swept.
const SESSION_SWEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Longest wait for a hit before checking the stop flag.
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Pause between drains of the click queue while clicks are arriving.
const BUSY_NAP: Duration = Duration::from_millis(1);
/// Without a click for this long, the thread blocks on the queue instead of napping.
const IDLE_AFTER: Duration = Duration::from_millis(50);
/// Hits processed before the flush and sweep timers are looked at again.
const MAX_BATCH_BEFORE_HOUSEKEEPING: usize = 4096;
/// At most one spool error logged per this interval.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Starts the pipeline thread.
pub fn spawn(
    rx: ClickReceiver,
    enricher: Enricher,
    writer: SpoolWriter,
    flush_interval: Duration,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("clickstream-pipeline".into())
        .spawn(move || {
            Pipeline {
                enricher,
                writer,
                metrics,
                last_error_log: None,
            }
            .run(rx, flush_interval, &stop)
        })
}

struct Pipeline {
    enricher: Enricher,
    writer: SpoolWriter,
    metrics: Arc<Metrics>,
    last_error_log: Option<Instant>,
}

impl Pipeline {
    fn run(mut self, rx: ClickReceiver, flush_interval: Duration, stop: &AtomicBool) {
        let mut next_flush = Instant::now() + flush_interval;
        let mut next_sweep = Instant::now() + SESSION_SWEEP_INTERVAL;
        let mut last_busy = Instant::now() - IDLE_AFTER;
        let mut disconnected = false;
        loop {
            let now = Instant::now();
            if now >= next_flush {
                self.flush();
                next_flush = now + flush_interval;
            }
            if now >= next_sweep {
                let live = self
                    .enricher
                    .sessions()
                    .sweep(event::unix_micros(std::time::SystemTime::now()));
                self.metrics.sessions.set(live as u64);
                next_sweep = now + SESSION_SWEEP_INTERVAL;
            }
            if stop.load(Ordering::Relaxed) {
                while let Ok(hit) = rx.try_recv() {
                    self.process(&hit);
                }
                break;
            }
            // Busy: take everything queued, then nap. Blocking in `recv` while clicks stream in
            // would make every `try_send` on the hit path wake this thread (a futex call per
            // click); napping keeps the hit path free of syscalls at the price of BUSY_NAP of
            // extra event latency. After IDLE_AFTER of empty naps, block again (no idle spin).
            let mut took = 0usize;
            loop {
                match rx.try_recv() {
                    Ok(hit) => {
                        self.process(&hit);
                        took += 1;
                        if took >= MAX_BATCH_BEFORE_HOUSEKEEPING {
                            break;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }
            if disconnected {
                break;
            }
            if took > 0 {
                last_busy = Instant::now();
                if took < MAX_BATCH_BEFORE_HOUSEKEEPING {
                    std::thread::sleep(BUSY_NAP);
                }
                continue;
            }
            if last_busy.elapsed() < IDLE_AFTER {
                std::thread::sleep(BUSY_NAP);
                continue;
            }
            let wait = next_flush
                .saturating_duration_since(Instant::now())
                .min(STOP_POLL_INTERVAL);
            match rx.recv_timeout(wait) {
                Ok(hit) => {
                    self.process(&hit);
                    last_busy = Instant::now();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.flush_and_wait();
    }

    fn process(&mut self, hit: &Hit) {
        let event = self.enricher.enrich(hit);
        let bot = event.bot;
        let meta = RecordMeta {
            time_micros: event::unix_micros(hit.time),
            bot,
            workspace: &hit.link.workspace().id,
            domain: hit.link.domain(),
        };
        match self.writer.append_with(meta, |out| event.write_json(out)) {
            Ok(_) => {
                self.metrics.clicks_emitted.inc();
                if bot {
                    self.metrics.clicks_bot.inc();
                } else {
                    self.metrics.clicks_human.inc();
                }
            }
            Err(e) => {
                self.metrics.clicks_dropped_spool_error.inc();
                self.log_error(&format!("cannot append a click event to the spool: {e}"));
            }
        }
    }

    /// The periodic flush: the spool's syncer makes it durable while clicks go on.
    fn flush(&mut self) {
        // Here rather than per click: counting the session map takes each of its shard locks.
        self.metrics.sessions.set(self.enricher.sessions().len() as u64);
        if let Err(e) = self.writer.flush_in_background() {
            self.log_error(&format!("cannot write the spool (will retry): {e}"));
        }
    }

    /// The last flush: waits until everything taken is durable.
    fn flush_and_wait(&mut self) {
        self.metrics.sessions.set(self.enricher.sessions().len() as u64);
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
