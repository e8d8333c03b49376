//! `dvx diff`.

use dvx_engine::store::{Access, Repo};

use super::Ctx;
use crate::output;

/// Show added, removed and modified paths with sizes.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx diff                 # last commit vs the workspace\n  dvx diff HEAD~1          # a commit vs the workspace\n  dvx diff v1 v2           # two commits"
)]
pub struct Args {
    #[arg(num_args = 0..=2, value_name = "REV")]
    revs: Vec<String>,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::ReadOrWrite("dvx diff"))?;
    let revs = a
        .revs
        .iter()
        .map(|r| ctx.rev_id(&repo, r))
        .collect::<dvx_engine::store::Result<Vec<_>>>()?;
    let changes = repo.diff(
        revs.first().map(String::as_str),
        revs.get(1).map(String::as_str),
        &ctx.bar,
    )?;
    if ctx.json {
        ctx.out.json(&changes);
    } else {
        output::print_changes(ctx.out, &changes, |r| ctx.show(&repo, r));
    }
    Ok(())
}
