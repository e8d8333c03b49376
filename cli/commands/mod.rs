//! The commands: one module each, holding its arguments (with the examples of its `--help`)
//! and what it prints. This file holds the top-level parser, the dispatch, and what several
//! commands share.

mod add;
mod artifacts;
mod branch;
mod cat;
mod checkout;
mod clone;
mod commit;
mod completions;
mod dag;
mod datums;
mod diff;
mod exec_task;
mod exp;
mod fetch;
mod fsck;
mod gc;
mod import;
mod import_dvc;
mod init;
mod lineage;
mod log;
mod logs;
mod ls;
mod man;
mod metrics;
mod params;
mod plots;
mod pull;
mod push;
mod remote;
mod rm;
mod run;
mod serve;
mod show;
mod status;
mod tag;
mod update;
mod verify;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use dvx_engine::lineage as lin;
use dvx_engine::record::RunRecord;
use dvx_engine::store::{self, paths, Access, Id, Repo, StoreError};

use crate::output::{Bar, Out};

#[derive(Parser)]
#[command(
    name = "dvx",
    version,
    about = "Version large data like code, run pipelines incrementally, trace lineage.",
    after_help = "Examples:\n  dvx init\n  dvx add data/raw.csv images/ -m \"raw data\"\n  dvx status\n  dvx log\n  dvx checkout HEAD~1\n\nEvery command works from any subfolder of the project; paths are relative to where you stand."
)]
pub struct Cli {
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more detail.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Run as if started in DIR.
    #[arg(short = 'C', value_name = "DIR", global = true)]
    pub directory: Option<PathBuf>,
    /// Print one JSON document on standard output instead of text (commands that have JSON
    /// output).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    Init(init::Args),
    Add(add::Args),
    Status(status::Args),
    Commit(commit::Args),
    Rm(rm::Args),
    Log(log::Args),
    Diff(diff::Args),
    Checkout(checkout::Args),
    Branch(branch::Args),
    Tag(tag::Args),
    Ls(ls::Args),
    Cat(cat::Args),
    Gc(gc::Args),
    /// Manage remotes: where data is shared (S3, GCS, Azure, a folder).
    #[command(subcommand)]
    Remote(remote::Cmd),
    Push(push::Args),
    Fetch(fetch::Args),
    Pull(pull::Args),
    Clone(clone::Args),
    Import(import::Args),
    ImportDvc(import_dvc::Args),
    Update(update::Args),
    Run(run::Args),
    Dag(dag::Args),
    Datums(datums::Args),
    Show(show::Args),
    Lineage(lineage::Args),
    Verify(verify::Args),
    Logs(logs::Args),
    ExecTask(exec_task::Args),
    /// Show or compare metrics files declared by stages.
    #[command(subcommand)]
    Metrics(metrics::Cmd),
    /// Draw or compare the plots stages declare, one line per revision.
    #[command(subcommand)]
    Plots(plots::Cmd),
    /// Compare parameter values between commits and the workspace.
    #[command(subcommand)]
    Params(params::Cmd),
    /// Experiments made by `dvx run -S KEY=VALUE`: compare, run the queue, apply, branch.
    #[command(subcommand)]
    Exp(exp::Cmd),
    Artifacts(artifacts::Args),
    Fsck(fsck::Args),
    Serve(serve::Args),
    Completions(completions::Args),
    Man(man::Args),
}

impl Cli {
    /// The usage error for `--json` where it cannot apply: a command (or form of one) with no
    /// JSON output, or JSON together with another output format.
    pub fn json_usage_error(&self) -> Option<clap::Error> {
        if !self.json {
            return None;
        }
        let (path, message) = match &self.command {
            Command::Lineage(a) => ("lineage", a.json_conflict()?),
            Command::Branch(a) => ("branch", a.json_refusal("branch")?),
            Command::Tag(a) => ("tag", a.json_refusal("tag")?),
            c => {
                let path = c.without_json()?;
                let message = format!("`dvx {path}` has no JSON output; leave out --json");
                (path, message)
            }
        };
        let mut cmd = Cli::command();
        cmd.build();
        let path: Vec<&str> = path.split(' ').collect();
        Some(usage_error(&mut cmd, &path, message))
    }
}

