//! The Python package for real: the wheel built around the binary under test
//! (`python/build_wheel.py`), installed into a fresh venv that also sees pandas, pyarrow and
//! fsspec (`tests/services/python.sh`), reading projects through `dvx.open` and `dvx://`.
//! Skipped, with the reason printed, only when PyPI cannot be reached to install those.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::common::{dvx_bin, git, Project};

struct Venv {
    python: PathBuf,
}

/// The venv with the wheel, made once per test run; None (with a printed reason) without PyPI.
fn venv() -> Option<&'static Venv> {
    static V: OnceLock<Option<Venv>> = OnceLock::new();
    V.get_or_init(make_venv).as_ref()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn make_venv() -> Option<Venv> {
    let deps = Command::new(root().join("tests/services/python.sh"))
        .arg("install")
        .output()
        .expect("python.sh runs");
    if !deps.status.success() {
        let reach = Command::new("python3")
            .args(["-c", "import urllib.request as u; u.urlopen('https://pypi.org/simple/fsspec/', timeout=15)"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            !reach,
            "PyPI is reachable but the test venv could not be made:\n{}",
            String::from_utf8_lossy(&deps.stderr)
        );
        eprintln!(
            "skipped: PyPI is unreachable, so pandas, pyarrow and fsspec cannot be installed"
        );
        return None;
    }
    let deps_python = String::from_utf8_lossy(&deps.stdout).trim().to_string();
    let dir = crate::common::process_dir("python");
    // The wheel around the very binary these tests run (no second cargo build).
    let wheel = Command::new("python3")
        .arg(root().join("python/build_wheel.py"))
        .arg(dvx_bin())
        .arg(dir.join("wheels"))
        .output()
        .expect("build_wheel.py runs");
    assert!(
        wheel.status.success(),
        "{}",
        String::from_utf8_lossy(&wheel.stderr)
    );
    let wheel = String::from_utf8_lossy(&wheel.stdout).trim().to_string();
    let venv = dir.join("venv");
    sh(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    sh(Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
        ])
        .arg(&wheel));
    // The packages of the shared venv, seen from this one without installing them again.
    let purelib = |py: &Path| {
        let out = Command::new(py)
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_path('purelib'))",
            ])
            .output()
            .expect("python runs");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    };
    let python = venv.join("bin/python");
    std::fs::write(
        purelib(&python).join("dvx_test_deps.pth"),
        purelib(Path::new(&deps_python)).display().to_string(),
    )
    .expect("write .pth");
    Some(Venv { python })
}

