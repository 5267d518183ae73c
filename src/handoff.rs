//! The hand-off from the hit path to the spool: each serving thread turns its own hits into
//! encoded spool records; the pipeline thread numbers and writes them.
//!
//! A hit is answered first. Its [`Hit`] waits in its thread's short list until the answers in
//! hand are written (the plain listener calls [`ClickQueue::flush_thread`] after each write,
//! hyper's path right after building the response); then the same thread enriches it and
//! encodes the event into the thread's batch ([`UnsequencedBatch`]). So the request's headers
//! and the link are read on the core that has them in cache, no message crosses threads per
//! click, and the one spool writer only numbers, checksums and writes whole batches.
//!
//! Each thread's batch sits behind a mutex that only two threads ever take: its own, for each
//! click, and the pipeline thread, which swaps it for an empty one every millisecond or so while
//! clicks arrive ([`ClickQueue::take`]). When the pipeline has nothing to do for a while it parks;
//! the next thread to add a record wakes it (a flag read per flush, a syscall only then).
//!
//! Bounded: a thread's batch holds at most `click_queue` events; past that (the pipeline fell
//! behind) a click is dropped and counted, never the redirect delayed. After [`ClickQueue::close`]
//! (the stop), a click is counted as dropped at shutdown; the check is made under the batch's
//! lock, so a click is either in the last batch the pipeline takes or counted.
//!
//! Each thread keeps its own [`Enricher`] (its user-agent and referrer caches need no lock); the
//! session map is shared (a `DashMap`), the GeoIP database is read-only.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::Thread;

use crate::click::{self, Hit};
use crate::enrich::Enricher;
use crate::metrics::Metrics;
use crate::spool::{RecordMeta, UnsequencedBatch};

/// Hits a thread holds before it enriches them even without a flush (a bound, not a batch size:
/// the plain listener flushes after every write).
const MAX_PENDING_HITS: usize = 64;
/// Buffer bytes a taken batch keeps for reuse; a burst's larger buffer is given back.
const KEEP_BATCH_BYTES: usize = 1 << 20;

/// The serving threads' end of the hand-off; cheap to clone.
#[derive(Clone)]
pub struct ClickQueue {
    shared: Arc<Shared>,
}

struct Shared {
    /// Tells this queue's thread-local state apart from another's (tests run several servers).
    id: u64,
    /// Cloned (without its caches) for each thread that makes clicks.
    prototype: Mutex<Enricher>,
    /// Events a thread's batch holds at most.
    capacity: usize,
    slots: Mutex<Vec<Arc<Slot>>>,
    closed: AtomicBool,
    /// The pipeline thread is parked (or about to be) and wants a wake-up.
    sleeping: AtomicBool,
    consumer: OnceLock<Thread>,
    metrics: Arc<Metrics>,
}

/// One thread's batch.
#[derive(Default)]
struct Slot {
    batch: Mutex<UnsequencedBatch>,
}

/// A thread's state for one queue.
struct Local {
    queue: Weak<Shared>,
    id: u64,
    enricher: Enricher,
    slot: Arc<Slot>,
    pending: Vec<Hit>,
}

