//! `dvx cat`.

use std::io::Write;

use dvx_engine::store::{Access, Repo, StoreError};

use super::Ctx;

/// Print a file as a commit has it.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx cat HEAD:data/raw.csv | head\n  dvx cat v1:params.yaml > old-params.yaml"
)]
pub struct Args {
    /// REV:PATH
    #[arg(value_name = "REV:PATH")]
    spec: String,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Read)?;
    let (rev, path) = a
        .spec
        .split_once(':')
        .ok_or_else(|| StoreError::InvalidPath {
            path: a.spec.clone(),
            reason: "expected REV:PATH, such as HEAD:data/raw.csv".into(),
        })?;
    let rel = ctx.rel(&repo, path)?;
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    repo.cat(if rev.is_empty() { "HEAD" } else { rev }, &rel, &mut lock)?;
    lock.flush().map_err(|e| StoreError::io("<stdout>", e))?;
    Ok(())
}