fn sh(c: &mut Command) {
    let out = c.output().expect("runs");
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run `code` with the venv's Python in `dir` (stdout returned; a failure fails the test).
/// `DVX_BIN` is unset: the module must find the binary the wheel installed.
fn py(v: &Venv, dir: &Path, code: &str) -> String {
    let out = Command::new(&v.python)
        .arg("-c")
        .arg(code)
        .current_dir(dir)
        .env_remove("DVX_BIN")
        .env("DVX_AUTHOR_NAME", "Tester")
        .env("DVX_AUTHOR_EMAIL", "tester@example.com")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python failed:\n{code}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A project with data/raw.csv and data/table.parquet at two revisions (v1 tagged, then HEAD).
fn two_revisions(v: &Venv) -> Project {
    let p = Project::new();
    let write_parquet = |n: u32| {
        py(
            v,
            p.path(),
            &format!(
                "import pyarrow as pa, pyarrow.parquet as pq\n\
                 t = pa.table({{'x': list(range({n})), 'name': ['r%d' % i for i in range({n})]}})\n\
                 pq.write_table(t, 'data/table.parquet')\n"
            ),
        );
    };
    p.write("data/raw.csv", "city,temp\nOslo,3.5\nLima,19.0\n");
    write_parquet(10);
    p.dvx(&["add", "data"]).ok();
    p.dvx(&["tag", "v1"]).ok();
    p.write(
        "data/raw.csv",
        "city,temp\nOslo,4.0\nLima,19.5\nPune,31.0\n",
    );
    write_parquet(25);
    p.dvx(&["add", "data"]).ok();
    p
}

#[test]
fn pandas_and_pyarrow_read_two_revisions_as_dvx_cat_does() {
    let Some(v) = venv() else { return };
    let p = two_revisions(v);
    // What `dvx cat` gives, written where Python can read it plainly.
    for rev in ["v1", "HEAD"] {
        for f in ["raw.csv", "table.parquet"] {
            let out = p.dvx(&["cat", &format!("{rev}:data/{f}")]).ok().out.stdout;
            p.write(&format!("cat-{rev}-{f}"), out);
        }
    }
    let repo = p.path().display().to_string();
    let out = py(
        v,
        // Somewhere else: `repo` says where the project is.
        std::env::temp_dir().as_path(),
        &format!(
            r#"
import io, os, dvx, fsspec, pandas as pd, pyarrow.dataset as ds, pyarrow.parquet as pq
repo = {repo:?}
for rev in ["v1", "HEAD"]:
    so = {{"rev": rev, "repo": repo}}
    want_csv = pd.read_csv(os.path.join(repo, f"cat-{{rev}}-raw.csv"))
    want_pq = pd.read_parquet(os.path.join(repo, f"cat-{{rev}}-table.parquet"))
    assert pd.read_csv("dvx://data/raw.csv", storage_options=so).equals(want_csv), rev
    assert pd.read_parquet("dvx://data/table.parquet", storage_options=so).equals(want_pq), rev
    fs = fsspec.filesystem("dvx", **so)
    t = ds.dataset("data/table.parquet", filesystem=fs, format="parquet").to_table()
    assert t.to_pandas().equals(want_pq), rev
    with dvx.open("data/table.parquet", rev=rev, repo=repo) as f:
        assert pq.read_table(f).to_pandas().equals(want_pq), rev
    with dvx.open("data/raw.csv", rev=rev, repo=repo, mode="r") as f:
        assert f.readline() == "city,temp\n"
        f.seek(0)
        assert pd.read_csv(f).equals(want_csv)
    raw = open(os.path.join(repo, f"cat-{{rev}}-raw.csv"), "rb").read()
    assert dvx.read("data/raw.csv", rev=rev, repo=repo) == raw
    assert dvx.read("data/raw.csv", rev=rev, repo=repo, mode="r") == raw.decode()
print(len(pd.read_csv("dvx://data/raw.csv", storage_options={{"rev": "v1", "repo": repo}})))
"#
        ),
    );
    assert_eq!(out.trim(), "2");
}

#[test]
fn one_column_of_a_large_parquet_file_reads_a_fraction_of_it() {
    let Some(v) = venv() else { return };
    let p = Project::new();
    // About 200 MB: four columns of random doubles (incompressible), four row groups.
    py(
        v,
        p.path(),
        "import numpy as np, pyarrow as pa, pyarrow.parquet as pq, os\n\
         os.makedirs('data')\n\
         rng = np.random.default_rng(1)\n\
         n = 6_250_000\n\
         t = pa.table({c: rng.random(n) for c in 'abcd'})\n\
         pq.write_table(t, 'data/big.parquet', row_group_size=n // 4, compression='none')\n",
    );
    let size = std::fs::metadata(p.p("data/big.parquet")).unwrap().len();
    assert!(size > 190 << 20, "{size}");
    p.dvx(&["add", "data/big.parquet"]).ok();
    let out = py(
        v,
        p.path(),
        r#"
import dvx, pandas as pd, pyarrow.parquet as pq
want = pq.read_table("data/big.parquet", columns=["b"]).to_pandas()
dvx.reset_stats()
got = pd.read_parquet("dvx://data/big.parquet", columns=["b"], storage_options={"repo": "."})
assert got.equals(want)
s = dvx.stats()
print(s["bytes_requested"], s["bytes_read"], s["cat_calls"])
dvx.reset_stats()
with dvx.open("data/big.parquet") as f:
    assert pq.ParquetFile(f).read(columns=["b"]).to_pandas().equals(want)
print(dvx.stats()["bytes_requested"])
"#,
    );
    let n: Vec<u64> = out
        .split_whitespace()
        .map(|x| x.parse().expect("a number"))
        .collect();
    eprintln!(
        "one column of {size} bytes: asked {} (pandas, {} calls), {} (dvx.open)",
        n[0], n[2], n[3]
    );
    // One column of four: about a quarter, plus the footer and some read-ahead.
    for asked in [n[0], n[3]] {
        assert!(asked < size / 2, "asked for {asked} of {size} bytes");
        assert!(
            asked > size / 8,
            "asked for {asked}: less than the column itself?"
        );
    }
    assert!(n[1] <= n[0], "{out}");
}

#[test]
fn errors_are_python_exceptions_with_the_hint() {
    let Some(v) = venv() else { return };
    let p = two_revisions(v);
    let out = py(
        v,
        p.path(),
        r#"
import dvx, pandas as pd
def raises(exc, f):
    try:
        f()
    except exc as e:
        return e
    raise AssertionError(f"no {exc.__name__}")
e = raises(FileNotFoundError, lambda: dvx.open("data/nope.csv", rev="v1"))
assert isinstance(e, dvx.DvxError) and e.exit_code == 2 and "not found in commit" in e.message, e
raises(FileNotFoundError, lambda: dvx.read("data/nope.csv"))
raises(FileNotFoundError, lambda: pd.read_csv("dvx://data/nope.csv", storage_options={"repo": "."}))
e = raises(dvx.RevisionError, lambda: dvx.open("data/raw.csv", rev="no-such-rev"))
assert e.exit_code == 2 and "unknown revision" in e.message and "dvx log" in e.hint, e
raises(dvx.RevisionError, lambda: dvx.read("data/raw.csv", rev="no-such-rev"))
raises(dvx.RevisionError, lambda: pd.read_csv("dvx://data/raw.csv", storage_options={"rev": "no-such-rev"}))
raises(IsADirectoryError, lambda: dvx.open("data"))
print(str(e))
"#,
    );
    assert!(
        out.starts_with("unknown revision \"no-such-rev\"\nhint: "),
        "{out}"
    );
}

#[test]
fn the_cli_s_json_from_python_and_a_clone_reading_from_the_remote() {
    let Some(v) = venv() else { return };
    let p = Project::new();
    p.write(
        "dvx.yaml",
        "stages:\n  count:\n    cmd: sh count.sh\n    deps: [count.sh, data/raw.csv]\n    params: [scale]\n    outs: [count.txt]\n    metrics:\n      - metrics.json: {cache: false}\n",
    );
    p.write("params.yaml", "scale: 2\n");
    p.write(
        "count.sh",
        "wc -l < data/raw.csv > count.txt\nprintf '{\"rows\": %s}' $(cat count.txt) > metrics.json\n",
    );
    p.write("data/raw.csv", "a\nb\n");
    p.dvx(&["add", "data/raw.csv"]).ok();
    p.dvx(&["run"]).ok();
    let remote = tempfile::tempdir().unwrap();
    p.dvx(&[
        "remote",
        "add",
        "origin",
        &remote.path().display().to_string(),
    ])
    .ok();
    p.dvx(&["push"]).ok();
    git(p.path(), &["add", "-A"]);
    git(p.path(), &["commit", "-qm", "v1"]);

    let json = |args: &[&str]| {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        p.dvx(&a).ok().json()
    };
    let got: serde_json::Value = serde_json::from_str(&py(
        v,
        p.path(),
        "import dvx, json\nprint(json.dumps({'status': dvx.status(), 'params': dvx.params(rev='HEAD'), \
         'metrics': dvx.metrics(rev='HEAD'), 'ls': dvx.ls('data', rev='HEAD'), \
         'lineage': dvx.lineage('count.txt', rev='HEAD')}))",
    ))
    .expect("JSON");
    assert_eq!(got["status"], json(&["status"]));
    assert_eq!(got["params"], json(&["params", "show", "HEAD"]));
    assert_eq!(got["params"]["count"]["params.yaml:scale"], 2);
    assert_eq!(got["metrics"], json(&["metrics", "show", "HEAD"]));
    assert_eq!(got["ls"], json(&["ls", "HEAD", "data"]));
    assert_eq!(got["lineage"], json(&["lineage", "count.txt@HEAD"]));

    // A git clone: no store, the data on the remote only. Reading fetches what it needs.
    let c = Project::empty();
    git(
        c.path(),
        &["clone", "-q", &p.path().display().to_string(), "."],
    );
    let out = py(
        v,
        c.path(),
        "import dvx, pandas as pd\n\
         print(dvx.read('data/raw.csv', mode='r'), end='')\n\
         print(len(pd.read_csv('dvx://count.txt', header=None, storage_options={'repo': '.'})))\n\
         try:\n    dvx.read('data/raw.csv', fetch=False, rev='HEAD', repo='.', mode='rb') and print('ok')\n\
         except dvx.DvxError as e:\n    print('error', e)\n",
    );
    assert_eq!(out, "a\nb\n1\nok\n");
}
