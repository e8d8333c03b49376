//! `dvx metrics show|diff`.

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

/// Print metrics: from the workspace, or as a commit recorded them.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  dvx metrics show\n  dvx metrics show v1 --json")]
pub struct ShowArgs {
    rev: Option<String>,
}

/// Compare metrics of two commits (default: HEAD and the workspace).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx metrics diff                 # HEAD vs the workspace\n  dvx metrics diff v1 v2\n  dvx metrics diff HEAD~1 --json"
)]
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
        metrics::at_rev(&repo, p, &id).map(|(m, _)| m)
    };
    match cmd {
        Cmd::Show(a) => {
            let m = match a.rev {
                Some(r) => at(&r)?,
                None => metrics::workspace_metrics(&repo, p),
            };
            if ctx.json {
                ctx.out.json(&m);
                return Ok(());
            }
            for (path, kv) in &m {
                println!("{path}");
                for (k, v) in kv {
                    println!("  {k:<30} {v}");
                }
            }
        }
        Cmd::Diff(a) => {
            let old = at(a.revs.first().map(String::as_str).unwrap_or("HEAD"))?;
            let new = match a.revs.get(1) {
                Some(r) => at(r)?,
                None => metrics::workspace_metrics(&repo, p),
            };
            output::print_deltas(ctx.out, &metrics::diff(&old, &new), ctx.json);
        }
    }
    Ok(())
}
