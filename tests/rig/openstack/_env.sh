# Sourced by the rig scripts: locate the repo, the rig directory and the rig's python.
RIG_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$RIG_SRC/../../.." && pwd)
RIG_DIR=${COMPUTEHA_RIG_DIR:-$REPO_ROOT/.rig/openstack}
RIG_VENV=$RIG_DIR/venv
rig_cli() {
  if [ ! -x "$RIG_VENV/bin/python" ]; then
    echo "OpenStack rig not installed: run $RIG_SRC/install.sh" >&2; return 2
  fi
  (cd "$REPO_ROOT" && PYTHONPATH="$REPO_ROOT" PYTHONWARNINGS=ignore "$RIG_VENV/bin/python" -m tests.rig.openstack.cli "$@")
}
