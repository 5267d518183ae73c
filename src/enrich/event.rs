//! The click event: what enrichment found for a hit, written in exactly the Clickstream shape
//! (`data` items of a webhook body, lines of S3 and file objects), and its timestamps.
//!
//! Built by the enricher on the pipeline thread; the JSON pieces shared by many events (a link's
//! owner and destination, a referral) come from [`crate::json`], made once.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use crate::enrich::agent::AgentInfo;
use crate::enrich::geo::CountryCode;
use crate::enrich::session::SessionInfo;
use crate::json::json_str;
use crate::links::Link;

/// One click event: what enrichment found for a hit; [`ClickEvent::write_json`] writes it as
/// the Clickstream payload's `data` items.
///
/// Nothing in it is allocated per click: the link's strings are borrowed, the user-agent
/// classification is shared with the enricher's cache, and the referral and destination, which
/// depend only on the `Referer` and the `Location`, are shared as JSON that was encoded once.
#[derive(Debug, Clone)]
pub struct ClickEvent<'a> {
    /// UUIDv7; receivers de-duplicate on it.
    pub id: uuid::Uuid,
    /// When the hit was answered, unix microseconds.
    pub time_micros: i64,
    /// Primary language subtag, or "".
    pub language: Cow<'a, str>,
    /// Country of the client address, when the GeoIP database knows it.
    pub country: Option<CountryCode>,
    /// Browser, OS and device of the user agent, with their JSON.
    pub agent: Arc<EncodedAgent>,
    /// A bot (by its agent, or a `HEAD` request).
    pub bot: bool,
    /// The visitor's session.
    pub session: SessionInfo,
    /// `referral`, as JSON text.
    pub referral: Arc<str>,
    /// The link that answered.
    pub link: &'a Link,
    /// `route.destination`, as JSON text ([`destination_json`]).
    pub destination: Arc<str>,
}

impl ClickEvent<'_> {
    /// Appends the event to `out` as one JSON object (no newline), in exactly the Clickstream
    /// shape and key order (`tests/fixtures/seed-example.json`, with our `id` first).
    ///
    /// Written by hand rather than through `serde::Serialize`: the structure is fixed, so the
    /// keys and punctuation are constant byte strings and only the values are escaped, in one
    /// pass. This is the server's hottest output; the tests check it against serde_json.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let link = self.link;
        let started = if self.session.first {
            self.time_micros
        } else {
            self.session.started_micros
        };
        let mut id = uuid::Uuid::encode_buffer();
        out.extend_from_slice(b"{\"id\":\"");
        out.extend_from_slice(self.id.hyphenated().encode_lower(&mut id).as_bytes());
        out.extend_from_slice(b"\",\"timestamp\":\"");
        out.extend_from_slice(&Timestamp(self.time_micros).to_bytes());
        out.extend_from_slice(b"\",\"client\":{\"language\":");
        json_str(out, &self.language);
        out.extend_from_slice(b",\"location\":{\"country\":");
        json_str(out, self.country.as_ref().map_or("", CountryCode::as_str));
        out.extend_from_slice(b"},\"agent\":");
        out.extend_from_slice(&self.agent.json_head);
        let kind: &[u8] = if self.bot { b"\"bot\"" } else { b"\"human\"" };
        out.extend_from_slice(kind);
        out.extend_from_slice(b"},\"session\":{\"started\":\"");
        out.extend_from_slice(&Timestamp(started).to_bytes());
        out.extend_from_slice(b"\",\"first\":");
        out.extend_from_slice(if self.session.first { b"true" } else { b"false" });
        out.extend_from_slice(b"}},\"referral\":");
        out.extend_from_slice(self.referral.as_bytes());
        out.extend_from_slice(b",\"route\":{\"id\":");
        json_str(out, link.id());
        out.extend_from_slice(b",\"slashtag\":");
        json_str(out, link.slashtag());
        out.push(b',');
        out.extend_from_slice(link.owner_json());
        out.extend_from_slice(b",\"destination\":");
        out.extend_from_slice(self.destination.as_bytes());
        out.extend_from_slice(b"}}");
    }
}

/// A user agent's classification and its part of the event, `client.agent` up to the value of
/// its `type` (a `HEAD` request makes any agent a bot), encoded once per agent the enricher
/// caches rather than for every click.
#[derive(Debug)]
pub struct EncodedAgent {
    /// The classification.
    pub info: AgentInfo,
    /// The agent's part of its visitors' session keys
    /// ([`crate::enrich::session::SessionTracker::agent_id`]).
    pub agent_id: u64,
    json_head: Box<[u8]>,
}

impl EncodedAgent {
    /// Encodes `info`, the classification of an agent whose session key part is `agent_id`.
    pub fn new(info: AgentInfo, agent_id: u64) -> EncodedAgent {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(b"{\"browser\":{\"name\":");
        json_str(&mut out, &info.browser_name);
        out.extend_from_slice(b",\"version\":");
        json_str(&mut out, &info.browser_version);
        out.extend_from_slice(b"},\"os\":{\"name\":");
        json_str(&mut out, &info.os_name);
        out.extend_from_slice(b",\"version\":");
        json_str(&mut out, &info.os_version);
        out.extend_from_slice(b"},\"device\":{\"name\":");
        json_str(&mut out, info.device);
        out.extend_from_slice(b"},\"type\":");
        EncodedAgent {
            info,
            agent_id,
            json_head: out.into_boxed_slice(),
        }
    }
}

