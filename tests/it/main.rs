//! End-to-end tests: the real `dvx` binary against real files, git and processes.

mod browser;
mod clone;
mod combine;
mod common;
mod concurrency;
mod containers;
mod docs;
mod durability;
mod dvc_compat;
mod dvclive;
mod errors;
mod exit_codes;
mod hostile;
mod input_limits;
mod lineage;
mod pachyderm;
mod pipeline;
mod plots;
mod python;
mod ranged;
mod remote;
mod safety;
mod scheduling;
mod serve;
mod triggers;
mod workflow;
