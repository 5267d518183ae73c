//! S3 delivery against a real S3-compatible server (s3s-fs, in this process, on 127.0.0.1),
//! from the real binary with credentials from the standard AWS environment variables: object
//! keys, gzip NDJSON bodies, event contents, and the server down for a while and back.

use crate::common;

use std::collections::HashSet;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::process::Process;
use common::{client, metric};

const ACCESS_KEY: &str = "AKIACLICKSTREAMTEST";
const SECRET_KEY: &str = "clickstream-test-secret-key";

/// An s3s-fs server whose accept loop and connections can be stopped and restarted.
struct S3Server {
    addr: SocketAddr,
    root: PathBuf,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl S3Server {
    async fn start(root: &Path) -> S3Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut s = S3Server {
            addr,
            root: root.to_path_buf(),
            task: None,
        };
        s.task = Some(tokio::spawn(serve_s3(listener, s.root.clone())));
        s
    }

    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    async fn resume(&mut self) {
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        self.task = Some(tokio::spawn(serve_s3(listener, self.root.clone())));
    }
}

async fn serve_s3(listener: tokio::net::TcpListener, root: PathBuf) {
    let fs = s3s_fs::FileSystem::new(&root).unwrap();
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let service = service.clone();
        connections.spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Every object file under the bucket, as (key, decompressed lines).
fn objects(bucket_dir: &Path) -> Vec<(String, Vec<serde_json::Value>)> {
    let mut out = Vec::new();
    let mut stack = vec![bucket_dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".ndjson.gz") {
                let key = p.strip_prefix(bucket_dir).unwrap().to_string_lossy().into_owned();
                let mut text = String::new();
                flate2::read::GzDecoder::new(std::fs::File::open(&p).unwrap())
                    .read_to_string(&mut text)
                    .unwrap();
                let lines = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
                out.push((key, lines));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The node's metrics once its `lake` sink has retried at least once (20 s at most).
async fn metrics_after_a_retry(p: &Process) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = p.metrics().await;
        if metric(&m, "clickstream_sink_retries_total{sink=\"lake\"}") >= 1 {
            return m;
        }
        assert!(tokio::time::Instant::now() < deadline, "the sink never retried: {m}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_land_under_hourly_keys_and_survive_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("clicks-bucket")).unwrap();
    let mut s3 = S3Server::start(&root).await;
    std::fs::write(
        dir.path().join("links.csv"),
        "id,domain,slashtag,destination,workspace_id\nl1,brand.link,a,https://shop.example.com/a?x=1,w1\n",
    )
    .unwrap();
    let extra = format!(
        "node_id = \"edge-7\"\n[[sink]]\ntype = \"s3\"\nname = \"lake\"\nbucket = \"clicks-bucket\"\nprefix = \"events/v1\"\nregion = \"eu-west-1\"\nendpoint = \"http://{}\"\nbatch_max_age = \"200ms\"\nretry_initial = \"50ms\"\nretry_max = \"300ms\"\n",
        s3.addr
    );
    let config = dir.path().join("c.toml");
    std::fs::write(&config, common::config_text(dir.path(), &extra)).unwrap();
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let p = Process::start(dir.path(), &config, &env);
    let c = client();
    let click = |c: reqwest::Client| {
        let url = format!("http://{}/a?utm_source=test", p.addr);
        async move {
            let r = c.get(url).header("host", "brand.link").send().await.unwrap();
            assert_eq!(r.status(), 301);
        }
    };
    for _ in 0..20 {
        click(c.clone()).await;
    }
    let bucket = root.join("clicks-bucket");
    let got = common::wait_for(Duration::from_secs(20), || {
        let objs = objects(&bucket);
        (objs.iter().map(|(_, l)| l.len()).sum::<usize>() >= 20).then_some(objs)
    })
    .await
    .expect("20 events in S3");

    let spool_id = std::fs::read_to_string(dir.path().join("spool/spool.id")).unwrap();
    let spool_id = spool_id.trim();
    for (key, lines) in &got {
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts[0..2], ["events", "v1"], "{key}");
        assert!(parts[2].starts_with("dt=") && parts[2].len() == 13, "{key}");
        assert!(parts[3].starts_with("hour=") && parts[3].len() == 7, "{key}");
        let name = parts[4];
        assert!(name.starts_with(&format!("edge-7-{spool_id}-")), "{key}");
        let seqs: Vec<u64> = name
            .trim_end_matches(".ndjson.gz")
            .rsplitn(3, '-')
            .take(2)
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            seqs[1] as usize + lines.len() - 1,
            seqs[0] as usize,
            "{key}: bounds match the events"
        );
        let ts = lines[0]["timestamp"].as_str().unwrap();
        assert_eq!(&parts[2][3..], &ts[..10], "{key}: partition is the click date");
        assert_eq!(&parts[3][5..], &ts[11..13], "{key}: partition is the click hour");
        assert_eq!(
            lines[0]["route"]["destination"]["raw"],
            "https://shop.example.com/a?x=1&utm_source=test"
        );
    }

    // The store goes down; clicks keep coming; it comes back: all arrive.
    s3.stop();
    for _ in 0..30 {
        click(c.clone()).await;
    }
    metrics_after_a_retry(&p).await;
    s3.resume().await;
    let all = common::wait_for(Duration::from_secs(20), || {
        let objs = objects(&bucket);
        (objs.iter().map(|(_, l)| l.len()).sum::<usize>() >= 50).then_some(objs)
    })
    .await
    .expect("50 events in S3 after the outage");
    let ids: HashSet<String> = all
        .iter()
        .flat_map(|(_, l)| l.iter().map(|e| e["id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(ids.len(), 50);
    assert_eq!(
        metric(&p.metrics().await, "clickstream_sink_delivered_total{sink=\"lake\"}"),
        50
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_credentials_are_retried_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("lake")).unwrap();
    let s3 = S3Server::start(&root).await;
    std::fs::write(
        dir.path().join("links.csv"),
        "id,domain,slashtag,destination\nl1,brand.link,a,https://shop.example.com/a\n",
    )
    .unwrap();
    let extra = format!(
        "[[sink]]\ntype = \"s3\"\nname = \"lake\"\nbucket = \"lake\"\nendpoint = \"http://{}\"\nbatch_max_age = \"100ms\"\nretry_initial = \"50ms\"\nretry_max = \"200ms\"\n",
        s3.addr
    );
    let config = dir.path().join("c.toml");
    std::fs::write(&config, common::config_text(dir.path(), &extra)).unwrap();
    let env = |secret: &'static str| {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
    };
    // A wrong secret: every upload is denied, and retried.
    let mut p = Process::start(dir.path(), &config, &env("not-the-secret"));
    for _ in 0..5 {
        let r = client()
            .get(format!("http://{}/a", p.addr))
            .header("host", "brand.link")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 301);
    }
    let m = metrics_after_a_retry(&p).await;
    assert_eq!(metric(&m, "clickstream_sink_delivered_total{sink=\"lake\"}"), 0, "{m}");
    assert!(objects(&root.join("lake")).is_empty());
    p.signal("TERM");
    assert_eq!(p.wait(Duration::from_secs(20)), Some(0));
    drop(p);
    // The operator fixes the credentials and restarts: the spooled events go out.
    let _p = Process::start(dir.path(), &config, &env(SECRET_KEY));
    let got = common::wait_for(Duration::from_secs(20), || {
        let objs = objects(&root.join("lake"));
        (objs.iter().map(|(_, l)| l.len()).sum::<usize>() >= 5).then_some(objs)
    })
    .await;
    assert!(got.is_some(), "events delivered once the credentials are right");
}
