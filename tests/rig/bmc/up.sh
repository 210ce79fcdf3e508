#!/bin/sh
# Start ipmi_sim BMCs on loopback: up.sh DIR [bmcrig up options...]
#   e.g. up.sh .rig/bmc --count 3 --on-power-off "rig/kill-node.sh {name}"
# Prints the BMCs as JSON (host, port, username, password_file, dir, pid).
set -eu
repo="$(cd "$(dirname "$0")/../../.." && pwd)"
mkdir -p "$1"; dir="$(cd "$1" && pwd)"; shift
cd "$repo" && exec "${PYTHON:-$repo/.venv/bin/python}" -m tests.rig.bmc.bmcrig up --dir "$dir" "$@"
