//! Remotes end to end: the same cases against a folder, two S3 servers (moto, SeaweedFS) and
//! Azure's emulator (Azurite), all real and on this machine. The servers are installed by
//! tests/services/storage.sh and started once per test run; they die with the test process.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{noise, Project, Run};

pub(crate) const KEY: &str = "dvxaccess";
pub(crate) const SECRET: &str = "dvxsecret123";
pub(crate) const BUCKET: &str = "dvx-tests";
/// Azurite's well-known development account.
const AZ_ACCOUNT: &str = "devstoreaccount1";
const AZ_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/services/storage.sh")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Start a server that is killed when the thread that started it ends.
fn spawn_server(args: &[&str], log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    let mut c = Command::new("bash");
    c.arg(script())
        .args(args)
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log));
    // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
    unsafe {
        c.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    c.spawn().expect("server starts")
}

fn wait_ready(endpoint: &str, child: &mut Child, log: &Path) {
    let addr = endpoint.trim_start_matches("http://");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "server at {endpoint} exited ({st}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("server at {endpoint} did not start");
}

fn make_bucket(endpoint: &str, name: &str) {
    make("bucket", endpoint, name)
}

fn make(what: &str, endpoint: &str, name: &str) {
    // SeaweedFS needs a moment after its port opens before it accepts bucket creation.
    for _ in 0..50 {
        let st = Command::new("bash")
            .arg(script())
            .args([what, endpoint, name])
            .output()
            .expect("bucket script runs");
        if st.status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("cannot create bucket {name} at {endpoint}");
}

pub(crate) struct Servers {
    pub(crate) moto: String,
    weed: String,
    /// Ends with the account: http://127.0.0.1:PORT/devstoreaccount1
    azure: String,
}

/// Both servers, started once, in a thread that lives as long as the tests.
pub(crate) fn servers() -> &'static Servers {
    static S: OnceLock<Servers> = OnceLock::new();
    S.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let st = Command::new("bash")
                .arg(script())
                .arg("install")
                .status()
                .expect("install script runs");
            assert!(st.success(), "installing the S3 servers failed");
            let dir = crate::common::process_dir("s3");
            let mp = free_port();
            let wp = free_port();
            let mlog = dir.join("moto.log");
            let wlog = dir.join("weed.log");
            let mut moto = spawn_server(&["moto", &mp.to_string()], &mlog);
            let wdata = dir.join("weed");
            let mut weed = spawn_server(
                &["weed", &wp.to_string(), &wdata.display().to_string()],
                &wlog,
            );
            let ap = free_port();
            let alog = dir.join("azurite.log");
            let adata = dir.join("azurite");
            let mut azurite = spawn_server(
                &["azurite", &ap.to_string(), &adata.display().to_string()],
                &alog,
            );
            let s = Servers {
                moto: format!("http://127.0.0.1:{mp}"),
                weed: format!("http://127.0.0.1:{wp}"),
                azure: format!("http://127.0.0.1:{ap}/{AZ_ACCOUNT}"),
            };
            wait_ready(&s.moto, &mut moto, &mlog);
            wait_ready(&s.weed, &mut weed, &wlog);
            wait_ready(&format!("http://127.0.0.1:{ap}"), &mut azurite, &alog);
            make_bucket(&s.moto, BUCKET);
            make_bucket(&s.weed, BUCKET);
            make("container", &s.azure, BUCKET);
            tx.send(s).expect("send");
            // Keep the servers (and their folder) until the test process ends.
            let _keep = (moto, weed, azurite);
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("servers started")
    })
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Folder,
    Moto,
    Weed,
    Azure,
}

/// One remote location for one test.
pub(crate) struct Remote {
    kind: Kind,
    pub(crate) url: String,
    pub(crate) endpoint: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn unique(tag: &str) -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{tag}-{n}")
}

impl Remote {
    pub(crate) fn new(kind: Kind, tag: &str) -> Remote {
        match kind {
            Kind::Folder => {
                let d = tempfile::Builder::new()
                    .prefix("dvx-remote-")
                    .tempdir()
                    .expect("tempdir");
                Remote {
                    kind,
                    url: d.path().join("r").display().to_string(),
                    endpoint: None,
                    _dir: Some(d),
                }
            }
            Kind::Moto | Kind::Weed | Kind::Azure => {
                let s = servers();
                let (scheme, ep) = match kind {
                    Kind::Moto => ("s3", &s.moto),
                    Kind::Weed => ("s3", &s.weed),
                    _ => ("az", &s.azure),
                };
                Remote {
                    kind,
                    url: format!("{scheme}://{BUCKET}/{}", unique(tag)),
                    endpoint: Some(ep.clone()),
                    _dir: None,
                }
            }
        }
    }

