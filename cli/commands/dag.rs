//! `dvx dag`.

use dvx_engine::run::Engine;
use dvx_engine::store::{Access, Repo};

use super::Ctx;

/// Show the stage graph of dvx.yaml.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx dag\n  dvx dag --dot | dot -Tpng > dag.png\n  dvx dag --mermaid"
)]
pub struct Args {
    #[arg(long, conflicts_with = "mermaid")]
    dot: bool,
    #[arg(long)]
    mermaid: bool,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Read)?;
    let engine = Engine::open(&repo)?;
    let text = if a.dot {
        engine.dag.to_dot(&engine.pipeline)
    } else if a.mermaid {
        engine.dag.to_mermaid(&engine.pipeline)
    } else {
        engine.dag.to_text(&engine.pipeline)
    };
    print!("{text}");
    Ok(())
}
