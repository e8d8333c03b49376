#!/usr/bin/env python3
"""Time `dvx dag` on generated pipelines of many stages (parsing, validation, graph building),
and planning: `dvx status` and `dvx run --dry-run` (parsing + deciding what is stale).

    python3 tests/bench/stages.py --dvx target/release/dvx --n 8000 32000 100000
    python3 tests/bench/stages.py --n 10000 100000 --what dag,status,dry-run --foreach

Each pipeline is a chain in groups of 100: every stage reads the previous stage's output, and
the first of each group reads the whole folder of the group before (a fan-in of 100), so the
graph has both long paths and wide joins. With --foreach the N stages are written as one
`foreach` stage per group of 100 (the list form), expanded by dvx: every stage of a group
reads the last output of the group before. Prints the
seconds of each run (median of --repeat), peak RSS, and the time per 1,000 stages, so growth
from one N to the next can be read as (near-)linear or not.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import PeakRss  # noqa: E402  (peak RSS through GNU time)


def pipeline(n):
    lines = ["stages:"]
    for i in range(n):
        if i == 0:
            dep = "raw"
        elif i % 100 == 0:
            dep = f"out/{i // 100 - 1}"
        else:
            dep = f"out/{i // 100}/s{i - 1}"
        lines.append(
            f"  s{i}:\n    cmd: touch o\n    deps: [{dep}]\n    outs: [out/{i // 100}/s{i}]"
        )
    return "\n".join(lines) + "\n"


def pipeline_foreach(n):
    """The same graph as `pipeline(n)`, one foreach stage per group of 100 (list form)."""
    lines = ["stages:"]
    for g in range(-(-n // 100)):
        lo, hi = g * 100, min(n, g * 100 + 100)
        lines.append(f"  g{g}:\n    foreach: [{', '.join(str(i) for i in range(lo, hi))}]\n    do:")
        # ${item} is the stage's number; every stage of a group reads the last output of the
        # group before (a fan-out of 100, as many edges as stages).
        dep = "raw" if g == 0 else f"out/{g - 1}/s{lo - 1}"
        lines.append(f"      cmd: touch o\n      deps: [{dep}]\n      outs: [\"out/{g}/s${{item}}\"]")
    return "\n".join(lines) + "\n"


COMMANDS = {"dag": ["dag"], "status": ["status"], "dry-run": ["run", "--dry-run"]}


def timed(argv, cwd):
    rss = PeakRss()
    t = time.perf_counter()
    p = subprocess.Popen(rss.wrap(argv), cwd=cwd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    return time.perf_counter() - t, os.waitstatus_to_exitcode(status), rss.mb(usage), err


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dvx", default="target/release/dvx")
    ap.add_argument("--n", type=int, nargs="+", default=[8000, 32000, 100000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--what", default="dag",
                    help="comma-separated commands to time: dag, status, dry-run (default dag)")
    ap.add_argument("--foreach", action="store_true",
                    help="write the stages as foreach groups of 100 instead of one by one")
    args = ap.parse_args()
    dvx = os.path.abspath(args.dvx)
    what = [w.strip() for w in args.what.split(",") if w.strip()]
    for w in what:
        if w not in COMMANDS:
            raise SystemExit(f"unknown --what {w!r}; known: {', '.join(COMMANDS)}")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="dvx-stages-") as work:
        subprocess.run([dvx, "init"], cwd=work, check=True, capture_output=True)
        os.makedirs(os.path.join(work, "raw"), exist_ok=True)
        with open(os.path.join(work, "raw", "x"), "w") as f:
            f.write("x\n")
        for n in args.n:
            with open(os.path.join(work, "dvx.yaml"), "w") as f:
                f.write(pipeline_foreach(n) if args.foreach else pipeline(n))
            for w in what:
                times, rss = [], 0.0
                for _ in range(args.repeat):
                    dt, rc, peak, err = timed([dvx, *COMMANDS[w]], work)
                    times.append(dt)
                    rss = max(rss, peak)
                    # `status` and `--dry-run` may exit non-zero when stages are stale; only a
                    # message on stderr with a failing exit is an error.
                    if rc != 0 and (w == "dag" or b"error" in err.lower()):
                        raise SystemExit(f"dvx {' '.join(COMMANDS[w])} exited {rc}: {err.decode()}")
                med = statistics.median(times)
                print(f"{n} stages{' (foreach)' if args.foreach else ''}: dvx "
                      f"{' '.join(COMMANDS[w])} {med:.2f} s (median of {args.repeat}; "
                      f"{', '.join(f'{t:.2f}' for t in times)}), {1000 * med / n * 1000:.1f} ms "
                      f"per 1,000 stages, peak RSS {rss:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
