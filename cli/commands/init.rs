//! `dvx init`.

use dvx_engine::store::Repo;

use super::Ctx;

/// Create a dvx project (.dvx/) in the current folder.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  git init && dvx init      # data versions beside code versions\n  dvx init                  # works outside git too"
)]
pub struct Args {}

pub fn run(_: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let r = Repo::init(&ctx.cwd)?;
    ctx.out.say(&format!(
        "initialised an empty dvx project in {}",
        r.root.join(".dvx").display()
    ));
    if let Some(g) = r.git {
        ctx.out.info(&format!(
            "inside the git work tree {}: dvx internals are git-ignored",
            g.display()
        ));
    }
    Ok(())
}
