//! `dvx params show|diff`.

use dvx_engine::metrics;
use dvx_engine::run::Engine;
use dvx_engine::store::{Access, Repo};

use super::Ctx;
use crate::output;

#[derive(clap::Subcommand)]
pub enum Cmd {
    Show(ShowArgs),
    Diff(DiffArgs),
}

/// Print the parameter values stages use: from the workspace, or as a commit's runs used them.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  dvx params show\n  dvx params show v1 --json")]
pub struct ShowArgs {
    rev: Option<String>,
}

/// Compare the parameters stages ran with (default: HEAD and the workspace).
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  dvx params diff\n  dvx params diff v1 v2 --json")]
pub struct DiffArgs {
    #[arg(num_args = 0..=2, value_name = "REV")]
    revs: Vec<String>,
}

pub fn run(cmd: Cmd, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Read)?;
    let engine = Engine::open(&repo)?;
    let p = &engine.pipeline;
    let at = |rev: &str| {
        let id = ctx.rev_id(&repo, rev)?;
        metrics::at_rev(&repo, p, &id).map(|(_, params)| params)
    };
    let a = match cmd {
        Cmd::Diff(a) => a,
        Cmd::Show(a) => {
            let params = match a.rev {
                Some(r) => at(&r)?,
                None => metrics::workspace_params(&repo, p)?,
            };
            if ctx.json {
                ctx.out.json(&params);
                return Ok(());
            }
            for (path, kv) in &params {
                ctx.out.say(path);
                for (k, v) in kv {
                    ctx.out.say(&format!("  {k:<30} {v}"));
                }
            }
            return Ok(());
        }
    };
    let old = at(a.revs.first().map(String::as_str).unwrap_or("HEAD"))?;
    let new = match a.revs.get(1) {
        Some(r) => at(r)?,
        None => metrics::workspace_params(&repo, p)?,
    };
    output::print_deltas(ctx.out, &metrics::diff(&old, &new), ctx.json);
    Ok(())
}
