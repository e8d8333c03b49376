//! The pure parts of the Slurm executor: its settings (`[executor.slurm]` of config.toml),
//! the `sbatch` arguments of a task, and what `squeue` prints. No process is started here.

use std::path::Path;

use serde::Deserialize;

use dvx_store::config::line_col;
use dvx_store::StoreError;

use crate::error::Result;
use crate::job::shell_quote;
use crate::spec::Resources;

/// The shortest and longest time between two looks at the queue, in seconds.
pub const POLL_RANGE: (f64, f64) = (0.05, 600.0);
/// Default seconds between two looks at the queue: one `squeue` call covers every job.
pub const DEFAULT_POLL: f64 = 2.0;
/// Slurm's time limit is the task's timeout plus this: the worker enforces the timeout itself
/// (and reports it), the queue's limit is only a backstop for fetching and uploading.
pub const TIME_MARGIN_SECS: u64 = 300;

/// `[executor.slurm]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// `--partition` of every job.
    pub partition: Option<String>,
    /// `--account` of every job.
    pub account: Option<String>,
    /// More `sbatch` arguments, one per item (`["--qos=short", "--constraint=ssd"]`).
    #[serde(default)]
    pub sbatch_args: Vec<String>,
    /// Seconds between two looks at the queue.
    pub poll_secs: Option<toml::Spanned<f64>>,
    /// The remote the data moves through (a name or URL; default: the project's default).
    pub remote: Option<String>,
    /// The dvx the nodes run (default: this one's path, for a shared file system).
    pub dvx: Option<String>,
    /// Where Slurm writes each job's own output (`%j` is the job id); default
    /// `.dvx/slurm/%j.log` in the project.
    pub log: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Executors {
    slurm: Option<SlurmConfig>,
    /// The other executors' sections are theirs to check.
    #[serde(rename = "ray")]
    _ray: Option<toml::Value>,
    #[serde(rename = "kubernetes")]
    _kubernetes: Option<toml::Value>,
}

/// The part of config.toml this reads; other sections belong to other crates.
#[derive(Deserialize)]
struct File {
    executor: Option<Executors>,
}

impl SlurmConfig {
    /// Read `[executor.slurm]` of config.toml (absent: defaults); errors carry line:column.
    pub fn load(path: &Path) -> Result<SlurmConfig> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(StoreError::io(path, e).into()),
        };
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<SlurmConfig> {
        let err = |span: Option<std::ops::Range<usize>>, message: String| StoreError::Config {
            path: path.to_path_buf(),
            line: span.as_ref().map_or(1, |s| line_col(text, s.start).0),
            column: span.as_ref().map_or(1, |s| line_col(text, s.start).1),
            message,
        };
        let file: File =
            toml::from_str(text).map_err(|e| err(e.span(), e.message().trim_end().to_string()))?;
        let cfg = file.executor.and_then(|e| e.slurm).unwrap_or_default();
        if let Some(p) = &cfg.poll_secs {
            let v = *p.get_ref();
            if !(POLL_RANGE.0..=POLL_RANGE.1).contains(&v) {
                return Err(err(
                    Some(p.span()),
                    format!(
                        "poll_secs: {v} is out of range ({} to {} seconds)",
                        POLL_RANGE.0, POLL_RANGE.1
                    ),
                )
                .into());
            }
        }
        for a in &cfg.sbatch_args {
            if !a.starts_with('-') {
                return Err(err(
                    None,
                    format!("sbatch_args: {a:?} is not an option (options start with `-`)"),
                )
                .into());
            }
        }
        Ok(cfg)
    }

    pub fn poll(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(
            self.poll_secs
                .as_ref()
                .map_or(DEFAULT_POLL, |p| *p.get_ref()),
        )
    }
}

/// Slurm's `--time`: days-hours:minutes:seconds.
pub fn slurm_time(secs: u64) -> String {
    let (d, rest) = (secs / 86_400, secs % 86_400);
    format!(
        "{d}-{:02}:{:02}:{:02}",
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60
    )
}

