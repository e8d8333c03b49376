//! Project-relative paths sorted so that questions like "which outputs lie inside or around
//! this path" take a binary search instead of a scan of every output (pipelines reach 100k
//! stages).
//!
//! Paths are compared as if `/` were the lowest byte, so everything inside a folder comes
//! right after the folder itself: `o`, `o/a`, `o/b`, `o-x`.

use std::cmp::Ordering;

use dvx_store::paths::is_under;

/// Compare paths component-wise (`/` sorts before every other byte).
pub fn cmp_paths(a: &str, b: &str) -> Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { c };
    a.bytes().map(key).cmp(b.bytes().map(key))
}

/// Normalised project-relative paths (no empty components, no trailing `/`, `""` for the
/// top) with a value each; several entries may share a path.
#[derive(Debug)]
pub struct PathIndex<T> {
    entries: Vec<(String, T)>,
}

impl<T> PathIndex<T> {
    /// Entries keep their given order among equal paths.
    pub fn new(mut entries: Vec<(String, T)>) -> PathIndex<T> {
        entries.sort_by(|a, b| cmp_paths(&a.0, &b.0));
        PathIndex { entries }
    }

    pub fn entries(&self) -> &[(String, T)] {
        &self.entries
    }

    /// The entries at exactly `path`.
    fn exact(&self, path: &str) -> &[(String, T)] {
        let lo = self
            .entries
            .partition_point(|(p, _)| cmp_paths(p, path) == Ordering::Less);
        let hi = lo
            + self.entries[lo..]
                .iter()
                .take_while(|(p, _)| p == path)
                .count();
        &self.entries[lo..hi]
    }

    /// Entries at `path` or at a folder above it (`is_under(path, entry)`).
    pub fn around<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a (String, T)> + 'a {
        let ends = path
            .match_indices('/')
            .map(|(i, _)| i)
            .chain([path.len()])
            .filter(|&i| i > 0);
        std::iter::once(0)
            .chain(ends)
            .flat_map(move |end| self.exact(&path[..end]))
    }

    /// Entries strictly inside `path` (`is_under(entry, path)` and not equal).
    pub fn inside<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a (String, T)> + 'a {
        let start = self
            .entries
            .partition_point(|(p, _)| cmp_paths(p, path) != Ordering::Greater);
        self.entries[start..]
            .iter()
            .take_while(move |(p, _)| is_under(p, path))
    }

    /// Entries that overlap `path`: at it, above it or inside it.
    pub fn overlapping<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a (String, T)> + 'a {
        self.around(path).chain(self.inside(path))
    }

    /// A pair of entries (earlier, later in the sorted order) where the later lies at or
    /// inside the earlier's path, if any: in the sorted order such a pair is always adjacent.
    pub fn nested_pairs(&self) -> impl Iterator<Item = (&(String, T), &(String, T))> {
        self.entries
            .windows(2)
            .filter(|w| is_under(&w[1].0, &w[0].0))
            .map(|w| (&w[0], &w[1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(paths: &[&str]) -> PathIndex<usize> {
        PathIndex::new(
            paths
                .iter()
                .enumerate()
                .map(|(i, p)| (p.to_string(), i))
                .collect(),
        )
    }

    fn vals<'a>(it: impl Iterator<Item = &'a (String, usize)>) -> Vec<usize> {
        let mut v: Vec<usize> = it.map(|(_, i)| *i).collect();
        v.sort();
        v
    }

    /// The index answers exactly what comparing every pair with `is_under` answers.
    #[test]
    fn agrees_with_all_pairs() {
        let paths = [
            "o", "o/a", "o/a/b", "o-x", "o.txt", "p", "oa", "o/b", "a/o", "", "o/a", "z/y/x",
        ];
        let ix = idx(&paths);
        let queries = [
            "", "o", "o/a", "o/a/b/c", "o-", "o-x", "z", "z/y", "q", "oa/b", "a",
        ];
        for q in queries {
            let want_around: Vec<usize> = (0..paths.len())
                .filter(|&i| is_under(q, paths[i]))
                .collect();
            let want_inside: Vec<usize> = (0..paths.len())
                .filter(|&i| is_under(paths[i], q) && paths[i] != q)
                .collect();
            assert_eq!(vals(ix.around(q)), want_around, "around {q:?}");
            assert_eq!(vals(ix.inside(q)), want_inside, "inside {q:?}");
            let mut all = want_around.clone();
            all.extend(&want_inside);
            all.sort();
            assert_eq!(vals(ix.overlapping(q)), all, "overlapping {q:?}");
        }
    }

    #[test]
    fn nesting_is_found_between_neighbours() {
        assert_eq!(idx(&["a", "b", "a-b", "c/d"]).nested_pairs().count(), 0);
        let ix = idx(&["o-x", "o/inner", "p", "o"]);
        let pairs: Vec<(usize, usize)> = ix.nested_pairs().map(|(a, b)| (a.1, b.1)).collect();
        assert_eq!(pairs, vec![(3, 1)]);
        let ix = idx(&["x", "y", "x"]);
        let pairs: Vec<(usize, usize)> = ix.nested_pairs().map(|(a, b)| (a.1, b.1)).collect();
        assert_eq!(pairs, vec![(0, 2)]);
        let ix = idx(&["", "a"]);
        assert_eq!(ix.nested_pairs().count(), 1);
    }

    #[test]
    fn order_puts_a_folder_before_its_contents_and_siblings() {
        let mut v = vec!["o-x", "o/b", "o", "o/a", "o.txt", "n"];
        v.sort_by(|a, b| cmp_paths(a, b));
        assert_eq!(v, vec!["n", "o", "o/a", "o/b", "o-x", "o.txt"]);
    }
}
