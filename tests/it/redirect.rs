//! The hit path through the real server: statuses, headers, query merging, host routing,
//! 404/405/400, robots, hostile requests, and reload while requests are running.

use crate::common;

use std::time::Duration;

use common::{client, raw, start};

const LINKS: &str = "id,domain,slashtag,destination,status,creator_id,workspace_id,workspace_name,domain_id
l1,brand.link,spring-sale,https://shop.example.com/spring?utm_source=x&utm_medium=y,,c1,w1,Brand,d1
l2,brand.link,temp,https://shop.example.com/temp,302,c1,w1,Brand,d1
l3,brand.link,Promo,https://shop.example.com/promo#top,307,c1,w1,Brand,d1
l4,brand.link,caf\u{e9},https://shop.example.com/cafe,,c1,w1,Brand,d1
l5,go.other.test,spring-sale,https://other.example.com/,,c2,w2,Other,d2
l6,go.other.test,perm,https://other.example.com/perm,308,c2,w2,Other,d2
l7,quiet.test,x,https://quiet.example.com/x?a=1,,c3,w3,Quiet,d3
";

const DOMAINS: &str = r#"
[[domain]]
name = "go.other.test"
not_found_url = "https://other.example.com/missing"
root_url = "https://other.example.com/home"
robots_txt = "User-agent: *\nAllow: /\n"
status = 302
[[domain]]
name = "quiet.test"
forward_query = false
cache_control = "public, max-age=5"
case_insensitive = false
"#;

