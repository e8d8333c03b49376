//! dvx-engine: pipelines on top of the dvx store.
//!
//! `dvx.yaml` declares stages; the engine orders them by data flow, splits stages with an
//! input glob into datums, computes a key for every stage and datum, restores known results
//! from the run cache, runs the rest in parallel, and records every execution.
//!
//! The CLI talks to the engine, and the engine to the store (`cli → engine → store`); the
//! store is re-exported here so the CLI depends on one library.

pub mod combine;
pub mod confine;
pub mod container;
pub mod dag;
pub mod datum;
pub mod dvc_import;
pub mod error;
pub mod exec;
pub mod executor;
pub mod exp;
pub mod import;
pub mod job;
pub mod key;
pub mod lineage;
pub mod livelog;
pub mod metrics;
pub mod notebook;
pub mod params;
pub mod pathindex;
pub mod plots;
pub mod record;
pub mod run;
pub mod spec;
pub mod svg;
pub mod sync;
pub mod trigger;
pub mod unfetched;
pub mod verify;

pub use dvx_remote as remote;
pub use dvx_store as store;
pub use error::{EngineError, Result};
