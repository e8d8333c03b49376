//! Content-defined chunking (FastCDC 2020) of file contents.
//!
//! Chunk sizes were picked by measurement (see the book's performance page): large enough that
//! a 1 GB file is ~2,000 chunks (cheap to index and fast to hash), small enough that an edit or
//! an append rewrites well under a few MiB.

use fastcdc::v2020::FastCDC;

pub const MIN_CHUNK: usize = 128 * 1024;
pub const AVG_CHUNK: usize = 512 * 1024;
pub const MAX_CHUNK: usize = 2 * 1024 * 1024;

/// Cut `data` into chunks; returns (offset, length) pairs covering it exactly, in order.
/// Data up to `MIN_CHUNK` long is one chunk (an empty file is one empty chunk).
pub fn chunks(data: &[u8]) -> Vec<(usize, usize)> {
    if data.len() <= MIN_CHUNK {
        return vec![(0, data.len())];
    }
    FastCDC::new(data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
        .map(|c| (c.offset, c.length))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn covers_input_exactly() {
        for n in [0, 1, MIN_CHUNK, MIN_CHUNK + 1, 5 * MAX_CHUNK + 17] {
            let d = pseudo_random(n, 7);
            let cs = chunks(&d);
            let mut pos = 0;
            for (o, l) in &cs {
                assert_eq!(*o, pos);
                assert!(*l <= MAX_CHUNK);
                pos += l;
            }
            assert_eq!(pos, n);
        }
    }

    #[test]
    fn append_keeps_earlier_chunks() {
        let base = pseudo_random(8 * MAX_CHUNK, 3);
        let mut longer = base.clone();
        longer.extend(pseudo_random(MAX_CHUNK / 3, 9));
        let a = chunks(&base);
        let b = chunks(&longer);
        // All but the last chunk of the original survive the append unchanged.
        assert_eq!(&a[..a.len() - 1], &b[..a.len() - 1]);
    }

    /// Golden boundaries: changing chunk parameters or the fastcdc version changes file layout
    /// (not ids, which hash whole contents) and so deduplication against existing stores.
    #[test]
    fn golden_boundaries() {
        let d = pseudo_random(4 * MAX_CHUNK, 42);
        let lens: Vec<usize> = chunks(&d).iter().map(|c| c.1).collect();
        assert_eq!(
            lens,
            vec![
                257791, 310143, 1505133, 274761, 604493, 315217, 715887, 692743, 692704, 733402,
                642670, 321648, 230542, 432852, 658622
            ]
        );
    }
}
