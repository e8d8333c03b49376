//! Helpers: a scratch project and a way to run dvx in it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn dvx_bin() -> &'static str {
    env!("CARGO_BIN_EXE_dvx")
}

pub struct Project {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub out: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub fn ok(self) -> Run {
        assert!(
            self.out.status.success(),
            "dvx failed ({:?})\nstdout:\n{}\nstderr:\n{}",
            self.out.status,
            self.stdout(),
            self.stderr()
        );
        self
    }
    /// Expect failure; return stderr.
    pub fn fails(self) -> String {
        assert!(
            !self.out.status.success(),
            "dvx unexpectedly succeeded\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self.stderr()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout()))
    }
}

/// Keep the machine's own settings out of every test: an empty HOME (no ~/.aws, ~/.gitconfig
/// or ~/.config of the person running the tests) and none of the credential variables a
/// developer may have exported. Tests that need them set their own after this.
/// papermill (with a `python3` kernel) for notebook stages, from tests/services/notebook.sh,
/// installed on first use; None when it cannot be installed (no PyPI), which notebook tests
/// report as a skip.
pub fn papermill() -> Option<&'static str> {
    static PAPERMILL: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PAPERMILL
        .get_or_init(|| {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/services/notebook.sh");
            let out = Command::new(script).arg("install").output().ok()?;
            if !out.status.success() {
                eprintln!(
                    "tests/services/notebook.sh install failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                return None;
            }
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            Path::new(&path).is_file().then_some(path)
        })
        .as_deref()
}

/// A folder for what lives as long as this test process: the shared HOME, the S3 servers'
/// data, the Python venv. Statics are never dropped, so a `TempDir` held in one outlives the
/// run (hundreds of MB each time); these sit under the target's tmp folder, one per process,
/// and the first call removes those whose process is gone.
pub fn process_dir(name: &str) -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let root = ROOT.get_or_init(|| {
        let runs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("runs");
        for e in fs::read_dir(&runs).into_iter().flatten().flatten() {
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok();
            if pid.is_some_and(|p| !Path::new("/proc").join(p.to_string()).exists()) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        let me = runs.join(std::process::id().to_string());
        // Left by an earlier process that had this pid: nothing alive owns it.
        let _ = fs::remove_dir_all(&me);
        me
    });
    let d = root.join(name);
    fs::create_dir_all(&d).expect("process dir");
    d
}

pub fn isolate(c: &mut Command) {
    static HOME: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let home = HOME.get_or_init(|| process_dir("home"));
    c.env("HOME", home);
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "GIT_CONFIG_GLOBAL",
        "DVX_DEBUG",
        "DVX_FAULT",
    ] {
        c.env_remove(var);
    }
    // Notebook stages (such as the wine-quality example's) find papermill here.
    match papermill() {
        Some(p) => c.env("DVX_PAPERMILL", p),
        None => c.env_remove("DVX_PAPERMILL"),
    };
}

pub fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        st.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&st.stderr)
    );
}

impl Project {
    /// An empty folder (no dvx yet).
    pub fn empty() -> Project {
        Project {
            dir: tempfile::Builder::new()
                .prefix("dvx-it-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    /// A git repo with `dvx init` done.
    pub fn new() -> Project {
        let p = Project::empty();
        git(p.path(), &["init", "-q", "-b", "main"]);
        p.dvx(&["init"]).ok();
        p
    }

    /// `dvx init` outside git.
    pub fn without_git() -> Project {
        let p = Project::empty();
        p.dvx(&["init"]).ok();
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    pub fn cmd_in(&self, sub: &str, args: &[&str]) -> Command {
        let mut c = Command::new(dvx_bin());
        c.args(args)
            .current_dir(self.p(sub))
            .env("DVX_AUTHOR_NAME", "Tester")
            .env("DVX_AUTHOR_EMAIL", "tester@example.com")
            .env("DVX_LOCK_WAIT", "1");
        isolate(&mut c);
        c
    }

    pub fn dvx(&self, args: &[&str]) -> Run {
        self.dvx_in("", args)
    }

    pub fn dvx_in(&self, sub: &str, args: &[&str]) -> Run {
        Run {
            out: self.cmd_in(sub, args).output().expect("dvx runs"),
        }
    }

    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) {
        let p = self.p(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(p, data).unwrap();
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.p(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.p(rel).symlink_metadata().is_ok()
    }

    pub fn status(&self) -> serde_json::Value {
        self.dvx(&["status", "--json"]).ok().json()
    }

    pub fn head(&self) -> String {
        let log = self.dvx(&["log", "--json", "-n", "1"]).ok().json();
        log[0]["id"].as_str().expect("a commit").to_string()
    }

    /// `dvx fsck` must report a consistent store.
    pub fn assert_fsck_clean(&self) {
        let r = self.dvx(&["fsck", "--json"]);
        let j = r.json();
        assert!(
            r.out.status.success(),
            "fsck found problems: {}",
            r.stdout()
        );
        assert_eq!(j["problems"].as_array().map(Vec::len), Some(0));
    }

    /// Total bytes of pack files (the stored data).
    pub fn pack_bytes(&self) -> u64 {
        fs::read_dir(self.p(".dvx/packs"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// Deterministic pseudo-random bytes.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

pub fn strs(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
