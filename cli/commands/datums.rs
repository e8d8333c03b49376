//! `dvx datums`.

use dvx_engine::run::Engine;
use dvx_engine::store::{Access, Repo};

use super::Ctx;
use crate::output::count;

/// List the datums a stage's input glob yields now (a dry run).
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  dvx datums process\n  dvx datums process --json")]
pub struct Args {
    stage: String,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::ReadOrWrite("dvx datums"))?;
    let engine = Engine::open(&repo)?;
    let ds = engine.datums(&a.stage, &ctx.bar)?;
    if ctx.json {
        ctx.out.json(&ds);
        return Ok(());
    }
    for d in &ds {
        println!(
            "{}  {}",
            d.input.as_ref().map(|i| i.id.short()).unwrap_or_default(),
            d.id
        );
    }
    ctx.out.say(&count(ds.len() as u64, "datum"));
    Ok(())
}
