//! Webhook delivery against a real HTTP receiver: body shape, batching by count and age,
//! retries (500, 429 + Retry-After, hangs, down and back), rejection to the dead-letter file,
//! 410, 413 splitting, and Standard Webhooks signatures.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::receiver::{Mode, Receiver};
use common::{client, metric, start};

const LINKS: &str = "id,domain,slashtag,destination,creator_id,workspace_id,workspace_name,domain_id
l1,brand.link,a,https://shop.example.com/a,c1,w1,Brand,d1
l2,brand.link,b,https://shop.example.com/b,c1,w2,Other,d1
";

fn sink(url: &str, extra: &str) -> String {
    format!(
        "\n[[sink]]\ntype = \"webhook\"\nname = \"hook\"\nurl = \"{url}\"\nkey = \"abcxyz123\"\nretry_initial = \"20ms\"\nretry_max = \"200ms\"\n{extra}"
    )
}

async fn clicks(t: &common::TestNode, n: usize, path: &str) {
    let c = client();
    for _ in 0..n {
        let r = c
            .get(t.url(path))
            .header("host", "brand.link")
            .header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 301);
    }
}

fn ids(events: &[serde_json::Value]) -> Vec<String> {
    events.iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn body_shape_headers_and_batching_by_count_and_age() {
    let rx = Receiver::start(Mode::Ok).await;
    let t = start(
        LINKS,
        &sink(
            &rx.url(),
            "batch_max_events = 3\nbatch_max_age = \"300ms\"\nheaders = { Authorization = \"Bearer s3cret\" }\nmethod = \"PUT\"",
        ),
    )
    .await;
    clicks(&t, 7, "/a").await;
    let events = rx.wait_for_events(7, Duration::from_secs(10)).await;
    assert_eq!(events.len(), 7);
    let reqs = rx.requests();
    let sizes: Vec<usize> = reqs.iter().map(|r| r.events().len()).collect();
    assert!(sizes.iter().all(|&n| n <= 3), "count limit: {sizes:?}");
    assert_eq!(
        *sizes.last().unwrap(),
        1,
        "the last click goes out by age alone: {sizes:?}"
    );
    let first = &reqs[0];
    assert_eq!(first.method, "PUT");
    assert_eq!(first.headers["content-type"], "application/json");
    assert_eq!(first.headers["authorization"], "Bearer s3cret");
    let body = first.json();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["data", "key"]);
    assert_eq!(body["key"], "abcxyz123");
    assert_eq!(body["data"][0]["route"]["id"], "l1");
    assert!(
        !first.headers.contains_key("webhook-signature"),
        "unsigned without a secret"
    );
    let m = t.metrics().await;
    assert_eq!(metric(&m, "clickstream_sink_delivered_total{sink=\"hook\"}"), 7);
    assert_eq!(metric(&m, "clickstream_sink_appended_total{sink=\"hook\"}"), 7);
}

#[tokio::test]
async fn failures_are_retried_until_delivered() {
    let rx = Receiver::start(Mode::Status(500, None)).await;
    let t = start(LINKS, &sink(&rx.url(), "batch_max_age = \"50ms\"")).await;
    clicks(&t, 3, "/a").await;
    // 500, then redirects and auth errors: all retried, never dropped. Each answer is seen at
    // least once before the endpoint changes it.
    rx.wait_for_answer(500, Duration::from_secs(10)).await;
    for status in [503, 302, 401, 404] {
        rx.set_mode(Mode::Status(status, None));
        rx.wait_for_answer(status, Duration::from_secs(10)).await;
    }
    assert!(rx.delivered().is_empty());
    rx.set_mode(Mode::Ok);
    let events = rx.wait_for_events(3, Duration::from_secs(10)).await;
    assert_eq!(events.len(), 3);
    // The redirect from the endpoint was not followed (the receiver saw it answered, nothing else).
    let statuses: HashSet<u16> = rx.requests().iter().map(|r| r.answered).collect();
    assert!(
        statuses.is_superset(&[500, 503, 302, 401, 404, 200].into_iter().collect()),
        "{statuses:?}"
    );
    let m = t.metrics().await;
    assert!(metric(&m, "clickstream_sink_retries_total{sink=\"hook\"}") >= 5, "{m}");
    assert_eq!(metric(&m, "clickstream_sink_delivered_total{sink=\"hook\"}"), 3);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let rx = Receiver::start(Mode::Status(429, Some("1"))).await;
    let t = start(LINKS, &sink(&rx.url(), "batch_max_age = \"50ms\"")).await;
    clicks(&t, 1, "/a").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while rx.requests().is_empty() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rx.set_mode(Mode::Ok);
    rx.wait_for_events(1, Duration::from_secs(10)).await;
    let reqs = rx.requests();
    let gap = reqs[1].at - reqs[0].at;
    // The backoff alone would have retried within 200 ms.
    assert!(
        gap >= Duration::from_millis(900),
        "retried after {gap:?}, before Retry-After"
    );
}