async fn get(url: &str, host: &str) -> reqwest::Response {
    client().get(url).header("host", host).send().await.unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn statuses_locations_and_cache_control() {
    let t = start(LINKS, DOMAINS).await;
    // (host, path, status, location, cache-control)
    let cases = [
        (
            "brand.link",
            "/spring-sale",
            301,
            "https://shop.example.com/spring?utm_source=x&utm_medium=y",
            "private, max-age=90",
        ),
        ("brand.link", "/temp", 302, "https://shop.example.com/temp", "no-store"),
        (
            "brand.link",
            "/Promo",
            307,
            "https://shop.example.com/promo#top",
            "no-store",
        ),
        (
            "BRAND.LINK:8080",
            "/spring-sale",
            301,
            "https://shop.example.com/spring?utm_source=x&utm_medium=y",
            "private, max-age=90",
        ),
        // Link without a status on a domain with `status = 302`.
        (
            "go.other.test",
            "/spring-sale",
            302,
            "https://other.example.com/",
            "no-store",
        ),
        (
            "go.other.test",
            "/perm",
            308,
            "https://other.example.com/perm",
            "private, max-age=90",
        ),
        (
            "quiet.test",
            "/x",
            301,
            "https://quiet.example.com/x?a=1",
            "public, max-age=5",
        ),
        // Percent-decoded slashtag.
        (
            "brand.link",
            "/caf%C3%A9",
            301,
            "https://shop.example.com/cafe",
            "private, max-age=90",
        ),
        // Case-insensitive fallback (on by default), off for quiet.test.
        (
            "brand.link",
            "/SPRING-SALE",
            301,
            "https://shop.example.com/spring?utm_source=x&utm_medium=y",
            "private, max-age=90",
        ),
        (
            "brand.link",
            "/promo",
            307,
            "https://shop.example.com/promo#top",
            "no-store",
        ),
        // Unknown host: the default domain (brand.link).
        (
            "unknown.example",
            "/temp",
            302,
            "https://shop.example.com/temp",
            "no-store",
        ),
        // Misses and roots with configured fallbacks.
        (
            "go.other.test",
            "/nope",
            302,
            "https://other.example.com/missing",
            "no-store",
        ),
        ("go.other.test", "/", 302, "https://other.example.com/home", "no-store"),
    ];
    for (host, path, status, location, cc) in cases {
        let r = get(&t.url(path), host).await;
        assert_eq!(r.status().as_u16(), status, "{host}{path}");
        assert_eq!(header(&r, "location"), location, "{host}{path}");
        assert_eq!(header(&r, "cache-control"), cc, "{host}{path}");
    }
    let r = get(&t.url("/X"), "quiet.test").await;
    assert_eq!(r.status(), 404, "case-insensitive fallback is off for quiet.test");
}

#[tokio::test]
async fn query_parameters_are_merged_in_place() {
    let t = start(LINKS, DOMAINS).await;
    let cases = [
        (
            "/spring-sale?utm_medium=z&ref=abc",
            "brand.link",
            "https://shop.example.com/spring?utm_source=x&utm_medium=z&ref=abc",
        ),
        (
            "/spring-sale?utm_source=a&utm_source=b",
            "brand.link",
            "https://shop.example.com/spring?utm_source=a&utm_source=b&utm_medium=y",
        ),
        ("/Promo?x=1", "brand.link", "https://shop.example.com/promo?x=1#top"),
        ("/temp?", "brand.link", "https://shop.example.com/temp"),
        // forward_query = false
        ("/x?a=2&b=3", "quiet.test", "https://quiet.example.com/x?a=1"),
    ];
    for (path, host, want) in cases {
        let r = get(&t.url(path), host).await;
        assert_eq!(header(&r, "location"), want, "{host}{path}");
    }
}

#[tokio::test]
async fn destinations_are_sent_normalised_and_ambiguous_ones_refused() {
    let links = "id,domain,slashtag,destination\n\
                 n1,brand.link,norm,HTTPS://Shop.EXAMPLE.com:443/caf\u{e9}?q=\u{e9}#Top\n";
    let t = start(links, "").await;
    let r = get(&t.url("/norm"), "brand.link").await;
    assert_eq!(
        header(&r, "location"),
        "https://shop.example.com/caf%C3%A9?q=%C3%A9#Top"
    );
    let r = get(&t.url("/norm?x=1"), "brand.link").await;
    assert_eq!(
        header(&r, "location"),
        "https://shop.example.com/caf%C3%A9?q=%C3%A9&x=1#Top"
    );
    let event = &t.wait_for_events(2).await[0];
    assert_eq!(
        event["route"]["destination"]["raw"],
        "https://shop.example.com/caf%C3%A9?q=%C3%A9#Top"
    );

    // A destination URL readers disagree on is refused at start, with its line.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("links.csv"),
        "id,domain,slashtag,destination\nb1,brand.link,x,https://good.example\\@evil.example/\n",
    )
    .unwrap();
    let text = common::config_text(dir.path(), "");
    let config = clickstream::config::Config::from_toml_str(&text, "t.toml").unwrap();
    let err = match clickstream::app::Node::start(config).await {
        Ok(_) => panic!("must not start with an ambiguous destination"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("links.csv:2: destination"), "{err}");
    assert!(err.contains("backslash"), "{err}");
}

#[tokio::test]
async fn misses_robots_methods_and_bad_requests() {
    let t = start(LINKS, &format!("default_domain = \"\"\n{DOMAINS}")).await;
    let c = client();
    let r = get(&t.url("/nope"), "brand.link").await;
    assert_eq!(r.status(), 404);
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert!(r.text().await.unwrap().contains("Link not found"));
    assert_eq!(get(&t.url("/"), "brand.link").await.status(), 404);
    // Without a default domain, unknown hosts are 404.
    assert_eq!(get(&t.url("/temp"), "unknown.example").await.status(), 404);

    let r = get(&t.url("/robots.txt"), "brand.link").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "User-agent: *\nDisallow: /\n");
    let r = get(&t.url("/robots.txt"), "go.other.test").await;
    assert_eq!(r.text().await.unwrap(), "User-agent: *\nAllow: /\n");

    let r = c
        .head(t.url("/temp"))
        .header("host", "brand.link")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(header(&r, "location"), "https://shop.example.com/temp");
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let r = c
            .request(method.parse().unwrap(), t.url("/temp"))
            .header("host", "brand.link")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method}");
        assert_eq!(header(&r, "allow"), "GET, HEAD", "{method}");
    }

    // No Host at all (HTTP/1.0 allows it): 400.
    let answer = raw(t.node.addr, b"GET /temp HTTP/1.0\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.0 400") || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    // A slashtag that is not UTF-8 once decoded: 400.
    let answer = raw(
        t.node.addr,
        b"GET /%FF%FE HTTP/1.1\r\nHost: brand.link\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // Garbage instead of a request line: 400 and the connection closes.
    let answer = raw(t.node.addr, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").await;
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 400"), "{answer}");
    // An absurd path is just a miss.
    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: brand.link\r\nConnection: close\r\n\r\n",
        "a".repeat(6000)
    );
    assert!(raw(t.node.addr, long.as_bytes()).await.starts_with("HTTP/1.1 404"));
    // A head larger than max_header_bytes: 431.
    let huge = format!(
        "GET /temp HTTP/1.1\r\nHost: brand.link\r\nX-Big: {}\r\n\r\n",
        "b".repeat(40_000)
    );
    let answer = raw(t.node.addr, huge.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    let m = t.metrics().await;
    assert_eq!(common::metric(&m, "clickstream_responses_total{kind=\"not_found\"}"), 4);
    assert_eq!(common::metric(&m, "clickstream_responses_total{kind=\"robots\"}"), 2);
    assert_eq!(
        common::metric(&m, "clickstream_responses_total{kind=\"method_not_allowed\"}"),
        5
    );
    assert_eq!(
        common::metric(&m, "clickstream_responses_total{kind=\"bad_request\"}"),
        2
    );
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = start(LINKS, "header_read_timeout = \"300ms\"\nidle_timeout = \"5s\"").await;
    let mut s = tokio::net::TcpStream::connect(t.node.addr).await.unwrap();
    s.write_all(b"GET /temp HTTP/1.1\r\nHost: bra").await.unwrap();
    let mut buf = Vec::new();
    let started = std::time::Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(n.is_ok(), "connection must be closed by the server");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn a_head_dribbled_byte_by_byte_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Every byte resets the idle timer, so only the head timer can close this connection.
    let t = start(LINKS, "header_read_timeout = \"300ms\"\nidle_timeout = \"5s\"").await;
    let s = tokio::net::TcpStream::connect(t.node.addr).await.unwrap();
    let (mut read, mut write) = s.into_split();
    let started = std::time::Instant::now();
    let dribble = tokio::spawn(async move {
        for b in b"GET /temp HTTP/1.1\r\nHost: brand.link\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if write.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut buf)).await;
    assert!(n.is_ok(), "connection must be closed by the server");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(buf.is_empty(), "no response to an incomplete head");
    dribble.abort();
}

#[tokio::test]
async fn a_keep_alive_connection_has_header_read_timeout_for_its_next_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = start(LINKS, "header_read_timeout = \"400ms\"\nidle_timeout = \"10s\"").await;
    let mut s = tokio::net::TcpStream::connect(t.node.addr).await.unwrap();
    for _ in 0..3 {
        // Requests closer together than the limit keep the connection.
        s.write_all(b"GET /temp HTTP/1.1\r\nHost: brand.link\r\n\r\n")
            .await
            .unwrap();
        let answer = read_response(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 302"), "{answer}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(n.is_ok(), "an idle keep-alive connection must be closed by the server");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

/// One whole response (head and `Content-Length` body) from a kept-alive connection.
async fn read_response(s: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .map_or(0, |n| n.trim().parse::<usize>().unwrap());
            if buf.len() >= end + 4 + length {
                return text;
            }
        }
        let mut chunk = [0u8; 1024];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-response: {text}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn pipelined_requests_bodies_and_http10_on_one_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = start(LINKS, "").await;
    let mut s = tokio::net::TcpStream::connect(t.node.addr).await.unwrap();
    // Two requests in one write, the first with a body to skip, split across two writes.
    s.write_all(b"POST /temp HTTP/1.1\r\nHost: brand.link\r\nContent-Length: 11\r\n\r\nhello")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(b" worldGET /temp HTTP/1.1\r\nHost: brand.link\r\n\r\nHEAD /temp HTTP/1.1\r\nHost: brand.link\r\n\r\n")
        .await
        .unwrap();
    let first = read_response(&mut s).await;
    assert!(first.starts_with("HTTP/1.1 405"), "{first}");
    assert!(first.contains("\r\nallow: GET, HEAD\r\n"), "{first}");
    let mut rest = first[first.find("\r\n\r\n").unwrap() + 4..].to_string();
    rest = rest[rest.find("HTTP/1.1").unwrap_or(rest.len())..].to_string();
    let mut more = rest.into_bytes();
    while more.windows(4).filter(|w| w == b"\r\n\r\n").count() < 2 {
        let mut chunk = [0u8; 1024];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        more.extend_from_slice(&chunk[..n]);
    }
    let more = String::from_utf8(more).unwrap();
    let heads: Vec<&str> = more.split("\r\n\r\n").take(2).collect();
    for head in &heads {
        assert!(head.starts_with("HTTP/1.1 302 Found\r\n"), "{more}");
        assert!(
            head.contains("\r\nlocation: https://shop.example.com/temp\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\ndate: "), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
    }

    // HTTP/1.0 keeps the connection only when asked to.
    let mut s = tokio::net::TcpStream::connect(t.node.addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(b"GET /temp HTTP/1.0\r\nHost: brand.link\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let answer = read_response(&mut s).await;
        assert!(answer.contains("\r\nconnection: keep-alive\r\n"), "{answer}");
    }

    // A chunked body is not read: the answer closes the connection.
    let answer = common::raw(
        t.node.addr,
        b"POST /temp HTTP/1.1\r\nHost: brand.link\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    // Conflicting lengths: 400, closed.
    let answer = common::raw(
        t.node.addr,
        b"POST /temp HTTP/1.1\r\nHost: brand.link\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // An absolute-form target names the host; a fragment is not part of the path.
    let answer = common::raw(
        t.node.addr,
        b"GET http://brand.link/temp HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 302"), "{answer}");
    let answer = common::raw(
        t.node.addr,
        b"GET /temp#x?y HTTP/1.1\r\nHost: brand.link\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.contains("\r\nlocation: https://shop.example.com/temp\r\n"),
        "{answer}"
    );
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_idle_timeout() {
    use tokio::io::AsyncReadExt;
    let t = start(LINKS, "header_read_timeout = \"10s\"\nidle_timeout = \"300ms\"").await;
    let mut s = tokio::net::TcpStream::connect(t.node.addr).await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(n.is_ok(), "an idle connection must be closed by the server");
}

#[tokio::test]
async fn connection_limit_holds_new_connections_back() {
    use tokio::io::AsyncWriteExt;
    let t = start(LINKS, "max_connections = 1").await;
    // The first connection holds the only permit.
    let mut first = tokio::net::TcpStream::connect(t.node.addr).await.unwrap();
    first
        .write_all(b"GET /temp HTTP/1.1\r\nHost: brand.link\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut first).await;
    assert!(answer.starts_with("HTTP/1.1 302"), "{answer}");
    // The second is accepted by the kernel but not served while the first is open.
    let second = tokio::spawn(raw(
        t.node.addr,
        b"GET /temp HTTP/1.1\r\nHost: brand.link\r\nConnection: close\r\n\r\n",
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "second connection must wait for a permit");
    drop(first);
    let answer = second.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 302"), "{answer}");
}

#[tokio::test]
async fn reload_under_load_never_shows_a_half_table() {
    let t = start(LINKS, "").await;
    let links_path = t.path("links.csv");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let url = t.url("/spring-sale");
        let (stop, done) = (stop.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let c = client();
            let mut seen = std::collections::BTreeMap::<String, u32>::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = c.get(&url).header("host", "brand.link").send().await.unwrap();
                assert_eq!(r.status(), 301);
                *seen.entry(header(&r, "location")).or_default() += 1;
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            seen
        }));
    }
    // Waits until `n` more requests were answered than `from` (each worker has at most one in
    // flight, so after 4 + 4 of them some started after the call).
    let answered_past = |from: usize, n: usize| {
        let done = done.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while done.load(std::sync::atomic::Ordering::Relaxed) < from + n {
                assert!(tokio::time::Instant::now() < deadline, "the load stalled");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    answered_past(0, 4).await;
    // A valid new table, written aside and renamed over the old one: picked up by the watcher.
    let new = LINKS.replace("https://shop.example.com/spring?", "https://shop.example.com/v2?");
    let tmp = t.path("links.csv.new");
    std::fs::write(&tmp, &new).unwrap();
    std::fs::rename(&tmp, &links_path).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while common::metric(&t.metrics().await, "clickstream_reloads_total{result=\"ok\"}") < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "file change must trigger a reload"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    answered_past(done.load(std::sync::atomic::Ordering::Relaxed), 8).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut all = std::collections::BTreeMap::<String, u32>::new();
    for w in workers {
        for (k, v) in w.await.unwrap() {
            *all.entry(k).or_default() += v;
        }
    }
    let keys: Vec<&String> = all.keys().collect();
    assert_eq!(
        keys,
        vec![
            "https://shop.example.com/spring?utm_source=x&utm_medium=y",
            "https://shop.example.com/v2?utm_source=x&utm_medium=y"
        ],
        "only the old and the new destination, never anything else"
    );

    // A table with errors keeps the current one.
    std::fs::write(
        &links_path,
        "id,domain,slashtag,destination\nz,brand.link,spring-sale,htp://broken\n",
    )
    .unwrap();
    let err = t.node.reload(false).await.unwrap_err().to_string();
    assert!(err.contains("links.csv:2: destination 'htp://broken'"), "{err}");
    let r = get(&t.url("/spring-sale"), "brand.link").await;
    assert_eq!(
        header(&r, "location"),
        "https://shop.example.com/v2?utm_source=x&utm_medium=y"
    );

    // A valid table that drops most links is refused, unless forced.
    std::fs::write(
        &links_path,
        "id,domain,slashtag,destination\nz,brand.link,only,https://e.example/\n",
    )
    .unwrap();
    let err = t.node.reload(false).await.unwrap_err().to_string();
    assert!(err.contains("would drop 86%"), "{err}");
    assert_eq!(get(&t.url("/temp"), "brand.link").await.status(), 302);
    let summary = t.node.reload(true).await.unwrap();
    assert_eq!((summary.previous, summary.links), (7, 1));
    assert_eq!(get(&t.url("/temp"), "brand.link").await.status(), 404);
    assert_eq!(get(&t.url("/only"), "brand.link").await.status(), 301);
}

#[tokio::test]
async fn prefetches_are_answered_but_not_clicks() {
    let t = start(LINKS, "").await;
    let c = client();
    let r = c
        .get(t.url("/temp"))
        .header("host", "brand.link")
        .header("sec-purpose", "prefetch")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let r = c.get(t.url("/temp")).header("host", "brand.link").send().await.unwrap();
    assert_eq!(r.status(), 302);
    let events = t.wait_for_events(1).await;
    // Both answers are in, and the hit path counts before it answers: two redirects, one of them
    // a prefetch, so one hit went to the pipeline, which has spooled exactly that one.
    let m = t.metrics().await;
    assert_eq!(common::metric(&m, "clickstream_redirects_total{status=\"302\"}"), 2);
    t.wait_for_metric("clickstream_spool_durable_sequence", 1).await;
    assert_eq!(t.file_events().len(), 1, "{events:?}");
    assert_eq!(common::metric(&m, "clickstream_responses_total{kind=\"prefetch\"}"), 1);
}

#[tokio::test]
async fn many_connections_opened_at_once_are_all_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // More than the serving threads' slack: opened from one task, their handshakes mostly come in
    // on one CPU, and some are then handed to another thread. Every one must be answered, twice
    // (keep-alive), whichever thread serves it.
    let t = start(LINKS, "").await;
    let mut streams = Vec::new();
    for _ in 0..100 {
        streams.push(tokio::net::TcpStream::connect(t.node.addr).await.unwrap());
    }
    for round in 0..2 {
        for s in &mut streams {
            s.write_all(b"GET /spring-sale HTTP/1.1\r\nHost: brand.link\r\n\r\n")
                .await
                .unwrap();
        }
        for s in &mut streams {
            let mut answer = Vec::new();
            let mut buf = [0u8; 1024];
            while !answer.ends_with(b"\r\n\r\n") {
                let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                    .await
                    .expect("an answer within 5 s")
                    .unwrap();
                assert!(n > 0, "connection closed in round {round}");
                answer.extend_from_slice(&buf[..n]);
            }
            let answer = String::from_utf8_lossy(&answer);
            assert!(answer.starts_with("HTTP/1.1 301"), "{answer}");
        }
    }
}

/// Sends `request` on a new connection and returns everything answered; fails unless the
/// server closes the connection within 5 s.
async fn answered_then_closed(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(closed.is_ok(), "the server must close the connection: {text}");
    text
}

/// How many responses a raw answer holds.
fn responses(text: &str) -> usize {
    text.matches("HTTP/1.1 ").count()
}

#[tokio::test]
async fn host_must_be_sent_once_and_well_formed() {
    let t = start(LINKS, DOMAINS).await;
    // RFC 9112 §3.2: more than one Host field, or an invalid one, is a 400. The answer closes the
    // connection (as nginx does), so the request pipelined behind it is not answered.
    let next = "GET /temp HTTP/1.1\r\nHost: brand.link\r\n\r\n";
    for host_fields in [
        "Host: brand.link\r\nHost: brand.link\r\n",
        "Host: go.other.test\r\nhost: brand.link\r\n",
        "HOST: brand.link\r\nX-Other: 1\r\nHost: evil.example\r\n",
        "Host: brand.link/x\r\n",
        "Host: a@b\r\n",
        "Host: brand.link@evil.example\r\n",
        "Host: [brand.link]garbage\r\n",
        "Host: [::1]garbage\r\n",
        "Host: [brand.link]\r\n",
        "Host: [::1\r\n",
        "Host: brand.link:80x\r\n",
        "Host: brand.link:80:80\r\n",
        "Host: brand link\r\n",
        "Host: brand.link?x\r\n",
        "Host: brand.link#x\r\n",
        "Host: brand.link\\x\r\n",
        "Host: bad%zzpct\r\n",
        "Host: brand..link\r\n",
        "Host: .\r\n",
        "Host: \r\n",
        "Host: :80\r\n",
        // A missing Host on HTTP/1.1.
        "",
    ] {
        let request = format!("GET /temp HTTP/1.1\r\n{host_fields}\r\n{next}");
        let answer = answered_then_closed(t.node.addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{host_fields:?}: {answer}");
        assert!(
            answer.contains("\r\nconnection: close\r\n"),
            "{host_fields:?}: {answer}"
        );
        assert_eq!(responses(&answer), 1, "{host_fields:?}: {answer}");
    }
    // Valid authorities: a reg-name or IPv4 address with an optional port, or an IPv6 literal.
    for (host, location) in [
        ("brand.link", "https://shop.example.com/temp"),
        ("Brand.Link:8080", "https://shop.example.com/temp"),
        ("brand.link:", "https://shop.example.com/temp"),
        ("127.0.0.1:80", "https://shop.example.com/temp"),
        ("[::1]", "https://shop.example.com/temp"),
        ("[2001:DB8::1]:8080", "https://shop.example.com/temp"),
        ("sub-delims!$&'()*+,;=.test", "https://shop.example.com/temp"),
        ("pct%2Dencoded.test", "https://shop.example.com/temp"),
        ("_under~score.test", "https://shop.example.com/temp"),
        ("go.other.test", "https://other.example.com/missing"),
    ] {
        let request = format!("GET /temp HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let answer = raw(t.node.addr, request.as_bytes()).await;
        assert!(
            answer.contains(&format!("\r\nlocation: {location}\r\n")),
            "{host}: {answer}"
        );
    }
    // The same checks on the TLS listener are in `tls.rs`; the absolute form in
    // `the_absolute_form_target_wins_over_host`.
}

#[tokio::test]
async fn a_trailing_dot_is_removed_before_routing() {
    let t = start(LINKS, DOMAINS).await;
    // `go.other.test.` is go.other.test (a fully qualified name), not an unknown host served as
    // the default domain (brand.link, which has its own `spring-sale`).
    for host in ["go.other.test.", "GO.OTHER.TEST.:8080"] {
        let request = format!("GET /spring-sale HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let answer = raw(t.node.addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 302"), "{host}: {answer}");
        assert!(
            answer.contains("\r\nlocation: https://other.example.com/\r\n"),
            "{host}: {answer}"
        );
    }
    let answer = raw(
        t.node.addr,
        b"GET http://go.other.test./spring-sale HTTP/1.1\r\nHost: go.other.test.\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.contains("\r\nlocation: https://other.example.com/\r\n"),
        "{answer}"
    );
    // The clicks are counted against go.other.test.
    let events = t.wait_for_events(3).await;
    for e in &events {
        assert_eq!(e["route"]["domain"]["raw"], "go.other.test", "{e}");
    }
}

#[tokio::test]
async fn the_absolute_form_target_wins_over_host() {
    let t = start(LINKS, DOMAINS).await;
    // RFC 9112 §3.2.2: the target's host is used, the Host field ignored (but still checked).
    let answer = raw(
        t.node.addr,
        b"GET http://go.other.test/spring-sale HTTP/1.1\r\nHost: brand.link\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 302"), "{answer}");
    assert!(
        answer.contains("\r\nlocation: https://other.example.com/\r\n"),
        "{answer}"
    );
    let answer = answered_then_closed(
        t.node.addr,
        b"GET http://go.other.test/spring-sale HTTP/1.1\r\nHost: go.other.test\r\nHost: brand.link\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = answered_then_closed(
        t.node.addr,
        b"GET http://go.other.test/spring-sale HTTP/1.1\r\nHost: a@b\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

#[tokio::test]
async fn an_https_redirect_names_the_domain_not_the_request_host() {
    // brand.link is the default domain and https_only: any unknown Host is served as brand.link,
    // and the 308 must send the client to brand.link, never back to the name it sent.
    let t = start(
        LINKS,
        "default_domain = \"brand.link\"\n[[domain]]\nname = \"brand.link\"\nhttps_only = true\n",
    )
    .await;
    for host in ["evil.example", "brand.link", "BRAND.LINK.:8080", "127.0.0.1:8080"] {
        let r = get(&t.url("/spring-sale?utm_source=mail"), host).await;
        assert_eq!(r.status(), 308, "{host}");
        assert_eq!(
            header(&r, "location"),
            "https://brand.link/spring-sale?utm_source=mail",
            "{host}"
        );
    }
    // An absolute-form target that names another host is served as brand.link too.
    let answer = raw(
        t.node.addr,
        b"GET http://evil.example/spring-sale HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.contains("\r\nlocation: https://brand.link/spring-sale\r\n"),
        "{answer}"
    );
}

/// The resident set of a process, in bytes.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kb * 1024
}

/// Waits until the counter `name` of a child process stops moving (it moves while the server
/// still answers) and returns its value.
async fn settled(p: &common::process::Process, name: &str) -> u64 {
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = common::metric(&p.metrics().await, name);
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test]
async fn clients_that_never_read_hold_little_memory() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Short heads whose answers are long (a 2 KB root_url): the most answer per byte read. The
    // real binary, so that its resident set is its own (the tests of this binary run in
    // parallel, in one process).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("links.csv"), LINKS).unwrap();
    let root = format!("https://shop.example.com/{}", "r".repeat(2000));
    let extra = format!("[[domain]]\nname = \"brand.link\"\nroot_url = \"{root}\"\n");
    let config = dir.path().join("clickstream.toml");
    std::fs::write(&config, common::config_text(dir.path(), &extra)).unwrap();
    let p = common::process::Process::start(dir.path(), &config, &[]);
    const FALLBACKS: &str = "clickstream_responses_total{kind=\"fallback_redirect\"}";
    let head = b"GET / HTTP/1.1\r\nHost:x\r\n\r\n";
    const CONNECTIONS: usize = 100;

    // Warm up every serving thread with connections that read their answers.
    for _ in 0..2 {
        let mut warm = Vec::new();
        for _ in 0..CONNECTIONS {
            warm.push(tokio::net::TcpStream::connect(p.addr).await.unwrap());
        }
        for s in &mut warm {
            s.write_all(head).await.unwrap();
        }
        for s in &mut warm {
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            while !answer.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0);
                answer.extend_from_slice(&buf[..n]);
            }
        }
    }
    settled(&p, FALLBACKS).await;
    let before = resident_bytes(p.child.id());

    // One 12 KB chunk of pipelined heads on each connection, and no read.
    let chunk = head.repeat(12 * 1024 / head.len());
    let mut silent = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
        s.write_all(&chunk).await.unwrap();
        silent.push(s);
    }
    let answered = settled(&p, FALLBACKS).await;
    let after = resident_bytes(p.child.id());
    let grown = after.saturating_sub(before);
    assert!(
        grown < 10 << 20,
        "{CONNECTIONS} connections that never read grew the server by {} KB ({} answers; {} KB before)",
        grown >> 10,
        answered,
        before >> 10
    );
    drop(silent);
}

#[tokio::test]
async fn pipelined_requests_read_slowly_are_all_answered_in_order() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = start(LINKS, DOMAINS).await;
    const REQUESTS: usize = 5000;
    // Every request names its number in the query, which comes back merged into `location`;
    // every seventh is a HEAD and every eleventh carries a body, to be skipped.
    let mut requests = Vec::new();
    for i in 0..REQUESTS {
        let method = if i % 7 == 3 { "HEAD" } else { "GET" };
        if i % 11 == 5 {
            requests.extend_from_slice(
                format!("{method} /temp?i={i} HTTP/1.1\r\nHost: brand.link\r\nContent-Length: 5\r\n\r\nhello")
                    .as_bytes(),
            );
        } else {
            requests.extend_from_slice(format!("{method} /temp?i={i} HTTP/1.1\r\nHost: brand.link\r\n\r\n").as_bytes());
        }
    }
    requests.extend_from_slice(b"GET /temp?i=last HTTP/1.1\r\nHost: brand.link\r\nConnection: close\r\n\r\n");
    let s = tokio::net::TcpStream::connect(t.node.addr).await.unwrap();
    let (mut read, mut write) = s.into_split();
    // Written in odd-sized pieces, so that heads straddle reads.
    let writer = tokio::spawn(async move {
        for piece in requests.chunks(1337) {
            write.write_all(piece).await.unwrap();
        }
        write
    });
    // Read slowly: the server must wait for the socket instead of piling answers up, and still
    // answer every request once, in order.
    let mut answers = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), read.read(&mut buf))
            .await
            .expect("answers keep coming")
            .unwrap();
        if n == 0 {
            break;
        }
        answers.extend_from_slice(&buf[..n]);
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let _write = writer.await.unwrap();
    let text = String::from_utf8(answers).unwrap();
    let locations: Vec<&str> = text
        .split("\r\n")
        .filter_map(|l| l.strip_prefix("location: https://shop.example.com/temp?i="))
        .collect();
    let want: Vec<String> = (0..REQUESTS)
        .map(|i| i.to_string())
        .chain(["last".to_string()])
        .collect();
    assert_eq!(locations.len(), want.len(), "every request answered once");
    assert!(locations.iter().zip(&want).all(|(a, b)| a == b), "in order");
    assert_eq!(responses(&text), REQUESTS + 1);
}
