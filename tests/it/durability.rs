//! Nothing acknowledged to the spool is lost: the real binary killed with SIGKILL, stopped with
//! SIGTERM while its webhook is down, and restarted; every event arrives (receivers
//! de-duplicate by `id`).

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::process::Process;
use common::receiver::{Mode, Receiver};
use common::{client, metric};

const LINKS: &str = "id,domain,slashtag,destination,workspace_id
l1,brand.link,a,https://shop.example.com/a,w1
";

fn write_config(dir: &std::path::Path, hook: &str) -> std::path::PathBuf {
    let extra = format!(
        "\n[[sink]]\ntype = \"webhook\"\nname = \"hook\"\nurl = \"{hook}\"\nkey = \"k\"\nbatch_max_age = \"50ms\"\nretry_initial = \"20ms\"\nretry_max = \"200ms\"\n"
    );
    std::fs::write(dir.join("links.csv"), LINKS).unwrap();
    let path = dir.join("clickstream.toml");
    std::fs::write(&path, common::config_text(dir, &extra)).unwrap();
    path
}

async fn send_clicks(p: &Process, n: usize) {
    let c = client();
    for _ in 0..n {
        let r = c
            .get(format!("http://{}/a", p.addr))
            .header("host", "brand.link")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 301);
    }
}

fn unique_ids(events: &[serde_json::Value]) -> HashSet<String> {
    events.iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_that_was_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut rx = Receiver::start(Mode::Ok).await;
    let config = write_config(dir.path(), &rx.url());
    // The webhook is down: everything stays in the spool.
    rx.stop();
    let mut p = Process::start(dir.path(), &config, &[]);
    send_clicks(&p, 200).await;
    // Wait until the spool says all 200 are durable, then kill without warning.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while metric(&p.metrics().await, "clickstream_spool_durable_sequence") < 200 {
        assert!(std::time::Instant::now() < deadline, "spool never became durable");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.signal("KILL");
    p.wait(Duration::from_secs(10));
    drop(p);

    rx.resume().await;
    let p = Process::start(dir.path(), &config, &[]);
    let events = rx.wait_for_events(200, Duration::from_secs(20)).await;
    assert_eq!(
        unique_ids(&events).len(),
        200,
        "every durable event arrives after the restart"
    );
    drop(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_the_endpoint_down_keeps_everything_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut rx = Receiver::start(Mode::Ok).await;
    let config = write_config(dir.path(), &rx.url());
    let mut p = Process::start(dir.path(), &config, &[]);
    send_clicks(&p, 50).await;
    rx.wait_for_events(50, Duration::from_secs(10)).await;
    rx.stop();
    send_clicks(&p, 150).await;
    // SIGTERM straight after the last redirect: nothing answered may be lost.
    p.signal("TERM");
    assert_eq!(p.wait(Duration::from_secs(20)), Some(0));
    drop(p);

    rx.resume().await;
    let _p = Process::start(dir.path(), &config, &[]);
    let events = rx.wait_for_events(200, Duration::from_secs(20)).await;
    assert_eq!(unique_ids(&events).len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_delivers_everything_before_exit_when_the_endpoint_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Mode::Ok).await;
    let config = write_config(dir.path(), &rx.url());
    let mut p = Process::start(dir.path(), &config, &[]);
    send_clicks(&p, 100).await;
    p.signal("TERM");
    assert_eq!(p.wait(Duration::from_secs(20)), Some(0));
    let events = rx.delivered();
    assert_eq!(unique_ids(&events).len(), 100, "all clicks delivered during the drain");
}
