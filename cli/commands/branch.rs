//! `dvx branch`, and what it shares with `dvx tag`.

use dvx_engine::store::refs::{Head, HEADS, TAGS};
use dvx_engine::store::{Access, Repo};

use super::Ctx;

/// List, create or delete branches.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx branch\n  dvx branch experiment         # at HEAD\n  dvx checkout experiment\n  dvx branch -d experiment"
)]
pub struct Args {
    #[command(flatten)]
    pub refs: RefArgs,
}

// The arguments of `branch` and `tag` (no doc comment: clap would take it for their about).
#[derive(clap::Args)]
pub struct RefArgs {
    name: Option<String>,
    rev: Option<String>,
    #[arg(short, long, value_name = "NAME", conflicts_with = "name")]
    delete: Option<String>,
}

impl RefArgs {
    /// Only the listing has JSON output.
    pub fn json_refusal(&self, kind: &str) -> Option<String> {
        (self.name.is_some() || self.delete.is_some()).then(|| {
            format!("only the listing of `dvx {kind}` has JSON output; leave out --json to create or delete a {kind}")
        })
    }
}

impl Args {
    pub fn json_refusal(&self, kind: &str) -> Option<String> {
        self.refs.json_refusal(kind)
    }
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    refs(ctx, "branch", a.refs)
}

/// List, create or delete branches or tags (`kind`).
pub fn refs(ctx: &Ctx, kind: &str, a: RefArgs) -> dvx_engine::Result<()> {
    let out = ctx.out;
    if let Some(d) = a.delete {
        let repo = Repo::open(&ctx.cwd, Access::Write("dvx branch/tag -d"))?;
        let id = repo.delete_ref(kind, &d)?;
        out.say(&format!("deleted {kind} {d} (was {})", id.short()));
        return Ok(());
    }
    if let Some(n) = a.name {
        let repo = Repo::open(&ctx.cwd, Access::Write("dvx branch/tag"))?;
        let id = repo.create_ref(kind, &n, a.rev.as_deref())?;
        out.say(&format!("created {kind} {n} at {}", id.short()));
        return Ok(());
    }
    let repo = Repo::open(&ctx.cwd, Access::Read)?;
    let prefix = if kind == "tag" { TAGS } else { HEADS };
    let list = repo.store.list_refs(prefix)?;
    let head = repo.store.head()?;
    let current = |n: &str| kind == "branch" && head == Head::Branch(n.to_string());
    if ctx.json {
        let v: Vec<serde_json::Value> = list
            .iter()
            .map(|(n, id)| serde_json::json!({"name": n, "commit": id, "current": current(n)}))
            .collect();
        out.json(&v);
    } else {
        for (n, id) in list {
            let star = if current(&n) { "*" } else { " " };
            out.say(&format!("{star} {n} {}", id.short()));
        }
    }
    Ok(())
}
