use super::*;

use std::time::Duration;

use crate::metrics::SinkMetrics;

pub(super) fn spec(name: &str, budget: u64) -> SinkSpec {
    SinkSpec {
        name: name.into(),
        budget_bytes: budget,
        filter: Filter::default(),
        metrics: Arc::new(SinkMetrics::default()),
    }
}

pub(super) fn meta(bot: bool) -> RecordMeta<'static> {
    RecordMeta {
        time_micros: 1_700_000_000_000_000,
        bot,
        workspace: "w1",
        domain: "brand.link",
    }
}

/// The durable sequence once it reaches `at_least` (published by the syncer), or after 10 s.
pub(super) fn wait_durable(spool: &Spool, at_least: u64) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while spool.durable_seq() < at_least && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    spool.durable_seq()
}

pub(super) fn drain(r: &mut SpoolReader, durable: u64) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some(rec) = r.next(durable).unwrap() {
        out.push(rec.seq);
    }
    out
}

#[test]
fn readers_see_only_durable_events_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, mut w) = Spool::open(dir.path(), 4096, vec![spec("a", u64::MAX)]).unwrap();
    let mut r = spool.reader("a").unwrap();
    for _ in 0..100 {
        w.append(meta(false), &[b'x'; 100]).unwrap();
    }
    // A closed segment is synced in the background without a flush; the events of the head
    // segment are not durable yet.
    let durable = wait_durable(&spool, 1);
    assert!(durable > 0 && durable < 100, "{durable}");
    assert_eq!(drain(&mut r, durable), (1..=durable).collect::<Vec<_>>());
    w.flush().unwrap();
    assert_eq!(spool.durable_seq(), 100);
    assert_eq!(
        drain(&mut r, spool.durable_seq()),
        (durable + 1..=100).collect::<Vec<_>>()
    );
    assert!(spool.state().segments.len() > 1, "small segments roll");
    // Acknowledging deletes passed segments, never the head.
    assert!(spool.ack("a", r.position(), r.epoch()).unwrap());
    assert_eq!(spool.state().segments.len(), 1);
}

#[test]
fn restart_resumes_cursor_and_cuts_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, mut w) = Spool::open(dir.path(), 1 << 20, vec![spec("a", u64::MAX)]).unwrap();
        for _ in 0..10 {
            w.append(meta(false), b"{}").unwrap();
        }
        w.flush().unwrap();
        let mut r = spool.reader("a").unwrap();
        for _ in 0..4 {
            r.next(10).unwrap().unwrap();
        }
        spool.ack("a", r.position(), r.epoch()).unwrap();
    }
    // Simulate a crash in the middle of a write: half a record at the end.
    let seg = segment_path(dir.path(), 1);
    let mut half = Vec::new();
    encode_record(&mut half, 11, meta(false), b"{\"torn\":true}");
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&half[..half.len() / 2]).unwrap();
    drop(f);
    let (spool, mut w) = Spool::open(dir.path(), 1 << 20, vec![spec("a", u64::MAX)]).unwrap();
    assert_eq!(spool.durable_seq(), 10);
    let mut r = spool.reader("a").unwrap();
    assert_eq!(drain(&mut r, spool.durable_seq()), (5..=10).collect::<Vec<_>>());
    assert_eq!(w.append(meta(false), b"{}").unwrap(), 11);
    w.flush().unwrap();
    assert_eq!(drain(&mut r, spool.durable_seq()), vec![11]);
}

#[test]
fn a_new_sink_keeps_its_start_and_an_unreadable_cursor_redelivers() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_spool, mut w) = Spool::open(dir.path(), 1 << 20, vec![spec("a", u64::MAX)]).unwrap();
        for _ in 0..3 {
            w.append(meta(false), b"{}").unwrap();
        }
        w.flush().unwrap();
    }
    {
        // "b" is configured now: it starts after the three events, and still does after a
        // crash before its first delivery.
        let (_spool, mut w) = Spool::open(dir.path(), 1 << 20, vec![spec("a", u64::MAX), spec("b", u64::MAX)]).unwrap();
        for _ in 0..2 {
            w.append(meta(false), b"{}").unwrap();
        }
        w.flush().unwrap();
    }
    let (spool, _w) = Spool::open(dir.path(), 1 << 20, vec![spec("a", u64::MAX), spec("b", u64::MAX)]).unwrap();
    let mut r = spool.reader("b").unwrap();
    assert_eq!(drain(&mut r, spool.durable_seq()), vec![4, 5]);
    drop((r, spool, _w));
    // A cursor file that cannot be read: everything on disk again, rather than a gap.
    std::fs::write(cursor_path(dir.path(), "b"), b"\0garbage").unwrap();
    let (spool, _w) = Spool::open(dir.path(), 1 << 20, vec![spec("a", u64::MAX), spec("b", u64::MAX)]).unwrap();
    let mut r = spool.reader("b").unwrap();
    assert_eq!(drain(&mut r, spool.durable_seq()), vec![1, 2, 3, 4, 5]);
}

