//! Container steps: a stage with `image:` runs its commands in a container on this machine,
//! through the podman or docker command line.
//!
//! The image reference is resolved once per run to the image's id (the digest of its
//! configuration, `sha256:...`), which goes into the key and the run record, and the container
//! runs that id, so a tag moving during a run cannot change what runs. The id rather than a
//! registry's manifest digest: every image has one (locally built or imported ones too), podman
//! and docker report the same value, and it does not depend on how a registry compressed the
//! layers.
//!
//! Inside: the project read-only at `/dvx/work` (the working folder is `/dvx/work/WDIR`), each
//! declared output writable at its own place there, a datum's input read-only at `/dvx/in` and
//! its output folder writable at `/dvx/out`. No network unless the stage asks, only the
//! stage's declared environment, and the invoking user's uid:gid so that what the container
//! writes belongs to whoever ran dvx.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::error::{EngineError, Result};
use crate::exec::{self, Children, Job, Outcome};
use crate::spec::Resources;

/// Where the project, a datum's input and its output folder appear in the container.
pub const WORK: &str = "/dvx/work";
pub const IN: &str = "/dvx/in";
pub const OUT: &str = "/dvx/out";
/// Batches only: the generated script and each datum's captured output.
const LOG: &str = "/dvx/log";

/// Chooses the runtime; `podman`, `docker` or a path to either's command.
pub const RUNTIME_ENV: &str = "DVX_CONTAINER_RUNTIME";

/// A container command line dvx can drive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runtime {
    /// `podman` or `docker`: which flags to use, and the run record's executor.
    pub name: &'static str,
    pub program: PathBuf,
}

/// An image reference and the id it resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub reference: String,
    /// `sha256:...`
    pub id: String,
}

impl Image {
    /// `NAME@sha256:ID` for run records: the name as written (tag kept, digest dropped) and the
    /// exact image that ran.
    pub fn pinned(&self) -> String {
        let name = self.reference.split('@').next().unwrap_or(&self.reference);
        format!("{name}@{}", self.id)
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `runtime` of the `[containers]` table of `.dvx/config.toml`, if set (checked when the
/// settings were read).
pub fn configured_runtime(repo: &dvx_store::Repo) -> Result<Option<String>> {
    Ok(repo
        .config
        .containers
        .as_ref()
        .and_then(|c| c.runtime.clone()))
}

/// The runtime named by `DVX_CONTAINER_RUNTIME`, else by `[containers] runtime` in the
/// project's settings, else the first of podman and docker on PATH.
pub fn detect(stage: &str, configured: Option<&str>) -> Result<Runtime> {
    let flavor = |program: &Path| -> &'static str {
        let file = program
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if file.starts_with("docker") {
            "docker"
        } else {
            "podman"
        }
    };
    let chosen = match std::env::var(RUNTIME_ENV).ok().filter(|s| !s.is_empty()) {
        Some(v) => Some((v, RUNTIME_ENV)),
        None => configured.map(|c| (c.to_string(), "[containers] runtime in .dvx/config.toml")),
    };
    if let Some((want, from)) = chosen {
        let program = if want.contains('/') {
            Some(PathBuf::from(&want)).filter(|p| is_executable(p))
        } else {
            on_path(&want)
        };
        return match program {
            Some(program) => Ok(Runtime {
                name: flavor(&program),
                program,
            }),
            None => Err(EngineError::Container {
                stage: stage.into(),
                message: format!(
                    "the container runtime `{want}` ({from}) is not an executable on PATH"
                ),
                hint: format!("set {RUNTIME_ENV} (or [containers] runtime in .dvx/config.toml) to podman, docker or the path of one of them, or unset it to use whichever is installed"),
            }),
        };
    }
    for name in ["podman", "docker"] {
        if let Some(program) = on_path(name) {
            return Ok(Runtime {
                name: flavor(&program),
                program,
            });
        }
    }
    Err(EngineError::Container {
        stage: stage.into(),
        message: "the stage runs in a container, but neither podman nor docker is installed"
            .into(),
        hint: format!(
            "install podman (`apt-get install podman`) or docker, or name one with {RUNTIME_ENV}=PATH"
        ),
    })
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

impl Runtime {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.stdin(Stdio::null());
        c
    }

    /// The image's id, or None when this machine does not have it.
    fn image_id(&self, reference: &str) -> Result<Option<String>, String> {
        let out = self
            .command()
            .args(["image", "inspect", "--format", "{{.Id}}", reference])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        if !out.status.success() {
            return Ok(None);
        }
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let hex = id.strip_prefix("sha256:").unwrap_or(&id);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("`{} image inspect` gave no image id", self.name));
        }
        Ok(Some(format!("sha256:{hex}")))
    }