/// `sbatch`'s options for a stage's resources (validated text from dvx.yaml).
pub fn resource_args(r: &Resources) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    if let Some(c) = &r.cpus {
        let v: f64 = c
            .parse()
            .map_err(|_| format!("resources.cpus {c:?} is not a number"))?;
        // Slurm allocates whole CPUs: a fraction asks for one.
        out.push(format!("--cpus-per-task={}", v.ceil().max(1.0) as u64));
    }
    if let Some(m) = &r.memory {
        // Slurm's --mem is in mebibytes.
        out.push(format!("--mem={}M", memory_mib(m)?));
    }
    if let Some(g) = &r.gpus {
        if g == "all" {
            return Err(
                "resources.gpus: `all` means nothing to a cluster's queue; give a count".into(),
            );
        }
        out.push(format!("--gres=gpu:{g}"));
    }
    Ok(out)
}

/// Mebibytes of a stage's `resources.memory` (`512m`, `1.5g`: binary units, as for a
/// container), rounded up: never less than what was written.
pub fn memory_mib(m: &str) -> std::result::Result<u64, String> {
    let t = m.trim().to_ascii_lowercase();
    let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("resources.memory {m:?} is not a size"))?;
    let bytes = match unit.trim_end_matches('b') {
        "" => n,
        "k" => n * 1024.0,
        "m" => n * 1024.0 * 1024.0,
        "g" => n * 1024.0 * 1024.0 * 1024.0,
        "t" => n * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("resources.memory {m:?}: unknown unit")),
    };
    Ok((bytes / (1024.0 * 1024.0)).ceil().max(1.0) as u64)
}

/// Everything `sbatch` is called with for one task.
pub struct SbatchJob<'a> {
    pub name: &'a str,
    pub log: &'a str,
    pub cfg: &'a SlurmConfig,
    pub resources: &'a Resources,
    pub timeout_secs: Option<u64>,
    /// The worker's command line, as words.
    pub worker: Vec<String>,
}

impl SbatchJob<'_> {
    pub fn args(&self) -> std::result::Result<Vec<String>, String> {
        let mut a = vec![
            "--parsable".to_string(),
            format!("--job-name={}", self.name),
            format!("--output={}", self.log),
            // The worker reads nothing from standard input.
            "--input=/dev/null".to_string(),
        ];
        if let Some(p) = &self.cfg.partition {
            a.push(format!("--partition={p}"));
        }
        if let Some(acc) = &self.cfg.account {
            a.push(format!("--account={acc}"));
        }
        a.extend(resource_args(self.resources)?);
        if let Some(t) = self.timeout_secs {
            a.push(format!(
                "--time={}",
                slurm_time(t.saturating_add(TIME_MARGIN_SECS))
            ));
        }
        a.extend(self.cfg.sbatch_args.iter().cloned());
        let words: Vec<String> = self.worker.iter().map(|w| shell_quote(w)).collect();
        a.push(format!("--wrap=exec {}", words.join(" ")));
        Ok(a)
    }
}

/// What `squeue` says of one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEntry {
    pub job: String,
    pub state: String,
    /// The node, once it runs (empty or a reason while it waits).
    pub node: String,
}

/// The `squeue` options whose output [`parse_squeue`] reads.
pub fn squeue_args(name: &str) -> Vec<String> {
    vec![
        "--noheader".into(),
        "--states=all".into(),
        format!("--name={name}"),
        "--format=%i|%T|%N".into(),
    ]
}

/// Parse `squeue --format=%i|%T|%N`; lines that do not fit are skipped.
pub fn parse_squeue(out: &str) -> Vec<QueueEntry> {
    out.lines()
        .filter_map(|l| {
            let mut p = l.trim().splitn(3, '|');
            let job = p.next()?.trim();
            let state = p.next()?.trim();
            if job.is_empty() || !job.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
                return None;
            }
            Some(QueueEntry {
                job: job.to_string(),
                state: state.to_string(),
                node: p.next().unwrap_or("").trim().to_string(),
            })
        })
        .collect()
}

