//! `dvx exp show|run|apply|branch|remove`: experiments made by `dvx run -S`.

use dvx_engine::exec::Children;
use dvx_engine::exp::{self, ExpStatus, Experiment};
use dvx_engine::run::{default_jobs, RunOptions, MAX_JOBS};
use dvx_engine::store::{limits, Access, Repo};
use dvx_engine::EngineError;

use super::Ctx;

#[derive(clap::Subcommand)]
pub enum Cmd {
    Show(ShowArgs),
    Run(RunArgs),
    Apply(ApplyArgs),
    Branch(BranchArgs),
    Remove(RemoveArgs),
}

/// A table of the workspace and every experiment: parameters, metrics, commit, time.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx exp show\n  dvx exp show --sort-by acc --desc\n  dvx exp show --csv > experiments.csv\n  dvx exp show --json\n\nChanged parameters are marked with *."
)]
pub struct ShowArgs {
    /// Sort experiments by a column: name, created, a metric or a parameter (its last part
    /// is enough when no other column ends so).
    #[arg(long, value_name = "COLUMN")]
    sort_by: Option<String>,
    /// Largest first (with --sort-by).
    #[arg(long, requires = "sort_by")]
    desc: bool,
    /// Print CSV instead of a table.
    #[arg(long, conflicts_with = "json")]
    csv: bool,
}

/// Run queued experiments (`dvx run -S ... --queue`), several at once within -j.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx run -S train.l2=0.1,0.5,1,2 --queue\n  dvx exp run -j 2          # two experiments at a time\n  dvx exp run brisk-otter   # just this one"
)]
pub struct RunArgs {
    /// Experiments to run (default: every queued one).
    names: Vec<String>,
    /// Executions at once, shared by the experiments (default: number of cores).
    #[arg(short, long, value_name = "N", value_parser = jobs)]
    jobs: Option<usize>,
    /// Go on with independent work after a failure.
    #[arg(short, long)]
    keep_going: bool,
}

/// Bring an experiment into the workspace: its data, dvx.lock, and its parameter values
/// written into the parameters files. The current branch moves to its commit.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  dvx exp apply brisk-otter")]
pub struct ApplyArgs {
    name: String,
    /// Overwrite changed workspace files.
    #[arg(short, long)]
    force: bool,
}

/// Make a branch at an experiment's commit.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  dvx exp branch brisk-otter l2-half\n  dvx checkout l2-half")]
pub struct BranchArgs {
    name: String,
    /// The branch (default: the experiment's name).
    branch: Option<String>,
}

/// Forget experiments (their commits go with the next `dvx gc` unless a branch holds them).
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  dvx exp remove brisk-otter\n  dvx exp remove --all")]
pub struct RemoveArgs {
    #[arg(required_unless_present = "all")]
    names: Vec<String>,
    /// Every experiment.
    #[arg(long, conflicts_with = "names")]
    all: bool,
}

fn jobs(s: &str) -> Result<usize, String> {
    limits::parse_whole(s, 1..=MAX_JOBS as u64)
}