    /// Resolve a reference to its id, pulling it when it is not here yet.
    pub fn resolve(&self, stage: &str, reference: &str) -> Result<Image> {
        let fail = |message: String| {
            EngineError::Container {
            stage: stage.into(),
            message,
            hint: format!(
                "build or load the image (`{0} build -t {reference} .`, `{0} load`), or log in to its registry (`{0} login REGISTRY`) and check the name",
                self.name
            ),
        }
        };
        if let Some(id) = self.image_id(reference).map_err(&fail)? {
            return Ok(Image {
                reference: reference.into(),
                id,
            });
        }
        let pull = self
            .command()
            .args(["pull", "--quiet", reference])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| fail(format!("cannot run {}: {e}", self.program.display())))?;
        let id = if pull.status.success() {
            self.image_id(reference).map_err(&fail)?
        } else {
            None
        };
        match id {
            Some(id) => Ok(Image {
                reference: reference.into(),
                id,
            }),
            None => Err(fail(format!(
                "image `{reference}` is not on this machine and pulling it failed: {}",
                last_line(&pull.stderr)
            ))),
        }
    }

    /// Remove a container, running or not; quietly, it may not exist.
    fn remove(&self, name: &str) {
        let mut c = self.command();
        c.args(["rm", "-f"]);
        if self.name == "podman" {
            c.args(["-t", "0"]);
        }
        let _ = c
            .arg(name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn oom_killed(&self, name: &str) -> bool {
        self.command()
            .args(["inspect", "--format", "{{.State.OOMKilled}}", name])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
    }
}

/// The runtime and image ids of one run: each looked up once, however many stages and
/// datums use them.
#[derive(Default)]
pub struct Resolver {
    /// `[containers] runtime` from the project's settings.
    configured: Option<String>,
    runtime: Mutex<Option<Runtime>>,
    images: Mutex<HashMap<String, Image>>,
}

impl Resolver {
    pub fn new(configured: Option<String>) -> Resolver {
        Resolver {
            configured,
            ..Resolver::default()
        }
    }

    pub fn resolve(&self, stage: &str, reference: &str) -> Result<(Runtime, Image)> {
        let runtime = {
            let mut g = self.runtime.lock().unwrap_or_else(|p| p.into_inner());
            match &*g {
                Some(r) => r.clone(),
                None => {
                    let r = detect(stage, self.configured.as_deref())?;
                    *g = Some(r.clone());
                    r
                }
            }
        };
        let mut images = self.images.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = images.get(reference) {
            return Ok((runtime, i.clone()));
        }
        let image = runtime.resolve(stage, reference)?;
        images.insert(reference.into(), image.clone());
        Ok((runtime, image))
    }
}

/// A bind mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub host: PathBuf,
    pub target: String,
    pub writable: bool,
}

impl Mount {
    pub fn ro(host: PathBuf, target: impl Into<String>) -> Mount {
        Mount {
            host,
            target: target.into(),
            writable: false,
        }
    }
    pub fn rw(host: PathBuf, target: impl Into<String>) -> Mount {
        Mount {
            host,
            target: target.into(),
            writable: true,
        }
    }
}

/// One datum of a batch: its id and commands (`${input}`/`${output}` already replaced).
#[derive(Clone, Debug)]
pub struct BatchDatum {
    pub id: String,
    pub cmds: Vec<String>,
    /// `DVX_INPUT` and `DVX_INPUT_DIR` in the container.
    pub input: String,
    pub input_dir: String,
    /// More variables of its own (`DVX_INPUT_<NAME>` of combined inputs).
    pub vars: Vec<(String, String)>,
}

/// How a job runs in a container (beside the commands, environment and timeout of its Job).
#[derive(Clone, Debug)]
pub struct Spec {
    pub runtime: Runtime,
    pub image: Image,
    pub stage: String,
    pub mounts: Vec<Mount>,
    pub workdir: String,
    pub network: bool,
    pub resources: Resources,
    /// Several datums in one container; empty for a single execution.
    pub batch: Vec<BatchDatum>,
    /// Batches: a scratch folder for the script and each datum's output (at /dvx/log).
    pub log_dir: Option<PathBuf>,
}

