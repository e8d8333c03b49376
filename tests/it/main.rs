//! End-to-end tests: the real `dvx` binary against real files, git and processes.

mod common;
mod concurrency;
mod errors;
mod lineage;
mod pipeline;
mod safety;
mod workflow;
