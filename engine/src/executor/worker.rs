//! `dvx exec-task`: the worker side of a cluster executor. It needs no project: it reads a
//! task from the remote, fetches the task's inputs by id into a scratch workspace, runs the
//! commands with the job builder `dvx run` uses (so templating and environment are the same
//! as a local run), stores the outputs and logs on the remote and writes the result once.
//! Nothing reaches the submitter's store from here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dvx_remote::task::{Task, TaskOutput, TaskResult, DATUM_OUTPUT, TASK_FORMAT};
use dvx_remote::transfer::Upload;
use dvx_remote::Remote;
use dvx_store::{paths, Id, StoreError};

use crate::container;
use crate::error::{EngineError, Result};
use crate::exec::{self, Children, Outcome};
use crate::job::{ContainerOf, DatumIo, Recipe};
use crate::spec::Resources;

/// Where the worker mirrors a datum's input at its path below the input folder: inside the
/// reserved `.dvx`, so no input can name it.
const DATUM_INPUT_DIR: &str = ".dvx/in";

/// A scratch folder removed when dropped (the worker leaves nothing behind on the node).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("DVX_KEEP_TASK_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn failed(message: String) -> Outcome {
    Outcome {
        exit: None,
        error: Some(message),
        duration: Duration::ZERO,
        stdout: Vec::new(),
        stderr: Vec::new(),
    }
}

/// Fetch the inputs: each below the workspace, skipping one that lies inside another already
/// written (a folder dep and a datum's file in it).
fn fetch_inputs(remote: &Remote, task: &Task, ws: &Path) -> Result<()> {
    let idx = remote.load_packs(&task.packs)?;
    let mut inputs: Vec<_> = task.inputs.iter().collect();
    inputs.sort_by(|a, b| a.path.cmp(&b.path));
    let mut done: Vec<&str> = Vec::new();
    for i in inputs {
        if done.iter().any(|d| paths::is_under(&i.path, d)) {
            continue;
        }
        let dest = paths::abs(ws, &i.path)?;
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
        }
        remote.download_to(&idx, i.kind, i.id, &dest)?;
        done.push(&i.path);
    }
    Ok(())
}

/// How the worker runs a task's commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Place {
    /// Here: a task with an image runs in its container, with the node's runtime.
    #[default]
    Node,
    /// Already inside the task's image (a Kubernetes pod started from it): the commands run
    /// as they are.
    InImage,
}

/// The container of a task with an image: found by name with the node's runtime, and only
/// if it is the image the task was keyed with.
fn container_of(task: &Task, place: Place) -> Result<Option<ContainerOf>> {
    let Some(pinned) = &task.image else {
        return Ok(None);
    };
    if place == Place::InImage {
        return Ok(None);
    }
    let bad = |message: String, hint: &str| EngineError::Container {
        stage: task.stage.clone(),
        message,
        hint: hint.into(),
    };
    let (reference, id) = pinned.rsplit_once('@').ok_or_else(|| {
        bad(
            format!("the task's image {pinned:?} is not NAME@sha256:ID"),
            "the task was not written by this dvx",
        )
    })?;
    let runtime = container::detect(&task.stage, None)?;
    let image = runtime.resolve(&task.stage, reference)?;
    if image.id != id {
        return Err(bad(
            format!(
                "image {reference} is {} on this node; the task was keyed with {id}",
                image.id
            ),
            "give every node the same image (`podman load`, or a registry the nodes pull from)",
        ));
    }
    Ok(Some(ContainerOf {
        runtime,
        image,
        network: task.network,
        resources: Resources {
            cpus: task.resources.cpus.clone(),
            memory: task.resources.memory.clone(),
            gpus: task.resources.gpus.clone(),
        },
    }))
}

