//! Tasks and results: what a cluster worker runs and what it reports, as objects on the remote.
//!
//! A task is canonical JSON (serde_json's compact output, fields in the declared order, maps
//! sorted) named by the BLAKE3 of its bytes, at `tasks/ID.json`. Its result is written once to
//! `results/ID.json` with a create-only write: a job the cluster runs twice (a requeue) cannot
//! leave two different results, and the submitter reads whichever came first.
//!
//! Everything read back is untrusted: ids are checked against content, paths must be relative
//! and stay inside the worker's workspace (`dvx_store::paths::check_rel`), and no name may
//! reach into dvx's or git's own files.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use dvx_store::object::EntryKind;
use dvx_store::{paths, Id};

use crate::error::{RemoteError, Result};
use crate::{Remote, RemoteErrorKind};

/// The version of the task and result formats this dvx writes and reads.
pub const TASK_FORMAT: u32 = 1;

/// The most bytes of a task or result object read back (they are small; a huge one is hostile).
pub const MAX_OBJECT: usize = 4 << 20;

/// Where the worker writes a datum's output, relative to its workspace: inside the reserved
/// `.dvx` folder, so no input path can name it.
pub const DATUM_OUTPUT: &str = ".dvx/out";

/// One object the worker fetches and where it puts it (relative to its workspace).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskInput {
    pub path: String,
    pub kind: EntryKind,
    pub id: Id,
}

/// A datum's input and output, relative to the workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDatum {
    pub id: String,
    /// The match (empty for a datum of combined inputs, whose matches are its `members`).
    pub input: String,
    pub output: String,
    /// A datum of several inputs combined (`cross`, `join`, `union`, `group`): one match of
    /// each, or a group. Absent otherwise, so a single-input task's bytes (and id) are what
    /// they were before combined datums could travel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<TaskMember>,
    /// The members are a `group` (the `DVX_INPUT_<NAME>` variables then name folders).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub group: bool,
}

/// One member of a combined datum: its input's name, its place in the datum's input folder
/// (`name/sub`) and the fetched match, relative to the workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskMember {
    pub name: String,
    pub place: String,
    pub input: String,
}

/// What the job asks of the cluster, as written in dvx.yaml.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskResources {
    pub cpus: Option<String>,
    pub memory: Option<String>,
    pub gpus: Option<String>,
}

/// The unit of work that travels to a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub format: u32,
    /// Names this submission (run, execution, attempt): two attempts are two tasks, so a
    /// retry is never answered by the result of the attempt it retries.
    pub submission: String,
    pub stage: String,
    /// The stage's commands, templated by the worker with the job builder dvx uses locally
    /// (`${input}`/`${output}` become the paths in the worker's workspace).
    pub cmd: Vec<String>,
    /// The declared environment (never credentials: only what dvx.yaml declares).
    pub env: BTreeMap<String, String>,
    pub wdir: String,
    /// The image, for stages with `image:`: `NAME[:TAG]@sha256:ID`, the name to find it by
    /// on the node and the id it must have there.
    pub image: Option<String>,
    /// Container stages: whether the container has a network.
    pub network: bool,
    pub inputs: Vec<TaskInput>,
    pub datum: Option<TaskDatum>,
    /// Outputs of a stage without datums (paths relative to the workspace).
    pub outs: Vec<String>,
    pub resources: TaskResources,
    pub timeout_secs: Option<u64>,
    /// Packs that hold the inputs: the worker reads only these indexes.
    pub packs: Vec<Id>,
}

/// One output the worker stored: a path relative to the workspace (a datum's output folder
/// is [`DATUM_OUTPUT`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskOutput {
    pub path: String,
    pub kind: EntryKind,
    pub id: Id,
    pub size: u64,
}

/// How a task ended, written by the worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskResult {
    pub format: u32,
    pub task: Id,
    /// The commands' exit status; null when they were killed or never started.
    pub exit: Option<i32>,
    pub error: Option<String>,
    /// RFC 3339 times of the start and end of the commands.
    pub started: String,
    pub ended: String,
    pub duration_ms: u64,
    pub host: String,
    pub outputs: Vec<TaskOutput>,
    pub stdout: Option<Id>,
    pub stderr: Option<Id>,
    /// Packs that hold the outputs and logs.
    pub packs: Vec<Id>,
}

pub fn task_key(id: &Id) -> String {
    format!("tasks/{}.json", id.to_hex())
}

pub fn result_key(task: &Id) -> String {
    format!("results/{}.json", task.to_hex())
}

fn unsafe_data(remote: &str, message: String) -> RemoteError {
    RemoteError::Remote {
        remote: remote.to_string(),
        message,
        kind: RemoteErrorKind::Unsafe,
    }
}

