//! The pure parts of the Ray executor: its settings (`[executor.ray]` of config.toml), the
//! address of the cluster's job API, the body of a job submission, and what the API says of
//! a job. No request is sent from here.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use dvx_store::config::line_col;
use dvx_store::{Id, StoreError};

use crate::error::{EngineError, Result};
use crate::job::shell_quote;
use crate::spec::Resources;

/// The shortest and longest time between two looks at the jobs, in seconds.
pub const POLL_RANGE: (f64, f64) = (0.05, 600.0);
/// Default seconds between two looks at the jobs.
pub const DEFAULT_POLL: f64 = 1.0;
/// A job is stopped once it has run this long past the task's timeout (times the tasks of
/// a batch): the worker enforces the timeout itself and reports it; this is only a backstop
/// for fetching and uploading that hang.
pub const TIME_MARGIN_SECS: u64 = 300;
/// The environment variable Ray's own tools read the address from.
pub const ADDRESS_VAR: &str = "RAY_ADDRESS";

/// `[executor.ray]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RayConfig {
    /// The dashboard's address (`http://HOST:8265`), where the job API is; default
    /// `RAY_ADDRESS`.
    pub address: Option<String>,
    /// Seconds between two looks at the jobs.
    pub poll_secs: Option<toml::Spanned<f64>>,
    /// The remote the data moves through (a name or URL; default: the project's default).
    pub remote: Option<String>,
    /// The dvx the workers run (default: this one's path, for a shared file system).
    pub dvx: Option<String>,
    /// Custom resources every job asks for (`entrypoint_resources`), e.g. `{ssd = 1}`.
    #[serde(default)]
    pub resources: BTreeMap<String, f64>,
    /// Names of environment variables passed from here to every job (their values are
    /// visible in Ray's job list): credentials for a remote the nodes cannot otherwise read.
    #[serde(default)]
    pub pass_env: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Executors {
    ray: Option<RayConfig>,
    /// The other executors' sections are theirs to check.
    #[serde(rename = "slurm")]
    _slurm: Option<toml::Value>,
    #[serde(rename = "kubernetes")]
    _kubernetes: Option<toml::Value>,
}

/// The part of config.toml this reads; other sections belong to other crates.
#[derive(Deserialize)]
struct File {
    executor: Option<Executors>,
}

impl RayConfig {
    /// Read `[executor.ray]` of config.toml (absent: defaults); errors carry line:column.
    pub fn load(path: &Path) -> Result<RayConfig> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(StoreError::io(path, e).into()),
        };
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<RayConfig> {
        let err = |span: Option<std::ops::Range<usize>>, message: String| StoreError::Config {
            path: path.to_path_buf(),
            line: span.as_ref().map_or(1, |s| line_col(text, s.start).0),
            column: span.as_ref().map_or(1, |s| line_col(text, s.start).1),
            message,
        };
        let file: File =
            toml::from_str(text).map_err(|e| err(e.span(), e.message().trim_end().to_string()))?;
        let cfg = file.executor.and_then(|e| e.ray).unwrap_or_default();
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
        for (k, v) in &cfg.resources {
            if !(v.is_finite() && *v > 0.0) {
                return Err(err(
                    None,
                    format!("[executor.ray] resources: {k} = {v} is not a positive amount"),
                )
                .into());
            }
        }
        for name in &cfg.pass_env {
            let ok =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(err(
                    None,
                    format!("[executor.ray] pass_env: {name:?} is not a variable name"),
                )
                .into());
            }
        }
        if let Some(a) = &cfg.address {
            api_base(a).map_err(|m| err(None, format!("[executor.ray] address: {m}")))?;
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

    /// The job API's base URL: `address`, else `RAY_ADDRESS` (`env` reads the environment).
    pub fn base(&self, env: impl Fn(&str) -> Option<String>) -> Result<String> {
        let (given, from) = match (&self.address, env(ADDRESS_VAR)) {
            (Some(a), _) => (a.clone(), "address in [executor.ray] of .dvx/config.toml"),
            (None, Some(a)) if !a.is_empty() => (a, ADDRESS_VAR),
            _ => return Err(EngineError::Executor(
                "ray needs the address of the cluster's dashboard: set `address = \"http://HOST:8265\"` in [executor.ray] of .dvx/config.toml, or RAY_ADDRESS".into(),
            )),
        };
        api_base(&given).map_err(|m| EngineError::Executor(format!("{from}: {m}")))
    }
}

