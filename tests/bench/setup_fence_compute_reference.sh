#!/bin/bash
# What bench_fence_compute.py needs for its reference agent: fence-agents' fence_compute and
# the Debian python3 OpenStack clients it imports (novaclient, keystoneclient). Idempotent.
set -euo pipefail
need=()
for pkg in fence-agents python3-novaclient python3-keystoneclient; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
/usr/bin/python3 -c 'import novaclient, keystoneclient' && echo "fence_compute reference ready"
