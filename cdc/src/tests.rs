//! Every cut against the fastcdc crate 5.0.0, which defines the chunk boundaries.

use fastcdc::v2020::{select_masks, FastCDC, Normalization};

use super::*;
use crate::sample::{csv, pseudo_random};

fn ours(c: &Cutter, data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let n = c.cut(&data[pos..]);
        out.push(n);
        pos += n;
    }
    out
}

fn theirs(min: usize, avg: usize, max: usize, data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        let n = if rest.len() <= min {
            rest.len()
        } else {
            FastCDC::new(rest, min, avg, max).cut(0, rest.len()).1
        };
        out.push(n);
        pos += n;
    }
    out
}

const SIZES: [(usize, usize, usize); 5] = [
    (128 << 10, 512 << 10, 2 << 20),
    (64, 256, 1024),
    (256, 1024, 4096),
    (2048, 8192, 65536),
    (4096, 16384, 65536),
];

#[test]
fn masks_are_the_crates() {
    for (min, avg, max) in SIZES {
        let c = Cutter::new(min, avg, max);
        assert_eq!(c.masks(), select_masks(avg, Normalization::Level1), "{avg}");
    }
    for avg in (128usize..=(8 << 20))
        .step_by(2)
        .filter(|v| v % 997 == 0 || v.is_power_of_two())
    {
        assert_eq!(
            round_log2(avg),
            (avg as f64).log2().round() as usize,
            "{avg}"
        );
    }
}

#[test]
fn cuts_random_text_and_zeros_as_the_crate_does() {
    let inputs = [
        pseudo_random(24 << 20, 7),
        csv(24 << 20),
        vec![0u8; 9 << 20],
        vec![0xa5u8; 5 << 20],
    ];
    for (min, avg, max) in SIZES {
        let c = Cutter::new(min, avg, max);
        for (k, d) in inputs.iter().enumerate() {
            // Small sizes cut many chunks: a slice is enough.
            let d = if avg < 64 << 10 {
                &d[..2 << 20]
            } else {
                &d[..]
            };
            assert_eq!(
                ours(&c, d),
                theirs(min, avg, max, d),
                "input {k}, sizes {min}/{avg}/{max}"
            );
        }
    }
}

/// Lengths at and around each threshold, odd and even, where the pairwise tests and the
/// rounding of the ends matter.
#[test]
fn cuts_every_length_near_the_thresholds_as_the_crate_does() {
    let (min, avg, max) = (64, 256, 1024);
    let c = Cutter::new(min, avg, max);
    let rnd = pseudo_random(8 * max, 3);
    let zeros = vec![0u8; 8 * max];
    for n in 0..=3 * max + 7 {
        assert_eq!(
            c.cut(&rnd[..n]),
            theirs(min, avg, max, &rnd[..n])
                .first()
                .copied()
                .unwrap_or(0),
            "random, {n} bytes"
        );
        assert_eq!(
            c.cut(&zeros[..n]),
            theirs(min, avg, max, &zeros[..n])
                .first()
                .copied()
                .unwrap_or(0),
            "zeros, {n} bytes"
        );
    }
    let big = Cutter::new(128 << 10, 512 << 10, 2 << 20);
    let rnd = pseudo_random(5 << 20, 5);
    for base in [128 << 10, 512 << 10, 2 << 20] {
        for n in base - 5..base + 6 {
            assert_eq!(
                ours(&big, &rnd[..n]),
                theirs(128 << 10, 512 << 10, 2 << 20, &rnd[..n]),
                "{n} bytes"
            );
        }
    }
}

/// Each start offset into the same bytes: the scan's four-byte steps fall differently.
#[test]
fn cuts_from_every_offset_as_the_crate_does() {
    let (min, avg, max) = (64, 256, 1024);
    let c = Cutter::new(min, avg, max);
    let d = csv(64 << 10);
    for off in 0..64 {
        assert_eq!(
            ours(&c, &d[off..]),
            theirs(min, avg, max, &d[off..]),
            "offset {off}"
        );
    }
}