impl crate::enrich::Weigh for EncodedAgent {
    fn weight(&self) -> usize {
        let info = &self.info;
        std::mem::size_of::<EncodedAgent>()
            + info.browser_name.capacity()
            + info.browser_version.capacity()
            + info.os_name.capacity()
            + info.os_version.capacity()
            + self.json_head.len()
    }
}

/// An event timestamp in unix microseconds; written as UTC, RFC 3339, microseconds, `Z`
/// (`2019-07-02T14:07:06.981094Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The RFC 3339 text, without allocating.
    ///
    /// Hand-written because it runs twice per click and `time`'s general-purpose formatter
    /// costs about ten times as much; the calendar conversion is the days-to-civil algorithm of
    /// Howard Hinnant's "chrono-compatible low-level date algorithms". Checked against `time`
    /// in the tests.
    pub fn to_bytes(self) -> [u8; 27] {
        let (secs, micro) = (self.0.div_euclid(1_000_000), self.0.rem_euclid(1_000_000));
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let mut out = [0u8; 27];
        let mut put = |at: usize, value: i64, width: usize| {
            let mut v = value;
            for k in (0..width).rev() {
                out[at + k] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, year.clamp(0, 9999), 4);
        put(5, month, 2);
        put(8, day, 2);
        put(11, sod / 3600, 2);
        put(14, sod / 60 % 60, 2);
        put(17, sod % 60, 2);
        put(20, micro, 6);
        for (at, c) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (26, b'Z'),
        ] {
            out[at] = c;
        }
        out
    }
}

/// Formats a time as the event's timestamps (see [`Timestamp`]).
pub fn format_timestamp(t: SystemTime) -> String {
    String::from_utf8_lossy(&Timestamp(unix_micros(t)).to_bytes()).into_owned()
}

/// Microseconds since the Unix epoch (0 for times before it).
pub fn unix_micros(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{destination_json, json_fragment};
    use std::time::Duration;

    #[test]
    fn timestamps_have_microseconds_and_z() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_562_076_426_981_094);
        assert_eq!(format_timestamp(t), "2019-07-02T14:07:06.981094Z");
        assert_eq!(format_timestamp(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn timestamps_agree_with_the_time_crate() {
        const FORMAT: &[time::format_description::FormatItem<'static>] =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
        // Leap days, century years, ends of months and years, from 1970 to 2199.
        let mut micros: u64 = 7;
        while micros < 7_258_118_400_000_000 {
            let t = SystemTime::UNIX_EPOCH + Duration::from_micros(micros);
            assert_eq!(
                format_timestamp(t),
                time::OffsetDateTime::from(t).format(FORMAT).unwrap(),
                "{micros}"
            );
            micros += 86_399_999_937; // about a day, drifting through every second of the day
        }
    }

    #[test]
    fn event_json_has_the_clickstream_shape() {
        let owner = crate::links::Owner::new(
            "brand.link".into(),
            "d1".into(),
            "c1".into(),
            Arc::new(crate::links::Workspace {
                id: "w1".into(),
                name: "Tab\there".into(),
            }),
        );
        let link = Link::new(
            "l\"1",
            "spring-sale",
            http::StatusCode::MOVED_PERMANENTLY,
            "https://example.com/?a=1",
            Arc::new(owner),
        );
        let event = ClickEvent {
            id: uuid::Uuid::from_u128(0x0190_1234_5678_7abc_8def_0123_4567_89ab),
            time_micros: 1_562_076_426_981_094,
            language: Cow::Borrowed("pt"),
            country: CountryCode::from_alpha2("BR"),
            agent: Arc::new(EncodedAgent::new(
                AgentInfo {
                    browser_name: "facebook-app".into(),
                    browser_version: "227.0".into(),
                    os_name: "android".into(),
                    os_version: "android-9.0-pie".into(),
                    device: "smartphone",
                    bot: false,
                },
                0,
            )),
            bot: true,
            session: SessionInfo {
                started_micros: 1_562_076_000_000_000,
                first: false,
            },
            referral: json_fragment(&serde_json::json!({"hostname": "m.facebook.com"})),
            link: &link,
            destination: destination_json("https://example.com/?a=1"),
        };
        let mut out = Vec::new();
        event.write_json(&mut out);
        let expected = concat!(
            r#"{"id":"01901234-5678-7abc-8def-0123456789ab","timestamp":"2019-07-02T14:07:06.981094Z","#,
            r#""client":{"language":"pt","location":{"country":"br"},"agent":{"browser":{"name":"facebook-app","#,
            r#""version":"227.0"},"os":{"name":"android","version":"android-9.0-pie"},"device":{"name":"smartphone"},"#,
            r#""type":"bot"},"session":{"started":"2019-07-02T14:00:00.000000Z","first":false}},"#,
            r#""referral":{"hostname":"m.facebook.com"},"route":{"id":"l\"1","slashtag":"spring-sale","#,
            r#""creator":{"id":"c1","workspace":{"id":"w1","name":"Tab\there"}},"domain":{"id":"d1","raw":"brand.link"},"#,
            r#""destination":{"raw":"https://example.com/?a=1","protocol":"https","hostname":"example.com","#,
            r#""path":"/","params":{"query":{"a":["1"]}}}}}"#
        );
        assert_eq!(String::from_utf8(out.clone()).unwrap(), expected);
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed["client"]["agent"]["type"], "bot");
        assert_eq!(parsed["route"]["creator"]["workspace"]["name"], "Tab\there");
    }
}
