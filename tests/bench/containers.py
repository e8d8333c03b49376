#!/usr/bin/env python3
"""Per-datum overhead of container stages: N trivial datums run here, in a container each,
and in batches of several datums per container, each a first full run with -j JOBS.

usage: tests/bench/containers.py [--dvx PATH] [--n 100] [--jobs 2] [--repeat 3]

Prepares podman and the busybox test image with tests/services/podman.sh (root installs the
packages). Prints seconds per run and milliseconds per datum. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CMD = 'wc -l < "$DVX_INPUT" > "$DVX_OUTPUT/$DVX_DATUM_ID.n"'


def podman_env() -> dict:
    out = subprocess.run(["bash", str(ROOT / "tests/services/podman.sh")], check=True,
                         capture_output=True, text=True).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        if line.startswith("export ") and "=" in line:
            k, v = line[len("export "):].split("=", 1)
            env[k] = v.strip("'")
    return env


def one_run(dvx: str, env: dict, n: int, jobs: int, stage_extra: str) -> float:
    with tempfile.TemporaryDirectory(prefix="dvx-bench-ctr-") as d:
        p = Path(d)
        (p / "in").mkdir()
        for i in range(n):
            (p / "in" / f"f{i:05d}.txt").write_text(f"record {i}\n" * (1 + i % 7))
        (p / "dvx.yaml").write_text(
            "stages:\n  count:\n    input: {path: in, glob: \"/*\"}\n"
            f"    cmd: {CMD!r}\n    outs: [counts]\n{stage_extra}"
        )
        subprocess.run([dvx, "init", "-q"], cwd=p, env=env, check=True)
        t = time.perf_counter()
        r = subprocess.run([dvx, "run", "-q", "-j", str(jobs)], cwd=p, env=env,
                           capture_output=True, text=True)
        dt = time.perf_counter() - t
        if r.returncode != 0:
            raise SystemExit(f"dvx run failed: {r.stderr}")
        got = len(list((p / "counts").iterdir()))
        if got != n:
            raise SystemExit(f"expected {n} outputs, got {got}")
        return dt


def main():
    ap = argparse.ArgumentParser()
    default = ROOT / "target/release/dvx"
    if not default.exists():
        default = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release/dvx"
    ap.add_argument("--dvx", default=str(default))
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    env = podman_env()
    image = env["DVX_TEST_IMAGE"]
    cases = [
        ("local process", ""),
        ("container per datum", f"    image: {image}\n"),
        ("batch: 10", f"    image: {image}\n    batch: 10\n"),
        ("batch: 50", f"    image: {image}\n    batch: 50\n"),
    ]
    print(f"{a.n} datums, -j {a.jobs}, {a.repeat} runs each, dvx {a.dvx}")
    print(f"{'':22} {'median s':>9} {'ms/datum':>9}   runs")
    for name, extra in cases:
        times = [one_run(a.dvx, env, a.n, a.jobs, extra) for _ in range(a.repeat)]
        med = statistics.median(times)
        runs = " / ".join(f"{t:.2f}" for t in times)
        print(f"{name:22} {med:9.2f} {1000 * med / a.n:9.1f}   {runs}")


if __name__ == "__main__":
    main()