thread_local! {
    /// Usually one entry: the queue of the server this thread serves.
    static LOCAL: RefCell<Vec<Local>> = const { RefCell::new(Vec::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl ClickQueue {
    /// A queue whose threads enrich with copies of `enricher`, each holding at most `capacity`
    /// events that the pipeline has not taken yet.
    pub fn new(enricher: Enricher, capacity: usize, metrics: Arc<Metrics>) -> ClickQueue {
        ClickQueue {
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                prototype: Mutex::new(enricher),
                capacity: capacity.max(1),
                slots: Mutex::new(Vec::new()),
                closed: AtomicBool::new(false),
                sleeping: AtomicBool::new(false),
                consumer: OnceLock::new(),
                metrics,
            }),
        }
    }

    /// Takes a hit that was just answered; it becomes an event at the thread's next
    /// [`flush_thread`](Self::flush_thread) (or once a few are waiting).
    pub fn offer(&self, hit: Hit) {
        self.with_local(|local| {
            local.pending.push(hit);
            if local.pending.len() >= MAX_PENDING_HITS {
                local.process(&self.shared);
            }
        });
    }

    /// Enriches and encodes the hits this thread holds: called once the answers are written.
    pub fn flush_thread(&self) {
        let _ = LOCAL.try_with(|cell| {
            let Ok(mut locals) = cell.try_borrow_mut() else { return };
            if let Some(local) = locals.iter_mut().find(|l| l.id == self.shared.id) {
                local.process(&self.shared);
            }
        });
    }

    fn with_local(&self, f: impl FnOnce(&mut Local)) {
        let shared = &self.shared;
        let done = LOCAL.try_with(|cell| {
            let Ok(mut locals) = cell.try_borrow_mut() else {
                return false;
            };
            let at = match locals.iter().position(|l| l.id == shared.id) {
                Some(at) => at,
                None => {
                    // The state of servers that are gone goes with them.
                    locals.retain(|l| l.queue.strong_count() > 0);
                    let slot = Arc::new(Slot::default());
                    lock(&shared.slots).push(slot.clone());
                    locals.push(Local {
                        queue: Arc::downgrade(shared),
                        id: shared.id,
                        enricher: lock(&shared.prototype).sibling(),
                        slot,
                        pending: Vec::with_capacity(MAX_PENDING_HITS),
                    });
                    locals.len() - 1
                }
            };
            f(&mut locals[at]);
            true
        });
        if done != Ok(true) {
            // The thread is exiting (its locals are being dropped): nowhere to keep the hit.
            shared.metrics.clicks_dropped_shutdown.inc();
        }
    }

    /// Names the thread that takes the batches (woken when it parks).
    pub fn set_consumer(&self, thread: Thread) {
        let _ = self.shared.consumer.set(thread);
    }

    /// Swaps every thread's batch with `spare` in turn and hands each non-empty one to `f`,
    /// emptied afterwards; returns the events taken.
    pub fn take(&self, spare: &mut UnsequencedBatch, mut f: impl FnMut(&mut UnsequencedBatch)) -> usize {
        let slots = lock(&self.shared.slots).clone();
        let mut taken = 0;
        for slot in &slots {
            {
                let mut batch = lock(&slot.batch);
                if batch.is_empty() {
                    continue;
                }
                std::mem::swap(&mut *batch, spare);
            }
            taken += spare.len();
            f(spare);
            spare.clear(KEEP_BATCH_BYTES);
        }
        taken
    }

    /// Marks the consumer as about to park: the next record added wakes it. Take once more
    /// after this and before parking, or a record added in between waits for the park's timeout.
    pub fn will_park(&self) {
        self.shared.sleeping.store(true, Ordering::SeqCst);
    }

    /// The consumer is awake again.
    pub fn awake(&self) {
        self.shared.sleeping.store(false, Ordering::SeqCst);
    }

    /// Refuses further clicks (counted as dropped at shutdown). Take once more after this: a
    /// click added before is in that last take.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
    }

    /// True when no router or server holds this queue any more (only the consumer does).
    pub fn abandoned(&self) -> bool {
        Arc::strong_count(&self.shared) == 1
    }
}

impl Local {
    /// Enriches and encodes the waiting hits into this thread's batch.
    fn process(&mut self, shared: &Shared) {
        if self.pending.is_empty() {
            return;
        }
        {
            let mut batch = lock(&self.slot.batch);
            for hit in self.pending.drain(..) {
                if shared.closed.load(Ordering::SeqCst) {
                    shared.metrics.clicks_dropped_shutdown.inc();
                    continue;
                }
                if batch.len() >= shared.capacity {
                    shared.metrics.clicks_dropped_queue_full.inc();
                    continue;
                }
                let event = self.enricher.enrich(&hit);
                let meta = RecordMeta {
                    time_micros: click::unix_micros(hit.time),
                    bot: event.bot,
                    workspace: &hit.link.workspace().id,
                    domain: hit.link.domain(),
                };
                batch.push_with(meta, |out| event.write_json(out));
            }
        }
        // After the batch's lock is let go: a consumer that set the flag before taking this
        // thread's batch either saw the records or is seen here to be parking.
        if shared.sleeping.load(Ordering::SeqCst)
            && shared.sleeping.swap(false, Ordering::SeqCst)
            && let Some(consumer) = shared.consumer.get()
        {
            consumer.unpark();
        }
    }
}

