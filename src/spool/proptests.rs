//! Property tests of the spool's record reader on corrupted data: whatever bytes a segment
//! holds (a torn write, a flipped bit, a stranger's file), decoding never panics, and a record
//! that comes back is one that was written, in order.

use std::io::Write as _;

use proptest::prelude::*;

use super::tests::{meta, spec};
use super::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any bytes at all: a record, "incomplete" or "corrupt", never a panic or an out-of-bounds
    /// length.
    #[test]
    fn decoding_any_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Decoded::Record(_, len) = decode_record(&data) {
            prop_assert!(len <= data.len());
        }
    }

    /// A valid record with one byte changed or cut short is never read as a different record.
    #[test]
    fn a_damaged_record_is_never_read_as_another(
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
        cut in any::<prop::sample::Index>(),
    ) {
        let mut record = Vec::new();
        encode_record(&mut record, 7, meta(false), &payload);
        let whole = record.clone();
        let i = at.index(record.len());
        record[i] ^= flip;
        prop_assert!(!matches!(decode_record(&record), Decoded::Record(..)), "flipped byte {i} accepted");
        let short = &whole[..cut.index(whole.len())];
        prop_assert!(!matches!(decode_record(short), Decoded::Record(..)), "cut at {} accepted", short.len());
    }

    /// A segment damaged anywhere after it was written: opening the spool and reading it back
    /// never panics, and what comes back is a run of the written sequences, in order.
    #[test]
    fn a_damaged_segment_reads_back_only_written_records(
        damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        truncate in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_spool, mut w) = Spool::open(dir.path(), 1 << 20, vec![spec("a", u64::MAX)]).unwrap();
            for i in 0..20u32 {
                w.append(meta(false), format!("{{\"n\":{i}}}").as_bytes()).unwrap();
            }
            w.flush().unwrap();
        }
        let seg = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&seg).unwrap();
        for (at, value) in damage {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Some(cut) = truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        std::fs::File::create(&seg).unwrap().write_all(&bytes).unwrap();
        // Opening may refuse a segment it cannot trust; it must not panic.
        if let Ok((spool, _w)) = Spool::open(dir.path(), 1 << 20, vec![spec("a", u64::MAX)]) {
            let mut r = spool.reader("a").unwrap();
            // A read error ends the reading (a reader reports corruption, never panics on it).
            let mut seqs = Vec::new();
            while let Ok(Some(rec)) = r.next(spool.durable_seq()) {
                seqs.push(rec.seq);
            }
            prop_assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
            prop_assert!(seqs.iter().all(|s| (1..=20).contains(s)), "{seqs:?}");
        }
    }
}
