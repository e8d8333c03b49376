//! `dvx plots show|diff`.

use std::path::PathBuf;

use dvx_engine::plots::{self, render, Source};
use dvx_engine::run::Engine;
use dvx_engine::store::{Access, Repo, StoreError};

use super::Ctx;

#[derive(clap::Subcommand)]
pub enum Cmd {
    Show(ShowArgs),
    Diff(DiffArgs),
}

/// Draw the plots stages declare (CSV, TSV, JSON or YAML files; DVCLive's as they are): one
/// line per revision, to a self-contained HTML page and one SVG per plot.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx plots show                    # the workspace\n  dvx plots show HEAD~2 HEAD v1     # one line per revision\n  dvx plots show -o report/plots\n  dvx plots show HEAD --json"
)]
pub struct ShowArgs {
    /// Revisions to draw (default: the workspace).
    #[arg(value_name = "REV")]
    revs: Vec<String>,
    #[command(flatten)]
    out: OutArgs,
}

/// Compare plots of two revisions (default: HEAD and the workspace).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx plots diff                    # HEAD vs the workspace\n  dvx plots diff main experiment\n  dvx plots diff HEAD~1 --json"
)]
pub struct DiffArgs {
    #[arg(num_args = 0..=2, value_name = "REV")]
    revs: Vec<String>,
    #[command(flatten)]
    out: OutArgs,
}

#[derive(clap::Args)]
pub struct OutArgs {
    /// Folder to write index.html and the SVG files into.
    #[arg(short, long, default_value = "dvx_plots", value_name = "DIR")]
    output: PathBuf,
}

pub fn run(cmd: Cmd, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Read)?;
    let engine = Engine::open(&repo)?;
    let source = |rev: &str| -> dvx_engine::Result<Source> {
        let id = repo.store.resolve(&ctx.rev_id(&repo, rev)?)?;
        Ok(Source::Commit {
            name: rev.to_string(),
            id,
        })
    };
    let (sources, out, title) = match cmd {
        Cmd::Show(a) if a.revs.is_empty() => (vec![Source::Workspace], a.out, "plots".to_string()),
        Cmd::Show(a) => (
            a.revs
                .iter()
                .map(|r| source(r))
                .collect::<Result<Vec<_>, _>>()?,
            a.out,
            format!("plots at {}", a.revs.join(", ")),
        ),
        Cmd::Diff(a) => {
            let old = a.revs.first().map(String::as_str).unwrap_or("HEAD");
            let new = match a.revs.get(1) {
                Some(r) => source(r)?,
                None => Source::Workspace,
            };
            let newname = a.revs.get(1).cloned().unwrap_or_else(|| "workspace".into());
            (
                vec![source(old)?, new],
                a.out,
                format!("plots: {old} vs {newname}"),
            )
        }
    };
    let defs = plots::definitions(&engine.pipeline);
    let data = plots::collect(&repo, &defs, &sources)?;
    if ctx.json {
        ctx.out.json(&plots::as_json(&data));
        return Ok(());
    }
    if defs.is_empty() {
        ctx.out
            .say("no plots: declare `plots:` on a stage or at the top of dvx.yaml");
        return Ok(());
    }
    let dir = ctx.cwd.join(&out.output);
    std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
    for (k, p) in data.iter().enumerate() {
        let f = dir.join(format!("{k}-{}.svg", p.id.replace(['/', '\\'], "_")));
        std::fs::write(&f, render::svg(p)).map_err(|e| StoreError::io(&f, e))?;
    }
    let index = dir.join("index.html");
    std::fs::write(&index, render::html(&title, &data)).map_err(|e| StoreError::io(&index, e))?;
    let lines: usize = data.iter().map(|p| p.series.len()).sum();
    ctx.out.say(&format!(
        "wrote {} ({} with {})",
        index.display(),
        crate::output::count(data.len() as u64, "plot"),
        crate::output::count(lines as u64, "line"),
    ));
    Ok(())
}
