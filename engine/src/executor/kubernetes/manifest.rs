//! The pure part of the Kubernetes executor: the `batch/v1` Job of a submission, and what
//! a Job's status says. No request is made here. The manifest's format is documented in
//! `schemas/kubernetes-job.md` and pinned by a golden test.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector,
    PodSpec, PodTemplateSpec, ResourceRequirements, SecretEnvSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::config::{pinned, KubernetesConfig};
use crate::spec::Resources;

/// The label every Job (and pod) of one run carries, with the run's name: one list call
/// with this selector sees them all.
pub const RUN_LABEL: &str = "dvx/run";
/// The annotation naming the stage (stage names need not be valid label values).
pub const STAGE_ANNOTATION: &str = "dvx/stage";
/// The Job's limit is the task's timeout plus this: the worker enforces the timeout itself
/// (and reports it); the cluster's deadline is a backstop for pulling, fetching, uploading.
pub const DEADLINE_MARGIN_SECS: u64 = 300;
/// How long a finished Job (and its pods' logs) stays for a look before the cluster
/// removes it.
pub const TTL_AFTER_FINISHED_SECS: i32 = 3600;
/// Where a container stage's pod finds dvx, copied there from the dvx image.
pub const DVX_BIN_DIR: &str = "/dvx-bin";
/// The variable that tells the worker the node it runs on (the pod's host name is the pod's).
pub const NODE_VAR: &str = "DVX_NODE";

/// Why a submission cannot become a Job, and what to do about it.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub message: String,
    pub hint: String,
}

/// Everything a submission's Job is made of.
pub struct JobPlan<'a> {
    /// The Job's name (a DNS label).
    pub name: &'a str,
    /// The run's name: the value of [`RUN_LABEL`].
    pub run: &'a str,
    pub stage: &'a str,
    pub cfg: &'a KubernetesConfig,
    /// A container stage's image as written in dvx.yaml (it must be pinned by digest).
    pub stage_image: Option<&'a str>,
    pub resources: &'a Resources,
    pub timeout_secs: Option<u64>,
    /// `exec-task`'s arguments before the task ids: the remote's URL and connection options.
    pub remote_args: &'a [String],
    /// The tasks, in index order: more than one makes an Indexed Job, one pod per task.
    pub tasks: &'a [String],
}

fn quantity(s: impl Into<String>) -> Quantity {
    Quantity(s.into())
}

/// Requests and limits (equal: the pod gets what it asked for, and no more).
fn resources(r: &Resources) -> Result<Option<ResourceRequirements>, String> {
    let mut q = BTreeMap::new();
    if let Some(c) = &r.cpus {
        let v: f64 = c
            .parse()
            .map_err(|_| format!("resources.cpus {c:?} is not a number"))?;
        // Millicores: a quantity Kubernetes reads the same everywhere.
        q.insert(
            "cpu".to_string(),
            quantity(format!("{}m", (v * 1000.0).ceil().max(1.0) as u64)),
        );
    }
    if let Some(m) = &r.memory {
        let mib = crate::executor::slurm::cmd::memory_mib(m)?;
        q.insert("memory".to_string(), quantity(format!("{mib}Mi")));
    }
    let mut limits = q.clone();
    if let Some(g) = &r.gpus {
        let n: u32 = g.parse().map_err(|_| {
            format!("resources.gpus {g:?}: a cluster needs a count of GPUs, not `all`")
        })?;
        // An extended resource: its request is its limit.
        limits.insert("nvidia.com/gpu".to_string(), quantity(n.to_string()));
    }
    if limits.is_empty() {
        return Ok(None);
    }
    Ok(Some(ResourceRequirements {
        requests: (!q.is_empty()).then_some(q),
        limits: Some(limits),
        ..Default::default()
    }))
}

