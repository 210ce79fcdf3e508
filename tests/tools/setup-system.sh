#!/usr/bin/env bash
# Installs the Debian packages the test suite, the rigs and the benchmarks use.
# Idempotent: does nothing when every package is already installed. Needs root.
set -euo pipefail

packages=(
  # contract tests: schemas and the real OCF / fence tools
  libxml2-utils resource-agents fence-agents pacemaker-cli-utils
  # the cluster: corosync, pacemaker, pcs, crmsh, BMC simulation
  pacemaker corosync pcs crmsh openipmi ipmitool iproute2 procps
  # the OpenStack rig's backing services
  mariadb-server rabbitmq-server
  # building uwsgi for the OpenStack rig, python3-novaclient for fence-agents' fence_compute
  gcc python3-dev python3-venv python3-novaclient
)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-system: all ${#packages[@]} packages present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup-system: missing packages (${missing[*]}) and not root: install them first" >&2
  exit 1
fi
echo "setup-system: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Debian's policy-rc.d convention: never let package scripts start services here.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-system: done"