/// `http://HOST:PORT` without a trailing slash, from what a user gave (a bare `HOST:PORT`
/// is taken as http).
pub fn api_base(address: &str) -> std::result::Result<String, String> {
    let a = address.trim().trim_end_matches('/');
    if a.starts_with("http://") || a.starts_with("https://") {
        return Ok(a.to_string());
    }
    if a.contains("://") || a == "auto" || a.is_empty() {
        return Err(format!(
            "{address:?} is not the dashboard's address; dvx submits through the job API: give http://HOST:8265"
        ));
    }
    Ok(format!("http://{a}"))
}

/// The submission id of a job running `tasks`: the same tasks, the same id, so a
/// resubmission finds the job already there instead of starting a second one.
pub fn submission_id(tasks: &[Id]) -> String {
    let id = match tasks {
        [one] => *one,
        many => {
            let joined: Vec<String> = many.iter().map(Id::to_hex).collect();
            Id::of(joined.join(" ").as_bytes())
        }
    };
    format!("dvx-{}", &id.to_hex()[..32])
}

/// Bytes from `resources.memory` (`512m`, `4g`, `1.5GB`); None when absent.
pub fn memory_bytes(r: &Resources) -> std::result::Result<Option<u64>, String> {
    let Some(m) = &r.memory else { return Ok(None) };
    let t = m.trim().to_ascii_lowercase();
    let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("resources.memory {m:?} is not a size"))?;
    let scale = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("resources.memory {m:?}: unknown unit")),
    };
    Ok(Some((n * scale).ceil() as u64))
}

fn number(what: &str, v: &str) -> std::result::Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n),
        _ if v == "all" => Err(format!(
            "resources.{what}: `all` means nothing to a cluster; give a count"
        )),
        _ => Err(format!("resources.{what} {v:?} is not a number")),
    }
}

/// The body of `POST /api/jobs/` for one job running `worker` (words: dvx, `exec-task`, the
/// remote, its options, the task ids).
pub fn job_request(
    submission: &str,
    worker: &[String],
    r: &Resources,
    cfg: &RayConfig,
    env: &BTreeMap<String, String>,
    stage: &str,
) -> std::result::Result<serde_json::Value, String> {
    let words: Vec<String> = worker.iter().map(|w| shell_quote(w)).collect();
    let mut body = serde_json::json!({
        "entrypoint": format!("exec {}", words.join(" ")),
        "submission_id": submission,
        "metadata": {"dvx_stage": stage},
    });
    let o = body
        .as_object_mut()
        .ok_or_else(|| "a job request is an object".to_string())?;
    if let Some(c) = &r.cpus {
        o.insert("entrypoint_num_cpus".into(), number("cpus", c)?.into());
    }
    if let Some(g) = &r.gpus {
        o.insert("entrypoint_num_gpus".into(), number("gpus", g)?.into());
    }
    if let Some(m) = memory_bytes(r)? {
        o.insert("entrypoint_memory".into(), m.into());
    }
    if !cfg.resources.is_empty() {
        o.insert(
            "entrypoint_resources".into(),
            serde_json::to_value(&cfg.resources).map_err(|e| e.to_string())?,
        );
    }
    if !env.is_empty() {
        o.insert("runtime_env".into(), serde_json::json!({ "env_vars": env }));
    }
    Ok(body)
}

/// What `GET /api/jobs/ID` says of a job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobInfo {
    pub status: String,
    /// The node the job's entrypoint runs on, once it started.
    pub node: String,
    /// Ray's message (why it failed, or was stopped).
    pub message: String,
    /// When the entrypoint started (ms since the epoch), 0 before.
    pub start_ms: u64,
}

pub fn parse_info(v: &serde_json::Value) -> JobInfo {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    JobInfo {
        status: s(&v["status"]),
        node: s(&v["driver_info"]["node_ip_address"]),
        message: s(&v["message"]),
        start_ms: v["start_time"].as_u64().unwrap_or(0),
    }
}

