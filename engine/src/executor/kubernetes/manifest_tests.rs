use std::path::Path;

use super::*;

fn digest(c: &str) -> String {
    c.repeat(64)
}

fn cfg() -> KubernetesConfig {
    KubernetesConfig {
        namespace: Some("ml".into()),
        image: Some(format!("registry.example/dvx@sha256:{}", digest("d"))),
        dvx: Some("/usr/local/bin/dvx".into()),
        service_account: Some("dvx-runner".into()),
        credentials_secret: Some("dvx-s3".into()),
        ..Default::default()
    }
}

fn plan<'a>(
    cfg: &'a KubernetesConfig,
    resources: &'a Resources,
    remote_args: &'a [String],
    tasks: &'a [String],
    stage_image: Option<&'a str>,
) -> JobPlan<'a> {
    JobPlan {
        name: "dvx-0123456789ab-1",
        run: "dvx-0123456789ab",
        stage: "summarize",
        cfg,
        stage_image,
        resources,
        timeout_secs: Some(3600),
        remote_args,
        tasks,
    }
}

/// The manifest as JSON, compared with (or, with DVX_BLESS=1, written to) a golden file in
/// schemas/kubernetes/.
fn golden(name: &str, job: &Job) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas/kubernetes")
        .join(name);
    let mut text = serde_json::to_string_pretty(job).unwrap();
    text.push('\n');
    if std::env::var_os("DVX_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (DVX_BLESS=1 writes it)", path.display()));
    assert_eq!(
        text, want,
        "{name} changed; DVX_BLESS=1 rewrites it after review"
    );
}

#[test]
fn one_task_is_one_job_with_one_try_its_resources_and_a_deadline() {
    let cfg = cfg();
    let r = Resources {
        cpus: Some("1.5".into()),
        memory: Some("2g".into()),
        gpus: Some("1".into()),
    };
    let remote = vec![
        "s3://team/cats".to_string(),
        "--endpoint=http://minio:9000".into(),
    ];
    let tasks = vec![digest("a")];
    let job = plan(&cfg, &r, &remote, &tasks, None).job().unwrap();
    golden("job.json", &job);
    let v = serde_json::to_value(&job).unwrap();
    let spec = &v["spec"];
    assert_eq!(spec["backoffLimit"], 0);
    assert_eq!(spec["activeDeadlineSeconds"], 3900);
    assert!(spec.get("completionMode").is_none());
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let c = &pod["containers"][0];
    assert_eq!(
        c["image"],
        format!("registry.example/dvx@sha256:{}", digest("d"))
    );
    assert_eq!(
        c["command"],
        serde_json::json!([
            "/usr/local/bin/dvx",
            "exec-task",
            "s3://team/cats",
            "--endpoint=http://minio:9000",
            digest("a")
        ])
    );
    assert_eq!(c["resources"]["requests"]["cpu"], "1500m");
    assert_eq!(c["resources"]["limits"]["memory"], "2048Mi");
    assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], "1");
    assert!(c["resources"]["requests"].get("nvidia.com/gpu").is_none());
    // Credentials by reference only.
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "dvx-s3");
    let text = v.to_string();
    assert!(!text.contains("AWS_SECRET"), "{text}");
    assert_eq!(v["metadata"]["labels"][RUN_LABEL], "dvx-0123456789ab");
    assert_eq!(
        spec["template"]["metadata"]["labels"][RUN_LABEL],
        "dvx-0123456789ab"
    );
}

#[test]
fn a_batch_is_an_indexed_job_and_a_container_stage_runs_in_its_own_image() {
    let cfg = cfg();
    let remote = vec!["s3://team/cats".to_string()];
    let tasks = vec![digest("a"), digest("b"), digest("c")];
    let image = format!("registry.example/tools@sha256:{}", digest("e"));
    let r = Resources::default();
    let job = plan(&cfg, &r, &remote, &tasks, Some(&image)).job().unwrap();
    golden("indexed-job.json", &job);
    let v = serde_json::to_value(&job).unwrap();
    let spec = &v["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(
        (spec["completions"].as_u64(), spec["parallelism"].as_u64()),
        (Some(3), Some(3))
    );
    // Each index tried once, and one failing leaves the others running.
    assert_eq!(spec["backoffLimitPerIndex"], 0);
    assert!(spec.get("backoffLimit").is_none());
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["containers"][0]["image"], image);
    let cmd = &pod["containers"][0]["command"];
    assert_eq!(cmd[0], "/dvx-bin/dvx");
    assert_eq!(cmd[2], "--indexed");
    assert_eq!(cmd[3], "--in-image");
    assert_eq!(
        pod["initContainers"][0]["image"],
        cfg.image.clone().unwrap()
    );
    assert!(pod["containers"][0].get("resources").is_none());
}

#[test]
fn an_image_not_pinned_by_digest_is_refused_with_a_hint() {
    let cfg = cfg();
    let r = Resources::default();
    let (remote, tasks) = (vec!["/r".to_string()], vec![digest("a")]);
    let e = plan(&cfg, &r, &remote, &tasks, Some("busybox:1.36"))
        .job()
        .unwrap_err();
    assert!(e.message.contains("not pinned by digest"), "{e:?}");
    assert!(e.hint.contains("NAME@sha256:DIGEST"), "{e:?}");
    // Without a dvx image, a stage without `image:` has nothing to run in.
    let bare = KubernetesConfig::default();
    let e = plan(&bare, &r, &remote, &tasks, None).job().unwrap_err();
    assert!(e.hint.contains("[executor.kubernetes]"), "{e:?}");
    let gpus = Resources {
        gpus: Some("all".into()),
        ..Default::default()
    };
    assert!(plan(&cfg, &gpus, &remote, &tasks, None).job().is_err());
}

#[test]
fn a_status_says_which_indexes_ended_and_how_the_job_did() {
    use k8s_openapi::api::batch::v1::JobCondition;
    assert_eq!(parse_indexes("0-2,5, 7"), [0, 1, 2, 5, 7]);
    assert_eq!(parse_indexes(""), Vec::<usize>::new());
    assert_eq!(parse_indexes("x,3"), [3]);
    assert!(job_state(None).waiting);
    let cond = |t: &str, reason: &str| JobCondition {
        type_: t.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        ..Default::default()
    };
    let s = JobStatus {
        conditions: Some(vec![cond("Failed", "DeadlineExceeded")]),
        completed_indexes: Some("1".into()),
        failed_indexes: Some("0".into()),
        failed: Some(1),
        ..Default::default()
    };
    let st = job_state(Some(&s));
    assert_eq!(st.ended.as_deref(), Some("Failed: DeadlineExceeded"));
    assert_eq!(st.done, [0, 1]);
    assert!(!st.waiting);
    let s = JobStatus {
        conditions: Some(vec![cond("Complete", "CompletionsReached")]),
        ..Default::default()
    };
    assert_eq!(job_state(Some(&s)).ended.as_deref(), Some("Complete"));
    let s = JobStatus {
        active: Some(1),
        ..Default::default()
    };
    assert!(job_state(Some(&s)).waiting);
    let s = JobStatus {
        active: Some(1),
        ready: Some(1),
        ..Default::default()
    };
    assert!(!job_state(Some(&s)).waiting);
}
