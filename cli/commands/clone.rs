//! `dvx clone`.

use std::path::PathBuf;

use dvx_engine::remote::ops::CloneOptions;
use dvx_engine::store::config::RemoteConfig;
use dvx_engine::sync;

use super::Ctx;
use crate::output::{count, human_bytes, print_fetch};

/// Make a new project from a remote, with its default branch checked out.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx clone s3://team-data/cats cats --endpoint http://127.0.0.1:9000\n  dvx clone /mnt/share/cats cats\n  dvx clone s3://team-data/cats cats --no-checkout && cd cats && dvx pull images/2024"
)]
pub struct Args {
    /// s3://bucket/prefix, gs://bucket/prefix, az://container/prefix, file:///path or a folder.
    url: String,
    /// Folder to create (default: the last part of the URL).
    dir: Option<PathBuf>,
    /// Branch to check out (default: the remote's default branch).
    #[arg(short, long)]
    branch: Option<String>,
    /// Fetch commits and trees only; bring data later with `dvx pull [PATH...]`.
    #[arg(long)]
    no_checkout: bool,
    /// Leave the run cache out: push only what the pushed commits reach; fetch no
    /// outputs of other runs and add nothing to the local run cache.
    #[arg(long)]
    no_run_cache: bool,
    #[command(flatten)]
    pub conn: RemoteConfig,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let out = ctx.out;
    let url = sync::absolute_url(&ctx.cwd, &a.url);
    let dir = match a.dir {
        Some(d) => ctx.cwd.join(d),
        None => sync::clone_dir(&ctx.cwd, &url)?,
    };
    let rc = RemoteConfig { url, ..a.conn };
    let opts = CloneOptions {
        branch: a.branch,
        no_checkout: a.no_checkout,
        run_cache: !a.no_run_cache,
    };
    let rep = sync::clone(&dir, rc, &opts, &ctx.bar)?;
    if ctx.json {
        out.json(&rep);
        return Ok(());
    }
    out.say(&format!("cloned into {}", rep.root));
    print_fetch(out, &rep.fetch);
    match (&rep.branch, &rep.checkout) {
        (Some(b), Some(c)) => out.say(&format!(
            "checked out {b} at {}: wrote {} ({})",
            c.commit.short(),
            count(c.written, "file"),
            human_bytes(c.bytes_written)
        )),
        (Some(b), None) => out.say(&format!(
            "on branch {b}; no data checked out (bring it with `dvx pull [PATH...]`)"
        )),
        (None, _) => out.say("the remote has no branches yet"),
    }
    Ok(())
}
