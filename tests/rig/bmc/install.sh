#!/bin/sh
# Install what the BMC rig and the IPMI tests need (idempotent; run as root).
#   ipmi_sim (openipmi), ipmitool (an independent client for cross-checks),
#   fence-agents (fence_ipmilan, the benchmark's reference),
#   python-ipmi with its rmcpplus extra (cryptography: AES for cipher suite 3).
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"

missing=""
command -v ipmi_sim >/dev/null 2>&1 || missing="$missing openipmi"
command -v ipmitool >/dev/null 2>&1 || missing="$missing ipmitool"
command -v fence_ipmilan >/dev/null 2>&1 || [ -x /usr/sbin/fence_ipmilan ] || missing="$missing fence-agents"
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi

if ! "$python" -c 'import pyipmi.interfaces.rmcpplus, cryptography' 2>/dev/null; then
    "$python" -m pip install -q 'python-ipmi[rmcpplus]>=0.6.0'
fi
chmod 755 "$here/chassis.sh"
echo "bmc rig: ipmi_sim $(command -v ipmi_sim), ipmitool $(command -v ipmitool), python-ipmi ok"
