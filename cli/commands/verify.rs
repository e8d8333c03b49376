//! `dvx verify`.

use std::process::ExitCode;

use super::Ctx;
use crate::output;

/// Run a recorded execution again in a scratch folder, from its recorded inputs, and report
/// whether each output is bit-identical.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx verify 3f2a9c\n  dvx verify models/model.bin       # the run that made it\n  dvx verify out/f3.txt.n@v1 --json\n\nExits 1 if any output differs or the command fails."
)]
pub struct Args {
    /// Run id (or a unique prefix of it), or PATH[@REV]: the run that produced that file.
    #[arg(value_name = "RUN|PATH[@REV]")]
    target: String,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<ExitCode> {
    let (repo, id, rec) = ctx.run_or_path(&a.target)?;
    ctx.out
        .info(&format!("re-running {} ({})", id.short(), rec.stage));
    let rep = dvx_engine::verify::verify(&repo, &id, &rec)?;
    if ctx.json {
        ctx.out.json(&rep);
    } else {
        output::print_verify(ctx.out, &rep);
    }
    Ok(if rep.identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
