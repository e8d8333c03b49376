//! A datum stage's table: for each datum of the stage's last finished run, the key it ran
//! with and the folder it wrote, beside the stage output those folders make together. A re-run
//! of one changed datum of 100,000 then reads one old folder and one new one, instead of a run
//! record and a tree per datum (`schemas/database.md`, "datum tables").
//!
//! The table is a cache: it is used only while its header names the output dvx.lock records
//! for the stage, so a table left behind by a killed run, another branch's dvx.lock, or a run
//! that failed is simply not used, and the stage merges every datum as it always could.

use std::collections::HashMap;

use dvx_store::store::{Store, Txn};
use dvx_store::Id;

use crate::error::Result;

/// The first byte of every row; a row of another version is not read.
pub(super) const TABLE_VERSION: u8 = 1;

const HAS_OUT: u8 = 1;
const EMPTY_DIRS: u8 = 2;

/// One datum's row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Row {
    /// The datum key it ran (or was restored) with.
    pub key: Id,
    /// The tree of the folder it wrote (none when it wrote nothing).
    pub out: Option<Id>,
    /// Its folder holds an empty folder: another datum's may hold the same one, so removing
    /// this datum's files cannot tell whether that folder stays.
    pub empty_dirs: bool,
}

impl Row {
    /// `[version, flags, key (32), out (32, when flags has HAS_OUT)]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut flags = 0;
        if self.out.is_some() {
            flags |= HAS_OUT;
        }
        if self.empty_dirs {
            flags |= EMPTY_DIRS;
        }
        let mut v = Vec::with_capacity(66);
        v.push(TABLE_VERSION);
        v.push(flags);
        v.extend_from_slice(self.key.as_bytes());
        if let Some(o) = &self.out {
            v.extend_from_slice(o.as_bytes());
        }
        v
    }

    pub fn decode(b: &[u8]) -> Option<Row> {
        let (&version, rest) = b.split_first()?;
        let (&flags, rest) = rest.split_first()?;
        if version != TABLE_VERSION || flags & !(HAS_OUT | EMPTY_DIRS) != 0 {
            return None;
        }
        let has_out = flags & HAS_OUT != 0;
        if rest.len() != if has_out { 64 } else { 32 } {
            return None;
        }
        Some(Row {
            key: Id::from_slice(&rest[..32])?,
            out: if has_out {
                Some(Id::from_slice(&rest[32..])?)
            } else {
                None
            },
            empty_dirs: flags & EMPTY_DIRS != 0,
        })
    }
}

/// The header row: `[version, stage output tree (32)]`.
fn encode_header(out: &Id) -> Vec<u8> {
    let mut v = Vec::with_capacity(33);
    v.push(TABLE_VERSION);
    v.extend_from_slice(out.as_bytes());
    v
}

fn decode_header(b: &[u8]) -> Option<Id> {
    match b.split_first() {
        Some((&TABLE_VERSION, rest)) => Id::from_slice(rest),
        _ => None,
    }
}

/// A stage's table as stored.
#[derive(Debug, Default)]
pub(super) struct Table {
    /// The stage output (tree of its out folder) the rows make together; none when the header
    /// is missing or unreadable.
    pub out: Option<Id>,
    /// Every row, or (from [`Table::read_changed`]) only those of datums not kept.
    pub rows: HashMap<String, Row>,
    /// Some row could not be read: the rows do not describe `out`.
    pub damaged: bool,
    /// Some row, kept or not, has `empty_dirs`.
    pub empty_dirs: bool,
}

impl Table {
    /// The stage's rows (an empty table when it has none).
    pub fn read(store: &Store, stage: &str) -> Result<Table> {
        Ok(Self::read_changed(store, stage, &[])?.0)
    }

    /// The stage's rows, read against this run's datums (`current`: each datum and its key):
    /// a row whose datum kept its key is only marked in the returned list (one flag per
    /// datum of `current`), not held in `rows`. A re-run of one datum of 100,000 then holds
    /// one row rather than all of them. Stage names with a NUL cannot be told apart from a
    /// datum in the key, so they keep no table.
    pub fn read_changed(
        store: &Store,
        stage: &str,
        current: &[(&str, &Id)],
    ) -> Result<(Table, Vec<bool>)> {
        let mut t = Table::default();
        let mut kept = vec![false; current.len()];
        if stage.contains('\0') {
            return Ok((t, kept));
        }
        let index: HashMap<&str, usize> = current
            .iter()
            .enumerate()
            .map(|(i, (d, _))| (*d, i))
            .collect();
        store.for_each_datum_row(stage, |datum, v| {
            if datum.is_empty() {
                t.out = decode_header(v);
                return Ok(true);
            }
            let Some(r) = Row::decode(v) else {
                t.damaged = true;
                return Ok(true);
            };
            t.empty_dirs |= r.empty_dirs;
            match index.get(datum) {
                Some(&i) if current[i].1 == &r.key => kept[i] = true,
                _ => {
                    t.rows.insert(datum.to_string(), r);
                }
            }
            Ok(true)
        })?;
        Ok((t, kept))
    }

    /// Whether the rows describe `locked`, the stage output dvx.lock records, so that a run
    /// may start from it and merge only the datums that changed.
    pub fn describes(&self, locked: Option<&Id>) -> bool {
        !self.damaged && self.out.is_some() && self.out.as_ref() == locked
    }