fn corrupt(remote: &str, message: String) -> RemoteError {
    RemoteError::Remote {
        remote: remote.to_string(),
        message,
        kind: RemoteErrorKind::Corrupt,
    }
}

/// A path a worker may write: relative, without `.`/`..`, not into `.git`/`.dvx` (the datum
/// output folder, which dvx itself names, aside).
fn check_path(remote: &str, what: &str, p: &str, empty_ok: bool) -> Result<()> {
    let problem = if p.is_empty() && !empty_ok {
        Some("an empty path".to_string())
    } else if let Err(e) = paths::check_rel(p) {
        Some(e.to_string())
    } else if p != DATUM_OUTPUT && !p.is_empty() && paths::is_reserved(p) {
        Some("a path inside dvx's or git's own files".to_string())
    } else {
        None
    };
    match problem {
        Some(why) => Err(unsafe_data(
            remote,
            format!("{what} {p:?} is not a safe relative path ({why})"),
        )),
        None => Ok(()),
    }
}

impl Task {
    /// The canonical bytes and the id they give.
    pub fn encode(&self) -> (Id, Vec<u8>) {
        // Serializing plain structs, strings and sorted maps cannot fail.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        (Id::of(&bytes), bytes)
    }

    /// Read a task fetched from `remote`: its bytes must be what `id` names, canonical, and
    /// every path in it safe.
    pub fn decode(remote: &str, id: &Id, bytes: &[u8]) -> Result<Task> {
        if Id::of(bytes) != *id {
            return Err(corrupt(
                remote,
                format!("task {} does not match its id", id.short()),
            ));
        }
        let t: Task = serde_json::from_slice(bytes)
            .map_err(|e| corrupt(remote, format!("task {} is not a task: {e}", id.short())))?;
        if t.format != TASK_FORMAT {
            return Err(RemoteError::Remote {
                remote: remote.to_string(),
                message: format!(
                    "task {} has format {}; this dvx reads format {TASK_FORMAT}",
                    id.short(),
                    t.format
                ),
                kind: RemoteErrorKind::Config,
            });
        }
        if t.encode().1 != bytes {
            return Err(corrupt(
                remote,
                format!("task {} is not in canonical form", id.short()),
            ));
        }
        t.check(remote)?;
        Ok(t)
    }

    fn check(&self, remote: &str) -> Result<()> {
        check_path(remote, "wdir", &self.wdir, true)?;
        for i in &self.inputs {
            check_path(remote, "input", &i.path, false)?;
        }
        for o in &self.outs {
            check_path(remote, "output", o, false)?;
        }
        if let Some(d) = &self.datum {
            check_path(remote, "datum input", &d.input, !d.members.is_empty())?;
            for m in &d.members {
                check_path(remote, "datum member", &m.input, false)?;
                check_path(remote, "datum member place", &m.place, false)?;
                if m.name.is_empty() || m.name.contains('/') || !m.place.starts_with(&m.name) {
                    return Err(unsafe_data(
                        remote,
                        format!(
                            "datum member {:?} is not a place of input {:?}",
                            m.place, m.name
                        ),
                    ));
                }
            }
            if d.output != DATUM_OUTPUT {
                return Err(unsafe_data(
                    remote,
                    format!("datum output {:?} is not {DATUM_OUTPUT}", d.output),
                ));
            }
        }
        Ok(())
    }
}

impl TaskResult {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Read a result of task `task`: it must name that task and only safe paths.
    pub fn decode(remote: &str, task: &Id, bytes: &[u8]) -> Result<TaskResult> {
        let r: TaskResult = serde_json::from_slice(bytes).map_err(|e| {
            corrupt(
                remote,
                format!("the result of task {} is not a result: {e}", task.short()),
            )
        })?;
        if r.task != *task {
            return Err(corrupt(
                remote,
                format!(
                    "the result of task {} names task {}",
                    task.short(),
                    r.task.short()
                ),
            ));
        }
        for o in &r.outputs {
            check_path(remote, "output", &o.path, false)?;
        }
        Ok(r)
    }
}

impl Remote {
    /// Write a task (idempotent: the same task is the same object).
    pub fn put_task(&self, task: &Task) -> Result<Id> {
        let (id, bytes) = task.encode();
        self.put_new(&task_key(&id), bytes)?;
        Ok(id)
    }

    pub fn get_task(&self, id: &Id) -> Result<Task> {
        let key = task_key(id);
        let (bytes, _) = self.get(&key)?.ok_or_else(|| RemoteError::Remote {
            remote: self.name.clone(),
            message: format!("no task {}", id.short()),
            kind: RemoteErrorKind::NotFound,
        })?;
        if bytes.len() > MAX_OBJECT {
            return Err(self.corrupt(format!("{key} is too large for a task")));
        }
        Task::decode(&self.name, id, &bytes)
    }

