#!/usr/bin/env bash
# The browser the web UI tests drive: Debian's Chromium, and playwright-core from npm.
# usage: tests/services/browser.sh install   (idempotent; prints DVX_PLAYWRIGHT_DIR=...)
set -euo pipefail
dir=${DVX_SERVICES_DIR:-/tmp/dvx-services}/browser
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
case ${1:-install} in
  install)
    if ! command -v chromium >/dev/null; then
      as_root apt-get update -qq
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
    fi
    command -v node >/dev/null || { echo "browser.sh: node is missing (apt-get install nodejs npm)" >&2; exit 1; }
    if [ ! -f "$dir/node_modules/playwright-core/package.json" ]; then
      mkdir -p "$dir"
      (cd "$dir" && npm install --no-audit --no-fund --silent playwright-core@1.57.0 >/dev/null)
    fi
    echo "DVX_PLAYWRIGHT_DIR=$dir"
    ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
