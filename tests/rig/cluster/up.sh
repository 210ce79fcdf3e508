#!/bin/bash
# Bring the cluster rig up (idempotent): install what is missing, then start it.
# Knobs: CHA_CLUSTER_CONTROLLERS (3), CHA_CLUSTER_COMPUTES (2), CHA_CLUSTER_PREFIX (chac),
#        CHA_CLUSTER_SUBNET (10.213.7), CHA_CLUSTER_RIG_DIR (.rig/cluster).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
py=${PYTHON:-$repo/.venv/bin/python}
[ -x "$py" ] || py=python3
"$here/install.sh" >/dev/null
cd "$repo"
exec "$py" -m tests.rig.cluster.cluster up