    /// Write a task's result unless one exists. Returns the result that stands (ours, or the
    /// one written first).
    pub fn put_result(&self, r: &TaskResult) -> Result<TaskResult> {
        if self.put_new(&result_key(&r.task), r.encode())? {
            return Ok(r.clone());
        }
        self.get_result(&r.task)?
            .ok_or_else(|| self.corrupt(format!("{} vanished", result_key(&r.task))))
    }

    pub fn get_result(&self, task: &Id) -> Result<Option<TaskResult>> {
        let key = result_key(task);
        match self.get(&key)? {
            None => Ok(None),
            Some((bytes, _)) if bytes.len() > MAX_OBJECT => {
                Err(self.corrupt(format!("{key} is too large for a result")))
            }
            Some((bytes, _)) => TaskResult::decode(&self.name, task, &bytes).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Task {
        Task {
            format: TASK_FORMAT,
            submission: "run-1/7/0".into(),
            stage: "count".into(),
            cmd: vec!["wc -l < ${input} > ${output}/n".into()],
            env: BTreeMap::from([("B".into(), "2".into()), ("A".into(), "1".into())]),
            wdir: String::new(),
            image: None,
            network: false,
            inputs: vec![TaskInput {
                path: "data/a.ndjson".into(),
                kind: EntryKind::File,
                id: Id::of(b"a"),
            }],
            datum: Some(TaskDatum {
                id: "a.ndjson".into(),
                input: "data/a.ndjson".into(),
                output: DATUM_OUTPUT.into(),
                members: vec![],
                group: false,
            }),
            outs: vec![],
            resources: TaskResources {
                cpus: Some("1".into()),
                memory: None,
                gpus: None,
            },
            timeout_secs: Some(60),
            packs: vec![Id::of(b"pack")],
        }
    }

    #[test]
    fn a_task_has_pinned_bytes_and_id() {
        let (id, bytes) = sample().encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"format":1,"submission":"run-1/7/0","stage":"count","#,
                r#""cmd":["wc -l < ${input} > ${output}/n"],"env":{"A":"1","B":"2"},"wdir":"","#,
                r#""image":null,"network":false,"inputs":[{"path":"data/a.ndjson","kind":"file","#,
                r#""id":"17762fddd969a453925d65717ac3eea21320b66b54342fde15128d6caf21215f"}],"#,
                r#""datum":{"id":"a.ndjson","input":"data/a.ndjson","output":".dvx/out"},"#,
                r#""outs":[],"resources":{"cpus":"1","memory":null,"gpus":null},"#,
                r#""timeout_secs":60,"packs":["#,
                r#""fd6ad1c2e792f4cb1c7af9be82806a548fffa613a25fed9338903ee8d793b86c"]}"#
            )
        );
        assert_eq!(id, Id::of(&bytes));
        assert_eq!(id.to_hex(), GOLDEN_TASK_ID);
        assert_eq!(Task::decode("r", &id, &bytes).unwrap(), sample());
    }

    const GOLDEN_TASK_ID: &str = "80af3ad24ecb545d8dc88b1c28b58a2f9838a703ec0377738e055ac018932ae6";

    #[test]
    fn a_task_read_back_is_checked() {
        let (id, bytes) = sample().encode();
        let mut other = bytes.clone();
        other[10] ^= 1;
        assert!(Task::decode("r", &id, &other).is_err());
        // Same content, not canonical (spaces): refused even under its own id.
        let spaced = String::from_utf8(bytes).unwrap().replace(",\"", ", \"");
        assert!(Task::decode("r", &Id::of(spaced.as_bytes()), spaced.as_bytes()).is_err());
        for bad in [
            "../x",
            "/etc/passwd",
            ".dvx/db",
            ".git/config",
            "a/../../b",
            "",
        ] {
            let mut t = sample();
            t.inputs[0].path = bad.into();
            let (id, bytes) = t.encode();
            let e = Task::decode("r", &id, &bytes).unwrap_err();
            assert_eq!(e.kind(), Some(RemoteErrorKind::Unsafe), "{bad}");
        }
        let mut t = sample();
        if let Some(d) = t.datum.as_mut() {
            d.output = "elsewhere".into();
        }
        let (id, bytes) = t.encode();
        assert!(Task::decode("r", &id, &bytes).is_err());
    }

