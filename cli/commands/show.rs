//! `dvx show`.

use super::Ctx;
use crate::output;

/// Print a run record: what ran, on which inputs, with what result.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx show 3f2a9c\n  dvx show 3f2a9c --json\n  dvx show models/model.bin        # the run that made it (HEAD)\n  dvx show models/model.bin@v1 --json"
)]
pub struct Args {
    /// Run id (or a unique prefix of it), or PATH[@REV]: the run that produced that file.
    #[arg(value_name = "RUN|PATH[@REV]")]
    run: String,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let (_repo, id, rec) = ctx.run_or_path(&a.run)?;
    if ctx.json {
        let mut v = serde_json::to_value(&rec).unwrap_or_default();
        v["id"] = serde_json::Value::String(id.to_hex());
        ctx.out.json(&v);
    } else {
        output::print_record(&id, &rec);
    }
    Ok(())
}
