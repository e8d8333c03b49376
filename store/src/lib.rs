//! dvx-store: the content-addressed store behind dvx.
//!
//! Files are named by the BLAKE3 hash of their content and cut into content-defined chunks;
//! chunks live in pack files indexed by RocksDB; directories are Merkle trees; commits snapshot
//! all tracked data. See `schemas/` for the exact encodings and the book for the design.

pub mod access;
pub mod checkout;
pub mod chunking;
pub mod config;
pub mod db;
mod directio;
pub mod error;
pub mod fastdiff;
pub mod fsutil;
pub mod gitutil;
pub mod guard;
pub mod id;
pub mod ingest;
pub mod limits;
pub mod lineage;
mod listing;
pub mod lock;
pub mod lockfile;
pub mod maint;
pub mod object;
pub mod ops;
pub mod pack;
pub mod paths;
#[cfg(test)]
mod proptests;
pub mod range;
pub mod refs;
pub mod repo;
pub mod revision;
pub mod statcache;
pub mod store;
#[cfg(any(test, feature = "test-strategies"))]
pub mod strategies;
mod unfetched;
pub mod worktree;

pub use error::{ErrorClass, Result, StoreError};
pub use id::Id;
pub use repo::{Access, Repo};

/// Progress of long work, shown by the CLI. Implementations must be cheap and thread-safe.
pub trait Progress: Sync {
    fn start(&self, _what: &str, _total: u64) {}
    /// Like `start`, counting bytes (shown with a rate).
    fn start_bytes(&self, what: &str, total: u64) {
        self.start(what, total)
    }
    fn inc(&self, _n: u64) {}
    fn finish(&self) {}
}

/// No progress display.
pub struct Quiet;
impl Progress for Quiet {}
