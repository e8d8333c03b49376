//! `dvx status`, and `dvx status --remote`.

use std::process::ExitCode;

use dvx_engine::remote::{Project, Remote};
use dvx_engine::run::Engine;
use dvx_engine::store::{Access, Repo};
use dvx_engine::EngineError;

use super::Ctx;
use crate::output::{self, count, human_bytes};

/// Show tracked paths that were modified, deleted or added since the last commit.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx status\n  dvx status --json | jq .modified\n  dvx status --remote          # what a push would send to the default remote\n  dvx status --exit-code       # in CI: fail when data changed or a stage is stale"
)]
pub struct Args {
    /// Compare branches with a remote (default: the default remote) instead.
    #[arg(long, value_name = "REMOTE", num_args = 0..=1, default_missing_value = "")]
    remote: Option<String>,
    /// Exit with status 1 when tracked data changed or a stage is stale (as `git diff
    /// --exit-code`), 0 when everything is committed and up to date.
    #[arg(long, conflicts_with = "remote")]
    exit_code: bool,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<ExitCode> {
    if let Some(r) = a.remote {
        remote_status(ctx, r)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Read-only: a no-op status writes nothing; new hashes are saved by a short writer.
    let repo = Repo::open(&ctx.cwd, Access::Read)?;
    let st = repo.status(&ctx.bar)?;
    let (stages, warnings) = match Engine::open(&repo) {
        // No store yet (a fresh `git clone`): what dvx.lock says of each stage.
        Ok(_) if !st.fetched => (
            Some(dvx_engine::unfetched::stage_status(&repo)?),
            Vec::new(),
        ),
        Ok(mut e) => {
            let r = e.status(&ctx.bar)?;
            (Some(r.stages), r.warnings)
        }
        Err(EngineError::NoPipeline(_)) => (None, Vec::new()),
        Err(e) => return Err(e),
    };
    if ctx.json {
        let mut v = serde_json::to_value(&st).unwrap_or_default();
        v["stages"] = serde_json::to_value(&stages).unwrap_or_default();
        v["warnings"] = serde_json::to_value(&warnings).unwrap_or_default();
        ctx.out.json(&v);
    } else {
        output::print_warnings(&warnings);
        output::print_status(ctx.out, &st, |r| ctx.show(&repo, r));
        if let Some(stages) = &stages {
            output::print_stage_status(ctx.out, stages);
        }
    }
    let stale = stages
        .as_deref()
        .is_some_and(|s| !output::stale(s).is_empty());
    if a.exit_code && (!st.clean || stale) {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `--remote [NAME]`: an empty name is the default remote.
fn remote_status(ctx: &Ctx, remote: String) -> dvx_engine::Result<()> {
    let out = ctx.out;
    let repo = Repo::open(&ctx.cwd, Access::Read)?;
    let name = (!remote.is_empty()).then_some(remote);
    let remote = Remote::open(&repo, name.as_deref())?;
    let st = Project(&repo).remote_status(&remote, true)?;
    if ctx.json {
        out.json(&st);
        return Ok(());
    }
    out.say(&format!("remote {} ({})", st.remote, st.url));
    for b in &st.branches {
        let r = b.remote.map(|r| r.short()).unwrap_or_else(|| "-".into());
        out.say(&format!(
            "  {:<20} local {}  remote {}  {}",
            b.branch,
            b.local.short(),
            r,
            b.state
        ));
    }
    if st.objects_to_push == 0 {
        out.say("everything is pushed");
    } else {
        out.say(&format!(
            "not pushed: {} ({})",
            count(st.objects_to_push, "object"),
            human_bytes(st.bytes_to_push)
        ));
    }
    Ok(())
}