    #[test]
    fn a_combined_datum_names_its_members_and_each_is_checked() {
        let mut t = sample();
        let member = |name: &str, place: &str, input: &str| TaskMember {
            name: name.into(),
            place: place.into(),
            input: input.into(),
        };
        if let Some(d) = t.datum.as_mut() {
            d.input = String::new();
            d.members = vec![member("imgs", "imgs/a.png", "data/imgs/a.png")];
        }
        let (id, bytes) = t.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains(
                r#""members":[{"name":"imgs","place":"imgs/a.png","input":"data/imgs/a.png"}]"#
            ),
            "{text}"
        );
        assert!(!text.contains("group"), "{text}");
        assert_eq!(Task::decode("r", &id, &bytes).unwrap(), t);
        for (name, place, input) in [
            ("imgs", "imgs/a.png", "../a.png"),
            ("imgs", "../x", "data/a.png"),
            ("imgs", "other/a.png", "data/a.png"),
            ("", "a.png", "data/a.png"),
        ] {
            let mut bad = t.clone();
            if let Some(d) = bad.datum.as_mut() {
                d.members = vec![member(name, place, input)];
            }
            let (id, bytes) = bad.encode();
            let e = Task::decode("r", &id, &bytes).unwrap_err();
            assert_eq!(e.kind(), Some(RemoteErrorKind::Unsafe), "{place} {input}");
        }
    }

    #[test]
    fn a_result_has_pinned_bytes_and_must_name_its_task() {
        let task = Id::of(b"task");
        let r = TaskResult {
            format: TASK_FORMAT,
            task,
            exit: Some(0),
            error: None,
            started: "2026-01-01T00:00:00Z".into(),
            ended: "2026-01-01T00:00:01Z".into(),
            duration_ms: 1000,
            host: "node1".into(),
            outputs: vec![TaskOutput {
                path: DATUM_OUTPUT.into(),
                kind: EntryKind::Dir,
                id: Id::of(b"tree"),
                size: 3,
            }],
            stdout: None,
            stderr: Some(Id::of(b"err")),
            packs: vec![],
        };
        let bytes = r.encode();
        assert_eq!(Id::of(&bytes).to_hex(), GOLDEN_RESULT_ID);
        assert_eq!(TaskResult::decode("r", &task, &bytes).unwrap(), r);
        assert!(TaskResult::decode("r", &Id::of(b"other"), &bytes).is_err());
        let mut bad = r.clone();
        bad.outputs[0].path = "../../etc".into();
        assert!(TaskResult::decode("r", &task, &bad.encode()).is_err());
    }

    const GOLDEN_RESULT_ID: &str =
        "70001583e863eba1539cc7dcb3617ed5b70bbcec7cb69f2eb6ba22e0a1645238";

    #[test]
    fn a_result_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let rc = dvx_store::config::RemoteConfig {
            url: dir.path().to_string_lossy().into_owned(),
            ..Default::default()
        };
        let remote = Remote::connect("r", &rc, None, None).unwrap();
        let tid = remote.put_task(&sample()).unwrap();
        assert_eq!(remote.get_task(&tid).unwrap(), sample());
        let first = TaskResult {
            format: TASK_FORMAT,
            task: tid,
            exit: Some(3),
            error: Some("exited with status 3".into()),
            started: String::new(),
            ended: String::new(),
            duration_ms: 0,
            host: "a".into(),
            outputs: vec![],
            stdout: None,
            stderr: None,
            packs: vec![],
        };
        let mut second = first.clone();
        second.exit = Some(0);
        second.host = "b".into();
        assert_eq!(remote.put_result(&first).unwrap(), first);
        // The second writer learns the result that stands.
        assert_eq!(remote.put_result(&second).unwrap(), first);
        assert_eq!(remote.get_result(&tid).unwrap(), Some(first));
    }
}

#[cfg(test)]
mod schema_tests {
    use super::*;

    /// The key order of the encoded object, which canonical form fixes.
    fn keys(bytes: &[u8]) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort_by_key(|name| text.find(&format!("\"{name}\":")).unwrap_or(usize::MAX));
        k
    }

    fn required(file: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../schemas")
            .join(file);
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        v["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_schemas_list_the_fields_in_their_canonical_order() {
        assert_eq!(
            keys(&tests::sample().encode().1),
            required("task.schema.json")
        );
        let r = TaskResult {
            format: TASK_FORMAT,
            task: Id::of(b"t"),
            exit: None,
            error: None,
            started: String::new(),
            ended: String::new(),
            duration_ms: 0,
            host: String::new(),
            outputs: vec![],
            stdout: None,
            stderr: None,
            packs: vec![],
        };
        assert_eq!(keys(&r.encode()), required("result.schema.json"));
    }
}
