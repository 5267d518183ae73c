//! Tests of the batch type, the backoff, and the delivery driver.
//!
//! The driver tests run the real [`run`] loop over a real spool in a temporary directory, against
//! a [`FakeSink`] that records every attempt and answers from a script. Time is tokio's paused
//! clock: a wait of minutes takes no real time, and the instants the fake records are those of
//! the driver's timers. The clock does not move while the test thread blocks in a spool flush,
//! nor (tokio 1.54, current-thread runtime) while a `spawn_blocking` spool step runs; still, the
//! checks are on order and lower bounds, with an upper bound only where a timer decides alone.

use std::collections::{HashSet, VecDeque};
use std::ops::RangeInclusive;
use std::sync::Mutex;

use tempfile::TempDir;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::*;
use crate::spool::{Filter, RecordMeta, SinkSpec, SpoolWriter};

#[test]
fn backoff_doubles_to_the_cap_with_jitter_below_it() {
    let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
    let ceilings: Vec<u64> = (0..6)
        .map(|_| {
            let c = b.ceiling();
            let d = b.next_delay();
            assert!(d < c.max(Duration::from_nanos(1)));
            c.as_millis() as u64
        })
        .collect();
    assert_eq!(ceilings, vec![100, 200, 400, 800, 1000, 1000]);
    b.reset();
    assert_eq!(b.ceiling(), Duration::from_millis(100));
    let mut far = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    for _ in 0..100 {
        far.next_delay();
    }
    assert_eq!(far.ceiling(), Duration::from_secs(60));
}

#[test]
fn batches_split_and_name_their_hour() {
    let events: [&[u8]; 5] = [b"1", b"22", b"333", b"4", b"{}"];
    let b = Batch::of(10, 1_562_076_426_000_000, events);
    assert_eq!(b.date_hour(), ("2019-07-02".to_string(), "14".to_string()));
    assert_eq!(b.ndjson(), b"1\n22\n333\n4\n{}\n");
    assert_eq!((b.first_seq, b.last_seq, b.len(), b.bytes()), (10, 14, 5, 9));
    assert_eq!(b.events().collect::<Vec<_>>(), events);
    let (l, r) = b.split();
    assert_eq!((l.first_seq, l.last_seq, l.len(), l.bytes()), (10, 11, 2, 3));
    assert_eq!((r.first_seq, r.last_seq, r.len(), r.bytes()), (12, 14, 3, 6));
    assert_eq!(l.events().collect::<Vec<_>>(), &events[..2]);
    assert_eq!(r.events().collect::<Vec<_>>(), &events[2..]);
    assert_eq!(r.ndjson(), b"333\n4\n{}\n");
    let (rl, rr) = r.split();
    assert_eq!(rl.events().collect::<Vec<_>>(), &events[2..3]);
    assert_eq!(rr.events().collect::<Vec<_>>(), &events[3..]);
}

/// The sink's name (its cursor and dead-letter file are named after it).
const SINK: &str = "fake";
/// A click time in the middle of an hour: 2023-11-14 22:13:20 UTC.
const MID_HOUR_MICROS: i64 = 1_700_000_000_000_000;
/// Timers fire on whole milliseconds, so a sleep may end up to this much late.
const TICK: Duration = Duration::from_millis(1);
/// How long (paused time, so no real time) a test waits for the driver before it fails.
const PATIENCE: Duration = Duration::from_secs(24 * 3600);