/// Run the task's commands in `ws`, as `dvx run` would, with its timeout enforced.
fn run_commands(task: &Task, ws: &Path, place: Place) -> Result<Outcome> {
    let recipe = Recipe {
        stage: &task.stage,
        cmds: &task.cmd,
        env: &task.env,
        root: ws,
        wdir: &task.wdir,
        timeout: task.timeout_secs.map(Duration::from_secs),
        // Notebook stages run on the machine that plans them (see `spec::Notebook`).
        notebook: None,
    };
    let datum = match &task.datum {
        Some(d) => {
            let output = ws.join(DATUM_OUTPUT);
            std::fs::create_dir_all(&output).map_err(|e| StoreError::io(&output, e))?;
            Some((d, output))
        }
        None => None,
    };
    let image = container_of(task, place)?;
    for o in &task.outs {
        let abs = paths::abs(ws, o)?;
        if let Some(parent) = abs.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
        }
        if image.is_some() {
            // Mounted one by one, so each must exist first (as for a local run).
            container::prepare_output(&abs)?;
        }
    }
    let cwd = paths::abs(ws, &task.wdir)?;
    std::fs::create_dir_all(&cwd).map_err(|e| StoreError::io(&cwd, e))?;
    let outs: Vec<&str> = task.outs.iter().map(String::as_str).collect();
    // The datum's input, and the folder holding it at its path below the input folder
    // (`DVX_INPUT_DIR`), made as `dvx run` makes it.
    let io = match &datum {
        Some((d, output)) if !d.members.is_empty() => {
            // Several inputs: the folder holds each match at `name/sub`, as `dvx run` makes it.
            let input_dir = ws.join(DATUM_INPUT_DIR);
            std::fs::create_dir_all(&input_dir).map_err(|e| StoreError::io(&input_dir, e))?;
            let mut members = Vec::with_capacity(d.members.len());
            for m in &d.members {
                let host = paths::abs(ws, &m.input)?;
                if image.is_none() {
                    crate::job::link_input(&input_dir, &m.place, &host)
                        .map_err(|e| StoreError::io(&input_dir, e))?;
                }
                members.push(crate::job::MemberIo {
                    name: m.name.clone(),
                    place: m.place.clone(),
                    host,
                });
            }
            Some(DatumIo {
                id: &d.id,
                input: input_dir.clone(),
                output: output.clone(),
                input_dir,
                members,
                group: d.group,
            })
        }
        Some((d, output)) => {
            let input = paths::abs(ws, &d.input)?;
            let sub = crate::datum::sub_path(&d.id);
            let input_dir = if sub.is_empty() {
                input.clone()
            } else {
                ws.join(DATUM_INPUT_DIR)
            };
            if image.is_none() {
                crate::job::link_input(&input_dir, sub, &input)
                    .map_err(|e| StoreError::io(&input_dir, e))?;
            }
            Some(DatumIo {
                id: &d.id,
                input,
                output: output.clone(),
                input_dir,
                members: Vec::new(),
                group: false,
            })
        }
        None => None,
    };
    let job = recipe.build(io, &outs, image);
    let children = Children::default();
    // The clock for the timeout: exec::run leaves killing overdue commands to its caller.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let clock = {
        let children = children.clone();
        std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stop_rx.recv_timeout(Duration::from_millis(100))
            {
                children.reap_overdue();
            }
        })
    };
    let outcome = exec::run(&job, &children);
    let _ = stop_tx.send(());
    let _ = clock.join();
    for o in &task.outs {
        container::clear_placeholder(&paths::abs(ws, o)?);
    }
    Ok(outcome)
}

/// The node the worker runs on: `DVX_NODE` where the cluster sets it (a Kubernetes pod's
/// host name is the pod's), else the host name.
fn node() -> String {
    std::env::var("DVX_NODE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(dvx_store::fsutil::hostname)
}

/// Run task `id` from `remote` and write its result. Returns the result that stands (a
/// requeued job finds the first one).
pub fn exec_task(remote: &Remote, id: &Id, place: Place) -> Result<TaskResult> {
    let task = remote.get_task(id)?;
    if let Some(r) = remote.get_result(id)? {
        // Already ran (the cluster started this job twice): nothing to do.
        return Ok(r);
    }
    let ws = std::env::temp_dir().join(format!("dvx-task-{}-{}", id.short(), std::process::id()));
    let _ = std::fs::remove_dir_all(&ws);
    std::fs::create_dir_all(&ws).map_err(|e| StoreError::io(&ws, e))?;
    let scratch = Scratch(ws.clone());
    let started = chrono::Utc::now();
    // Whatever goes wrong here is the task's failure, reported in its result.
    let outcome = match fetch_inputs(remote, &task, &ws) {
        Ok(()) => run_commands(&task, &ws, place).unwrap_or_else(|e| failed(e.to_string())),
        Err(e) => failed(format!("cannot fetch the task's inputs: {e}")),
    };
    let ended = chrono::Utc::now();
    let mut up = Upload::new(remote, None);
    let mut outputs = Vec::new();
    let mut error = outcome.error.clone();
    if outcome.exit == Some(0) {
        let mut declared: Vec<&str> = task.outs.iter().map(String::as_str).collect();
        if task.datum.is_some() {
            declared.push(DATUM_OUTPUT);
        }
        for p in declared {
            let abs = paths::abs(&ws, p)?;
            if abs.symlink_metadata().is_err() {
                continue;
            }
            match up.add_path(&abs) {
                Ok(f) => outputs.push(TaskOutput {
                    path: p.to_string(),
                    kind: f.kind,
                    id: f.id,
                    size: f.size,
                }),
                Err(e) => {
                    error = Some(format!("cannot store output {p}: {e}"));
                    outputs.clear();
                    break;
                }
            }
        }
    }
    let log = |up: &mut Upload, b: &[u8]| -> Result<Option<Id>> {
        Ok(if b.is_empty() {
            None
        } else {
            Some(up.add_bytes(b)?)
        })
    };
    let stdout = log(&mut up, &outcome.stdout)?;
    let stderr = log(&mut up, &outcome.stderr)?;
    let packs = up.finish()?;
    let exit = if error.is_some() && outcome.exit == Some(0) {
        None
    } else {
        outcome.exit
    };
    let result = TaskResult {
        format: TASK_FORMAT,
        task: *id,
        exit,
        error,
        started: started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ended: ended.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        duration_ms: outcome.duration.as_millis() as u64,
        host: node(),
        outputs,
        stdout,
        stderr,
        packs,
    };
    let standing = remote.put_result(&result)?;
    drop(scratch);
    Ok(standing)
}
