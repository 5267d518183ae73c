//! The TLS listener: certificates chosen by SNI, HTTP/2 and HTTP/1.1 by ALPN, certificate
//! reload without dropping open connections, refusal of broken files, and the plain listener's
//! 308 to https and ACME challenge files.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LINKS: &str = "id,domain,slashtag,destination
la,a.test,x,https://dest-a.example/
lb,b.test,x,https://dest-b.example/
ld,default.test,x,https://dest-default.example/
";

struct Cert {
    pem: String,
    key: String,
    der: Vec<u8>,
}

fn cert(names: &[&str]) -> Cert {
    let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let c = params.self_signed(&key).unwrap();
    Cert {
        pem: c.pem(),
        key: key.serialize_pem(),
        der: c.der().to_vec(),
    }
}

fn write(dir: &std::path::Path, name: &str, c: &Cert) {
    std::fs::write(dir.join(format!("{name}.crt")), &c.pem).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), &c.key).unwrap();
}

struct Setup {
    t: common::TestNode,
    tls: SocketAddr,
    certs: std::path::PathBuf,
    roots: Vec<Cert>,
}

async fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let (a, b, d) = (
        cert(&["a.test"]),
        cert(&["b.test"]),
        cert(&["default.test", "unknown.test"]),
    );
    write(&certs, "a.test", &a);
    write(&certs, "b.test", &b);
    write(&certs, "default.test", &d);
    let config = format!(
        "tls_listen = \"127.0.0.1:0\"\n{extra}\n[tls]\ndir = \"{}\"\ndefault_domain = \"default.test\"\n",
        certs.display()
    );
    let t = common::start_in(dir, LINKS, &config).await;
    let tls = t.node.tls_addr.expect("TLS listener");
    Setup {
        t,
        tls,
        certs,
        roots: vec![a, b, d],
    }
}

