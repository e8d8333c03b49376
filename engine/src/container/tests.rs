//! Unit tests of container runtimes, images and run arguments; the parent declares this module `#[cfg(test)]`.

use super::*;

fn spec(name: &'static str) -> Spec {
    Spec {
        runtime: Runtime {
            name,
            program: PathBuf::from(name),
        },
        image: Image {
            reference: "localhost/tool:1@sha256:abc".into(),
            id: "sha256:0123".into(),
        },
        stage: "s".into(),
        mounts: vec![
            Mount::ro("/p".into(), WORK),
            Mount::rw("/p/model".into(), "/dvx/work/model"),
        ],
        workdir: "/dvx/work/sub".into(),
        network: false,
        resources: Resources {
            cpus: Some("2".into()),
            memory: Some("1g".into()),
            gpus: Some("2".into()),
        },
        batch: vec![],
        log_dir: None,
    }
}

#[test]
fn run_arguments() {
    let mut env = BTreeMap::new();
    env.insert("SEED".to_string(), "1".to_string());
    let a = run_args(&spec("podman"), "n", &env, true).join(" ");
    assert!(a.starts_with("run --rm --name n --pull never"), "{a}");
    for part in [
        "--network none",
        "-v /p:/dvx/work:ro -v /p/model:/dvx/work/model -w /dvx/work/sub",
        "-e SEED=1",
        "--cpus 2 --memory 1g --memory-swap 1g",
        "--device nvidia.com/gpu=0 --device nvidia.com/gpu=1",
    ] {
        assert!(a.contains(part), "{part} in {a}");
    }
    assert!(a.ends_with("--entrypoint sh sha256:0123"), "{a}");
    let mut s = spec("docker");
    s.network = true;
    let a = run_args(&s, "n", &BTreeMap::new(), false).join(" ");
    assert!(!a.contains("--network") && !a.contains("--rm"), "{a}");
    assert!(a.contains("--gpus 2"), "{a}");
    assert_eq!(s.image.pinned(), "localhost/tool:1@sha256:0123");
}

#[test]
fn scripts() {
    assert_eq!(script(&["python x.py".into()]), "exec python x.py");
    assert_eq!(
        script(&["a 'b'".into(), "c".into()]),
        "sh -c 'a '\\''b'\\''' || exit $?\nsh -c 'c' || exit $?\n"
    );
    let b = batch_script(&[BatchDatum {
        id: "x.csv".into(),
        cmds: vec!["wc -l $DVX_INPUT".into()],
        input: "/dvx/in/0/x.csv".into(),
        input_dir: "/dvx/in/0".into(),
        vars: Vec::new(),
    }]);
    assert_eq!(b, "(export DVX_INPUT='/dvx/in/0/x.csv' DVX_INPUT_DIR='/dvx/in/0' DVX_OUTPUT=/dvx/out/0 DVX_DATUM_ID='x.csv'\nexec wc -l $DVX_INPUT\n) >/dvx/log/0.out 2>/dvx/log/0.err </dev/null\necho $? >/dvx/log/0.exit\n");
}

#[test]
fn exits_in_words() {
    let s = spec("podman");
    assert_eq!(
        interpret(&s, 137, b"", true, "`x`").1.unwrap(),
        "killed: out of memory (limit 1g)"
    );
    assert!(interpret(
        &s,
        1,
        b"sh: can't create /dvx/in/x: Read-only file system\n",
        false,
        "`x`"
    )
    .1
    .unwrap()
    .contains("mounted read-only"));
    assert_eq!(
        interpret(&s, 3, b"", false, "`x`"),
        (Some(3), Some("`x` exited with status 3".into()))
    );
    assert_eq!(interpret(&s, 0, b"", false, "`x`"), (Some(0), None));
}

#[test]
fn placeholders() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("model.pkl");
    let dir = d.path().join("models");
    prepare_output(&f).unwrap();
    prepare_output(&dir).unwrap();
    assert!(f.is_file() && dir.is_dir());
    clear_placeholder(&f);
    assert!(!f.exists());
    prepare_output(&f).unwrap();
    std::fs::write(&f, b"").unwrap(); // written, though empty: kept
    clear_placeholder(&f);
    assert!(f.exists());
}
