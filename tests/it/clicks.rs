//! Click events through the real server: the seed's example reproduced field for field, and
//! the enrichment rules (bots, HEAD, sessions, referrers, language, GeoIP behind proxies).

use crate::common;

use common::{client, metric, start};

const FACEBOOK_ANDROID_9: &str = "Mozilla/5.0 (Linux; Android 9; SM-G960F Build/PPR1.180610.011; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/74.0.3729.157 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/227.0.0.43.158;]";
const CHROME_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
/// An address the embedded GeoIP database places in Brazil.
const BRAZIL_V4: &str = "200.147.67.142";

const LINKS: &str = "id,domain,slashtag,destination,creator_id,workspace_id,workspace_name,domain_id
a1ec86bf91bfe763ad02f602259ea0a9,brand.link,golden,https://www.yourdestination.com/?utm_source=cs_facebook_post&utm_medium=customersuccess,wf09bfww4eb9jkw2844555e1ce9af4f2,d88bfe5fgd14b2ghb44538b9aekpw89,,9a5ae320f3e247ef8c9b6061131bb517
l2,brand.link,other,https://shop.example.com/x,c2,w2,Team,d2
";

fn seed_event() -> serde_json::Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/seed-example.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["data"][0].clone()
}

#[tokio::test]
async fn the_seed_example_is_reproduced_field_for_field() {
    let t = start(LINKS, "trusted_proxies = [\"127.0.0.1\"]").await;
    let r = client()
        .get(t.url("/golden"))
        .header("host", "brand.link")
        .header("user-agent", FACEBOOK_ANDROID_9)
        .header("accept-language", "pt")
        .header("referer", "http://m.facebook.com/")
        .header("x-forwarded-for", BRAZIL_V4)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    let mut got = t.wait_for_events(1).await.remove(0);

    // What the example leaves open: the event id, the times, and the link's own slashtag/domain.
    let id = got["id"].as_str().unwrap().to_string();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
    let ts = got["timestamp"].as_str().unwrap().to_string();
    assert_eq!(ts.len(), "2019-07-02T14:07:06.981094Z".len(), "{ts}");
    assert!(ts.ends_with('Z'));
    assert_eq!(got["client"]["session"]["started"], ts, "first click opens the session");
    assert_eq!(got["route"]["slashtag"], "golden");
    assert_eq!(got["route"]["domain"]["raw"], "brand.link");

    let obj = got.as_object_mut().unwrap();
    obj.remove("id");
    let mut want = seed_event();
    want["timestamp"] = ts.clone().into();
    want["client"]["session"]["started"] = ts.into();
    want["route"]["slashtag"] = "golden".into();
    want["route"]["domain"]["raw"] = "brand.link".into();
    assert_eq!(got, want, "\n got: {got:#}\nwant: {want:#}");
}

async fn click(t: &common::TestNode, method: reqwest::Method, headers: &[(&str, &str)]) {
    let mut req = client().request(method, t.url("/other")).header("host", "brand.link");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 301);
}

