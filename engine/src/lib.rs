//! dvx-engine: pipelines on top of the dvx store.
//!
//! The CLI talks to the engine, and the engine to the store (`cli → engine → store`); the
//! store is re-exported here so the CLI depends on one library.

pub use dvx_store as store;
