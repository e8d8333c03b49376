//! The stat cache: path -> (inode, mtime, ctime, size, mode) -> id, so a file whose metadata
//! did not change is never read again.
//!
//! A file changed within the same timestamp tick as the entry was recorded could keep all its
//! metadata; such "racy" entries are not trusted (the same rule as git's index).

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::id::Id;

/// How close to the recording time a change must be for the entry to be distrusted: more
/// than the coarsest timestamp tick of the filesystems dvx runs on (jiffies, <= 10 ms).
pub(crate) const RACY_NS: i64 = 100_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub ino: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub size: u64,
    pub mode: u32,
}

impl Stat {
    pub fn of(m: &Metadata) -> Stat {
        Stat {
            ino: m.ino(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            size: m.len(),
            mode: m.mode(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatEntry {
    pub stat: Stat,
    pub recorded_ns: i64,
    pub id: Id,
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl StatEntry {
    pub const ENCODED_LEN: usize = 8 * 5 + 4 + 32;

    pub fn new(stat: Stat, id: Id) -> StatEntry {
        StatEntry {
            stat,
            recorded_ns: now_ns(),
            id,
        }
    }

    /// The id, if `current` still matches and the entry is not racy.
    pub fn lookup(&self, current: &Stat) -> Option<Id> {
        if self.stat != *current {
            return None;
        }
        let newest = self.stat.mtime_ns.max(self.stat.ctime_ns);
        if newest + RACY_NS > self.recorded_ns {
            return None;
        }
        Some(self.id)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(Self::ENCODED_LEN);
        b.extend_from_slice(&self.stat.ino.to_le_bytes());
        b.extend_from_slice(&self.stat.mtime_ns.to_le_bytes());
        b.extend_from_slice(&self.stat.ctime_ns.to_le_bytes());
        b.extend_from_slice(&self.stat.size.to_le_bytes());
        b.extend_from_slice(&self.recorded_ns.to_le_bytes());
        b.extend_from_slice(&self.stat.mode.to_le_bytes());
        b.extend_from_slice(self.id.as_bytes());
        b
    }

    /// A malformed entry is simply a cache miss.
    pub fn decode(b: &[u8]) -> Option<StatEntry> {
        if b.len() != Self::ENCODED_LEN {
            return None;
        }
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        Some(StatEntry {
            stat: Stat {
                ino: u64_at(0),
                mtime_ns: u64_at(8) as i64,
                ctime_ns: u64_at(16) as i64,
                size: u64_at(24),
                mode: u32::from_le_bytes([b[40], b[41], b[42], b[43]]),
            },
            recorded_ns: u64_at(32) as i64,
            id: Id::from_slice(&b[44..76])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_racy() {
        let st = Stat {
            ino: 5,
            mtime_ns: 1_000,
            ctime_ns: 1_000,
            size: 10,
            mode: 0o100644,
        };
        let mut e = StatEntry::new(st, Id::of(b"x"));
        assert_eq!(StatEntry::decode(&e.encode()), Some(e));
        assert_eq!(e.lookup(&st), Some(Id::of(b"x")));
        assert_eq!(e.lookup(&Stat { size: 11, ..st }), None);
        e.recorded_ns = 50_000_000; // recorded within the racy window of the change
        assert_eq!(e.lookup(&st), None);
    }
}
