//! `dvx tag`: `dvx branch` for tags.

use super::branch::{refs, RefArgs};
use super::Ctx;

/// List, create or delete tags.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx tag\n  dvx tag v1.0\n  dvx tag baseline HEAD~3\n  dvx tag -d v1.0"
)]
pub struct Args {
    #[command(flatten)]
    refs: RefArgs,
}

impl Args {
    pub fn json_refusal(&self, kind: &str) -> Option<String> {
        self.refs.json_refusal(kind)
    }
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    refs(ctx, "tag", a.refs)
}
