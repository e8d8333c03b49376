//! `dvx logs`.

use std::io::Write;

use dvx_engine::record;
use dvx_engine::store::{Access, Repo, StoreError};
use dvx_engine::EngineError;

use super::Ctx;

/// Print the stored output (stdout, then stderr) of a run.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  dvx logs 3f2a9c\n  dvx logs 3f2a9c --stderr")]
pub struct Args {
    run: String,
    /// Only standard error.
    #[arg(long)]
    stderr: bool,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Read)?;
    let (_, rec) =
        record::find(&repo.store, &a.run)?.ok_or_else(|| EngineError::UnknownRun(a.run.clone()))?;
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    if !a.stderr {
        repo.store.write_file_to(&rec.stdout, &mut lock)?;
    }
    repo.store.write_file_to(&rec.stderr, &mut lock)?;
    lock.flush().map_err(|e| StoreError::io("<stdout>", e))?;
    Ok(())
}