pub fn run(cmd: Cmd, ctx: &Ctx) -> dvx_engine::Result<()> {
    match cmd {
        Cmd::Show(a) => show(a, ctx),
        Cmd::Run(a) => {
            let repo = Repo::open(&ctx.cwd, Access::Write("dvx exp run"))?;
            let children = Children::default();
            let c = children.clone();
            let _ = ctrlc::set_handler(move || c.cancel_all());
            let opts = RunOptions {
                jobs: a.jobs.unwrap_or_else(default_jobs),
                keep_going: a.keep_going,
                ..Default::default()
            };
            let done = exp::run_queued(&repo, &a.names, &opts, &children)?;
            if done.is_empty() && !ctx.json {
                ctx.out
                    .say("no experiment is queued (`dvx run -S KEY=VALUE --queue` queues one)");
                return Ok(());
            }
            report(ctx, &done, "ran")
        }
        Cmd::Apply(a) => {
            let repo = Repo::open(&ctx.cwd, Access::Write("dvx exp apply"))?;
            let r = exp::apply(&repo, &a.name, a.force, &ctx.bar)?;
            if ctx.json {
                ctx.out.json(&r);
                return Ok(());
            }
            let on = r
                .branch
                .as_deref()
                .map(|b| format!("branch {b} is now at"))
                .unwrap_or_else(|| "HEAD is now".into());
            ctx.out.say(&format!(
                "applied experiment {}: {on} {} ({} written, {} deleted); parameters written into {}",
                r.name,
                r.commit.short(),
                r.written,
                r.deleted,
                r.params_files.join(", ")
            ));
            for f in &r.rewritten {
                eprintln!("warning: {f} was written again as JSON (a key was new to it): its comments are gone");
            }
            Ok(())
        }
        Cmd::Branch(a) => {
            let repo = Repo::open(&ctx.cwd, Access::Write("dvx exp branch"))?;
            let branch = a.branch.unwrap_or_else(|| a.name.clone());
            let id = exp::branch(&repo, &a.name, &branch)?;
            if ctx.json {
                ctx.out
                    .json(&serde_json::json!({"branch": branch, "commit": id}));
            } else {
                ctx.out.say(&format!(
                    "branch {branch} at {} (experiment {})",
                    id.short(),
                    a.name
                ));
            }
            Ok(())
        }
        Cmd::Remove(a) => {
            let repo = Repo::open(&ctx.cwd, Access::Write("dvx exp remove"))?;
            let names = if a.all {
                exp::list(&repo)?.into_iter().map(|e| e.name).collect()
            } else {
                a.names
            };
            let removed = exp::remove(&repo, &names)?;
            if ctx.json {
                ctx.out.json(&serde_json::json!({"removed": removed}));
            } else {
                ctx.out
                    .say(&format!("removed {} experiment(s)", removed.len()));
            }
            Ok(())
        }
    }
}

fn show(a: ShowArgs, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Read)?;
    let mut t = exp::show(&repo)?;
    if let Some(by) = &a.sort_by {
        exp::sort_rows(&mut t, by, a.desc)?;
    }
    if ctx.json {
        ctx.out.json(&t);
        return Ok(());
    }
    if a.csv {
        print!("{}", exp::to_csv(&t));
        return Ok(());
    }
    let mut head = vec![
        "name".to_string(),
        "status".into(),
        "commit".into(),
        "created".into(),
    ];
    head.extend(t.params.iter().cloned());
    head.extend(t.metrics.iter().cloned());
    let mut rows = vec![head];
    for r in &t.rows {
        let mut f = vec![
            r.name.clone(),
            r.status.clone(),
            r.commit.map(|c| c.short()).unwrap_or_default(),
            r.created
                .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default(),
        ];
        f.extend(t.params.iter().map(|c| {
            let v = exp::show_cell(r.params.get(c));
            if r.overridden.contains(c) {
                format!("{v}*")
            } else {
                v
            }
        }));
        f.extend(t.metrics.iter().map(|c| exp::show_cell(r.metrics.get(c))));
        rows.push(f);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    for r in t.rows.iter().filter(|r| r.error.is_some()) {
        eprintln!("{}: {}", r.name, r.error.as_deref().unwrap_or_default());
    }
    Ok(())
}

/// What `dvx run -S` and `dvx exp run` print: one line per experiment; failures make the
/// exit status.
pub fn report(ctx: &Ctx, exps: &[Experiment], verb: &str) -> dvx_engine::Result<()> {
    if ctx.json {
        ctx.out.json(&serde_json::json!({ "experiments": exps }));
    } else {
        for e in exps {
            let what = exp::overrides::describe(&e.overrides);
            let line = match e.status {
                ExpStatus::Queued => format!("queued {}: {what}", e.name),
                ExpStatus::Done => format!(
                    "{verb} {}: {what} → {} ({} executed, {} restored, {:.1}s)",
                    e.name,
                    e.commit.map(|c| c.short()).unwrap_or_default(),
                    e.executed,
                    e.restored,
                    e.wall_ms as f64 / 1000.0
                ),
                ExpStatus::Failed | ExpStatus::Running => format!(
                    "failed {}: {what}: {}",
                    e.name,
                    e.error.as_deref().unwrap_or("interrupted")
                ),
            };
            ctx.out.say(&line);
        }
        if exps.iter().any(|e| e.status == ExpStatus::Done) {
            ctx.out
                .info("compare with `dvx exp show`; bring one into the workspace with `dvx exp apply NAME`");
        }
    }
    let failed = exps
        .iter()
        .filter(|e| matches!(e.status, ExpStatus::Failed | ExpStatus::Running))
        .count();
    if failed > 0 {
        return Err(EngineError::SomeFailed(failed));
    }
    Ok(())
}
