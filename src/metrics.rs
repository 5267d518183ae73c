//! Process counters: relaxed atomics, rendered as Prometheus text by [`Metrics::render`] for the
//! admin listener. The few that every request adds to are [`Striped`], so the hit path pays a
//! `fetch_add` on a cache line its own thread keeps, and nothing else.
//!
//! Per-sink counters live in [`SinkMetrics`], one per `[[sink]]`, created by the delivery layer.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http::StatusCode;

/// What kind of answer a request got, for metrics and tests (the router decides it; the
/// counters here count it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A link of the table: a click (unless it was a prefetch).
    Click,
    /// A link of the table asked for by a browser prefetch: answered, not a click.
    Prefetch,
    /// The domain's `not_found_url` or `root_url`.
    FallbackRedirect,
    /// The small 404 page.
    NotFound,
    /// `/robots.txt`.
    Robots,
    /// 400: no Host, or a path that is not UTF-8 once decoded.
    BadRequest,
    /// 405
    MethodNotAllowed,
    /// 308 to https for an `https_only` domain on the plain listener.
    HttpsRedirect,
}

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (or is set).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Takes one away.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Stripes of a [`Striped`] set; more than the threads that answer requests on small machines.
const STRIPES: usize = 4;

/// `N` counters that every request adds to, one stripe per thread, summed when read.
///
/// A plain shared counter makes the cores answering requests take turns owning its cache
/// line, a transfer for each increment; here each thread adds to a stripe of its own (threads
/// take stripes in turn, so the runtime's workers get different ones) on a line of its own.
/// Written here because it is a dozen lines over `AtomicU64`.
#[derive(Debug)]
pub struct Striped<const N: usize> {
    stripes: Box<[Stripe<N>; STRIPES]>,
}

/// One thread's counters, alone on their cache lines (128 bytes: x86 fetches lines in pairs).
#[derive(Debug)]
#[repr(align(128))]
struct Stripe<const N: usize>([AtomicU64; N]);

impl<const N: usize> Default for Striped<N> {
    fn default() -> Self {
        Striped {
            stripes: Box::new(std::array::from_fn(|_| {
                Stripe(std::array::from_fn(|_| AtomicU64::new(0)))
            })),
        }
    }
}

impl<const N: usize> Striped<N> {
    /// Adds `n` to counter `i` (`i < N`).
    pub fn add(&self, i: usize, n: u64) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
        }
        let stripe = STRIPE.with(|s| *s);
        self.stripes[stripe].0[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Counter `i`, summed over the stripes.
    pub fn get(&self, i: usize) -> u64 {
        self.stripes.iter().map(|s| s.0[i].load(Ordering::Relaxed)).sum()
    }
}

/// The index of a redirect status in a `Striped<4>` of redirects: 301, 302, 307, 308.
fn redirect_index(status: StatusCode) -> usize {
    match status.as_u16() {
        301 => 0,
        302 => 1,
        307 => 2,
        _ => 3,
    }
}

/// Upper bounds of the request-latency buckets, in nanoseconds (the last bucket is `+Inf`).
pub const LATENCY_BUCKETS_NS: [u64; 11] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// Counters of a [`Histogram`]: the buckets (the last is `+Inf`), then the sum in nanoseconds.
const HISTOGRAM_SLOTS: usize = LATENCY_BUCKETS_NS.len() + 2;
const SUM_SLOT: usize = HISTOGRAM_SLOTS - 1;