/// Event number `n`, 12 bytes: it is appended as spool sequence `n`.
fn event(n: u64) -> String {
    format!(r#"{{"n":"{n:04}"}}"#)
}

fn events(numbers: RangeInclusive<u64>) -> Vec<String> {
    numbers.map(event).collect()
}

/// Sink settings for the tests: limits far away unless a test brings one closer.
fn settings() -> SinkCommon {
    SinkCommon {
        batch_max_events: 100,
        batch_max_bytes: 1 << 20,
        batch_max_age: Duration::from_secs(5),
        spool_max_bytes: u64::MAX,
        humans_only: false,
        workspaces: HashSet::new(),
        domains: HashSet::new(),
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_secs(1),
    }
}

fn retry(after: Option<Duration>) -> Result<(), SendError> {
    Err(SendError::Retry {
        reason: "HTTP 503".into(),
        after,
    })
}

/// One attempt the fake destination saw.
#[derive(Debug)]
struct Attempt {
    /// When it came (paused clock).
    at: Instant,
    first_seq: u64,
    last_seq: u64,
    hour: i64,
    /// The events, one JSON object each.
    events: Vec<String>,
}

/// A destination that reports each attempt on a channel and answers from a script, then `Ok`.
struct FakeSink {
    script: Mutex<VecDeque<Result<(), SendError>>>,
    seen: mpsc::UnboundedSender<Attempt>,
}

impl Sink for FakeSink {
    async fn send(&self, batch: &Batch) -> Result<(), SendError> {
        let events = batch.events().map(|e| String::from_utf8(e.to_vec()).unwrap()).collect();
        // The receiver lives as long as the test; a test that has stopped listening has no use
        // for the report.
        let _ = self.seen.send(Attempt {
            at: Instant::now(),
            first_seq: batch.first_seq,
            last_seq: batch.last_seq,
            hour: batch.hour,
            events,
        });
        self.script.lock().unwrap().pop_front().unwrap_or(Ok(()))
    }
}

/// A spool with the one sink, in a temporary directory.
struct Harness {
    dir: TempDir,
    spool: Spool,
    writer: SpoolWriter,
    metrics: Arc<SinkMetrics>,
}

impl Harness {
    fn new() -> Harness {
        Harness::open(tempfile::tempdir().unwrap())
    }

    fn open(dir: TempDir) -> Harness {
        let metrics = Arc::new(SinkMetrics::default());
        let spec = SinkSpec {
            name: SINK.into(),
            budget_bytes: u64::MAX,
            filter: Filter::default(),
            metrics: metrics.clone(),
        };
        let (spool, writer) = Spool::open(dir.path(), 1 << 20, vec![spec]).unwrap();
        Harness {
            dir,
            spool,
            writer,
            metrics,
        }
    }

    /// Closes the spool and opens it again, as a restart does (the counters start over).
    fn reopen(self) -> Harness {
        let Harness { dir, spool, writer, .. } = self;
        drop((spool, writer));
        Harness::open(dir)
    }

    /// Appends the events numbered `numbers` with click time `time_micros`, and makes them
    /// durable (the driver is told when the flush returns).
    fn append(&mut self, time_micros: i64, numbers: RangeInclusive<u64>) {
        for n in numbers {
            let meta = RecordMeta {
                time_micros,
                bot: false,
                workspace: "w1",
                domain: "brand.link",
            };
            assert_eq!(self.writer.append(meta, event(n).as_bytes()).unwrap(), n);
        }
        self.writer.flush().unwrap();
    }

    /// The next sequence the sink's cursor would deliver.
    fn cursor(&self) -> u64 {
        self.spool.cursor(SINK).unwrap().1.next_seq
    }

    /// The dead-letter file's content.
    fn dead_letters(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dead-letter").join(format!("{SINK}.ndjson"))).unwrap_or_default()
    }

    /// Starts the driver with a fake destination answering `script`.
    fn start(&self, common: SinkCommon, script: impl IntoIterator<Item = Result<(), SendError>>) -> Driving {
        let (seen, attempts) = mpsc::unbounded_channel();
        let (drain, drain_rx) = watch::channel(false);
        let sink = FakeSink {
            script: Mutex::new(script.into_iter().collect()),
            seen,
        };
        let ctx = DriverContext {
            name: SINK.into(),
            spool: self.spool.clone(),
            common,
            metrics: self.metrics.clone(),
            drain: drain_rx,
        };
        Driving {
            attempts,
            drain,
            task: tokio::spawn(run(sink, ctx)),
        }
    }
}

/// A running driver and what its destination sees.
struct Driving {
    attempts: mpsc::UnboundedReceiver<Attempt>,
    drain: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Driving {
    /// The next `n` attempts.
    async fn take(&mut self, n: usize) -> Vec<Attempt> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match tokio::time::timeout(PATIENCE, self.attempts.recv()).await {
                Ok(Some(a)) => out.push(a),
                Ok(None) | Err(_) => {
                    let got: Vec<_> = out.iter().map(|a: &Attempt| &a.events).collect();
                    panic!("expected {n} attempts, got {} in {PATIENCE:?}: {got:?}", out.len());
                }
            }
        }
        out
    }

    /// The next attempt.
    async fn next(&mut self) -> Attempt {
        self.take(1).await.remove(0)
    }

    /// Lets `time` pass, failing if the destination hears anything meanwhile.
    async fn quiet_for(&mut self, time: Duration) {
        if let Ok(Some(a)) = tokio::time::timeout(time, self.attempts.recv()).await {
            panic!("nothing should be sent yet, got {a:?}");
        }
    }

    /// Starts the drain, waits for the driver to end, and returns the attempts it made after
    /// those already taken.
    async fn finish(self) -> Vec<Attempt> {
        let Driving {
            mut attempts,
            drain,
            task,
        } = self;
        drain.send_replace(true);
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("the driver ends once drained")
            .unwrap();
        let mut rest = Vec::new();
        while let Ok(a) = attempts.try_recv() {
            rest.push(a);
        }
        rest
    }
}