/// A state after which the job does nothing more.
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "SUCCEEDED" | "FAILED" | "STOPPED")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> std::result::Result<RayConfig, String> {
        RayConfig::parse(Path::new(".dvx/config.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn settings_are_read_with_their_place() {
        let c = cfg("[core]\nformat = 1\n\n[executor.slurm]\npartition = \"x\"\n\n[executor.ray]\naddress = \"http://head:8265/\"\npoll_secs = 0.5\nresources = {ssd = 1}\npass_env = [\"AWS_ACCESS_KEY_ID\"]\n").unwrap();
        assert_eq!(c.poll(), std::time::Duration::from_millis(500));
        assert_eq!(c.base(|_| None).unwrap(), "http://head:8265");
        assert_eq!(c.resources["ssd"], 1.0);
        assert_eq!(cfg("[core]\nformat = 1\n").unwrap(), RayConfig::default());
        let e = cfg("[executor.ray]\npoll_secs = 0.001\n").unwrap_err();
        assert!(e.contains(":2:13:") && e.contains("out of range"), "{e}");
        let e = cfg("[executor.ray]\nadress = \"x\"\n").unwrap_err();
        assert!(
            e.contains(":2:1:") && e.contains("unknown field `adress`"),
            "{e}"
        );
        let e = cfg("[executor.ray]\naddress = \"ray://head:10001\"\n").unwrap_err();
        assert!(e.contains("http://HOST:8265"), "{e}");
        let e = cfg("[executor.rya]\n").unwrap_err();
        assert!(e.contains("unknown field `rya`"), "{e}");
        let e = cfg("[executor.ray]\npass_env = [\"A B\"]\n").unwrap_err();
        assert!(e.contains("not a variable name"), "{e}");
        let e = cfg("[executor.ray]\nresources = {ssd = -1}\n").unwrap_err();
        assert!(e.contains("not a positive amount"), "{e}");
    }

    #[test]
    fn the_address_comes_from_the_config_then_the_environment() {
        let none = RayConfig::default();
        let env = |k: &str| (k == ADDRESS_VAR).then(|| "127.0.0.1:8265".to_string());
        assert_eq!(none.base(env).unwrap(), "http://127.0.0.1:8265");
        let e = none.base(|_| None).unwrap_err().to_string();
        assert!(e.contains("RAY_ADDRESS"), "{e}");
        let e = none
            .base(|_| Some("ray://x:10001".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("RAY_ADDRESS: ") && e.contains("job API"), "{e}");
        let set = RayConfig {
            address: Some("https://ray.example.com".into()),
            ..Default::default()
        };
        assert_eq!(set.base(env).unwrap(), "https://ray.example.com");
    }

    #[test]
    fn resources_become_entrypoint_options_and_the_id_follows_the_tasks() {
        let r = Resources {
            cpus: Some("0.5".into()),
            memory: Some("1.5g".into()),
            gpus: Some("1".into()),
        };
        let c = RayConfig {
            resources: [("ssd".to_string(), 2.0)].into(),
            ..Default::default()
        };
        let env = [("K".to_string(), "v".to_string())].into();
        let words = ["/usr/bin/dvx", "exec-task", "/r it's"].map(String::from);
        let b = job_request("dvx-1", &words, &r, &c, &env, "s").unwrap();
        assert_eq!(
            b["entrypoint"],
            "exec '/usr/bin/dvx' 'exec-task' '/r it'\\''s'"
        );
        assert_eq!(b["submission_id"], "dvx-1");
        assert_eq!(b["entrypoint_num_cpus"], 0.5);
        assert_eq!(b["entrypoint_num_gpus"], 1.0);
        assert_eq!(b["entrypoint_memory"], 1610612736u64);
        assert_eq!(b["entrypoint_resources"]["ssd"], 2.0);
        assert_eq!(b["runtime_env"]["env_vars"]["K"], "v");
        let plain = job_request(
            "x",
            &words,
            &Resources::default(),
            &RayConfig::default(),
            &BTreeMap::new(),
            "s",
        )
        .unwrap();
        assert!(plain.get("entrypoint_num_cpus").is_none() && plain.get("runtime_env").is_none());
        let all = Resources {
            gpus: Some("all".into()),
            ..Default::default()
        };
        assert!(job_request("x", &words, &all, &c, &env, "s")
            .unwrap_err()
            .contains("give a count"));
        let (a, b) = (Id::of(b"a"), Id::of(b"b"));
        assert_eq!(submission_id(&[a]), format!("dvx-{}", &a.to_hex()[..32]));
        assert_eq!(submission_id(&[a, b]), submission_id(&[a, b]));
        assert_ne!(submission_id(&[a, b]), submission_id(&[b, a]));
        assert_ne!(submission_id(&[a, b]), submission_id(&[a]));
    }

    #[test]
    fn job_info_is_read_from_the_api() {
        let v = serde_json::json!({"status": "RUNNING", "message": "m", "start_time": 17,
            "driver_info": {"id": "01", "node_ip_address": "10.0.0.7", "pid": "3"}});
        let i = parse_info(&v);
        assert_eq!(
            (i.status.as_str(), i.node.as_str(), i.start_ms),
            ("RUNNING", "10.0.0.7", 17)
        );
        assert_eq!(
            parse_info(&serde_json::json!({"status": "PENDING", "driver_info": null})).node,
            ""
        );
        assert!(is_terminal("STOPPED") && is_terminal("FAILED") && !is_terminal("PENDING"));
    }
}
