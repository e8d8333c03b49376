//! `dvx fetch`.

use dvx_engine::remote::fetch::Want;
use dvx_engine::remote::Remote;
use dvx_engine::store::{Access, Repo};
use dvx_engine::sync;

use super::Ctx;
use crate::output::print_fetch;

/// Download a remote's branches, tags and data (into the store; the workspace is left alone).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx fetch\n  dvx fetch origin --all-history\n  dvx log origin/main\n\nBranches land as REMOTE/BRANCH. By default the data of each branch's newest commit comes\ndown; --all-history brings every commit's data."
)]
pub struct Args {
    remote: Option<String>,
    /// Data of every commit, not just each branch's newest.
    #[arg(long)]
    all_history: bool,
    /// Leave the run cache out: push only what the pushed commits reach; fetch no
    /// outputs of other runs and add nothing to the local run cache.
    #[arg(long)]
    no_run_cache: bool,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Write("dvx fetch"))?;
    let mut remote = Remote::open(&repo, a.remote.as_deref())?;
    remote.run_cache = !a.no_run_cache;
    let want = if a.all_history {
        Want::History
    } else {
        Want::Tips
    };
    let rep = sync::fetch(&repo, &remote, &want, &ctx.bar)?;
    if ctx.json {
        ctx.out.json(&rep);
    } else {
        print_fetch(ctx.out, &rep);
    }
    Ok(())
}
