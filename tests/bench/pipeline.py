#!/usr/bin/env python3
"""Pipeline benchmark: dvx datums vs the same work written the DVC way, side by side.

Scenarios (one run, same generated data for both tools):
  rerun-one-of-N   N input files; a per-file stage (dvx: an input glob, one datum per file;
                   DVC: one stage over the folder, looping over every file, the way a DVC
                   user writes it). Change one input and re-run. Target: exactly one command
                   executes in dvx, and dvx's re-run is >= 20x faster than DVC's.
  noop-run         `dvx run` with nothing to do. Target: < 0.3 s.
  full-run-j2      first full run of N trivial datums with -j 2, against the same N commands
                   run by `xargs -P 2`. Target: within 1.5x of xargs.

usage: tests/bench/pipeline.py [--dvx PATH] [--dvc PATH] [--n 1000] [--json OUT]
Standard library only; prints ratios and exits 0 even when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def sh(cmd, cwd, env=None, check=True):
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, shell=isinstance(cmd, str), capture_output=True, text=True)
    dt = time.perf_counter() - t
    if check and p.returncode != 0:
        raise SystemExit(f"command failed ({p.returncode}): {cmd}\n{p.stdout}\n{p.stderr}")
    return dt, p


def make_inputs(dest: Path, n: int):
    (dest / "in").mkdir(parents=True)
    for i in range(n):
        (dest / "in" / f"f{i:05d}.txt").write_text(f"record {i}\n" * (1 + i % 7))


# One execution per file: count lines. Each execution also appends to a log outside the
# project's outputs so we can count executions for both tools.
PER_FILE = 'wc -l < "$1" > "$2"; echo x >> "$3"'


def setup_dvx(dvx: str, work: Path, n: int, env: dict) -> Path:
    p = work / "dvx"
    make_inputs(p, n)
    (p / "step.sh").write_text(PER_FILE + "\n")
    (p / "dvx.yaml").write_text(
        "stages:\n"
        "  count:\n"
        '    input: {path: in, glob: "/*"}\n'
        f'    cmd: sh step.sh "$DVX_INPUT" "$DVX_OUTPUT/$DVX_DATUM_ID.n" {work}/dvx-exec.log\n'
        "    deps: [step.sh]\n"
        "    outs: [counts]\n"
    )
    sh(["git", "init", "-q"], p)
    sh([dvx, "init", "-q"], p, env)
    sh([dvx, "add", "in", "-q"], p, env)
    return p


def setup_dvc(dvc: str, work: Path, n: int, env: dict) -> Path:
    p = work / "dvc"
    make_inputs(p, n)
    (p / "step.sh").write_text(PER_FILE + "\n")
    loop = f'mkdir -p counts && for f in in/*; do sh step.sh "$f" "counts/$(basename $f).n" {work}/dvc-exec.log; done'
    (p / "dvc.yaml").write_text(
        "stages:\n"
        "  count:\n"
        f"    cmd: {json.dumps(loop)}\n"
        "    deps: [step.sh, in]\n"
        "    outs: [counts]\n"
    )
    sh(["git", "init", "-q"], p)
    sh([dvc, "init", "-q"], p, env)
    return p


def lines(path: Path) -> int:
    try:
        return sum(1 for _ in open(path))
    except FileNotFoundError:
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dvx", default=str(ROOT / "target/release/dvx"))
    ap.add_argument("--dvc", default=os.path.join(os.environ.get("BENCH_VENV", "/tmp/dvx-bench-venv"), "bin/dvc"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--json")
    ap.add_argument("--work")
    a = ap.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="dvx-pipebench-"))
    env = dict(os.environ, DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=str(work / "dvc-site"))
    res = {"n": a.n}
    have_dvc = Path(a.dvc).exists() or shutil.which(a.dvc)
    try:
        # --- full run with -j 2 vs xargs -P 2
        px = setup_dvx(a.dvx, work, a.n, env)
        t_full, _ = sh([a.dvx, "run", "-j", "2", "-q"], px, env)
        xdir = work / "xargs"
        make_inputs(xdir, a.n)
        (xdir / "step.sh").write_text(PER_FILE + "\n")
        (xdir / "out").mkdir()
        t_xargs, _ = sh(f'ls in | xargs -P 2 -I{{}} sh step.sh in/{{}} out/{{}}.n {work}/xargs-exec.log', xdir)
        res["full_run_j2_s"] = t_full
        res["xargs_p2_s"] = t_xargs
        # --- no-op
        t_noop = min(sh([a.dvx, "run", "-q"], px, env)[0] for _ in range(3))
        res["noop_run_s"] = t_noop
        # --- change one input, re-run
        before = lines(work / "dvx-exec.log")
        with open(px / "in" / "f00042.txt", "a") as f:
            f.write("one more line\n")
        t_dvx_rerun, _ = sh([a.dvx, "run", "-q"], px, env)
        res["dvx_rerun_s"] = t_dvx_rerun
        res["dvx_rerun_executions"] = lines(work / "dvx-exec.log") - before
        if have_dvc:
            pd = setup_dvc(a.dvc, work, a.n, env)
            sh([a.dvc, "repro", "-q"], pd, env)
            before = lines(work / "dvc-exec.log")
            with open(pd / "in" / "f00042.txt", "a") as f:
                f.write("one more line\n")
            t_dvc_rerun, _ = sh([a.dvc, "repro", "-q"], pd, env)
            res["dvc_rerun_s"] = t_dvc_rerun
            res["dvc_rerun_executions"] = lines(work / "dvc-exec.log") - before
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)

    def row(name, value, target, ok):
        print(f"{name:<44} {value:>22}   {target:<26} {'PASS' if ok else 'FAIL'}")

    print(f"\npipeline benchmark, {a.n} inputs (dvx {a.dvx})")
    print(f"{'measure':<44} {'value':>22}   {'target':<26} verdict")
    ex = res["dvx_rerun_executions"]
    row("dvx re-run after changing 1 input: executions", f"{ex} of {a.n}", "exactly 1", ex == 1)
    if "dvc_rerun_s" in res:
        r = res["dvc_rerun_s"] / res["dvx_rerun_s"]
        row("re-run time dvx vs DVC (dvc/dvx)", f"{res['dvx_rerun_s']:.3f}s vs {res['dvc_rerun_s']:.2f}s = {r:.1f}x", ">= 20x", r >= 20)
        row("DVC re-run: executions", f"{res['dvc_rerun_executions']} of {a.n}", "(informative)", True)
    row("no-op dvx run", f"{res['noop_run_s']:.3f}s", "< 0.3 s", res["noop_run_s"] < 0.3)
    r = res["full_run_j2_s"] / res["xargs_p2_s"]
    row("full run -j 2 vs xargs -P 2 (dvx/xargs)", f"{res['full_run_j2_s']:.2f}s vs {res['xargs_p2_s']:.2f}s = {r:.2f}x", "<= 1.5x", r <= 1.5)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    sys.exit(main())