/// A fixed-bucket histogram of durations: two relaxed additions per observation.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: Striped<HISTOGRAM_SLOTS>,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: std::time::Duration) {
        let ns = d.as_nanos().min(u128::from(u64::MAX)) as u64;
        let i = LATENCY_BUCKETS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(LATENCY_BUCKETS_NS.len());
        self.counts.add(i, 1);
        self.counts.add(SUM_SLOT, ns);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for i in 0..SUM_SLOT {
            cumulative += self.counts.get(i);
            match LATENCY_BUCKETS_NS.get(i) {
                Some(b) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cumulative}", *b as f64 / 1e9);
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let _ = writeln!(out, "{name}_sum {}", self.counts.get(SUM_SLOT) as f64 / 1e9);
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// Redirects of one domain, by status; kept across reloads (the table holds an `Arc` of it).
/// Striped, so 512 bytes a domain: every redirect of the domain adds to it.
#[derive(Debug, Default)]
pub struct DomainCounters {
    /// 301, 302, 307, 308 in that order.
    redirects: Striped<4>,
}

impl DomainCounters {
    /// Counts one redirect with this status.
    pub fn redirect(&self, status: StatusCode) {
        self.redirects.add(redirect_index(status), 1);
    }
}

/// Name, type, help and labelled samples of one metric family.
type Family = (&'static str, &'static str, &'static str, Vec<(String, u64)>);

/// Every process-wide counter.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Redirects to link destinations with 301, 302, 307 and 308 (see [`Metrics::redirects`]).
    redirects: Striped<4>,
    /// `not_found_url` / `root_url` redirects.
    pub fallback_redirects: Counter,
    /// 404 answers.
    pub not_found: Counter,
    /// `/robots.txt` answers.
    pub robots: Counter,
    /// 400 answers.
    pub bad_requests: Counter,
    /// 405 answers.
    pub method_not_allowed: Counter,
    /// 308s to https for `https_only` domains.
    pub https_redirects: Counter,
    /// ACME challenge files served.
    pub acme_challenges: Counter,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_errors: Counter,
    /// Prefetches of links (answered, not clicks).
    pub prefetches: Counter,
    /// Hits dropped because the enrichment queue was full.
    pub clicks_dropped_queue_full: Counter,
    /// Hits dropped because the pipeline had stopped.
    pub clicks_dropped_shutdown: Counter,
    /// Click events built and written to the spool.
    pub clicks_emitted: Counter,
    /// Of those, classified as bots.
    pub clicks_bot: Counter,
    /// Of those, classified as humans.
    pub clicks_human: Counter,
    /// Events the spool refused (disk errors); counted, logged.
    pub clicks_dropped_spool_error: Counter,
    /// Clicks whose address had no country in the GeoIP database.
    pub geoip_misses: Counter,
    /// Links in the current table.
    pub links: Gauge,
    /// Successful reloads.
    pub reloads_ok: Counter,
    /// Refused reloads.
    pub reloads_failed: Counter,
    /// Unix time of the last successful reload (or first load).
    pub last_reload_unix: Gauge,
    /// Live sessions.
    pub sessions: Gauge,
    /// Last sequence number written through to disk by the spool.
    pub spool_durable_seq: Gauge,
    /// Open connections.
    pub connections: Gauge,
    /// `max_connections` in force, per listener: as configured, or lowered to fit the open-file
    /// limit (`edge::fd_budget`).
    pub max_connections: Gauge,
    /// Per request, from the read that completed its head to the built response (parsing,
    /// routing, click hand-off; the network and the write are not included).
    pub request_latency: Histogram,
    sinks: Mutex<Vec<Arc<SinkMetrics>>>,
    domains: Mutex<std::collections::BTreeMap<String, Arc<DomainCounters>>>,
}

/// Counters of one sink.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    /// Sink name.
    pub name: String,
    /// Events appended to the spool for this sink (after its filters).
    pub appended: Counter,
    /// Events delivered.
    pub delivered: Counter,
    /// Batches retried.
    pub retries: Counter,
    /// Events sent to the dead-letter file.
    pub rejected: Counter,
    /// Events dropped because the sink's spool budget was full.
    pub dropped: Counter,
    /// Events skipped by the sink's filters.
    pub filtered: Counter,
    /// Undelivered bytes in the spool for this sink.
    pub spool_bytes: Gauge,
    /// Unix time of the last successful delivery.
    pub last_success_unix: Gauge,
    /// Click time (unix seconds) of the oldest undelivered event, 0 when none.
    pub oldest_undelivered_unix: Gauge,
    /// 1 when the endpoint is disabled (HTTP 410).
    pub disabled: Gauge,
}

impl Metrics {
    /// Redirects to link destinations with `status`.
    pub fn redirects(&self, status: StatusCode) -> u64 {
        self.redirects.get(redirect_index(status))
    }

