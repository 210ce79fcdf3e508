#!/bin/bash
# Tear the cluster rig down: kills only what the rig recorded/owns, removes its namespaces.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
py=${PYTHON:-$repo/.venv/bin/python}
[ -x "$py" ] || py=python3
cd "$repo"
exec "$py" -m tests.rig.cluster.cluster down