impl Drop for Local {
    /// A thread that ends hands over what it still holds.
    fn drop(&mut self) {
        if let Some(shared) = self.queue.upgrade() {
            self.process(&shared);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::{Duration, Instant, SystemTime};

    use arc_swap::ArcSwap;

    use super::*;
    use crate::click::HitHeaders;
    use crate::config::Config;
    use crate::enrich::EnrichLists;
    use crate::enrich::geo::GeoDb;
    use crate::enrich::session::SessionTracker;
    use crate::links::{Link, LinkTable};
    use crate::spool::{Filter, SinkSpec, Spool};

    fn setup(capacity: usize) -> (ClickQueue, Arc<Metrics>, Link) {
        let c = Config::embedded_default();
        let csv = "id,domain,slashtag,destination,workspace_id\n1,brand.link,spring,https://example.com/s,w1\n";
        let table = LinkTable::from_csv(csv, &c.server, &c.domains).unwrap();
        let link = table
            .domain_for_host("brand.link")
            .unwrap()
            .lookup("spring")
            .unwrap()
            .clone();
        let metrics = Arc::new(Metrics::default());
        let enricher = Enricher::new(
            Arc::new(ArcSwap::from_pointee(EnrichLists::load(&c.server).unwrap())),
            Arc::new(GeoDb::embedded()),
            Default::default(),
            Arc::new(SessionTracker::new(c.session.idle_timeout, c.session.max_entries)),
            metrics.clone(),
        );
        (ClickQueue::new(enricher, capacity, metrics.clone()), metrics, link)
    }

    fn hit(link: &Link) -> Hit {
        Hit {
            time: SystemTime::now(),
            link: link.clone(),
            merged_location: None,
            peer: IpAddr::from([203, 0, 113, 9]),
            head: false,
            headers: HitHeaders::default(),
        }
    }

    #[test]
    fn every_threads_clicks_reach_the_spool_as_whole_events() {
        let (queue, metrics, link) = setup(10_000);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..250 {
                        queue.offer(hit(&link));
                        if i % 7 == 0 {
                            queue.flush_thread();
                        }
                    }
                    queue.flush_thread();
                });
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let sink = SinkSpec {
            name: "all".into(),
            budget_bytes: u64::MAX,
            filter: Filter::default(),
            metrics: Default::default(),
        };
        let (spool, mut writer) = Spool::open(dir.path(), 1 << 20, vec![sink]).unwrap();
        let mut spare = UnsequencedBatch::default();
        let taken = queue.take(&mut spare, |batch| {
            writer.append_batch(batch, |_, seq| {
                seq.unwrap();
            })
        });
        assert_eq!(taken, 1000);
        assert_eq!(queue.take(&mut spare, |_| panic!("nothing left")), 0);
        writer.flush().unwrap();
        let mut ids = std::collections::HashSet::new();
        let mut reader = spool.reader("all").unwrap();
        while let Some(record) = reader.next(spool.durable_seq()).unwrap() {
            let event: serde_json::Value = serde_json::from_slice(&record.json).unwrap();
            assert_eq!(event["route"]["slashtag"], "spring");
            ids.insert(event["id"].as_str().unwrap().to_string());
        }
        assert_eq!(ids.len(), 1000, "one event per click, each its own id");
        assert_eq!(metrics.clicks_dropped_queue_full.get(), 0);
    }

    #[test]
    fn a_full_batch_drops_and_a_closed_queue_counts_shutdown_drops() {
        let (queue, metrics, link) = setup(5);
        for _ in 0..8 {
            queue.offer(hit(&link));
        }
        queue.flush_thread();
        assert_eq!(metrics.clicks_dropped_queue_full.get(), 3);
        let mut spare = UnsequencedBatch::default();
        assert_eq!(queue.take(&mut spare, |_| {}), 5);
        // Room again once taken.
        queue.offer(hit(&link));
        queue.close();
        queue.offer(hit(&link));
        queue.flush_thread();
        assert_eq!(
            metrics.clicks_dropped_shutdown.get(),
            2,
            "a click made after the close is counted"
        );
        assert_eq!(queue.take(&mut spare, |_| {}), 0);
    }

    #[test]
    fn hits_held_by_a_thread_that_ends_are_made() {
        let (queue, _, link) = setup(100);
        // `join`, not a scope: a scope can end before the thread's locals are dropped.
        let thread = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                for _ in 0..3 {
                    queue.offer(hit(&link));
                }
            })
        };
        thread.join().unwrap();
        assert_eq!(queue.take(&mut UnsequencedBatch::default(), |_| {}), 3);
    }

    #[test]
    fn a_parked_consumer_is_woken_by_the_next_click() {
        let (queue, _, link) = setup(100);
        let consumer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut spare = UnsequencedBatch::default();
                loop {
                    queue.will_park();
                    if queue.take(&mut spare, |_| {}) > 0 {
                        return started.elapsed();
                    }
                    // Far longer than the test waits: only the wake-up ends it early.
                    std::thread::park_timeout(Duration::from_secs(30));
                    queue.awake();
                }
            })
        };
        queue.set_consumer(consumer.thread().clone());
        std::thread::sleep(Duration::from_millis(50));
        queue.offer(hit(&link));
        queue.flush_thread();
        let waited = consumer.join().unwrap();
        assert!(waited < Duration::from_secs(20), "woken after {waited:?}");
    }
}