    /// Write the rows of a finished run: `rows` replace those of the same datums, the rows of
    /// the `dropped` datums not in `rows` are deleted, and the header names `out`. In the same
    /// transaction as the output's stat entries and trees.
    pub fn save(&self, txn: &Txn, stage: &str, rows: &[(String, Row)], dropped: &[&str], out: &Id) {
        if stage.contains('\0') {
            return;
        }
        let new: std::collections::HashSet<&str> = rows.iter().map(|(d, _)| d.as_str()).collect();
        for d in dropped {
            if !new.contains(d) {
                txn.delete_datum_row(stage, d);
            }
        }
        for (d, r) in rows {
            if self.rows.get(d) != Some(r) {
                txn.put_datum_row(stage, d, &r.encode());
            }
        }
        txn.put_datum_row(stage, "", &encode_header(out));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_are_pinned() {
        let with = Row {
            key: Id::of(b"key"),
            out: Some(Id::of(b"tree")),
            empty_dirs: false,
        };
        let without = Row {
            key: Id::of(b"key"),
            out: None,
            empty_dirs: true,
        };
        for r in [with, without] {
            assert_eq!(Row::decode(&r.encode()), Some(r));
        }
        assert_eq!(with.encode().len(), 66);
        assert_eq!(without.encode().len(), 34);
        // The layout is on disk: pin it (schemas/database.md, "datum tables").
        assert_eq!(
            Id::of(&with.encode()).to_hex(),
            "e7f11a0b1b6f27ac3ca7d0313fbf549218577eefced4e6041c3a80a143523f88"
        );
        assert_eq!(
            Id::of(&without.encode()).to_hex(),
            "458b46506268333d4467f140b009aa98fe4e4116ca7469083919ee0522ba9b36"
        );
        assert_eq!(
            Id::of(&encode_header(&Id::of(b"tree"))).to_hex(),
            "cc9fd61d76d15b88a3f8246ee4dde89ecd36b8561912ce92db6d54dd6629d4c8"
        );
    }

    #[test]
    fn unreadable_rows_are_refused() {
        let r = Row {
            key: Id::of(b"key"),
            out: Some(Id::of(b"tree")),
            empty_dirs: false,
        }
        .encode();
        assert_eq!(Row::decode(&r[..65]), None, "short");
        let mut v2 = r.clone();
        v2[0] = 2;
        assert_eq!(Row::decode(&v2), None, "another version");
        let mut flags = r.clone();
        flags[1] = 0x80;
        assert_eq!(Row::decode(&flags), None, "unknown flag");
        assert_eq!(decode_header(&[2; 33]), None);
        assert_eq!(
            decode_header(&encode_header(&Id::of(b"t"))),
            Some(Id::of(b"t"))
        );
    }

    #[test]
    fn a_table_describes_only_its_own_output() {
        let mut t = Table {
            out: Some(Id::of(b"a")),
            ..Default::default()
        };
        assert!(t.describes(Some(&Id::of(b"a"))));
        assert!(
            !t.describes(Some(&Id::of(b"b"))),
            "dvx.lock names another output"
        );
        assert!(!t.describes(None), "no dvx.lock entry");
        t.damaged = true;
        assert!(!t.describes(Some(&Id::of(b"a"))), "a damaged row");
    }

    #[test]
    fn rows_read_against_a_run_hold_only_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("p");
        std::fs::create_dir(&root).unwrap();
        dvx_store::repo::Repo::init(&root).unwrap();
        let repo = dvx_store::repo::Repo::open(&root, dvx_store::Access::Write("test")).unwrap();
        let row = |k: &[u8], empty_dirs| Row {
            key: Id::of(k),
            out: Some(Id::of(b"tree")),
            empty_dirs,
        };
        let rows = vec![
            ("a".to_string(), row(b"ka", false)),
            ("b".to_string(), row(b"kb", false)),
            ("gone".to_string(), row(b"kg", true)),
        ];
        let txn = repo.store.txn().unwrap();
        Table::default().save(&txn, "s", &rows, &[], &Id::of(b"out"));
        txn.commit().unwrap();

        let (ka, kb2, kc) = (Id::of(b"ka"), Id::of(b"kb2"), Id::of(b"kc"));
        let current = [("a", &ka), ("b", &kb2), ("c", &kc)];
        let (t, kept) = Table::read_changed(&repo.store, "s", &current).unwrap();
        assert_eq!(kept, vec![true, false, false], "only a kept its key");
        let mut held: Vec<&str> = t.rows.keys().map(String::as_str).collect();
        held.sort();
        assert_eq!(
            held,
            vec!["b", "gone"],
            "changed and gone rows, not the kept one"
        );
        assert!(t.describes(Some(&Id::of(b"out"))));
        assert!(t.empty_dirs, "seen on a row that is not kept");

        let full = Table::read(&repo.store, "s").unwrap();
        assert_eq!(full.rows.len(), 3);
        assert_eq!(full.rows["a"], row(b"ka", false));
        let (other, none) = Table::read_changed(&repo.store, "t", &current).unwrap();
        assert!(other.rows.is_empty() && other.out.is_none());
        assert_eq!(none, vec![false; 3]);
    }
}
