#!/usr/bin/env bash
# Prepares podman for the container tests: installs podman, runc and busybox-static when
# missing (as root, with apt), writes a containers.conf and storage.conf under a base folder,
# and imports the small test images. Idempotent. Prints the environment to use, as
# `export NAME=value` lines, on standard output.
#
#   eval "$(tests/services/podman.sh)"
#
# The settings and podman's storage live under DVX_PODMAN_BASE (default
# ${TMPDIR:-/tmp}/dvx-services-UID/podman), apart from any podman set-up of the machine.
#
# runc rather than crun: crun refuses hosts with hybrid cgroups. The ulimits stay below what
# small CI machines allow (podman's defaults can exceed their hard limits).
set -euo pipefail

base=${DVX_PODMAN_BASE:-${TMPDIR:-/tmp}/dvx-services-$(id -u)/podman}
image=localhost/dvx-busybox:latest
variant=localhost/dvx-busybox:variant-u1234

missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
[ -x /bin/busybox ] || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "podman.sh: missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
  }
fi
if ! /bin/busybox --list >/dev/null 2>&1 || ! { ldd /bin/busybox 2>&1 || true; } | grep -q "not a dynamic"; then
  echo "podman.sh: /bin/busybox must be the static build (apt-get install busybox-static)" >&2
  exit 1
fi

mkdir -p "$base/tmp" "$base/storage" "$base/run"
cat >"$base/containers.conf.new" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$base/tmp"
CONF
cat >"$base/storage.conf.new" <<CONF
[storage]
driver = "overlay"
graphroot = "$base/storage"
runroot = "$base/run"
CONF
mv "$base/containers.conf.new" "$base/containers.conf"
mv "$base/storage.conf.new" "$base/storage.conf"
export CONTAINERS_CONF="$base/containers.conf"
export CONTAINERS_STORAGE_CONF="$base/storage.conf"

# The test images: busybox (static) with one link per applet, nothing else, and a variant
# with one more file (another image id) whose default user is 1234, not root. Imported, not
# pulled: no registry is needed.
import_image() { # NAME [EXTRA-FILE-CONTENT [IMPORT-OPTION...]]
  local name=$1 extra=${2:-} root
  shift $(( $# < 2 ? $# : 2 ))
  podman image exists "$name" && return 0
  root=$(mktemp -d "$base/tmp/rootfs.XXXXXX")
  mkdir -p "$root/bin" "$root/etc" "$root/tmp"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  [ -z "$extra" ] || echo "$extra" >"$root/etc/variant"
  tar -C "$root" -c . | podman import --quiet --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' "$@" - "$name" >/dev/null
  rm -rf "$root"
}
import_image "$image"
import_image "$variant" variant --change 'USER 1234:1234'

echo "export CONTAINERS_CONF='$CONTAINERS_CONF'"
echo "export CONTAINERS_STORAGE_CONF='$CONTAINERS_STORAGE_CONF'"
echo "export DVX_TEST_IMAGE='$image'"
echo "export DVX_TEST_IMAGE_VARIANT='$variant'"