impl JobPlan<'_> {
    fn refused(&self, message: String, hint: &str) -> Refused {
        Refused {
            message: format!("stage {}: {message}", self.stage),
            hint: hint.to_string(),
        }
    }

    /// The image that holds dvx, required and pinned (checked when the settings are read).
    fn dvx_image(&self, why: &str) -> Result<String, Refused> {
        self.cfg.image.clone().ok_or_else(|| {
            self.refused(
                format!("kubernetes needs an image holding dvx {why}"),
                "set `image = \"NAME@sha256:DIGEST\"` in [executor.kubernetes] of .dvx/config.toml (an image with dvx on its PATH, or at `dvx = \"/path\"`)",
            )
        })
    }

    /// The Job.
    pub fn job(&self) -> Result<Job, Refused> {
        let indexed = self.tasks.len() > 1;
        let env = vec![EnvVar {
            name: NODE_VAR.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "spec.nodeName".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }];
        let mut args = vec!["exec-task".to_string()];
        if indexed {
            args.push("--indexed".into());
        }
        let (image, dvx, init, volumes, mounts) = match self.stage_image {
            None => (
                self.dvx_image("to run a stage without `image:`")?,
                self.cfg.dvx().to_string(),
                None,
                None,
                None,
            ),
            Some(img) => {
                if !pinned(img) {
                    return Err(self.refused(
                        format!("image {img:?} is not pinned by digest, and a tag can name another image by the time a node pulls it"),
                        "write the stage's image as NAME@sha256:DIGEST in dvx.yaml (`skopeo inspect docker://NAME:TAG` or `podman inspect --format '{{.Digest}}'` prints the digest)",
                    ));
                }
                args.push("--in-image".into());
                let mount = VolumeMount {
                    name: "dvx-bin".into(),
                    mount_path: DVX_BIN_DIR.into(),
                    ..Default::default()
                };
                let copy = Container {
                    name: "dvx".into(),
                    image: Some(self.dvx_image("to copy into the stage's image")?),
                    command: Some(vec![
                        "sh".into(),
                        "-c".into(),
                        format!(
                            "cp \"$(command -v {})\" {DVX_BIN_DIR}/dvx",
                            crate::job::shell_quote(self.cfg.dvx())
                        ),
                    ]),
                    volume_mounts: Some(vec![mount.clone()]),
                    ..Default::default()
                };
                let volume = Volume {
                    name: "dvx-bin".into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Default::default()
                };
                (
                    img.to_string(),
                    format!("{DVX_BIN_DIR}/dvx"),
                    Some(vec![copy]),
                    Some(vec![volume]),
                    Some(vec![mount]),
                )
            }
        };
        args.extend(self.remote_args.iter().cloned());
        args.extend(self.tasks.iter().cloned());
        let mut command = vec![dvx];
        command.extend(args);
        let labels = BTreeMap::from([(RUN_LABEL.to_string(), self.run.to_string())]);
        let container = Container {
            name: "task".into(),
            image: Some(image),
            command: Some(command),
            env: Some(env),
            env_from: self.cfg.credentials_secret.as_ref().map(|s| {
                vec![EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: s.clone(),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }]
            }),
            resources: resources(self.resources)
                .map_err(|m| self.refused(m, "fix `resources` in dvx.yaml"))?,
            volume_mounts: mounts,
            ..Default::default()
        };
        let n = i32::try_from(self.tasks.len()).unwrap_or(i32::MAX);
        Ok(Job {
            metadata: ObjectMeta {
                name: Some(self.name.to_string()),
                namespace: self.cfg.namespace.clone(),
                labels: Some(labels.clone()),
                annotations: Some(BTreeMap::from([(
                    STAGE_ANNOTATION.to_string(),
                    self.stage.to_string(),
                )])),
                ..Default::default()
            },
            spec: Some(JobSpec {
                // One try: retries are dvx's (`retries:`), each a new task.
                backoff_limit: (!indexed).then_some(0),
                // An Indexed Job: each datum its own pod, and one failing leaves the others.
                backoff_limit_per_index: indexed.then_some(0),
                completion_mode: indexed.then(|| "Indexed".to_string()),
                completions: indexed.then_some(n),
                parallelism: indexed.then_some(n),
                active_deadline_seconds: self.timeout_secs.map(|t| {
                    i64::try_from(t.saturating_add(DEADLINE_MARGIN_SECS)).unwrap_or(i64::MAX)
                }),
                ttl_seconds_after_finished: Some(TTL_AFTER_FINISHED_SECS),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        restart_policy: Some("Never".into()),
                        service_account_name: self.cfg.service_account.clone(),
                        // The worker talks to the object store, never to the cluster's API.
                        automount_service_account_token: Some(false),
                        init_containers: init,
                        containers: vec![container],
                        volumes,
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        })
    }
}

/// Where a Job stands, from its status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobState {
    /// `Complete` or `Failed` (with the reason: `DeadlineExceeded`, ...) once it ended.
    pub ended: Option<String>,
    /// Indexes whose pod ended (succeeded or failed): their results can be read now.
    pub done: Vec<usize>,
    /// No pod of it has started yet (so cancelling what waits may delete it).
    pub waiting: bool,
}

/// Indexes as `completedIndexes` writes them: `0-2,5`.
pub fn parse_indexes(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            // A hostile or broken answer cannot make this loop long.
            out.extend((a..=b).take(100_000));
        }
    }
    out
}

/// Read a Job's status.
pub fn job_state(status: Option<&JobStatus>) -> JobState {
    let Some(s) = status else {
        return JobState {
            waiting: true,
            ..Default::default()
        };
    };
    let ended = s.conditions.iter().flatten().find_map(|c| {
        (c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed")).then(|| {
            match c.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) if c.type_ == "Failed" => format!("Failed: {r}"),
                _ => c.type_.clone(),
            }
        })
    });
    let mut done = parse_indexes(s.completed_indexes.as_deref().unwrap_or(""));
    done.extend(parse_indexes(s.failed_indexes.as_deref().unwrap_or("")));
    done.sort_unstable();
    done.dedup();
    let started = s.ready.unwrap_or(0) > 0
        || s.succeeded.unwrap_or(0) > 0
        || s.failed.unwrap_or(0) > 0
        || s.terminating.unwrap_or(0) > 0;
    JobState {
        waiting: ended.is_none() && !started,
        ended,
        done,
    }
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
