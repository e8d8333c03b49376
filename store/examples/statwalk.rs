//! Baseline for benchmarks: a bare parallel walk that lstat()s every entry under a folder and
//! prints how many files it saw. `dvx status` is compared against this.

use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

fn walk(dir: &Path) -> u64 {
    let mut files = 0;
    let mut subdirs: Vec<PathBuf> = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if let Ok(m) = e.metadata() {
                if m.is_dir() {
                    subdirs.push(e.path());
                } else {
                    files += 1;
                }
            }
        }
    }
    files + subdirs.par_iter().map(|d| walk(d)).sum::<u64>()
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    println!("{}", walk(Path::new(&dir)));
}
