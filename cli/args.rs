//! Command-line syntax, with examples in every command's help.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use dvx_engine::store::limits;

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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a dvx project (.dvx/) in the current folder.
    #[command(
        after_help = "Examples:\n  git init && dvx init      # data versions beside code versions\n  dvx init                  # works outside git too"
    )]
    Init,

    /// Track files or folders: hash, store, and commit them.
    #[command(
        after_help = "Examples:\n  dvx add data/raw.csv\n  dvx add images/ labels.csv -m \"first labelled batch\"\n  dvx add 'data/*.csv'\n\nIn a git repo the paths are added to .gitignore, and dvx.lock (commit it to git) pins their ids."
    )]
    Add {
        /// Files, folders or glob patterns.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Commit message.
        #[arg(short, long)]
        message: Option<String>,
        #[arg(long)]
        json: bool,
    },

    /// Show tracked paths that were modified, deleted or added since the last commit.
    #[command(
        after_help = "Examples:\n  dvx status\n  dvx status --json | jq .modified\n  dvx status --remote          # what a push would send to the default remote\n  dvx status --exit-code       # in CI: fail when data changed or a stage is stale"
    )]
    Status {
        /// Compare branches with a remote (default: the default remote) instead.
        #[arg(long, value_name = "REMOTE", num_args = 0..=1, default_missing_value = "")]
        remote: Option<String>,
        #[arg(long)]
        json: bool,
        /// Exit with status 1 when tracked data changed or a stage is stale (as `git diff
        /// --exit-code`), 0 when everything is committed and up to date.
        #[arg(long, conflicts_with = "remote")]
        exit_code: bool,
    },

    /// Snapshot every tracked path as a new commit.
    #[command(after_help = "Examples:\n  dvx commit -m \"cleaned outliers\"")]
    Commit {
        #[arg(short, long)]
        message: Option<String>,
        #[arg(long)]
        json: bool,
    },

    /// Stop tracking paths (their files stay on disk).
    #[command(after_help = "Examples:\n  dvx rm data/scratch.csv")]
    Rm {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[arg(short, long)]
        message: Option<String>,
        #[arg(long)]
        json: bool,
    },

    /// List commits, newest first.
    #[command(after_help = "Examples:\n  dvx log\n  dvx log -n 5 --json\n  dvx log experiment")]
    Log {
        /// Start from this revision (default HEAD).
        rev: Option<String>,
        /// Show at most N commits.
        #[arg(short = 'n', long, value_name = "N")]
        max_count: Option<usize>,
        #[arg(long)]
        json: bool,
    },

    /// Show added, removed and modified paths with sizes.
    #[command(
        after_help = "Examples:\n  dvx diff                 # last commit vs the workspace\n  dvx diff HEAD~1          # a commit vs the workspace\n  dvx diff v1 v2           # two commits"
    )]
    Diff {
        #[arg(num_args = 0..=2, value_name = "REV")]
        revs: Vec<String>,
        #[arg(long)]
        json: bool,
    },

    /// Restore the workspace (or some paths) exactly as a commit has it.
    #[command(
        after_help = "Examples:\n  dvx checkout HEAD~1              # the previous commit (detached)\n  dvx checkout main                # back to the branch\n  dvx checkout v1 data/raw.csv     # one path from a tag; HEAD stays\n  dvx checkout                     # the commit dvx.lock pins (after `git checkout`)\n\nRefuses to overwrite uncommitted changes unless --force."
    )]
    Checkout {
        /// Revision: branch, tag, commit id (prefix), HEAD~N. Default: the commit in dvx.lock.
        rev: Option<String>,
        /// Restore only these paths.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Discard uncommitted changes.
        #[arg(short, long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },

    /// List, create or delete branches.
    #[command(
        after_help = "Examples:\n  dvx branch\n  dvx branch experiment         # at HEAD\n  dvx checkout experiment\n  dvx branch -d experiment"
    )]
    Branch {
        name: Option<String>,
        rev: Option<String>,
        #[arg(short, long, value_name = "NAME", conflicts_with = "name")]
        delete: Option<String>,
        #[arg(long)]
        json: bool,
    },

    /// List, create or delete tags.
    #[command(
        after_help = "Examples:\n  dvx tag\n  dvx tag v1.0\n  dvx tag baseline HEAD~3\n  dvx tag -d v1.0"
    )]
    Tag {
        name: Option<String>,
        rev: Option<String>,
        #[arg(short, long, value_name = "NAME", conflicts_with = "name")]
        delete: Option<String>,
        #[arg(long)]
        json: bool,
    },

    /// List what a commit holds.
    #[command(
        after_help = "Examples:\n  dvx ls                       # HEAD, here\n  dvx ls HEAD~1 data -r\n  dvx ls v1 --json"
    )]
    Ls {
        /// [REV] [PATH]
        #[arg(num_args = 0..=2, value_name = "REV|PATH")]
        args: Vec<String>,
        #[arg(short, long)]
        recursive: bool,
        #[arg(long)]
        json: bool,
    },

    /// Print a file as a commit has it.
    #[command(
        after_help = "Examples:\n  dvx cat HEAD:data/raw.csv | head\n  dvx cat v1:params.yaml > old-params.yaml"
    )]
    Cat {
        /// REV:PATH
        #[arg(value_name = "REV:PATH")]
        spec: String,
    },

    /// Delete data no branch, tag, history, dvx.lock or run record needs.
    #[command(after_help = "Examples:\n  dvx gc --dry-run\n  dvx gc")]
    Gc {
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },

    /// Manage remotes: where data is shared (S3, GCS, Azure, a folder).
    #[command(subcommand)]
    Remote(RemoteCmd),

    /// Upload commits and their data to a remote, then move its branches.
    #[command(
        after_help = "Examples:\n  dvx push                      # the current branch to the default remote\n  dvx push origin main v1.0     # a branch and a tag\n  dvx push --all --dry-run      # what would go up\n\nData goes up first, in packs; the remote's branches move last and only as fast-forwards,\nso two people pushing at once never lose a commit: the later one is told to fetch first.\nA push that was interrupted uploads only what is still missing when run again."
    )]
    Push {
        /// Remote name (default: the default remote) or URL.
        remote: Option<String>,
        /// Branches or tags to push (default: the current branch).
        #[arg(value_name = "REV")]
        revs: Vec<String>,
        /// Push every branch and tag.
        #[arg(long)]
        all: bool,
        /// Replace the remote's branch even if that drops commits it has.
        #[arg(long)]
        force: bool,
        /// Show what would be uploaded; upload nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },

    /// Download a remote's branches, tags and data (into the store; the workspace is left alone).
    #[command(
        after_help = "Examples:\n  dvx fetch\n  dvx fetch origin --all-history\n  dvx log origin/main\n\nBranches land as REMOTE/BRANCH. By default the data of each branch's newest commit comes\ndown; --all-history brings every commit's data."
    )]
    Fetch {
        remote: Option<String>,
        /// Data of every commit, not just each branch's newest.
        #[arg(long)]
        all_history: bool,
        #[arg(long)]
        json: bool,
    },

    /// Fetch the current branch and bring the workspace to it (all of it, or only PATHs).
    #[command(
        after_help = "Examples:\n  dvx pull\n  dvx pull data/images/cats     # only the bytes these paths need\n  dvx pull -r backup --branch dev\n\nThe local branch moves forward to the remote's; dvx never merges: if both have new\ncommits, pull stops and says so."
    )]
    Pull {
        /// Only these tracked paths.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Remote name or URL (default: the default remote).
        #[arg(short, long)]
        remote: Option<String>,
        /// Branch to pull (default: the current one).
        #[arg(short, long)]
        branch: Option<String>,
        /// Overwrite uncommitted changes.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },

    /// Make a new project from a remote, with its default branch checked out.
    #[command(
        after_help = "Examples:\n  dvx clone s3://team-data/cats cats --endpoint http://127.0.0.1:9000\n  dvx clone /mnt/share/cats cats\n  dvx clone s3://team-data/cats cats --no-checkout && cd cats && dvx pull images/2024"
    )]
    Clone {
        /// s3://bucket/prefix, gs://bucket/prefix, az://container/prefix, file:///path or a folder.
        url: String,
        /// Folder to create (default: the last part of the URL).
        dir: Option<PathBuf>,
        /// Branch to check out (default: the remote's default branch).
        #[arg(short, long)]
        branch: Option<String>,
        /// Fetch commits and trees only; bring data later with `dvx pull [PATH...]`.
        #[arg(long)]
        no_checkout: bool,
        #[command(flatten)]
        conn: RemoteConn,
        #[arg(long)]
        json: bool,
    },

    /// Bring data from another dvx project, pinned to a commit of it (lineage records where it came from).
    #[command(
        after_help = "Examples:\n  dvx import s3://team-data/raw images/2024 -o data/images\n  dvx import /mnt/share/labels labels.csv --rev v3\n  dvx import origin-of-truth data/ref --endpoint http://127.0.0.1:9000\n\nThe source is a remote URL (or the name of one of this project's remotes). dvx.lock\nrecords the source; `dvx update DEST` moves the import to the source's newest commit."
    )]
    Import {
        /// The other project's remote URL, or a remote name of this project.
        url: String,
        /// Path inside that project.
        path: String,
        /// Branch, tag or full commit id there (default: its default branch).
        #[arg(long)]
        rev: Option<String>,
        /// Where to put it here (default: the last part of PATH, in the current folder).
        #[arg(short, long, value_name = "DEST")]
        out: Option<PathBuf>,
        /// Replace what is at DEST.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        conn: RemoteConn,
        #[arg(long)]
        json: bool,
    },

    /// Move an import to the newest commit of the branch or tag it follows (or to --rev).
    #[command(
        after_help = "Examples:\n  dvx update data/images\n  dvx update data/images --rev v4"
    )]
    Update {
        #[arg(value_name = "DEST")]
        dest: PathBuf,
        #[arg(long)]
        rev: Option<String>,
        /// Discard local changes to the imported data.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },

    /// Run the pipeline in dvx.yaml: only stale stages and datums execute.
    #[command(
        after_help = "Examples:\n  dvx run                      # everything that is stale\n  dvx run train -j 4           # `train` and what it needs, 4 at a time\n  dvx run --dry-run            # what would run, and why\n  dvx run process --datum batch-007.ndjson   # one datum, for debugging\n\nA minimal dvx.yaml:\n  stages:\n    count:\n      cmd: wc -l data/raw.csv > counts.txt\n      deps: [data/raw.csv]\n      outs: [counts.txt]"
    )]
    Run {
        /// Stages to run (with what they need); default all.
        stages: Vec<String>,
        /// Parallel executions, 1 to 1024 (default: number of cores).
        #[arg(short, long, value_name = "N", value_parser = run_jobs)]
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
        #[arg(long)]
        json: bool,
    },

    /// Show the stage graph of dvx.yaml.
    #[command(
        after_help = "Examples:\n  dvx dag\n  dvx dag --dot | dot -Tpng > dag.png\n  dvx dag --mermaid"
    )]
    Dag {
        #[arg(long, conflicts_with = "mermaid")]
        dot: bool,
        #[arg(long)]
        mermaid: bool,
    },

    /// List the datums a stage's input glob yields now (a dry run).
    #[command(after_help = "Examples:\n  dvx datums process\n  dvx datums process --json")]
    Datums {
        stage: String,
        #[arg(long)]
        json: bool,
    },

    /// Print a run record: what ran, on which inputs, with what result.
    #[command(
        after_help = "Examples:\n  dvx show 3f2a9c\n  dvx show 3f2a9c --json\n  dvx show models/model.bin        # the run that made it (HEAD)\n  dvx show models/model.bin@v1 --json"
    )]
    Show {
        /// Run id (or a unique prefix of it), or PATH[@REV]: the run that produced that file.
        #[arg(value_name = "RUN|PATH[@REV]")]
        run: String,
        #[arg(long)]
        json: bool,
    },

    /// Trace a file back to the data added by hand, through every run (or, with
    /// --downstream, everything made from it).
    #[command(
        after_help = "Examples:\n  dvx lineage models/model.bin\n  dvx lineage models/model.bin@v1 --json\n  dvx lineage data/raw.csv --downstream\n  dvx lineage out/f3.txt.n --depth 1\n  dvx lineage models/model.bin --dot | dot -Tpng > lineage.png\n  dvx lineage models/model.bin --mermaid\n  dvx lineage models/model.bin --svg > lineage.svg"
    )]
    Lineage {
        /// The file (or folder), optionally at a revision: PATH or PATH@REV (default HEAD).
        #[arg(value_name = "PATH[@REV]")]
        target: String,
        /// Everything derived from the file, in any commit, instead of where it came from.
        #[arg(long)]
        downstream: bool,
        /// Follow at most N runs.
        #[arg(long, value_name = "N")]
        depth: Option<usize>,
        #[arg(long, conflicts_with_all = ["dot", "mermaid", "svg"])]
        json: bool,
        /// Graphviz text.
        #[arg(long, conflicts_with_all = ["mermaid", "svg"])]
        dot: bool,
        /// Mermaid flowchart text.
        #[arg(long, conflicts_with = "svg")]
        mermaid: bool,
        /// An SVG picture on standard output (no Graphviz needed).
        #[arg(long)]
        svg: bool,
    },

    /// Run a recorded execution again in a scratch folder, from its recorded inputs, and report
    /// whether each output is bit-identical.
    #[command(
        after_help = "Examples:\n  dvx verify 3f2a9c\n  dvx verify models/model.bin       # the run that made it\n  dvx verify out/f3.txt.n@v1 --json\n\nExits 1 if any output differs or the command fails."
    )]
    Verify {
        /// Run id (or a unique prefix of it), or PATH[@REV]: the run that produced that file.
        #[arg(value_name = "RUN|PATH[@REV]")]
        target: String,
        #[arg(long)]
        json: bool,
    },

    /// Print the stored output (stdout, then stderr) of a run.
    #[command(after_help = "Examples:\n  dvx logs 3f2a9c\n  dvx logs 3f2a9c --stderr")]
    Logs {
        run: String,
        /// Only standard error.
        #[arg(long)]
        stderr: bool,
    },

    /// Show or compare metrics files declared by stages.
    #[command(subcommand)]
    Metrics(MetricsCmd),

    /// Compare parameter values between commits and the workspace.
    #[command(subcommand)]
    Params(ParamsCmd),

    /// List the artifacts (models, data sets) the top-level `artifacts:` of dvx.yaml declares.
    #[command(after_help = "Examples:\n  dvx artifacts\n  dvx artifacts --json")]
    Artifacts {
        #[arg(long)]
        json: bool,
    },

    /// Verify every table of the database and re-hash every stored object; rebuild what can be
    /// derived again (the stat cache, the lineage index) and report damaged or missing data.
    #[command(
        after_help = "Examples:\n  dvx fsck\n  dvx fsck --json\n  dvx fsck --reindex\n  dvx fsck --recover   # after \"a write-ahead log file is damaged\"\n\nExits 1 if anything is wrong."
    )]
    Fsck {
        #[arg(long)]
        json: bool,
        /// Also rebuild the lineage indexes from commits and run records.
        #[arg(long)]
        reindex: bool,
        /// Open a store whose write-ahead log is damaged: keep every write before the damaged
        /// record, drop the ones after it (fetch them again from a remote), then check.
        #[arg(long)]
        recover: bool,
    },

    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  dvx completions bash > /etc/bash_completion.d/dvx\n  dvx completions zsh > \"${fpath[1]}/_dvx\"\n  dvx completions fish > ~/.config/fish/completions/dvx.fish"
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },

    /// Print the manual page of dvx (roff), or the command reference as Markdown.
    #[command(
        after_help = "Examples:\n  dvx man | man -l -\n  dvx man > /usr/local/share/man/man1/dvx.1\n  dvx man --markdown > book/src/cli-help.md"
    )]
    Man {
        /// The whole command reference (every command's --help) as Markdown, as the book keeps it.
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Subcommand)]
pub enum MetricsCmd {
    /// Print metrics: from the workspace, or as a commit recorded them.
    #[command(after_help = "Examples:\n  dvx metrics show\n  dvx metrics show v1 --json")]
    Show {
        rev: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Compare metrics of two commits (default: HEAD and the workspace).
    #[command(
        after_help = "Examples:\n  dvx metrics diff                 # HEAD vs the workspace\n  dvx metrics diff v1 v2\n  dvx metrics diff HEAD~1 --json"
    )]
    Diff {
        #[arg(num_args = 0..=2, value_name = "REV")]
        revs: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ParamsCmd {
    /// Compare the parameters stages ran with (default: HEAD and the workspace).
    #[command(after_help = "Examples:\n  dvx params diff\n  dvx params diff v1 v2 --json")]
    Diff {
        #[arg(num_args = 0..=2, value_name = "REV")]
        revs: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

/// How to reach a remote (all optional; credentials come from the environment or a profile).
#[derive(clap::Args, Clone, Default)]
pub struct RemoteConn {
    /// S3-compatible endpoint, e.g. http://127.0.0.1:9000.
    #[arg(long)]
    pub endpoint: Option<String>,
    #[arg(long)]
    pub region: Option<String>,
    /// AWS profile (from ~/.aws/credentials and ~/.aws/config).
    #[arg(long)]
    pub profile: Option<String>,
    /// Allow plain http to a non-loopback endpoint.
    #[arg(long)]
    pub allow_http: bool,
    /// Transfers at once, 1 to 64 (default 8).
    #[arg(long, value_name = "N", value_parser = remote_jobs)]
    pub jobs: Option<usize>,
    /// Seconds before a request is abandoned and retried, up to 3600 (default 60).
    #[arg(long, value_name = "SECS", value_parser = remote_timeout)]
    pub timeout: Option<f64>,
    /// Retries of a failed request, with backoff, 0 to 100 (default 5).
    #[arg(long, value_name = "N", value_parser = remote_retries)]
    pub retries: Option<usize>,
}

#[derive(Subcommand)]
pub enum RemoteCmd {
    /// Add a remote (the first one becomes the default).
    #[command(
        after_help = "Examples:\n  dvx remote add origin s3://team-data/cats\n  dvx remote add local s3://bucket/prefix --endpoint http://127.0.0.1:9000\n  dvx remote add backup /mnt/share/cats\n  dvx remote add origin gs://bucket/prefix --force     # change it\n\nCredentials are never written here: they come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY\n(or GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_ACCOUNT_KEY), --profile, or\n.dvx/config.local.toml, which git ignores."
    )]
    Add {
        name: String,
        url: String,
        #[command(flatten)]
        conn: RemoteConn,
        /// Replace a remote of that name.
        #[arg(long)]
        force: bool,
    },
    /// List remotes.
    #[command(after_help = "Examples:\n  dvx remote list\n  dvx remote list --json")]
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a remote (and the branches fetched from it).
    #[command(after_help = "Examples:\n  dvx remote remove backup")]
    Remove { name: String },
    /// Make a remote the default for push, pull and fetch.
    #[command(after_help = "Examples:\n  dvx remote default origin")]
    Default { name: String },
}

// Numbers from the command line are range-checked by clap, so a mistake is reported as a usage
// error before anything starts (a huge -j would otherwise try to start that many threads).

fn run_jobs(s: &str) -> Result<usize, String> {
    whole(s, 1..=dvx_engine::run::MAX_JOBS as u64)
}

fn remote_jobs(s: &str) -> Result<usize, String> {
    whole(s, limits::REMOTE_JOBS)
}

fn remote_retries(s: &str) -> Result<usize, String> {
    whole(s, limits::REMOTE_RETRIES)
}

fn remote_timeout(s: &str) -> Result<f64, String> {
    let range = limits::REMOTE_TIMEOUT_SECS;
    match s.trim().parse::<f64>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(format!("expected {}", limits::Range(&range))),
    }
}

fn whole(s: &str, range: std::ops::RangeInclusive<u64>) -> Result<usize, String> {
    match s.trim().parse::<u64>() {
        Ok(v) if range.contains(&v) => Ok(v as usize),
        _ => Err(format!(
            "expected a whole number from {} to {}",
            range.start(),
            range.end()
        )),
    }
}