    /// Counts the answer to one request.
    pub fn record_outcome(&self, outcome: Outcome, status: StatusCode) {
        match outcome {
            Outcome::Click | Outcome::Prefetch => {
                self.redirects.add(redirect_index(status), 1);
                if outcome == Outcome::Prefetch {
                    self.prefetches.inc();
                }
            }
            Outcome::FallbackRedirect => self.fallback_redirects.inc(),
            Outcome::NotFound => self.not_found.inc(),
            Outcome::Robots => self.robots.inc(),
            Outcome::BadRequest => self.bad_requests.inc(),
            Outcome::MethodNotAllowed => self.method_not_allowed.inc(),
            Outcome::HttpsRedirect => self.https_redirects.inc(),
        }
    }

    /// Registers a sink's counters (they are rendered with the rest).
    pub fn sink(&self, name: &str) -> Arc<SinkMetrics> {
        let mut sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = sinks.iter().find(|s| s.name == name) {
            return s.clone();
        }
        let s = Arc::new(SinkMetrics {
            name: name.to_string(),
            ..SinkMetrics::default()
        });
        sinks.push(s.clone());
        s
    }

    /// The counters of a domain (the same `Arc` for the same name, across reloads).
    pub fn domain(&self, name: &str) -> Arc<DomainCounters> {
        let mut domains = self.domains.lock().unwrap_or_else(|e| e.into_inner());
        domains.entry(name.to_string()).or_default().clone()
    }