#[tokio::test]
async fn a_hanging_endpoint_times_out_and_is_retried() {
    let rx = Receiver::start(Mode::Hang).await;
    let t = start(LINKS, &sink(&rx.url(), "batch_max_age = \"50ms\"\ntimeout = \"300ms\"")).await;
    clicks(&t, 2, "/a").await;
    // The first request hangs until the sink's timeout, whatever the endpoint does next.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rx.arrived() == 0 {
        assert!(std::time::Instant::now() < deadline, "no request reached the endpoint");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rx.set_mode(Mode::Ok);
    let events = rx.wait_for_events(2, Duration::from_secs(10)).await;
    assert_eq!(events.len(), 2);
    assert!(metric(&t.metrics().await, "clickstream_sink_retries_total{sink=\"hook\"}") >= 1);
}

#[tokio::test]
async fn rejected_batches_go_to_the_dead_letter_file() {
    let rx = Receiver::start(Mode::Status(422, None)).await;
    let t = start(LINKS, &sink(&rx.url(), "batch_max_age = \"50ms\"")).await;
    clicks(&t, 2, "/a").await;
    let path = t.path("spool/dead-letter/hook.ndjson");
    let lines = common::wait_for(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&path).ok()?;
        (text.lines().count() >= 2).then_some(text)
    })
    .await
    .expect("dead-letter file");
    let ev: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(ev["route"]["slashtag"], "a");
    rx.set_mode(Mode::Ok);
    clicks(&t, 1, "/a").await;
    let delivered = rx.wait_for_events(1, Duration::from_secs(10)).await;
    assert_eq!(delivered.len(), 1, "rejected events are not sent again");
    assert_eq!(
        metric(&t.metrics().await, "clickstream_sink_rejected_total{sink=\"hook\"}"),
        2
    );
}

#[tokio::test]
async fn too_large_batches_are_split_down_to_one_event() {
    let rx = Receiver::start(Mode::TooLargeAbove1).await;
    let t = start(
        LINKS,
        &sink(&rx.url(), "batch_max_age = \"200ms\"\nbatch_max_events = 8"),
    )
    .await;
    clicks(&t, 5, "/a").await;
    let events = rx.wait_for_events(5, Duration::from_secs(10)).await;
    assert_eq!(ids(&events).into_iter().collect::<HashSet<_>>().len(), 5);
    assert!(rx.requests().iter().any(|r| r.answered == 413));
    assert_eq!(
        metric(&t.metrics().await, "clickstream_sink_rejected_total{sink=\"hook\"}"),
        0
    );
}

#[tokio::test]
async fn gone_disables_the_endpoint_until_restart() {
    let rx = Receiver::start(Mode::Status(410, None)).await;
    let t = start(LINKS, &sink(&rx.url(), "batch_max_age = \"50ms\"")).await;
    clicks(&t, 1, "/a").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while metric(&t.metrics().await, "clickstream_sink_disabled{sink=\"hook\"}") != 1 {
        assert!(std::time::Instant::now() < deadline, "410 must disable the sink");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    clicks(&t, 3, "/a").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.requests().len(), 1, "no request after 410");
}

