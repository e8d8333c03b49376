//! `dvx artifacts`: the artifacts dvx.yaml declares (DVC's top-level `artifacts:`).

use dvx_engine::run::Engine;
use dvx_engine::store::{Access, Repo};

use super::Ctx;
use crate::output;

/// List the artifacts (models, data sets) the top-level `artifacts:` of dvx.yaml declares.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  dvx artifacts\n  dvx artifacts --json")]
pub struct Args {}

pub fn run(_: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Read)?;
    let engine = Engine::open(&repo)?;
    output::print_artifacts(ctx.out, &engine.pipeline.sections.artifacts, ctx.json);
    Ok(())
}
