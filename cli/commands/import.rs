//! `dvx import`, and the report it shares with `dvx update`.

use std::path::PathBuf;

use dvx_engine::import::{self, ImportReport};
use dvx_engine::store::config::RemoteConfig;
use dvx_engine::store::{Access, Repo};

use super::Ctx;
use crate::output::{count, human_bytes, Out};

/// Bring data from another dvx project, pinned to a commit of it (lineage records where it came from).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx import s3://team-data/raw images/2024 -o data/images\n  dvx import /mnt/share/labels labels.csv --rev v3\n  dvx import origin-of-truth data/ref --endpoint http://127.0.0.1:9000\n\nThe source is a remote URL (or the name of one of this project's remotes). dvx.lock\nrecords the source; `dvx update DEST` moves the import to the source's newest commit."
)]
pub struct Args {
    /// The other project's remote URL, or a remote name of this project.
    url: String,
    /// Path inside that project.
    path: String,
    /// Branch, tag or full commit id there (default: its default branch).
    #[arg(long)]
    rev: Option<String>,
    /// Where to put it here (default: the last part of PATH, in the current folder).
    #[arg(short, long, value_name = "DEST")]
    out: Option<PathBuf>,
    /// Replace what is at DEST.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    conn: RemoteConfig,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Write("dvx import"))?;
    let dest = a
        .out
        .unwrap_or_else(|| PathBuf::from(import::default_dest(&a.path)));
    let rel = ctx.rel(&repo, &dest)?;
    let rc = import::source(&repo, &ctx.cwd, &a.url, a.conn);
    let rep = import::import(
        &repo,
        &rc,
        &a.path,
        a.rev.as_deref(),
        &rel,
        a.force,
        &ctx.bar,
    )?;
    print_import(ctx.out, &rep, ctx.json);
    Ok(())
}

pub fn print_import(out: &Out, rep: &ImportReport, json: bool) {
    let src = &rep.source;
    if json {
        out.json(rep);
    } else if !rep.changed {
        out.say(&format!(
            "{} is up to date with {}:{} at {}",
            rep.dest,
            src.remote.url,
            src.path,
            src.commit.short()
        ));
    } else {
        out.say(&format!(
            "imported {}:{} at {} into {}: wrote {} ({})",
            src.remote.url,
            src.path,
            src.commit.short(),
            rep.dest,
            count(rep.files_written, "file"),
            human_bytes(rep.bytes_written)
        ));
    }
}
