#!/usr/bin/env bash
# Whole-command benchmark: dvx vs DVC side by side.
#
#   tests/bench/run.sh [compare.py options]     e.g.  tests/bench/run.sh --scale small
#
# Creates a venv with DVC at ${BENCH_VENV:-/tmp/dvx-bench-venv} when missing, builds
# dvx (and the statwalk example) in release mode, then runs compare.py.
# BENCH_NO_BUILD=1 skips the cargo build.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${BENCH_VENV:-/tmp/dvx-bench-venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/dvc" ]; then
    echo "== creating $venv with dvc"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install dvc
    # Other tools worth comparing by hand; optional.
    for extra in xvc oxenai; do
        "$venv/bin/pip" install "$extra" || echo "note: optional package $extra not installed"
    done
fi

if [ -z "${BENCH_NO_BUILD:-}" ]; then
    echo "== building dvx (release)"
    # Equivalent of `cargo build --release --bin dvx -p dvx-store --examples`, split in two
    # because --bin dvx lives in the root package, the statwalk example in dvx-store.
    (cd "$root" && cargo build --release --bin dvx)
    (cd "$root" && cargo build --release -p dvx-store --examples) \
        || echo "note: building the dvx-store examples failed; the statwalk baseline will be skipped"
fi

export BENCH_VENV="$venv"
exec "$python" "$here/compare.py" --dvc "$venv/bin/dvc" "$@"