    /// `--endpoint X` for commands that take one.
    pub(crate) fn conn(&self) -> Vec<String> {
        match &self.endpoint {
            Some(e) => vec!["--endpoint".into(), e.clone()],
            None => Vec::new(),
        }
    }

    pub(crate) fn add_to(&self, p: &Project) {
        let mut args = vec![
            "remote".to_string(),
            "add".into(),
            "origin".into(),
            self.url.clone(),
        ];
        args.extend(self.conn());
        run(p, "", &args).ok();
    }

    /// Keys (or files) of the remote, relative to its root.
    fn keys(&self) -> Vec<String> {
        match self.kind {
            Kind::Folder => walkdir(Path::new(&self.url)),
            Kind::Azure => {
                let (container, prefix) = self.bucket_prefix();
                let code = format!(
                    "from azure.storage.blob import BlobServiceClient\nc = BlobServiceClient.from_connection_string('DefaultEndpointsProtocol=http;AccountName={AZ_ACCOUNT};AccountKey={AZ_KEY};BlobEndpoint={};')\nfor b in c.get_container_client({container:?}).list_blobs(name_starts_with={:?}): print(b.name[{}:])",
                    self.endpoint.as_deref().unwrap_or_default(),
                    format!("{prefix}/"),
                    prefix.len() + 1
                );
                python(&code).lines().map(str::to_string).collect()
            }
            _ => {
                let (bucket, prefix) = self.bucket_prefix();
                let out = py(
                    self.endpoint.as_deref().unwrap_or_default(),
                    &format!(
                        "p = s3.get_paginator('list_objects_v2')\nfor page in p.paginate(Bucket={bucket:?}, Prefix={:?}):\n    for o in page.get('Contents', []): print(o['Key'][{}:])",
                        format!("{prefix}/"),
                        prefix.len() + 1
                    ),
                );
                out.lines().map(str::to_string).collect()
            }
        }
    }

    pub(crate) fn bucket_prefix(&self) -> (String, String) {
        let rest = self.url.split_once("://").map(|x| x.1).unwrap_or(&self.url);
        let (b, p) = rest.split_once('/').unwrap_or((rest, ""));
        (b.to_string(), p.to_string())
    }

    /// Flip one byte in the middle of the biggest pack.
    fn corrupt_biggest_pack(&self) {
        match self.kind {
            Kind::Folder => {
                let biggest = biggest_pack(Path::new(&self.url));
                let mut b = std::fs::read(&biggest).unwrap();
                let mid = b.len() / 2;
                b[mid] ^= 0x55;
                std::fs::write(&biggest, b).unwrap();
            }
            _ => {
                let (bucket, prefix) = self.bucket_prefix();
                py(
                    self.endpoint.as_deref().unwrap_or_default(),
                    &format!(
                        "objs = s3.list_objects_v2(Bucket={bucket:?}, Prefix={:?})['Contents']\nk = max((o for o in objs if o['Key'].endswith('.pack')), key=lambda o: o['Size'])['Key']\nb = bytearray(s3.get_object(Bucket={bucket:?}, Key=k)['Body'].read())\nb[len(b)//2] ^= 0x55\ns3.put_object(Bucket={bucket:?}, Key=k, Body=bytes(b))",
                        format!("{prefix}/packs/")
                    ),
                );
            }
        }
    }
}

/// One test per backend for a scenario `fn(Kind)`.
macro_rules! per_backend {
    ($scenario:ident: $($test:ident => $kind:ident),+) => {
        $(
            #[test]
            fn $test() {
                $scenario(Kind::$kind);
            }
        )+
    };
}

/// The biggest pack file of a folder remote.
fn biggest_pack(remote_dir: &Path) -> PathBuf {
    std::fs::read_dir(remote_dir.join("packs"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
        .max_by_key(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .unwrap()
        .path()
}

fn walkdir(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(r) = p.strip_prefix(root) {
                out.push(r.display().to_string());
            }
        }
    }
    out
}

/// Run a boto3 snippet against an endpoint (`s3` is the client); returns stdout.
pub(crate) fn py(endpoint: &str, body: &str) -> String {
    python(&format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url={endpoint:?}, region_name='us-east-1', aws_access_key_id={KEY:?}, aws_secret_access_key={SECRET:?})\n{body}\n"
    ))
}

/// Run Python (the test venv's, which has boto3 and the Azure SDK); returns stdout.
fn python(code: &str) -> String {
    let base = std::env::var("DVX_SERVICES").unwrap_or_else(|_| {
        format!(
            "{}/dvx-services",
            std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into())
        )
    });
    let out = Command::new(format!("{base}/moto/venv/bin/python"))
        .arg("-c")
        .arg(code)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A dvx command with the S3 test credentials in its environment.