#[tokio::test]
async fn bots_sessions_referrers_language_and_geo() {
    let t = start(LINKS, "trusted_proxies = [\"127.0.0.0/8\"]").await;
    use reqwest::Method;
    // 0: a human on Chrome, first click of a session, straight from a Google search, from Brazil.
    click(
        &t,
        Method::GET,
        &[
            ("user-agent", CHROME_WINDOWS),
            ("referer", "https://www.google.com/"),
            ("accept-language", "en-US;q=0.5, fr-CA, fr;q=0.9"),
            ("x-forwarded-for", BRAZIL_V4),
        ],
    )
    .await;
    // 1: the same visitor again: same session, not first; internal referrer.
    click(
        &t,
        Method::GET,
        &[
            ("user-agent", CHROME_WINDOWS),
            ("referer", "https://brand.link/other"),
            ("x-forwarded-for", BRAZIL_V4),
        ],
    )
    .await;
    // 2: a link-preview bot.
    click(
        &t,
        Method::GET,
        &[(
            "user-agent",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        )],
    )
    .await;
    // 3: curl, 4: no user agent, 5: HEAD from a browser.
    click(&t, Method::GET, &[("user-agent", "curl/8.5.0")]).await;
    click(&t, Method::GET, &[]).await;
    click(&t, Method::HEAD, &[("user-agent", CHROME_WINDOWS)]).await;
    // 6: IPv6 client through the proxy, unknown referrer.
    click(
        &t,
        Method::GET,
        &[
            ("user-agent", CHROME_WINDOWS),
            ("x-forwarded-for", "2001:4860:4860::8888"),
            ("referer", "https://some-blog.example.org/post?x=1"),
        ],
    )
    .await;

    let events = t.wait_for_events(7).await;
    let agent_type: Vec<&str> = events
        .iter()
        .map(|e| e["client"]["agent"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(agent_type, ["human", "human", "bot", "bot", "bot", "bot", "human"]);

    let e0 = &events[0];
    assert_eq!(e0["client"]["agent"]["browser"]["name"], "chrome");
    assert_eq!(e0["client"]["agent"]["os"]["name"], "windows");
    assert_eq!(e0["client"]["agent"]["os"]["version"], "windows-10");
    assert_eq!(e0["client"]["agent"]["device"]["name"], "desktop");
    assert_eq!(e0["client"]["language"], "fr");
    assert_eq!(e0["client"]["location"]["country"], "br");
    assert_eq!(
        e0["referral"]["origin"],
        serde_json::json!({"type": "search", "name": "google"})
    );
    assert_eq!(e0["client"]["session"]["first"], true);

    let e1 = &events[1];
    assert_eq!(e1["client"]["session"]["first"], false);
    assert_eq!(e1["client"]["session"]["started"], e0["client"]["session"]["started"]);
    assert_eq!(e1["referral"]["origin"]["type"], "internal");
    assert_eq!(e1["referral"]["path"], "/other");
    assert_eq!(e1["client"]["language"], "");

    assert_eq!(events[2]["referral"]["origin"]["type"], "direct");
    assert_eq!(events[2]["referral"]["hostname"], "");
    assert_eq!(events[4]["client"]["agent"]["browser"]["name"], "");

    let e6 = &events[6];
    assert_eq!(e6["client"]["location"]["country"], "us");
    assert_eq!(
        e6["client"]["session"]["first"], true,
        "another address is another visitor"
    );
    assert_eq!(e6["referral"]["origin"]["type"], "other");
    assert_eq!(e6["referral"]["hostname"], "some-blog.example.org");

    // Every field is present in every event, unknowns as "".
    let shape = |v: &serde_json::Value| -> Vec<String> {
        fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        if k == "query" {
                            out.push(format!("{prefix}{k}"));
                            continue;
                        }
                        walk(&format!("{prefix}{k}."), v, out);
                    }
                }
                _ => out.push(prefix.trim_end_matches('.').to_string()),
            }
        }
        let mut out = Vec::new();
        walk("", v, &mut out);
        out
    };
    let mut seed_shape = shape(&seed_event());
    seed_shape.push("id".into());
    seed_shape.sort();
    for e in &events {
        let mut s = shape(e);
        s.sort();
        assert_eq!(s, seed_shape);
    }
    let m = t.metrics().await;
    assert_eq!(metric(&m, "clickstream_clicks_total{type=\"bot\"}"), 4);
    assert_eq!(metric(&m, "clickstream_clicks_total{type=\"human\"}"), 3);
}

#[tokio::test]
async fn untrusted_peers_cannot_spoof_their_address() {
    // No trusted proxies: X-Forwarded-For is ignored and the loopback peer has no country.
    let t = start(LINKS, "").await;
    click(
        &t,
        reqwest::Method::GET,
        &[("user-agent", CHROME_WINDOWS), ("x-forwarded-for", BRAZIL_V4)],
    )
    .await;
    let events = t.wait_for_events(1).await;
    assert_eq!(events[0]["client"]["location"]["country"], "");
    t.wait_for_metric("clickstream_geoip_misses_total", 1).await;
}

#[tokio::test]
async fn the_destination_is_the_location_sent_with_the_query_merged_in() {
    let t = start(LINKS, "").await;
    for path in ["/golden", "/golden?utm_medium=email&x=1", "/golden"] {
        let r = client()
            .get(t.url(path))
            .header("host", "brand.link")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 301, "{path}");
    }
    let events = t.wait_for_events(3).await;
    let own = "https://www.yourdestination.com/?utm_source=cs_facebook_post&utm_medium=customersuccess";
    let merged = "https://www.yourdestination.com/?utm_source=cs_facebook_post&utm_medium=email&x=1";
    let raws: Vec<&str> = events
        .iter()
        .map(|e| e["route"]["destination"]["raw"].as_str().unwrap())
        .collect();
    assert_eq!(raws, [own, merged, own]);
    assert_eq!(events[0]["route"]["destination"], seed_event()["route"]["destination"]);
    let query = &events[1]["route"]["destination"]["params"]["query"];
    assert_eq!(query["utm_medium"], serde_json::json!(["email"]), "{query}");
    assert_eq!(query["x"], serde_json::json!(["1"]), "{query}");
}
