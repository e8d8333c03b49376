//! `dvx run`.

use dvx_engine::exec::Children;
use dvx_engine::exp;
use dvx_engine::run::{default_jobs, Engine, RunOptions, MAX_JOBS};
use dvx_engine::spec::ExecutorKind;
use dvx_engine::store::{limits, Access, Repo};
use dvx_engine::EngineError;

use super::Ctx;
use crate::output;

/// Run the pipeline in dvx.yaml: only stale stages and datums execute.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx run                      # everything that is stale\n  dvx run train -j 4           # `train` and what it needs, 4 at a time\n  dvx run --dry-run            # what would run, and why\n  dvx run process --datum batch-007.ndjson   # one datum, for debugging\n  dvx run --executor slurm     # one Slurm job per execution\n  dvx run --executor ray       # one Ray job per execution\n  dvx run --executor kubernetes   # one Kubernetes Job per execution\n  dvx run -S train.l2=0.5      # an experiment: params files stay as they are\n  dvx run -S train.l2=0.1,0.5,1 -j 3   # three experiments, side by side\n  dvx run -S train.l2=0.1,1 --queue    # queue them for `dvx exp run`\n\nA minimal dvx.yaml:\n  stages:\n    count:\n      cmd: wc -l data/raw.csv > counts.txt\n      deps: [data/raw.csv]\n      outs: [counts.txt]"
)]
pub struct Args {
    /// Stages to run (with what they need); default all.
    stages: Vec<String>,
    /// Parallel executions, 1 to 1024 (default: number of cores).
    #[arg(short, long, value_name = "N", value_parser = jobs)]
    jobs: Option<usize>,
    /// Run even if up to date (and do not use the run cache).
    #[arg(short, long)]
    force: bool,
    /// Show what would run and why; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Go on with independent work after a failure.
    #[arg(short, long)]
    keep_going: bool,
    /// Also run every stage downstream of the named ones.
    #[arg(long)]
    downstream: bool,
    /// Run only this datum of a datum stage (its path inside the input folder).
    #[arg(long, value_name = "ID")]
    datum: Option<String>,
    /// Never restore results from the run cache.
    #[arg(long)]
    no_run_cache: bool,
    /// Message of the commit recording the run.
    #[arg(short, long)]
    message: Option<String>,
    /// Where stages without `executor:` run: local (default), slurm (one Slurm job per
    /// execution), ray (one Ray job per execution) or kubernetes (one Kubernetes Job per
    /// execution); a cluster's data moves through the default remote.
    #[arg(long, value_name = "NAME", value_parser = executor)]
    executor: Option<ExecutorKind>,
    /// Run as an experiment with this parameter set to VALUE, without editing the parameters
    /// file: [+][FILE:]KEY=VALUE (FILE defaults to params.yaml; `+` adds a new key). Several
    /// values (V1,V2) make one experiment each, every combination of all -S. The experiments
    /// run in copies of the workspace and commit on refs/exps/NAME; `dvx exp show` compares
    /// them.
    #[arg(short = 'S', long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// With -S: store the experiments, to be run by `dvx exp run`.
    #[arg(long, requires = "set")]
    queue: bool,
    /// With -S: the experiment's name (default: two words, like brisk-otter).
    #[arg(long, requires = "set", value_name = "NAME")]
    name: Option<String>,
}

fn executor(s: &str) -> Result<ExecutorKind, String> {
    ExecutorKind::parse(s).ok_or_else(|| format!("{s:?} is not one of {}", ExecutorKind::NAMES))
}

/// `-j`, range-checked by clap so that a huge number is a usage error, not that many threads.
fn jobs(s: &str) -> Result<usize, String> {
    limits::parse_whole(s, 1..=MAX_JOBS as u64)
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Write("dvx run"))?;
    let children = Children::default();
    let c = children.clone();
    // Ctrl-C stops every child; finished work is already stored.
    let _ = ctrlc::set_handler(move || c.cancel_all());
    let opts = RunOptions {
        targets: a.stages,
        jobs: a.jobs.unwrap_or_else(default_jobs),
        force: a.force,
        dry_run: a.dry_run,
        keep_going: a.keep_going,
        downstream: a.downstream,
        datum: a.datum,
        message: a.message,
        no_run_cache: a.no_run_cache,
        executor: a.executor,
        trigger: None,
        experiment: None,
        adopt: None,
    };
    if !a.set.is_empty() {
        let overrides = a
            .set
            .iter()
            .map(|s| exp::overrides::parse(s))
            .collect::<dvx_engine::Result<Vec<_>>>()?;
        let req = exp::ExpRun {
            overrides,
            name: a.name,
            run: opts,
        };
        if a.queue {
            let queued = exp::enqueue(&repo, &req)?;
            return super::exp::report(ctx, &queued, "queued");
        }
        if req.run.dry_run {
            return Err(dvx_engine::EngineError::Experiment {
                message: "--dry-run does not apply to experiments".into(),
                hint: "queue them with --queue and look with `dvx exp show`".into(),
            });
        }
        let done = exp::start(&repo, &req, &children)?;
        return super::exp::report(ctx, &done, "ran");
    }
    let mut engine = Engine::open(&repo)?;
    let summary = engine.run(&opts, &children, &ctx.bar)?;
    if ctx.json {
        ctx.out.json(&summary);
    } else {
        output::print_run(ctx.out, &summary, a.dry_run);
    }
    if summary.failed > 0 {
        return Err(EngineError::SomeFailed(summary.failures.len()));
    }
    Ok(())
}
