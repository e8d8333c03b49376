//! `dvx ls`.

use dvx_engine::store::object::EntryKind;
use dvx_engine::store::{Access, Repo};

use super::Ctx;
use crate::output::human_bytes;

/// List what a commit holds.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx ls                       # HEAD, here\n  dvx ls HEAD~1 data -r\n  dvx ls v1 --json"
)]
pub struct Args {
    /// [REV] [PATH]
    #[arg(num_args = 0..=2, value_name = "REV|PATH")]
    args: Vec<String>,
    #[arg(short, long)]
    recursive: bool,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Read)?;
    // One argument is a revision if it names one, else a path at HEAD.
    let (rev, path) = match a.args.as_slice() {
        [] => ("HEAD".to_string(), None),
        [one] if repo.resolve_rev(one).is_ok() => (one.clone(), None),
        [one] => ("HEAD".to_string(), Some(one.clone())),
        [r, p, ..] => (r.clone(), Some(p.clone())),
    };
    let rev = match rev.as_str() {
        // HEAD is the data HEAD while there is one; otherwise (a clone that `cat --fetch`
        // fetched into, with no dvx ref yet) git's HEAD, through its dvx.lock.
        "HEAD" if repo.store.resolve("HEAD").is_ok() => rev,
        r => ctx.rev_id(&repo, r)?,
    };
    let rel = ctx.rel(&repo, path.as_deref().unwrap_or("."))?;
    let entries = repo.ls(&rev, &rel, a.recursive)?;
    if ctx.json {
        ctx.out.json(&entries);
        return Ok(());
    }
    for e in entries {
        let mark = if e.kind == EntryKind::Dir { "/" } else { "" };
        ctx.out.say(&format!(
            "{:<7} {:>10}  {}  {}{mark}",
            e.kind.as_str(),
            human_bytes(e.size),
            e.id.short(),
            ctx.show(&repo, &e.path)
        ));
    }
    Ok(())
}
