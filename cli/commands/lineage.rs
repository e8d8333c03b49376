//! `dvx lineage`.

use dvx_engine::lineage;

use super::Ctx;

/// Trace a file back to the data added by hand, through every run (or, with
/// --downstream, everything made from it).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx lineage models/model.bin\n  dvx lineage models/model.bin@v1 --json\n  dvx lineage data/raw.csv --downstream\n  dvx lineage out/f3.txt.n --depth 1\n  dvx lineage models/model.bin --dot | dot -Tpng > lineage.png\n  dvx lineage models/model.bin --mermaid\n  dvx lineage models/model.bin --svg > lineage.svg"
)]
pub struct Args {
    /// The file (or folder), optionally at a revision: PATH or PATH@REV (default HEAD).
    #[arg(value_name = "PATH[@REV]")]
    target: String,
    /// Everything derived from the file, in any commit, instead of where it came from.
    #[arg(long)]
    downstream: bool,
    /// Follow at most N runs.
    #[arg(long, value_name = "N")]
    depth: Option<usize>,
    /// Graphviz text.
    #[arg(long, conflicts_with_all = ["mermaid", "svg"])]
    dot: bool,
    /// Mermaid flowchart text.
    #[arg(long, conflicts_with = "svg")]
    mermaid: bool,
    /// An SVG picture on standard output (no Graphviz needed).
    #[arg(long)]
    svg: bool,
}

impl Args {
    /// One output format at a time: JSON excludes the pictures.
    pub fn json_conflict(&self) -> Option<String> {
        let other = [
            ("--dot", self.dot),
            ("--mermaid", self.mermaid),
            ("--svg", self.svg),
        ]
        .into_iter()
        .find(|(_, on)| *on)?
        .0;
        Some(format!(
            "the argument '--json' cannot be used with '{other}': `dvx lineage` prints one format"
        ))
    }
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = ctx.open_lineage()?;
    let (p, rev) = lineage::split_rev(&a.target);
    let rel = ctx.rel(&repo, p)?;
    let rev = match rev {
        "HEAD" => rev.to_string(),
        r => ctx.rev_id(&repo, r)?,
    };
    let g = lineage::lineage(&repo, &rel, &rev, a.downstream, a.depth)?;
    if ctx.json {
        ctx.out.json(&g);
        return Ok(());
    }
    let text = if a.dot {
        lineage::render_dot(&g)
    } else if a.mermaid {
        lineage::render_mermaid(&g)
    } else if a.svg {
        lineage::svg(&g)
    } else {
        lineage::render_tree(&g)
    };
    print!("{text}");
    Ok(())
}
