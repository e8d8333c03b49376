//! `dvx import-dvc`.

use dvx_engine::dvc_import;
use dvx_engine::exec::Children;
use dvx_engine::store::Repo;

use super::Ctx;

/// Bring a DVC project over: dvc.yaml becomes dvx.yaml, data tracked by .dvc files is added,
/// data missing from the workspace comes from DVC's cache (checked against DVC's md5), and
/// stages DVC would call up to date are recorded as run, so `dvx run` executes nothing.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cd my-dvc-project && dvx import-dvc\n  dvx import-dvc --json\n\nKeep params.yaml and the code as they are; .dvc files, dvc.yaml and dvc.lock are left in place."
)]
pub struct Args {}

pub fn run(_a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    // The top of the DVC project: the folder holding .dvc, from where the user stands.
    let root = ctx
        .cwd
        .ancestors()
        .find(|d| d.join(".dvc").is_dir())
        .unwrap_or(&ctx.cwd)
        .to_path_buf();
    let rep = dvc_import::import_dvc(&root, &Children::default(), &ctx.bar)?;
    if ctx.json {
        ctx.out.json(&rep);
        return Ok(());
    }
    let out = ctx.out;
    if rep.pipeline {
        out.say("wrote dvx.yaml from dvc.yaml");
    }
    out.say(&format!(
        "tracked {} ({} brought from DVC's cache; {} checked against DVC's md5)",
        crate::output::count(rep.tracked.len() as u64, "path"),
        crate::output::count(rep.from_cache.len() as u64, "file"),
        crate::output::count(rep.verified, "file"),
    ));
    if !rep.adopted.is_empty() {
        out.say(&format!(
            "up to date, as DVC ran them: {}",
            rep.adopted.join(", ")
        ));
    }
    for (stage, why) in &rep.stale {
        out.say(&format!("stale: {stage} ({why}); `dvx run` runs it"));
    }
    if let Ok(repo) = Repo::open(&root, dvx_engine::store::Access::Read) {
        if let Ok(Some(head)) = repo.store.head_commit() {
            out.say(&format!("commit {}", head.short()));
        }
    }
    Ok(())
}
