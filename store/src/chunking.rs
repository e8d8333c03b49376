//! Content-defined chunking (FastCDC 2020) of file contents; the cut itself is `dvx_cdc`'s.
//!
//! Chunk sizes were picked by measurement (see the book's performance page): large enough that
//! a 1 GB file is ~2,000 chunks (cheap to index and fast to hash), small enough that an edit or
//! an append rewrites well under a few MiB.

use dvx_cdc::Cutter;

pub const MIN_CHUNK: usize = 128 * 1024;
pub const AVG_CHUNK: usize = 512 * 1024;
pub const MAX_CHUNK: usize = 2 * 1024 * 1024;

const CUTTER: Cutter = Cutter::new(MIN_CHUNK, AVG_CHUNK, MAX_CHUNK);

/// Cut `data` into chunks; returns (offset, length) pairs covering it exactly, in order.
/// Data up to `MIN_CHUNK` long is one chunk (an empty file is one empty chunk).
pub fn chunks(data: &[u8]) -> Vec<(usize, usize)> {
    if data.len() <= MIN_CHUNK {
        return vec![(0, data.len())];
    }
    let mut out = Vec::with_capacity(data.len() / AVG_CHUNK + 2);
    let mut pos = 0;
    while pos < data.len() {
        let n = CUTTER.cut(&data[pos..]);
        out.push((pos, n));
        pos += n;
    }
    out
}

/// The length of the chunk that starts `data` (the rest of a file from a cut): `chunks`
/// cut by cut, for a caller that hands chunks on as they are found.
pub fn cut(data: &[u8]) -> usize {
    CUTTER.cut(data)
}

/// Data at least this big is cut by several threads.
const PARALLEL_MIN: usize = 64 << 20;
/// How far a segment's chunker runs past the next segment's start looking for a shared cut.
/// Chunkers meet within a few cuts; past this the stitch goes on sequentially. Every byte
/// of it is scanned twice: at 16 × `MAX_CHUNK` with four segments a 64 MB region was scanned
/// 2.5 times, and chunking was 57 % of adding a 1 GiB file.
const RESYNC_SPAN: usize = 4 * MAX_CHUNK;

/// The same cut points as `chunks`, found by several threads.
///
/// Each segment is cut independently from its start. A content-defined chunker that reaches
/// a cut point another chunker also produced continues identically from there, so the
/// segments are stitched at the first cut they share; only when no shared cut turns up within
/// `RESYNC_SPAN` does the stitch continue sequentially. The result equals a single pass.
pub fn chunks_parallel(data: &[u8]) -> Vec<(usize, usize)> {
    use rayon::prelude::*;
    let threads = rayon::current_num_threads().max(1);
    if data.len() < PARALLEL_MIN || threads == 1 {
        return chunks(data);
    }
    // One segment a thread: each extra segment adds a resync span to scan.
    let seg_len = data.len() / threads;
    let starts: Vec<usize> = (0..threads).map(|i| i * seg_len).collect();
    // Cut ends of each segment, each running a little past the next segment's start.
    let ends: Vec<Vec<usize>> = starts
        .par_iter()
        .enumerate()
        .map(|(i, &s)| {
            let stop = starts
                .get(i + 1)
                .map(|n| (n + RESYNC_SPAN).min(data.len()))
                .unwrap_or(data.len());
            let mut out = Vec::with_capacity((stop - s) / AVG_CHUNK + 2);
            let mut pos = s;
            while pos < stop {
                pos += CUTTER.cut(&data[pos..]);
                out.push(pos);
            }
            out
        })
        .collect();
    let mut cuts: Vec<usize> = Vec::with_capacity(data.len() / AVG_CHUNK + 2);
    let mut pos = 0usize;
    // The segment whose precomputed cuts we follow, and the index of the cut after `pos` in
    // it; `None` when `pos` is not one of its cuts (then we cut sequentially).
    let mut seg = 0usize;
    let mut next: Option<usize> = Some(0);
    while pos < data.len() {
        // Hop to the furthest later segment that also cut at `pos`.
        for s in (seg + 1..starts.len()).rev() {
            if pos >= starts[s] {
                if let Ok(k) = ends[s].binary_search(&pos) {
                    seg = s;
                    next = Some(k + 1);
                    break;
                }
            }
        }
        let end = match next.and_then(|k| ends[seg].get(k)) {
            Some(&e) => e,
            None => pos + CUTTER.cut(&data[pos..]),
        };
        cuts.push(end);
        pos = end;
        next = ends[seg].binary_search(&pos).ok().map(|k| k + 1);
    }
    let mut prev = 0;
    cuts.into_iter()
        .map(|e| {
            let c = (prev, e - prev);
            prev = e;
            c
        })
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

    #[test]
    fn parallel_equals_sequential() {
        // Random data, and repetitive text whose cut points are sparse and shift-prone.
        let random = pseudo_random(PARALLEL_MIN * 2 + 12345, 11);
        let text: Vec<u8> = (0..PARALLEL_MIN * 2 + 777)
            .map(|i| b"id,name,value\n0123456789,abcdefghij,3.14159\n"[(i * 7 + i / 1000) % 41])
            .collect();
        for d in [&random, &text] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(3)
                .build()
                .unwrap();
            let par = pool.install(|| chunks_parallel(d));
            assert_eq!(par, chunks(d));
        }
    }

    #[test]
    fn cut_by_cut_is_chunks() {
        for n in [0, MIN_CHUNK, MIN_CHUNK + 1, 9 * MAX_CHUNK + 5] {
            let d = pseudo_random(n, 13);
            let mut got = Vec::new();
            let mut pos = 0;
            while pos < d.len() || (d.is_empty() && got.is_empty()) {
                let len = cut(&d[pos..]);
                got.push((pos, len));
                pos += len;
            }
            assert_eq!(got, chunks(&d), "{n} bytes");
        }
    }

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