    /// Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in samples {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
        };
        family(
            "clickstream_redirects_total",
            "counter",
            "Redirects to link destinations, by status.",
            &[
                ("status=\"301\"", self.redirects.get(0)),
                ("status=\"302\"", self.redirects.get(1)),
                ("status=\"307\"", self.redirects.get(2)),
                ("status=\"308\"", self.redirects.get(3)),
            ],
        );
        let domains = self.domains.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let per_domain: Vec<(String, u64)> = domains
            .iter()
            .flat_map(|(name, c)| {
                ["301", "302", "307", "308"].iter().enumerate().map(move |(i, status)| {
                    (
                        format!("domain=\"{}\",status=\"{status}\"", escape_label(name)),
                        c.redirects.get(i),
                    )
                })
            })
            .collect();
        let borrowed: Vec<(&str, u64)> = per_domain.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        family(
            "clickstream_domain_redirects_total",
            "counter",
            "Redirects to link destinations, by domain and status.",
            &borrowed,
        );
        family(
            "clickstream_responses_total",
            "counter",
            "Answers that are not link redirects, by kind.",
            &[
                ("kind=\"fallback_redirect\"", self.fallback_redirects.get()),
                ("kind=\"not_found\"", self.not_found.get()),
                ("kind=\"robots\"", self.robots.get()),
                ("kind=\"bad_request\"", self.bad_requests.get()),
                ("kind=\"method_not_allowed\"", self.method_not_allowed.get()),
                ("kind=\"prefetch\"", self.prefetches.get()),
                ("kind=\"https_redirect\"", self.https_redirects.get()),
                ("kind=\"acme_challenge\"", self.acme_challenges.get()),
            ],
        );
        family(
            "clickstream_clicks_total",
            "counter",
            "Click events built and written to the spool, by agent type.",
            &[
                ("type=\"human\"", self.clicks_human.get()),
                ("type=\"bot\"", self.clicks_bot.get()),
            ],
        );
        family(
            "clickstream_clicks_dropped_total",
            "counter",
            "Clicks lost before the spool, by reason.",
            &[
                ("reason=\"queue_full\"", self.clicks_dropped_queue_full.get()),
                ("reason=\"shutdown\"", self.clicks_dropped_shutdown.get()),
                ("reason=\"spool_error\"", self.clicks_dropped_spool_error.get()),
            ],
        );
        family(
            "clickstream_geoip_misses_total",
            "counter",
            "Clicks whose address has no country.",
            &[("", self.geoip_misses.get())],
        );
        family(
            "clickstream_links",
            "gauge",
            "Links in the current table.",
            &[("", self.links.get())],
        );
        family(
            "clickstream_reloads_total",
            "counter",
            "Link table reloads, by result.",
            &[
                ("result=\"ok\"", self.reloads_ok.get()),
                ("result=\"failed\"", self.reloads_failed.get()),
            ],
        );
        family(
            "clickstream_last_reload_timestamp_seconds",
            "gauge",
            "Unix time of the last successful table load.",
            &[("", self.last_reload_unix.get())],
        );
        family(
            "clickstream_sessions",
            "gauge",
            "Live visitor sessions.",
            &[("", self.sessions.get())],
        );
        family(
            "clickstream_spool_durable_sequence",
            "gauge",
            "Last spool sequence number written through to disk.",
            &[("", self.spool_durable_seq.get())],
        );
        family(
            "clickstream_connections",
            "gauge",
            "Open client connections.",
            &[("", self.connections.get())],
        );
        family(
            "clickstream_max_connections",
            "gauge",
            "Connections each listener takes at most: max_connections, or less to fit the open-file limit.",
            &[("", self.max_connections.get())],
        );
        let sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let per_sink = |f: &dyn Fn(&SinkMetrics) -> u64| -> Vec<(String, u64)> {
            sinks
                .iter()
                .map(|s| (format!("sink=\"{}\"", escape_label(&s.name)), f(s)))
                .collect()
        };
        let families: [Family; 10] = [
            (
                "clickstream_sink_appended_total",
                "counter",
                "Events queued in the spool for the sink.",
                per_sink(&|s| s.appended.get()),
            ),
            (
                "clickstream_sink_delivered_total",
                "counter",
                "Events delivered by the sink.",
                per_sink(&|s| s.delivered.get()),
            ),
            (
                "clickstream_sink_retries_total",
                "counter",
                "Batch attempts that failed and were retried.",
                per_sink(&|s| s.retries.get()),
            ),
            (
                "clickstream_sink_rejected_total",
                "counter",
                "Events the destination rejected (dead-lettered).",
                per_sink(&|s| s.rejected.get()),
            ),
            (
                "clickstream_sink_dropped_total",
                "counter",
                "Events dropped because the spool budget was full.",
                per_sink(&|s| s.dropped.get()),
            ),
            (
                "clickstream_sink_filtered_total",
                "counter",
                "Events skipped by the sink's filters.",
                per_sink(&|s| s.filtered.get()),
            ),
            (
                "clickstream_sink_spool_bytes",
                "gauge",
                "Undelivered spool bytes.",
                per_sink(&|s| s.spool_bytes.get()),
            ),
            (
                "clickstream_sink_last_success_timestamp_seconds",
                "gauge",
                "Unix time of the last delivery.",
                per_sink(&|s| s.last_success_unix.get()),
            ),
            (
                "clickstream_sink_oldest_undelivered_timestamp_seconds",
                "gauge",
                "Click time of the oldest undelivered event (0: none).",
                per_sink(&|s| s.oldest_undelivered_unix.get()),
            ),
            (
                "clickstream_sink_disabled",
                "gauge",
                "1 when the endpoint answered 410 and is disabled.",
                per_sink(&|s| s.disabled.get()),
            ),
        ];
        for (name, kind, help, samples) in &families {
            let borrowed: Vec<(&str, u64)> = samples.iter().map(|(l, v)| (l.as_str(), *v)).collect();
            family(name, kind, help, &borrowed);
        }
        self.request_latency.render(
            &mut out,
            "clickstream_request_duration_seconds",
            "From the read that completed a request head to its built response.",
        );
        out
    }
}

/// Escapes a Prometheus label value (backslash, quote, newline).
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        for us in [0u64, 1, 3, 30, 200_000] {
            h.observe(std::time::Duration::from_micros(us));
        }
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.000001\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.000005\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.1\"} 4\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 5\n"), "{out}");
        assert!(out.contains("x_count 5\n"), "{out}");
    }

    #[test]
    fn striped_counts_from_many_threads_add_up() {
        let m = Metrics::default();
        let d = DomainCounters::default();
        std::thread::scope(|s| {
            for _ in 0..2 * STRIPES + 1 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        m.record_outcome(Outcome::Click, StatusCode::FOUND);
                        d.redirect(StatusCode::PERMANENT_REDIRECT);
                    }
                });
            }
        });
        let n = (2 * STRIPES as u64 + 1) * 1000;
        assert_eq!(m.redirects(StatusCode::FOUND), n);
        assert_eq!(m.redirects(StatusCode::MOVED_PERMANENTLY), 0);
        assert_eq!(d.redirects.get(3), n);
        assert!(
            m.render()
                .contains(&format!("clickstream_redirects_total{{status=\"302\"}} {n}\n"))
        );
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