fn cmd(p: &Project, sub: &str, args: &[String]) -> Command {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut c = p.cmd_in(sub, &a);
    c.env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AZURE_STORAGE_ACCOUNT_NAME", AZ_ACCOUNT)
        .env("AZURE_STORAGE_ACCOUNT_KEY", AZ_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("DVX_REMOTE_RETRIES", "2")
        .env("DVX_REMOTE_TIMEOUT", "10");
    c
}

pub(crate) fn run(p: &Project, sub: &str, args: &[String]) -> Run {
    Run {
        out: cmd(p, sub, args).output().expect("dvx runs"),
    }
}

pub(crate) fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Clone `r` into a new folder; returns the project.
pub(crate) fn clone(r: &Remote, extra: &[&str]) -> Project {
    let p = Project::empty();
    let mut args = s(&["clone", &r.url, "c"]);
    args.extend(r.conn());
    args.extend(s(extra));
    run(&p, "", &args).ok();
    Project { dir: p.dir }
}

/// Every file under `rel` with its bytes.
fn files(p: &Project, rel: &str) -> BTreeMap<String, Vec<u8>> {
    let root = p.p(rel);
    walkdir(&root)
        .into_iter()
        .map(|k| {
            let b = std::fs::read(root.join(&k)).unwrap_or_default();
            (k, b)
        })
        .collect()
}

/// A project with mixed data: small files, a multi-chunk file, odd names, an executable.
fn project_with_data() -> Project {
    let p = Project::new();
    for i in 0..40 {
        p.write(
            &format!("data/small/f{i:03}.txt"),
            format!("row {i}\n").repeat(i + 1),
        );
    }
    p.write("data/big.bin", noise(3 << 20, 7));
    p.write("data/naïve name ü.csv", "a,b\n1,2\n");
    p.write("data/run.sh", "#!/bin/sh\necho hi\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p.p("data/run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    p.dvx(&["add", "data", "-m", "first"]).ok();
    p
}

fn round_trip(kind: Kind) {
    let r = Remote::new(kind, "roundtrip");
    let a = project_with_data();
    r.add_to(&a);
    // A dry run against the new remote uploads nothing and says what would go up.
    let dry = run(&a, "", &s(&["push", "--dry-run", "--json"]))
        .ok()
        .json();
    assert!(dry["objects"].as_u64().unwrap() > 40, "{dry}");
    assert!(r.keys().iter().all(|k| !k.starts_with("packs/")));
    let push = run(&a, "", &s(&["push", "--json"])).ok().json();
    assert_eq!(push["refs"][0]["status"], "new");
    assert!(push["packs"].as_u64().unwrap() >= 2, "{push}");
    // Few requests: everything went up in a handful of packs, not one object per file.
    let keys = r.keys();
    assert!(keys.len() < 12, "{keys:?}");
    assert!(keys.iter().any(|k| k == "refs/heads/main"));

    let b = clone(&r, &[]);
    let c = Project { dir: b.dir };
    assert_eq!(files(&a, "data"), files(&c, "c/data"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(c.p("c/data/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let st = run(&c, "c", &s(&["status", "--json"])).ok().json();
    assert_eq!(st["modified"].as_array().map(Vec::len), Some(0), "{st}");
    assert_eq!(st["deleted"].as_array().map(Vec::len), Some(0), "{st}");
    let fsck = run(&c, "c", &s(&["fsck", "--json"])).ok().json();
    assert_eq!(fsck["problems"].as_array().map(Vec::len), Some(0));

    // Nothing new: nothing uploaded.
    let again = run(&a, "", &s(&["push", "--json"])).ok().json();
    assert_eq!(again["refs"][0]["status"], "up to date");
    assert_eq!(again["objects"], 0);

    // A change travels as a fast-forward, and only what changed goes up.
    a.write("data/small/f001.txt", "changed\n");
    a.write("data/new.txt", "new file\n");
    a.dvx(&["commit", "-m", "second"]).ok();
    let second = run(&a, "", &s(&["push", "--json"])).ok().json();
    assert_eq!(second["refs"][0]["status"], "fast-forward");
    assert!(second["bytes"].as_u64().unwrap() < 10_000, "{second}");
    let pull = run(&c, "c", &s(&["pull", "--json"])).ok().json();
    assert_eq!(pull["status"], "fast-forward");
    assert_eq!(files(&a, "data"), files(&c, "c/data"));
    assert_eq!(
        run(&c, "c", &s(&["log", "--json"])).ok().json()[0]["message"],
        "second"
    );
    let st = run(&a, "", &s(&["status", "--remote", "--json"]))
        .ok()
        .json();
    assert_eq!(st["branches"][0]["state"], "up to date");
    assert_eq!(st["objects_to_push"], 0);
}

per_backend!(round_trip:
    round_trip_folder => Folder,
    round_trip_moto => Moto,
    round_trip_seaweedfs => Weed,
    round_trip_azurite => Azure
);

fn partial_pull(kind: Kind) {
    let r = Remote::new(kind, "partial");
    let a = Project::new();
    a.write("data/a/one.bin", noise(300_000, 1));
    a.write("data/b/two.bin", noise(2_000_000, 2));
    a.dvx(&["add", "data"]).ok();
    r.add_to(&a);
    run(&a, "", &s(&["push"])).ok();

    let c = clone(&r, &["--no-checkout"]);
    assert!(!c.exists("c/data"));
    let pull = run(&c, "c", &s(&["pull", "data/a", "--json"])).ok().json();
    // Only the bytes of data/a came down.
    assert!(
        pull["fetch"]["bytes"].as_u64().unwrap() < 1_000_000,
        "{pull}"
    );
    assert_eq!(c.read("c/data/a/one.bin"), noise(300_000, 1));
    assert!(!c.exists("c/data/b/two.bin"));
    // The rest is known to be on the remote: not damage.
    let fsck = run(&c, "c", &s(&["fsck", "--json"])).ok().json();
    assert_eq!(fsck["problems"].as_array().map(Vec::len), Some(0), "{fsck}");
    run(&c, "c", &s(&["pull"])).ok();
    assert_eq!(c.read("c/data/b/two.bin"), noise(2_000_000, 2));
}

per_backend!(partial_pull:
    partial_pull_folder => Folder,
    partial_pull_moto => Moto,
    partial_pull_seaweedfs => Weed,
    partial_pull_azurite => Azure
);

fn concurrent_pushes(kind: Kind) {
    let r = Remote::new(kind, "race");
    let base = Project::new();
    base.write("data/x.txt", "base\n");
    base.dvx(&["add", "data"]).ok();
    r.add_to(&base);
    run(&base, "", &s(&["push"])).ok();
    let a = clone(&r, &[]);
    let b = clone(&r, &[]);
    a.write("c/data/x.txt", "from a\n");
    a.write("c/data/a.bin", noise(500_000, 11));
    run(&a, "c", &s(&["commit", "-m", "a"])).ok();
    b.write("c/data/x.txt", "from b\n");
    b.write("c/data/b.bin", noise(500_000, 12));
    run(&b, "c", &s(&["commit", "-m", "b"])).ok();
    let pa = cmd(&a, "c", &s(&["push"]))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pb = cmd(&b, "c", &s(&["push"]))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let oa = pa.wait_with_output().unwrap();
    let ob = pb.wait_with_output().unwrap();
    assert!(
        oa.status.success() != ob.status.success(),
        "exactly one push wins: a {:?} {}, b {:?} {}",
        oa.status,
        String::from_utf8_lossy(&oa.stderr),
        ob.status,
        String::from_utf8_lossy(&ob.stderr)
    );
    let (winner, loser_err) = if oa.status.success() {
        ("from a\n", ob.stderr)
    } else {
        ("from b\n", oa.stderr)
    };
    let err = String::from_utf8_lossy(&loser_err);
    assert!(err.contains("fetch"), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1);
    // The winner's commit is complete on the remote.
    let d = clone(&r, &[]);
    assert_eq!(d.read("c/data/x.txt"), winner.as_bytes());
}

per_backend!(concurrent_pushes:
    concurrent_pushes_folder => Folder,
    concurrent_pushes_moto => Moto,
    concurrent_pushes_seaweedfs => Weed,
    concurrent_pushes_azurite => Azure
);

/// Objects a push would still upload, as `status --remote` sees them.
fn to_push(p: &Project) -> Option<u64> {
    let r = run(p, "", &s(&["status", "--remote", "--json"]));
    if !r.out.status.success() {
        return None;
    }
    r.json()["objects_to_push"].as_u64()
}

/// A push killed after its first pack (at a fault point, so no race with a fast server):
/// the remote's branch did not move, and the next push uploads only what is missing.
fn killed_push_resumes(kind: Kind) {
    let r = Remote::new(kind, "killed");
    let a = Project::new();
    for i in 0..24 {
        a.write(&format!("data/f{i}.bin"), noise(200_000, 100 + i as u64));
    }
    a.dvx(&["add", "data"]).ok();
    let mut args = s(&["remote", "add", "origin", &r.url, "--jobs", "1"]);
    args.extend(r.conn());
    run(&a, "", &args).ok();
    let total = to_push(&a).unwrap();
    // Small packs, one at a time, and the process dies once the first is uploaded.
    let killed = cmd(&a, "", &s(&["push"]))
        .env("DVX_PACK_SIZE", "32768")
        .env("DVX_FAULT", "after-pack")
        .output()
        .unwrap();
    assert!(!killed.status.success());
    assert!(
        !r.keys().iter().any(|k| k == "refs/heads/main"),
        "the branch moved though the push was killed"
    );
    // Nothing names the partial upload, yet part of it is there.
    let left = to_push(&a).unwrap();
    assert!(left < total, "{left} of {total}");
    let rep = cmd(&a, "", &s(&["push", "--json"]))
        .env("DVX_PACK_SIZE", "32768")
        .output()
        .unwrap();
    let rep = Run { out: rep }.ok().json();
    assert!(
        rep["objects"].as_u64().unwrap() < total,
        "{rep} total {total}"
    );
    let c = clone(&r, &[]);
    assert_eq!(files(&a, "data"), files(&c, "c/data"));
}

per_backend!(killed_push_resumes:
    killed_push_resumes_folder => Folder,
    killed_push_resumes_moto => Moto,
    killed_push_resumes_seaweedfs => Weed,
    killed_push_resumes_azurite => Azure
);

fn corrupt_remote(kind: Kind) {
    let r = Remote::new(kind, "corrupt");
    let a = Project::new();
    a.write("data/big.bin", noise(1_500_000, 5));
    a.dvx(&["add", "data"]).ok();
    r.add_to(&a);
    run(&a, "", &s(&["push"])).ok();
    r.corrupt_biggest_pack();
    // A clone fails plainly and leaves no folder behind.
    let p = Project::empty();
    let mut args = s(&["clone", &r.url, "c"]);
    args.extend(r.conn());
    let err = run(&p, "", &args).fails();
    assert!(err.contains("does not match its id"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert!(!p.exists("c"));
    // A pull into an existing project writes nothing it cannot verify.
    let b = Project::new();
    r.add_to(&b);
    let err = run(&b, "", &s(&["pull"])).fails();
    assert!(err.contains("does not match its id"), "{err}");
    assert!(!b.exists("data/big.bin"));
    assert_eq!(
        b.dvx(&["log", "--json"])
            .ok()
            .json()
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    b.assert_fsck_clean();
}

per_backend!(corrupt_remote:
    corrupt_remote_folder => Folder,
    corrupt_remote_moto => Moto,
    corrupt_remote_seaweedfs => Weed
);

/// A server that stops mid-push: a clear error, and the push works once it is back.
#[test]
fn server_stopped_during_push() {
    servers(); // the install
    let port = free_port();
    let ep = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("moto.log");
    let mut moto = spawn_server(&["moto", &port.to_string()], &log);
    wait_ready(&ep, &mut moto, &log);
    make_bucket(&ep, BUCKET);
    let a = Project::new();
    for i in 0..24 {
        a.write(&format!("data/f{i}.bin"), noise(200_000, 300 + i as u64));
    }
    a.dvx(&["add", "data"]).ok();
    // The push holds after its first pack (a fault point), so the server stops mid-push
    // whatever the machine's speed.
    let url = format!("s3://{BUCKET}/stopped");
    run(
        &a,
        "",
        &s(&[
            "remote",
            "add",
            "origin",
            &url,
            "--endpoint",
            &ep,
            "--jobs",
            "1",
            "--retries",
            "1",
            "--timeout",
            "3",
        ]),
    )
    .ok();
    let total = to_push(&a).unwrap();
    let child = cmd(&a, "", &s(&["push"]))
        .env("DVX_PACK_SIZE", "65536")
        .env("DVX_FAULT", "pause-after-pack")
        .env("DVX_FAULT_PAUSE_MS", "4000")
        .env_remove("DVX_REMOTE_RETRIES")
        .env_remove("DVX_REMOTE_TIMEOUT")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while to_push(&a).is_none_or(|n| n == total) {
        assert!(start.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    }
    moto.kill().unwrap();
    moto.wait().unwrap();
    let out = child.wait_with_output().unwrap();
    moto = spawn_server(&["moto", &port.to_string()], &log);
    wait_ready(&ep, &mut moto, &log);
    make_bucket(&ep, BUCKET);
    assert!(!out.status.success(), "the push outlived its server");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error: remote origin:"), "{err}");
    assert!(
        err.contains("cannot connect") || err.contains("dropped") || err.contains("in time"),
        "{err}"
    );
    assert!(err.lines().count() <= 3, "{err}");
    assert!(err.contains("hint:"), "{err}");
    // Back up (moto keeps nothing: an empty bucket again), and the same command works.
    run(&a, "", &s(&["push"])).ok();
    let p = Project::empty();
    run(&p, "", &s(&["clone", &url, "c", "--endpoint", &ep])).ok();
    assert_eq!(files(&a, "data"), files(&p, "c/data"));
    let _ = moto.kill();
}

#[test]
fn wrong_credentials_are_refused_and_never_printed() {
    let r = Remote::new(Kind::Weed, "creds");
    let a = Project::new();
    a.write("data/x.txt", "x\n");
    a.dvx(&["add", "data"]).ok();
    r.add_to(&a);
    let out = cmd(&a, "", &s(&["push"]))
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret-42")
        .output()
        .unwrap();
    let run_ = Run { out };
    let err = run_.fails();
    assert!(err.contains("access denied"), "{err}");
    assert!(err.contains("credentials"), "{err}");
    assert!(!err.contains("not-the-secret-42"));
    // Secrets never go into config.toml (git tracks it) ...
    let cfg = std::fs::read_to_string(a.p(".dvx/config.toml")).unwrap();
    assert!(!cfg.contains(SECRET));
    std::fs::write(
        a.p(".dvx/config.toml"),
        format!("{cfg}secret_access_key = \"{SECRET}\"\n"),
    )
    .unwrap();
    let err = run(&a, "", &s(&["push"])).fails();
    assert!(
        err.contains("credentials do not belong in config.toml"),
        "{err}"
    );
    std::fs::write(a.p(".dvx/config.toml"), cfg).unwrap();
    // ... but a user may keep them in config.local.toml, which git ignores.
    std::fs::write(
        a.p(".dvx/config.local.toml"),
        format!("[remote.origin]\naccess_key_id = \"{KEY}\"\nsecret_access_key = \"{SECRET}\"\n"),
    )
    .unwrap();
    let out = a
        .cmd_in("", &["push"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    Run { out }.ok();
    let ignored = Command::new("git")
        .args(["check-ignore", "-q", ".dvx/config.local.toml"])
        .current_dir(a.path())
        .status()
        .unwrap();
    assert!(ignored.success());
}

#[test]
fn remote_config_commands_and_errors() {
    let a = Project::new();
    let err = a.dvx(&["push"]).fails();
    assert!(err.contains("no remote named"), "{err}");
    assert!(err.contains("dvx remote add"), "{err}");
    a.dvx(&["remote", "add", "one", "/tmp/dvx-nowhere-one"])
        .ok();
    a.dvx(&[
        "remote",
        "add",
        "two",
        "s3://bucket/p",
        "--endpoint",
        "http://127.0.0.1:1",
    ])
    .ok();
    let err = a.dvx(&["remote", "add", "two", "/x"]).fails();
    assert!(err.contains("already exists"), "{err}");
    let err = a.dvx(&["remote", "add", "bad", "ftp://x/y"]).fails();
    assert!(err.contains("unknown scheme"), "{err}");
    let err = a
        .dvx(&[
            "remote",
            "add",
            "gcs",
            "gs://b/p",
            "--endpoint",
            "http://127.0.0.1:1",
        ])
        .fails();
    assert!(
        err.contains("--endpoint applies to s3:// and az://"),
        "{err}"
    );
    let err = a
        .dvx(&[
            "remote",
            "add",
            "pub",
            "s3://b/p",
            "--endpoint",
            "http://s3.example.com",
        ])
        .ok();
    drop(err);
    let list = a.dvx(&["remote", "list", "--json"]).ok().json();
    assert_eq!(list.as_array().map(Vec::len), Some(3));
    assert_eq!(list[0]["name"], "one");
    assert_eq!(list[0]["default"], true);
    a.dvx(&["remote", "default", "two"]).ok();
    let list = a.dvx(&["remote", "list", "--json"]).ok().json();
    assert_eq!(list[2]["default"], true);
    a.write("data/x", "x");
    a.dvx(&["add", "data"]).ok();
    // Plain http to a host that is not this machine needs --allow-http.
    let err = a.dvx(&["push", "pub"]).fails();
    assert!(err.contains("plain http"), "{err}");
    // Nothing listens on port 1: a network error in one line with a hint, quickly.
    let out = a
        .cmd_in("", &["push", "two"])
        .env("DVX_REMOTE_RETRIES", "0")
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .output()
        .unwrap();
    let err = Run { out }.fails();
    assert!(err.contains("cannot connect"), "{err}");
    a.dvx(&["remote", "remove", "two"]).ok();
    let err = a.dvx(&["push", "two"]).fails();
    assert!(err.contains("no remote named \"two\""), "{err}");
    // A folder that holds no dvx data is not a remote to pull from.
    let empty = tempfile::tempdir().unwrap();
    a.dvx(&[
        "remote",
        "add",
        "empty",
        &empty.path().display().to_string(),
    ])
    .ok();
    let err = a.dvx(&["fetch", "empty"]).fails();
    assert!(err.contains("holds no dvx data"), "{err}");
    a.assert_fsck_clean();
}

#[test]
fn tags_and_branches_travel_and_diverged_pull_is_refused() {
    let r = Remote::new(Kind::Folder, "tags");
    let a = Project::new();
    a.write("data/x.txt", "1\n");
    a.dvx(&["add", "data"]).ok();
    a.dvx(&["tag", "v1"]).ok();
    a.dvx(&["branch", "dev"]).ok();
    r.add_to(&a);
    run(&a, "", &s(&["push", "--all"])).ok();
    let c = clone(&r, &[]);
    let tags = run(&c, "c", &s(&["tag", "--json"])).ok().json();
    assert_eq!(tags[0]["name"], "v1");
    let log = run(&c, "c", &s(&["log", "origin/dev", "--json"]))
        .ok()
        .json();
    assert_eq!(log.as_array().map(Vec::len), Some(1));
    // Both sides commit: push from one, then the other's pull refuses to guess.
    a.write("data/x.txt", "2a\n");
    a.dvx(&["commit", "-m", "a"]).ok();
    run(&a, "", &s(&["push"])).ok();
    c.write("c/data/x.txt", "2c\n");
    run(&c, "c", &s(&["commit", "-m", "c"])).ok();
    let st = run(&c, "c", &s(&["status", "--remote", "--json"]))
        .ok()
        .json();
    assert_eq!(st["branches"][0]["state"], "unknown", "{st}");
    let err = run(&c, "c", &s(&["push"])).fails();
    assert!(err.contains("rejected"), "{err}");
    assert!(err.contains("fetch"), "{err}");
    let err = run(&c, "c", &s(&["pull"])).fails();
    assert!(err.contains("diverged"), "{err}");
    assert_eq!(c.read("c/data/x.txt"), b"2c\n");
    // --force replaces the remote's branch on purpose.
    run(&c, "c", &s(&["push", "--force"])).ok();
    let d = clone(&r, &[]);
    assert_eq!(d.read("c/data/x.txt"), b"2c\n");
}

fn import_and_update(kind: Kind) {
    let r = Remote::new(kind, "import");
    let src = Project::new();
    src.write("data/labels/a.csv", "id,label\n1,cat\n");
    src.write("data/labels/b.csv", "id,label\n2,dog\n");
    src.write("data/other.bin", noise(100_000, 9));
    src.dvx(&["add", "data"]).ok();
    src.dvx(&["tag", "v1"]).ok();
    r.add_to(&src);
    run(&src, "", &s(&["push", "--all"])).ok();
    let v1 = src.head();

    let dst = Project::new();
    let mut args = s(&[
        "import",
        &r.url,
        "data/labels",
        "-o",
        "ext/labels",
        "--json",
    ]);
    args.extend(r.conn());
    let rep = run(&dst, "", &args).ok().json();
    assert_eq!(rep["source"]["commit"], v1.as_str());
    assert_eq!(dst.read("ext/labels/a.csv"), b"id,label\n1,cat\n");
    assert!(!dst.exists("ext/other.bin"));
    // Tracked like added data; the import is a run record naming its source.
    let lock: serde_json::Value = serde_json::from_slice(&dst.read("dvx.lock")).unwrap();
    assert_eq!(lock["imports"]["ext/labels"]["path"], "data/labels");
    assert_eq!(lock["imports"]["ext/labels"]["url"], r.url.as_str());
    // What dvx.lock holds for an import is what its schema declares.
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/dvx.lock.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let declared = &schema["patternProperties"]["^imports$"]["additionalProperties"]["properties"];
    for k in lock["imports"]["ext/labels"].as_object().unwrap().keys() {
        assert!(declared.get(k).is_some(), "{k} is not in the schema");
    }
    let run_id = rep["run"].as_str().unwrap().to_string();
    let rec = dst.dvx(&["show", &run_id, "--json"]).ok().json();
    assert_eq!(rec["executor"], "import");
    assert!(rec["inputs"][0]["path"]
        .as_str()
        .unwrap()
        .contains(&format!("#data/labels@{v1}")));
    assert_eq!(rec["outputs"][0]["path"], "ext/labels");
    assert!(dst.status()["clean"].as_bool().unwrap());
    // Nothing new at the source: update changes nothing.
    let up = run(&dst, "", &s(&["update", "ext/labels", "--json"]))
        .ok()
        .json();
    assert_eq!(up["changed"], false);
    // The source moves on; update follows its default branch.
    src.write("data/labels/a.csv", "id,label\n1,lion\n");
    src.dvx(&["commit", "-m", "relabel"]).ok();
    run(&src, "", &s(&["push"])).ok();
    let up = run(&dst, "", &s(&["update", "ext/labels", "--json"]))
        .ok()
        .json();
    assert_eq!(up["changed"], true);
    assert_eq!(dst.read("ext/labels/a.csv"), b"id,label\n1,lion\n");
    // Back to the tag, pinned.
    run(&dst, "", &s(&["update", "ext/labels", "--rev", "v1"])).ok();
    assert_eq!(dst.read("ext/labels/a.csv"), b"id,label\n1,cat\n");
    // Local edits are not thrown away silently.
    dst.write("ext/labels/a.csv", "mine\n");
    let err = run(&dst, "", &s(&["update", "ext/labels"])).fails();
    assert!(err.contains("uncommitted"), "{err}");
    assert_eq!(dst.read("ext/labels/a.csv"), b"mine\n");
    // A destination in the way is refused; a path the source lacks is named.
    let err = run(&dst, "", &{
        let mut a = s(&["import", &r.url, "data/labels", "-o", "ext/labels"]);
        a.extend(r.conn());
        a
    })
    .fails();
    assert!(err.contains("already exists"), "{err}");
    let err = run(&dst, "", &{
        let mut a = s(&["import", &r.url, "data/nope"]);
        a.extend(r.conn());
        a
    })
    .fails();
    assert!(err.contains("not found"), "{err}");
    dst.assert_fsck_clean();
}

per_backend!(import_and_update:
    import_and_update_folder => Folder,
    import_and_update_moto => Moto
);

#[test]
fn a_missing_bucket_is_named() {
    let s = servers();
    let a = Project::new();
    a.write("data/x.txt", "x\n");
    a.dvx(&["add", "data"]).ok();
    run(
        &a,
        "",
        &self::s(&[
            "remote",
            "add",
            "origin",
            "s3://no-such-bucket-here/p",
            "--endpoint",
            &s.moto,
        ]),
    )
    .ok();
    let err = run(&a, "", &self::s(&["push"])).fails();
    assert!(err.contains("no such bucket"), "{err}");
    a.assert_fsck_clean();
}

#[test]
fn credentials_from_an_aws_profile() {
    let r = Remote::new(Kind::Weed, "profile");
    let a = Project::new();
    a.write("data/x.txt", "x\n");
    a.dvx(&["add", "data"]).ok();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/credentials"),
        format!("[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[team]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[profile team]\nregion = us-east-1\n",
    )
    .unwrap();
    let mut args = s(&["remote", "add", "origin", &r.url, "--profile", "team"]);
    args.extend(r.conn());
    run(&a, "", &args).ok();
    let push = |extra: &[(&str, &str)]| {
        let mut c = a.cmd_in("", &["push"]);
        c.env("HOME", home.path())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("DVX_REMOTE_RETRIES", "0");
        for (k, v) in extra {
            c.env(k, v);
        }
        Run {
            out: c.output().unwrap(),
        }
    };
    // The named profile wins over the environment's keys.
    push(&[
        ("AWS_ACCESS_KEY_ID", "wrong"),
        ("AWS_SECRET_ACCESS_KEY", "wrong"),
    ])
    .ok();
    let cfg = std::fs::read_to_string(a.p(".dvx/config.toml")).unwrap();
    assert!(cfg.contains("profile = \"team\""), "{cfg}");
    assert!(!cfg.contains(SECRET));
    // Without --profile: AWS_PROFILE, else the default profile (whose keys are wrong here).
    let mut args = s(&["remote", "add", "--force", "origin", &r.url]);
    args.extend(r.conn());
    run(&a, "", &args).ok();
    a.write("data/y.txt", "y\n");
    a.dvx(&["commit"]).ok();
    let err = push(&[]).fails();
    assert!(err.contains("access denied"), "{err}");
    push(&[("AWS_PROFILE", "team")]).ok();
}

#[test]
fn a_pack_missing_from_the_remote_is_named() {
    let r = Remote::new(Kind::Folder, "missing");
    let a = Project::new();
    a.write("data/big.bin", noise(800_000, 21));
    a.dvx(&["add", "data"]).ok();
    r.add_to(&a);
    run(&a, "", &s(&["push"])).ok();
    let biggest = biggest_pack(Path::new(&r.url));
    std::fs::remove_file(&biggest).unwrap();
    let b = Project::new();
    r.add_to(&b);
    let err = run(&b, "", &s(&["pull"])).fails();
    let name = biggest.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&name) && err.contains("missing"), "{err}");
    assert!(!b.exists("data/big.bin"));
    b.assert_fsck_clean();
}
