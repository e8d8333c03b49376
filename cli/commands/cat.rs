//! `dvx cat`.

use std::io::Write;

use dvx_engine::remote::Remote;
use dvx_engine::store::revision::GIT_PREFIX;
use dvx_engine::store::{Access, Repo, StoreError};
use dvx_engine::{sync, EngineError};

use super::Ctx;

/// Print a file as a commit has it.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx cat HEAD:data/raw.csv | head\n  dvx cat v1:params.yaml > old-params.yaml\n  dvx cat v1:data/big.parquet --offset 4096 --length 65536 > part.bin\n  dvx cat --fetch HEAD:data/raw.csv     # in a clone whose data is on the remote\n\nA whole file is checked against its id. A range (--offset, --length) reads only the chunks\nit overlaps and checks each of them, but not the whole-file id, which needs every byte;\n`dvx ls --json REV PATH` gives a file's size and id without reading it."
)]
pub struct Args {
    /// REV:PATH
    #[arg(value_name = "REV:PATH")]
    spec: String,
    /// Start this many bytes into the file (past the end: nothing is printed).
    #[arg(long, value_name = "BYTES")]
    offset: Option<u64>,
    /// Print at most this many bytes (default: to the end of the file).
    #[arg(long, value_name = "BYTES")]
    length: Option<u64>,
    /// When the data is not in the store, fetch this file's data (and the metadata) from
    /// the default remote first, then print it.
    #[arg(long)]
    fetch: bool,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    // `git:REV:PATH` names a git revision; its own colon is not the separator.
    let (git, rest) = match a.spec.strip_prefix(GIT_PREFIX) {
        Some(r) => (GIT_PREFIX, r),
        None => ("", a.spec.as_str()),
    };
    let (rev, path) = rest
        .split_once(':')
        .ok_or_else(|| StoreError::InvalidPath {
            path: a.spec.clone(),
            reason: "expected REV:PATH, such as HEAD:data/raw.csv".into(),
        })?;
    let rev = match rev {
        "" | "HEAD" if git.is_empty() => "HEAD".to_string(),
        r => format!("{git}{r}"),
    };
    let repo = Repo::open(&ctx.cwd, Access::Read)?;
    let rel = ctx.rel(&repo, path)?;
    match print(&a, ctx, &repo, &rev, &rel, a.fetch) {
        Err(EngineError::Store(e)) if a.fetch && sync::is_unfetched(&e) => {
            drop(repo);
            let repo = Repo::open(&ctx.cwd, Access::Write("dvx cat --fetch"))?;
            let remote = Remote::open(&repo, None)?;
            sync::fetch_for_read(&repo, &remote, &rev, &rel, &ctx.bar)?;
            // HEAD of a fresh clone is git's now (the fetch moved no dvx ref): resolve as
            // for any other revision.
            print(&a, ctx, &repo, &rev, &rel, false)
        }
        r => r,
    }
}

/// Print the file (or its range) to stdout. With `check_first`, every chunk needed is
/// looked up before anything is printed, so that a fetch and a second try print it once.
fn print(
    a: &Args,
    ctx: &Ctx,
    repo: &Repo,
    rev: &str,
    rel: &str,
    check_first: bool,
) -> dvx_engine::Result<()> {
    let rev = match rev {
        // HEAD is dvx's alone while there is a store: cat has always meant the data HEAD.
        "HEAD" if !repo.nothing_fetched() && repo.store.resolve("HEAD").is_ok() => {
            "HEAD".to_string()
        }
        r => {
            let res = repo.resolve_rev(r)?;
            // cat has no JSON output: the note is always text.
            if r != "HEAD" {
                ctx.out.revision(&res, false);
            }
            res.commit.to_hex()
        }
    };
    let f = repo.file_at(&rev, rel)?;
    let ranged = a.offset.is_some() || a.length.is_some();
    let offset = a.offset.unwrap_or(0);
    if check_first {
        repo.store.check_range_here(&f.id, offset, a.length)?;
    }
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    if ranged {
        repo.store
            .write_range_to(&f.id, offset, a.length, &mut lock)?;
    } else {
        repo.store.write_file_to(&f.id, &mut lock)?;
    }
    lock.flush().map_err(|e| StoreError::io("<stdout>", e))?;
    Ok(())
}
