#!/usr/bin/env python3
"""Time `dvx dag` on generated pipelines of many stages (parsing, validation, graph building).

    python3 tests/bench/stages.py --dvx target/release/dvx --n 8000 32000 100000

Each pipeline is a chain in groups of 100: every stage reads the previous stage's output, and
the first of each group reads the whole folder of the group before (a fan-in of 100), so the
graph has both long paths and wide joins. Prints the seconds of each run (median of --repeat).
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import time


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


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dvx", default="target/release/dvx")
    ap.add_argument("--n", type=int, nargs="+", default=[8000, 32000, 100000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    dvx = os.path.abspath(args.dvx)
    with tempfile.TemporaryDirectory(prefix="dvx-stages-") as work:
        subprocess.run([dvx, "init"], cwd=work, check=True, capture_output=True)
        for n in args.n:
            with open(os.path.join(work, "dvx.yaml"), "w") as f:
                f.write(pipeline(n))
            times = []
            for _ in range(args.repeat):
                t = time.monotonic()
                r = subprocess.run([dvx, "dag"], cwd=work, capture_output=True)
                times.append(time.monotonic() - t)
                if r.returncode != 0:
                    raise SystemExit(r.stderr.decode())
            print(f"{n} stages: dvx dag {statistics.median(times):.2f} s (median of {args.repeat})")


if __name__ == "__main__":
    main()
