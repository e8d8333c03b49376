#!/usr/bin/env bash
# Papermill and a Python kernel for the notebook stage tests (tests/it/notebook.rs): a venv
# with papermill, ipykernel (registered as the venv's own `python3` kernel) and pandas, made
# once and kept between runs under the services folder.
#   notebook.sh install      make it if missing; print the path of its papermill
#   notebook.sh python       print the path of its python (after install)
set -euo pipefail
BASE=${DVX_SERVICES:-${TMPDIR:-/tmp}/dvx-services}
VENV=$BASE/notebook/venv
case "${1:-install}" in
  install)
    if [ ! -e "$VENV/.complete" ]; then
      rm -rf "$VENV"
      mkdir -p "$BASE/notebook"
      python3 -m venv "$VENV"
      "$VENV/bin/pip" install -q --disable-pip-version-check papermill ipykernel pandas >&2
      # The kernel the venv's papermill finds first: this venv's python, not the system's.
      "$VENV/bin/python" -m ipykernel install --prefix "$VENV" --name python3 >&2
      touch "$VENV/.complete"
    fi
    echo "$VENV/bin/papermill" ;;
  python) echo "$VENV/bin/python" ;;
  *) echo "usage: notebook.sh install|python" >&2; exit 2 ;;
esac
