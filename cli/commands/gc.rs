//! `dvx gc`.

use dvx_engine::store::{Access, Repo};

use super::Ctx;
use crate::output::{count, human_bytes};

/// Delete data no branch, tag, history, dvx.lock or run record needs.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  dvx gc --dry-run\n  dvx gc")]
pub struct Args {
    #[arg(long)]
    dry_run: bool,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Write("dvx gc"))?;
    let rep = repo.gc(a.dry_run, &ctx.bar)?;
    if ctx.json {
        ctx.out.json(&rep);
        return Ok(());
    }
    ctx.out.say(&format!(
        "{}{} and {} unreachable; {} {}; {} rewritten; {} kept",
        if a.dry_run { "dry run: " } else { "" },
        count(rep.objects_deleted, "object"),
        count(rep.chunks_deleted, "chunk"),
        human_bytes(rep.bytes_freed),
        if a.dry_run { "would be freed" } else { "freed" },
        count(rep.packs_rewritten, "pack"),
        count(rep.commits_kept, "commit")
    ));
    Ok(())
}
