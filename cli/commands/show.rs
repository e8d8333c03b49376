//! `dvx show`.

use super::Ctx;
use crate::output;

/// Print a run record: what ran, on which inputs, with what result.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx show 3f2a9c\n  dvx show 3f2a9c --json\n  dvx show models/model.bin        # the run that made it (HEAD)\n  dvx show models/model.bin@v1 --json\n  dvx show reports/explore.ipynb --html explore.html   # the executed notebook as a page"
)]
pub struct Args {
    /// Run id (or a unique prefix of it), or PATH[@REV]: the run that produced that file.
    #[arg(value_name = "RUN|PATH[@REV]")]
    run: String,
    /// Notebook stages: write the executed notebook (kept for failed runs too) as one
    /// self-contained HTML page to PAGE (`-`: standard output).
    #[arg(long, value_name = "PAGE")]
    html: Option<std::path::PathBuf>,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let (repo, id, rec) = ctx.run_or_path(&a.run)?;
    if let Some(page) = &a.html {
        let html = dvx_engine::notebook::render_run(&repo.store, &id, &rec)?;
        if page.as_os_str() == "-" {
            print!("{html}");
        } else {
            std::fs::write(page, html).map_err(|e| dvx_engine::store::StoreError::io(page, e))?;
            ctx.out.say(&format!("wrote {}", page.display()));
        }
        return Ok(());
    }
    if ctx.json {
        let mut v = serde_json::to_value(&rec).unwrap_or_default();
        v["id"] = serde_json::Value::String(id.to_hex());
        ctx.out.json(&v);
    } else {
        output::print_record(&id, &rec);
    }
    Ok(())
}