#[tokio::test]
async fn signed_requests_verify_and_keep_their_id_across_retries() {
    use base64::Engine as _;
    use hmac::Mac as _;
    let rx = Receiver::start(Mode::Status(500, None)).await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let t = start(
        LINKS,
        &sink(
            &rx.url(),
            &format!("batch_max_age = \"50ms\"\nsigning_secret = \"{secret}\""),
        ),
    )
    .await;
    clicks(&t, 2, "/a").await;
    rx.wait_for_answer(500, Duration::from_secs(10)).await;
    rx.set_mode(Mode::Ok);
    rx.wait_for_events(2, Duration::from_secs(10)).await;
    let reqs = rx.requests();
    assert!(reqs.len() >= 2);
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let first_id = reqs[0].headers["webhook-id"].to_str().unwrap().to_string();
    for r in &reqs {
        let id = r.headers["webhook-id"].to_str().unwrap();
        assert_eq!(id, first_id, "same id on every retry");
        let ts = r.headers["webhook-timestamp"].to_str().unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(&r.body);
        let want = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(r.headers["webhook-signature"].to_str().unwrap(), want);
    }
}

#[tokio::test]
async fn an_outage_loses_nothing_and_does_not_slow_redirects() {
    let mut rx = Receiver::start(Mode::Ok).await;
    let t = start(
        LINKS,
        &sink(&rx.url(), "batch_max_age = \"100ms\"\nbatch_max_events = 50"),
    )
    .await;
    clicks(&t, 10, "/a").await;
    rx.wait_for_events(10, Duration::from_secs(10)).await;
    rx.stop();
    // Steady clicks while the endpoint is down: every redirect is answered.
    for _ in 0..20 {
        clicks(&t, 10, "/b").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = t.metrics().await;
    assert!(metric(&m, "clickstream_sink_retries_total{sink=\"hook\"}") >= 1);
    assert!(metric(&m, "clickstream_sink_spool_bytes{sink=\"hook\"}") > 0, "{m}");
    assert!(
        metric(
            &m,
            "clickstream_sink_oldest_undelivered_timestamp_seconds{sink=\"hook\"}"
        ) > 0,
        "{m}"
    );
    rx.resume().await;
    let events = rx.wait_for_events(210, Duration::from_secs(20)).await;
    let unique: HashSet<String> = ids(&events).into_iter().collect();
    assert_eq!(unique.len(), 210, "every click arrives");
    for r in rx.requests().iter().filter(|r| r.answered == 200) {
        let batch = ids(&r.events());
        assert_eq!(
            batch.len(),
            batch.iter().collect::<HashSet<_>>().len(),
            "no duplicate inside a batch"
        );
    }
    let m = t.metrics().await;
    assert_eq!(metric(&m, "clickstream_redirects_total{status=\"301\"}"), 210);
    assert_eq!(metric(&m, "clickstream_clicks_dropped_total{reason=\"queue_full\"}"), 0);
    // The backlog gauges go back to zero once the backlog is acknowledged, without new clicks.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = t.metrics().await;
        let backlog = (
            metric(&m, "clickstream_sink_spool_bytes{sink=\"hook\"}"),
            metric(
                &m,
                "clickstream_sink_oldest_undelivered_timestamp_seconds{sink=\"hook\"}",
            ),
        );
        if backlog == (0, 0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backlog gauges stuck at {backlog:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn filters_pick_humans_workspaces_and_domains() {
    let rx = Receiver::start(Mode::Ok).await;
    let t = start(
        LINKS,
        &sink(
            &rx.url(),
            "batch_max_age = \"50ms\"\nhumans_only = true\nworkspaces = [\"w1\"]",
        ),
    )
    .await;
    clicks(&t, 2, "/a").await; // w1, human
    clicks(&t, 2, "/b").await; // w2: filtered
    let c = client();
    c.get(t.url("/a"))
        .header("host", "brand.link")
        .header("user-agent", "curl/8.5.0")
        .send()
        .await
        .unwrap(); // bot: filtered
    t.wait_for_metric("clickstream_sink_filtered_total{sink=\"hook\"}", 3)
        .await;
    let events = rx.wait_for_events(2, Duration::from_secs(10)).await;
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["route"]["creator"]["workspace"]["id"] == "w1"));
    assert_eq!(
        metric(&t.metrics().await, "clickstream_sink_filtered_total{sink=\"hook\"}"),
        3
    );
}
