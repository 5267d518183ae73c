//! Operations: exact counters on `/metrics` after known traffic, `/readyz` before the table is
//! loaded, `/links/...`, and no secret in the logs.

use crate::common;

use std::time::Duration;

use common::process::Process;
use common::receiver::{Mode, Receiver};
use common::{client, metric, start};

const LINKS: &str = "id,domain,slashtag,destination,status,workspace_id
l1,brand.link,a,https://shop.example.com/a,,w1
l2,brand.link,t,https://shop.example.com/t,302,w1
l3,other.test,a,https://other.example.com/a,,w2
";

#[tokio::test]
async fn counters_after_known_traffic() {
    let rx = Receiver::start(Mode::Status(503, None)).await;
    let extra = format!(
        "\n[[sink]]\ntype = \"file\"\nname = \"disk\"\ndir = \"{}\"\nbatch_max_age = \"50ms\"\n[[sink]]\ntype = \"webhook\"\nname = \"hook\"\nurl = \"{}\"\nbatch_max_age = \"50ms\"\nretry_initial = \"20ms\"\nretry_max = \"50ms\"\n",
        tempfile::tempdir().unwrap().keep().display(),
        rx.url()
    );
    let t = start(LINKS, &extra).await;
    let c = client();
    let get = |host: &'static str, path: &'static str, ua: &'static str| {
        let c = c.clone();
        let url = t.url(path);
        async move {
            c.get(url)
                .header("host", host)
                .header("user-agent", ua)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    for _ in 0..3 {
        assert_eq!(get("brand.link", "/a", chrome).await, 301);
    }
    assert_eq!(get("brand.link", "/t", "curl/8.5.0").await, 302);
    assert_eq!(
        get("other.test", "/a", "Googlebot/2.1 (+http://www.google.com/bot.html)").await,
        301
    );
    assert_eq!(get("brand.link", "/missing", chrome).await, 404);
    assert_eq!(get("brand.link", "/robots.txt", chrome).await, 200);

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = t.metrics().await;
        if metric(&m, "clickstream_sink_delivered_total{sink=\"disk\"}") == 5
            && metric(&m, "clickstream_sink_retries_total{sink=\"hook\"}") >= 2
        {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "{m}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let exact = [
        ("clickstream_redirects_total{status=\"301\"}", 4),
        ("clickstream_redirects_total{status=\"302\"}", 1),
        (
            "clickstream_domain_redirects_total{domain=\"brand.link\",status=\"301\"}",
            3,
        ),
        (
            "clickstream_domain_redirects_total{domain=\"brand.link\",status=\"302\"}",
            1,
        ),
        (
            "clickstream_domain_redirects_total{domain=\"other.test\",status=\"301\"}",
            1,
        ),
        ("clickstream_responses_total{kind=\"not_found\"}", 1),
        ("clickstream_responses_total{kind=\"robots\"}", 1),
        ("clickstream_clicks_total{type=\"human\"}", 3),
        ("clickstream_clicks_total{type=\"bot\"}", 2),
        ("clickstream_clicks_dropped_total{reason=\"queue_full\"}", 0),
        ("clickstream_links", 3),
        ("clickstream_reloads_total{result=\"ok\"}", 0),
        ("clickstream_spool_durable_sequence", 5),
        ("clickstream_sink_appended_total{sink=\"disk\"}", 5),
        ("clickstream_sink_appended_total{sink=\"hook\"}", 5),
        ("clickstream_sink_delivered_total{sink=\"disk\"}", 5),
        ("clickstream_sink_delivered_total{sink=\"hook\"}", 0),
        ("clickstream_sink_rejected_total{sink=\"hook\"}", 0),
        ("clickstream_sink_dropped_total{sink=\"hook\"}", 0),
        ("clickstream_request_duration_seconds_count", 7),
    ];
    for (sample, want) in exact {
        assert_eq!(metric(&m, sample), want, "{sample}\n{m}");
    }
    assert!(
        metric(
            &m,
            "clickstream_sink_oldest_undelivered_timestamp_seconds{sink=\"hook\"}"
        ) > 0
    );
    assert!(metric(&m, "clickstream_sink_last_success_timestamp_seconds{sink=\"disk\"}") > 0);

    // Health and link debugging.
    let admin = |path: &str| format!("{}{path}", t.admin);
    assert_eq!(c.get(admin("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(admin("/readyz")).send().await.unwrap().status(), 200);
    let r = c.get(admin("/links/brand.link/T")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["location"], "https://shop.example.com/t");
    assert_eq!(v["status"], 302);
    assert_eq!(v["matched_case_insensitively"], true);
    let r = c.get(admin("/links/brand.link/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_table_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    // A named pipe: loading blocks until the test writes the table into it.
    let fifo = dir.path().join("links.csv");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo");
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        common::config_text(dir.path(), "reload_poll_interval = \"0s\""),
    )
    .unwrap();
    let p = Process::start_admin_only(dir.path(), &config, &[]);
    let c = client();
    let admin = |path: &str| format!("http://{}{path}", p.admin);
    assert_eq!(c.get(admin("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(admin("/readyz")).send().await.unwrap().status(), 503);
    let writer = std::thread::spawn(move || std::fs::write(&fifo, LINKS).unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while c.get(admin("/readyz")).send().await.unwrap().status() != 200 {
        assert!(std::time::Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.join().unwrap();
    assert_eq!(metric(&p.metrics().await, "clickstream_links"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Mode::Status(500, None)).await;
    std::fs::write(dir.path().join("links.csv"), LINKS).unwrap();
    let extra = format!(
        "\n[[sink]]\ntype = \"webhook\"\nname = \"hook\"\nurl = \"{}\"\nkey = \"env:HOOK_KEY\"\nheaders = {{ Authorization = \"Bearer hunter2-token\" }}\nsigning_secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\nbatch_max_age = \"20ms\"\nretry_initial = \"10ms\"\nretry_max = \"20ms\"\n",
        rx.url()
    );
    let config = dir.path().join("c.toml");
    std::fs::write(&config, common::config_text(dir.path(), &extra)).unwrap();
    let p = Process::start(
        dir.path(),
        &config,
        &[("HOOK_KEY", "sekrit-key-42"), ("RUST_LOG", "trace")],
    );
    for _ in 0..3 {
        client()
            .get(format!("http://{}/a", p.addr))
            .header("host", "brand.link")
            .send()
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rx.requests().len() < 3 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.signal("TERM");
    let mut p = p;
    p.wait(Duration::from_secs(10));
    let logs = p.logs.lock().unwrap().join("\n");
    assert!(logs.contains("delivery failed; retrying"), "retries are logged");
    for secret in ["sekrit-key-42", "hunter2-token", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}
