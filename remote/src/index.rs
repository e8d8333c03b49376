//! Every object a remote holds, from its pack indexes: one list sorted by (kind, id),
//! searched by bisection. A hash map of a million objects peaked at 220 MB while it grew;
//! the list is 56 bytes an object, filled pack by pack as the indexes arrive, and a fetch
//! names the objects it wants by their position in it (4 bytes each).

use dvx_store::Id;

use crate::layout::{Entry, Kind};

/// Entries of one pack, to download together.
pub type PackGroup = (Id, Vec<Entry>);

/// One object: where it lies, packed without padding to spare.
#[derive(Clone, Copy)]
struct Slot {
    id: Id,
    offset: u64,
    pack: u32,
    stored_len: u32,
    raw_len: u32,
    kind: Kind,
    codec: u8,
}

impl Slot {
    fn entry(&self) -> Entry {
        Entry {
            kind: self.kind,
            id: self.id,
            offset: self.offset,
            stored_len: self.stored_len,
            raw_len: self.raw_len,
            codec: self.codec,
        }
    }
}

#[derive(Default)]
pub struct RemoteIndex {
    pub packs: Vec<Id>,
    /// Sorted by (kind, id) once `finish` ran; an object in several packs is listed once,
    /// in the first pack added.
    slots: Vec<Slot>,
}

impl RemoteIndex {
    /// Add one pack's entries; `finish` once the last is in.
    pub(crate) fn add_pack(&mut self, pack: Id, entries: Vec<Entry>) {
        let n = self.packs.len() as u32;
        self.packs.push(pack);
        self.slots.extend(entries.into_iter().map(|e| Slot {
            id: e.id,
            offset: e.offset,
            pack: n,
            stored_len: e.stored_len,
            raw_len: e.raw_len,
            kind: e.kind,
            codec: e.codec,
        }));
    }

    /// Sort, keeping the first pack's copy of an object listed twice (packs are numbered
    /// in the order they were added).
    pub(crate) fn finish(&mut self) {
        self.slots.sort_unstable_by_key(|s| (s.kind, s.id, s.pack));
        self.slots.dedup_by(|a, b| a.kind == b.kind && a.id == b.id);
        self.slots.shrink_to_fit();
    }

    /// Add packs in order, then sort.
    pub(crate) fn add_packs(&mut self, packs: Vec<(Id, Vec<Entry>)>) {
        for (pack, entries) in packs {
            self.add_pack(pack, entries);
        }
        self.finish();
    }

    /// Where an object is listed (its position, for `at`).
    pub fn position(&self, kind: Kind, id: &Id) -> Option<u32> {
        self.slots
            .binary_search_by(|s| (s.kind, &s.id).cmp(&(kind, id)))
            .ok()
            .map(|i| i as u32)
    }

    /// The pack and entry at a position `position` gave.
    pub fn at(&self, pos: u32) -> (Id, Entry) {
        let s = &self.slots[pos as usize];
        (self.packs[s.pack as usize], s.entry())
    }

    /// The pack number (in `packs`) and offset at a position: the order to read in.
    pub fn place(&self, pos: u32) -> (u32, u64) {
        let s = &self.slots[pos as usize];
        (s.pack, s.offset)
    }

    pub fn has(&self, kind: Kind, id: &Id) -> bool {
        self.position(kind, id).is_some()
    }

    pub fn get(&self, kind: Kind, id: &Id) -> Option<(Id, Entry)> {
        self.position(kind, id).map(|p| self.at(p))
    }

    /// The entries of `want` grouped by pack, to download, and the objects it does not list.
    pub(crate) fn by_pack(&self, want: &[(Kind, Id)]) -> (Vec<PackGroup>, Vec<(Kind, Id)>) {
        let mut groups: std::collections::HashMap<Id, Vec<Entry>> = Default::default();
        let mut absent = Vec::new();
        for (k, id) in want {
            match self.get(*k, id) {
                Some((p, e)) => groups.entry(p).or_default().push(e),
                None => absent.push((*k, *id)),
            }
        }
        (groups.into_iter().collect(), absent)
    }

    /// Every object, by kind and id.
    pub fn objects(&self) -> impl Iterator<Item = (Kind, Id)> + '_ {
        self.slots.iter().map(|s| (s.kind, s.id))
    }

    /// The entries listed in the `i`th pack.
    pub fn pack_entries(&self, i: usize) -> Vec<Entry> {
        self.slots
            .iter()
            .filter(|s| s.pack as usize == i)
            .map(Slot::entry)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: Kind, name: &[u8], offset: u64) -> Entry {
        Entry {
            kind,
            id: Id::of(name),
            offset,
            stored_len: 3,
            raw_len: 3,
            codec: 0,
        }
    }

    #[test]
    fn the_first_pack_holding_an_object_is_the_one_kept() {
        let (p1, p2) = (Id::of(b"p1"), Id::of(b"p2"));
        let mut idx = RemoteIndex::default();
        idx.add_pack(
            p1,
            vec![entry(Kind::Chunk, b"a", 10), entry(Kind::Tree, b"t", 0)],
        );
        idx.add_pack(
            p2,
            vec![entry(Kind::Chunk, b"a", 99), entry(Kind::Chunk, b"b", 5)],
        );
        idx.finish();
        assert_eq!(idx.objects().count(), 3);
        let (p, e) = idx.get(Kind::Chunk, &Id::of(b"a")).unwrap();
        assert_eq!((p, e.offset), (p1, 10));
        assert!(idx.has(Kind::Tree, &Id::of(b"t")));
        assert!(!idx.has(Kind::Chunk, &Id::of(b"t")));
        let pos = idx.position(Kind::Chunk, &Id::of(b"b")).unwrap();
        assert_eq!(idx.place(pos), (1, 5));
        assert_eq!(idx.pack_entries(1), vec![entry(Kind::Chunk, b"b", 5)]);
    }
}