/// A state after which the job does nothing more.
pub fn is_terminal(state: &str) -> bool {
    !matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "CONFIGURING"
            | "COMPLETING"
            | "SUSPENDED"
            | "REQUEUED"
            | "REQUEUE_HOLD"
            | "REQUEUE_FED"
            | "RESIZING"
            | "SIGNALING"
            | "STAGE_OUT"
            | "STOPPED"
            | "RESV_DEL_HOLD"
    )
}

/// The job id `sbatch --parsable` prints (`ID` or `ID;CLUSTER`).
pub fn parse_sbatch(out: &str) -> Option<String> {
    let id = out.trim().split(';').next()?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> std::result::Result<SlurmConfig, String> {
        SlurmConfig::parse(Path::new(".dvx/config.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn settings_are_read_with_their_place() {
        let c = cfg("[core]\nformat = 1\n\n[executor.slurm]\npartition = \"gpu\"\npoll_secs = 0.5\nsbatch_args = [\"--qos=short\"]\n").unwrap();
        assert_eq!(c.partition.as_deref(), Some("gpu"));
        assert_eq!(c.poll(), std::time::Duration::from_millis(500));
        assert_eq!(cfg("[core]\nformat = 1\n").unwrap(), SlurmConfig::default());
        let e = cfg("[executor.slurm]\npoll_secs = 0.001\n").unwrap_err();
        assert!(e.contains(":2:13:") && e.contains("out of range"), "{e}");
        let e = cfg("[executor.slurm]\npartiton = \"x\"\n").unwrap_err();
        assert!(
            e.contains(":2:1:") && e.contains("unknown field `partiton`"),
            "{e}"
        );
        let e = cfg("[executor.slurm]\nsbatch_args = [\"qos\"]\n").unwrap_err();
        assert!(e.contains("not an option"), "{e}");
        assert!(cfg("[executor.ray]\naddress = \"http://h:8265\"\n").is_ok());
        let e = cfg("[executor.slurmm]\n").unwrap_err();
        assert!(e.contains("unknown field `slurmm`"), "{e}");
    }

    #[test]
    fn resources_and_timeout_become_sbatch_options() {
        let r = Resources {
            cpus: Some("0.5".into()),
            memory: Some("1.5g".into()),
            gpus: Some("2".into()),
        };
        assert_eq!(
            resource_args(&r).unwrap(),
            ["--cpus-per-task=1", "--mem=1536M", "--gres=gpu:2"]
        );
        assert!(resource_args(&Resources {
            gpus: Some("all".into()),
            ..Default::default()
        })
        .is_err());
        assert_eq!(slurm_time(90_061), "1-01:01:01");
        let c = SlurmConfig {
            partition: Some("debug".into()),
            sbatch_args: vec!["--qos=short".into()],
            ..Default::default()
        };
        let job = SbatchJob {
            name: "dvx-ab12",
            log: "/p/.dvx/slurm/%j.log",
            cfg: &c,
            resources: &Resources::default(),
            timeout_secs: Some(60),
            worker: vec!["/usr/bin/dvx".into(), "exec-task".into(), "/r it's".into()],
        };
        assert_eq!(
            job.args().unwrap(),
            [
                "--parsable",
                "--job-name=dvx-ab12",
                "--output=/p/.dvx/slurm/%j.log",
                "--input=/dev/null",
                "--partition=debug",
                "--time=0-00:06:00",
                "--qos=short",
                "--wrap=exec '/usr/bin/dvx' 'exec-task' '/r it'\\''s'",
            ]
        );
    }

    #[test]
    fn the_queue_is_read_line_by_line() {
        let out = "12|RUNNING|node1\n13|PENDING|\ngarbage\n14|CANCELLED|node2\n";
        let q = parse_squeue(out);
        assert_eq!(q.len(), 3);
        assert_eq!(q[0].node, "node1");
        assert!(!is_terminal(&q[1].state));
        assert!(is_terminal(&q[2].state));
        assert!(is_terminal("COMPLETED") && is_terminal("TIMEOUT") && is_terminal("NODE_FAIL"));
        assert_eq!(parse_sbatch("4711\n").as_deref(), Some("4711"));
        assert_eq!(parse_sbatch("4711;cluster\n").as_deref(), Some("4711"));
        assert_eq!(parse_sbatch("error"), None);
    }
}