/// Time between consecutive attempts.
fn gaps(attempts: &[Attempt]) -> Vec<Duration> {
    attempts.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[tokio::test(start_paused = true)]
async fn a_batch_closes_at_batch_max_events() {
    let mut h = Harness::new();
    h.append(MID_HOUR_MICROS, 1..=7);
    let common = SinkCommon {
        batch_max_events: 3,
        ..settings()
    };
    let age = common.batch_max_age;
    let start = Instant::now();
    let mut d = h.start(common, []);
    let a = d.take(3).await;
    assert_eq!(a[0].events, events(1..=3));
    assert_eq!(a[1].events, events(4..=6));
    assert_eq!(a[2].events, events(7..=7));
    // Full batches go at once; the short last one waits for its age.
    assert!(a[1].at - start < age, "{:?}", a[1].at - start);
    assert!(a[2].at - start >= age, "{:?}", a[2].at - start);
    assert!(d.finish().await.is_empty());
    assert_eq!(h.metrics.delivered.get(), 7);
}

#[tokio::test(start_paused = true)]
async fn a_batch_closes_before_it_would_pass_batch_max_bytes() {
    let mut h = Harness::new();
    h.append(MID_HOUR_MICROS, 1..=7);
    // Exactly three 12-byte events fit.
    let common = SinkCommon {
        batch_max_bytes: 36,
        ..settings()
    };
    let age = common.batch_max_age;
    let start = Instant::now();
    let mut d = h.start(common, []);
    let a = d.take(3).await;
    assert_eq!(a[0].events, events(1..=3));
    assert_eq!(a[1].events, events(4..=6));
    assert_eq!(a[2].events, events(7..=7));
    assert!(a[1].at - start < age, "{:?}", a[1].at - start);
    assert!(a[2].at - start >= age, "{:?}", a[2].at - start);
    assert!(d.finish().await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_batch_waits_batch_max_age_from_its_first_event() {
    let mut h = Harness::new();
    let age = settings().batch_max_age;
    let mut d = h.start(settings(), []);
    h.append(MID_HOUR_MICROS, 1..=1);
    let first = Instant::now();
    d.quiet_for(age / 2).await;
    // A later event joins the batch without restarting its age.
    h.append(MID_HOUR_MICROS, 2..=2);
    d.quiet_for(age - age / 2 - TICK).await;
    let a = d.next().await;
    assert_eq!(a.events, events(1..=2));
    let waited = a.at - first;
    assert!(waited >= age && waited <= age + TICK, "sent after {waited:?}");
    assert!(d.finish().await.is_empty());
    assert_eq!(h.cursor(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_batch_never_spans_two_utc_hours() {
    let mut h = Harness::new();
    let hour = MID_HOUR_MICROS.div_euclid(MICROS_PER_HOUR);
    let next_hour_micros = (hour + 1) * MICROS_PER_HOUR;
    h.append(next_hour_micros - 1, 1..=2);
    h.append(next_hour_micros, 3..=4);
    let age = settings().batch_max_age;
    let start = Instant::now();
    let mut d = h.start(settings(), []);
    let a = d.take(2).await;
    assert_eq!((&a[0].events, a[0].hour), (&events(1..=2), hour));
    assert_eq!((&a[1].events, a[1].hour), (&events(3..=4), hour + 1));
    // The hour closed the first batch, not its age.
    assert!(a[0].at - start < age, "{:?}", a[0].at - start);
    assert!(a[1].at - start >= age, "{:?}", a[1].at - start);
    assert!(d.finish().await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_exponentially_up_to_retry_max() {
    let mut h = Harness::new();
    h.append(MID_HOUR_MICROS, 1..=1);
    let common = settings();
    let (initial, max) = (common.retry_initial, common.retry_max);
    let failures = 12;
    let mut d = h.start(common, (0..failures).map(|_| retry(None)));
    let a = d.take(failures + 1).await;
    assert!(a.iter().all(|a| a.events == events(1..=1)));
    let gaps = gaps(&a);
    // Full jitter: attempt n waits less than min(max, initial * 2^n), however small.
    for (n, gap) in gaps.iter().enumerate() {
        let ceiling = initial.saturating_mul(1 << n.min(20)).min(max);
        assert!(
            *gap <= ceiling + TICK,
            "retry {n} after {gap:?}, ceiling {ceiling:?}: {gaps:?}"
        );
    }
    // The ceilings grow: of 8 draws below a 1 s ceiling, at least one passes the first ceiling
    // (all 8 stay below it with probability 1e-8).
    assert!(
        gaps[4..].iter().any(|g| *g > initial + TICK),
        "delays do not grow: {gaps:?}"
    );
    assert!(d.finish().await.is_empty());
    assert_eq!(h.metrics.retries.get(), failures as u64);
    assert_eq!(h.metrics.delivered.get(), 1);
    assert_eq!(h.cursor(), 2);
}

#[tokio::test(start_paused = true)]
async fn retry_after_decides_the_next_attempt_up_to_a_limit() {
    let mut h = Harness::new();
    h.append(MID_HOUR_MICROS, 1..=1);
    // The backoff alone would retry within 10 ms.
    let common = SinkCommon {
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(10),
        ..settings()
    };
    let asked = Duration::from_secs(30);
    let script = [retry(Some(asked)), retry(Some(Duration::from_secs(3600)))];
    let mut d = h.start(common, script);
    let a = d.take(3).await;
    let gaps = gaps(&a);
    assert!(gaps[0] >= asked && gaps[0] <= asked + TICK, "{gaps:?}");
    // An hour is clamped to the longest Retry-After honoured.
    assert!(
        gaps[1] >= MAX_RETRY_AFTER && gaps[1] <= MAX_RETRY_AFTER + TICK,
        "{gaps:?}"
    );
    assert!(d.finish().await.is_empty());
    assert_eq!(h.metrics.retries.get(), 2);
    assert_eq!(h.metrics.delivered.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn gone_410_disables_the_sink_until_restart() {
    let mut h = Harness::new();
    h.append(MID_HOUR_MICROS, 1..=4);
    let common = SinkCommon {
        batch_max_events: 2,
        ..settings()
    };
    let gone = SendError::Disable {
        reason: "HTTP 410 Gone".into(),
    };
    let mut d = h.start(common, [Err(gone)]);
    assert_eq!(d.next().await.events, events(1..=2));
    d.quiet_for(Duration::from_secs(3600)).await;
    h.append(MID_HOUR_MICROS, 5..=5);
    d.quiet_for(Duration::from_secs(3600)).await;
    assert_eq!(h.metrics.disabled.get(), 1);
    // Even the drain, which delivers whatever is left, sends nothing.
    assert!(d.finish().await.is_empty());
    assert_eq!(h.metrics.delivered.get(), 0);
    assert_eq!(h.metrics.retries.get(), 0);
    // The events stay in the spool for the next start.
    assert_eq!(h.cursor(), 1);
    assert_eq!(h.dead_letters(), "");
}

#[tokio::test(start_paused = true)]
async fn too_large_413_splits_down_to_one_event_then_dead_letters_it() {
    let mut h = Harness::new();
    h.append(MID_HOUR_MICROS, 1..=5);
    let common = SinkCommon {
        batch_max_events: 5,
        ..settings()
    };
    let too_large = || {
        Err(SendError::TooLarge {
            reason: "HTTP 413".into(),
        })
    };
    // 1-5 too large; 1-2 too large; 1 ok; 2 too large: dead letter; 3-5 too large; 3 ok; 4-5 ok.
    let script = [
        too_large(),
        too_large(),
        Ok(()),
        too_large(),
        too_large(),
        Ok(()),
        Ok(()),
    ];
    let mut d = h.start(common, script);
    let a = d.take(7).await;
    let sent: Vec<_> = a.iter().map(|a| (a.first_seq, a.last_seq, a.events.clone())).collect();
    assert_eq!(
        sent,
        [
            (1, 5, events(1..=5)),
            (1, 2, events(1..=2)),
            (1, 1, events(1..=1)),
            (2, 2, events(2..=2)),
            (3, 5, events(3..=5)),
            (3, 3, events(3..=3)),
            (4, 5, events(4..=5)),
        ]
    );
    assert!(d.finish().await.is_empty());
    assert_eq!(h.dead_letters(), event(2) + "\n");
    assert_eq!(h.metrics.rejected.get(), 1);
    assert_eq!(h.metrics.delivered.get(), 4);
    assert_eq!(h.metrics.retries.get(), 0);
    assert_eq!(h.cursor(), 6);
}

#[tokio::test(start_paused = true)]
async fn rejected_400_and_422_batches_go_to_the_dead_letter_file() {
    let mut h = Harness::new();
    h.append(MID_HOUR_MICROS, 1..=6);
    let common = SinkCommon {
        batch_max_events: 2,
        ..settings()
    };
    let reject = |status: &str| Err(SendError::Reject { reason: status.into() });
    let script = [reject("HTTP 400"), Ok(()), reject("HTTP 422")];
    let mut d = h.start(common, script);
    let a = d.take(3).await;
    assert_eq!(a[0].events, events(1..=2));
    assert_eq!(a[1].events, events(3..=4));
    assert_eq!(a[2].events, events(5..=6));
    // Each is sent once: a rejection is not retried.
    assert!(d.finish().await.is_empty());
    let expected: String = [1, 2, 5, 6].map(|n| event(n) + "\n").concat();
    assert_eq!(h.dead_letters(), expected);
    assert_eq!(h.metrics.rejected.get(), 4);
    assert_eq!(h.metrics.delivered.get(), 2);
    assert_eq!(h.metrics.retries.get(), 0);
    // Dead-lettered events are done with: the cursor passes them.
    assert_eq!(h.cursor(), 7);
}

#[tokio::test(start_paused = true)]
async fn delivered_batches_are_acknowledged_and_not_sent_again_after_a_restart() {
    let mut h = Harness::new();
    h.append(MID_HOUR_MICROS, 1..=6);
    let common = SinkCommon {
        batch_max_events: 3,
        ..settings()
    };
    let hour_later = Some(Duration::from_secs(3600));
    let mut d = h.start(common, [Ok(()), retry(hour_later), retry(hour_later)]);
    let a = d.take(2).await;
    assert_eq!(a[0].events, events(1..=3));
    assert_eq!(a[1].events, events(4..=6));
    // The drain cuts the wait short: one more attempt, then the batch is left in the spool.
    let rest = d.finish().await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].events, events(4..=6));
    assert_eq!(h.cursor(), 4);
    assert_eq!(h.spool.pending(SINK), Some((4, 6)));
    let mut reader = h.spool.reader(SINK).unwrap();
    assert_eq!(reader.next(h.spool.durable_seq()).unwrap().unwrap().seq, 4);
    drop(reader);

    // After a restart the unfinished batch is sent again with the same bounds (though a batch
    // may now hold more), then new events; the acknowledged batch never again.
    let mut h = h.reopen();
    h.append(MID_HOUR_MICROS, 7..=7);
    let mut d = h.start(settings(), []);
    let a = d.take(2).await;
    assert_eq!((a[0].first_seq, a[0].last_seq, &a[0].events), (4, 6, &events(4..=6)));
    assert_eq!(a[1].events, events(7..=7));
    assert!(d.finish().await.is_empty());
    assert_eq!(h.cursor(), 8);
    assert_eq!(h.spool.pending(SINK), None);
}