/// A usage error showing the usage of the subcommand at `path`.
fn usage_error(cmd: &mut clap::Command, path: &[&str], message: String) -> clap::Error {
    if let Some((name, rest)) = path.split_first() {
        if let Some(sub) = cmd.find_subcommand_mut(name) {
            return usage_error(sub, rest, message);
        }
    }
    cmd.error(clap::error::ErrorKind::ArgumentConflict, message)
}

impl Command {
    /// The command as typed, when it has no JSON output.
    fn without_json(&self) -> Option<&'static str> {
        Some(match self {
            Command::Init(_) => "init",
            Command::Cat(_) => "cat",
            Command::Dag(_) => "dag",
            Command::Logs(_) => "logs",
            Command::Completions(_) => "completions",
            Command::Man(_) => "man",
            Command::Serve(_) => "serve",
            Command::Remote(c) => c.without_json()?,
            _ => return None,
        })
    }
}

/// What every command gets: where the user stands, how to print, and which output they want.
pub struct Ctx<'a> {
    /// Where the user stands (after -C).
    pub cwd: PathBuf,
    pub out: &'a Out,
    pub bar: Bar,
    /// `--json`: one JSON document on stdout instead of text.
    pub json: bool,
}

pub fn run(cli: Cli, out: &Out) -> dvx_engine::Result<ExitCode> {
    let here = std::env::current_dir().map_err(|e| StoreError::io(".", e))?;
    let ctx = Ctx {
        cwd: match &cli.directory {
            Some(d) => paths::normalize(&here, d),
            None => here,
        },
        out,
        bar: Bar::new(out.quiet || !std::io::stderr().is_terminal()),
        json: cli.json,
    };
    let done = |r: dvx_engine::Result<()>| r.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Init(a) => done(init::run(a, &ctx)),
        Command::Add(a) => done(add::run(a, &ctx)),
        Command::Status(a) => status::run(a, &ctx),
        Command::Commit(a) => done(commit::run(a, &ctx)),
        Command::Rm(a) => done(rm::run(a, &ctx)),
        Command::Log(a) => done(log::run(a, &ctx)),
        Command::Diff(a) => done(diff::run(a, &ctx)),
        Command::Checkout(a) => done(checkout::run(a, &ctx)),
        Command::Branch(a) => done(branch::run(a, &ctx)),
        Command::Tag(a) => done(tag::run(a, &ctx)),
        Command::Ls(a) => done(ls::run(a, &ctx)),
        Command::Cat(a) => done(cat::run(a, &ctx)),
        Command::Gc(a) => done(gc::run(a, &ctx)),
        Command::Remote(c) => done(remote::run(c, &ctx)),
        Command::Push(a) => done(push::run(a, &ctx)),
        Command::Fetch(a) => done(fetch::run(a, &ctx)),
        Command::Pull(a) => done(pull::run(a, &ctx)),
        Command::Clone(a) => done(clone::run(a, &ctx)),
        Command::ImportDvc(a) => done(import_dvc::run(a, &ctx)),
        Command::Import(a) => done(import::run(a, &ctx)),
        Command::Update(a) => done(update::run(a, &ctx)),
        Command::Run(a) => done(run::run(a, &ctx)),
        Command::Dag(a) => done(dag::run(a, &ctx)),
        Command::Datums(a) => done(datums::run(a, &ctx)),
        Command::Show(a) => done(show::run(a, &ctx)),
        Command::Lineage(a) => done(lineage::run(a, &ctx)),
        Command::Verify(a) => verify::run(a, &ctx),
        Command::Logs(a) => done(logs::run(a, &ctx)),
        Command::ExecTask(a) => exec_task::run(a, &ctx),
        Command::Metrics(c) => done(metrics::run(c, &ctx)),
        Command::Plots(c) => done(plots::run(c, &ctx)),
        Command::Params(c) => done(params::run(c, &ctx)),
        Command::Exp(c) => done(exp::run(c, &ctx)),
        Command::Artifacts(a) => done(artifacts::run(a, &ctx)),
        Command::Fsck(a) => fsck::run(a, &ctx),
        Command::Serve(a) => serve::run(a, &ctx),
        Command::Completions(a) => done(completions::run(a)),
        Command::Man(a) => done(man::run(a)),
    }
}

