//! `dvx fsck`.

use std::process::ExitCode;

use dvx_engine::lineage;
use dvx_engine::store::{Access, ErrorClass, Repo};

use super::Ctx;
use crate::output::count;

/// Verify every table of the database and re-hash every stored object; rebuild what can be
/// derived again (the stat cache, the lineage index) and report damaged or missing data.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx fsck\n  dvx fsck --json\n  dvx fsck --reindex\n  dvx fsck --recover   # after \"a write-ahead log file is damaged\"\n\nExits 1 if anything is wrong."
)]
pub struct Args {
    /// Also rebuild the lineage indexes from commits and run records.
    #[arg(long)]
    reindex: bool,
    /// Open a store whose write-ahead log is damaged: keep every write before the damaged
    /// record, drop the ones after it (fetch them again from a remote), then check.
    #[arg(long)]
    recover: bool,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<ExitCode> {
    let (cwd, out) = (&ctx.cwd, ctx.out);
    if a.recover {
        let w = Repo::open(cwd, Access::Salvage("dvx fsck --recover"))?;
        if !out.quiet {
            eprintln!(
                "opened the store at its last consistent point; writes after the damaged log record were dropped"
            );
        }
        drop(w);
    }
    if a.reindex {
        let w = Repo::open(cwd, Access::Write("dvx fsck --reindex"))?;
        let r = lineage::reindex(&w.store)?;
        if !out.quiet {
            eprintln!(
                "rebuilt the lineage index from {} commits and {} run records",
                r.commits, r.runs
            );
        }
    }
    // Writing when no one else does, so that derivable damage is rebuilt on the spot.
    let repo = Repo::open(cwd, Access::ReadOrWrite("dvx fsck"))?;
    let promised = dvx_engine::remote::promised_ids(&repo.dot);
    let rep = repo.fsck(&promised, &ctx.bar)?;
    let bad = !rep.problems.is_empty();
    if ctx.json {
        out.json(&rep);
    } else {
        for r in &rep.repaired {
            eprintln!("repaired: {r}");
        }
        for p in &rep.problems {
            println!("{} {}: {}", p.kind, p.id, p.problem);
        }
        out.say(&format!(
            "checked {} chunks, {} objects, {} refs: {}",
            rep.chunks,
            rep.objects,
            rep.refs,
            if bad {
                count(rep.problems.len() as u64, "problem")
            } else {
                "all good".into()
            }
        ));
    }
    if !bad {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "error: the store has {} damaged or missing objects",
        rep.problems.len()
    );
    eprintln!("hint: fetch them again from a remote, or re-add the data; then run `dvx gc`");
    Ok(ExitCode::from(ErrorClass::Integrity.exit_code()))
}
