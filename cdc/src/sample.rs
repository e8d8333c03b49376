//! Generated inputs for the tests and the bench (the bench includes this file by path).

/// Xorshift bytes: cut points land as in any high-entropy data.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Lines of a CSV: repetitive text, where cut points are sparse.
pub fn csv(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut i = 0u64;
    while out.len() < n {
        out.extend_from_slice(
            format!(
                "{i},{},{:.3},station-{}\n",
                i * 7919 % 10007,
                (i as f64).sqrt(),
                i % 97
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(n);
    out
}
