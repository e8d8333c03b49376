//! `dvx cat`.

use std::io::Write;

use dvx_engine::store::revision::GIT_PREFIX;
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
    // `git:REV:PATH` names a git revision; its own colon is not the separator.
    let (git, rest) = match a.spec.strip_prefix(GIT_PREFIX) {
        Some(r) => (GIT_PREFIX, r),
        None => ("", a.spec.as_str()),
    };
    let (rev, path) = rest
        .split_once(':')
        .ok_or_else(|| StoreError::InvalidPath {
            path: a.spec.clone(),
            reason: "expected REV:PATH, such as HEAD:data/raw.csv".into(),
        })?;
    let rel = ctx.rel(&repo, path)?;
    let rev = match rev {
        "" | "HEAD" if git.is_empty() => "HEAD".to_string(),
        // cat has no JSON output: the note is always text.
        r => {
            let res = repo.resolve_rev(&format!("{git}{r}"))?;
            ctx.out.revision(&res, false);
            res.commit.to_hex()
        }
    };
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    repo.cat(&rev, &rel, &mut lock)?;
    lock.flush().map_err(|e| StoreError::io("<stdout>", e))?;
    Ok(())
}