fn client_config(roots: &[Cert], alpn: &[&str]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for c in roots {
        store
            .add(rustls::pki_types::CertificateDer::from(c.der.clone()))
            .unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

async fn connect(
    addr: SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap()
}

fn served_cert(s: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// Sends one HTTP/1.1 request on an open connection and returns the response head.
async fn request(s: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>, host: &str, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0; 4096];
    let mut have = 0;
    loop {
        let n = s.read(&mut buf[have..]).await.unwrap();
        assert!(n > 0);
        have += n;
        if let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            return String::from_utf8_lossy(&buf[..end]).into_owned();
        }
    }
}

#[tokio::test]
async fn each_domain_gets_its_own_certificate_and_redirect() {
    let s = setup("").await;
    let cfg = client_config(&s.roots, &["http/1.1"]);
    for (sni, cert, dest) in [
        ("a.test", &s.roots[0], "https://dest-a.example/"),
        ("b.test", &s.roots[1], "https://dest-b.example/"),
    ] {
        let mut conn = connect(s.tls, sni, cfg.clone()).await;
        assert_eq!(served_cert(&conn), cert.der, "{sni}");
        let head = request(&mut conn, sni, "/x").await;
        assert!(head.starts_with("HTTP/1.1 301"), "{head}");
        assert!(head.contains(&format!("location: {dest}")), "{head}");
    }
    // An unknown name gets the default certificate (which here also covers it).
    let conn = connect(s.tls, "unknown.test", cfg.clone()).await;
    assert_eq!(served_cert(&conn), s.roots[2].der);
}

#[tokio::test]
async fn an_http1_head_over_tls_must_arrive_in_time() {
    let s = setup("header_read_timeout = \"300ms\"\nidle_timeout = \"10s\"").await;
    let mut conn = connect(s.tls, "a.test", client_config(&s.roots, &["http/1.1"])).await;
    let head = request(&mut conn, "a.test", "/x").await;
    assert!(head.starts_with("HTTP/1.1 301"), "{head}");
    // The next request never completes: the connection is closed, well before idle_timeout.
    conn.write_all(b"GET /x HTTP/1.1\r\nHost: a.te").await.unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), conn.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the server must close the connection");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn http2_and_http1_both_redirect() {
    let s = setup("").await;
    for http1 in [false, true] {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .add_root_certificate(reqwest::Certificate::from_pem(s.roots[0].pem.as_bytes()).unwrap())
            .resolve("a.test", s.tls);
        if http1 {
            b = b.http1_only();
        }
        let r = b
            .build()
            .unwrap()
            .get(format!("https://a.test:{}/x?ref=tls", s.tls.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 301);
        assert_eq!(r.headers()["location"], "https://dest-a.example/?ref=tls");
        let want = if http1 {
            reqwest::Version::HTTP_11
        } else {
            reqwest::Version::HTTP_2
        };
        assert_eq!(r.version(), want);
    }
    // The clicks are the same events as over plain HTTP.
    let events = s.t.wait_for_events(2).await;
    assert!(events.iter().all(|e| e["route"]["domain"]["raw"] == "a.test"));
}

#[tokio::test]
async fn a_replaced_certificate_is_served_after_reload_and_open_connections_survive() {
    let s = setup("").await;
    let new_a = cert(&["a.test"]);
    let mut roots: Vec<Cert> = s
        .roots
        .iter()
        .map(|c| Cert {
            pem: c.pem.clone(),
            key: c.key.clone(),
            der: c.der.clone(),
        })
        .collect();
    roots.push(Cert {
        pem: new_a.pem.clone(),
        key: new_a.key.clone(),
        der: new_a.der.clone(),
    });
    let cfg = client_config(&roots, &["http/1.1"]);
    let mut old = connect(s.tls, "a.test", cfg.clone()).await;
    assert_eq!(served_cert(&old), s.roots[0].der);

    // A broken key is refused; the current certificate stays.
    std::fs::write(
        s.certs.join("a.test.key"),
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = s.t.node.reload_certificates().await.unwrap().unwrap_err().join("\n");
    assert!(err.contains("a.test.key"), "{err}");
    assert_eq!(
        served_cert(&connect(s.tls, "a.test", cfg.clone()).await),
        s.roots[0].der
    );

    // A valid replacement is picked up by the file watcher.
    write(&s.certs, "a.test", &new_a);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if served_cert(&connect(s.tls, "a.test", cfg.clone()).await) == new_a.der {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "new certificate never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The connection opened before the reload still answers.
    let head = request(&mut old, "a.test", "/x").await;
    assert!(head.starts_with("HTTP/1.1 301"), "{head}");
}

#[tokio::test]
async fn a_broken_key_file_stops_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let a = cert(&["a.test"]);
    write(&certs, "a.test", &a);
    std::fs::write(certs.join("a.test.key"), "garbage").unwrap();
    std::fs::write(dir.path().join("links.csv"), LINKS).unwrap();
    let text = common::config_text(
        dir.path(),
        &format!("tls_listen = \"127.0.0.1:0\"\n[tls]\ndir = \"{}\"\n", certs.display()),
    );
    let config = clickstream::config::Config::from_toml_str(&text, "t.toml").unwrap();
    let err = match clickstream::app::Node::start(config).await {
        Ok(_) => panic!("must not start with a broken key"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("a.test.key"), "{err}");
}

#[tokio::test]
async fn plain_http_redirects_to_https_but_serves_acme_challenges() {
    let acme = tempfile::tempdir().unwrap();
    std::fs::write(acme.path().join("tok-EN_123"), "tok-EN_123.thumbprint").unwrap();
    let s = setup(&format!(
        "acme_challenge_dir = \"{}\"\n[[domain]]\nname = \"a.test\"\nhttps_only = true\n",
        acme.path().display()
    ))
    .await;
    let c = common::client();
    let r = c
        .get(s.t.url("/x?utm_source=mail"))
        .header("host", "a.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "https://a.test/x?utm_source=mail");
    // b.test is not https_only: plain HTTP still redirects to the destination.
    let r = c.get(s.t.url("/x")).header("host", "b.test").send().await.unwrap();
    assert_eq!(r.status(), 301);
    let r = c
        .get(s.t.url("/.well-known/acme-challenge/tok-EN_123"))
        .header("host", "a.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "tok-EN_123.thumbprint");
    for path in [
        "/.well-known/acme-challenge/missing",
        "/.well-known/acme-challenge/..%2Fetc",
    ] {
        let r = c.get(s.t.url(path)).header("host", "a.test").send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let m = s.t.metrics().await;
    assert_eq!(
        common::metric(&m, "clickstream_responses_total{kind=\"https_redirect\"}"),
        1
    );
    assert_eq!(
        common::metric(&m, "clickstream_responses_total{kind=\"acme_challenge\"}"),
        1
    );
}

#[tokio::test]
async fn shutdown_closes_idle_tls_connections_without_waiting_out_the_grace_period() {
    // Timeouts far beyond the 5 s grace: only the shutdown itself can close these connections
    // early.
    let s = setup("header_read_timeout = \"60s\"\nidle_timeout = \"60s\"").await;
    let mut h1 = connect(s.tls, "a.test", client_config(&s.roots, &["http/1.1"])).await;
    assert!(request(&mut h1, "a.test", "/x").await.starts_with("HTTP/1.1 301"));
    let h2 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(s.roots[0].pem.as_bytes()).unwrap())
        .resolve("a.test", s.tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = h2
        .get(format!("https://a.test:{}/x", s.tls.port()))
        .send()
        .await
        .unwrap();
    assert_eq!((r.status().as_u16(), r.version()), (301, reqwest::Version::HTTP_2));

    let started = std::time::Instant::now();
    s.t.node.shutdown().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "shutdown took {took:?}, the grace period is 5 s"
    );
    // The idle HTTP/1.1 connection was closed by the server.
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), h1.read(&mut buf))
        .await
        .expect("the connection is closed, not left open")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

/// Sends raw bytes on an open connection and returns the response head.
async fn exchange(s: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>, request: &str) -> String {
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0; 4096];
    let mut have = 0;
    loop {
        let n = s.read(&mut buf[have..]).await.unwrap();
        assert!(n > 0, "closed without an answer to {request:?}");
        have += n;
        if let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            return String::from_utf8_lossy(&buf[..end]).into_owned();
        }
    }
}

#[tokio::test]
async fn host_is_checked_over_tls_http1_too() {
    let s = setup("").await;
    let cfg = client_config(&s.roots, &["http/1.1"]);
    // RFC 9112 §3.2: several Host fields, or an invalid one, are a 400 (hyper keeps them all).
    for host_fields in [
        "Host: a.test\r\nHost: a.test\r\n",
        "Host: a.test\r\nHost: b.test\r\n",
        "Host: a.test/x\r\n",
        "Host: a@b.test\r\n",
        "Host: [a.test]garbage\r\n",
    ] {
        let mut conn = connect(s.tls, "a.test", cfg.clone()).await;
        let head = exchange(&mut conn, &format!("GET /x HTTP/1.1\r\n{host_fields}\r\n")).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{host_fields:?}: {head}");
    }
    // One trailing dot is removed before routing: `a.test.` is a.test, not an unknown host.
    let mut conn = connect(s.tls, "a.test", cfg.clone()).await;
    let head = exchange(&mut conn, "GET /x HTTP/1.1\r\nHost: a.test.\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 301"), "{head}");
    assert!(head.contains("location: https://dest-a.example/"), "{head}");
}
