//! dvx-cdc: where content-defined chunking cuts a file.
//!
//! The cut is FastCDC 2020 at normalization level 1 with the standard gear table, and it must
//! match the `fastcdc` crate 5.0.0 point for point: chunk ids, and so every store and remote,
//! depend on it (`schemas/objects.md`, "Chunking"). The tests check that against the crate.
//!
//! Why our own loop: adding a large file cuts it on one thread while another hashes and
//! copies, and with direct writes the cutting thread is what the add waits for. The crate's
//! loop keeps one hash chain, `h = (h << 1) + GEAR[b]`, whose two dependent adds cost two
//! cycles a byte. Here four bytes advance the chain at once (`h << 4` plus the sum of their
//! shifted gear values, which does not depend on `h`), and the three hashes in between, which
//! the cut must test, come off that chain's critical path. The book's performance page has the
//! figures. The `fastcdc` crate is only a dev-dependency: the reference of the tests and the
//! baseline of the bench.

mod gear;

use gear::GEAR;

/// The FastCDC masks by their number of one bits (index = log2 of the chunk size they aim at),
/// as the fastcdc crate 5.0.0 (`v2020::MASKS`) has them; indices 0–4 are unused.
const MASKS: [u64; 26] = [
    0,
    0,
    0,
    0,
    0,
    0x0000000001804110,
    0x0000000001803110,
    0x0000000018035100,
    0x0000001800035300,
    0x0000019000353000,
    0x0000590003530000,
    0x0000d90003530000,
    0x0000d90103530000,
    0x0000d90303530000,
    0x0000d90313530000,
    0x0000d90f03530000,
    0x0000d90303537000,
    0x0000d90703537000,
    0x0000d90707537000,
    0x0000d91707537000,
    0x0000d91747537000,
    0x0000d91767537000,
    0x0000d93767537000,
    0x0000d93777537000,
    0x0000d93777577000,
    0x0000db3777577000,
];

/// Chunk sizes and the masks they imply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutter {
    min: usize,
    avg: usize,
    max: usize,
    /// Tested below `avg`: more bits, so cuts there are rarer.
    mask_s: u64,
    /// Tested from `avg` to `max`.
    mask_l: u64,
}

impl Cutter {
    /// The cutter `fastcdc::v2020::FastCDC::new(_, min, avg, max)` is: level 1, seed 0.
    /// Sizes must be even (the crate tests cut points in pairs from them), with
    /// 64 ≤ `min` ≤ `avg` ≤ `max` and `avg` between 128 bytes and 8 MiB.
    pub const fn new(min: usize, avg: usize, max: usize) -> Cutter {
        assert!(
            min.is_multiple_of(2) && avg.is_multiple_of(2) && max.is_multiple_of(2),
            "chunk sizes must be even"
        );
        assert!(
            64 <= min && min <= avg && avg <= max,
            "need 64 <= min <= avg <= max"
        );
        let bits = round_log2(avg);
        assert!(bits >= 7 && bits <= 23, "avg must be 128 B to 8 MiB");
        Cutter {
            min,
            avg,
            max,
            mask_s: MASKS[bits + 1],
            mask_l: MASKS[bits - 1],
        }
    }

    /// The masks, strict then loose (`schemas/objects.md` lists them; a test checks them).
    pub fn masks(&self) -> (u64, u64) {
        (self.mask_s, self.mask_l)
    }

    /// The length of the chunk that starts `data` (the rest of a file from a cut).
    ///
    /// From `min` on, each position `i` is tested with the gear hash of the bytes from `min`
    /// to `i`; the chunk ends before the first position whose hash has none of the mask's
    /// bits set (`mask_s` before `avg`, `mask_l` after), or at `max`, or at the end. As in
    /// the crate, positions are tested in pairs, so an odd last byte is never a cut point.
    pub fn cut(&self, data: &[u8]) -> usize {
        let n = data.len();
        if n <= self.min {
            return n;
        }
        let (remaining, center) = if n > self.max {
            (self.max, self.avg)
        } else if n < self.avg {
            (n, n)
        } else {
            (n, self.avg)
        };
        // The pairs end at even positions: round the ends down.
        let strict_end = (center & !1).max(self.min);
        let loose_end = remaining & !1;
        let h = match scan(&data[self.min..strict_end], 0, self.mask_s) {
            Ok(i) => return self.min + i,
            Err(h) => h,
        };
        if loose_end > strict_end {
            if let Ok(i) = scan(&data[strict_end..loose_end], h, self.mask_l) {
                return strict_end + i;
            }
        }
        remaining
    }
}

/// `round(log2(v))`, as the crate computes it through `f64` (the halfway point 2^(k+½) is
/// never an integer, so comparing `v²` with 2^(2k+1) decides it exactly).
const fn round_log2(v: usize) -> usize {
    let k = (usize::BITS - 1 - v.leading_zeros()) as usize;
    if (v as u128) * (v as u128) >= 1u128 << (2 * k + 1) {
        k + 1
    } else {
        k
    }
}

/// Run the gear hash from `h` over `body`: `Ok(i)` for the first position whose hash has no
/// bit of `mask` set, else `Err` with the hash after the last byte.
#[inline(always)]
fn scan(body: &[u8], mut h: u64, mask: u64) -> Result<usize, u64> {
    let mut quads = body.chunks_exact(4);
    let mut at = 0;
    for q in &mut quads {
        let g1 = GEAR[q[0] as usize];
        let g2 = GEAR[q[1] as usize];
        let g3 = GEAR[q[2] as usize];
        let g4 = GEAR[q[3] as usize];
        // Partial sums of the four bytes alone: the chain through `h` is one shift and add.
        let p2 = (g1 << 1).wrapping_add(g2);
        let p3 = (p2 << 1).wrapping_add(g3);
        let p4 = (p3 << 1).wrapping_add(g4);
        if ((h << 1).wrapping_add(g1) & mask) == 0 {
            return Ok(at);
        }
        if ((h << 2).wrapping_add(p2) & mask) == 0 {
            return Ok(at + 1);
        }
        if ((h << 3).wrapping_add(p3) & mask) == 0 {
            return Ok(at + 2);
        }
        h = (h << 4).wrapping_add(p4);
        if (h & mask) == 0 {
            return Ok(at + 3);
        }
        at += 4;
    }
    for &b in quads.remainder() {
        h = (h << 1).wrapping_add(GEAR[b as usize]);
        if (h & mask) == 0 {
            return Ok(at);
        }
        at += 1;
    }
    Err(h)
}

#[cfg(test)]
mod sample;
#[cfg(test)]
mod tests;
