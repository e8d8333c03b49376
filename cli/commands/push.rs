//! `dvx push`.

use dvx_engine::remote::push::PushOptions;
use dvx_engine::remote::{Project, Remote};
use dvx_engine::store::{Access, Repo};

use super::Ctx;
use crate::output::{count, human_bytes, print_refs};

/// Upload commits and their data to a remote, then move its branches.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx push                      # the current branch to the default remote\n  dvx push origin main v1.0     # a branch and a tag\n  dvx push --all --dry-run      # what would go up\n\nData goes up first, in packs; the remote's branches move last and only as fast-forwards,\nso two people pushing at once never lose a commit: the later one is told to fetch first.\nA push that was interrupted uploads only what is still missing when run again."
)]
pub struct Args {
    /// Remote name (default: the default remote) or URL.
    remote: Option<String>,
    /// Branches or tags to push (default: the current branch).
    #[arg(value_name = "REV")]
    revs: Vec<String>,
    /// Push every branch and tag.
    #[arg(long)]
    all: bool,
    /// Replace the remote's branch even if that drops commits it has.
    #[arg(long)]
    force: bool,
    /// Show what would be uploaded; upload nothing.
    #[arg(long)]
    dry_run: bool,
    /// Leave the run cache out: push only what the pushed commits reach; fetch no
    /// outputs of other runs and add nothing to the local run cache.
    #[arg(long)]
    no_run_cache: bool,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    // Reading only: a long push does not keep others from writing.
    let repo = Repo::open(&ctx.cwd, Access::Read)?;
    let mut remote = Remote::open(&repo, a.remote.as_deref())?;
    remote.run_cache = !a.no_run_cache;
    let opts = PushOptions {
        refs: a.revs,
        all: a.all,
        force: a.force,
        dry_run: a.dry_run,
    };
    let rep = Project(&repo).push(&remote, &opts, &ctx.bar)?;
    if !a.dry_run {
        Project(&repo).record_remote_refs(&remote.name, &rep.refs)?;
    }
    if ctx.json {
        ctx.out.json(&rep);
        return Ok(());
    }
    let verb = if a.dry_run {
        "would upload"
    } else {
        "uploaded"
    };
    ctx.out.say(&format!(
        "{} {}: {verb} {} ({}) in {}",
        if a.dry_run {
            "dry run: push to"
        } else {
            "pushed to"
        },
        remote.name,
        count(rep.objects, "object"),
        human_bytes(rep.bytes),
        count(rep.packs, "pack")
    ));
    print_refs(ctx.out, &rep.refs);
    Ok(())
}