#[test]
fn filters_skip_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut humans = spec("humans", u64::MAX);
    humans.filter.humans_only = true;
    let metrics = humans.metrics.clone();
    let (spool, mut w) = Spool::open(dir.path(), 1 << 20, vec![humans]).unwrap();
    for i in 0..6 {
        w.append(meta(i % 2 == 0), b"{}").unwrap();
    }
    w.flush().unwrap();
    let mut r = spool.reader("humans").unwrap();
    assert_eq!(drain(&mut r, 6), vec![2, 4, 6]);
    assert_eq!(metrics.appended.get(), 3);
    assert_eq!(metrics.filtered.get(), 3);
}

#[test]
fn budget_drops_the_oldest_and_frees_disk() {
    let dir = tempfile::tempdir().unwrap();
    let slow = spec("slow", 3 * 4096);
    let slow_metrics = slow.metrics.clone();
    let (spool, mut w) = Spool::open(dir.path(), 4096, vec![slow, spec("fast", u64::MAX)]).unwrap();
    let mut fast = spool.reader("fast").unwrap();
    let mut total = 0u64;
    for _ in 0..20 {
        for _ in 0..20 {
            w.append(meta(false), &[b'y'; 200]).unwrap();
            total += 1;
        }
        w.flush().unwrap();
        drain(&mut fast, spool.durable_seq());
        spool.ack("fast", fast.position(), fast.epoch()).unwrap();
    }
    let undelivered = undelivered_bytes(&spool);
    assert!(undelivered["slow"] <= 3 * 4096 + 4096, "{undelivered:?}");
    let dropped = slow_metrics.dropped.get();
    assert!(dropped > 0);
    // The slow sink reads exactly what was not dropped, starting at its new cursor.
    let mut slow = spool.reader("slow").unwrap();
    let got = drain(&mut slow, spool.durable_seq());
    assert_eq!(got.len() as u64 + dropped, total);
    assert_eq!(*got.last().unwrap(), total);
    let files = files_with(dir.path(), "seg");
    assert!(files <= 5, "old segments deleted, {files} left");
}

#[test]
fn a_reader_sees_the_budget_move_its_cursor_without_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, mut w) = Spool::open(dir.path(), 4096, vec![spec("slow", 2 * 4096)]).unwrap();
    let mut r = spool.reader("slow").unwrap();
    let read_at = r.epoch();
    assert_eq!(r.cursor_epoch(), read_at);
    assert!(!r.follow_cursor());
    for _ in 0..10 {
        for _ in 0..20 {
            w.append(meta(false), &[b'z'; 200]).unwrap();
        }
        w.flush().unwrap();
    }
    // The budget dropped the oldest events: a batch read at the old epoch is stale, and its
    // acknowledgement is refused.
    assert_ne!(r.cursor_epoch(), read_at);
    assert!(!spool.ack("slow", r.position(), read_at).unwrap());
    assert!(r.follow_cursor());
    assert_eq!(r.epoch(), r.cursor_epoch());
    let first = drain(&mut r, spool.durable_seq())[0];
    assert!(first > 1, "reads from the moved cursor, at {first}");
}

#[test]
fn pending_bounds_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, mut w) = Spool::open(dir.path(), 1 << 20, vec![spec("s3", u64::MAX)]).unwrap();
        for _ in 0..5 {
            w.append(meta(false), b"{}").unwrap();
        }
        w.flush().unwrap();
        spool.set_pending("s3", (1, 3)).unwrap();
    }
    let (spool, _w) = Spool::open(dir.path(), 1 << 20, vec![spec("s3", u64::MAX)]).unwrap();
    assert_eq!(spool.pending("s3"), Some((1, 3)));
    let mut r = spool.reader("s3").unwrap();
    r.seek_seq(1);
    assert_eq!(drain(&mut r, 3), vec![1, 2, 3]);
}

/// The files in `dir` with extension `ext`.
pub(super) fn files_with(dir: &Path, ext: &str) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == ext))
        .count()
}