/// Outputs of non-datum stages are mounted one by one, so each must exist before the run.
/// One with an extension (`model.pkl`) is taken for a file, one without (`models`) for a
/// folder, unless something is already there (`persist: true`).
pub fn prepare_output(abs: &Path) -> Result<()> {
    if abs.symlink_metadata().is_ok() {
        return Ok(());
    }
    let is_file = abs
        .file_name()
        .is_some_and(|n| n.to_string_lossy().trim_start_matches('.').contains('.'));
    if is_file {
        let f = std::fs::File::create(abs).map_err(|e| dvx_store::StoreError::io(abs, e))?;
        // An untouched placeholder (empty, dated 1970) is told apart from a real output after
        // the run.
        f.set_modified(SystemTime::UNIX_EPOCH)
            .map_err(|e| dvx_store::StoreError::io(abs, e))?;
    } else {
        std::fs::create_dir_all(abs).map_err(|e| dvx_store::StoreError::io(abs, e))?;
    }
    Ok(())
}

/// Remove an output placeholder the command never wrote, so a missing output is reported as
/// missing.
pub fn clear_placeholder(abs: &Path) {
    if let Ok(m) = abs.symlink_metadata() {
        if m.is_file() && m.len() == 0 && m.modified().ok() == Some(SystemTime::UNIX_EPOCH) {
            let _ = std::fs::remove_file(abs);
        }
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The commands as one script: each in its own `sh -c`, as the local executor runs them, and
/// the first failure ends it with that status.
fn script(cmds: &[String]) -> String {
    if cmds.len() == 1 {
        return exec::shell_script(&cmds[0]);
    }
    cmds.iter()
        .map(|c| format!("sh -c {} || exit $?\n", quote(c)))
        .collect()
}

/// The batch script: every datum in turn with its own DVX_INPUT/DVX_OUTPUT, its output and
/// exit status kept apart under /dvx/log; one datum failing does not stop the others. The
/// closing parenthesis has a line of its own so that a command ending in a comment cannot
/// swallow it.
fn batch_script(batch: &[BatchDatum]) -> String {
    let mut s = String::new();
    for (k, d) in batch.iter().enumerate() {
        s.push_str(&format!(
            "(export DVX_INPUT={} DVX_INPUT_DIR={} DVX_OUTPUT={OUT}/{k} DVX_DATUM_ID={}{}\n{}\n) >{LOG}/{k}.out 2>{LOG}/{k}.err </dev/null\necho $? >{LOG}/{k}.exit\n",
            quote(&d.input),
            quote(&d.input_dir),
            quote(&d.id),
            d.vars
                .iter()
                .map(|(k, v)| format!(" {k}={}", quote(v)))
                .collect::<String>(),
            script(&d.cmds)
        ));
    }
    s
}

static SERIAL: AtomicU64 = AtomicU64::new(0);

/// A name unique on this machine, so a timeout or Ctrl-C can remove the container.
fn container_name(stage: &str) -> String {
    let safe: String = stage
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    format!(
        "dvx-{safe}-{}-{}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    )
}

/// `RUNTIME run ...` arguments, up to and including the image.
pub fn run_args(
    spec: &Spec,
    name: &str,
    env: &BTreeMap<String, String>,
    remove: bool,
) -> Vec<String> {
    let mut a: Vec<String> = vec!["run".into()];
    if remove {
        a.push("--rm".into());
    }
    a.extend([
        "--name".into(),
        name.into(),
        "--pull".into(),
        "never".into(),
    ]);
    // SELinux hosts would otherwise refuse the bind mounts; relabeling the project is worse.
    a.extend(["--security-opt".into(), "label=disable".into()]);
    if !spec.network {
        a.extend(["--network".into(), "none".into()]);
    }
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if spec.runtime.name == "podman" && uid != 0 {
        // Rootless podman: without keep-id, uid:gid inside maps to a subordinate id outside.
        a.push("--userns=keep-id".into());
    }
    a.extend(["--user".into(), format!("{uid}:{gid}")]);
    for m in &spec.mounts {
        let mut v = format!("{}:{}", m.host.display(), m.target);
        if !m.writable {
            v.push_str(":ro");
        }
        a.extend(["-v".into(), v]);
    }
    a.extend(["-w".into(), spec.workdir.clone()]);
    for (k, v) in env {
        a.extend(["-e".into(), format!("{k}={v}")]);
    }
    if let Some(c) = &spec.resources.cpus {
        a.extend(["--cpus".into(), c.clone()]);
    }
    if let Some(m) = &spec.resources.memory {
        // No swap beyond the limit: the limit is what the stage gets.
        a.extend([
            "--memory".into(),
            m.clone(),
            "--memory-swap".into(),
            m.clone(),
        ]);
    }
    if let Some(g) = &spec.resources.gpus {
        if spec.runtime.name == "docker" {
            a.extend(["--gpus".into(), g.clone()]);
        } else if g == "all" {
            a.extend(["--device".into(), "nvidia.com/gpu=all".into()]);
        } else {
            // Podman reaches GPUs through CDI device names.
            let n: u32 = g.parse().unwrap_or(1);
            for i in 0..n {
                a.extend(["--device".into(), format!("nvidia.com/gpu={i}")]);
            }
        }
    }
    a.extend(["--entrypoint".into(), "sh".into(), spec.image.id.clone()]);
    a
}

/// What the container run gave, before it is put in words.
struct Raw {
    status: Option<std::process::ExitStatus>,
    spawn_error: Option<String>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    duration: Duration,
    timed_out: bool,
    oom: bool,
}

fn start(
    spec: &Spec,
    job: &Job,
    script: &str,
    timeout: Option<Duration>,
    children: &Children,
) -> Raw {
    let start = Instant::now();
    // No deadline rather than a panic if it lies past what `Instant` can hold.
    let deadline = timeout.and_then(|t| start.checked_add(t));
    let name = container_name(&spec.stage);
    // A memory limit keeps the container after it exits, to ask whether it ran out of memory.
    let keep = spec.resources.memory.is_some();
    let mut cmd = spec.runtime.command();
    cmd.args(run_args(spec, &name, &job.env, !keep))
        .arg("-c")
        .arg(script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut raw = Raw {
        status: None,
        spawn_error: None,
        stdout: Vec::new(),
        stderr: Vec::new(),
        duration: Duration::ZERO,
        timed_out: false,
        oom: false,
    };
    if children.is_cancelled() {
        raw.spawn_error = Some("interrupted".into());
        return raw;
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            raw.spawn_error = Some(format!(
                "cannot start {}: {e}",
                spec.runtime.program.display()
            ));
            return raw;
        }
    };
    let pid = child.id();
    children.track(pid, deadline);
    let output = crate::livelog::wait_with_output(child, job.live.as_ref());
    children.untrack(pid);
    raw.duration = start.elapsed();
    match output {
        Ok(o) => {
            raw.stdout = o.stdout;
            raw.stderr = o.stderr;
            raw.status = Some(o.status);
        }
        Err(e) => raw.spawn_error = Some(format!("lost the container's process: {e}")),
    }
    let killed = raw.status.is_some_and(|s| s.signal().is_some());
    raw.timed_out = killed && deadline.is_some_and(|d| Instant::now() >= d);
    if keep && raw.status.and_then(|s| s.code()) == Some(137) {
        raw.oom = spec.runtime.oom_killed(&name);
    }
    // Killing the client leaves the container running (it is not the client's child): remove
    // it. With a memory limit it was kept on purpose and goes now.
    if killed || keep || raw.spawn_error.is_some() {
        spec.runtime.remove(&name);
    }
    raw
}

/// Put a container's end in words: (exit status, error).
fn verdict(
    spec: &Spec,
    raw: &Raw,
    what: &str,
    timeout: Option<Duration>,
    children: &Children,
) -> (Option<i32>, Option<String>) {
    if let Some(e) = &raw.spawn_error {
        return (None, Some(e.clone()));
    }
    let Some(status) = raw.status else {
        return (None, Some("the container did not run".into()));
    };
    if status.signal().is_some() {
        return (
            None,
            Some(if raw.timed_out {
                format!(
                    "timed out after {}s; the container was removed",
                    timeout.map(|t| t.as_secs()).unwrap_or(0)
                )
            } else if children.is_cancelled() {
                "interrupted".to_string()
            } else {
                format!("the {} client was killed", spec.runtime.name)
            }),
        );
    }
    let code = status.code().unwrap_or(-1);
    interpret(spec, code, &raw.stderr, raw.oom, what)
}

fn interpret(
    spec: &Spec,
    code: i32,
    stderr: &[u8],
    oom: bool,
    what: &str,
) -> (Option<i32>, Option<String>) {
    let limit = spec.resources.memory.as_deref();
    let text = String::from_utf8_lossy(stderr);
    let message = match code {
        0 => return (Some(0), None),
        125 => format!(
            "the container could not start ({} exit 125): {}",
            spec.runtime.name,
            last_line(stderr)
        ),
        126 => "the command in the container could not be run (exit 126)".into(),
        127 => format!("{what} exited with status 127: command not found in the image"),
        137 => match (oom, limit) {
            (true, Some(l)) => format!("killed: out of memory (limit {l})"),
            (true, None) => "killed: out of memory".into(),
            (false, Some(l)) => {
                format!("killed by SIGKILL (exit 137), most likely out of memory (limit {l})")
            }
            (false, None) => "killed by SIGKILL (exit 137)".into(),
        },
        c if (129..=192).contains(&c) => {
            format!("{what} was killed by signal {} (exit {c})", c - 128)
        }
        c => {
            let mut m = format!("{what} exited with status {c}");
            if text.contains("Read-only file system") {
                m.push_str(
                    "; it tried to write where the container has read-only access: inputs and the project are mounted read-only, write to the stage's outputs ($DVX_OUTPUT for datums)",
                );
            }
            m
        }
    };
    (Some(code), Some(message))
}

fn describe(cmds: &[String]) -> String {
    match cmds {
        [one] => format!("`{one}`"),
        _ => "the commands".to_string(),
    }
}

/// Run one job in a container.
pub fn run(job: &Job, spec: &Spec, children: &Children) -> Outcome {
    let raw = start(spec, job, &script(&job.cmds), job.timeout, children);
    let (exit, error) = verdict(spec, &raw, &describe(&job.cmds), job.timeout, children);
    Outcome {
        exit,
        error,
        duration: raw.duration,
        stdout: raw.stdout,
        stderr: raw.stderr,
    }
}

/// Run a batch of datums in one container: one outcome per datum, in order. The job's timeout
/// is per datum, so the container gets it times the batch's size.
pub fn run_batch(job: &Job, spec: &Spec, children: &Children) -> Vec<Outcome> {
    let n = spec.batch.len();
    let Some(log_dir) = &spec.log_dir else {
        return vec![failed("a batch needs a log folder"); n];
    };
    let file = log_dir.join("batch.sh");
    if let Err(e) = std::fs::write(&file, batch_script(&spec.batch)) {
        return vec![failed(&format!("cannot write {}: {e}", file.display())); n];
    }
    let timeout = job
        .timeout
        .map(|t| t.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX)));
    let raw = start(
        spec,
        job,
        &format!("exec sh {LOG}/batch.sh"),
        timeout,
        children,
    );
    let share = raw.duration / n.max(1) as u32;
    let (_, container_error) = verdict(spec, &raw, "the batch", timeout, children);
    (0..n)
        .map(|k| {
            let read =
                |ext: &str| std::fs::read(log_dir.join(format!("{k}.{ext}"))).unwrap_or_default();
            let code = String::from_utf8_lossy(&read("exit"))
                .trim()
                .parse::<i32>()
                .ok();
            let stderr = read("err");
            let (exit, error) = match code {
                // A datum that did not finish shares the container's fate.
                None => (
                    None,
                    Some(container_error.clone().unwrap_or_else(|| {
                        "the container ended before this datum ran".to_string()
                    })),
                ),
                Some(c) => interpret(spec, c, &stderr, raw.oom, &describe(&spec.batch[k].cmds)),
            };
            let mut stdout = read("out");
            let mut stderr = stderr;
            if code.is_none() {
                // The container's own messages say why (the runtime's error, for one).
                stdout.extend_from_slice(&raw.stdout);
                stderr.extend_from_slice(&raw.stderr);
            }
            Outcome {
                exit,
                error,
                duration: share,
                stdout,
                stderr,
            }
        })
        .collect()
}

fn failed(message: &str) -> Outcome {
    Outcome {
        exit: None,
        error: Some(message.into()),
        duration: Duration::ZERO,
        stdout: Vec::new(),
        stderr: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
