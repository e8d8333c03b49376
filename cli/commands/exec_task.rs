//! `dvx exec-task`: what a cluster job runs.

use dvx_engine::executor::worker;
use dvx_engine::remote::Remote;
use dvx_engine::store::config::RemoteConfig;
use dvx_engine::store::Id;
use dvx_engine::sync;

use super::Ctx;

/// Run tasks a cluster executor wrote to a remote, and write each one's result there.
///
/// Needs no project: the inputs are fetched by id into a scratch folder, the outputs and logs
/// are stored on the remote, and the result is written once. `dvx run --executor slurm`
/// (or `ray`, or `kubernetes`) submits jobs that run this; run it by hand to debug a task. Credentials come from the
/// environment or an AWS profile, as for `dvx clone`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx exec-task s3://team-data/cats 3f9a...e1 --endpoint http://127.0.0.1:9000\n  DVX_KEEP_TASK_DIR=1 dvx exec-task /mnt/share/cats 3f9a...e1"
)]
pub struct Args {
    /// s3://bucket/prefix, gs://bucket/prefix, az://container/prefix, file:///path or a folder.
    url: String,
    /// Task ids (64 hexadecimal digits each), run one after another.
    #[arg(value_parser = parse_id, required = true)]
    tasks: Vec<Id>,
    /// Run only the task at position $JOB_COMPLETION_INDEX (from 0) of the list, as each pod
    /// of a Kubernetes Indexed Job does.
    #[arg(long)]
    indexed: bool,
    /// This runs inside the tasks' image already (a Kubernetes pod): run the commands as they
    /// are, not in a container of the node's runtime.
    #[arg(long)]
    in_image: bool,
    #[command(flatten)]
    pub conn: RemoteConfig,
}

fn parse_id(s: &str) -> Result<Id, String> {
    s.parse()
        .map_err(|_| "a task id is 64 hexadecimal digits".to_string())
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<std::process::ExitCode> {
    let url = sync::absolute_url(&ctx.cwd, &a.url);
    let rc = RemoteConfig { url, ..a.conn };
    let tasks = if a.indexed {
        let i = std::env::var("JOB_COMPLETION_INDEX").unwrap_or_default();
        match i.parse::<usize>().ok().and_then(|i| a.tasks.get(i)) {
            Some(t) => vec![*t],
            None => {
                return Err(dvx_engine::EngineError::Executor(format!(
                    "--indexed: JOB_COMPLETION_INDEX={i:?} is not a position in the {} tasks given",
                    a.tasks.len()
                )))
            }
        }
    } else {
        a.tasks
    };
    let place = if a.in_image {
        worker::Place::InImage
    } else {
        worker::Place::Node
    };
    let remote = Remote::connect(&rc.url, &rc, None, None)?;
    let mut results = Vec::new();
    // A task that cannot run does not stop the next one: each has a result of its own.
    let mut first_error = None;
    for task in &tasks {
        // The job's log then says which task it ran, for whoever debugs it.
        if !ctx.json {
            ctx.out.say(&format!("task {task} from {}", rc.url));
        }
        let r = match worker::exec_task(&remote, task, place) {
            Ok(r) => r,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        if !ctx.json {
            let how = match (r.exit, &r.error) {
                (Some(0), _) => "succeeded".to_string(),
                (_, Some(e)) => format!("failed: {e}"),
                (Some(c), None) => format!("exited with status {c}"),
                (None, None) => "failed".to_string(),
            };
            ctx.out.say(&format!("task {task} {how} on {}", r.host));
        }
        results.push(r);
    }
    if ctx.json {
        ctx.out.json(&results);
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(if results.iter().all(|r| r.exit == Some(0)) {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}
