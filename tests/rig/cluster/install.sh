#!/bin/bash
# Idempotent install of what the Pacemaker cluster rig needs (Debian 12, root).
#
# Debian's pacemaker-remote package conflicts with pacemaker (installing it removes the
# cluster stack), so its pacemaker-remoted binary is unpacked into .rig/ instead: it links
# against the libraries the installed pacemaker already provides.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
rig=${CHA_CLUSTER_RIG_DIR:-$repo/.rig/cluster}

pkgs=(pacemaker corosync pacemaker-cli-utils pcs crmsh resource-agents fence-agents
      openipmi ipmitool iproute2 util-linux procps python3 python3-venv make nftables)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "cluster rig: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # --no-install-recommends: pcs recommends pcsd/systemd pieces the rig does not use
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

remoted=$rig/remote-root/usr/sbin/pacemaker-remoted
if [ ! -x "$remoted" ]; then
    want=$(dpkg-query -W -f='${Version}' pacemaker)
    dl=$rig/download
    mkdir -p "$dl"
    # same version as the installed pacemaker: the binary uses its private libraries
    (cd "$dl" && apt-get download -qq "pacemaker-remote=$want")
    deb=$(ls "$dl"/pacemaker-remote_*.deb | head -n1)
    rm -rf "$rig/remote-root.tmp"
    dpkg-deb -x "$deb" "$rig/remote-root.tmp"
    rm -rf "$rig/remote-root"
    mv "$rig/remote-root.tmp" "$rig/remote-root"
fi
# The nodes run the project's agents as Pacemaker does: some actions (metadata) as user
# hacluster, which cannot use a development venv living under /root. A venv on the
# distribution's python3 with an editable install keeps working-tree edits live.
venv=$rig/agents-venv
want=$(cat "$repo/pyproject.toml" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.computeha-stamp" 2>/dev/null)" != "$want" ]; then
    echo "cluster rig: building $venv (system python3, editable install of the project)"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$repo"
    echo "$want" > "$venv/.computeha-stamp"
fi
"$remoted" --version | head -n1
echo "cluster rig: tools ready; pacemaker-remoted at $remoted"