impl Ctx<'_> {
    /// A project path as the user sees it: relative to where they stand.
    pub fn show(&self, repo: &Repo, rel: &str) -> String {
        paths::display_rel(&repo.root, &self.cwd, rel)
    }

    /// A path the user typed, relative to the project's top folder.
    pub fn rel(&self, repo: &Repo, path: impl AsRef<Path>) -> store::Result<String> {
        paths::to_rel(&repo.root, &self.cwd, path.as_ref())
    }

    /// Resolve user paths (and, with `glob`, quoted glob patterns) to project paths.
    pub fn rel_args(
        &self,
        repo: &Repo,
        args: &[PathBuf],
        glob: bool,
    ) -> store::Result<Vec<String>> {
        let mut out = Vec::new();
        for a in args {
            let s = a.to_string_lossy();
            let abs = paths::normalize(&self.cwd, a);
            if glob && !abs.exists() && s.contains(['*', '?', '[']) {
                let pattern = abs.to_string_lossy().into_owned();
                let matches: Vec<PathBuf> = glob::glob(&pattern)
                    .map_err(|e| StoreError::InvalidPath {
                        path: s.to_string(),
                        reason: format!("bad glob: {e}"),
                    })?
                    .filter_map(Result::ok)
                    .collect();
                if matches.is_empty() {
                    return Err(StoreError::PathNotFound(a.clone()));
                }
                for m in matches {
                    out.push(self.rel(repo, &m)?);
                }
            } else {
                out.push(self.rel(repo, a)?);
            }
        }
        Ok(out)
    }

    /// A revision as the user wrote it (dvx's, else git's through its dvx.lock) as the full
    /// id of the dvx commit, saying which was taken when git's was or a git one was shadowed.
    pub fn rev_id(&self, repo: &Repo, rev: &str) -> store::Result<String> {
        let r = repo.resolve_rev(rev)?;
        self.out.revision(&r, self.json);
        Ok(r.commit.to_hex())
    }

    /// Open for lineage questions (indexing a store from before lineage existed, once).
    pub fn open_lineage(&self) -> dvx_engine::Result<Repo> {
        let (repo, built) = lin::open(&self.cwd)?;
        if let (Some(r), false) = (built, self.out.quiet) {
            eprintln!(
                "note: built the lineage index of this store ({} commits, {} run records)",
                r.commits, r.runs
            );
        }
        Ok(repo)
    }

    /// A run id, or PATH[@REV] (relative to where the user stands): the run that produced it.
    /// A run id needs no lineage index, so it is tried first.
    pub fn run_or_path(&self, arg: &str) -> dvx_engine::Result<(Repo, Id, RunRecord)> {
        let repo = Repo::open(&self.cwd, Access::Read)?;
        if let Some(found) = lin::find_run(&repo, arg)? {
            return Ok((repo, found.0, found.1));
        }
        // PATH@REV: the revision may be git's, read through its dvx.lock.
        let arg = match lin::split_rev(arg) {
            (p, r) if arg.contains('@') && r != "HEAD" => format!("{p}@{}", self.rev_id(&repo, r)?),
            _ => arg.to_string(),
        };
        drop(repo);
        let repo = self.open_lineage()?;
        let (id, rec) = lin::run_or_path(&repo, &arg, |p| Ok(self.rel(&repo, p)?))?;
        Ok((repo, id, rec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn connection_options_fill_a_remote_config() {
        let parse = |extra: &[&str]| {
            let args = [&["dvx", "clone", "s3://b/p"][..], extra].concat();
            match Cli::try_parse_from(args).map(|c| c.command) {
                Ok(Command::Clone(a)) => a,
                Ok(_) => panic!("not clone"),
                Err(e) => panic!("{e}"),
            }
        };
        // Nothing given writes nothing: allow_http stays None, not Some(false).
        let none = parse(&[]).conn;
        assert_eq!(none, dvx_engine::store::config::RemoteConfig::default());
        let all = parse(&[
            "--endpoint",
            "http://h:9",
            "--region",
            "r",
            "--profile",
            "p",
            "--allow-http",
            "--jobs",
            "3",
            "--timeout",
            "2.5",
            "--retries",
            "0",
        ])
        .conn;
        assert_eq!(all.endpoint.as_deref(), Some("http://h:9"));
        assert_eq!(all.allow_http, Some(true));
        assert_eq!(
            (all.jobs, all.timeout_secs, all.retries),
            (Some(3), Some(2.5), Some(0))
        );
        assert!(Cli::try_parse_from(["dvx", "clone", "u", "--jobs", "65"]).is_err());
    }
}
