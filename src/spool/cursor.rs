//! A sink's cursor file, `<sink>.cursor`: where the sink stands and the batch it is sending.
//!
//! Saved once or twice per delivered batch, so it is written in place instead of through a
//! temporary file and a rename (a create, a rename and a journal commit per save cost more than
//! the rest of the delivery bookkeeping together). The file holds two fixed-size slots, written
//! alternately; each carries a generation number and a CRC, so a write torn by a crash leaves
//! the other slot, one save older, to fall back on. Reading takes the valid slot with the
//! highest generation.
//!
//! Slot layout (64 bytes, little-endian): `CLKCUR01` magic, generation `u64`, next sequence
//! `u64`, segment `u64`, offset `u64`, pending first `u64`, pending last `u64`, has-pending
//! `u8`, three zero bytes, CRC-32 (IEEE) of the 60 bytes before it.
//!
//! Spools written before this format kept the cursor as JSON (`{"next_seq":...}`); such a file
//! is read once and rewritten in the slot format.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Position, write_atomically};

const MAGIC: &[u8; 8] = b"CLKCUR01";
const SLOT_LEN: usize = 64;
const CRC_AT: usize = SLOT_LEN - 4;

/// What a cursor file records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Saved {
    /// The next event to deliver.
    pub position: Position,
    /// The bounds of the batch being sent, if any.
    pub pending: Option<(u64, u64)>,
}

/// What was found on disk for a sink.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// No cursor file: a sink configured since the last run.
    Missing,
    /// A file with no valid slot (both torn or corrupt).
    Unreadable,
    /// The last save.
    Saved(Saved),
}

/// An open cursor file.
#[derive(Debug)]
pub(super) struct CursorFile {
    file: File,
    path: PathBuf,
    generation: u64,
}

/// The JSON cursor of earlier versions.
#[derive(Deserialize)]
struct Legacy {
    #[serde(flatten)]
    position: Position,
    pending: Option<(u64, u64)>,
}

impl CursorFile {
    /// Opens (creating if needed) the cursor file at `path` and reads the last save.
    pub fn open(path: &Path) -> io::Result<(CursorFile, Found)> {
        let (found, generation) = match std::fs::read(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Found::Missing, 0),
            Err(e) => return Err(e),
            Ok(bytes) if bytes.first() == Some(&b'{') => match serde_json::from_slice::<Legacy>(&bytes) {
                Ok(legacy) => {
                    let saved = Saved {
                        position: legacy.position,
                        pending: legacy.pending,
                    };
                    // Rewritten whole and synced before anything relies on the new format.
                    let mut slots = [0u8; 2 * SLOT_LEN];
                    slots[SLOT_LEN..].copy_from_slice(&encode(&saved, 1));
                    write_atomically(path, &slots, true)?;
                    (Found::Saved(saved), 1)
                }
                Err(_) => (Found::Unreadable, 0),
            },
            Ok(bytes) => {
                let best = bytes
                    .chunks_exact(SLOT_LEN)
                    .take(2)
                    .filter_map(decode)
                    .max_by_key(|&(generation, _)| generation);
                match best {
                    Some((generation, saved)) => (Found::Saved(saved), generation),
                    None => (Found::Unreadable, 0),
                }
            }
        };
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        let cursor = CursorFile {
            file,
            path: path.to_path_buf(),
            generation,
        };
        Ok((cursor, found))
    }

    /// Saves `saved` over the older slot; with `sync`, durably before returning.
    pub fn save(&mut self, saved: &Saved, sync: bool) -> io::Result<()> {
        let generation = self.generation + 1;
        let slot = (generation % 2) * SLOT_LEN as u64;
        self.file
            .write_all_at(&encode(saved, generation), slot)
            .map_err(|e| with_path(&self.path, e))?;
        if sync {
            self.file.sync_data().map_err(|e| with_path(&self.path, e))?;
        }
        self.generation = generation;
        Ok(())
    }
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn encode(saved: &Saved, generation: u64) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    let (first, last) = saved.pending.unwrap_or((0, 0));
    let fields = [
        generation,
        saved.position.next_seq,
        saved.position.segment,
        saved.position.offset,
        first,
        last,
    ];
    slot[..8].copy_from_slice(MAGIC);
    for (i, value) in fields.iter().enumerate() {
        slot[8 + 8 * i..16 + 8 * i].copy_from_slice(&value.to_le_bytes());
    }
    slot[56] = u8::from(saved.pending.is_some());
    let crc = crc32fast::hash(&slot[..CRC_AT]);
    slot[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    slot
}

fn decode(slot: &[u8]) -> Option<(u64, Saved)> {
    if &slot[..8] != MAGIC || slot[CRC_AT..] != crc32fast::hash(&slot[..CRC_AT]).to_le_bytes() {
        return None;
    }
    let field = |i: usize| u64::from_le_bytes(slot[8 + 8 * i..16 + 8 * i].try_into().unwrap_or_default());
    let saved = Saved {
        position: Position {
            next_seq: field(1),
            segment: field(2),
            offset: field(3),
        },
        pending: (slot[56] == 1).then(|| (field(4), field(5))),
    };
    Some((field(0), saved))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(seq: u64, pending: Option<(u64, u64)>) -> Saved {
        Saved {
            position: Position {
                next_seq: seq,
                segment: 1,
                offset: 8 + seq,
            },
            pending,
        }
    }

    #[test]
    fn the_last_save_wins_and_a_torn_slot_falls_back_one_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.cursor");
        let (mut c, found) = CursorFile::open(&path).unwrap();
        assert_eq!(found, Found::Missing);
        for seq in 1..=5 {
            c.save(&saved(seq, Some((seq, seq + 9))), seq % 2 == 0).unwrap();
        }
        c.save(&saved(6, None), false).unwrap();
        drop(c);
        let (_, found) = CursorFile::open(&path).unwrap();
        assert_eq!(found, Found::Saved(saved(6, None)));

        // Tear the newest slot (generation 6 lives in slot 0): the previous save is read.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (mut c, found) = CursorFile::open(&path).unwrap();
        assert_eq!(found, Found::Saved(saved(5, Some((5, 14)))));
        // Saving again goes on from the surviving generation, over the torn slot.
        c.save(&saved(7, None), false).unwrap();
        let (_, found) = CursorFile::open(&path).unwrap();
        assert_eq!(found, Found::Saved(saved(7, None)));

        std::fs::write(&path, b"garbage").unwrap();
        assert_eq!(CursorFile::open(&path).unwrap().1, Found::Unreadable);
    }

    #[test]
    fn a_json_cursor_of_earlier_versions_is_read_and_converted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.cursor");
        std::fs::write(&path, br#"{"next_seq":42,"segment":1,"offset":900,"pending":[42,60]}"#).unwrap();
        let expected = Saved {
            position: Position {
                next_seq: 42,
                segment: 1,
                offset: 900,
            },
            pending: Some((42, 60)),
        };
        assert_eq!(CursorFile::open(&path).unwrap().1, Found::Saved(expected));
        assert_eq!(std::fs::read(&path).unwrap().len(), 2 * SLOT_LEN);
        assert_eq!(CursorFile::open(&path).unwrap().1, Found::Saved(expected));
    }
}
