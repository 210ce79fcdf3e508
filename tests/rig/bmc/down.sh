#!/bin/sh
# Stop every BMC started under DIR, by the PIDs recorded there: down.sh DIR
set -eu
repo="$(cd "$(dirname "$0")/../../.." && pwd)"
dir="$(cd "$1" && pwd)"
cd "$repo" && exec "${PYTHON:-$repo/.venv/bin/python}" -m tests.rig.bmc.bmcrig down --dir "$dir"
