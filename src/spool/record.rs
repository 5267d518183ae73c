//! Records: `[len: u32 LE][crc32: u32 LE][body]`, the body holding the sequence number, click
//! time, flags, workspace and domain before the event JSON (the format is in the `spool` module
//! docs), and the types a record is written from and read into.
//!
//! The writer encodes with it; the readers, the recovery scan at open and the budget's drop count
//! decode with it. Decoding never panics and never trusts a length: a short buffer is
//! [`Decoded::Incomplete`], a bad length or checksum [`Decoded::Corrupt`]. No I/O here.

use std::borrow::Cow;

/// Length of the `[len][crc]` record header.
const RECORD_HEADER_LEN: usize = 8;
/// Fixed part of a record body before the variable strings.
const BODY_FIXED_LEN: usize = 8 + 8 + 1;
/// Largest record body accepted when reading; a length beyond it is corruption.
const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

const FLAG_BOT: u8 = 1;

/// What sinks filter and partition on, stored beside each event.
#[derive(Debug, Clone, Copy)]
pub struct RecordMeta<'a> {
    /// Click time, unix microseconds.
    pub time_micros: i64,
    /// Classified as a bot.
    pub bot: bool,
    /// Workspace id of the link.
    pub workspace: &'a str,
    /// Domain of the link.
    pub domain: &'a str,
}

/// One event read back from the spool for a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Sequence number.
    pub seq: u64,
    /// Click time, unix microseconds.
    pub time_micros: i64,
    /// The event, one JSON object.
    pub json: Vec<u8>,
}

/// A record as it lies in the spool's bytes: read in place, so that the events a sink's filter
/// skips, and the metadata the filter reads, are never copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Sequence number.
    pub seq: u64,
    /// Click time, unix microseconds.
    pub time_micros: i64,
    /// Classified as a bot.
    pub bot: bool,
    /// Workspace id.
    pub workspace: Cow<'a, str>,
    /// Domain.
    pub domain: Cow<'a, str>,
    /// The event, one JSON object.
    pub json: &'a [u8],
}

impl RecordRef<'_> {
    /// The event and what a sink needs of its metadata, copied out of the spool's bytes.
    pub fn to_record(&self) -> Record {
        Record {
            seq: self.seq,
            time_micros: self.time_micros,
            json: self.json.to_vec(),
        }
    }
}

/// Encodes one record (header and body) into `out`.
pub fn encode_record(out: &mut Vec<u8>, seq: u64, meta: RecordMeta<'_>, json: &[u8]) {
    encode_record_with(out, seq, meta, |out| out.extend_from_slice(json));
}

/// Encodes one record into `out`, its JSON written in place by `write_json`.
pub(super) fn encode_record_with(
    out: &mut Vec<u8>,
    seq: u64,
    meta: RecordMeta<'_>,
    write_json: impl FnOnce(&mut Vec<u8>),
) {
    let ws = &meta.workspace.as_bytes()[..meta.workspace.len().min(u16::MAX as usize)];
    let dom = &meta.domain.as_bytes()[..meta.domain.len().min(u16::MAX as usize)];
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&meta.time_micros.to_le_bytes());
    out.push(if meta.bot { FLAG_BOT } else { 0 });
    out.extend_from_slice(&(ws.len() as u16).to_le_bytes());
    out.extend_from_slice(ws);
    out.extend_from_slice(&(dom.len() as u16).to_le_bytes());
    out.extend_from_slice(dom);
    write_json(out);
    let body_len = (out.len() - start - RECORD_HEADER_LEN) as u32;
    let crc = crc32fast::hash(&out[start + RECORD_HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Result of decoding the bytes at a position.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole, valid record and its encoded length.
    Record(RecordRef<'a>, usize),
    /// Not enough bytes yet (end of data, or a record still being written).
    Incomplete,
    /// A record whose length or checksum is wrong.
    Corrupt(&'static str),
}

/// Decodes the record at the start of `data`.
pub fn decode_record(data: &[u8]) -> Decoded<'_> {
    if data.len() < RECORD_HEADER_LEN {
        return Decoded::Incomplete;
    }
    let len = u32::from_le_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(data[4..8].try_into().expect("4 bytes"));
    if !(BODY_FIXED_LEN + 4..=MAX_RECORD_BYTES).contains(&len) {
        return Decoded::Corrupt("impossible record length");
    }
    let Some(body) = data.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
        return Decoded::Incomplete;
    };
    if crc32fast::hash(body) != crc {
        return Decoded::Corrupt("checksum mismatch");
    }
    let seq = u64::from_le_bytes(body[0..8].try_into().expect("8 bytes"));
    let time_micros = i64::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
    let bot = body[16] & FLAG_BOT != 0;
    let mut at = BODY_FIXED_LEN;
    let string = |at: &mut usize| {
        let n = u16::from_le_bytes(body.get(*at..*at + 2)?.try_into().ok()?) as usize;
        let s = body.get(*at + 2..*at + 2 + n)?;
        *at += 2 + n;
        Some(String::from_utf8_lossy(s))
    };
    let (Some(workspace), Some(domain)) = (string(&mut at), string(&mut at)) else {
        return Decoded::Corrupt("metadata overruns the record");
    };
    Decoded::Record(
        RecordRef {
            seq,
            time_micros,
            bot,
            workspace,
            domain,
            json: &body[at..],
        },
        RECORD_HEADER_LEN + len,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::spool::tests::meta;

    #[test]
    fn records_round_trip_and_detect_damage() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, meta(true), br#"{"a":1}"#);
        let Decoded::Record(r, n) = decode_record(&buf) else {
            panic!()
        };
        assert_eq!(n, buf.len());
        assert_eq!((r.seq, r.bot, &*r.workspace, &*r.domain), (7, true, "w1", "brand.link"));
        assert_eq!(r.json, br#"{"a":1}"#);
        assert_eq!(decode_record(&buf[..buf.len() - 1]), Decoded::Incomplete);
        let mut bad = buf.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert_eq!(decode_record(&bad), Decoded::Corrupt("checksum mismatch"));
        let mut huge = buf.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_record(&huge), Decoded::Corrupt("impossible record length"));
    }
}
