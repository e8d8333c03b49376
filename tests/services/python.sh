#!/usr/bin/env bash
# The Python the tests of the dvx package use: a venv with what the package is used with
# (pandas, pyarrow, fsspec) and maturin, made once and kept between runs. The tests make a fresh venv per
# run that sees these packages and has the wheel built from the binary under test installed.
#   python.sh install        make it if missing; print its python
set -euo pipefail
BASE=${DVX_SERVICES:-${TMPDIR:-/tmp}/dvx-services}
VENV=$BASE/python/venv
case "${1:-install}" in
  install)
    if [ ! -e "$VENV/.complete" ]; then
      rm -rf "$VENV"
      mkdir -p "$BASE/python"
      python3 -m venv "$VENV"
      "$VENV/bin/pip" install -q --disable-pip-version-check pandas pyarrow fsspec maturin >&2
      touch "$VENV/.complete"
    fi
    echo "$VENV/bin/python" ;;
  *) echo "usage: python.sh install" >&2; exit 2 ;;
esac
